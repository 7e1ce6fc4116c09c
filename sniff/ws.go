package sniff

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// keepInflated is the largest inflate buffer a direction keeps between messages.
const keepInflated = 1 << 20

// wsDir decodes one direction of a WebSocket connection: wsframe's push Decoder in
// lenient mode (a passive observer reports what it sees rather than rejecting
// it), which also resynchronises after gaps and errors; then permessage-deflate,
// the hook chain and the observers. It is the Decoder's handler.
//
// The Assembler gets no Inflater: inflating happens here, so that a message that
// cannot be inflated is reported undecodable instead of being treated as a framing
// error (which would make the Decoder resynchronise), and so that a direction
// whose window became unknown under context takeover stops using it.
//
// Times: every event carries the capture time at which the bytes that complete it
// were all there. While the Decoder searches for frames (after a gap, an error, or
// at a start mid-stream) it holds the bytes it was fed, and the messages it then
// finds in them were complete long before the search ended: the direction keeps
// the capture time of each piece it fed meanwhile (marks), and places each
// message by its frames' sizes from where the search found its first frame.
// Events of the connection wait in order while either direction may still report
// earlier ones (see conn.release).
type wsDir struct {
	c   *conn
	sd  *side
	dir plugins.Direction
	dec *wsframe.Decoder
	st  *plugins.Stream // set when the connection opens

	inf       *wsframe.Inflater // nil without permessage-deflate in this direction
	takeover  bool
	noDeflate string // why compressed messages cannot be inflated when inf is nil
	// broken says why the context-takeover window is unknown (bytes were lost, or
	// a message failed to inflate): later messages are inflated on their own,
	// which succeeds exactly when they do not refer back to earlier ones.
	broken string
	alone  *wsframe.Inflater
	out    []byte // inflated payload

	checkStart bool      // the first bytes may start mid-frame unless the stream began at its SYN
	hunting    bool      // listed in the sniffer's hunting set
	huntSince  time.Time // when the decoder started resynchronising (see Sniffer.tick)

	fed     int64     // stream bytes fed to the decoder (lost ones not counted)
	pieceAt int64     // offset of the piece being fed
	now     time.Time // when the piece being fed was all there
	held    bool      // the call under way began with bytes held: events are placed by marks
	marks   []mark    // the pieces fed since the decoder began holding bytes
	base    int64     // offset where the decoder's current search began
	cursor  int64     // offset of the end of the last frame reported, while held
	ctlIn   int64     // bytes of control frames reported inside the data message in progress
	calls   int       // handler calls, to tell whether a call decided a search

	queue []queued // events waiting for their turn (see conn.release)
}

// mark says that the stream up to offset end was all there at t.
type mark struct {
	end int64
	t   time.Time
}

// maxMarks bounds the marks of a direction: past it the oldest go, and the
// events they placed take the time of the oldest left.
const maxMarks = 4096

// Kinds of queued events.
const (
	evMessage uint8 = iota
	evControl
	evUndecodable
	evGap
	evResync
	evError
)

// queued is an event waiting for its turn: a copy of a message, or a gap, resync
// or error.
type queued struct {
	kind  uint8
	t     time.Time
	order uint64 // among the connection's events, as they were found
	m     wsframe.Message
	why   string // undecodable: why
	err   error
	n     int64 // gap: bytes lost; resync: bytes skipped
	lost  bool
	size  int // bytes held
}

func newWSDir(c *conn, i int, sender wsframe.Side, comp *wsframe.Compression, rsv1 bool, noDeflate string) *wsDir {
	d := &wsDir{c: c, sd: &c.f.sides[i], dir: plugins.ClientToServer, noDeflate: noDeflate}
	if sender == wsframe.Server {
		d.dir = plugins.ServerToClient
	}
	if comp != nil {
		d.inf = wsframe.NewInflater(*comp)
		d.takeover = comp.ContextTakeover
	}
	rules := wsframe.Rules{Sender: d.dir.Sender(), Lenient: true}
	if rsv1 || comp != nil {
		rules.Extensions = wsframe.RSV1 // permessage-deflate, or unknown (no handshake)
	}
	a := wsframe.NewAssembler(wsframe.AssemblerConfig{Limits: c.s.cfg.Limits, Lenient: true})
	d.dec = wsframe.NewDecoder(rules, a, d)
	return d
}

// startMidStream makes the direction look for the first frame: the stream's first
// bytes may be anywhere in a frame. Nothing is reported when they are not.
func (d *wsDir) startMidStream() {
	d.checkStart = false
	d.dec.StartMidStream()
	d.searchFrom(d.fed)
	d.watchHunt()
}

// watchHunt keeps the sniffer's set of resynchronising directions, whose search
// is decided when no bytes come for a while.
func (d *wsDir) watchHunt() {
	if r := d.dec.Resyncing(); r != d.hunting {
		s := d.c.s
		if d.hunting = r; r {
			s.hunting[d] = struct{}{}
			d.huntSince = s.now
		} else {
			delete(s.hunting, d)
		}
	}
}

// searchFrom notes that the decoder's search for frames begins at offset off.
func (d *wsDir) searchFrom(off int64) {
	d.base, d.cursor, d.ctlIn = off, off, 0
}

// begin starts a call into the decoder about bytes all there at t: when the
// decoder holds none, the events of the call are all complete at t.
func (d *wsDir) begin(t time.Time) {
	d.now = t
	d.held = d.dec.Resyncing()
	if !d.held {
		d.marks = d.marks[:0]
	}
}

// feed decodes the next bytes of the stream, all there at t.
func (d *wsDir) feed(p []byte, t time.Time) {
	if d.checkStart {
		d.checkStart = false
		if !d.c.r[d.sd.idx].is(rFromSYN) {
			d.dec.StartMidStream()
			d.searchFrom(d.fed)
		}
	}
	d.begin(t)
	d.pieceAt = d.fed
	d.fed += int64(len(p))
	if len(d.marks) == maxMarks {
		d.marks = d.marks[:copy(d.marks, d.marks[maxMarks/2:])]
	}
	d.marks = append(d.marks, mark{d.fed, t})
	d.dec.Feed(p)
	d.watchHunt()
	d.c.release(false)
}

// idle decides a pending resynchronisation when no bytes came for a while.
func (d *wsDir) idle() {
	d.begin(d.lastMark())
	d.dec.Idle()
	d.watchHunt()
	d.c.release(false)
}

// end decides a pending resynchronisation at the end of the stream.
func (d *wsDir) end() {
	d.begin(d.lastMark())
	d.dec.End()
	d.hunting = false
	delete(d.c.s.hunting, d)
}

// lastMark returns when the last bytes fed were all there.
func (d *wsDir) lastMark() time.Time {
	if n := len(d.marks); n > 0 {
		return d.marks[n-1].t
	}
	return d.c.s.pktTime
}

// at returns when the stream up to offset off was all there: while the decoder
// held bytes, by the marks; otherwise it is the piece being fed.
func (d *wsDir) at(off int64) time.Time {
	if !d.held {
		return d.now
	}
	if i, _ := slices.BinarySearchFunc(d.marks, off, func(m mark, off int64) int { return cmp.Compare(m.end, off) }); i < len(d.marks) {
		return d.marks[i].t
	}
	return d.lastMark()
}

// place returns the time of a frame of size bytes (header included) reported
// next, and moves past it. A control frame inside a fragmented data message is
// placed after the control frames before it, at the earliest: the data frames
// around it are reported only with their message.
func (d *wsDir) place(size int64, inData bool) time.Time {
	if inData {
		d.ctlIn += size
		return d.at(d.cursor + d.ctlIn)
	}
	d.cursor += d.ctlIn + size
	d.ctlIn = 0
	return d.at(d.cursor)
}

// wireSize returns how many bytes m took on the wire, headers included.
func wireSize(m *wsframe.Message) int64 {
	var n int64
	for _, h := range m.Frames {
		n += int64(h.EncodedLen()) + int64(h.Length)
	}
	return n
}

// Resync reports a resynchronisation the decoder completed (wsframe.DecodeHandler).
func (d *wsDir) Resync(skipped int64) {
	d.calls++
	s := d.c.s
	s.stats.Resyncs++
	d.cursor, d.ctlIn = d.base+skipped, 0
	d.emit(&queued{kind: evResync, t: d.at(d.cursor + 1), n: skipped})
}

// Error reports a protocol error, after which the decoder resynchronises, or a
// message over the limits, which it skips (wsframe.DecodeHandler).
func (d *wsDir) Error(err error) {
	d.calls++
	s := d.c.s
	s.stats.Errors++
	// A search, if one follows, begins at the frame rejected: after the last one
	// reported, or in the piece being fed.
	off := d.pieceAt
	if d.held {
		off = d.cursor
	}
	d.emit(&queued{kind: evError, t: d.at(off + 1), err: err})
	d.searchFrom(off)
}

// gap handles n bytes lost from the stream, noticed at t: the message in progress
// is lost, and under context takeover the inflate window is no longer known.
func (d *wsDir) gap(n int64, t time.Time) {
	d.checkStart = false
	d.begin(t)
	calls := d.calls
	lost := d.dec.Gap(n)
	if !d.held || d.calls != calls {
		// A new search after the gap; otherwise the one under way goes on, and
		// counts what it skips from where it began.
		d.searchFrom(d.fed)
	}
	d.watchHunt()
	d.huntSince = d.c.s.now // a new search, even when one was under way
	if d.takeover && d.broken == "" {
		d.broken = "bytes of this direction are missing from the capture, and under context takeover a message may refer back to them"
	}
	s := d.c.s
	s.stats.Gaps++
	s.stats.LostBytes += n
	if lost {
		s.stats.LostMessages++
	}
	d.emit(&queued{kind: evGap, t: t, n: n, lost: lost})
	d.c.release(false)
}

// Message handles a message the decoder completed (wsframe.DecodeHandler).
func (d *wsDir) Message(m *wsframe.Message) {
	d.calls++
	s := d.c.s
	t := d.place(wireSize(m), m.Opcode.IsControl() && d.dec.InMessage())
	if m.Opcode.IsControl() {
		s.stats.Messages++
		s.stats.MessageBytes += int64(len(m.Payload))
		d.emit(&queued{kind: evControl, t: t, m: *m})
		return
	}
	if m.Compressed {
		out, why := d.inflate(m.Wire)
		if why != "" {
			s.stats.Undecodable++
			d.emit(&queued{kind: evUndecodable, t: t, m: *m, why: why})
			return
		}
		m.Payload = out
	}
	s.stats.Messages++
	s.stats.MessageBytes += int64(len(m.Payload))
	d.emit(&queued{kind: evMessage, t: t, m: *m})
	if cap(d.out) > keepInflated {
		d.out = nil
	}
}

// emit passes an event on now, or queues it when events of the connection wait
// or may come out with earlier times (see conn.release). The payloads of a queued
// message are copied: the decoder's are valid only during its call.
func (d *wsDir) emit(ev *queued) {
	c := d.c
	if !c.holding() {
		d.process(ev)
		return
	}
	f := c.f
	ev.order = f.order
	f.order++
	switch ev.kind {
	case evMessage, evControl:
		ev.m.Payload = append([]byte(nil), ev.m.Payload...)
		ev.size = len(ev.m.Payload)
	case evUndecodable:
		ev.m.Payload, ev.m.Wire = nil, append([]byte(nil), ev.m.Wire...)
		ev.size = len(ev.m.Wire)
	}
	ev.m.Frames = append([]wsframe.Header(nil), ev.m.Frames...)
	f.queued += ev.size
	c.s.queued += ev.size
	d.queue = append(d.queue, *ev)
}

// process reports an event: through the chain and to the observers.
func (d *wsDir) process(ev *queued) {
	c, s := d.c, d.c.s
	pc := c.f.pc
	switch ev.kind {
	case evControl:
		rec, cev, isClose := d.st.Control(&ev.m, ev.t)
		if isClose && !c.f.closeSeen {
			c.f.closeSeen, c.f.closeEv = true, cev
		}
		d.st.Emit(rec) // nil for a ping counted with others
	case evMessage:
		rec, _, err := d.st.Message(s.ctxOrBackground(), &ev.m, ev.t)
		if err != nil {
			s.log.Error("sniff: hook chain", "conn", pc.ID, "err", err)
		}
		d.st.Emit(rec)
	case evUndecodable:
		d.st.Undecodable(&ev.m, ev.t, ev.why)
	case evGap:
		s.obs.Gap(pc, d.dir, ev.t, ev.n, ev.lost)
	case evResync:
		s.obs.Resync(pc, d.dir, ev.t, ev.n)
	case evError:
		s.obs.StreamError(pc, d.dir, ev.t, ev.err)
	}
}

// holding reports whether a WebSocket connection's events must wait for their
// turn: some already wait, or a direction may still report events earlier than
// those to come (see holdFrom).
func (c *conn) holding() bool {
	for i := range c.f.sides {
		if d := c.f.sides[i].ws; d != nil && len(d.queue) > 0 {
			return true
		}
	}
	_, ok := c.holdFrom()
	return ok
}

// holdFrom returns the earliest time a direction may still report an event at,
// and whether one may: its decoder holds bytes (what it finds in them is placed
// at their times), or its reassembler holds segments (delivered at their
// arrival when the bytes before them are given up).
func (c *conn) holdFrom() (time.Time, bool) {
	var t time.Time
	ok := false
	early := func(u time.Time) {
		if !ok || u.Before(t) {
			t, ok = u, true
		}
	}
	for i := range c.f.sides {
		if d := c.f.sides[i].ws; d != nil && d.dec.Resyncing() && len(d.marks) > 0 {
			early(d.marks[0].t)
		}
		if c.r[i].q != nil {
			early(c.r[i].oldest())
		}
	}
	return t, ok
}

// release reports the queued events of the connection whose turn came, in order
// of time across both directions (each direction's in its own order): those
// earlier than anything a direction may still report. all releases every one (the
// connection ends); so do too many bytes held (MaxBuffered for the connection,
// MaxBufferedTotal for all), or events waiting longer than the reorder timeout:
// then later events may come out of order.
func (c *conn) release(all bool) {
	f := c.f
	if f == nil {
		return
	}
	a, b := f.sides[0].ws, f.sides[1].ws
	if a == nil || b == nil || len(a.queue)+len(b.queue) == 0 {
		return
	}
	s := c.s
	limit, hold := c.holdFrom()
	force := all || f.queued > s.cfg.MaxBuffered || s.queued > s.cfg.MaxBufferedTotal
	for len(a.queue)+len(b.queue) > 0 {
		d := a
		if len(a.queue) == 0 || len(b.queue) > 0 && before(&b.queue[0], &a.queue[0]) {
			d = b
		}
		ev := &d.queue[0]
		if hold && !force && !ev.t.Before(limit) && s.now.Sub(ev.t) < s.cfg.ReorderTimeout {
			break
		}
		e := *ev
		d.queue[0] = queued{}
		d.queue = d.queue[1:]
		f.queued -= e.size
		s.queued -= e.size
		d.process(&e)
	}
	for _, d := range []*wsDir{a, b} {
		if len(d.queue) == 0 {
			d.queue = nil
		}
	}
}

// before reports whether event x comes before event y.
func before(x, y *queued) bool {
	return x.t.Before(y.t) || x.t.Equal(y.t) && x.order < y.order
}

// inflate returns the payload of a compressed message, or why it cannot be shown.
func (d *wsDir) inflate(wire []byte) ([]byte, string) {
	if d.inf == nil {
		return nil, d.noDeflate
	}
	limit := d.c.s.cfg.Limits.MaxMessageSize
	if limit <= 0 {
		limit = wsframe.DefaultMaxMessageSize
	}
	if d.broken == "" {
		out, err := d.inf.Inflate(d.out[:0], wire, limit)
		d.out = out[:0]
		if err == nil {
			return out, ""
		}
		if !d.takeover {
			return nil, "cannot inflate: " + err.Error()
		}
		d.broken = fmt.Sprintf("a message failed to inflate under context takeover (%v): the capture does not hold the history it refers to", err)
		return nil, d.broken
	}
	if d.alone == nil {
		d.alone = wsframe.NewInflater(wsframe.Compression{})
	}
	out, err := d.alone.Inflate(d.out[:0], wire, limit)
	d.out = out[:0]
	if err == nil {
		return out, ""
	}
	return nil, d.broken
}
