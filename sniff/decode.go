package sniff

import (
	"net/netip"

	"github.com/gopacket/gopacket"
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
	tcp   layers.TCP

	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newPacketDecoder() *packetDecoder {
	d := &packetDecoder{parsers: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}, decoded: make([]gopacket.LayerType, 0, 8)}
	for _, first := range []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeLinuxSLL, layers.LayerTypeLinuxSLL2,
		layers.LayerTypeLoopback, layers.LayerTypeIPv4, layers.LayerTypeIPv6} {
		p := gopacket.NewDecodingLayerParser(first)
		p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
		for _, l := range []gopacket.DecodingLayer{&d.eth, &d.dot1q, &d.sll, &d.sll2, &d.loop, &d.ip4, &d.ip6, &d.tcp} {
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
// IPv4 or IPv6 (fragments included: the sniffer does not reassemble IP).
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
	if n < 2 || d.decoded[n-1] != layers.LayerTypeTCP {
		return false
	}
	switch d.decoded[n-2] {
	case layers.LayerTypeIPv4:
		if d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0 || len(d.ip4.SrcIP) != 4 {
			return false
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
		if d.decoded[n-2] == layers.LayerTypeIPv4 {
			declared := int(d.ip4.Length) - int(d.ip4.IHL)*4 - len(t.Contents) - len(t.Payload)
			seg.missing = max(0, min(cut, declared))
		}
	}
	return true
}
