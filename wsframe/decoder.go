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
	// message from there; skipped is how many bytes it passed over.
	Resync(skipped int64)
	// Error is called for a protocol error, after which the Decoder
	// resynchronises, for a message over the limits, which it skips, and for a
	// message whose payload is bad (say, its deflate data), after which it goes
	// on.
	Error(err error)
}

// Decoder parses frames from a byte stream pushed to it in pieces of any size (a
// TCP payload at a time), for passive sniffing where nothing may block: the same
// header parsing, [Rules] and [Assembler] as [Reader], driven from the other side.
//
// After bytes were lost ([Decoder.Gap]), a protocol error, or a start in the
// middle of the stream ([Decoder.StartMidStream]) it resynchronises: it drops
// the message in progress and looks for the next message start it can trust (see
// resync.go), handing on the control frames it passes.
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
}

// NewDecoder returns a Decoder checking frames against rules and assembling them with
// a, reporting to h. Passive use wants rules.Lenient and an Assembler in lenient
// mode. A resynchronisation checks headers with rules made strict.
func NewDecoder(rules Rules, a *Assembler, h DecodeHandler) *Decoder {
	return &Decoder{rules: rules, a: a, h: h}
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
	d.quiet = true
}

// Gap tells the Decoder that n bytes of the stream were lost. The frame and
// message in progress are abandoned; lost reports whether there was one (the
// caller reports it lost). When the gap falls inside a frame's payload the next
// header's place is known; otherwise the Decoder searches for it in what follows.
func (d *Decoder) Gap(n int64) (lost bool) {
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
	if known {
		d.hunt.skip, d.hunt.verified = skip, true
	}
	return lost
}

// Idle tells the Decoder that no bytes came for a while. A resynchronisation
// waiting for more bytes to verify a chain of frames may then accept one that ends
// exactly where the bytes end.
func (d *Decoder) Idle() { d.decide(huntSettle) }

// End tells the Decoder that the stream ended, so that a resynchronisation still
// waiting for bytes decides with what it has.
func (d *Decoder) End() { d.decide(huntEnd) }

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
		m, err := d.a.End()
		if err != nil {
			d.h.Error(err)
			if !payloadError(err) {
				d.startHunt()
			}
			continue
		}
		if m != nil {
			d.h.Message(m)
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
		d.h.Error(err)
		d.badHeader(want)
		return n, false
	}
	d.cur, d.remaining, d.maskPos, d.inFrame = h, h.Length, 0, true
	if d.skipping && !h.Opcode.IsControl() {
		d.skipFrame = true // more of a message being skipped
		return n, true
	}
	if err := d.a.Begin(h); err != nil {
		d.h.Error(err)
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
	d.a.Detach()
	d.a.need = 0
	d.inFrame, d.hdrLen, d.skipping, d.skipFrame, d.quiet = false, 0, false, false, false
	if d.hunt != nil {
		d.hunt.skipped += int64(len(d.hunt.buf))
		d.hunt.buf, d.hunt.skip, d.hunt.verified = d.hunt.buf[:0], 0, false
		d.hunt.reset()
		return
	}
	d.hunt = newResyncer(d.rules, d.a.cfg.MaxMessageSize)
}

// found reports the resynchronisation the search completed.
func (d *Decoder) found(skipped int64) {
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
	d.h.Message(&d.control)
}
