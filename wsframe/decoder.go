package wsframe

import (
	"errors"
	"fmt"
)

// Decoder parses frames from a byte stream that is pushed to it in pieces of any size
// (a TCP payload at a time), for passive sniffing where nothing may block: the same
// header parsing, [Rules] and [Assembler] as [Reader], driven from the other side.
//
// After a [ProtocolError] or a [Decoder.Gap] the Decoder resynchronises: it drops the
// message in progress and scans for the next plausible frame header, and the next
// Feed that finds one reports it with [Decoder.Resynced].
type Decoder struct {
	rules Rules
	a     *Assembler

	hdr    [MaxHeaderSize]byte // header bytes received so far
	hdrLen int

	cur       Header
	remaining uint64
	maskPos   int
	keys      keyBlock
	inFrame   bool

	skipping  bool   // discarding the rest of a message too large to hold
	skipFrame bool   // the current frame belongs to that message
	resync    bool   // looking for a frame header after lost or bad bytes
	carry     []byte // the start of a possible header cut at the end of a piece
	carryBuf  [MaxHeaderSize]byte
	resynced  int64
	scanned   int64
}

// ErrResync is returned by Feed when it had to skip bytes to find a frame header
// again after a gap or an error; Skipped says how many.
var ErrResync = errors.New("wsframe: resynchronised on a frame header")

// NewDecoder returns a Decoder checking frames against rules and assembling them with
// a. Passive use wants rules.Lenient and an Assembler in lenient mode.
func NewDecoder(rules Rules, a *Assembler) *Decoder {
	return &Decoder{rules: rules, a: a}
}

// InMessage reports whether a data message has started and not ended.
func (d *Decoder) InMessage() bool { return d.a.InMessage() || d.skipping }

// Gap tells the Decoder that bytes of the stream were lost: the frame and message in
// progress are abandoned (the caller reports that message lost) and the Decoder
// looks for the next frame header in what follows.
func (d *Decoder) Gap() {
	d.a.Detach()
	d.inFrame, d.hdrLen, d.skipping, d.skipFrame, d.resync, d.scanned, d.carry = false, 0, false, false, true, 0, nil
	d.a.need = 0
}

// Resynced returns how many bytes the last resynchronisation skipped.
func (d *Decoder) Resynced() int64 { return d.resynced }

// Feed parses p and calls emit for every message it completes (control frames
// included); the message is valid only during the call. Masked payload is unmasked in
// place in p. It returns the first
// problem: a (wrapped) *ProtocolError, after which the Decoder resynchronises
// (messages too large are skipped instead, and the stream goes on), or ErrResync
// when a resynchronisation completed. Feed can be called again after any error.
func (d *Decoder) Feed(p []byte, emit func(*Message)) error {
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	if d.resync && len(d.carry) > 0 {
		// A possible header was cut at the end of the last piece: look at it again
		// with the bytes that follow.
		c := len(d.carry)
		buf := append(d.carry, p[:min(len(p), MaxHeaderSize)]...)
		i, ok := d.scan(buf)
		d.carry = nil
		switch {
		case i < c && ok:
			d.scanned += int64(i)
			d.resync, d.resynced, d.scanned = false, d.scanned, 0
			note(fmt.Errorf("%w after skipping %d bytes", ErrResync, d.resynced))
			if err := d.Feed(buf[i:c], emit); err != nil {
				note(err)
			}
		case i < c:
			// Still too short to tell (p was tiny): keep waiting.
			d.scanned += int64(i)
			d.carry = append(d.carryBuf[:0], buf[i:]...)
			return first
		default:
			d.scanned += int64(c)
		}
	}
	for len(p) > 0 {
		if d.resync {
			n, ok := d.scan(p)
			if !ok && n < len(p) {
				// A header may start at n but is not whole yet: keep it for the next Feed.
				d.scanned += int64(n)
				d.carry = append(d.carryBuf[:0], p[n:]...)
				return first
			}
			d.scanned += int64(n)
			p = p[n:]
			if !ok {
				return first
			}
			d.resync, d.resynced, d.scanned = false, d.scanned, 0
			note(fmt.Errorf("%w after skipping %d bytes", ErrResync, d.resynced))
		}
		if !d.inFrame {
			n, err := d.header(p)
			p = p[n:]
			if err != nil {
				note(err)
				continue
			}
			if !d.inFrame {
				return first // need more header bytes
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
			return first
		}
		d.inFrame = false
		if d.skipFrame {
			d.skipFrame = false
			d.skipping = !d.cur.Fin
			continue
		}
		m, err := d.a.End()
		if err != nil {
			note(err)
			if !payloadError(err) {
				d.startResync()
			}
			continue
		}
		if m != nil {
			emit(m)
		}
	}
	return first
}

// header consumes header bytes from p and, once the header is whole, checks it and
// begins the frame. It returns how many bytes it consumed.
func (d *Decoder) header(p []byte) (int, error) {
	n := 0
	if d.hdrLen < 2 {
		n = copy(d.hdr[d.hdrLen:2], p)
		d.hdrLen += n
		if d.hdrLen < 2 {
			return n, nil
		}
	}
	want := HeaderLen(d.hdr[0], d.hdr[1])
	m := copy(d.hdr[d.hdrLen:want], p[n:])
	d.hdrLen += m
	n += m
	if d.hdrLen < want {
		return n, nil
	}
	d.hdrLen = 0
	h, size, _ := ParseHeader(d.hdr[:want])
	if err := d.rules.Check(h, size); err != nil {
		d.startResync()
		return n, err
	}
	d.cur, d.remaining, d.maskPos, d.inFrame = h, h.Length, 0, true
	if d.skipping && !h.Opcode.IsControl() {
		d.skipFrame = true // more of a message being skipped
		return n, nil
	}
	if err := d.a.Begin(h); err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Code == CloseMessageTooBig && !h.Opcode.IsControl() {
			// Too large to hold: skip the rest of this message, keep the stream.
			d.a.Detach()
			d.a.need = 0
			d.skipping, d.skipFrame = true, true
			return n, err
		}
		d.inFrame = false
		d.startResync()
		return n, err
	}
	return n, nil
}

// payloadError reports errors about a message's content (its inflated size, its
// deflate data, its UTF-8) rather than its framing: the frame boundaries are still
// right, so the stream goes on without resynchronising.
func payloadError(err error) bool {
	return errors.Is(err, ErrBadDeflate) || errors.Is(err, ErrInflateTooBig) ||
		errors.Is(err, ErrInvalidUTF8) || errors.Is(err, ErrInvalidCloseUTF8) ||
		errors.Is(err, ErrCloseCode) || errors.Is(err, ErrClosePayload)
}

func (d *Decoder) startResync() {
	d.a.Detach()
	d.a.need = 0
	d.inFrame, d.hdrLen, d.skipping, d.skipFrame, d.resync, d.scanned, d.carry = false, 0, false, false, true, 0, nil
}

// scan looks in p for a plausible frame header: one the rules accept that starts a
// message or is a control frame (a continuation cannot be told from payload after a
// gap) with a length that fits the Assembler's limits. It returns how many bytes to
// skip and whether a header starts there.
func (d *Decoder) scan(p []byte) (int, bool) {
	for i := range p {
		b0 := p[i]
		op := Opcode(b0 & 0x0F)
		if op.IsReserved() || op == OpContinuation {
			continue
		}
		if i+1 >= len(p) {
			return i, false // decide when the next byte arrives
		}
		n := HeaderLen(b0, p[i+1])
		if i+n > len(p) {
			return i, false
		}
		h, size, _ := ParseHeader(p[i : i+n])
		strict := d.rules
		strict.Lenient = false
		if strict.Check(h, size) != nil {
			continue
		}
		if h.Length > uint64(d.a.cfg.MaxMessageSize) {
			continue
		}
		return i, true
	}
	return len(p), false
}
