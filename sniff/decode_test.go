package sniff

import (
	"bytes"
	"fmt"
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
	if f.defrag4(frag(1, 0, true, 800), t0) != nil || f.defrag4(frag(1, 1600, false, 100), t0) != nil {
		t.Fatal("a datagram came out before its fragments")
	}
	if f.held != 900 || len(f.pending) != 1 {
		t.Fatalf("held %d bytes in %d datagrams, want 900 in 1", f.held, len(f.pending))
	}
	if whole := f.defrag4(frag(1, 800, true, 800), t0); whole == nil || len(whole.Payload) != 1700 {
		t.Fatalf("reassembled %v, want 1700 bytes", whole)
	}
	if f.held != 0 || len(f.pending) != 0 {
		t.Fatalf("after reassembly: %d bytes held in %d datagrams", f.held, len(f.pending))
	}
	// One that never completes: dropped by discard after its last fragment.
	f.defrag4(frag(2, 0, true, 800), t0)
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
		f.defrag4(frag(uint16(id), 0, true, 60000), t0)
		if f.held > maxFragBytes {
			t.Fatalf("%d bytes held, more than %d", f.held, maxFragBytes)
		}
	}
}

// TestFragments6: IPv6 fragments are reassembled in any order; a packet whose
// fragments stop coming is dropped from ip6defrag too after the reorder timeout,
// so that a later packet with its identification is not mixed with it.
func TestFragments6(t *testing.T) {
	var f fragments
	t0 := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	src, dst := net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolIPv6Fragment, HopLimit: 64, SrcIP: src, DstIP: dst}
	frag := func(id uint32, off int, more bool, fill byte, n int) *layers.IPv6Fragment {
		fg := &layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, FragmentOffset: uint16(off / 8), MoreFragments: more, Identification: id}
		fg.Payload = bytes.Repeat([]byte{fill}, n)
		return fg
	}
	// Last fragment first, then the first: whole, with the first's next header.
	if f.defrag6(ip, frag(1, 800, false, 'b', 100), t0) != nil {
		t.Fatal("a packet came out before its fragments")
	}
	if f.held != 100 || len(f.pending) != 1 {
		t.Fatalf("held %d bytes in %d packets, want 100 in 1", f.held, len(f.pending))
	}
	whole := f.defrag6(ip, frag(1, 0, true, 'a', 800), t0)
	if want := append(bytes.Repeat([]byte{'a'}, 800), bytes.Repeat([]byte{'b'}, 100)...); whole == nil ||
		whole.NextHeader != layers.IPProtocolTCP || !bytes.Equal(whole.Payload, want) || !whole.SrcIP.Equal(src) {
		t.Fatalf("reassembled %s", summary(whole))
	}
	if f.held != 0 || len(f.pending) != 0 {
		t.Fatalf("after reassembly: %d bytes held in %d packets", f.held, len(f.pending))
	}
	// A packet that never completes is discarded after its last fragment…
	f.defrag6(ip, frag(2, 0, true, 'x', 800), t0)
	f.discard(t0)
	if f.held != 800 {
		t.Fatalf("discarded too early: %d bytes held", f.held)
	}
	f.discard(t0.Add(time.Second))
	if f.held != 0 || len(f.pending) != 0 {
		t.Fatalf("after discard: %d bytes held in %d packets", f.held, len(f.pending))
	}
	// …and forgotten by ip6defrag: a new packet with its identification comes
	// out with its own bytes, not the stale fragment's.
	f.defrag6(ip, frag(2, 0, true, 'c', 800), t0.Add(2*time.Second))
	whole = f.defrag6(ip, frag(2, 800, false, 'd', 8), t0.Add(2*time.Second))
	if whole == nil || len(whole.Payload) != 808 || whole.Payload[0] != 'c' {
		t.Fatalf("after a stale packet with the same identification: %s", summary(whole))
	}
	// Many that never complete: never more than maxFragBytes held.
	for id := range 1000 {
		f.defrag6(ip, frag(uint32(id), 0, true, 'e', 60000), t0)
		if f.held > maxFragBytes {
			t.Fatalf("%d bytes held, more than %d", f.held, maxFragBytes)
		}
	}
}

// summary describes a reassembled packet for a failure message.
func summary(ip *layers.IPv6) string {
	if ip == nil {
		return "nothing"
	}
	head := ip.Payload[:min(len(ip.Payload), 4)]
	return fmt.Sprintf("%d bytes (%q…) from %v, next header %v", len(ip.Payload), head, ip.SrcIP, ip.NextHeader)
}
