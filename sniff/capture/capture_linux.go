//go:build linux

package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
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

// vlanIDMask selects the VLAN ID from an 802.1Q tag control field, which
// also carries the priority and DEI bits.
const vlanIDMask = 0x0fff

// Sizes of the control messages a read may carry: the packet's auxiliary
// data (its length before truncation, its VLAN tag) and its timestamp.
var (
	cmsgHdrLen  = unix.CmsgLen(0)
	auxdataLen  = int(unsafe.Sizeof(unix.TpacketAuxdata{}))
	timespecLen = int(unsafe.Sizeof(unix.Timespec{}))
	oobLen      = unix.CmsgSpace(auxdataLen) + unix.CmsgSpace(timespecLen)
)

// Handle is a live capture on one interface. ReadPacket may run
// concurrently with Close and Stats, not with another ReadPacket.
type Handle struct {
	f       *os.File        // the packet socket, non-blocking, in the runtime's poller
	rc      syscall.RawConn // f's; its Read parks in the poller, which Close wakes
	iface   string
	ifindex int
	bufSize int         // the socket's receive buffer, as the kernel reports it (0 if unknown)
	stop    func() bool // stops the context's AfterFunc

	// The read state, used by one read at a time. msg points into buf
	// (through iov) and oob; recv is the read callback, made once so that
	// a read does not allocate.
	buf   []byte // snaplen bytes
	oob   []byte
	iov   unix.Iovec
	msg   unix.Msghdr
	recv  func(fd uintptr) bool
	n     int           // recvmsg's result: the frame's length before truncation to buf
	errno syscall.Errno // recvmsg's error
	ancil [1]any        // the AncillaryData of a zero-copy read

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

	h, err := openSocket(ifi, filter, prog, snaplen, !loopback)
	if err != nil {
		return nil, err
	}
	h.stop = context.AfterFunc(ctx, h.shutdown)
	return h, nil
}

// openSocket opens a packet socket that captures the frames of ifi which
// prog (nil: all) accepts, at most snaplen bytes of each, and sets the
// interface's promiscuous mode if promisc. filter, prog's source, is only
// quoted in errors.
//
// The socket is created with protocol 0, which receives nothing, and only
// bound to ifi for ETH_P_ALL once prog is attached: so no frame is ever
// queued unfiltered, and there is nothing to discard (libpcap, which binds
// first, reads away what arrived before its filter).
func openSocket(ifi *net.Interface, filter string, prog []bpf.RawInstruction, snaplen int, promisc bool) (_ *Handle, err error) {
	iface := ifi.Name
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, permissionOr(iface, "opening a packet socket", err)
	}
	var f *os.File // owns fd once made
	defer func() {
		if err == nil {
			return
		}
		if f != nil {
			f.Close()
		} else {
			unix.Close(fd)
		}
	}()
	// The auxiliary data gives a frame's length before truncation (which
	// the filter's snaplen makes) and its VLAN tag.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return nil, fmt.Errorf("capture on %s: enabling PACKET_AUXDATA: %w", iface, err)
	}
	// Best effort: without kernel timestamps, a frame is stamped as read.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	bufSize := setReceiveBuffer(fd, SocketBuffer)
	if prog != nil {
		if err := attachFilter(fd, prog); err != nil {
			return nil, permissionOr(iface, fmt.Sprintf("attaching filter %q", filter), err)
		}
	}
	sll := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sll); err != nil {
		return nil, permissionOr(iface, "binding the packet socket", err)
	}
	if promisc {
		// Best effort: sniffing other hosts' traffic on a hub, a mirror
		// port or a bridge needs it; the membership ends with the socket.
		mreq := &unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		_ = unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq)
	}

	// The descriptor is non-blocking, so os.NewFile registers it with the
	// runtime's poller: a read waits there, and Close wakes it.
	f = os.NewFile(uintptr(fd), "packet:"+iface)
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", iface, err)
	}
	h := &Handle{
		f:       f,
		rc:      rc,
		iface:   iface,
		ifindex: ifi.Index,
		bufSize: bufSize,
		stop:    func() bool { return false },
		buf:     make([]byte, snaplen),
		oob:     make([]byte, oobLen),
	}
	h.iov.Base = &h.buf[0]
	h.iov.SetLen(len(h.buf))
	h.msg.Iov = &h.iov
	h.msg.SetIovlen(1)
	h.msg.Control = &h.oob[0]
	h.recv = h.recvmsg
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

// htons converts v to network byte order, as the packet socket's protocol
// fields want it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// setReceiveBuffer enlarges the receive buffer of the socket fd to size
// bytes: with SO_RCVBUFFORCE when the process has CAP_NET_ADMIN (root),
// else with SO_RCVBUF, which the kernel caps at net.core.rmem_max. It
// returns the size the kernel reports (twice what was set), or 0.
func setReceiveBuffer(fd, size int) int {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
	}
	got, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return got
}

// attachFilter attaches the classic BPF program prog to the socket fd.
func attachFilter(fd int, prog []bpf.RawInstruction) error {
	insns := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		insns[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]})
}

// permissionOr returns the error of a failed step of opening the socket:
// a permissionError if the system refused it, which only happens without
// CAP_NET_RAW.
func permissionOr(iface, step string, err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return &permissionError{iface: iface, err: err}
	}
	return fmt.Errorf("capture on %s: %s: %w", iface, step, err)
}

// recvmsg is the callback of a read: it receives one frame into h.buf
// and its control messages into h.oob, and returns false (wait for the
// poller) if none is queued. MSG_TRUNC makes it return the frame's whole
// length even when buf was too short. It does not allocate.
func (h *Handle) recvmsg(fd uintptr) bool {
	h.msg.SetControllen(len(h.oob))
	h.msg.Flags = 0
	for {
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&h.msg)), unix.MSG_TRUNC)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		h.n, h.errno = int(n), e
		return true
	}
}

// readOne reads the next frame into h.buf. It returns the frame's capture
// info and its VLAN ID, or -1 if it had no VLAN tag.
func (h *Handle) readOne() (gopacket.CaptureInfo, int, error) {
	if err := h.rc.Read(h.recv); err != nil {
		return gopacket.CaptureInfo{}, -1, err
	}
	if h.errno != 0 {
		return gopacket.CaptureInfo{}, -1, fmt.Errorf("receiving a frame: %w", h.errno)
	}
	ci := gopacket.CaptureInfo{
		CaptureLength:  min(h.n, len(h.buf)),
		Length:         h.n,
		InterfaceIndex: h.ifindex,
	}
	vlan := -1
	// Parsed in place: unix.ParseSocketControlMessage allocates.
	oob := h.oob[:h.msg.Controllen]
	for len(oob) >= cmsgHdrLen {
		hdr := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if int(hdr.Len) < cmsgHdrLen || int(hdr.Len) > len(oob) {
			break
		}
		data := oob[cmsgHdrLen:hdr.Len]
		switch {
		case hdr.Level == unix.SOL_PACKET && hdr.Type == unix.PACKET_AUXDATA && len(data) >= auxdataLen:
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&data[0]))
			// The frame's length on the wire; h.n is only what is left
			// of it after the filter's truncation to the snaplen.
			ci.Length = max(int(aux.Len), ci.CaptureLength)
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
				vlan = int(aux.Vlan_tci & vlanIDMask)
			}
		case hdr.Level == unix.SOL_SOCKET && hdr.Type == unix.SO_TIMESTAMPNS && len(data) >= timespecLen:
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			ci.Timestamp = time.Unix(int64(ts.Sec), int64(ts.Nsec))
		}
		next := unix.CmsgSpace(int(hdr.Len) - cmsgHdrLen)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	if ci.Timestamp.IsZero() {
		ci.Timestamp = time.Now()
	}
	return ci, vlan, nil
}

// ReadPacket returns the next captured frame, in a new slice. It blocks
// until a frame arrives; after Close, or once the context given to Open is
// done, it returns io.EOF. A frame longer than the snaplen is truncated to
// it: ci.CaptureLength is then the snaplen and ci.Length the frame's
// length. If the kernel stripped a VLAN tag from the frame,
// ci.AncillaryData holds the tag's VLAN ID (an int).
func (h *Handle) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	ci, vlan, err := h.readOne()
	if err != nil {
		return nil, gopacket.CaptureInfo{}, h.readErr(err)
	}
	if vlan >= 0 {
		ci.AncillaryData = []any{vlan}
	}
	return append([]byte(nil), h.buf[:ci.CaptureLength]...), ci, nil
}

// ReadPacketData is ReadPacket, making a Handle a gopacket.PacketDataSource.
func (h *Handle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return h.ReadPacket()
}

// ZeroCopyReadPacketData is ReadPacket without the copy: the data (and
// ci.AncillaryData) are valid only until the next read. It makes a Handle
// a gopacket.ZeroCopyPacketDataSource. It does not allocate, except to
// box a VLAN ID above 255.
func (h *Handle) ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	ci, vlan, err := h.readOne()
	if err != nil {
		return nil, gopacket.CaptureInfo{}, h.readErr(err)
	}
	if vlan >= 0 {
		h.ancil[0] = vlan
		ci.AncillaryData = h.ancil[:]
	}
	return h.buf[:ci.CaptureLength], ci, nil
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
	var (
		st  *unix.TpacketStats
		err error
	)
	if cerr := h.rc.Control(func(fd uintptr) {
		st, err = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("capture on %s: reading statistics: %w", h.iface, err)
	}
	// The kernel resets its counters on each read: accumulate. Its
	// Packets include the Drops.
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
// Closing the file wakes a read parked in the poller; the read then sees
// closed and returns io.EOF.
func (h *Handle) shutdown() {
	h.closeOnce.Do(func() {
		h.statsMu.Lock()
		_ = h.updateStatsLocked()
		h.closed.Store(true)
		h.statsMu.Unlock()
		h.closeErr = h.f.Close()
	})
}
