package sniff

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// keepInflated is the largest inflate buffer a direction keeps between messages.
const keepInflated = 1 << 20

// wsDir decodes one direction of a WebSocket connection: wsframe's push Decoder in
// lenient mode (a passive observer reports what it sees rather than rejecting
// it), then permessage-deflate, the hook chain and the observers.
//
// The Assembler gets no Inflater: inflating happens here, so that a message that
// cannot be inflated is reported undecodable instead of being treated as a framing
// error (which would make the Decoder resynchronise), and so that a direction
// whose window became unknown under context takeover stops using it.
type wsDir struct {
	c   *conn
	sd  *side
	dir plugins.Direction
	dec *wsframe.Decoder

	inf       *wsframe.Inflater // nil without permessage-deflate in this direction
	takeover  bool
	rsv1      bool   // RSV1 is expected: permessage-deflate, or unknown (no handshake)
	noDeflate string // why compressed messages cannot be inflated when inf is nil
	// broken says why the context-takeover window is unknown (bytes were lost, or
	// a message failed to inflate): later messages are inflated on their own,
	// which succeeds exactly when they do not refer back to earlier ones.
	broken string
	alone  *wsframe.Inflater
	out    []byte // inflated payload

	seq        uint64
	checkStart bool // the first bytes may start mid-frame unless the stream began at its SYN
	resyncing  bool // the decoder was told of a gap and has not reported finding a header yet
	quiet      bool // do not report a resynchronisation that skipped nothing
	hunt       *resyncer
	huntSince  time.Time
	trk        tracker
	held       bool // a header's first byte, held back until the next bytes
	heldByte   byte
	carry      []byte
	emit       func(*wsframe.Message)
	onFound    func(int64)
	onControl  func(wsframe.Header, []byte)
}

func newWSDir(c *conn, i int, sender wsframe.Side, comp *wsframe.Compression, rsv1 bool, noDeflate string) *wsDir {
	d := &wsDir{c: c, sd: &c.sides[i], dir: plugins.ClientToServer, noDeflate: noDeflate, rsv1: rsv1 || comp != nil}
	if sender == wsframe.Server {
		d.dir = plugins.ServerToClient
	}
	if comp != nil {
		d.inf = wsframe.NewInflater(*comp)
		d.takeover = comp.ContextTakeover
	}
	rules := d.rules()
	rules.Lenient = true
	a := wsframe.NewAssembler(wsframe.AssemblerConfig{Limits: c.s.cfg.Limits, Lenient: true})
	d.dec = wsframe.NewDecoder(rules, a)
	d.emit = d.message
	d.onFound = d.found
	d.onControl = d.control
	return d
}

// startMidStream makes the direction look for the first frame: the stream's first
// bytes may be anywhere in a frame. Nothing is reported when they are not.
func (d *wsDir) startMidStream() {
	d.checkStart = false
	d.startHunt()
	d.quiet = true
}

// startHunt gives up the stream position: the decoder forgets its state and the
// resyncer looks for the next trustworthy frame.
func (d *wsDir) startHunt() {
	d.dec.Gap()
	if d.hunt != nil {
		d.hunt.skipped += int64(len(d.hunt.buf))
		d.hunt.buf, d.hunt.skip, d.hunt.verified = d.hunt.buf[:0], 0, false
		d.hunt.reset()
	} else {
		d.hunt = newResyncer(d.rules(), d.maxMessage())
		d.c.s.hunting[d] = struct{}{}
	}
	d.huntSince = d.c.s.now
	d.resyncing, d.quiet = false, false
}

// rules returns the strict rules frames found by a search must meet.
func (d *wsDir) rules() wsframe.Rules {
	r := wsframe.Rules{Sender: d.dir.Sender()}
	if d.rsv1 {
		r.Extensions = wsframe.RSV1
	}
	return r
}

func (d *wsDir) maxMessage() int64 {
	if m := d.c.s.cfg.Limits.MaxMessageSize; m > 0 {
		return m
	}
	return wsframe.DefaultMaxMessageSize
}

// feed decodes the next bytes of the stream.
func (d *wsDir) feed(p []byte) {
	if d.checkStart {
		d.checkStart = false
		if !d.sd.r.fromSYN {
			d.startMidStream()
		}
	}
	if d.hunt != nil {
		rest, done := d.hunt.step(p, huntMore, d.onFound, d.onControl)
		if !done {
			return
		}
		d.endHunt()
		p = rest
	}
	d.decode(p)
}

// finishHunt decides a pending resynchronisation when no more bytes will come
// soon: the stream ended, or waited too long.
func (d *wsDir) finishHunt(mode int) {
	if d.hunt == nil {
		return
	}
	rest, done := d.hunt.step(nil, mode, d.onFound, d.onControl)
	if done {
		d.endHunt()
		d.decode(rest)
	}
}

func (d *wsDir) endHunt() {
	d.hunt = nil
	d.trk = tracker{} // at the header of a message start
	delete(d.c.s.hunting, d)
	// The decoder, told of the gap, now gets bytes that start at a frame header:
	// it finds it without skipping anything, which was reported already.
	d.resyncing, d.quiet = true, true
}

// found reports the resynchronisation the resyncer completed.
func (d *wsDir) found(skipped int64) {
	if d.quiet && skipped == 0 {
		d.quiet = false
		return
	}
	d.quiet = false
	s := d.c.s
	s.stats.Resyncs++
	for _, o := range s.cap {
		o.Resync(d.c.pc, d.dir, s.pktTime, skipped)
	}
}

// control delivers a control frame the resyncer found.
func (d *wsDir) control(h wsframe.Header, payload []byte) {
	frames := [1]wsframe.Header{h}
	d.message(&wsframe.Message{Opcode: h.Opcode, Payload: payload, Wire: payload, Frames: frames[:]})
}

// decode passes bytes to the decoder, except an invalid header and what follows
// it, which go to a resynchronisation instead.
func (d *wsDir) decode(p []byte) {
	if d.held {
		d.carry = append(append(d.carry[:0], d.heldByte), p...)
		p, d.held = d.carry, false
	}
	for len(p) > 0 {
		n, hold, err := d.trk.scan(p)
		if n > 0 {
			d.feedDecoder(p[:n])
		}
		if hold {
			d.held, d.heldByte = true, p[n]
			break
		}
		if err == nil {
			break
		}
		s := d.c.s
		s.stats.Errors++
		for _, o := range s.cap {
			o.StreamError(d.c.pc, d.dir, s.pktTime, err)
		}
		d.startHunt()
		d.hunt.skipped++ // the bad header's first byte
		rest, done := d.hunt.step(p[n+1:], huntMore, d.onFound, d.onControl)
		if !done {
			break
		}
		d.endHunt()
		p = rest
	}
	if cap(d.carry) > keepInflated {
		d.carry = nil
	}
}

// feedDecoder passes bytes the tracker accepted to the decoder.
func (d *wsDir) feedDecoder(p []byte) {
	err := d.dec.Feed(p, d.emit)
	if err == nil {
		return
	}
	s := d.c.s
	if errors.Is(err, wsframe.ErrResync) {
		d.resynced()
		return
	}
	// A message over the limits, which the decoder skips; any other error would
	// be one the tracker missed, after which the decoder resynchronises itself.
	s.stats.Errors++
	for _, o := range s.cap {
		o.StreamError(d.c.pc, d.dir, s.pktTime, err)
	}
}

// resynced reports a resynchronisation the decoder completed.
func (d *wsDir) resynced() {
	if !d.resyncing {
		return // reported already, when a message came out first
	}
	quiet := d.quiet
	d.resyncing, d.quiet = false, false
	n := d.dec.Resynced()
	if quiet && n == 0 {
		return
	}
	s := d.c.s
	s.stats.Resyncs++
	for _, o := range s.cap {
		o.Resync(d.c.pc, d.dir, s.pktTime, n)
	}
}

// gap handles n bytes lost from the stream: the message in progress is lost, and
// under context takeover the inflate window is no longer known. When the gap falls
// inside a frame's payload, the next frame is known to start where that frame
// ends; otherwise the resyncer searches for it.
func (d *wsDir) gap(n int64) {
	d.checkStart = false
	if d.hunt != nil {
		// Still looking for a frame after an earlier gap (or the capture's start):
		// decide with what came before this one, or the messages between the two
		// gaps would be lost for want of a longer chain.
		d.finishHunt(huntGap)
	}
	lost, known, skip := false, false, uint64(0)
	if d.hunt == nil {
		lost = d.dec.InMessage() || d.trk.inFrame && d.trk.ctrl
		if d.trk.inFrame && d.trk.hdrLen == 0 && !d.held && uint64(n) <= d.trk.remaining {
			known, skip = true, d.trk.remaining-uint64(n)
		}
	}
	d.held = false
	d.startHunt()
	if known {
		d.hunt.skip, d.hunt.verified = skip, true
	}
	if d.takeover && d.broken == "" {
		d.broken = "bytes of this direction are missing from the capture, and under context takeover a message may refer back to them"
	}
	s := d.c.s
	s.stats.Gaps++
	s.stats.LostBytes += n
	if lost {
		s.stats.LostMessages++
	}
	for _, o := range s.cap {
		o.Gap(d.c.pc, d.dir, s.pktTime, n, lost)
	}
}

// message handles a message the decoder completed.
func (d *wsDir) message(m *wsframe.Message) {
	if d.resyncing && d.hunt == nil {
		d.resynced()
	}
	c, s := d.c, d.c.s
	rec := &s.rec
	*rec = plugins.Record{Conn: c.pc, Dir: d.dir, Seq: d.seq, Opcode: m.Opcode, Time: s.pktTime,
		Payload: m.Payload, Len: int64(len(m.Payload)), Frames: len(m.Frames), Compressed: m.Compressed}
	d.seq++
	if m.Opcode.IsControl() {
		if m.Opcode == wsframe.OpClose && !c.closeSeen {
			code, reason, _ := wsframe.ParseClose(m.Payload)
			c.closeSeen = true
			c.closeEv = plugins.CloseEvent{Time: s.pktTime, Code: code, Reason: reason, By: d.dir.Sender().String()}
		}
		s.stats.Messages++
		s.stats.MessageBytes += rec.Len
		s.obs.Message(rec)
		return
	}
	if m.Compressed {
		out, why := d.inflate(m.Wire)
		if why != "" {
			rec.Payload, rec.Len = nil, int64(len(m.Wire))
			s.stats.Undecodable++
			for _, o := range s.cap {
				o.Undecodable(rec, why)
			}
			return
		}
		rec.Payload, rec.Len = out, int64(len(out))
	}
	rec.Hooked = rec.Len <= s.maxHook
	if rec.Hooked && s.cfg.Chain.Len() > 0 {
		msg := &s.msg
		*msg = plugins.Message{Conn: c.pc, Dir: d.dir, Opcode: m.Opcode, Payload: rec.Payload, Time: s.pktTime, Seq: rec.Seq}
		res, err := s.cfg.Chain.Run(s.ctxOrBackground(), msg)
		if err != nil {
			s.log.Error("sniff: hook chain", "conn", c.pc.ID, "err", err)
		}
		rec.Decoded = res.Decoded
	} else if !rec.Hooked {
		rec.Payload, rec.Truncated = textPrefix(m.Opcode, rec.Payload[:previewBytes]), true
	}
	s.stats.Messages++
	s.stats.MessageBytes += rec.Len
	s.obs.Message(rec)
	if cap(d.out) > keepInflated {
		d.out = nil
	}
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

// textPrefix cuts a text payload back to a whole UTF-8 sequence.
func textPrefix(op wsframe.Opcode, p []byte) []byte {
	if op != wsframe.OpText {
		return p
	}
	for i := 0; i < utf8.UTFMax && len(p) > 0 && !utf8.Valid(p); i++ {
		p = p[:len(p)-1]
	}
	return p
}
