//go:build linux

package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/wstap/wstap/internal/wstest"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// helperEnv selects a helper mode of the test binary, used when it is
// re-run as an unprivileged user.
const helperEnv = "WSTAP_CAPTURE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "open-lo" {
		_, err := Open(context.Background(), "lo", "tcp port 80", 0)
		fmt.Printf("ERR: %v\n", err)
		fmt.Printf("IS_PERMISSION: %v\n", errors.Is(err, ErrPermission))
		fmt.Printf("IS_FS_PERMISSION: %v\n", errors.Is(err, fs.ErrPermission))
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// requireLive skips a test that needs to capture unless running as root;
// in CI (CI set), it fails instead.
func requireLive(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	wstest.Unavailable(t, "live capture tests need root (CAP_NET_RAW)")
}

// tally counts what a capture saw of the test's TCP traffic.
type tally struct {
	mu        sync.Mutex
	watch     map[uint16]bool // server ports of interest
	payload   map[uint16]int  // client-to-server payload bytes, by server port, each sequence number once
	resent    map[uint16]int  // payload bytes of segments whose sequence number was seen before
	seqs      map[uint16]map[uint32]bool
	frames    map[uint16]int // frames to or from a watched port
	others    []string       // frames not to or from a watched port
	truncated int            // frames with CaptureLength < Length
	maxFrame  int
}

func newTally(ports ...uint16) *tally {
	tl := &tally{watch: map[uint16]bool{}, payload: map[uint16]int{}, frames: map[uint16]int{},
		resent: map[uint16]int{}, seqs: map[uint16]map[uint32]bool{}}
	for _, p := range ports {
		tl.watch[p] = true
	}
	return tl
}

func (tl *tally) add(data []byte, ci gopacket.CaptureInfo) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if ci.CaptureLength < ci.Length {
		tl.truncated++
	}
	tl.maxFrame = max(tl.maxFrame, ci.Length)
	pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy)
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		tl.others = append(tl.others, pkt.String())
		return
	}
	src, dst := uint16(tcp.SrcPort), uint16(tcp.DstPort)
	switch {
	case tl.watch[dst]:
		tl.frames[dst]++
		if len(tcp.Payload) == 0 {
			break
		}
		// A busy machine retransmits now and then, even on loopback: a segment
		// seen again is counted apart, so that payload is what was sent once.
		if tl.seqs[dst] == nil {
			tl.seqs[dst] = map[uint32]bool{}
		}
		if tl.seqs[dst][tcp.Seq] {
			tl.resent[dst] += len(tcp.Payload)
			break
		}
		tl.seqs[dst][tcp.Seq] = true
		tl.payload[dst] += len(tcp.Payload)
	case tl.watch[src]:
		tl.frames[src]++
	default:
		tl.others = append(tl.others, fmt.Sprintf("TCP %d -> %d", src, dst))
	}
}

// checkResent fails the test when the segments to port seen twice amount to a
// quarter of what was sent: retransmissions are rare, while loopback's outgoing
// copy of every frame, which the capture must drop, would double it all.
func checkResent(t *testing.T, tl *tally, port uint16, sent int) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if r := tl.resent[port]; r*4 >= sent {
		t.Errorf("%d payload bytes to port %d seen twice (of %d sent): the outgoing copies are not dropped", r, port, sent)
	} else if r > 0 {
		t.Logf("%d payload bytes to port %d retransmitted", r, port)
	}
}

func (tl *tally) bytesTo(port uint16) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.payload[port]
}

// server accepts connections and discards what they send.
type server struct {
	ln   net.Listener
	port uint16
	wg   sync.WaitGroup
}

func newServer(t *testing.T, network, addr string) *server {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// send writes n bytes to the server in 64 KiB writes, which loopback
// turns into GSO frames of up to 64 KiB, and closes the connection.
func (s *server) send(t *testing.T, n int, fill byte) {
	t.Helper()
	c, err := net.Dial(s.ln.Addr().Network(), s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := bytes.Repeat([]byte{fill}, 64<<10)
	for n > 0 {
		k := min(n, len(buf))
		if _, err := c.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// capture opens lo with filter, runs traffic, waits until done(tally)
// reports true (or 10 s pass), lingers to catch late duplicates or leaks,
// then closes and returns the tally and the handle's stats.
func capture(t *testing.T, filter string, watch []uint16, traffic func(), done func(*tally) bool) (*tally, Stats) {
	t.Helper()
	h, err := Open(context.Background(), "lo", filter, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("LinkType = %v", h.LinkType())
	}
	tl := newTally(watch...)
	readErr := make(chan error, 1)
	go func() {
		for {
			data, ci, err := h.ReadPacket()
			if err != nil {
				readErr <- err
				return
			}
			tl.add(data, ci)
		}
	}()
	traffic()
	deadline := time.Now().Add(10 * time.Second)
	for !done(tl) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-readErr; err != io.EOF {
		t.Fatalf("ReadPacket after Close: %v, want io.EOF", err)
	}
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return tl, st
}

// TestLiveLoopbackFilter captures TCP traffic to two loopback ports: with
// "tcp port A" only A's frames arrive, and without a filter both do; in
// both cases every payload byte sent is seen exactly once (loopback's
// outgoing copies are dropped) and no frame is truncated.
func TestLiveLoopbackFilter(t *testing.T) {
	requireLive(t)
	const sent = 300 << 10
	a := newServer(t, "tcp4", "127.0.0.1:0")
	b := newServer(t, "tcp4", "127.0.0.1:0")
	traffic := func() {
		a.send(t, sent, 'A')
		b.send(t, sent, 'B')
	}

	t.Run("filtered", func(t *testing.T) {
		filter := fmt.Sprintf("tcp port %d", a.port)
		tl, st := capture(t, filter, []uint16{a.port, b.port}, traffic, func(tl *tally) bool {
			return tl.bytesTo(a.port) >= sent
		})
		if got := tl.payload[a.port]; got != sent {
			t.Errorf("%q: saw %d payload bytes to port %d, sent %d", filter, got, a.port, sent)
		}
		checkResent(t, tl, a.port, sent)
		if tl.frames[b.port] != 0 {
			t.Errorf("%q: %d frames of port %d passed the filter", filter, tl.frames[b.port], b.port)
		}
		if len(tl.others) > 0 {
			t.Errorf("%q: %d frames not of port %d passed the filter, first: %s", filter, len(tl.others), a.port, tl.others[0])
		}
		if tl.truncated > 0 {
			t.Errorf("%d frames truncated (largest %d bytes)", tl.truncated, tl.maxFrame)
		}
		if want := uint64(tl.frames[a.port]); st.Received != want || st.Dropped != 0 {
			t.Errorf("Stats = %+v, want %d received, 0 dropped", st, want)
		}
		t.Logf("%q: %d frames, %d payload bytes, largest frame %d bytes, stats %+v", filter, tl.frames[a.port], tl.payload[a.port], tl.maxFrame, st)
	})

	t.Run("unfiltered", func(t *testing.T) {
		tl, st := capture(t, "", []uint16{a.port, b.port}, traffic, func(tl *tally) bool {
			return tl.bytesTo(a.port) >= sent && tl.bytesTo(b.port) >= sent
		})
		for _, p := range []uint16{a.port, b.port} {
			if got := tl.payload[p]; got != sent {
				t.Errorf("saw %d payload bytes to port %d, sent %d", got, p, sent)
			}
			checkResent(t, tl, p, sent)
		}
		if tl.truncated > 0 {
			t.Errorf("%d frames truncated (largest %d bytes)", tl.truncated, tl.maxFrame)
		}
		if st.Received < uint64(tl.frames[a.port]+tl.frames[b.port]) {
			t.Errorf("Stats = %+v, fewer than the %d frames read", st, tl.frames[a.port]+tl.frames[b.port])
		}
		t.Logf("no filter: %d+%d frames, largest frame %d bytes, %d other frames, stats %+v", tl.frames[a.port], tl.frames[b.port], tl.maxFrame, len(tl.others), st)
	})

	t.Run("ipv6", func(t *testing.T) {
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		ln.Close()
		c := newServer(t, "tcp6", "[::1]:0")
		filter := fmt.Sprintf("ip6 and tcp dst port %d", c.port)
		tl, _ := capture(t, filter, []uint16{a.port, b.port, c.port}, func() {
			c.send(t, sent, 'C')
			a.send(t, sent, 'A')
		}, func(tl *tally) bool { return tl.bytesTo(c.port) >= sent })
		if got := tl.payload[c.port]; got != sent {
			t.Errorf("%q: saw %d payload bytes to port %d, sent %d", filter, got, c.port, sent)
		}
		checkResent(t, tl, c.port, sent)
		if tl.frames[a.port]+tl.frames[b.port] != 0 || len(tl.others) != 0 {
			t.Errorf("%q: other frames passed: port %d: %d, others: %d", filter, a.port, tl.frames[a.port], len(tl.others))
		}
	})
}

// TestLiveCloseUnblocks checks that Close, or cancelling the context, wakes
// a ReadPacket blocked on a filter that matches nothing, which then
// returns io.EOF, and that no goroutine is left behind.
func TestLiveCloseUnblocks(t *testing.T) {
	requireLive(t)
	for _, how := range []string{"Close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h, err := Open(ctx, "lo", "ip and ip6", 0) // never true
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, _, err := h.ReadPacket()
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("ReadPacket returned early: %v", err)
			case <-time.After(300 * time.Millisecond):
			}
			start := time.Now()
			if how == "Close" {
				if err := h.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				cancel()
			}
			select {
			case err := <-done:
				if err != io.EOF {
					t.Fatalf("ReadPacket = %v, want io.EOF", err)
				}
				t.Logf("ReadPacket returned %v after %v", err, time.Since(start))
			case <-time.After(time.Second):
				t.Fatal("ReadPacket still blocked 1 s after " + how)
			}
			if _, _, err := h.ReadPacket(); err != io.EOF {
				t.Fatalf("ReadPacket after %s = %v, want io.EOF", how, err)
			}
			if err := h.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// TestLivePermission re-runs the test binary as nobody (uid 65534, no
// capabilities) from a directory outside /root, and checks that Open's
// error names CAP_NET_RAW and matches ErrPermission.
func TestLivePermission(t *testing.T) {
	requireLive(t)
	setpriv := wstest.Command(t, "setpriv", "util-linux")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a private go-build directory: copy it where
	// nobody can run it.
	dir, err := os.MkdirTemp("/tmp", "wstap-capture-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "capture.test")
	src, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=open-lo")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	s := string(out)
	t.Logf("unprivileged Open: %s", strings.TrimSpace(s))
	for _, want := range []string{"CAP_NET_RAW", "setcap cap_net_raw+ep", "IS_PERMISSION: true", "IS_FS_PERMISSION: true"} {
		if !strings.Contains(s, want) {
			t.Errorf("unprivileged Open's output lacks %q:\n%s", want, s)
		}
	}
}

// TestOpenErrors needs no privilege: the interface and the filter are
// checked before the socket is opened.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, "nosuchif0", "", 0); err == nil || !strings.Contains(err.Error(), "nosuchif0") {
		t.Errorf("Open(nosuchif0) = %v", err)
	}
	if _, err := Open(ctx, "lo", "port banana", 0); err == nil || !strings.Contains(err.Error(), "capture filter") {
		t.Errorf("Open with a bad filter = %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Open(cancelled, "lo", "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context = %v", err)
	}
}

// TestReceiveBuffer checks that Open enlarged the socket's receive buffer,
// as the kernel reports it for the socket that ReadPacket reads.
func TestReceiveBuffer(t *testing.T) {
	requireLive(t)
	h, err := Open(context.Background(), "lo", "ip and ip6", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var got int
	var gerr error
	if err := h.rc.Control(func(fd uintptr) {
		got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	want := 2 * SocketBuffer // the kernel reports twice what was set
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		var rmemMax int
		if _, err := fmt.Sscan(string(b), &rmemMax); err == nil {
			want = min(want, 2*rmemMax) // without CAP_NET_ADMIN
		}
	}
	if got < want || h.bufSize != got {
		t.Fatalf("receive buffer = %d bytes (Open saw %d), want >= %d", got, h.bufSize, want)
	}
	t.Logf("receive buffer %d bytes", got)
}

// TestLiveNoFrameBeforeFilter opens captures while loopback is busy with
// other traffic: the frames the socket queued before its filter was
// attached must not be read (Open discards them).
func TestLiveNoFrameBeforeFilter(t *testing.T) {
	requireLive(t)
	a := newServer(t, "tcp4", "127.0.0.1:0")
	b := newServer(t, "tcp4", "127.0.0.1:0")

	// Background traffic to b, bounded in time.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		c, err := net.Dial("tcp", b.ln.Addr().String())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 16<<10)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Write(buf); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	defer func() {
		close(stop)
		bg.Wait()
	}()

	for i := 0; i < 20; i++ {
		h, err := Open(context.Background(), "lo", fmt.Sprintf("tcp port %d", a.port), 0)
		if err != nil {
			t.Fatal(err)
		}
		a.send(t, 10, 'A')
		// Read until the 10 bytes to a have been seen: every frame must be a's.
		tl := newTally(a.port, b.port)
		for tl.bytesTo(a.port) < 10 {
			data, ci, err := h.ReadPacket()
			if err != nil {
				t.Fatal(err)
			}
			tl.add(data, ci)
			if tl.frames[b.port] > 0 || len(tl.others) > 0 {
				t.Fatalf("open %d: a frame not of port %d was read (port %d: %d frames, others: %v)", i, a.port, b.port, tl.frames[b.port], tl.others)
			}
		}
		h.Close()
	}
}

// udpPair is a UDP listener on loopback that nobody reads, and a socket
// connected to it.
type udpPair struct {
	rx, tx *net.UDPConn
	port   uint16
}

func newUDPPair(t *testing.T) *udpPair {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	return &udpPair{rx: rx, tx: tx, port: uint16(rx.LocalAddr().(*net.UDPAddr).Port)}
}

// udpHeaderLen is the length of the Ethernet, IPv4 (without options) and
// UDP headers in front of a loopback datagram's payload.
const udpHeaderLen = 14 + 20 + 8

// udpDstPort returns the UDP destination port of an untagged Ethernet
// frame carrying IPv4 without options, or 0.
func udpDstPort(data []byte) uint16 {
	if len(data) < udpHeaderLen || data[12] != 0x08 || data[13] != 0x00 || data[14] != 0x45 || data[23] != 17 {
		return 0
	}
	return uint16(data[36])<<8 | uint16(data[37])
}

// readUntil reads frames from h until match accepts one and returns it,
// failing the test if that takes longer than timeout (then h is closed).
func readUntil(t *testing.T, h *Handle, timeout time.Duration, match func([]byte, gopacket.CaptureInfo) bool) ([]byte, gopacket.CaptureInfo) {
	t.Helper()
	timer := time.AfterFunc(timeout, func() { h.Close() })
	defer timer.Stop()
	for {
		data, ci, err := h.ReadPacket()
		if err != nil {
			t.Fatalf("ReadPacket: %v (after %v: timed out?)", err, timeout)
		}
		if match(data, ci) {
			return data, ci
		}
	}
}

// TestLiveFramesMatchSent sends UDP datagrams of sizes from 0 bytes to the
// largest loopback carries, and checks that each is read once, in order,
// whole and byte for byte, from the loopback interface, stamped by the
// kernel as it was sent (not as it was read, 100 ms later).
func TestLiveFramesMatchSent(t *testing.T) {
	requireLive(t)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	u := newUDPPair(t)
	h, err := Open(context.Background(), "lo", fmt.Sprintf("udp dst port %d", u.port), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// The first socket asking for timestamps turns on the kernel's
	// stamping of arriving frames from a work queue, a moment later; a
	// frame that arrives before is stamped as it is read.
	time.Sleep(50 * time.Millisecond)

	sizes := []int{0, 1, 100, 1472, 9000, 65507}
	type sent struct {
		payload       []byte
		before, after time.Time
	}
	var all []sent
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i*31 + j)
		}
		before := time.Now()
		if _, err := u.tx.Write(p); err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{p, before, time.Now()})
	}
	time.Sleep(100 * time.Millisecond)

	for i, s := range all {
		data, ci := readUntil(t, h, 5*time.Second, func([]byte, gopacket.CaptureInfo) bool { return true })
		if want := udpHeaderLen + len(s.payload); len(data) != want || ci.CaptureLength != want || ci.Length != want {
			t.Fatalf("datagram %d: %d bytes, CaptureLength %d, Length %d, want %d", i, len(data), ci.CaptureLength, ci.Length, want)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil || !ip.SrcIP.IsLoopback() || !ip.DstIP.IsLoopback() || uint16(udp.DstPort) != u.port {
			t.Fatalf("datagram %d: not a UDP datagram to 127.0.0.1:%d: %v", i, u.port, pkt)
		}
		if !bytes.Equal(udp.Payload, s.payload) {
			t.Fatalf("datagram %d: payload of %d bytes differs from the %d sent", i, len(udp.Payload), len(s.payload))
		}
		if ci.InterfaceIndex != lo.Index {
			t.Errorf("datagram %d: InterfaceIndex %d, want %d", i, ci.InterfaceIndex, lo.Index)
		}
		// The kernel stamps a loopback frame during the write, or in the
		// softirq right after it (net.core.netdev_tstamp_prequeue=0):
		// allow that 20 ms, well short of the 100 ms before the read.
		if ci.Timestamp.Before(s.before) || ci.Timestamp.After(s.after.Add(20*time.Millisecond)) {
			t.Errorf("datagram %d: Timestamp %v is not within the write, %v to %v", i,
				ci.Timestamp.Format(time.StampNano), s.before.Format(time.StampNano), s.after.Format(time.StampNano))
		}
		if ci.AncillaryData != nil {
			t.Errorf("datagram %d: AncillaryData %v on an untagged frame", i, ci.AncillaryData)
		}
	}
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != uint64(len(sizes)) || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want %d received, 0 dropped", st, len(sizes))
	}
}

// TestLiveSnaplen captures with a snaplen of 100 bytes and checks that a
// 1000-byte datagram is read truncated, with its length on the wire in
// ci.Length: both when the filter program truncates the frame (always, on
// loopback) and when the read does (an interface without a filter).
func TestLiveSnaplen(t *testing.T) {
	requireLive(t)
	const snaplen = 100
	u := newUDPPair(t)
	payload := make([]byte, 1000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	check := func(t *testing.T, h *Handle) {
		t.Helper()
		if _, err := u.tx.Write(payload); err != nil {
			t.Fatal(err)
		}
		data, ci := readUntil(t, h, 5*time.Second, func(data []byte, _ gopacket.CaptureInfo) bool {
			return udpDstPort(data) == u.port
		})
		want := udpHeaderLen + len(payload)
		if len(data) != snaplen || ci.CaptureLength != snaplen || ci.Length != want {
			t.Fatalf("%d bytes, CaptureLength %d, Length %d, want %d, %d, %d", len(data), ci.CaptureLength, ci.Length, snaplen, snaplen, want)
		}
		if ipLen := int(data[16])<<8 | int(data[17]); ipLen != want-14 {
			t.Errorf("IPv4 total length %d, want %d", ipLen, want-14)
		}
		if !bytes.Equal(data[udpHeaderLen:], payload[:snaplen-udpHeaderLen]) {
			t.Errorf("the captured part of the payload differs from what was sent")
		}
	}

	t.Run("filter", func(t *testing.T) {
		h, err := Open(context.Background(), "lo", fmt.Sprintf("udp dst port %d", u.port), snaplen)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		check(t, h)
	})
	t.Run("no filter program", func(t *testing.T) {
		// As Open does on an Ethernet interface given no filter. On
		// loopback, this sees every frame twice and other tests' too.
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		h, err := openSocket(lo, "", nil, snaplen, false)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		check(t, h)
	})
}

// TestLiveStatsDrops sends UDP datagrams faster than an idle reader takes
// them: the socket's buffer fills, and Stats must count the frames that
// passed the filter and those dropped, and exactly Received - Dropped
// frames must then be readable.
func TestLiveStatsDrops(t *testing.T) {
	requireLive(t)
	const sent = 2000
	u := newUDPPair(t)
	h, err := Open(context.Background(), "lo", fmt.Sprintf("udp dst port %d", u.port), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	payload := make([]byte, 60000)
	for range sent {
		if _, err := u.tx.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // loopback's backlog drains
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d datagrams of %d bytes: Stats %+v", sent, len(payload), st)
	if st.Received > sent || st.Dropped == 0 || st.Dropped >= st.Received {
		t.Fatalf("Stats = %+v, want at most %d received, some but not all dropped", st, sent)
	}
	queued := int(st.Received - st.Dropped)
	for i := range queued {
		data, _ := readUntil(t, h, 5*time.Second, func([]byte, gopacket.CaptureInfo) bool { return true })
		if udpDstPort(data) != u.port || len(data) != udpHeaderLen+len(payload) {
			t.Fatalf("frame %d of %d: %d bytes, UDP port %d", i, queued, len(data), udpDstPort(data))
		}
	}
	// Nothing more is queued: the next read blocks until Close.
	done := make(chan error, 1)
	go func() {
		_, _, err := h.ReadPacket()
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read beyond the %d queued frames: %v", queued, err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != io.EOF {
		t.Fatalf("ReadPacket after Close = %v, want io.EOF", err)
	}
	if st2, _ := h.Stats(); st2 != st {
		t.Errorf("Stats after Close = %+v, want %+v: nothing arrived since", st2, st)
	}
}

// TestLiveCloseWhileBusy closes handles while a reader takes frames, Stats
// is polled and traffic flows, many times: the reader must end with
// io.EOF soon after Close, and no goroutine nor file descriptor may be
// left (the race detector checks the rest).
func TestLiveCloseWhileBusy(t *testing.T) {
	requireLive(t)
	defer goleak.VerifyNone(t)
	u := newUDPPair(t)
	stopTraffic := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Add(1)
	go func() {
		defer traffic.Done()
		p := make([]byte, 1000)
		for {
			select {
			case <-stopTraffic:
				return
			default:
			}
			if _, err := u.tx.Write(p); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	defer func() {
		close(stopTraffic)
		traffic.Wait()
	}()

	fdsBefore := openFDs(t)
	var slowest time.Duration
	var frames int
	for i := range 20 {
		h, err := Open(context.Background(), "lo", fmt.Sprintf("udp dst port %d", u.port), 0)
		if err != nil {
			t.Fatal(err)
		}
		readDone := make(chan error, 1)
		var n int
		go func() {
			for {
				if _, _, err := h.ZeroCopyReadPacketData(); err != nil {
					readDone <- err
					return
				}
				n++
			}
		}()
		statsDone := make(chan struct{})
		stopStats := make(chan struct{})
		go func() {
			defer close(statsDone)
			for {
				select {
				case <-stopStats:
					return
				default:
				}
				if _, err := h.Stats(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		time.Sleep(time.Duration(2+i) * time.Millisecond)
		start := time.Now()
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-readDone:
			if err != io.EOF {
				t.Fatalf("round %d: ReadPacket = %v, want io.EOF", i, err)
			}
		case <-time.After(time.Second):
			t.Fatalf("round %d: ReadPacket still running 1 s after Close", i)
		}
		slowest = max(slowest, time.Since(start))
		frames += n
		close(stopStats)
		<-statsDone
	}
	if frames == 0 {
		t.Error("no frame was read in 20 rounds")
	}
	if fds := openFDs(t); fds != fdsBefore {
		t.Errorf("%d file descriptors open after 20 rounds, %d before", fds, fdsBefore)
	}
	t.Logf("20 rounds, %d frames read; the slowest read returned %v after Close", frames, slowest)
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestLiveZeroCopyAllocs checks that ZeroCopyReadPacketData does not
// allocate.
func TestLiveZeroCopyAllocs(t *testing.T) {
	requireLive(t)
	const runs = 50
	u := newUDPPair(t)
	h, err := Open(context.Background(), "lo", fmt.Sprintf("udp dst port %d", u.port), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for range runs + 1 { // AllocsPerRun reads once more, to warm up
		if _, err := u.tx.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var readErr error
	allocs := testing.AllocsPerRun(runs, func() {
		if _, _, err := h.ZeroCopyReadPacketData(); err != nil && readErr == nil {
			readErr = err
		}
	})
	if readErr != nil {
		t.Fatal(readErr)
	}
	if allocs != 0 {
		t.Errorf("ZeroCopyReadPacketData: %v allocations per read, want 0", allocs)
	}
}
