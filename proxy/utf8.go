package proxy

import "unicode/utf8"

// utf8Stream checks that a text message streamed past the hooks, whose payload is
// never whole in memory, is UTF-8, one piece at a time: a character may be cut
// between pieces (and frames).
type utf8Stream struct {
	rune [utf8.UTFMax]byte // the start of a character the last piece cut
	n    int
	bad  bool
}

// reset starts a new message.
func (u *utf8Stream) reset() { *u = utf8Stream{} }

// write takes the next piece of the payload (unmasked).
func (u *utf8Stream) write(p []byte) {
	if u.bad {
		return
	}
	for u.n > 0 && len(p) > 0 {
		// Complete the cut character from p.
		u.rune[u.n] = p[0]
		u.n++
		p = p[1:]
		if utf8.FullRune(u.rune[:u.n]) {
			if r, size := utf8.DecodeRune(u.rune[:u.n]); r == utf8.RuneError && size <= 1 || size != u.n {
				u.bad = true
				return
			}
			u.n = 0
		}
	}
	if len(p) == 0 {
		return // (u.n may still hold an incomplete character)
	}
	// Keep an incomplete character at the end for the next piece.
	cut := len(p)
	for k := 1; k < utf8.UTFMax && k <= len(p); k++ {
		if utf8.RuneStart(p[len(p)-k]) {
			if !utf8.FullRune(p[len(p)-k:]) {
				cut = len(p) - k
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		u.bad = true
		return
	}
	u.n = copy(u.rune[:], p[cut:])
}

// valid reports whether everything written is UTF-8; with end, the message is
// over, and a character left incomplete makes it invalid.
func (u *utf8Stream) valid(end bool) bool { return !u.bad && (!end || u.n == 0) }
