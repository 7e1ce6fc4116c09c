package wsframe

import (
	"errors"
)

// DecodeHandler receives, in stream order, what a [Decoder] finds.
type DecodeHandler interface {
	// Message is called for every message completed, control frames included;
	// m is valid only during the call.
	Message(m *Message)
	// Resync is called when the Decoder has found frames again after a gap, a
	// protocol error or a start in the middle of the stream, before the first
	// message from there; skipped is how many bytes it passed over (the messages
	// it held back included, see [UncertainHandler]).
	Resync(skipped int64)
	// Error is called for a protocol error, after which the Decoder
	// resynchronises, for a message over the limits, which it skips, and for a
	// message whose payload is bad (say, its deflate data), after which it goes
	// on.
	Error(err error)
}

// UncertainHandler is an optional interface of a [DecodeHandler]. After a search for
// frames (see [Decoder]) the first messages found may be made of the payload bytes
// of the message a gap cut; those the bytes cannot prove real are held back. A
// handler with this method receives them (m is valid during the call) after the
// resynchronisation's report; without it they are dropped, and counted in the
// bytes the resynchronisation reports skipped.
type UncertainHandler interface {
	Uncertain(m *Message)
}

// Decoder parses frames from a byte stream pushed to it in pieces of any size (a
// TCP payload at a time), for passive sniffing where nothing may block: the same
// header parsing, [Rules] and [Assembler] as [Reader], driven from the other side.
//
// After bytes were lost ([Decoder.Gap]), a protocol error, or a start in the
// middle of the stream ([Decoder.StartMidStream]) it resynchronises: it drops
// the message in progress and looks for the next message start it can trust (see
// resync.go), handing on the control frames it passes. Unless the place of the next
// frame was known (a gap inside a frame's payload), it then shows a message only
// once the bytes prove it is not made of the lost message's payload: the messages
// before the first one proved are held back ([UncertainHandler]), and a control
// frame that completes inside a data message waits for that message's verdict. To
// judge, it learns how the stream's payload looks while in step, and whether its
// frames begin where the pieces fed begin: feed each TCP segment's payload in one
// call.
type Decoder struct {
	rules Rules
	a     *Assembler
	h     DecodeHandler

	hdr    [MaxHeaderSize]byte // header bytes received so far
	hdrLen int

	cur       Header
	remaining uint64
	maskPos   int
	keys      keyBlock
	inFrame   bool

	skipping  bool // discarding the rest of a message too large to hold
	skipFrame bool // the current frame belongs to that message

	hunt    *resyncer // non-nil while resynchronising
	quiet   bool      // do not report a resynchronisation that skipped nothing
	control Message   // a control frame found by the hunt
	ctlHdr  [1]Header

	ev     evidence // what the stream looks like, learned in step
	pre    prefix   // after a search, until a message is trusted
	queued []queued // control frames completed inside a data message of the prefix
}

// queued is a control frame completed inside a data message after a search: it
// waits for that message's verdict, which its own depends on (a data message
// proved real proves the frames after its start).
type queued struct {
	h       Header
	payload []byte
	real    float64 // prefix.control when it came
	size    int64
}

// maxQueued bounds the control frames waiting for a data message's verdict.
const maxQueued = 64

// prefix follows the frames after a position a search took, until a message among
// them is trusted (see resync.go). It weighs the explanations of the frames seen:
// all real, or the first k false and the next one real (for every k so far).
type prefix struct {
	active bool
	// total is the weight of all explanations, relative to "all real" (1); chain
	// is the chance of the frames so far looking as they do if they are all payload
	// bytes (times prior); tries is the number of positions searched, and reach how
	// far before a given place a chain of frames of these shapes can begin. points
	// is the chance that the header of the frame in progress, false, points at the
	// place where it ends.
	total, chain, tries, reach, points float64
	// data and control are total as it was before the first frame of the data
	// message and of the control frame in progress: the weight of the explanations
	// in which they are real. dataLen and controlLen are their wire bytes.
	data, control       float64
	dataLen, controlLen int64
	skipped             int64 // bytes passed over and not reported
	report              bool  // the resynchronisation is still to be reported
}

// NewDecoder returns a Decoder checking frames against rules and assembling them with
// a, reporting to h. Passive use wants rules.Lenient and an Assembler in lenient
// mode. A resynchronisation checks headers with rules made strict.
func NewDecoder(rules Rules, a *Assembler, h DecodeHandler) *Decoder {
	return &Decoder{rules: rules, a: a, h: h, ev: newEvidence(rules)}
}

// InMessage reports whether a data message has started and not ended.
func (d *Decoder) InMessage() bool { return d.a.InMessage() || d.skipping }

// Resyncing reports whether the Decoder is looking for frames to trust, which may
// wait for more bytes (see [Decoder.Idle]).
func (d *Decoder) Resyncing() bool { return d.hunt != nil }

// StartMidStream tells the Decoder that the next bytes may begin anywhere in a
// frame (a capture that started after the connection did). It finds the first
// frame as after a gap, and reports the resynchronisation only if it skipped bytes.
func (d *Decoder) StartMidStream() {
	d.startHunt()
	d.hunt.fromGap, d.hunt.gapSkipped = true, d.hunt.skipped
	d.quiet = true
}

// Gap tells the Decoder that n bytes of the stream were lost. The frame and
// message in progress are abandoned; lost reports whether there was one (the
// caller reports it lost). When the gap falls inside a frame's payload the next
// header's place is known; otherwise the Decoder searches for it in what follows.
func (d *Decoder) Gap(n int64) (lost bool) {
	if r := d.hunt; r != nil && r.verified && r.skip > 0 && n >= 0 && uint64(n) <= r.skip {
		// Inside a frame the resynchronisation skips: the next header's place is
		// still known.
		r.skip -= uint64(n)
		return false
	}
	if d.hunt != nil {
		// Still resynchronising after an earlier gap (or the start): decide with
		// what came before this one, or the messages between the two gaps would be
		// lost for want of a longer chain.
		d.decide(huntGap)
	}
	known, skip := false, uint64(0)
	if d.hunt == nil {
		lost = d.InMessage() || d.inFrame || d.hdrLen > 0
		if d.inFrame && n >= 0 && uint64(n) <= d.remaining {
			known, skip = true, d.remaining-uint64(n)
		}
	}
	d.startHunt()
	d.hunt.fromGap, d.hunt.gapSkipped = true, d.hunt.skipped
	if known {
		d.hunt.skip, d.hunt.verified, d.hunt.exact = skip, true, true
	}
	return lost
}

// Idle tells the Decoder that no bytes came for a while. A resynchronisation
// waiting for more bytes to verify a chain of frames may then accept one that ends
// exactly where the bytes end.
func (d *Decoder) Idle() { d.decide(huntSettle) }

// End tells the Decoder that the stream ended, so that a resynchronisation still
// waiting for bytes decides with what it has.
func (d *Decoder) End() {
	d.decide(huntEnd)
	d.settleQueued()
	d.endPrefix()
}

// decide lets a pending resynchronisation decide in mode without new bytes, and
// parses what follows the position it accepts.
func (d *Decoder) decide(mode int) {
	if d.hunt == nil {
		return
	}
	if rest, done := d.hunt.step(nil, mode, d.found, d.foundControl); done {
		d.hunt = nil
		d.parse(rest)
	}
}

// Feed parses p, calling the handler for every message, error and
// resynchronisation. Masked payload is unmasked in place in p.
func (d *Decoder) Feed(p []byte) {
	if d.hunt == nil && !d.pre.active {
		d.ev.feed(!d.inFrame && d.hdrLen == 0)
	}
	if d.hunt != nil {
		rest, done := d.hunt.step(p, huntMore, d.found, d.foundControl)
		if !done {
			return
		}
		d.hunt = nil
		p = rest
	}
	d.parse(p)
}

// parse parses p from the current position, which is known.
func (d *Decoder) parse(p []byte) {
	for len(p) > 0 {
		if d.hunt != nil {
			// A protocol error started a resynchronisation: the rest is searched.
			rest, done := d.hunt.step(p, huntMore, d.found, d.foundControl)
			if !done {
				return
			}
			d.hunt = nil
			p = rest
			continue
		}
		if !d.inFrame {
			n, ok := d.header(p)
			p = p[n:]
			if !ok {
				continue // a bad header, or a message skipped
			}
			if !d.inFrame {
				return // need more header bytes
			}
		}
		n := int(min(uint64(len(p)), d.remaining))
		chunk := p[:n]
		p = p[n:]
		if d.cur.Masked {
			d.maskPos = d.keys.mask(d.cur.Mask, d.maskPos, chunk) // unmask in place: the caller's buffer is ours to scratch
		}
		if !d.skipFrame {
			d.a.Write(chunk)
		}
		d.remaining -= uint64(n)
		if d.remaining > 0 {
			return
		}
		d.inFrame = false
		if d.skipFrame {
			d.skipFrame = false
			d.skipping = !d.cur.Fin
			continue
		}
		if d.pre.active {
			var text []byte
			if !d.cur.Opcode.IsControl() {
				text = d.maskedText()
			}
			d.frameEnd(text)
		}
		m, err := d.a.End()
		if err != nil {
			d.fail(err)
			if !payloadError(err) {
				d.startHunt()
			}
			continue
		}
		switch {
		case m == nil:
		case !d.pre.active:
			d.emit(m)
		case m.Opcode.IsControl() && d.a.InMessage() && len(d.queued) < maxQueued:
			d.queue(m)
		case m.Opcode.IsControl():
			d.decideControl(m, d.pre.control, d.pre.controlLen)
		default:
			d.settle(m)
		}
	}
}

// header consumes header bytes from p and, once the header is whole, checks it and
// begins the frame. It returns how many bytes it consumed, and false after
// reporting an error: a header that fails the checks starts a resynchronisation
// at its second byte; a message over the limits is skipped.
func (d *Decoder) header(p []byte) (int, bool) {
	n := 0
	if d.hdrLen < 2 {
		n = copy(d.hdr[d.hdrLen:2], p)
		d.hdrLen += n
		if d.hdrLen < 2 {
			return n, true
		}
	}
	want := HeaderLen(d.hdr[0], d.hdr[1])
	m := copy(d.hdr[d.hdrLen:want], p[n:])
	d.hdrLen += m
	n += m
	if d.hdrLen < want {
		return n, true
	}
	d.hdrLen = 0
	h, size, _ := ParseHeader(d.hdr[:want])
	if err := d.rules.Check(h, size); err != nil {
		d.fail(err)
		d.badHeader(want)
		return n, false
	}
	if d.pre.active {
		d.preFrame(h, want)
	}
	d.cur, d.remaining, d.maskPos, d.inFrame = h, h.Length, 0, true
	if d.skipping && !h.Opcode.IsControl() {
		d.skipFrame = true // more of a message being skipped
		return n, true
	}
	if err := d.a.Begin(h); err != nil {
		d.fail(err)
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Code == CloseMessageTooBig && !h.Opcode.IsControl() {
			// Too large to hold: skip the rest of this message, keep the stream.
			d.a.Detach()
			d.a.need = 0
			d.skipping, d.skipFrame = true, true
			return n, true
		}
		d.inFrame = false
		d.badHeader(want)
		return n, false
	}
	return n, true
}

// badHeader starts a resynchronisation after the header in d.hdr[:size] was
// rejected: the search goes on from its second byte.
func (d *Decoder) badHeader(size int) {
	d.startHunt()
	d.hunt.skipped++ // the first byte
	if rest, done := d.hunt.step(d.hdr[1:size], huntMore, d.found, d.foundControl); done {
		// A chain of tiny frames within the header's bytes (rare, but possible).
		d.hunt = nil
		d.parse(rest)
	}
}

// payloadError reports errors about a message's content (its inflated size, its
// deflate data, its UTF-8) rather than its framing: the frame boundaries are still
// right, so the stream goes on without resynchronising.
func payloadError(err error) bool {
	return errors.Is(err, ErrBadDeflate) || errors.Is(err, ErrInflateTooBig) ||
		errors.Is(err, ErrInvalidUTF8) || errors.Is(err, ErrInvalidCloseUTF8) ||
		errors.Is(err, ErrCloseCode) || errors.Is(err, ErrClosePayload)
}

// startHunt gives up the stream position: the message in progress is dropped and
// a resynchronisation starts (or goes on, when one is under way).
func (d *Decoder) startHunt() {
	d.settleQueued() // the message they are inside is lost
	d.endPrefix()
	d.a.Detach()
	d.a.need = 0
	d.inFrame, d.hdrLen, d.skipping, d.skipFrame, d.quiet = false, 0, false, false, false
	if d.hunt != nil {
		d.hunt.skipped += int64(len(d.hunt.buf))
		d.hunt.buf, d.hunt.skip, d.hunt.verified = d.hunt.buf[:0], 0, false
		d.hunt.exact, d.hunt.fromGap, d.hunt.found, d.hunt.tail = false, false, false, d.hunt.tail[:0]
		d.hunt.reset()
		return
	}
	d.hunt = newResyncer(d.rules, d.a.cfg.MaxMessageSize)
	d.hunt.ev = &d.ev
}

// found takes the position the resynchronisation found, skipped bytes on. When it
// was known, the resynchronisation is reported; after a search, the messages from
// there are judged first.
func (d *Decoder) found(skipped int64) {
	r := d.hunt
	if r.exact {
		d.report(skipped)
		return
	}
	prior := 1.0
	if r.fromGap && skipped == r.gapSkipped {
		prior = d.ev.notAtFrame() // the first byte after the gap
	}
	d.pre = prefix{active: true, total: 1, chain: prior, tries: float64(skipped + 1), skipped: skipped, report: true}
	if _, ok := d.h.(UncertainHandler); ok {
		d.pre.report = false
		d.report(skipped)
	}
}

// report reports a resynchronisation that skipped bytes.
func (d *Decoder) report(skipped int64) {
	quiet := d.quiet
	d.quiet = false
	if quiet && skipped == 0 {
		return
	}
	d.h.Resync(skipped)
}

// foundControl hands on a control frame the search found.
func (d *Decoder) foundControl(h Header, payload []byte) {
	d.ctlHdr[0] = h
	d.control = Message{Opcode: h.Opcode, Payload: payload, Wire: payload, Frames: d.ctlHdr[:]}
	if d.pre.active {
		d.preFrame(h, h.EncodedLen())
		d.frameEnd(nil)
		d.decideControl(&d.control, d.pre.control, d.pre.controlLen)
		return
	}
	d.emit(&d.control)
}

// emit hands a message on.
func (d *Decoder) emit(m *Message) {
	d.ev.learn(m)
	d.h.Message(m)
}

// fail reports an error, after the resynchronisation it follows.
func (d *Decoder) fail(err error) {
	if d.pre.report {
		d.pre.report = false
		d.report(d.pre.skipped)
	}
	d.h.Error(err)
}

// preFrame adds the frame with header h (n bytes) to the prefix, and with it the
// explanation that it and the frames before it are payload bytes, its header
// pointing exactly at the first real frame.
func (d *Decoder) preFrame(h Header, n int) {
	size := int64(n) + int64(h.Length)
	switch {
	case h.Opcode.IsControl():
		d.pre.control, d.pre.controlLen = d.pre.total, size
	case h.Opcode == OpContinuation:
		d.pre.dataLen += size
	default:
		d.pre.data, d.pre.dataLen = d.pre.total, size
	}
	d.pre.reach += reach(h)
	d.pre.chain *= d.ev.looks(h, n)
	d.pre.points = pointsAt(h)
}

// frameEnd ends a frame of the prefix, whose payload as unmasked is p when it
// belongs to a masked text message (nil otherwise), and adds the explanation
// that it and the frames before it are payload bytes, its header pointing
// exactly at the first real frame. A masked text frame's payload says how likely
// that is: made of payload bytes, it is the XOR of two pieces of text.
func (d *Decoder) frameEnd(p []byte) {
	if p != nil {
		d.pre.chain *= d.ev.textLooks(p)
	}
	d.pre.total += d.pre.chain * d.pre.points * min(d.pre.tries, d.pre.reach)
}

// maskedText returns the unmasked payload of the data frame just completed when
// it belongs to a masked, uncompressed text message, and nil otherwise.
func (d *Decoder) maskedText() []byte {
	frames, wire := d.a.Partial()
	if len(frames) == 0 || frames[0].Opcode != OpText || frames[0].Compressed() || !d.cur.Masked || d.cur.Length > uint64(len(wire)) {
		return nil
	}
	return wire[uint64(len(wire))-d.cur.Length:]
}

// queue keeps control frame m until the data message it came in has a verdict.
func (d *Decoder) queue(m *Message) {
	if len(d.queued) < cap(d.queued) {
		d.queued = d.queued[:len(d.queued)+1] // and the payload buffer it had
	} else {
		d.queued = append(d.queued, queued{})
	}
	q := &d.queued[len(d.queued)-1]
	q.h, q.real, q.size = m.Frames[0], d.pre.control, d.pre.controlLen
	q.payload = append(q.payload[:0], m.Payload...)
}

// settle decides on data message m, complete after a search, and then on the
// control frames queued inside it, and hands on those shown, in the order they
// completed.
func (d *Decoder) settle(m *Message) {
	real := d.judge(d.pre.data)
	d.settleQueued()
	if real {
		d.emit(m)
	} else {
		d.hold(m, d.pre.dataLen)
	}
}

// decideControl hands on control frame m, complete after a search, if judged
// real, and holds it back otherwise.
func (d *Decoder) decideControl(m *Message, real float64, size int64) {
	if d.judge(real) {
		d.emit(m)
	} else {
		d.hold(m, size)
	}
}

// settleQueued decides on the control frames queued, and hands on those shown:
// all of them once the prefix has ended (they come after the start of a message
// trusted).
func (d *Decoder) settleQueued() {
	for i := range d.queued {
		q := &d.queued[i]
		d.ctlHdr[0] = q.h
		d.control = Message{Opcode: q.h.Opcode, Payload: q.payload, Wire: q.payload, Frames: d.ctlHdr[:]}
		if d.pre.active {
			d.decideControl(&d.control, q.real, q.size)
		} else {
			d.emit(&d.control)
		}
	}
	d.queued = d.queued[:0]
}

// judge reports whether a message complete after a search is shown as real: when
// the chance that it is false, the weight of the explanations in which it is
// (all but real, the weight of those up to its first frame) over that of all, is
// below falseMessage, which ends the prefix.
func (d *Decoder) judge(real float64) bool {
	if (d.pre.total-real)/d.pre.total < falseMessage {
		// The messages after this one are real if it is.
		d.endPrefix()
		return true
	}
	return false
}

// hold holds back message m, of size bytes on the wire, which the bytes do not
// prove real.
func (d *Decoder) hold(m *Message, size int64) {
	if u, ok := d.h.(UncertainHandler); ok {
		u.Uncertain(m)
	} else {
		d.pre.skipped += size
	}
}

// endPrefix ends the prefix, reporting the resynchronisation if it was not yet.
func (d *Decoder) endPrefix() {
	if !d.pre.active {
		return
	}
	d.pre.active = false
	if d.pre.report {
		d.pre.report = false
		d.report(d.pre.skipped)
	}
}
