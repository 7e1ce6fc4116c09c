package sniff

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// checker is an observer that checks what it is told.
type checker struct {
	t     *testing.T
	conns map[string]bool
}

func (k *checker) Opened(c *plugins.Conn, _ time.Time) {
	if k.conns[c.ID] || c.Mode != plugins.Sniff {
		k.t.Fatalf("open %s twice, or mode %v", c.ID, c.Mode)
	}
	k.conns[c.ID] = true
}

func (k *checker) Message(r *plugins.Record) {
	if !k.conns[r.Conn.ID] {
		k.t.Fatalf("message on %s before its open", r.Conn.ID)
	}
	if !r.Truncated && int64(len(r.Payload)) != r.Len {
		k.t.Fatalf("payload of %d bytes, Len %d", len(r.Payload), r.Len)
	}
}

func (k *checker) Closed(c *plugins.Conn, _ plugins.CloseEvent) {
	if !k.conns[c.ID] {
		k.t.Fatalf("close of %s, never opened", c.ID)
	}
	delete(k.conns, c.ID)
}

func (k *checker) Refused(*plugins.Conn, time.Time)                                  {}
func (k *checker) Gap(*plugins.Conn, plugins.Direction, time.Time, int64, bool)      {}
func (k *checker) Resync(*plugins.Conn, plugins.Direction, time.Time, int64)         {}
func (k *checker) Undecodable(*plugins.Record, string)                               {}
func (k *checker) StreamError(*plugins.Conn, plugins.Direction, time.Time, error)    {}
func (k *checker) Controls(*plugins.Conn, plugins.Direction, plugins.ControlSummary) {}

// Small limits, so that the fuzzer reaches them.
const (
	fuzzMaxMessage  = 1 << 16
	fuzzMaxBuffered = 1 << 14
)

// FuzzStream feeds random bytes as the two directions of a TCP connection, cut
// into segments of random sizes, some of them lost, into the HTTP detection and
// the WebSocket decoding (as an ordinary connection, and on a --ws-port). Nothing
// may panic, and what the sniffer holds stays within its limits.
func FuzzStream(f *testing.F) {
	hs := []byte(upgradeRequest)
	resp := []byte(upgradeResponse)
	frames := func(masked bool) []byte {
		var b bytes.Buffer
		w := wsframe.NewWriter(&b, wsframe.Server, 0)
		h := wsframe.Header{Fin: true, Opcode: wsframe.OpText, Masked: masked, Mask: [4]byte{1, 2, 3, 4}}
		w.WriteFrame(h, []byte("hello"))
		h.Opcode, h.Fin = wsframe.OpBinary, false
		w.WriteFrame(h, []byte{0, 1, 2})
		h.Opcode, h.Fin = wsframe.OpPing, true
		w.WriteFrame(h, []byte("p"))
		h.Opcode = wsframe.OpContinuation
		w.WriteFrame(h, []byte{3})
		h.Opcode = wsframe.OpClose
		w.WriteFrame(h, []byte{0x03, 0xe8})
		w.Flush()
		return b.Bytes()
	}
	f.Add(append(hs, frames(true)...), append(resp, frames(false)...), uint64(0x0123456789), false)
	f.Add(frames(true), frames(false), uint64(7), true)
	f.Add([]byte(pipelinedRequests+upgradeRequest), []byte(pipelinedResponses+upgradeResponse), uint64(99), false)
	f.Add([]byte("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n"), []byte("HTTP/1.1 200 OK\r\n\r\n"), uint64(3), false)
	f.Fuzz(func(t *testing.T, client, server []byte, cuts uint64, wsPort bool) {
		rec := &checker{t: t, conns: map[string]bool{}}
		cfg := Config{Observers: []plugins.Observer{rec}, Limits: wsframe.Limits{MaxMessageSize: fuzzMaxMessage},
			MaxBuffered: fuzzMaxBuffered, MaxBufferedTotal: 2 * fuzzMaxBuffered}
		if wsPort {
			cfg.WSPorts = []uint16{9200}
		}
		s := New(cfg)
		ends := [2]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:9200")}
		streams := [2][]byte{client, server}
		offs := [2]int{}
		ctx := context.Background()
		send := func(i int, seg segment) {
			seg.src, seg.dst = ends[i], ends[1-i]
			s.now = s.now.Add(time.Millisecond)
			s.pktTime = s.now
			s.ctx = ctx
			s.tcp(&seg)
			s.ctx = nil
		}
		withSYN := cuts&1 == 0
		if withSYN {
			send(0, segment{seq: 999, syn: true})
			send(1, segment{seq: 4999, syn: true, ack: true})
		}
		isn := [2]uint32{1000, 5000}
		for n := 0; offs[0] < len(client) || offs[1] < len(server); n++ {
			cuts = cuts*6364136223846793005 + 1442695040888963407 // a deterministic walk from the input
			i := int(cuts>>33) & 1
			if offs[i] >= len(streams[i]) {
				i = 1 - i
			}
			size := 1 + int(cuts>>40)%700
			size = min(size, len(streams[i])-offs[i])
			seg := segment{seq: isn[i] + uint32(offs[i]), payload: bytes.Clone(streams[i][offs[i] : offs[i]+size]), ack: true}
			offs[i] += size
			if cuts>>60 == 0 && n > 0 {
				continue // lost
			}
			send(i, seg)
			checkBounds(t, s)
		}
		send(0, segment{seq: isn[0] + uint32(len(client)), fin: true, ack: true})
		send(1, segment{seq: isn[1] + uint32(len(server)), fin: true, ack: true})
		s.Flush(ctx)
		if len(rec.conns) != 0 {
			t.Fatalf("connections never closed: %v", rec.conns)
		}
	})
}

// checkBounds checks that a Sniffer holds no more than its limits allow.
func checkBounds(t *testing.T, s *Sniffer) {
	t.Helper()
	if s.buffered > s.cfg.MaxBufferedTotal {
		t.Fatalf("%d out-of-order bytes held, limit %d", s.buffered, s.cfg.MaxBufferedTotal)
	}
	for _, l := range []*connList{&s.wsConns, &s.others} {
		for c := l.head; c != nil; c = c.next {
			for i := range c.r {
				if n := c.r[i].pendingBytes(); n > s.cfg.MaxBuffered {
					t.Fatalf("%d out-of-order bytes in one direction, limit %d", n, s.cfg.MaxBuffered)
				}
				if c.f == nil {
					continue
				}
				if sd := &c.f.sides[i]; len(sd.buf) > maxHeaderBlock+1500 || sd.heldLen > maxHeld {
					t.Fatalf("HTTP buffers: %d header bytes, %d held", len(sd.buf), sd.heldLen)
				}
			}
		}
	}
}

// FuzzPcap reads random bytes as a capture file.
func FuzzPcap(f *testing.F) {
	for _, name := range []string{"ws-plain.pcap", "ws-deflate-gorilla.pcapng", "ws-deflate-ctx.pcap"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 6000)])
	}
	for _, v6 := range []bool{false, true} { // IP fragments
		file := filepath.Join(f.TempDir(), "fragmented.pcap")
		fragmentCapture(f, "testdata/ws-plain.pcap", file, 64, v6)
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 6000)])
	}
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1})
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := NewFileSource(bytes.NewReader(data))
		if err != nil {
			return
		}
		rec := &checker{t: t, conns: map[string]bool{}}
		s := New(Config{Observers: []plugins.Observer{rec}, WSPorts: []uint16{9101, 9102, 9103},
			Limits: wsframe.Limits{MaxMessageSize: fuzzMaxMessage}, MaxBuffered: fuzzMaxBuffered, MaxBufferedTotal: 2 * fuzzMaxBuffered})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Run(ctx, src) // errors are fine; panics are not
		if ctx.Err() != nil {
			t.Fatal("no end after 10 s")
		}
		checkBounds(t, s)
		if len(rec.conns) != 0 {
			t.Fatalf("connections never closed: %v", rec.conns)
		}
	})
}
