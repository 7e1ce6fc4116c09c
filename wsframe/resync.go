package wsframe

import (
	"math"
	"unicode/utf8"
)

// Resynchronisation after lost bytes, for the [Decoder]. Accepting the first header
// the rules allow is not enough: random bytes (masked or binary payload) hold one
// every fifty bytes or so, and the bogus frame that follows can swallow the real
// messages after a gap. So a position is accepted only when the chain of frames
// that starts there would be too unlikely in random bytes: each header must be
// valid under strict rules and in a valid sequence, and what can be checked of
// the payloads must hold (text is UTF-8, a close code is valid); the chain is
// followed until the chance that random bytes hold such a chain somewhere in
// what was searched drops below falseChance. The Decoder then gets the stream
// from a message start.

const (
	// falseChance is the accepted chance of taking random bytes for frames.
	falseChance = 1e-3
	// maxChain bounds the headers a chain is followed for.
	maxChain = 16
	// maxHunt bounds the bytes held while a position is being verified; past it
	// the best candidate is taken as it is.
	maxHunt = 1 << 20
)

// headerOdds returns a generous estimate of the chance that payload bytes form a
// valid header of this shape. For uniformly random bytes it would be about 1/40
// (twelve of the 256 first bytes are valid in a given place, and the MASK bit must
// fit the sender), but payload is not uniform: masked ASCII text, for one, has the
// same top bit in every fourth byte. So 1/8, and a 16-bit (64-bit) length, which
// needs one of 128 values in the second byte (and five zero bytes besides, under a
// 64 MiB limit), is rarer by that much.
func headerOdds(h Header, n int) float64 {
	p := 1.0 / 8
	if h.Masked {
		n -= 4
	}
	switch n {
	case 4:
		p /= 128
	case 10:
		p /= 128 * (1 << 40)
	}
	return p
}

// exactOdds returns the chance that a frame with a random length of h's encoding
// ends exactly where the bytes end.
func exactOdds(h Header) float64 {
	switch {
	case h.Length <= 125:
		return 1.0 / 126
	case h.Length <= 0xFFFF:
		return 1.0 / 65410
	}
	return 1.0 / (1 << 26)
}

// chain verdicts.
const (
	chainBad = iota
	chainNeedMore
	chainGood
)

// resyncer finds the next trustworthy frame boundary in one direction's stream
// after a gap. Control frames found before the first message start are handed out
// whole; continuation frames of the message the gap cut are skipped.
type resyncer struct {
	rules    Rules // strict
	maxMsg   uint64
	buf      []byte
	skipped  int64 // bytes dropped so far
	verified bool  // buf starts at a frame boundary of a verified chain
	skip     uint64
	found    bool // a frame was accepted: the resynchronisation is reported
	exact    bool // the position was known, not searched for
	// fromGap: the search began at the first byte after a gap or at the start,
	// once gapSkipped bytes had been skipped.
	fromGap    bool
	gapSkipped int64

	// The search remembers its progress between calls: positions before scanned
	// were examined, and cands are those whose chain needed bytes not there yet
	// (a position found bad stays bad).
	scanned int
	cands   []cand
	minNeed int    // no cand's verdict can change before the buffer holds this many bytes
	scratch []byte // unmasked payload for plausible

	ev   *evidence // learns from the bytes passed over; may be nil
	tail []byte    // bytes passed over that wait for the bytes after them (at most 3)
}

// cand is a position whose chain waits for bytes: its verdict cannot change (while
// more bytes are expected) before the buffer holds need bytes.
type cand struct{ at, need int }

// maxCands bounds the positions waiting for more bytes.
const maxCands = 1024

func newResyncer(rules Rules, maxMsg int64) *resyncer {
	rules.Lenient = false
	return &resyncer{rules: rules, maxMsg: uint64(maxMsg)}
}

// step takes the next bytes of the stream (p may be nil) and returns, once a
// message start is found, the stream from there on (done; the buffer is the
// caller's from then on). onControl receives each control frame before it
// (header and unmasked payload, valid during the call); onFound is called once,
// at the first accepted frame, with the bytes skipped up to it. mode says what
// may be assumed about bytes still to come.
func (r *resyncer) step(p []byte, mode int, onFound func(skipped int64), onControl func(h Header, payload []byte)) ([]byte, bool) {
	if r.skip > 0 {
		n := min(uint64(len(p)), r.skip)
		r.skip -= n
		r.skipped += int64(n)
		p = p[n:]
	}
	r.buf = append(r.buf, p...)
	r.learnTail()
	for len(r.buf) > 0 {
		if !r.verified {
			i, v := r.search(mode)
			r.learnPassed(i)
			r.drop(i)
			switch {
			case v == chainGood:
			case v == chainNeedMore && len(r.buf) > maxHunt:
				// Too long to verify (a frame larger than maxHunt): take it.
			default:
				return nil, false
			}
			r.verified = true
			r.reset()
		}
		h, n, err := ParseHeader(r.buf)
		if err != nil {
			return nil, false // wait for the rest of the header
		}
		if !r.rules.valid(h, n) {
			r.verified = false
			r.reset()
			r.drop(1)
			continue
		}
		if !r.found && h.Opcode != OpContinuation {
			r.found = true
			onFound(r.skipped)
		}
		total := uint64(n) + h.Length
		switch {
		case h.Opcode.IsControl():
			if uint64(len(r.buf)) < total {
				return nil, false
			}
			payload := r.buf[n:total]
			if h.Masked {
				Mask(h.Mask, 0, payload)
			}
			onControl(h, payload)
			r.buf = r.buf[:copy(r.buf, r.buf[total:])]
		case h.Opcode == OpContinuation, h.Length > r.maxMsg:
			// The rest of the message the gap cut, or a message too large to
			// hold (its continuations follow as orphans): skip it.
			if uint64(len(r.buf)) < total {
				r.skip = total - uint64(len(r.buf))
				r.skipped += int64(len(r.buf))
				r.buf = r.buf[:0]
				return nil, false
			}
			r.drop(int(total))
		default:
			rest := r.buf
			r.buf = nil
			return rest, true
		}
	}
	return nil, false
}

// drop discards the first n buffered bytes.
func (r *resyncer) drop(n int) {
	if n == 0 {
		return
	}
	r.skipped += int64(n)
	r.buf = r.buf[:copy(r.buf, r.buf[n:])]
	r.scanned = max(0, r.scanned-n)
	keep := r.cands[:0]
	for _, c := range r.cands {
		if c.at >= n {
			keep = append(keep, cand{c.at - n, c.need - n})
		}
	}
	r.cands = keep
	r.minNeed = 0 // recomputed by the next search
}

// learnPassed shows the evidence the n bytes the search passes over at the start of
// buf, the payload in which false headers are found: each with the three bytes
// after it, for those that have come; the others wait in tail for them (see
// learnTail), so that what is learned does not depend on how the bytes were fed.
func (r *resyncer) learnPassed(n int) {
	if r.ev == nil || n == 0 {
		return
	}
	r.learnTail()
	if len(r.tail) > 0 {
		r.tail = append(r.tail, r.buf[:n]...) // still waiting: so do these
		return
	}
	i := 0
	for ; i < n && i+4 <= len(r.buf); i++ {
		r.ev.classify(r.buf[i : i+4])
	}
	r.tail = append(r.tail, r.buf[i:n]...)
}

// learnTail looks at the bytes passed over that waited for the bytes after them,
// which start buf, as far as those have come.
func (r *resyncer) learnTail() {
	for len(r.tail) > 0 && len(r.tail)+len(r.buf) >= 4 {
		var w [4]byte
		k := copy(w[:], r.tail)
		copy(w[k:], r.buf)
		r.ev.classify(w[:])
		r.tail = r.tail[:copy(r.tail, r.tail[1:])]
	}
}

// reset forgets the search, for a new gap or once a position is accepted.
func (r *resyncer) reset() {
	r.scanned, r.cands, r.minNeed = 0, r.cands[:0], 0
}

// How much the resyncer may assume about bytes still to come.
const (
	huntMore   = iota // more bytes will come: wait for them when in doubt
	huntSettle        // nothing came for a while: a chain may end exactly where the bytes end
	huntGap           // bytes were lost after these: a chain may also run into the gap
	huntEnd           // the stream ended: a chain may end exactly where it ended
)

// search looks for the position to resynchronise at: the first whose chain is
// verified (a later verified chain wins over an earlier position still waiting for
// bytes: in random bytes a header announcing a long payload is common, a chain of
// headers pointing at each other is not). It returns that position and
// chainGood; or the first position still waiting and chainNeedMore; or the buffer
// length and chainBad.
func (r *resyncer) search(mode int) (int, int) {
	verdict := func(i int) (int, int) {
		tries := float64(r.skipped) + float64(i) + 1 // positions searched: chances for a false chain
		v, odds, exact, need := r.chain(r.buf[i:], tries)
		switch {
		case v == chainGood:
			return chainGood, 0
		case v == chainBad:
			return chainBad, 0
		case mode == huntMore:
			return chainNeedMore, i + need
		case exact && odds*tries < falseChance:
			return chainGood, 0 // the last frame ends exactly where the bytes end
		case mode == huntSettle:
			return chainNeedMore, i + need
		case mode == huntGap && odds*tries < falseChance:
			return chainGood, 0 // the last frame runs into the gap
		}
		return chainBad, 0
	}
	if mode != huntMore || len(r.buf) >= r.minNeed {
		keep := r.cands[:0]
		r.minNeed = math.MaxInt
		for k, c := range r.cands {
			if mode == huntMore && len(r.buf) < c.need {
				keep = append(keep, c) // nothing it waits for has come
				r.minNeed = min(r.minNeed, c.need)
				continue
			}
			switch v, need := verdict(c.at); v {
			case chainGood:
				r.cands = append(keep, r.cands[k+1:]...)
				r.minNeed = 0 // recomputed by the next search
				return r.better(c.at), chainGood
			case chainNeedMore:
				keep = append(keep, cand{c.at, need})
				r.minNeed = min(r.minNeed, need)
			}
		}
		r.cands = keep
	}
	for ; r.scanned < len(r.buf); r.scanned++ {
		switch v, need := verdict(r.scanned); v {
		case chainGood:
			return r.better(r.scanned), chainGood
		case chainNeedMore:
			if len(r.cands) == maxCands {
				r.cands = append(r.cands[:0], r.cands[1:]...)
			}
			r.cands = append(r.cands, cand{r.scanned, need})
			r.minNeed = min(r.minNeed, need)
		}
	}
	if len(r.cands) > 0 {
		return r.cands[0].at, chainNeedMore
	}
	return len(r.buf), chainBad
}

// chain follows the frames that would start at b[0] until the chance of random
// bytes holding them over tries positions is below falseChance (chainGood), a
// header is invalid (chainBad), or the bytes end (chainNeedMore). For
// chainNeedMore it returns the chance of the chain so far, whether the bytes end
// right after a whole frame (exact; the chance then includes that), and how many
// bytes b must hold before following the chain further can tell more (the next
// header's; a payload that arrives before it may only be found not to be text).
func (r *resyncer) chain(b []byte, tries float64) (verdict int, odds float64, exact bool, need int) {
	const (
		unknown = iota // no message start yet: continuations belong to the cut message
		between        // between messages
		inside         // inside a fragmented message
	)
	state := unknown
	pos := uint64(0)
	odds = 1
	var last Header
	for k := range maxChain {
		if uint64(len(b)) == pos && k > 0 {
			return chainNeedMore, odds * exactOdds(last), true, int(pos) + 2
		}
		if uint64(len(b)) < pos+2 {
			return chainNeedMore, odds, false, int(pos) + 2
		}
		hl := HeaderLen(b[pos], b[pos+1])
		if uint64(len(b)) < pos+uint64(hl) {
			return chainNeedMore, odds, false, int(pos) + hl
		}
		h, n, _ := ParseHeader(b[pos:])
		op := h.Opcode
		switch {
		case !r.rules.valid(h, n):
			return chainBad, 0, false, 0
		case k == 0 && op == OpContinuation:
			return chainBad, 0, false, 0 // cannot tell a continuation from payload
		case op == OpContinuation && state == between:
			return chainBad, 0, false, 0
		case op.IsData() && state == inside:
			return chainBad, 0, false, 0
		case !op.IsControl() && h.Length > r.maxMsg:
			return chainBad, 0, false, 0
		}
		switch {
		case op.IsData():
			state = between
			if !h.Fin {
				state = inside
			}
		case op == OpContinuation && state == inside && h.Fin:
			state = between
		}
		if !r.plausible(h, b[pos+uint64(n):min(uint64(len(b)), pos+uint64(n)+h.Length)]) {
			return chainBad, 0, false, 0
		}
		odds *= headerOdds(h, n)
		if odds*tries < falseChance && k > 0 {
			// (Never on one header: a header announcing a long payload is
			// common enough in random bytes, and its payload is not checked yet.)
			return chainGood, odds, false, 0
		}
		last = h
		pos += uint64(n) + h.Length
		if pos > uint64(len(b)) {
			return chainNeedMore, odds, false, int(min(pos, maxHunt)) + 2
		}
	}
	return chainGood, odds, false, 0
}

// maxCheck bounds the payload bytes plausible looks at.
const maxCheck = 1 << 10

// plausible checks what can be checked of a frame's payload (p, its first bytes, or
// all of it): an uncompressed text frame's must be UTF-8 (up to where p ends), a
// close frame's a valid code and UTF-8 reason. Random bytes fail this for all but
// the shortest payloads, so a false header announcing text or a close is rejected,
// which the header odds alone cannot do. Real text that is not UTF-8 is only
// skipped over by a search, never by the decoder.
func (r *resyncer) plausible(h Header, p []byte) bool {
	whole := uint64(len(p)) == h.Length
	switch {
	case h.Opcode == OpClose:
		if !whole {
			return true // not all here yet: decided when it is
		}
	case h.Opcode == OpText && h.Rsv&RSV1 == 0:
		if len(p) > maxCheck {
			p, whole = p[:maxCheck], false
		}
	default:
		return true
	}
	q := append(r.scratch[:0], p...)
	r.scratch = q
	if h.Masked {
		Mask(h.Mask, 0, q)
	}
	if h.Opcode == OpClose {
		_, _, err := ParseClose(q)
		return err == nil
	}
	if !whole || !h.Fin {
		// The text goes on: a rune may be cut at the end.
		for k := 1; k < utf8.UTFMax && k <= len(q); k++ {
			if utf8.RuneStart(q[len(q)-k]) {
				if !utf8.FullRune(q[len(q)-k:]) {
					q = q[:len(q)-k]
				}
				break
			}
		}
	}
	return utf8.Valid(q)
}

// maxCover bounds the first frames better looks inside.
const maxCover = 64 << 10

// better checks the first frame of the chain accepted at i: a false header in the
// lost message's tail can point exactly at a real frame and so cover the real
// frames before it. When frames starting inside that first frame lead to exactly
// where it ends, and such a run is less likely to be chance than the one header
// at i, the run is the better explanation, and its start is returned instead.
func (r *resyncer) better(i int) int {
	for range maxChain {
		h, n, err := ParseHeader(r.buf[i:])
		if err != nil || h.Length > maxCover {
			return i
		}
		end := uint64(i) + uint64(n) + h.Length
		if end > uint64(len(r.buf)) {
			return i
		}
		single := headerOdds(h, n) * exactOdds(h)
		j := -1
		for k := i + 1; k < int(end)-1; k++ {
			if odds, ok := r.converges(k, end); ok && odds < single {
				j = k
				break
			}
		}
		if j < 0 {
			return i
		}
		i = j
	}
	return i
}

// converges reports whether frames starting at b[from] (continuations allowed
// until a message starts, as after a gap) end exactly at to, with two headers or
// more, and the chance of random bytes doing so.
func (r *resyncer) converges(from int, to uint64) (float64, bool) {
	inside, started := false, false
	pos := uint64(from)
	odds := 1.0
	var last Header
	for k := 0; pos < to; k++ {
		if k == maxChain || uint64(len(r.buf)) < pos+2 {
			return 0, false
		}
		h, n, err := ParseHeader(r.buf[pos:])
		if err != nil || !r.rules.valid(h, n) {
			return 0, false
		}
		op := h.Opcode
		switch {
		case k == 0 && op == OpContinuation:
			return 0, false
		case op == OpContinuation && started && !inside:
			return 0, false
		case op.IsData() && inside:
			return 0, false
		case !op.IsControl() && h.Length > r.maxMsg:
			return 0, false
		}
		if !r.plausible(h, r.buf[pos+uint64(n):min(uint64(len(r.buf)), pos+uint64(n)+h.Length)]) {
			return 0, false
		}
		if !op.IsControl() {
			if op.IsData() {
				started = true
			}
			inside = !h.Fin && (op.IsData() || inside || !started)
		}
		odds *= headerOdds(h, n)
		last = h
		pos += uint64(n) + h.Length
		if k == 0 && pos == to {
			return 0, false // one header: no better than the one at i
		}
	}
	if pos != to {
		return 0, false
	}
	return odds * exactOdds(last), true
}

// Trusting the first messages after a search. A verified chain shows that frames
// from some point on are real, not that the first of its frames is: payload bytes
// of the message the gap cut can hold a valid header that points exactly at the
// first real frame, and that false frame then chains on to the real ones (in masked
// ASCII text one position in a few thousand does, and a masked text frame made of
// such bytes is still UTF-8: its payload, unmasked with a "key" of the same text,
// is the XOR of two pieces of text). Following frames cannot tell: they are real
// either way. A false frame announcing a ping or binary data would be printed as a
// message, and one announcing a long payload covers the real frames after it.
//
// So after a search the Decoder shows a message only when the chance that it is
// such a false prefix, given what the bytes show, is below falseMessage; the
// messages before the first one that passes are held back (see [UncertainHandler]).
// Once one passes, the ones after it do too: they can only be false if it is. The
// chance for the message whose first frame is the k-th from the position taken is
// that of frames 0 to k being payload bytes, the last pointing exactly at a real
// frame:
//
//	prior × min(tries, Σ(i≤k) reach(i)) × Π(i≤k) looks(i) × pointsAt(k)
//
// tries is the number of positions searched, and a false chain pointing at a given
// place begins at most the longest frames of its shapes (reach) before it. looks(i)
// is the chance that payload bytes look like frame i: a valid header of its length
// encoding, its kind, its content. How often payload holds valid headers is
// learned from this direction's payload while the Decoder is in step and from the
// bytes its searches pass over (random bytes hold a valid 7-bit header at about 2%
// of positions, ASCII text sent unmasked never does); so are the kinds of its
// messages (a direction that only carries text rarely sends a ping after a gap),
// and the bytes of its text: in a masked direction, the payload of a false text
// frame is the XOR of two pieces of text, which differs from text (for ASCII a
// third of the XORs are control characters). pointsAt(k) is the chance that a
// false header's length points exactly at a given place. prior is the chance that
// the first byte after a gap is not a frame start when the position taken is that
// byte (1 otherwise): a sender that writes one message per send begins its segments
// with a frame, so a gap, which loses whole segments, ends at one; this too is
// learned, from where the pieces fed in step begin.

// falseMessage is the accepted chance that a message shown after a search is made
// of payload bytes.
const falseMessage = 1e-5

// evidence is what a Decoder learns about its direction while it is in step.
type evidence struct {
	valid0  [256]bool // first header bytes a strict header may begin with
	maskBit byte      // the MASK bit of this sender's frames
	// prior is the rate of valid headers by length encoding before any payload
	// was seen: twice that of random bytes.
	prior [3]float64

	next    int      // payload bytes until the next sample
	sampled int32    // payload positions looked at
	hdr     [3]int32 // of them, valid headers with a 7-bit, 16-bit and 64-bit length

	feeds, atFrame int32 // pieces fed in step, and those that began at a frame

	kinds [5]int32 // messages: text, binary, ping, pong, close
	total int32

	text      [8]int32 // text payload bytes by their top three bits
	textTotal int32
	nextText  int // text bytes until the next sample
}

// Sampling: every sampleStride-th payload byte is looked at as a header, every
// textStride-th byte of text for its class: sparse, so that learning costs a few
// percent of sniffing, and still thousands of samples in a few megabytes. (The
// search after a gap also learns from all the bytes it passes over.)
const (
	sampleStride = 251
	textStride   = 61
	// counts are halved past this many samples, so that what is learned follows
	// the traffic.
	maxSamples = 1 << 16
)

func newEvidence(rules Rules) evidence {
	var e evidence
	for b := range 256 {
		op := Opcode(b & 0x0F)
		e.valid0[b] = !op.IsReserved() && uint8(b)&(RSV1|RSV2|RSV3)&^rules.Extensions == 0 && (!op.IsControl() || b&0x80 != 0)
	}
	if rules.Sender == Client {
		e.maskBit = 0x80
	}
	valid := 0
	for _, v := range e.valid0 {
		if v {
			valid++
		}
	}
	e.prior[0] = 2 * float64(valid) / 256 / 2 // and the MASK bit
	e.prior[1] = e.prior[0] / 128             // the 16-bit length's marker
	e.prior[2] = e.prior[1] / (1 << 40)       // and five zero bytes under the limits
	return e
}

// learn looks at a message shown in step: its kind, and a byte of its payload
// every sampleStride bytes of the stream: as it was on the wire (masked again),
// for the header rate, and for text, for its class.
func (e *evidence) learn(m *Message) {
	e.kinds[kindOf(m.Opcode)]++
	if e.total++; e.total > maxSamples {
		e.total = 0
		for k := range e.kinds {
			e.kinds[k] /= 2
			e.total += e.kinds[k]
		}
	}
	if e.next -= len(m.Wire); e.next < 0 {
		e.sample(m)
	}
	if m.Opcode == OpText && !m.Compressed {
		if e.nextText -= len(m.Payload); e.nextText < 0 {
			e.sampleText(m.Payload)
		}
	}
}

// sampleText takes the samples of text that fall in p, the last one e.nextText
// bytes from its end.
func (e *evidence) sampleText(p []byte) {
	for ; e.nextText < 0; e.nextText += textStride {
		e.text[p[len(p)+e.nextText]>>5]++
		e.textTotal++
	}
	if e.textTotal > maxSamples {
		e.textTotal /= 2
		for k := range e.text {
			e.text[k] /= 2
		}
	}
}

// sample takes the samples that fall in m, the last one e.next bytes from its end.
func (e *evidence) sample(m *Message) {
	for ; e.next < 0; e.next += sampleStride {
		at := len(m.Wire) + e.next // where in the message's wire payload
		h, off := m.Frames[0], at  // the frame it is in, and where in its payload
		for _, f := range m.Frames {
			if uint64(off) < f.Length {
				h = f
				break
			}
			off -= int(min(f.Length, uint64(off)))
		}
		if at+4 <= len(m.Wire) && uint64(off)+4 <= h.Length {
			e.sampleWire(h, off, m.Wire[at:at+4])
		}
	}
}

// sampleWire looks at the bytes b (unmasked), at offset off in the payload of a
// frame with header h, as they were on the wire: do they begin a valid header?
func (e *evidence) sampleWire(h Header, off int, b []byte) {
	var w [4]byte
	copy(w[:], b)
	if h.Masked {
		for j := range w {
			w[j] ^= h.Mask[(off+j)&3]
		}
	}
	e.classify(w[:])
}

// classify counts the four payload bytes w (as on the wire) as a sample: do they
// begin a valid header?
func (e *evidence) classify(w []byte) {
	e.sampled++
	if !e.valid0[w[0]] || w[1]&0x80 != e.maskBit {
		return
	}
	switch l := w[1] & 0x7F; {
	case l <= 125:
		e.hdr[0]++
	case w[0]&0x08 != 0: // a control frame with a long length
	case l == 126:
		if w[2] != 0 || w[3] >= 126 {
			e.hdr[1]++
		}
	case w[2] == 0 && w[3] == 0:
		e.hdr[2]++
	}
	if e.sampled > maxSamples {
		e.sampled /= 2
		for k := range e.hdr {
			e.hdr[k] /= 2
		}
	}
}

// feed notes where a piece fed in step began.
func (e *evidence) feed(atFrame bool) {
	e.feeds++
	if atFrame {
		e.atFrame++
	}
	if e.feeds > maxSamples {
		e.feeds /= 2
		e.atFrame /= 2
	}
}

// kindOf returns the index in kinds of messages with opcode op.
func kindOf(op Opcode) int {
	switch op {
	case OpText:
		return 0
	case OpBinary:
		return 1
	case OpPing:
		return 2
	case OpPong:
		return 3
	}
	return 4
}

// rateGrid are the rates of valid headers rate weighs, relative to the prior, a
// factor √2 apart, and their weights before any sample. Payload is mostly one of
// two kinds: random-like bytes (compressed, binary, or masked), where headers are
// about as frequent as in random bytes, and text sent unmasked, where they hardly
// ever occur (ASCII holds no valid first byte); the weights favour those two ends.
var rateGrid = func() (g [40]struct{ rel, weight float64 }) {
	for k := range g {
		g[k].rel = 3e-5 * math.Pow(2, float64(k)/2) // up to about 22
		switch {
		case g[k].rel < 1e-3:
			g[k].weight = 0.35 / 11
		case g[k].rel < 0.3:
			g[k].weight = 0.15 / 16
		default:
			g[k].weight = 0.5 / 13
		}
	}
	return g
}()

// rate returns the expected rate of valid headers with length encoding c at a
// payload position, given the samples: the mean over rateGrid weighted by how
// likely each rate makes the counts.
func (e *evidence) rate(c int) float64 {
	n, h := float64(e.sampled), float64(e.hdr[c])
	var logs [len(rateGrid)]float64
	top := math.Inf(-1)
	for k, g := range rateGrid {
		r := min(g.rel*e.prior[c], 0.5)
		logs[k] = math.Log(g.weight) + h*math.Log(r) + (n-h)*math.Log1p(-r)
		top = max(top, logs[k])
	}
	var sum, mean float64
	for k, g := range rateGrid {
		w := math.Exp(logs[k] - top)
		sum += w
		mean += w * min(g.rel*e.prior[c], 0.5)
	}
	return mean / sum
}

// looks returns the chance that payload bytes hold a valid header of h's shape
// (n bytes long) and kind: the rate of such headers, times the share of the kind
// among false headers (generously 1/4) over its share among this direction's
// messages.
func (e *evidence) looks(h Header, n int) float64 {
	c, unmasked := 0, n
	if h.Masked {
		unmasked -= 4
	}
	switch unmasked {
	case 4:
		c = 1
	case 10:
		c = 2
	}
	rate := e.rate(c)
	share := float64(e.kinds[kindOf(h.Opcode)]+1) / float64(e.total+int32(len(e.kinds)))
	if h.Opcode == OpContinuation {
		share = 1
	}
	return rate * 0.25 / share
}

// reach returns the longest frame with h's length encoding: a false header of that
// shape pointing at a given place lies at most that far before it.
func reach(h Header) float64 {
	switch {
	case h.Length <= 125:
		return 2 + 4 + 125
	case h.Length <= 0xFFFF:
		return 4 + 4 + 0xFFFF
	}
	return math.Inf(1)
}

// pointsAt returns the chance that a false header of h's shape has exactly the
// length that ends its frame at a given place: about one of the values a payload
// byte takes per length byte (generously, one in 64).
func pointsAt(h Header) float64 {
	switch {
	case h.Length <= 125:
		return 1.0 / 64
	case h.Length <= 0xFFFF:
		return 1.0 / (1 << 12)
	}
	return 1.0 / (1 << 20)
}

// textLooks returns how much likelier the unmasked payload p of a masked text
// message is as the XOR of two pieces of this direction's text (a false frame)
// than as its text: the product over some of its bytes of the two chances of
// their classes. 1 while too little text was seen to tell.
func (e *evidence) textLooks(p []byte) float64 {
	if e.textTotal < 64 || len(p) == 0 {
		return 1
	}
	var real, xor [8]float64
	for k := range real {
		real[k] = float64(e.text[k]+1) / float64(e.textTotal+8)
	}
	for k := range xor {
		for c := range real {
			xor[k] += real[c] * real[c^k]
		}
	}
	step := max(1, len(p)/64)
	lr := 1.0
	for i := 0; i < len(p); i += step {
		k := p[i] >> 5
		lr *= xor[k] / real[k]
	}
	return min(max(lr, 1e-30), 1e30) // products of chances stay finite and non-zero
}

// notAtFrame returns the chance that the first byte after a gap is not at a frame
// start, from where the pieces fed in step began.
func (e *evidence) notAtFrame() float64 {
	return 1 - float64(e.atFrame+1)/float64(e.feeds+2)
}
