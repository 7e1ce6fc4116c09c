package sniff

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

// segment is the part of a TCP packet the sniffer needs.
type segment struct {
	src, dst           netip.AddrPort
	seq                uint32
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
		for _, l := range []gopacket.DecodingLayer{&d.eth, &d.dot1q, &d.sll, &d.sll2, &d.loop, &d.ip4, &d.ip6, &d.ext6, &d.tcp} {
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
// IPv4 or IPv6. Fragmented IPv4 datagrams are reassembled: the fragment that
// completes one yields its segment. IPv6 extension headers are skipped;
// fragmented IPv6 (rare for TCP, which IPv6 hosts size to the path MTU) is not
// reassembled: its packets are ignored.
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
	network := d.decoded[n-1]
	if network == layers.LayerTypeTCP {
		network = gopacket.LayerTypeZero
		for i := n - 2; i >= 0 && network == gopacket.LayerTypeZero; i-- {
			switch l := d.decoded[i]; l {
			case layers.LayerTypeIPv4, layers.LayerTypeIPv6:
				network = l
			case layers.LayerTypeIPv6Fragment:
				return false // its payload is a piece of the TCP segment
			}
		}
	} else if network != layers.LayerTypeIPv4 || d.ip4.Protocol != layers.IPProtocolTCP || !fragmented(&d.ip4) {
		return false
	}
	switch network {
	case layers.LayerTypeIPv4:
		if len(d.ip4.SrcIP) != 4 {
			return false
		}
		if fragmented(&d.ip4) {
			whole := d.frags.defrag(&d.ip4, ci.Timestamp)
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
		seg.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d.ip6.SrcIP)).Unmap(), uint16(d.tcp.SrcPort))
		seg.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d.ip6.DstIP)).Unmap(), uint16(d.tcp.DstPort))
	default:
		return false
	}
	t := &d.tcp
	seg.seq, seg.syn, seg.ack, seg.fin, seg.rst = t.Seq, t.SYN, t.ACK, t.FIN, t.RST
	seg.payload = t.Payload
	seg.missing = 0
	if cut := ci.Length - ci.CaptureLength; cut > 0 && p.Truncated {
		// The snap length cut the packet: the tail of the payload is unknown. IPv4
		// says exactly how long it was; otherwise trust the capture header.
		seg.missing = cut
		if network == layers.LayerTypeIPv4 && !fragmented(&d.ip4) {
			declared := int(d.ip4.Length) - int(d.ip4.IHL)*4 - len(t.Contents) - len(t.Payload)
			seg.missing = max(0, min(cut, declared))
		}
	}
	return true
}

// fragmented reports whether ip is a fragment of a datagram.
func fragmented(ip *layers.IPv4) bool {
	return ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0
}

// fragments reassembles fragmented IPv4 datagrams with gopacket's ip4defrag, which
// holds each fragment until its datagram is whole. The decoder bounds what is held:
// datagrams whose fragments stop coming are dropped after the reorder timeout (by
// discard), and past maxFragBytes everything held is dropped.
type fragments struct {
	d       *ip4defrag.IPv4Defragmenter
	pending map[fragKey]heldFrags // what ip4defrag holds, per datagram
	held    int                   // bytes held in all
}

// heldFrags mirrors one of ip4defrag's fragment lists: its bytes, and the capture
// time of its last fragment (by which ip4defrag discards it).
type heldFrags struct {
	bytes int
	last  time.Time
}

// fragKey identifies an IPv4 datagram's fragments (RFC 791: source, destination,
// protocol and identification).
type fragKey struct {
	src, dst netip.Addr
	id       uint16
}

// maxFragBytes bounds the fragment bytes held for reassembly.
const maxFragBytes = 16 << 20

// defrag takes a fragment (only TCP ones reach it) and returns the whole datagram
// when this fragment completed it, or nil.
func (f *fragments) defrag(ip *layers.IPv4, t time.Time) *layers.IPv4 {
	if f.d == nil {
		f.d, f.pending = ip4defrag.NewIPv4Defragmenter(), map[fragKey]heldFrags{}
	}
	// ip4defrag keeps the layer it is given: hand it a copy, as the packet's
	// bytes and the decoder's layer are reused for the next packet.
	in := *ip
	in.Payload = bytes.Clone(ip.Payload)
	in.Contents, in.Options = nil, nil
	k := fragKey{netip.AddrFrom4([4]byte(ip.SrcIP)), netip.AddrFrom4([4]byte(ip.DstIP)), ip.Id}
	out, err := f.d.DefragIPv4WithTimestamp(&in, t)
	switch {
	case err != nil || out != nil:
		// Complete, or dropped as invalid: nothing of it is held any more.
		f.held -= f.pending[k].bytes
		delete(f.pending, k)
		if err != nil {
			return nil
		}
		return out
	}
	f.pending[k] = heldFrags{bytes: f.pending[k].bytes + len(in.Payload), last: t}
	f.held += len(in.Payload)
	if f.held > maxFragBytes {
		f.d, f.held = ip4defrag.NewIPv4Defragmenter(), 0
		clear(f.pending)
	}
	return nil
}

// discard drops datagrams that received no fragment since before.
func (f *fragments) discard(before time.Time) {
	if len(f.pending) == 0 {
		return
	}
	f.d.DiscardOlderThan(before)
	for k, h := range f.pending {
		if h.last.Before(before) {
			f.held -= h.bytes
			delete(f.pending, k)
		}
	}
}
