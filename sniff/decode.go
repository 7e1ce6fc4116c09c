package sniff

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/ip6defrag"
	"github.com/gopacket/gopacket/layers"
)

// segment is the part of a TCP packet the sniffer needs.
type segment struct {
	src, dst           netip.AddrPort
	seq                uint32
	ackNum             uint32 // the acknowledgment number, when ack
	syn, ack, fin, rst bool
	payload            []byte
	// missing is how many payload bytes the capture cut off (snap length): they
	// follow payload in the sequence space but their content is unknown.
	missing int
}

// packetDecoder decodes link, network and transport headers with gopacket's
// DecodingLayerParser, which decodes into preallocated layers (no allocation per
// packet), one parser per kind of first layer.
type packetDecoder struct {
	eth   layers.Ethernet
	dot1q layers.Dot1Q
	sll   layers.LinuxSLL
	sll2  layers.LinuxSLL2
	loop  layers.Loopback
	ip4   layers.IPv4
	ip6   layers.IPv6
	ext6  layers.IPv6ExtensionSkipper
	frag6 layers.IPv6Fragment
	tcp   layers.TCP

	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
	frags   fragments
}

func newPacketDecoder() *packetDecoder {
	d := &packetDecoder{parsers: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}, decoded: make([]gopacket.LayerType, 0, 8)}
	for _, first := range []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeLinuxSLL, layers.LayerTypeLinuxSLL2,
		layers.LayerTypeLoopback, layers.LayerTypeIPv4, layers.LayerTypeIPv6} {
		p := gopacket.NewDecodingLayerParser(first)
		p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
		for _, l := range []gopacket.DecodingLayer{&d.eth, &d.dot1q, &d.sll, &d.sll2, &d.loop, &d.ip4, &d.ip6, &d.ext6, &d.frag6, &d.tcp} {
			p.AddDecodingLayer(l)
		}
		p.IgnoreUnsupported = true
		d.parsers[first] = p
	}
	return d
}

// firstLayer returns the layer a packet of link type lt starts with, or
// LayerTypeZero for link types the sniffer does not read.
func firstLayer(lt layers.LinkType, data []byte) gopacket.LayerType {
	switch lt {
	case layers.LinkTypeEthernet:
		return layers.LayerTypeEthernet
	case layers.LinkTypeLinuxSLL:
		return layers.LayerTypeLinuxSLL
	case layers.LinkTypeLinuxSLL2:
		return layers.LayerTypeLinuxSLL2
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		return layers.LayerTypeLoopback
	case layers.LinkTypeIPv4:
		return layers.LayerTypeIPv4
	case layers.LinkTypeIPv6:
		return layers.LayerTypeIPv6
	case layers.LinkTypeRaw, 12, 14: // LINKTYPE_RAW, and the DLT_RAW values some systems write
		if len(data) > 0 {
			switch data[0] >> 4 {
			case 4:
				return layers.LayerTypeIPv4
			case 6:
				return layers.LayerTypeIPv6
			}
		}
	}
	return gopacket.LayerTypeZero
}

// decode fills seg from a packet; ok is false for anything but a TCP segment over
// IPv4 or IPv6. Fragmented datagrams are reassembled: the fragment that completes
// one yields its segment. IPv6 extension headers are skipped.
func (d *packetDecoder) decode(data []byte, ci *gopacket.CaptureInfo, lt layers.LinkType, seg *segment) (ok bool) {
	first := firstLayer(lt, data)
	p := d.parsers[first]
	if p == nil {
		return false
	}
	if err := p.DecodeLayers(data, &d.decoded); err != nil {
		return false
	}
	n := len(d.decoded)
	if n == 0 {
		return false
	}
	var network gopacket.LayerType
	fragment := true // the packet is a fragment of a TCP segment
	switch last := d.decoded[n-1]; last {
	case layers.LayerTypeTCP:
		fragment = false
		for i := n - 2; i >= 0 && network == gopacket.LayerTypeZero; i-- {
			if l := d.decoded[i]; l == layers.LayerTypeIPv4 || l == layers.LayerTypeIPv6 {
				network = l
			}
		}
	case layers.LayerTypeIPv4:
		// The parser stops at a fragment: what follows the header is a piece.
		if d.ip4.Protocol != layers.IPProtocolTCP || !fragmented(&d.ip4) {
			return false
		}
		network = last
	case layers.LayerTypeIPv6Fragment:
		// Not an atomic fragment (RFC 6946), which the parser decodes through.
		// Its piece starts with TCP, or with destination options before TCP.
		if nh := d.frag6.NextHeader; nh != layers.IPProtocolTCP && nh != layers.IPProtocolIPv6Destination {
			return false
		}
		network = layers.LayerTypeIPv6
	default:
		return false
	}
	if fragment && p.Truncated {
		return false // the snap length cut the piece: the datagram cannot be whole
	}
	switch network {
	case layers.LayerTypeIPv4:
		if len(d.ip4.SrcIP) != 4 {
			return false
		}
		if fragment {
			whole := d.frags.defrag4(&d.ip4, ci.Timestamp)
			if whole == nil || d.tcp.DecodeFromBytes(whole.Payload, gopacket.NilDecodeFeedback) != nil {
				return false
			}
		}
		seg.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(d.ip4.SrcIP)), uint16(d.tcp.SrcPort))
		seg.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(d.ip4.DstIP)), uint16(d.tcp.DstPort))
	case layers.LayerTypeIPv6:
		if len(d.ip6.SrcIP) != 16 {
			return false
		}
		if fragment {
			whole := d.frags.defrag6(&d.ip6, &d.frag6, ci.Timestamp)
			if whole == nil || !d.decodeTCP6(whole.NextHeader, whole.Payload) {
				return false
			}
		}
		seg.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d.ip6.SrcIP)).Unmap(), uint16(d.tcp.SrcPort))
		seg.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d.ip6.DstIP)).Unmap(), uint16(d.tcp.DstPort))
	default:
		return false
	}
	t := &d.tcp
	seg.seq, seg.ackNum, seg.syn, seg.ack, seg.fin, seg.rst = t.Seq, t.Ack, t.SYN, t.ACK, t.FIN, t.RST
	seg.payload = t.Payload
	seg.missing = 0
	if cut := ci.Length - ci.CaptureLength; cut > 0 && p.Truncated {
		// The snap length cut the packet: the tail of the payload is unknown. IPv4
		// says exactly how long it was; otherwise trust the capture header.
		seg.missing = cut
		if network == layers.LayerTypeIPv4 {
			declared := int(d.ip4.Length) - int(d.ip4.IHL)*4 - len(t.Contents) - len(t.Payload)
			seg.missing = max(0, min(cut, declared))
		}
	}
	return true
}

// decodeTCP6 decodes the TCP segment of a reassembled IPv6 packet's fragmentable
// part, skipping the extension headers before it.
func (d *packetDecoder) decodeTCP6(next layers.IPProtocol, data []byte) bool {
	for next != layers.IPProtocolTCP {
		if next == layers.IPProtocolIPv6Fragment || !layers.LayerClassIPv6Extension.Contains(next.LayerType()) ||
			d.ext6.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil {
			return false
		}
		next, data = d.ext6.NextHeader, d.ext6.Payload
	}
	return d.tcp.DecodeFromBytes(data, gopacket.NilDecodeFeedback) == nil
}

// fragmented reports whether ip is a fragment of a datagram.
func fragmented(ip *layers.IPv4) bool {
	return ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0
}

// fragments reassembles fragmented IP datagrams with gopacket's ip4defrag and
// ip6defrag, which hold each fragment until its datagram is whole. The decoder
// bounds what they hold: datagrams whose fragments stop coming are dropped after
// the reorder timeout (by discard), and past maxFragBytes everything held is
// dropped.
type fragments struct {
	d4      *ip4defrag.IPv4Defragmenter
	d6      *ip6defrag.IPv6Defragmenter
	pending map[fragKey]heldFrags // what the defragmenters hold, per datagram
	held    int                   // bytes held in all
}

// heldFrags mirrors one of the defragmenters' fragment lists: its bytes, and the
// capture time of its last fragment.
type heldFrags struct {
	bytes int
	last  time.Time
}

// fragKey identifies a datagram's fragments: source, destination and
// identification (RFC 791, RFC 8200 section 4.5; only TCP fragments are kept).
type fragKey struct {
	src, dst netip.Addr
	id       uint32
}

// maxFragBytes bounds the fragment bytes held for reassembly.
const maxFragBytes = 16 << 20

// defrag4 takes an IPv4 fragment (only TCP ones reach it) and returns the whole
// datagram when this fragment completed it, or nil.
func (f *fragments) defrag4(ip *layers.IPv4, t time.Time) *layers.IPv4 {
	f.init()
	// ip4defrag keeps the layer it is given: hand it a copy, as the packet's
	// bytes and the decoder's layer are reused for the next packet.
	in := *ip
	in.Payload = bytes.Clone(ip.Payload)
	in.Contents, in.Options = nil, nil
	k := fragKey{netip.AddrFrom4([4]byte(ip.SrcIP)), netip.AddrFrom4([4]byte(ip.DstIP)), uint32(ip.Id)}
	out, err := f.d4.DefragIPv4WithTimestamp(&in, t)
	if err != nil || out != nil {
		// Complete, or dropped as invalid: nothing of it is held any more.
		f.forget(k)
		if err != nil {
			return nil
		}
		return out
	}
	f.hold(k, len(in.Payload), t)
	return nil
}

// defrag6 takes a fragment of an IPv6 packet and returns the whole packet (its
// payload starting after the fragment header) when this fragment completed it,
// or nil.
func (f *fragments) defrag6(ip *layers.IPv6, fg *layers.IPv6Fragment, t time.Time) *layers.IPv6 {
	f.init()
	// ip6defrag keeps what it is given, as ip4defrag does: copies.
	in := &layers.IPv6{Version: 6, TrafficClass: ip.TrafficClass, FlowLabel: ip.FlowLabel, HopLimit: ip.HopLimit,
		NextHeader: ip.NextHeader, SrcIP: bytes.Clone(ip.SrcIP), DstIP: bytes.Clone(ip.DstIP)}
	frag := *fg
	frag.Contents, frag.Payload = nil, bytes.Clone(fg.Payload)
	k := fragKey{netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP)), fg.Identification}
	if out := f.d6.DefragIPv6(in, &frag); out != nil {
		f.forget(k)
		return out
	}
	// ip6defrag does not say whether it stored the fragment, ignored a repeat
	// or dropped the packet: counting it as held errs on the side of the bound.
	f.hold(k, len(frag.Payload), t)
	return nil
}

func (f *fragments) init() {
	if f.pending == nil {
		f.d4, f.d6, f.pending = ip4defrag.NewIPv4Defragmenter(), ip6defrag.NewIPv6Defragmenter(), map[fragKey]heldFrags{}
	}
}

// hold accounts for n more bytes of datagram k, held since t.
func (f *fragments) hold(k fragKey, n int, t time.Time) {
	f.pending[k] = heldFrags{bytes: f.pending[k].bytes + n, last: t}
	f.held += n
	if f.held > maxFragBytes {
		f.d4, f.d6, f.held = ip4defrag.NewIPv4Defragmenter(), ip6defrag.NewIPv6Defragmenter(), 0
		clear(f.pending)
	}
}

// forget drops the accounting of datagram k, which its defragmenter no longer
// holds.
func (f *fragments) forget(k fragKey) {
	f.held -= f.pending[k].bytes
	delete(f.pending, k)
}

// discard drops datagrams that received no fragment since before.
func (f *fragments) discard(before time.Time) {
	if len(f.pending) == 0 {
		return
	}
	f.d4.DiscardOlderThan(before)
	for k, h := range f.pending {
		if !h.last.Before(before) {
			continue
		}
		if k.src.Is6() {
			// ip6defrag ages packets by the wall clock, which says nothing about
			// a capture file; an empty fragment makes it drop the packet
			// (TestFragments6 checks that it does).
			f.d6.DefragIPv6(&layers.IPv6{Version: 6, SrcIP: k.src.AsSlice(), DstIP: k.dst.AsSlice()},
				&layers.IPv6Fragment{Identification: k.id, MoreFragments: true})
		}
		f.forget(k)
	}
}
