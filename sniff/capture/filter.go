package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// DefaultSnaplen is the capture length used when Open or Compile is given
// a snaplen <= 0: libpcap's maximum, large enough for the merged
// (GRO/GSO) frames of up to 64 KiB that loopback hands to a packet socket.
const DefaultSnaplen = 262144

// MaxSnaplen bounds the snaplen of Open, which allocates a buffer of that
// size: 1 MiB, twice the largest (BIG TCP) frame Linux can hand over.
const MaxSnaplen = 1 << 20

// Offsets in an untagged Ethernet frame.
const (
	offEtherType = 12
	offL3        = 14

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeARP  = 0x0806
	etherTypeRARP = 0x8035

	// IPv4 (header at offL3)
	offV4Frag  = offL3 + 6  // flags + fragment offset
	offV4Proto = offL3 + 9  // protocol
	offV4Src   = offL3 + 12 // source address
	offV4Dst   = offL3 + 16 // destination address

	// IPv6 (header at offL3, fixed 40 bytes)
	offV6Next = offL3 + 6
	offV6Src  = offL3 + 8
	offV6Dst  = offL3 + 24
	offV6L4   = offL3 + 40

	// ARP and RARP for IPv4 over Ethernet (header at offL3)
	offARPSrc = offL3 + 14 // sender protocol address
	offARPDst = offL3 + 24 // target protocol address

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132

	// packetOutgoing is PACKET_OUTGOING, the packet type that
	// LoadExtension{Num: ExtType} yields for a frame the host sent.
	packetOutgoing = 4

	// maxInsns is the kernel's BPF_MAXINSNS for classic BPF.
	maxInsns = 4096
)

// Compile compiles a tcpdump-style filter expression (the subset described
// in the package documentation) to a classic BPF program for Ethernet
// frames. The program returns snaplen (DefaultSnaplen if snaplen <= 0) for
// a matching frame and 0 otherwise. An empty or blank expression matches
// every frame.
//
// The program uses no BPF extensions, so it runs in golang.org/x/net/bpf's
// VM as well as in the kernel: the sniff core can use it to filter frames
// read from a pcap file.
func Compile(expr string, snaplen int) ([]bpf.Instruction, error) {
	return compile(expr, snaplen, false)
}

// compile is Compile with an optional prefix that rejects the frames whose
// packet type is PACKET_OUTGOING: on a loopback interface every frame is
// seen twice, once leaving and once arriving, and the prefix keeps only
// the arriving copy. The prefix uses the ExtType extension, which the
// kernel has and x/net/bpf's VM has not.
func compile(expr string, snaplen int, dropOutgoing bool) ([]bpf.Instruction, error) {
	if snaplen <= 0 {
		snaplen = DefaultSnaplen
	}
	var tree node = constNode(true)
	if strings.TrimSpace(expr) != "" {
		var err error
		tree, err = parse(expr)
		if err != nil {
			return nil, err
		}
	}
	if dropOutgoing {
		outgoing := atom{
			load: []bpf.Instruction{bpf.LoadExtension{Num: bpf.ExtType}},
			cond: bpf.JumpEqual,
			val:  packetOutgoing,
		}
		tree = and(notNode{outgoing}, tree)
	}
	prog, err := generate(tree, uint32(snaplen))
	if err != nil {
		return nil, err
	}
	if len(prog) > maxInsns {
		return nil, fmt.Errorf("capture filter %q: program of %d instructions exceeds the kernel's limit of %d", expr, len(prog), maxInsns)
	}
	return prog, nil
}

// ---- expression tree ----

// node is a boolean expression over a frame.
type node interface{ isNode() }

type (
	andNode   struct{ l, r node }
	orNode    struct{ l, r node }
	notNode   struct{ x node }
	constNode bool
	// atom loads a value into A (possibly using X) and tests it.
	atom struct {
		load []bpf.Instruction
		cond bpf.JumpTest
		val  uint32
	}
)

func (andNode) isNode()   {}
func (orNode) isNode()    {}
func (notNode) isNode()   {}
func (constNode) isNode() {}
func (atom) isNode()      {}

// and and or fold constants so that, for example, "net 0.0.0.0/0" costs
// no instructions beyond the EtherType test.
func and(ns ...node) node {
	var out node
	for _, n := range ns {
		switch {
		case n == constNode(true):
			continue
		case n == constNode(false):
			return n
		case out == nil:
			out = n
		default:
			out = andNode{out, n}
		}
	}
	if out == nil {
		return constNode(true)
	}
	return out
}

func or(ns ...node) node {
	var out node
	for _, n := range ns {
		switch {
		case n == constNode(false):
			continue
		case n == constNode(true):
			return n
		case out == nil:
			out = n
		default:
			out = orNode{out, n}
		}
	}
	if out == nil {
		return constNode(false)
	}
	return out
}

func not(n node) node {
	switch n := n.(type) {
	case constNode:
		return !n
	case notNode:
		return n.x
	}
	return notNode{n}
}

func loadAbs(off uint32, size int) bpf.Instruction {
	return bpf.LoadAbsolute{Off: off, Size: size}
}

func etherType(t uint16) node {
	return atom{load: []bpf.Instruction{loadAbs(offEtherType, 2)}, cond: bpf.JumpEqual, val: uint32(t)}
}

func isIPv4() node { return etherType(etherTypeIPv4) }
func isIPv6() node { return etherType(etherTypeIPv6) }

func v4Proto(p uint8) node {
	return and(isIPv4(), atom{load: []bpf.Instruction{loadAbs(offV4Proto, 1)}, cond: bpf.JumpEqual, val: uint32(p)})
}

func v6Proto(p uint8) node {
	return and(isIPv6(), atom{load: []bpf.Instruction{loadAbs(offV6Next, 1)}, cond: bpf.JumpEqual, val: uint32(p)})
}

// v4NotFragment is true for an unfragmented datagram or a first fragment,
// the only ones that carry the transport header.
func v4NotFragment() node {
	return atom{load: []bpf.Instruction{loadAbs(offV4Frag, 2)}, cond: bpf.JumpBitsNotSet, val: 0x1fff}
}

// masked compares the 32-bit word at off, masked by the top bits of the
// prefix, with want.
func masked(off uint32, want uint32, bits int) node {
	switch {
	case bits <= 0:
		return constNode(true)
	case bits >= 32:
		return atom{load: []bpf.Instruction{loadAbs(off, 4)}, cond: bpf.JumpEqual, val: want}
	}
	mask := ^uint32(0) << (32 - bits)
	return atom{
		load: []bpf.Instruction{loadAbs(off, 4), bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask}},
		cond: bpf.JumpEqual,
		val:  want & mask,
	}
}

// prefixMatch tests the address at off (4 or 16 bytes) against p.
func prefixMatch(off uint32, p netip.Prefix) node {
	b := p.Addr().AsSlice()
	var parts []node
	for i := 0; i < len(b)/4; i++ {
		w := uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
		parts = append(parts, masked(off+uint32(4*i), w, p.Bits()-32*i))
	}
	return and(parts...)
}

// l4Port tests the transport port at byte offset field (0 source, 2
// destination) of the transport header with test(port).
func l4Port(v6 bool, field uint32, cond bpf.JumpTest, val uint32) node {
	if v6 {
		return atom{load: []bpf.Instruction{loadAbs(offV6L4+field, 2)}, cond: cond, val: val}
	}
	return atom{
		load: []bpf.Instruction{
			bpf.LoadMemShift{Off: offL3}, // X = IPv4 header length
			bpf.LoadIndirect{Off: offL3 + field, Size: 2},
		},
		cond: cond,
		val:  val,
	}
}

// ---- parser ----

// qualifiers of a primitive, as pcap-filter(7) names them.
type qualifiers struct {
	proto string // "", ip, ip6, tcp, udp, sctp
	dir   string // "", src, dst, "src or dst", "src and dst"
	typ   string // host, net, port, portrange
}

type parser struct {
	expr string
	toks []string
	pos  int
	last *qualifiers // for "host a or b" = "host a or host b"
}

var (
	protoWords = map[string]bool{"ip": true, "ip6": true, "tcp": true, "udp": true, "sctp": true, "icmp": true, "icmp6": true, "arp": true}
	typeWords  = map[string]bool{"host": true, "net": true, "port": true, "portrange": true}
	keywords   = map[string]bool{"src": true, "dst": true, "and": true, "or": true, "not": true, "&&": true, "||": true, "!": true, "(": true, ")": true}
)

func isKeyword(t string) bool { return protoWords[t] || typeWords[t] || keywords[t] }

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '!':
			toks = append(toks, "!")
			i++
		case c == '&' || c == '|':
			if i+1 >= len(s) || s[i+1] != c {
				word := map[byte]string{'&': "and", '|': "or"}[c]
				return nil, fmt.Errorf("unexpected %q at offset %d: bitwise operators are not supported; to join conditions write %q or %q",
					c, i, word, string([]byte{c, c}))
			}
			toks = append(toks, s[i:i+2])
			i += 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()!&|", rune(s[j])) {
				j++
			}
			if k := strings.IndexAny(s[i:j], "[]"); k >= 0 {
				return nil, fmt.Errorf("unexpected %q in %q: byte offsets such as tcp[13] are not supported (nor bit masks, arithmetic or len)",
					s[i+k], s[i:j])
			}
			toks = append(toks, strings.ToLower(s[i:j]))
			i = j
		}
	}
	return toks, nil
}

func parse(expr string) (node, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return nil, fmt.Errorf("capture filter %q: %w", expr, err)
	}
	p := &parser{expr: expr, toks: toks}
	n, err := p.parseExpr()
	if err == nil && p.pos < len(p.toks) {
		err = p.errorf("unexpected %q", p.toks[p.pos])
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *parser) peekAt(k int) string {
	if p.pos+k < len(p.toks) {
		return p.toks[p.pos+k]
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("capture filter %q: %s", p.expr, fmt.Sprintf(format, args...))
}

// parseExpr parses "unary {(and|or) unary}". As in pcap-filter(7), "and"
// and "or" have equal precedence and associate left to right.
func (p *parser) parseExpr() (node, error) {
	n, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		var isAnd bool
		switch p.peek() {
		case "and", "&&":
			isAnd = true
		case "or", "||":
		default:
			return n, nil
		}
		op := p.next()
		if p.peek() == "" {
			return nil, p.errorf("%q at the end of the expression", op)
		}
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if isAnd {
			n = andNode{n, r}
		} else {
			n = orNode{n, r}
		}
	}
}

func (p *parser) parseUnary() (node, error) {
	switch p.peek() {
	case "not", "!":
		p.next()
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return not(x), nil
	case "(":
		p.next()
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, p.errorf("missing \")\"")
		}
		return x, nil
	case "":
		return nil, p.errorf("unexpected end of expression")
	}
	return p.parsePrimitive()
}

func (p *parser) parsePrimitive() (node, error) {
	var q qualifiers
	qualified := false
	if protoWords[p.peek()] {
		q.proto = p.next()
		qualified = true
	}
	if t := p.peek(); t == "src" || t == "dst" {
		p.next()
		q.dir = t
		if o := p.peek(); t == "src" && (o == "or" || o == "and") && p.peekAt(1) == "dst" {
			p.next()
			p.next()
			q.dir = "src " + o + " dst"
		}
		qualified = true
	}
	if typeWords[p.peek()] {
		q.typ = p.next()
		qualified = true
	}
	switch {
	case q.proto != "" && q.dir == "" && q.typ == "":
		// A protocol on its own: "tcp", "ip6", ...
		return protoNode(q.proto), nil
	case !qualified:
		// A bare identifier repeats the previous primitive's qualifiers.
		t := p.peek()
		if t == "" || isKeyword(t) {
			return nil, p.errorf("unexpected %q", t)
		}
		if p.last == nil {
			if looksLikeValue(t) {
				return nil, p.errorf("%q needs a keyword before it (host, net, port, portrange)", t)
			}
			return nil, p.errorf("unsupported keyword %q (supported: ip ip6 tcp udp sctp icmp icmp6 arp, src dst, host net port portrange, and or not)", t)
		}
		q = *p.last
	}
	id := p.next()
	if id == "" || isKeyword(id) {
		if id == "" {
			return nil, p.errorf("missing value after %q", p.toks[p.pos-2])
		}
		return nil, p.errorf("unexpected %q", id)
	}
	if q.typ == "" {
		q.typ = "host"
		if strings.Contains(id, "/") {
			q.typ = "net"
		}
	}
	n, err := p.primitive(q, id)
	if err != nil {
		return nil, err
	}
	p.last = &q
	return n, nil
}

// looksLikeValue tells an address, prefix or number from a word.
func looksLikeValue(t string) bool {
	if _, err := netip.ParseAddr(t); err == nil {
		return true
	}
	if _, err := netip.ParsePrefix(t); err == nil {
		return true
	}
	_, err := strconv.ParseUint(strings.ReplaceAll(t, "-", ""), 10, 64)
	return err == nil
}

func protoNode(proto string) node {
	switch proto {
	case "ip":
		return isIPv4()
	case "ip6":
		return isIPv6()
	case "arp":
		return etherType(etherTypeARP)
	case "icmp":
		return v4Proto(protoICMP)
	case "icmp6":
		return v6Proto(protoICMPv6)
	}
	n := transportProtos[proto]
	return or(v4Proto(n), v6Proto(n))
}

var transportProtos = map[string]uint8{"tcp": protoTCP, "udp": protoUDP, "sctp": protoSCTP}

func bothDirs(dir string, src, dst node) node {
	switch dir {
	case "src":
		return src
	case "dst":
		return dst
	case "src and dst":
		return and(src, dst)
	}
	return or(src, dst)
}

func (p *parser) primitive(q qualifiers, id string) (node, error) {
	switch q.typ {
	case "host", "net":
		var pfx netip.Prefix
		if q.typ == "host" {
			a, err := netip.ParseAddr(id)
			if err != nil || a.Zone() != "" {
				return nil, p.errorf("host %q is not an IPv4 or IPv6 address (names are not resolved)", id)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		} else {
			var err error
			if strings.Contains(id, "/") {
				pfx, err = netip.ParsePrefix(id)
			} else {
				var a netip.Addr
				a, err = netip.ParseAddr(id)
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			if err != nil || pfx.Addr().Zone() != "" {
				return nil, p.errorf("net %q is not an address or ADDR/LEN prefix", id)
			}
			if pfx.Masked() != pfx {
				return nil, p.errorf("net %s has bits set outside its /%d mask", id, pfx.Bits())
			}
		}
		if pfx.Addr().Is4() {
			ip := and(isIPv4(), bothDirs(q.dir, prefixMatch(offV4Src, pfx), prefixMatch(offV4Dst, pfx)))
			arp := func(etherT uint16) node {
				return and(etherType(etherT), bothDirs(q.dir, prefixMatch(offARPSrc, pfx), prefixMatch(offARPDst, pfx)))
			}
			switch q.proto {
			case "":
				// As libpcap: an IPv4 host or net also matches the
				// addresses of ARP and RARP packets.
				return or(ip, arp(etherTypeARP), arp(etherTypeRARP)), nil
			case "ip":
				return ip, nil
			case "arp":
				return arp(etherTypeARP), nil
			}
			return nil, p.errorf("%q modifier applied to IPv4 %s", q.proto, q.typ)
		}
		if q.proto != "" && q.proto != "ip6" {
			return nil, p.errorf("%q modifier applied to IPv6 %s", q.proto, q.typ)
		}
		return and(isIPv6(), bothDirs(q.dir, prefixMatch(offV6Src, pfx), prefixMatch(offV6Dst, pfx))), nil

	case "port", "portrange":
		var lo, hi uint64
		var err error
		if q.typ == "port" {
			lo, err = strconv.ParseUint(id, 10, 16)
			hi = lo
		} else {
			a, b, ok := strings.Cut(id, "-")
			if !ok {
				return nil, p.errorf("portrange %q is not LOW-HIGH", id)
			}
			lo, err = strconv.ParseUint(a, 10, 16)
			if err == nil {
				hi, err = strconv.ParseUint(b, 10, 16)
			}
			if err == nil && lo > hi {
				return nil, p.errorf("portrange %q: %d > %d", id, lo, hi)
			}
		}
		if err != nil {
			return nil, p.errorf("%s %q is not a port number (0-65535; names are not looked up)", q.typ, id)
		}
		var protos []uint8
		switch q.proto {
		case "":
			protos = []uint8{protoTCP, protoUDP, protoSCTP}
		case "tcp", "udp", "sctp":
			protos = []uint8{transportProtos[q.proto]}
		default:
			return nil, p.errorf("%q modifier applied to %s", q.proto, q.typ)
		}
		portTest := func(v6 bool, field uint32) node {
			if lo == hi {
				return l4Port(v6, field, bpf.JumpEqual, uint32(lo))
			}
			return and(l4Port(v6, field, bpf.JumpGreaterOrEqual, uint32(lo)), l4Port(v6, field, bpf.JumpLessOrEqual, uint32(hi)))
		}
		var v4p, v6p []node
		for _, pr := range protos {
			v4p = append(v4p, atom{load: []bpf.Instruction{loadAbs(offV4Proto, 1)}, cond: bpf.JumpEqual, val: uint32(pr)})
			v6p = append(v6p, atom{load: []bpf.Instruction{loadAbs(offV6Next, 1)}, cond: bpf.JumpEqual, val: uint32(pr)})
		}
		v4 := and(isIPv4(), or(v4p...), v4NotFragment(), bothDirs(q.dir, portTest(false, 0), portTest(false, 2)))
		v6 := and(isIPv6(), or(v6p...), bothDirs(q.dir, portTest(true, 0), portTest(true, 2)))
		return or(v4, v6), nil
	}
	return nil, p.errorf("unknown primitive %q", q.typ)
}

// ---- code generation ----

// Labels 0 and 1 are the program's accept and reject returns.
const (
	labelAccept = 0
	labelReject = 1
)

// op is an instruction of the program being generated: a plain
// instruction, a conditional jump to two labels, or an unconditional one.
type op struct {
	ins    bpf.Instruction // plain, when non-nil
	cond   bpf.JumpTest
	val    uint32
	jt, jf int  // labels of a conditional jump
	ja     int  // label of an unconditional jump, when isJa
	isJa   bool // unconditional jump
	long   bool // a conditional jump whose target is out of an 8-bit reach
}

type codegen struct {
	ops    []op
	labels []int // label -> index into ops of the first op after it
}

func (g *codegen) newLabel() int {
	g.labels = append(g.labels, -1)
	return len(g.labels) - 1
}

func (g *codegen) place(l int) { g.labels[l] = len(g.ops) }

// gen emits code that goes to label t when n is true and to f when false.
func (g *codegen) gen(n node, t, f int) {
	switch n := n.(type) {
	case constNode:
		target := f
		if n {
			target = t
		}
		g.ops = append(g.ops, op{isJa: true, ja: target})
	case atom:
		for _, ins := range n.load {
			g.ops = append(g.ops, op{ins: ins})
		}
		g.ops = append(g.ops, op{cond: n.cond, val: n.val, jt: t, jf: f})
	case notNode:
		g.gen(n.x, f, t)
	case andNode:
		mid := g.newLabel()
		g.gen(n.l, mid, f)
		g.place(mid)
		g.gen(n.r, t, f)
	case orNode:
		mid := g.newLabel()
		g.gen(n.l, t, mid)
		g.place(mid)
		g.gen(n.r, t, f)
	default:
		panic(fmt.Sprintf("capture: unknown filter node %T", n))
	}
}

// generate lays out the tree as a classic BPF program. A conditional jump
// reaches at most 255 instructions; one that must go farther becomes
// "jcond +0/+1; ja T; ja F", and the layout is redone until it is stable.
func generate(tree node, accept uint32) ([]bpf.Instruction, error) {
	if c, ok := tree.(constNode); ok {
		if c {
			return []bpf.Instruction{bpf.RetConstant{Val: accept}}, nil
		}
		return []bpf.Instruction{bpf.RetConstant{Val: 0}}, nil
	}
	g := &codegen{}
	g.newLabel() // labelAccept
	g.newLabel() // labelReject
	g.gen(tree, labelAccept, labelReject)
	g.place(labelAccept)
	g.ops = append(g.ops, op{ins: bpf.RetConstant{Val: accept}})
	g.place(labelReject)
	g.ops = append(g.ops, op{ins: bpf.RetConstant{Val: 0}})

	var pos []int // op index -> instruction index; pos[len(ops)] = total
	for {
		pos = pos[:0]
		at := 0
		for _, o := range g.ops {
			pos = append(pos, at)
			at++
			if o.long {
				at += 2
			}
		}
		pos = append(pos, at)
		changed := false
		for i := range g.ops {
			o := &g.ops[i]
			if o.ins != nil || o.isJa || o.long {
				continue
			}
			from := pos[i] + 1
			if pos[g.labels[o.jt]]-from > 255 || pos[g.labels[o.jf]]-from > 255 {
				o.long = true
				changed = true
			}
		}
		if !changed {
			break
		}
	}

	prog := make([]bpf.Instruction, 0, pos[len(g.ops)])
	for i, o := range g.ops {
		from := pos[i] + 1
		switch {
		case o.ins != nil:
			prog = append(prog, o.ins)
		case o.isJa:
			prog = append(prog, bpf.Jump{Skip: uint32(pos[g.labels[o.ja]] - from)})
		case o.long:
			prog = append(prog,
				bpf.JumpIf{Cond: o.cond, Val: o.val, SkipTrue: 0, SkipFalse: 1},
				bpf.Jump{Skip: uint32(pos[g.labels[o.jt]] - (from + 1))},
				bpf.Jump{Skip: uint32(pos[g.labels[o.jf]] - (from + 2))},
			)
		default:
			prog = append(prog, bpf.JumpIf{
				Cond:      o.cond,
				Val:       o.val,
				SkipTrue:  uint8(pos[g.labels[o.jt]] - from),
				SkipFalse: uint8(pos[g.labels[o.jf]] - from),
			})
		}
	}
	if _, err := bpf.Assemble(prog); err != nil {
		return nil, fmt.Errorf("capture: assembling filter: %w", err)
	}
	return prog, nil
}
