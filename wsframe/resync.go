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

	// The search remembers its progress between calls: positions before scanned
	// were examined, and cands are those whose chain needed bytes not there yet
	// (a position found bad stays bad).
	scanned int
	cands   []cand
	minNeed int    // no cand's verdict can change before the buffer holds this many bytes
	scratch []byte // unmasked payload for plausible
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
	for len(r.buf) > 0 {
		if !r.verified {
			i, v := r.search(mode)
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
