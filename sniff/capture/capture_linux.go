//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ARPHRD_* link types (from /sys/class/net/IFACE/type) whose frames start
// with an Ethernet header.
const (
	arphrdEther    = 1
	arphrdLoopback = 772
)

// SocketBuffer is the receive buffer Open asks for: room for a burst of
// some sixty 64 KiB loopback frames while the reader catches up. The
// kernel's default (net.core.rmem_default, usually 208 KiB) holds three,
// and a frame that finds the buffer full is dropped (counted in
// Stats.Dropped).
const SocketBuffer = 8 << 20

// drainTimeout bounds the discarding of the frames queued before the
// filter was attached; they are already queued, so it is never reached
// unless the kernel's counters mislead us.
const drainTimeout = 2 * time.Second

// Handle is a live capture on one interface. ReadPacket may run
// concurrently with Close and Stats, not with another ReadPacket.
type Handle struct {
	eh      *pcapgo.EthernetHandle
	iface   string
	bufSize int         // the socket's receive buffer, as the kernel reports it (0 if unknown)
	stop    func() bool // stops the context's AfterFunc

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	statsMu sync.Mutex
	stats   Stats
}

// Open starts a live capture on iface with the tcpdump-style filter (see
// the package documentation; "" captures everything), capturing at most
// snaplen bytes of each frame (DefaultSnaplen if snaplen <= 0, at most
// MaxSnaplen). Cancelling ctx closes the handle, as Close does.
func Open(ctx context.Context, iface string, filter string, snaplen int) (*Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if snaplen <= 0 {
		snaplen = DefaultSnaplen
	}
	snaplen = min(snaplen, MaxSnaplen)
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("capture on %q: %w", iface, err)
	}
	if err := checkLinkType(iface); err != nil {
		return nil, err
	}
	loopback := ifi.Flags&net.FlagLoopback != 0

	// Compile first: a wrong filter is reported to an unprivileged user too.
	var prog []bpf.RawInstruction
	if filter != "" || loopback {
		insns, err := compile(filter, snaplen, loopback)
		if err != nil {
			return nil, err
		}
		if prog, err = bpf.Assemble(insns); err != nil {
			return nil, fmt.Errorf("capture filter %q: %w", filter, err)
		}
	}

	// pcapgo formats its errors with %s, losing the errno: probe the
	// permission first, with a socket that receives nothing.
	if err := probePacketSocket(); err != nil {
		return nil, permissionOr(iface, err)
	}
	eh, err := pcapgo.NewEthernetHandle(iface)
	if err != nil {
		if isPermissionText(err) {
			return nil, &permissionError{iface: iface, err: syscall.EPERM}
		}
		return nil, fmt.Errorf("capture on %s: %w", iface, err)
	}
	if err := eh.SetCaptureLength(snaplen); err != nil {
		eh.Close()
		return nil, fmt.Errorf("capture on %s: %w", iface, err)
	}
	bufSize := setReceiveBuffer(eh, SocketBuffer)
	if prog != nil {
		if err := attachFilter(eh, prog); err != nil {
			eh.Close()
			if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
				return nil, &permissionError{iface: iface, err: err}
			}
			return nil, fmt.Errorf("capture on %s: attaching filter %q: %w", iface, filter, err)
		}
	}
	if !loopback {
		// Best effort: sniffing other hosts' traffic on a hub, a mirror
		// port or a bridge needs it; the membership ends with the socket.
		_ = eh.SetPromiscuous(true)
	}

	h := &Handle{eh: eh, iface: iface, bufSize: bufSize}
	h.stop = context.AfterFunc(ctx, h.shutdown)
	return h, nil
}

// checkLinkType refuses interfaces whose frames have no Ethernet header
// (tun, ppp, ...), which the filter programs and the decoders would
// misread.
func checkLinkType(iface string) error {
	b, err := os.ReadFile("/sys/class/net/" + iface + "/type")
	if err != nil {
		return nil // no sysfs: let the capture try
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || t == arphrdEther || t == arphrdLoopback {
		return nil
	}
	return fmt.Errorf("capture on %s: link type %d (ARPHRD) is not Ethernet: only Ethernet and loopback interfaces are supported", iface, t)
}

// setReceiveBuffer enlarges the socket's receive buffer to size bytes:
// with SO_RCVBUFFORCE when the process has CAP_NET_ADMIN (root), else with
// SO_RCVBUF, which the kernel caps at net.core.rmem_max. It returns the
// size the kernel reports, or 0 if the socket could not be reached.
//
// pcapgo.EthernetHandle does not expose its socket, so its *os.File is
// read by reflection; if a gopacket release renames that field, the
// buffer keeps the kernel's default (TestReceiveBuffer catches this).
func setReceiveBuffer(eh *pcapgo.EthernetHandle, size int) int {
	f := handleFile(eh)
	if f == nil {
		return 0
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return got
}

// handleFile returns the socket of eh, or nil.
func handleFile(eh *pcapgo.EthernetHandle) *os.File {
	v := reflect.ValueOf(eh).Elem().FieldByName("file")
	if !v.IsValid() || v.Type() != reflect.TypeFor[*os.File]() || v.IsNil() {
		return nil
	}
	return (*os.File)(v.UnsafePointer())
}

func probePacketSocket() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

func permissionOr(iface string, err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return &permissionError{iface: iface, err: err}
	}
	return fmt.Errorf("capture on %s: opening a packet socket: %w", iface, err)
}

func isPermissionText(err error) bool {
	s := err.Error()
	return strings.Contains(s, syscall.EPERM.Error()) || strings.Contains(s, syscall.EACCES.Error())
}

// attachFilter attaches prog so that no frame it rejects is ever read.
// The socket has captured everything since it was bound, so first a
// reject-all program stops the queueing, then the frames already queued
// (counted by PACKET_STATISTICS) are read and discarded, and only then is
// prog attached. Reading the statistics resets them, so a repeat that
// reads zero also catches a frame that was in flight when the reject-all
// program went in.
func attachFilter(eh *pcapgo.EthernetHandle, prog []bpf.RawInstruction) error {
	rejectAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return err
	}
	if err := eh.SetBPF(rejectAll); err != nil {
		return err
	}
	var timedOut atomic.Bool
	watchdog := time.AfterFunc(drainTimeout, func() {
		timedOut.Store(true)
		eh.Close() // wakes the blocked read below
	})
	defer watchdog.Stop()
	for {
		st, err := eh.Stats()
		if err != nil {
			return fmt.Errorf("reading packet statistics: %w", err)
		}
		queued := int64(st.Packets) - int64(st.Drops)
		if queued <= 0 {
			break
		}
		for ; queued > 0; queued-- {
			if _, _, err := eh.ZeroCopyReadPacketData(); err != nil {
				if timedOut.Load() {
					return errors.New("timed out discarding the frames queued before the filter")
				}
				return err
			}
		}
	}
	if !watchdog.Stop() {
		return errors.New("timed out discarding the frames queued before the filter")
	}
	return eh.SetBPF(prog)
}

// ReadPacket returns the next captured frame, in a new slice. It blocks
// until a frame arrives; after Close, or once the context given to Open is
// done, it returns io.EOF.
func (h *Handle) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := h.eh.ReadPacketData()
	if err != nil {
		return nil, gopacket.CaptureInfo{}, h.readErr(err)
	}
	return data, ci, nil
}

// ReadPacketData is ReadPacket, making a Handle a gopacket.PacketDataSource.
func (h *Handle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return h.ReadPacket()
}

// ZeroCopyReadPacketData is ReadPacket without the copy: the data (and
// ci.AncillaryData) are valid only until the next read. It makes a Handle
// a gopacket.ZeroCopyPacketDataSource.
func (h *Handle) ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := h.eh.ZeroCopyReadPacketData()
	if err != nil {
		return nil, gopacket.CaptureInfo{}, h.readErr(err)
	}
	return data, ci, nil
}

func (h *Handle) readErr(err error) error {
	if h.closed.Load() {
		return io.EOF
	}
	return fmt.Errorf("capture on %s: %w", h.iface, err)
}

// LinkType is the link type of the captured frames: always Ethernet.
func (h *Handle) LinkType() layers.LinkType { return layers.LinkTypeEthernet }

// Interface is the name of the captured interface.
func (h *Handle) Interface() string { return h.iface }

// Stats returns the kernel's counters since the filter was attached. After
// Close it returns the last counters, read as the handle closed.
func (h *Handle) Stats() (Stats, error) {
	h.statsMu.Lock()
	defer h.statsMu.Unlock()
	if h.closed.Load() {
		return h.stats, nil
	}
	return h.stats, h.updateStatsLocked()
}

func (h *Handle) updateStatsLocked() error {
	st, err := h.eh.Stats()
	if err != nil {
		return fmt.Errorf("capture on %s: reading statistics: %w", h.iface, err)
	}
	// The kernel resets its counters on each read: accumulate.
	h.stats.Received += uint64(st.Packets)
	h.stats.Dropped += uint64(st.Drops)
	return nil
}

// Close ends the capture and wakes a blocked ReadPacket, which returns
// io.EOF. It may be called more than once.
func (h *Handle) Close() error {
	h.stop()
	h.shutdown()
	return h.closeErr
}

// shutdown closes the handle once; the context's AfterFunc calls it too.
func (h *Handle) shutdown() {
	h.closeOnce.Do(func() {
		h.statsMu.Lock()
		_ = h.updateStatsLocked()
		h.closed.Store(true)
		h.statsMu.Unlock()
		h.closeErr = h.eh.Close()
	})
}
