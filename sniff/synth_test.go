package sniff

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Synthetic captures: known WebSocket byte streams (written with wsframe.Writer,
// behind an HTTP handshake), cut into TCP segments of random sizes that ignore frame
// boundaries, perturbed (reordered, duplicated, overlapping, missing), wrapped in
// the link layers the sniffer reads, and written with pcapgo.

// wsMsg is a message of a synthetic stream.
type wsMsg struct {
	dir     plugins.Direction
	op      wsframe.Opcode
	payload []byte
	// start and end delimit the message's frames in its direction's stream; done
	// is where the frame that completes it ends (its place in the output order).
	start, end, done int
}

// flow is one synthetic TCP connection.
type flow struct {
	client, server netip.AddrPort
	streams        [2][]byte // indexed by dirIndex
	msgs           []*wsMsg
	hs             [2]int   // length of the HTTP part of each stream
	frames         [2][]int // where each frame starts
	url            string
}

func dirIndex(d plugins.Direction) int {
	if d == plugins.ServerToClient {
		return 1
	}
	return 0
}

// flowOpts describes the streams to build.
type flowOpts struct {
	handshake bool // an HTTP upgrade in front
	pipelined bool // earlier requests (and a refused upgrade) before the upgrade
	messages  int
	v6        bool
}

const upgradeRequest = "GET /chat?room=1 HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n"

const upgradeResponse = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"

// Requests and responses before the upgrade: bodies by length and chunked, a
// 100 Continue, a 204, and an upgrade the server refuses.
var (
	pipelinedRequests = "GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n" +
		"POST /submit HTTP/1.1\r\nHost: example.test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\nhello world" +
		"\r\nPOST /chunky HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"GET /chat?room=0 HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
	pipelinedResponses = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nindex" +
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\n\r\n" +
		"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"
)

// buildFlow writes the streams of a flow with wsframe.Writer. Masking keys come from
// rng, so a seed gives the same bytes every run.
func buildFlow(t *testing.T, rng *rand.Rand, o flowOpts) *flow {
	t.Helper()
	f := &flow{client: netip.MustParseAddrPort("127.0.0.1:40001"), server: netip.MustParseAddrPort("127.0.0.1:9200")}
	if o.v6 {
		f.client, f.server = netip.MustParseAddrPort("[::1]:40001"), netip.MustParseAddrPort("[::1]:9200")
	}
	var bufs [2]bytes.Buffer
	if o.handshake {
		if o.pipelined {
			bufs[0].WriteString(pipelinedRequests)
			bufs[1].WriteString(pipelinedResponses)
		}
		bufs[0].WriteString(upgradeRequest)
		bufs[1].WriteString(upgradeResponse)
		f.url = "ws://example.test/chat?room=1"
	}
	f.hs = [2]int{bufs[0].Len(), bufs[1].Len()}
	writers := [2]*wsframe.Writer{wsframe.NewWriter(&bufs[0], wsframe.Client, 0), wsframe.NewWriter(&bufs[1], wsframe.Server, 0)}
	frame := func(i int, h wsframe.Header, payload []byte) {
		f.frames[i] = append(f.frames[i], bufs[i].Len())
		if i == 0 {
			h.Masked = true
			binary.LittleEndian.PutUint32(h.Mask[:], rng.Uint32())
		}
		if err := writers[i].WriteFrame(h, payload); err != nil {
			t.Fatal(err)
		}
		if err := writers[i].Flush(); err != nil {
			t.Fatal(err)
		}
	}
	sizes := []int{0, 1, 2, 5, 125, 126, 127, 200, 1000, 3000, 65535, 65536, 70000}
	for k := range o.messages {
		i := rng.IntN(2)
		dir := plugins.Direction(i + 1)
		n := sizes[rng.IntN(len(sizes))]
		if rng.IntN(3) > 0 {
			n = rng.IntN(2000)
		}
		m := &wsMsg{dir: dir, op: wsframe.OpBinary, payload: make([]byte, n), start: bufs[i].Len()}
		switch rng.IntN(3) {
		case 0:
			m.op = wsframe.OpText
			const alphabet = "abcdefghij klmnopqrstuvwxyz0123456789é✓😀{}\":,"
			runes := []rune(alphabet)
			var b []byte
			for len(b) < n {
				b = fmt.Appendf(b, "%c", runes[rng.IntN(len(runes))])
			}
			m.payload = b
		default:
			for j := range m.payload {
				m.payload[j] = byte(rng.Uint32())
			}
		}
		f.msgs = append(f.msgs, m)
		// Fragment one message in three, with a ping between fragments sometimes.
		var frags []int
		if rest := len(m.payload); rng.IntN(3) == 0 && rest > 2 {
			for rest > 0 {
				s := 1 + rng.IntN(rest)
				frags = append(frags, s)
				rest -= s
			}
		} else {
			frags = []int{len(m.payload)}
		}
		p := m.payload
		for j, s := range frags {
			op := m.op
			if j > 0 {
				op = wsframe.OpContinuation
			}
			frame(i, wsframe.Header{Fin: j == len(frags)-1, Opcode: op}, p[:s])
			p = p[s:]
			if j < len(frags)-1 && rng.IntN(2) == 0 {
				ping := &wsMsg{dir: dir, op: wsframe.OpPing, payload: fmt.Appendf(nil, "ping-%d.%d", k, j), start: bufs[i].Len()}
				frame(i, wsframe.Header{Fin: true, Opcode: wsframe.OpPing}, ping.payload)
				ping.end, ping.done = bufs[i].Len(), bufs[i].Len()
				f.msgs = append(f.msgs, ping)
			}
		}
		m.end, m.done = bufs[i].Len(), bufs[i].Len()
	}
	// Close both ways.
	for i := range 2 {
		m := &wsMsg{dir: plugins.Direction(i + 1), op: wsframe.OpClose, payload: wsframe.AppendClose(nil, 4000+wsframe.CloseCode(i), "bye"), start: bufs[i].Len()}
		frame(i, wsframe.Header{Fin: true, Opcode: wsframe.OpClose}, m.payload)
		m.end, m.done = bufs[i].Len(), bufs[i].Len()
		f.msgs = append(f.msgs, m)
	}
	f.streams = [2][]byte{bufs[0].Bytes(), bufs[1].Bytes()}
	return f
}

// pkt is one synthetic TCP segment: bytes [off, off+len(data)) of a stream.
type pkt struct {
	dir           int
	off           int
	data          []byte
	syn, fin, rst bool
	fl            *flow     // another flow than writePcap's (several connections in one capture)
	isn           [2]uint32 // with fl
}

// perturb says how to mangle a flow's segments.
type perturb struct {
	maxSeg      int     // segment sizes are 1..maxSeg
	reorder     float64 // probability a segment is moved later
	dup         float64 // probability a segment is sent again later
	overlap     float64 // probability a retransmission covering neighbours is sent
	drop        int     // number of segments dropped (gaps)
	dense       bool    // gaps may be close together (fewer than sparseFrames frames apart)
	noSYN       bool    // the capture starts mid-stream: no SYN, and cut at cutAt
	cutAt       [2]int  // first stream offset captured, per direction (noSYN)
	isn         [2]uint32
	keepHSOrder bool // keep the handshake segments first and in order
}

// segments cuts a flow into packets and returns them with the byte ranges dropped.
func segments(rng *rand.Rand, f *flow, p perturb) ([]pkt, [2][][2]int) {
	var dirs [2][]pkt
	for i := range 2 {
		s := f.streams[i]
		for off := 0; off < len(s); {
			n := min(len(s)-off, 1+rng.IntN(p.maxSeg))
			if rng.IntN(8) == 0 {
				n = min(len(s)-off, 1+rng.IntN(3)) // a few tiny ones
			}
			dirs[i] = append(dirs[i], pkt{dir: i, off: off, data: s[off : off+n]})
			off += n
		}
	}
	// Drops: segments after the handshake and before the last three of their
	// direction; unless dense, with sparseFrames whole frames between two drops and
	// after the last one, so that the sniffer can trust the frames it finds.
	var dropped [2][][2]int
	droppedIdx := [2]map[int]bool{{}, {}}
	framesIn := func(i, from, to int) int {
		n := 0
		for _, fs := range f.frames[i] {
			if fs >= from && fs+14 <= to {
				n++
			}
		}
		return n
	}
	sparse := func(i int, sg pkt) bool {
		end := sg.off + len(sg.data)
		if framesIn(i, end, len(f.streams[i])) < sparseFrames {
			return false
		}
		for k := range droppedIdx[i] {
			d := dirs[i][k]
			if d.off < sg.off && framesIn(i, d.off+len(d.data), sg.off) < sparseFrames ||
				d.off > sg.off && framesIn(i, end, d.off) < sparseFrames {
				return false
			}
		}
		return true
	}
	for range p.drop {
		i := rng.IntN(2)
		var cands []int
		for k, sg := range dirs[i] {
			if sg.off >= f.hs[i] && k < len(dirs[i])-3 && k > 0 && !droppedIdx[i][k] && sg.off >= p.cutAt[i] && (p.dense || sparse(i, sg)) {
				cands = append(cands, k)
			}
		}
		if len(cands) == 0 {
			continue
		}
		droppedIdx[i][cands[rng.IntN(len(cands))]] = true
	}
	for i := range 2 {
		for k, sg := range dirs[i] {
			if droppedIdx[i][k] {
				dropped[i] = append(dropped[i], [2]int{sg.off, sg.off + len(sg.data)})
			}
		}
	}
	// Order: the handshake first (client, then server), the rest interleaved.
	var out []pkt
	if !p.noSYN {
		out = append(out, pkt{dir: 0, syn: true}, pkt{dir: 1, syn: true})
	}
	var rest [2][]pkt
	for i := range 2 {
		for k, sg := range dirs[i] {
			switch {
			case droppedIdx[i][k]:
			case p.noSYN && sg.off+len(sg.data) <= p.cutAt[i]:
			case p.noSYN && sg.off < p.cutAt[i]:
				cut := p.cutAt[i] - sg.off
				rest[i] = append(rest[i], pkt{dir: i, off: p.cutAt[i], data: sg.data[cut:]})
			case sg.off < f.hs[i]:
				out = append(out, sg)
			default:
				rest[i] = append(rest[i], sg)
			}
		}
	}
	hsEnd := len(out)
	for len(rest[0])+len(rest[1]) > 0 {
		i := rng.IntN(2)
		if len(rest[i]) == 0 {
			i = 1 - i
		}
		out = append(out, rest[i][0])
		rest[i] = rest[i][1:]
	}
	out = append(out, pkt{dir: 0, fin: true, off: len(f.streams[0])}, pkt{dir: 1, fin: true, off: len(f.streams[1])})
	// Retransmissions: exact duplicates and repacketised ranges over neighbours, later
	// in the capture; never over a dropped range (it would no longer be missing).
	covered := func(i, from, to int) bool {
		for _, d := range dropped[i] {
			if from < d[1] && d[0] < to {
				return true
			}
		}
		return from < p.cutAt[i]
	}
	body := out[hsEnd : len(out)-2]
	var extra []struct {
		at int
		p  pkt
	}
	for k, sg := range body {
		if sg.data == nil {
			continue
		}
		s := f.streams[sg.dir]
		if rng.Float64() < p.dup {
			extra = append(extra, struct {
				at int
				p  pkt
			}{k + 1 + rng.IntN(6), sg})
		}
		if rng.Float64() < p.overlap {
			from := max(0, sg.off-rng.IntN(300))
			to := min(len(s), sg.off+len(sg.data)+rng.IntN(300))
			if !covered(sg.dir, from, to) {
				extra = append(extra, struct {
					at int
					p  pkt
				}{k + 1 + rng.IntN(6), pkt{dir: sg.dir, off: from, data: s[from:to]}})
			}
		}
	}
	for j := len(extra) - 1; j >= 0; j-- {
		at := hsEnd + min(extra[j].at, len(body))
		out = slices.Insert(out, at, extra[j].p)
	}
	// Reordering: move a segment a few places later.
	for k := hsEnd + 4; k < len(out)-2; k++ { // the first segments of a capture that starts mid-stream stay first
		if rng.Float64() < p.reorder {
			to := min(len(out)-3, k+1+rng.IntN(5))
			sg := out[k]
			copy(out[k:to], out[k+1:to+1])
			out[to] = sg
		}
	}
	return out, dropped
}

// sparseFrames is how many whole frames separate gaps in captures that are not
// dense: enough for the resynchronisation to trust a position before the next gap.
const sparseFrames = 10

// linkSpec is how packets are framed.
type linkSpec struct {
	lt   layers.LinkType
	vlan bool
	// frag, when set, cuts IP datagrams into fragments of that many payload
	// bytes (a multiple of 8), every other datagram's fragments sent last first.
	frag int
	// ext6 puts an IPv6 destination options header before TCP (after the
	// fragment header, when there is one).
	ext6 bool
}

// frame builds the bytes of one packet, or of its fragments (identification id;
// 2^20 + id over IPv6).
func frame(t *testing.T, ls linkSpec, src, dst netip.AddrPort, tcp *layers.TCP, payload []byte, id uint16) [][]byte {
	t.Helper()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	serialize := func(ls ...gopacket.SerializableLayer) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(buf.Bytes())
	}
	ethType := layers.EthernetTypeIPv4
	var ipPackets [][]byte
	if src.Addr().Is6() {
		ethType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip6)
		seg := serialize(tcp, gopacket.Payload(payload))
		if ls.ext6 {
			// Destination options: next header TCP, length 0 (8 bytes), PadN of 4.
			seg = append([]byte{byte(layers.IPProtocolTCP), 0, 1, 4, 0, 0, 0, 0}, seg...)
			ip6.NextHeader = layers.IPProtocolIPv6Destination
		}
		if ls.frag == 0 || len(seg) <= ls.frag {
			ipPackets = append(ipPackets, serialize(ip6, gopacket.Payload(seg)))
		} else {
			// The options, if any, travel in the fragmentable part.
			next := ip6.NextHeader
			ip6.NextHeader = layers.IPProtocolIPv6Fragment
			for off := 0; off < len(seg); off += ls.frag {
				fh := &layers.IPv6Fragment{NextHeader: next, FragmentOffset: uint16(off / 8),
					MoreFragments: off+ls.frag < len(seg), Identification: 1<<20 + uint32(id)}
				ipPackets = append(ipPackets, serialize(ip6, fh, gopacket.Payload(seg[off:min(len(seg), off+ls.frag)])))
			}
			if id%2 == 1 {
				slices.Reverse(ipPackets)
			}
		}
	} else {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		tcp.SetNetworkLayerForChecksum(ip4)
		seg := serialize(tcp, gopacket.Payload(payload))
		if ls.frag == 0 || len(seg) <= ls.frag {
			ipPackets = append(ipPackets, serialize(ip4, gopacket.Payload(seg)))
		} else {
			ip4.Flags = 0
			ip4.Id = id
			for off := 0; off < len(seg); off += ls.frag {
				f := *ip4
				f.FragOffset = uint16(off / 8)
				if off+ls.frag < len(seg) {
					f.Flags = layers.IPv4MoreFragments
				}
				ipPackets = append(ipPackets, serialize(&f, gopacket.Payload(seg[off:min(len(seg), off+ls.frag)])))
			}
			if ip4.Id%2 == 1 {
				slices.Reverse(ipPackets)
			}
		}
	}
	out := make([][]byte, 0, len(ipPackets))
	for _, ip := range ipPackets {
		var b []byte
		switch ls.lt {
		case layers.LinkTypeEthernet:
			eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: ethType}
			if ls.vlan {
				eth.EthernetType = layers.EthernetTypeDot1Q
				b = serialize(eth, &layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeDot1Q},
					&layers.Dot1Q{VLANIdentifier: 7, Type: ethType}, gopacket.Payload(ip)) // QinQ
			} else {
				b = serialize(eth, gopacket.Payload(ip))
			}
		case layers.LinkTypeNull:
			fam := layers.ProtocolFamilyIPv4
			if ethType == layers.EthernetTypeIPv6 {
				fam = layers.ProtocolFamilyIPv6BSD
			}
			b = serialize(&layers.Loopback{Family: fam}, gopacket.Payload(ip))
		case layers.LinkTypeLinuxSLL: // 16-byte cooked header
			h := make([]byte, 16, 16+len(ip))
			binary.BigEndian.PutUint16(h[0:], 0)   // to us
			binary.BigEndian.PutUint16(h[2:], 772) // ARPHRD_LOOPBACK
			binary.BigEndian.PutUint16(h[4:], 6)
			binary.BigEndian.PutUint16(h[14:], uint16(ethType))
			b = append(h, ip...)
		case layers.LinkTypeLinuxSLL2: // 20-byte cooked header v2
			h := make([]byte, 20, 20+len(ip))
			binary.BigEndian.PutUint16(h[0:], uint16(ethType))
			binary.BigEndian.PutUint32(h[4:], 1)   // interface index
			binary.BigEndian.PutUint16(h[8:], 772) // ARPHRD_LOOPBACK
			h[10], h[11] = 0, 6
			b = append(h, ip...)
		default:
			b = ip
		}
		out = append(out, b)
	}
	return out
}

// writePcap writes packets of a flow as a capture file (pcapng when ng).
func writePcap(t *testing.T, w io.Writer, f *flow, pkts []pkt, ls linkSpec, isn [2]uint32, ng bool) {
	t.Helper()
	var write func(ci gopacket.CaptureInfo, data []byte) error
	if ng {
		nw, err := pcapgo.NewNgWriter(w, ls.lt)
		if err != nil {
			t.Fatal(err)
		}
		defer nw.Flush()
		write = nw.WritePacket
	} else {
		pw := pcapgo.NewWriterNanos(w)
		if err := pw.WriteFileHeader(262144, ls.lt); err != nil {
			t.Fatal(err)
		}
		write = pw.WritePacket
	}
	base := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	for k, p := range pkts {
		ends := [2]netip.AddrPort{f.client, f.server}
		isn := isn
		if p.fl != nil {
			ends, isn = [2]netip.AddrPort{p.fl.client, p.fl.server}, p.isn
		}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(ends[p.dir].Port()), DstPort: layers.TCPPort(ends[1-p.dir].Port()),
			Window: 65535, ACK: true, Ack: isn[1-p.dir] + 1}
		switch {
		case p.syn:
			tcp.Seq, tcp.SYN, tcp.ACK = isn[p.dir], true, p.dir == 1
		default:
			tcp.Seq, tcp.FIN, tcp.RST, tcp.PSH = isn[p.dir]+1+uint32(p.off), p.fin, p.rst, len(p.data) > 0
		}
		for _, data := range frame(t, ls, ends[p.dir], ends[1-p.dir], tcp, p.data, uint16(k)) {
			ci := gopacket.CaptureInfo{Timestamp: base.Add(time.Duration(k) * time.Millisecond), CaptureLength: len(data), Length: len(data)}
			if err := write(ci, data); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// expected returns, per direction and in output order, the messages that no
// dropped range touches and that start after the capture's cut.
func expected(f *flow, dropped [2][][2]int, cutAt [2]int) [2][]*wsMsg {
	var out [2][]*wsMsg
	for _, m := range f.msgs {
		i := dirIndex(m.dir)
		ok := m.start >= cutAt[i]
		for _, d := range dropped[i] {
			if m.start < d[1] && d[0] < m.end {
				ok = false
			}
		}
		if ok {
			out[i] = append(out[i], m)
		}
	}
	for i := range out {
		slices.SortStableFunc(out[i], func(a, b *wsMsg) int { return a.done - b.done })
	}
	return out
}

// align aligns got with want (a longest common subsequence) and returns the
// indices of the got events outside it and, for each want message, the index of
// the got event matched with it, or -1.
func align(got []event, want []*wsMsg, same func(event, *wsMsg) bool) (extra, matched []int) {
	// l[i][j]: the longest common subsequence of got[i:] and want[j:].
	l := make([][]int, len(got)+1)
	for i := range l {
		l[i] = make([]int, len(want)+1)
	}
	for i := len(got) - 1; i >= 0; i-- {
		for j := len(want) - 1; j >= 0; j-- {
			if same(got[i], want[j]) {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	matched = make([]int, len(want))
	for j := range matched {
		matched[j] = -1
	}
	i, j := 0, 0
	for i < len(got) && j < len(want) {
		switch {
		case same(got[i], want[j]) && l[i][j] == l[i+1][j+1]+1:
			matched[j] = i
			i, j = i+1, j+1
		case l[i+1][j] >= l[i][j+1]:
			extra = append(extra, i)
			i++
		default:
			j++
		}
	}
	for ; i < len(got); i++ {
		extra = append(extra, i)
	}
	return extra, matched
}

// gapRanges merges adjacent dropped ranges.
func gapRanges(d [][2]int) [][2]int {
	slices.SortFunc(d, func(a, b [2]int) int { return a[0] - b[0] })
	var out [][2]int
	for _, r := range d {
		if n := len(out); n > 0 && out[n-1][1] == r[0] {
			out[n-1][1] = r[1]
			continue
		}
		out = append(out, r)
	}
	return out
}

type synthCase struct {
	name string
	link linkSpec
	opts flowOpts
	pert perturb
	ng   bool
	port bool // --ws-port
}

func TestSynthetic(t *testing.T) {
	cases := []synthCase{
		{name: "ethernet-ipv4-in-order", link: linkSpec{lt: layers.LinkTypeEthernet}, opts: flowOpts{handshake: true, messages: 60},
			pert: perturb{maxSeg: 1460}},
		{name: "ethernet-ipv4-seq-wrap-shuffled", link: linkSpec{lt: layers.LinkTypeEthernet}, opts: flowOpts{handshake: true, messages: 80},
			pert: perturb{maxSeg: 1460, reorder: 0.2, dup: 0.1, overlap: 0.1, isn: [2]uint32{0xffffe000, 0xfffffff0}}},
		{name: "vlan-ipv6-shuffled", link: linkSpec{lt: layers.LinkTypeEthernet, vlan: true}, opts: flowOpts{handshake: true, messages: 80, v6: true},
			pert: perturb{maxSeg: 900, reorder: 0.3, dup: 0.2, overlap: 0.2}},
		{name: "sll-ipv4-gaps", link: linkSpec{lt: layers.LinkTypeLinuxSLL}, opts: flowOpts{handshake: true, messages: 120},
			pert: perturb{maxSeg: 1460, reorder: 0.1, dup: 0.05, overlap: 0.05, drop: 8}},
		{name: "sll2-ipv6-gaps", link: linkSpec{lt: layers.LinkTypeLinuxSLL2}, opts: flowOpts{handshake: true, messages: 120, v6: true},
			pert: perturb{maxSeg: 600, reorder: 0.1, dup: 0.05, overlap: 0.05, drop: 10}},
		{name: "null-loopback-ipv4-pipelined", link: linkSpec{lt: layers.LinkTypeNull}, opts: flowOpts{handshake: true, pipelined: true, messages: 40},
			pert: perturb{maxSeg: 50, reorder: 0.1, dup: 0.1}},
		{name: "null-loopback-ipv6-gaps", link: linkSpec{lt: layers.LinkTypeNull}, opts: flowOpts{handshake: true, messages: 80, v6: true},
			pert: perturb{maxSeg: 3000, drop: 6}},
		{name: "raw-ipv4-pcapng-pipelined-gaps", link: linkSpec{lt: layers.LinkTypeRaw}, opts: flowOpts{handshake: true, pipelined: true, messages: 80},
			pert: perturb{maxSeg: 1460, reorder: 0.05, drop: 5}, ng: true},
		{name: "raw-ipv6", link: linkSpec{lt: layers.LinkTypeRaw}, opts: flowOpts{handshake: true, messages: 40, v6: true},
			pert: perturb{maxSeg: 1460, overlap: 0.3}},
		{name: "ethernet-ipv4-fragmented", link: linkSpec{lt: layers.LinkTypeEthernet, frag: 576}, opts: flowOpts{handshake: true, messages: 80},
			pert: perturb{maxSeg: 3000, reorder: 0.1, dup: 0.1}},
		{name: "sll2-ipv4-fragmented-gaps", link: linkSpec{lt: layers.LinkTypeLinuxSLL2, frag: 8}, opts: flowOpts{handshake: true, messages: 60},
			pert: perturb{maxSeg: 200, reorder: 0.05, drop: 4}},
		{name: "ethernet-ipv6-destopts", link: linkSpec{lt: layers.LinkTypeEthernet, ext6: true}, opts: flowOpts{handshake: true, messages: 60, v6: true},
			pert: perturb{maxSeg: 1460, reorder: 0.1}},
		{name: "ethernet-ipv6-fragmented", link: linkSpec{lt: layers.LinkTypeEthernet, frag: 1232}, opts: flowOpts{handshake: true, messages: 80, v6: true},
			pert: perturb{maxSeg: 3000, reorder: 0.1, dup: 0.1}},
		{name: "raw-ipv6-fragmented-destopts-gaps", link: linkSpec{lt: layers.LinkTypeRaw, frag: 64, ext6: true}, opts: flowOpts{handshake: true, messages: 60, v6: true},
			pert: perturb{maxSeg: 400, reorder: 0.05, drop: 4}},
		{name: "midstream-ws-port", link: linkSpec{lt: layers.LinkTypeEthernet}, opts: flowOpts{messages: 80},
			pert: perturb{maxSeg: 1460, noSYN: true, cutAt: [2]int{5000, 7000}}, port: true},
		{name: "midstream-ws-port-gaps", link: linkSpec{lt: layers.LinkTypeLinuxSLL2}, opts: flowOpts{messages: 120},
			pert: perturb{maxSeg: 1460, noSYN: true, cutAt: [2]int{3001, 1}, drop: 6, reorder: 0.05}, port: true},
		{name: "ws-port-from-syn", link: linkSpec{lt: layers.LinkTypeEthernet}, opts: flowOpts{messages: 40},
			pert: perturb{maxSeg: 1460, reorder: 0.1}, port: true},
	}
	for seed := range uint64(synthSeeds) {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/seed%d", tc.name, seed), func(t *testing.T) {
				runSynthetic(t, tc, seed)
			})
		}
	}
}

func runSynthetic(t *testing.T, tc synthCase, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	f := buildFlow(t, rng, tc.opts)
	pkts, dropped := segments(rng, f, tc.pert)
	isn := tc.pert.isn
	if isn == ([2]uint32{}) {
		isn = [2]uint32{rng.Uint32(), rng.Uint32()}
	}
	var file bytes.Buffer
	writePcap(t, &file, f, pkts, tc.link, isn, tc.ng)

	src, err := NewFileSource(&file)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	cfg := Config{Observers: []plugins.Observer{rec}}
	if tc.port {
		cfg.WSPorts = []uint16{f.server.Port()}
	}
	s := New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Run(ctx, src); err != nil {
		t.Fatal(err)
	}

	opens := rec.kinds("open")
	if len(opens) != 1 {
		t.Fatalf("%d open events, want 1\n%s", len(opens), rec.dump())
	}
	pc := opens[0].pc
	if pc.Mode != plugins.Sniff || pc.Client.String() != net.TCPAddrFromAddrPort(f.client).String() || pc.Server.String() != net.TCPAddrFromAddrPort(f.server).String() {
		t.Errorf("open: mode %v client %v server %v", pc.Mode, pc.Client, pc.Server)
	}
	if tc.opts.handshake {
		if pc.URL.String() != f.url || pc.Subprotocol != "chat" || pc.Status != 101 {
			t.Errorf("open: url %v subprotocol %q status %d", pc.URL, pc.Subprotocol, pc.Status)
		}
	}

	want := expected(f, dropped, tc.pert.cutAt)
	// got: the messages per direction; since: for each, how many messages of its
	// direction came out between the last resync and it; after: which resync that
	// was (-1: none yet); trailing: a resync came after the last message.
	var got [2][]event
	var since, after [2][]int
	var trailing [2]bool
	n := [2]int{1 << 30, 1 << 30} // no resync yet
	resyncs := [2]int{}
	last := [2]int{-1, -1}
	for _, e := range rec.events {
		i := dirIndex(e.dir)
		switch e.kind {
		case "resync":
			n[i], last[i], trailing[i] = 0, resyncs[i], true
			resyncs[i]++
		case "message", "undecodable":
			got[i] = append(got[i], e)
			since[i] = append(since[i], n[i])
			after[i] = append(after[i], last[i])
			n[i]++
			trailing[i] = false
		}
	}
	for i := range 2 {
		// Every message in the capture comes out but those held back after a
		// resync: after a gap that swallows a frame boundary (or at a capture's
		// start) the sniffer searches for the next frame, and a header in the lost
		// message's tail may point exactly at a real frame; so it shows a message
		// only when the bytes prove it real, and holds back the ones that begin
		// before it (they are counted in the resync's skipped bytes). No message
		// comes out that is not in the capture, and each one missing begins before
		// the first one shown after a resync, at most maxHeldBack of them a resync.
		same := func(g event, w *wsMsg) bool {
			return g.kind == "message" && g.op == w.op && bytes.Equal(g.payload, w.payload)
		}
		extra, matched := align(got[i], want[i], same)
		for _, k := range extra {
			t.Errorf("dir %d: message %d (%s) is not in the capture (%d messages after a resync)", i, k, got[i][k], since[i][k])
		}
		// firstStart: where the first message shown after each resync begins.
		firstStart := map[int]int{}
		for j, g := range matched {
			if g >= 0 && after[i][g] >= 0 && since[i][g] == 0 {
				firstStart[after[i][g]] = want[i][j].start
			}
		}
		held := map[int]int{} // resync → messages held back
		for j, g := range matched {
			if g >= 0 {
				continue
			}
			next := -1 // the next message that came out
			for _, g := range matched[j+1:] {
				if g >= 0 {
					next = g
					break
				}
			}
			w := want[i][j]
			switch {
			case next >= 0 && after[i][next] >= 0 && w.start < firstStart[after[i][next]]:
				held[after[i][next]]++
			case next < 0 && trailing[i]:
				held[resyncs[i]-1]++
			default:
				t.Errorf("dir %d: %s of %d bytes at [%d,%d) is missing, and does not begin before the first message shown after a resync",
					i, w.op, len(w.payload), w.start, w.end)
			}
		}
		for r, k := range held {
			if k > maxHeldBack {
				t.Errorf("dir %d: %d messages held back after resync %d, want at most %d", i, k, r, maxHeldBack)
			}
		}
		if t.Failed() {
			for k := range min(len(got[i]), len(want[i])) {
				if g, w := got[i][k], want[i][k]; !same(g, w) {
					t.Errorf("dir %d message %d: got %s, want %s of %d bytes at [%d,%d)", i, k, g, w.op, len(w.payload), w.start, w.end)
					break
				}
			}
		}
	}
	gaps := rec.kinds("gap")
	wantGaps := len(gapRanges(dropped[0])) + len(gapRanges(dropped[1]))
	if len(gaps) != wantGaps {
		t.Errorf("%d gap events, want %d", len(gaps), wantGaps)
	}
	for _, g := range gaps {
		i := dirIndex(g.dir)
		found := false
		for _, r := range gapRanges(dropped[i]) {
			found = found || int64(r[1]-r[0]) == g.bytes
		}
		if !found {
			t.Errorf("gap of %d bytes in dir %d matches no dropped range %v", g.bytes, i, gapRanges(dropped[i]))
		}
	}
	// (An undecodable message, compressed when the flow holds none, is a bogus
	// one, counted above.)
	if errs := rec.kinds("error"); len(errs) > 0 {
		t.Errorf("unexpected events: %v", errs)
	}
	if wantGaps == 0 && !tc.pert.noSYN && len(rec.kinds("resync")) > 0 {
		t.Errorf("resync without a gap: %v", rec.kinds("resync"))
	}
	closes := rec.kinds("close")
	if len(closes) != 1 {
		t.Fatalf("%d close events", len(closes))
	}
	// The first close frame in the capture names the closer: 4000 from the client,
	// 4001 from the server.
	if c := closes[0]; !(c.code == 4000 && c.by == "client" || c.code == 4001 && c.by == "server") || c.reason != "bye" {
		if len(dropped[0])+len(dropped[1]) == 0 {
			t.Errorf("close %d %q by %s", c.code, c.reason, c.by)
		}
	}
	st := s.Stats()
	if st.Gaps != int64(wantGaps) || st.Connections != 1 {
		t.Errorf("stats %+v", st)
	}
	if t.Failed() {
		t.Logf("events:\n%s", rec.dump())
	}
}

// maxHeldBack is how many messages the sniffer may hold back after one resync.
const maxHeldBack = 8

// synthSeeds is how many seeds TestSynthetic runs each case with.
var synthSeeds = 3

func init() {
	if v := os.Getenv("SNIFF_SEEDS"); v != "" {
		synthSeeds, _ = strconv.Atoi(v)
	}
}

// TestSyntheticDeflateGap: permessage-deflate with context takeover, messages that
// refer back to earlier ones, and a client segment lost in the middle. Before the
// gap every message is inflated; after it, a client message is shown only when it
// inflates on its own (then exactly), and reported undecodable otherwise.
func TestSyntheticDeflateGap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	f := &flow{client: netip.MustParseAddrPort("127.0.0.1:40002"), server: netip.MustParseAddrPort("127.0.0.1:9300"),
		url: "ws://example.test/chat?room=1"}
	var bufs [2]bytes.Buffer
	bufs[0].WriteString(strings.Replace(upgradeRequest, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n", 1))
	bufs[1].WriteString(strings.Replace(upgradeResponse, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1))
	f.hs = [2]int{bufs[0].Len(), bufs[1].Len()}
	writers := [2]*wsframe.Writer{wsframe.NewWriter(&bufs[0], wsframe.Client, 0), wsframe.NewWriter(&bufs[1], wsframe.Server, 0)}
	var deflaters [2]*wsframe.Deflater
	for i := range deflaters {
		var err error
		if deflaters[i], err = wsframe.NewDeflater(wsframe.Compression{ContextTakeover: true}); err != nil {
			t.Fatal(err)
		}
	}
	for k := range 200 {
		i := k % 2
		m := &wsMsg{dir: plugins.Direction(i + 1), op: wsframe.OpText, start: bufs[i].Len(),
			payload: fmt.Appendf(nil, `{"seq":%d,"user":"alice","text":"the quick brown fox %d jumps over the lazy dog","tag":"%s"}`, k/2, k%7, strings.Repeat("ab", k%13))}
		wire, err := deflaters[i].Deflate(nil, m.payload)
		if err != nil {
			t.Fatal(err)
		}
		sizes := []int{len(wire)}
		if k%3 == 0 && len(wire) > 2 {
			sizes = []int{len(wire) / 2, len(wire) - len(wire)/2}
		}
		for j, n := range sizes {
			h := wsframe.Header{Fin: j == len(sizes)-1, Opcode: wsframe.OpText}
			if j == 0 {
				h.Rsv = wsframe.RSV1
			} else {
				h.Opcode = wsframe.OpContinuation
			}
			if i == 0 {
				h.Masked = true
				binary.LittleEndian.PutUint32(h.Mask[:], rng.Uint32())
			}
			f.frames[i] = append(f.frames[i], bufs[i].Len())
			if err := writers[i].WriteFrame(h, wire[:n]); err != nil {
				t.Fatal(err)
			}
			wire = wire[n:]
		}
		if err := writers[i].Flush(); err != nil {
			t.Fatal(err)
		}
		m.end, m.done = bufs[i].Len(), bufs[i].Len()
		f.msgs = append(f.msgs, m)
	}
	f.streams = [2][]byte{bufs[0].Bytes(), bufs[1].Bytes()}
	pkts, _ := segments(rng, f, perturb{maxSeg: 300})
	// Drop one client segment in the middle.
	var lost [2]int
	for k := len(pkts) / 2; k < len(pkts); k++ {
		if p := pkts[k]; p.dir == 0 && len(p.data) > 0 {
			lost = [2]int{p.off, p.off + len(p.data)}
			pkts = slices.Delete(pkts, k, k+1)
			break
		}
	}
	var file bytes.Buffer
	writePcap(t, &file, f, pkts, linkSpec{lt: layers.LinkTypeEthernet}, [2]uint32{1000, 5000}, false)
	src, err := NewFileSource(&file)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := New(Config{Observers: []plugins.Observer{rec}})
	if err := s.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	want := [2][]*wsMsg{}
	for _, m := range f.msgs {
		want[dirIndex(m.dir)] = append(want[dirIndex(m.dir)], m)
	}
	next := [2]int{}
	shown, undecodable := 0, 0
	for _, e := range rec.kinds("message", "undecodable") {
		i := dirIndex(e.dir)
		if e.kind == "undecodable" {
			if i != 0 || !strings.Contains(e.reason, "missing from the capture") {
				t.Errorf("undecodable %s", e)
			}
			undecodable++
			continue
		}
		// The next expected message, skipping the ones lost or undecodable.
		for next[i] < len(want[i]) && !bytes.Equal(want[i][next[i]].payload, e.payload) {
			if i == 1 || want[i][next[i]].end <= lost[0] {
				t.Fatalf("%s message %q: expected %q (nothing lost there)", e.dir, e.payload, want[i][next[i]].payload)
			}
			next[i]++
		}
		if next[i] == len(want[i]) {
			t.Fatalf("%s message %q is none of those sent (garbage)", e.dir, e.payload)
		}
		if i == 0 && want[i][next[i]].start >= lost[1] {
			shown++
		}
		next[i]++
	}
	if next[1] != 100 {
		t.Errorf("server messages: %d, want 100", next[1])
	}
	if undecodable == 0 || len(rec.kinds("gap")) != 1 {
		t.Errorf("%d undecodable, gaps %v", undecodable, rec.kinds("gap"))
	}
	t.Logf("client messages after the gap: %d inflated on their own, %d undecodable", shown, undecodable)
}

// TestSyntheticConnections: several connections in one capture, their packets
// interleaved (one IPv4, one IPv6, one plain HTTP that never upgrades, one
// reset in the middle of a message).
func TestSyntheticConnections(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	a := buildFlow(t, rng, flowOpts{handshake: true, messages: 30})
	b := buildFlow(t, rng, flowOpts{handshake: true, messages: 30, v6: true})
	b.client = netip.MustParseAddrPort("[::1]:40009")
	c := &flow{client: netip.MustParseAddrPort("127.0.0.1:40010"), server: netip.MustParseAddrPort("127.0.0.1:80"),
		streams: [2][]byte{[]byte(pipelinedRequests), []byte(pipelinedResponses)}}
	d := buildFlow(t, rng, flowOpts{handshake: true, messages: 30})
	d.client = netip.MustParseAddrPort("127.0.0.1:40011")
	var lists [][]pkt
	for k, f := range []*flow{a, b, c, d} {
		pk, _ := segments(rng, f, perturb{maxSeg: 700})
		isn := [2]uint32{uint32(k) * 1000, uint32(k)*1000 + 500}
		for i := range pk {
			pk[i].fl, pk[i].isn = f, isn
		}
		if f == d {
			// Reset by the server halfway through its stream, which ends there.
			cut := len(pk) / 2
			for pk[cut].dir != 1 || pk[cut].data == nil {
				cut++
			}
			pk = append(pk[:cut:cut], pkt{dir: 1, rst: true, off: pk[cut].off, fl: f, isn: isn})
		}
		lists = append(lists, pk)
	}
	var all []pkt
	for len(lists) > 0 {
		k := rng.IntN(len(lists))
		all = append(all, lists[k][0])
		if lists[k] = lists[k][1:]; len(lists[k]) == 0 {
			lists = slices.Delete(lists, k, k+1)
		}
	}
	var file bytes.Buffer
	writePcap(t, &file, a, all, linkSpec{lt: layers.LinkTypeEthernet}, [2]uint32{}, false)
	src, err := NewFileSource(&file)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := New(Config{Observers: []plugins.Observer{rec}})
	if err := s.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	opens := map[string]*plugins.Conn{}
	for _, e := range rec.kinds("open") {
		opens[e.conn] = e.pc
	}
	if len(opens) != 3 {
		t.Fatalf("%d WebSocket connections, want 3:\n%s", len(opens), rec.dump())
	}
	byClient := map[string]string{}
	for id, pc := range opens {
		byClient[pc.Client.String()] = id
	}
	for _, f := range []*flow{a, b} {
		id := byClient[net.TCPAddrFromAddrPort(f.client).String()]
		var n [2]int
		for _, e := range rec.kinds("message") {
			if e.conn == id {
				n[dirIndex(e.dir)]++
			}
		}
		want := expected(f, [2][][2]int{}, [2]int{})
		if n[0] != len(want[0]) || n[1] != len(want[1]) {
			t.Errorf("%s: %v messages, want %d and %d", id, n, len(want[0]), len(want[1]))
		}
	}
	reset := byClient[net.TCPAddrFromAddrPort(d.client).String()]
	for _, e := range rec.kinds("close") {
		if e.conn == reset && (e.code != wsframe.CloseAbnormal || e.by != "server") {
			t.Errorf("reset connection closed with %d by %q, want 1006 by server", e.code, e.by)
		}
	}
	if len(rec.kinds("close")) != 3 {
		t.Errorf("close events %v", rec.kinds("close"))
	}
	if st := s.Stats(); st.TCPConns != 4 || st.Connections != 3 {
		t.Errorf("stats %+v", st)
	}
}
