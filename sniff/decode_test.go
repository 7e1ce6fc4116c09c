package sniff

import (
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// TestFragmentsBounded: fragments of datagrams that never complete are held only
// until the reorder timeout, and never more than maxFragBytes of them.
func TestFragmentsBounded(t *testing.T) {
	var f fragments
	t0 := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	frag := func(id uint16, off int, more bool, n int) *layers.IPv4 {
		ip := &layers.IPv4{Version: 4, IHL: 5, Protocol: layers.IPProtocolTCP, Id: id, FragOffset: uint16(off / 8),
			SrcIP: net.IPv4(10, 0, 0, 1).To4(), DstIP: net.IPv4(10, 0, 0, 2).To4(), Length: uint16(20 + n)}
		if more {
			ip.Flags = layers.IPv4MoreFragments
		}
		ip.Payload = make([]byte, n)
		return ip
	}
	// A datagram in three fragments, its middle one late: whole once it comes.
	if f.defrag(frag(1, 0, true, 800), t0) != nil || f.defrag(frag(1, 1600, false, 100), t0) != nil {
		t.Fatal("a datagram came out before its fragments")
	}
	if f.held != 900 || len(f.pending) != 1 {
		t.Fatalf("held %d bytes in %d datagrams, want 900 in 1", f.held, len(f.pending))
	}
	if whole := f.defrag(frag(1, 800, true, 800), t0); whole == nil || len(whole.Payload) != 1700 {
		t.Fatalf("reassembled %v, want 1700 bytes", whole)
	}
	if f.held != 0 || len(f.pending) != 0 {
		t.Fatalf("after reassembly: %d bytes held in %d datagrams", f.held, len(f.pending))
	}
	// One that never completes: dropped by discard after its last fragment.
	f.defrag(frag(2, 0, true, 800), t0)
	f.discard(t0)
	if f.held != 800 {
		t.Fatalf("discarded too early: %d bytes held", f.held)
	}
	f.discard(t0.Add(time.Second))
	if f.held != 0 || len(f.pending) != 0 {
		t.Fatalf("after discard: %d bytes held in %d datagrams", f.held, len(f.pending))
	}
	// Many that never complete: never more than maxFragBytes held.
	for id := range 1000 {
		f.defrag(frag(uint16(id), 0, true, 60000), t0)
		if f.held > maxFragBytes {
			t.Fatalf("%d bytes held, more than %d", f.held, maxFragBytes)
		}
	}
}
