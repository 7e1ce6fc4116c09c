// Package lossycap generates WebSocket captures that lost TCP segments, and counts
// how well what a sniffer (or a bare wsframe.Decoder) reports matches what was sent,
// message by message.
//
// A capture holds a few WebSocket connections (TCP handshake, HTTP upgrade and
// 101, messages both ways, close frames, FINs) with every K-th segment that carries
// WebSocket bytes left out. The generator keeps what it sent: each message's
// opcode, payload and the stream ranges of its frames, so that a message can be
// told "clear of a gap" (no byte of its frames, headers included, was lost) and a
// report can be checked against the message sent at that place ([Capture.Check],
// [Capture.Decode]).
//
// It is used by the sniff and wsframe tests and by cmd/wstap-sniffbench -lossy.
package lossycap

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/wsframe"
)

// Sizes is a distribution of payload sizes.
type Sizes uint8

const (
	// Chatty: 99% of 16 to 300 bytes, 1% log-uniform between 1 KiB and 64 KiB
	// (cmd/wstap-sniffbench's mix).
	Chatty Sizes = iota
	// LogUniform: log-uniform between 1 byte and 64 KiB.
	LogUniform
)

// Deflate is a connection's use of permessage-deflate.
type Deflate uint8

const (
	NoDeflate  Deflate = iota // not negotiated
	NoTakeover                // compressed, no context takeover either way
	Takeover                  // compressed with context takeover both ways
)

func (d Deflate) String() string {
	return [...]string{"none", "no-takeover", "takeover"}[d]
}

// Cut says where segments begin.
type Cut uint8

const (
	// PerSend: each message goes out in its own segments of up to MSS bytes, as
	// from a sender that writes one message per send.
	PerSend Cut = iota
	// Anywhere: a direction's bytes are cut into segments of 1 to MSS bytes
	// wherever they fall.
	Anywhere
	// Either: PerSend or Anywhere, drawn per connection.
	Either
)

func (c Cut) String() string {
	return [...]string{"per-send", "anywhere", "either"}[c]
}

// Config describes a capture. [Issue] and [Mixed] return the two used by the
// tests and the benchmark.
type Config struct {
	Seed     uint64
	Conns    int // WebSocket connections; each message goes to one drawn at random
	Messages int // data messages over all connections and both directions

	// DropEvery leaves out every DropEvery-th segment carrying WebSocket bytes,
	// counted over the whole capture; 0 leaves out none.
	DropEvery int

	// Text is the share of text messages; the others are binary (random bytes).
	// JSON text is {"seq":N,"data":"…"} in printable ASCII; other text mixes ASCII
	// with two- to four-byte runes.
	Text float64
	JSON bool

	Sizes Sizes
	// Fragment is the share of data messages sent in several frames, with a ping
	// between two of them one time in two.
	Fragment float64
	// Control is the share of data messages followed by a ping or a pong.
	Control float64
	// Deflate lists the modes a connection draws from; empty means NoDeflate.
	Deflate []Deflate
	Cut     Cut
	MSS     int // largest segment payload; 0 means 1448
	// Pauses is the share of messages after which the capture is silent for
	// PauseTime (a sniffer then decides a search that waits for more bytes).
	Pauses float64
}

// PauseTime is how long the capture is silent after a message, when it is.
const PauseTime = 5 * time.Second

// Issue returns the capture of hardening issue #24: 2 connections, n JSON text
// messages, client frames masked, one message per send, every k-th segment lost.
func Issue(seed uint64, n, k int) Config {
	return Config{Seed: seed, Conns: 2, Messages: n, DropEvery: k, Text: 1, JSON: true, Sizes: Chatty, Cut: PerSend}
}

// Mixed returns a capture with everything the resynchronisation has to cope with:
// text and binary of 1 B to 64 KiB, fragments and control frames, deflate with and
// without context takeover, segments cut per send or anywhere.
func Mixed(seed uint64, n, k int) Config {
	return Config{Seed: seed, Conns: 3, Messages: n, DropEvery: k, Text: 0.5, Sizes: LogUniform,
		Fragment: 0.1, Control: 0.05, Deflate: []Deflate{NoDeflate, NoTakeover, Takeover}, Cut: Either, Pauses: 0.01}
}

// Message is a message sent, data or control.
type Message struct {
	Op      wsframe.Opcode
	Payload []byte // as the application sent it
	// Wire is the payload as carried (compressed when Compressed).
	Wire       []byte
	Compressed bool
	// Frames are the stream ranges [from, to) of its frames, headers included.
	Frames [][2]int64
	// Clear: no byte of its frames was lost.
	Clear bool
	// Alone: it can be inflated without the messages before it (always true when
	// not compressed or without context takeover).
	Alone bool
	// AfterGap: a byte of its direction was lost before it.
	AfterGap bool
}

// Expected reports whether a sniffer should show the message: it is clear of every
// gap and, under context takeover after a gap, inflates on its own. (A decoder that
// does not inflate shows every message clear of a gap.)
func (m *Message) Expected() bool { return m.Clear && (m.Alone || !m.AfterGap) }

// Direction is one direction of a connection.
type Direction struct {
	// Stream is every byte sent, lost ones included; WS is where the WebSocket
	// frames begin (after the HTTP upgrade).
	Stream []byte
	WS     int64
	// Segments are the stream ranges of its segments in order; Dropped those left
	// out of the capture.
	Segments [][2]int64
	Dropped  []bool
	// Msgs are the messages in the order they complete.
	Msgs    []*Message
	Deflate Deflate
}

// Conn is one WebSocket connection.
type Conn struct {
	Client, Server netip.AddrPort
	Deflate        Deflate
	Cut            Cut // PerSend or Anywhere
	Dirs           [2]Direction
}

// Capture is what a capture holds: connections, and the order of their segments.
type Capture struct {
	Cfg   Config
	Conns []*Conn
	// Order lists the segments in capture order.
	Order []SegRef
}

// SegRef names one segment of a connection's direction.
type SegRef struct {
	Conn, Dir, Seg int
	Pause          bool // the capture was silent for PauseTime before it
}

// Generate builds the connections and segments of a capture described by cfg.
func Generate(cfg Config) (*Capture, error) {
	if cfg.Conns < 1 || cfg.Messages < 0 {
		return nil, fmt.Errorf("lossycap: %d connections, %d messages", cfg.Conns, cfg.Messages)
	}
	if cfg.MSS <= 0 {
		cfg.MSS = 1448
	}
	g := &gen{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x10551))}
	g.text = textSource(g.rng, cfg.JSON)
	g.capture = &Capture{Cfg: cfg}
	for i := range cfg.Conns {
		if err := g.open(i); err != nil {
			return nil, err
		}
	}
	for range cfg.Messages {
		if err := g.message(); err != nil {
			return nil, err
		}
	}
	for _, c := range g.conns {
		for d := range 2 {
			if err := g.close(c, d); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range g.conns {
		for d := range 2 {
			g.flush(c, d)
		}
	}
	g.drop()
	g.classify()
	return g.capture, nil
}

// gen is the state of one generation.
type gen struct {
	cfg     Config
	rng     *rand.Rand
	capture *Capture
	conns   []*genConn
	text    []byte // where text messages are cut from
	seq     int
	pause   bool // the next segment comes after a pause
}

type genConn struct {
	*Conn
	idx     int
	defl    [2]*wsframe.Deflater
	pending [2]int64 // Anywhere: stream offset up to which segments were cut
	buf     []byte   // scratch
}

func (g *gen) open(i int) error {
	c := &genConn{Conn: &Conn{
		Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i)}), uint16(50000+i)),
		Server: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, 1}), 9200),
	}, idx: i}
	if len(g.cfg.Deflate) > 0 {
		c.Deflate = g.cfg.Deflate[g.rng.IntN(len(g.cfg.Deflate))]
	}
	c.Cut = g.cfg.Cut
	if c.Cut == Either {
		c.Cut = Cut(g.rng.IntN(2))
	}
	ext, resp := "", ""
	switch c.Deflate {
	case NoTakeover:
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
		resp = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	case Takeover:
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
		resp = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	}
	if c.Deflate != NoDeflate {
		for d := range 2 {
			var err error
			if c.defl[d], err = wsframe.NewDeflater(wsframe.Compression{ContextTakeover: c.Deflate == Takeover}); err != nil {
				return err
			}
		}
	}
	req := fmt.Sprintf("GET /feed/%d HTTP/1.1\r\nHost: lossy.test:9200\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", i, ext)
	res := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" + resp + "\r\n"
	for d, hs := range []string{req, res} {
		dir := &c.Dirs[d]
		dir.Deflate = c.Deflate
		dir.Stream = append(dir.Stream, hs...)
		dir.WS = int64(len(dir.Stream))
		g.segment(c, d, 0, dir.WS) // the handshake is never cut short: one segment
		c.pending[d] = dir.WS
	}
	g.conns = append(g.conns, c)
	g.capture.Conns = append(g.capture.Conns, c.Conn)
	return nil
}

// segment adds the segment [from, to) of direction d to the capture's order.
func (g *gen) segment(c *genConn, d int, from, to int64) {
	dir := &c.Dirs[d]
	dir.Segments = append(dir.Segments, [2]int64{from, to})
	dir.Dropped = append(dir.Dropped, false)
	g.capture.Order = append(g.capture.Order, SegRef{c.idx, d, len(dir.Segments) - 1, g.pause})
	g.pause = false
}

// send cuts what direction d wrote since its last segment into segments.
func (g *gen) send(c *genConn, d int, final bool) {
	dir := &c.Dirs[d]
	end := int64(len(dir.Stream))
	for c.pending[d] < end {
		n := int64(g.cfg.MSS)
		if c.Cut == Anywhere {
			n = int64(1 + g.rng.IntN(g.cfg.MSS))
			if g.rng.IntN(8) == 0 {
				n = int64(1 + g.rng.IntN(8)) // a few tiny ones
			}
			if c.pending[d]+n > end && !final {
				return // wait for more bytes: this cut falls further on
			}
		}
		n = min(n, end-c.pending[d])
		g.segment(c, d, c.pending[d], c.pending[d]+n)
		c.pending[d] += n
	}
}

func (g *gen) flush(c *genConn, d int) { g.send(c, d, true) }

// frame appends one frame to direction d; client frames are masked.
func (g *gen) frame(c *genConn, d int, h wsframe.Header, payload []byte) [2]int64 {
	dir := &c.Dirs[d]
	from := int64(len(dir.Stream))
	h.Length = uint64(len(payload))
	if d == 0 {
		h.Masked = true
		binary.LittleEndian.PutUint32(h.Mask[:], g.rng.Uint32())
	}
	dir.Stream = wsframe.AppendHeader(dir.Stream, h)
	off := len(dir.Stream)
	dir.Stream = append(dir.Stream, payload...)
	if h.Masked {
		wsframe.Mask(h.Mask, 0, dir.Stream[off:])
	}
	return [2]int64{from, int64(len(dir.Stream))}
}

// control appends a ping or pong as a message of its own.
func (g *gen) control(c *genConn, d int, op wsframe.Opcode) *Message {
	g.seq++
	p := fmt.Appendf(nil, "%s-%d", op, g.seq)
	m := &Message{Op: op, Payload: p, Wire: p, Alone: true}
	m.Frames = append(m.Frames, g.frame(c, d, wsframe.Header{Fin: true, Opcode: op}, p))
	return m
}

func (g *gen) size() int {
	switch g.cfg.Sizes {
	case LogUniform:
		return int(math.Exp(g.rng.Float64() * math.Log(65536)))
	}
	if g.rng.IntN(100) == 0 {
		return int(math.Exp(math.Log(1024) + g.rng.Float64()*(math.Log(65536)-math.Log(1024))))
	}
	return 16 + g.rng.IntN(285)
}

const (
	printable = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:;-_!?()[]{}=+*/@#$%&<>|~^"
	runes     = "abcdefghij klmnopqrstuvwxyz0123456789é✓😀{}\":,ßд€"
)

// payload draws a data message of n bytes (text: about n, whole runes): random
// bytes, or a piece of the text source at a random place after a sequence tag.
func (g *gen) payload(op wsframe.Opcode, n int) []byte {
	g.seq++
	if op == wsframe.OpBinary {
		p := make([]byte, n+8)
		for i := 0; i < n; i += 8 {
			binary.LittleEndian.PutUint64(p[i:], g.rng.Uint64())
		}
		return p[:n]
	}
	var p []byte
	if g.cfg.JSON {
		p = fmt.Appendf(make([]byte, 0, n+24), `{"seq":%d,"data":"`, g.seq)
	} else {
		p = fmt.Appendf(make([]byte, 0, n+24), "%d:", g.seq)
	}
	for len(p) < n-2 {
		off := g.rng.IntN(len(g.text))
		for off > 0 && !utf8.RuneStart(g.text[off]) {
			off--
		}
		piece := g.text[off:min(len(g.text), off+n-2-len(p))]
		for len(piece) > 0 && !utf8.Valid(piece) { // a rune cut at the end
			piece = piece[:len(piece)-1]
		}
		if len(piece) == 0 {
			break
		}
		p = append(p, piece...)
	}
	if g.cfg.JSON {
		p = append(p, `"}`...)
	}
	return p
}

// textSource returns 64 KiB of text to cut messages from: printable ASCII for
// JSON, or ASCII mixed with two- to four-byte runes.
func textSource(rng *rand.Rand, json bool) []byte {
	rs := []rune(runes)
	var b []byte
	for len(b) < 64<<10 {
		if json || rng.IntN(4) > 0 {
			b = append(b, printable[rng.IntN(len(printable))])
		} else {
			b = utf8.AppendRune(b, rs[rng.IntN(len(rs))])
		}
	}
	return b
}

// message sends a data message on a connection and direction drawn at random,
// with the control frames that go with it.
func (g *gen) message() error {
	c := g.conns[g.rng.IntN(len(g.conns))]
	d := g.rng.IntN(2)
	op := wsframe.OpBinary
	if g.rng.Float64() < g.cfg.Text {
		op = wsframe.OpText
	}
	m := &Message{Op: op, Payload: g.payload(op, g.size()), Alone: true}
	m.Wire = m.Payload
	rsv := uint8(0)
	if c.defl[d] != nil && g.rng.IntN(8) > 0 { // a few go uncompressed
		var err error
		if m.Wire, err = c.defl[d].Deflate(nil, m.Payload); err != nil {
			return err
		}
		m.Compressed, rsv = true, wsframe.RSV1
		if c.Deflate == Takeover {
			alone, err := wsframe.NewInflater(wsframe.Compression{}).Inflate(nil, m.Wire, 1<<20)
			m.Alone = err == nil && string(alone) == string(m.Payload)
		}
	}
	sizes := []int{len(m.Wire)}
	if g.rng.Float64() < g.cfg.Fragment && len(m.Wire) > 1 {
		sizes = sizes[:0]
		for rest := len(m.Wire); rest > 0; {
			n := 1 + g.rng.IntN(rest)
			sizes = append(sizes, n)
			rest -= n
		}
	}
	var ctl []*Message
	w := m.Wire
	for j, n := range sizes {
		h := wsframe.Header{Fin: j == len(sizes)-1, Opcode: op, Rsv: rsv}
		if j > 0 {
			h.Opcode, h.Rsv = wsframe.OpContinuation, 0
		}
		m.Frames = append(m.Frames, g.frame(c, d, h, w[:n]))
		w = w[n:]
		if j < len(sizes)-1 && g.rng.IntN(2) == 0 {
			ctl = append(ctl, g.control(c, d, wsframe.OpPing))
		}
	}
	dir := &c.Dirs[d]
	dir.Msgs = append(dir.Msgs, ctl...) // they complete before m
	dir.Msgs = append(dir.Msgs, m)
	if g.rng.Float64() < g.cfg.Control {
		dir.Msgs = append(dir.Msgs, g.control(c, d, []wsframe.Opcode{wsframe.OpPing, wsframe.OpPong}[g.rng.IntN(2)]))
	}
	g.send(c, d, false)
	g.pause = g.pause || g.rng.Float64() < g.cfg.Pauses
	return nil
}

// close sends direction d's close frame.
func (g *gen) close(c *genConn, d int) error {
	p := wsframe.AppendClose(nil, wsframe.CloseNormal, "bye")
	m := &Message{Op: wsframe.OpClose, Payload: p, Wire: p, Alone: true}
	m.Frames = append(m.Frames, g.frame(c, d, wsframe.Header{Fin: true, Opcode: wsframe.OpClose}, p))
	c.Dirs[d].Msgs = append(c.Dirs[d].Msgs, m)
	g.send(c, d, true)
	return nil
}

// Gaps returns how many holes the capture has before bytes that follow them: runs
// of dropped segments, per direction, with a segment after them. (Only the FIN's
// sequence number shows a run at the end.)
func (c *Capture) Gaps() int {
	n := 0
	for _, cn := range c.Conns {
		for d := range cn.Dirs {
			dropped := cn.Dirs[d].Dropped
			for k := 1; k < len(dropped); k++ {
				if dropped[k-1] && !dropped[k] {
					n++
				}
			}
		}
	}
	return n
}

// drop leaves out every DropEvery-th segment after the handshakes.
func (g *gen) drop() {
	if g.cfg.DropEvery <= 0 {
		return
	}
	n := 0
	for _, r := range g.capture.Order {
		dir := &g.capture.Conns[r.Conn].Dirs[r.Dir]
		if dir.Segments[r.Seg][0] < dir.WS {
			continue
		}
		if n++; n%g.cfg.DropEvery == 0 {
			dir.Dropped[r.Seg] = true
		}
	}
}

// classify marks the messages clear of the gaps, and those after one.
func (g *gen) classify() {
	for _, c := range g.capture.Conns {
		for d := range c.Dirs {
			dir := &c.Dirs[d]
			var lost [][2]int64
			for k, s := range dir.Segments {
				if dir.Dropped[k] {
					lost = append(lost, s)
				}
			}
			for _, m := range dir.Msgs {
				m.Clear = true
				for _, f := range m.Frames {
					for _, l := range lost {
						if f[0] < l[1] && l[0] < f[1] {
							m.Clear = false
						}
						if l[0] < f[0] {
							m.AfterGap = true
						}
					}
				}
			}
		}
	}
}
