package sniff

import (
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The connection table under a flood of tiny connections (issue #24): each one a
// handshake and a few bytes that are not HTTP, never closed, or half closed.

// tinyConns generates, packet by packet and without keeping them, the raw IPv4
// packets of n tiny TCP connections, 10 µs apart: SYN, SYN-ACK, then a few bytes
// of non-HTTP data from the client, and a FIN from the client for every other
// connection.
type tinyConns struct {
	n, i, step int
	buf        [64]byte
	t          time.Time
}

func newTinyConns(n int) *tinyConns {
	return &tinyConns{n: n, t: time.Unix(1_800_000_000, 0)}
}

// packetsPer is how many packets a connection has: SYN, SYN-ACK, data, FIN.
const packetsPer = 4

// tcpPacket writes an IPv4 packet carrying a TCP segment into b and returns it.
func tcpPacket(b []byte, src, dst [4]byte, sport, dport uint16, seq, ack uint32, flags byte, payload []byte) []byte {
	n := 40 + len(payload)
	b = b[:n]
	clear(b[:40])
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	b[8], b[9] = 64, 6 // TTL, TCP
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = 5 << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(b[40:], payload)
	return b
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpACK = 0x10
)

func (g *tinyConns) ReadPacket() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	for {
		if g.i >= g.n {
			return nil, gopacket.CaptureInfo{}, 0, io.EOF
		}
		i, step := g.i, g.step
		if g.step++; g.step == packetsPer {
			g.i, g.step = g.i+1, 0
		}
		client := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		server := [4]byte{192, 168, 0, 1}
		cport, sport := uint16(1024+i%50000), uint16(7000)
		const cisn, sisn = 1000, 5000
		var p []byte
		switch step {
		case 0:
			p = tcpPacket(g.buf[:], client, server, cport, sport, cisn, 0, tcpSYN, nil)
		case 1:
			p = tcpPacket(g.buf[:], server, client, sport, cport, sisn, cisn+1, tcpSYN|tcpACK, nil)
		case 2:
			p = tcpPacket(g.buf[:], client, server, cport, sport, cisn+1, sisn+1, tcpACK, []byte("\x00\x01zz"))
		case 3:
			if i%2 == 1 {
				continue
			}
			p = tcpPacket(g.buf[:], client, server, cport, sport, cisn+5, sisn+1, tcpACK|tcpFIN, nil)
		}
		g.t = g.t.Add(10 * time.Microsecond)
		return p, gopacket.CaptureInfo{Timestamp: g.t, CaptureLength: len(p), Length: len(p)}, layers.LinkTypeIPv4, nil
	}
}

func (g *tinyConns) Close() error { return nil }

// heapAlloc returns the bytes of live heap objects after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestConnTableMemory fills the connection table with 300,000 tiny connections
// (more than DefaultMaxConns): the table must stay under the 100 MB the sniff
// benchmark holds wstap to.
func TestConnTableMemory(t *testing.T) {
	const conns = 300_000
	before := heapAlloc()
	s := New(Config{})
	g := newTinyConns(conns)
	ctx := context.Background()
	var ms runtime.MemStats
	var peak uint64 // heap in use, sampled
	for i := 0; ; i++ {
		data, ci, lt, err := g.ReadPacket()
		if err != nil {
			break
		}
		s.Packet(ctx, data, ci, lt)
		if i%8192 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	used := heapAlloc() - before
	n := s.nconns
	t.Logf("%d connections followed, %d in the table: %d bytes of live heap, %d bytes per connection; heap in use peaked at %d MB",
		s.Stats().TCPConns, n, used, used/uint64(max(n, 1)), peak/1e6)
	if n != DefaultMaxConns {
		t.Errorf("%d connections in the table, want the cap %d", n, DefaultMaxConns)
	}
	if used > 100e6 {
		t.Errorf("the connection table holds %d MB, want under 100 MB", used/1e6)
	}
	runtime.KeepAlive(s)
}
