package wsframe

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Streaming inflation: a DEFLATE decoder (RFC 1951) that takes a compressed message
// in pieces as they arrive and gives its plaintext out in pieces, holding no more
// than the 32 KiB window and a fixed staging area whatever the message's size.
//
// compress/flate and klauspost/compress/flate pull their input from an io.Reader
// and cannot stop in the middle of a block when it runs dry: an error from the
// reader is final. So this decoder is a state machine that suspends anywhere, even
// between the bits of a code, and resumes when more input comes. [Inflater.Inflate]
// keeps using klauspost's faster decoder for whole messages; the two are held to the
// same results by tests, down to how much output comes before an error, so that
// the limit applies alike. Where klauspost's decoder waits for more bits than a code
// needs (its maxRead), this one does too: it makes a difference only to a stream
// that ends early, but then it decides between "too big" and "corrupt".

// streamStage is the output a stream decodes ahead of its caller, after the window.
const streamStage = 64 << 10

// maxMatch is the longest match of DEFLATE.
const maxMatch = 258

// The places where a stream can stop and resume: before each element of the format.
const (
	sBlock       uint8 = iota // a block header
	sStoredLen                // LEN and NLEN of a stored block
	sStored                   // the bytes of a stored block
	sDynCounts                // HLIT, HDIST and HCLEN of a dynamic block
	sDynCodeLens              // the code lengths of the code length code
	sDynLens                  // the literal/length and distance code lengths
	sDynRepeat                // the extra bits of a repeat code
	sSym                      // a literal/length symbol
	sLenExtra                 // the extra bits of a length
	sDist                     // a distance symbol
	sDistExtra                // the extra bits of a distance
	sCopy                     // a match being copied
	sEnd                      // after the final block: the rest is ignored
)

// Limits of the format (RFC 1951 §3.2.5-7).
const (
	maxLitCodes  = 286 // literal/length codes a dynamic block may declare
	maxDistCodes = 30
	fixedLitSyms = 288 // the fixed code also has lengths for 286 and 287, unused
)

var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	// codeOrder is the order of the code length code's lengths in a dynamic header.
	codeOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
	// fixedLit is the literal/length code of fixed-code blocks; it is never modified.
	fixedLit = newFixedLit()
)

func newFixedLit() *huffman {
	var lens [fixedLitSyms]uint8
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	h := new(huffman)
	h.init(lens[:])
	return h
}

// fastBits is how many bits of input huffman.fast is indexed by.
const fastBits = 9

// fastLong marks an entry of huffman.fast that starts a code longer than fastBits.
const fastLong = 0x8000

// huffman decodes one canonical Huffman code (RFC 1951 §3.2.2).
type huffman struct {
	// fast maps the next fastBits bits of input (the earliest in the lowest bit)
	// to sym<<4 | length for the codes of up to fastBits bits, to fastLong for the
	// beginnings of longer codes, and to 0 where no code begins.
	fast [1 << fastBits]uint16
	// count is the number of codes of each length, syms the symbols in code order:
	// what decodes the long codes.
	count [16]uint16
	syms  [fixedLitSyms]uint16
	// maxRead is how many bits are buffered before a symbol is looked up: the
	// shortest code, or more where klauspost's decoder asks for more (see above).
	maxRead uint
}

// init builds the code with the given code lengths, 0 for unused symbols. Like
// klauspost's decoder (and zlib) it accepts only complete codes, and also a single
// code of length 1 and the empty code, whose unused bit patterns fail when they are
// met. It reports whether the lengths make such a code.
func (h *huffman) init(lengths []uint8) bool {
	h.count = [16]uint16{}
	minLen, maxLen := 0, 0
	for _, l := range lengths {
		if l == 0 {
			continue
		}
		h.count[l]++
		if minLen == 0 || int(l) < minLen {
			minLen = int(l)
		}
		maxLen = max(maxLen, int(l))
	}
	h.maxRead = uint(minLen)
	clear(h.fast[:])
	if maxLen == 0 {
		return true
	}
	code := 0
	for l := minLen; l <= maxLen; l++ {
		code = code<<1 + int(h.count[l])
	}
	if code != 1<<maxLen && !(code == 1 && maxLen == 1) {
		return false
	}
	var offs, next [16]int
	code = 0
	for l := 1; l < 16; l++ {
		offs[l] = offs[l-1] + int(h.count[l-1])
		code = (code + int(h.count[l-1])) << 1
		next[l] = code
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		h.syms[offs[l]] = uint16(sym)
		offs[l]++
		rev := int(bits.Reverse16(uint16(next[l])) >> (16 - l))
		next[l]++
		if l > fastBits {
			h.fast[rev&(1<<fastBits-1)] = fastLong
			continue
		}
		for i := rev; i < len(h.fast); i += 1 << l {
			h.fast[i] = uint16(sym)<<4 | uint16(l)
		}
	}
	return true
}

// lookup returns the symbol whose code begins the bits in b (the earliest in the
// lowest bit; missing bits read as zeros) and the code's length, or length 0 where
// no code begins. Since shorter codes sort first, a code found in zero-padded bits
// is never longer than the real one: a length beyond the bits buffered means
// "buffer more and look again".
func (h *huffman) lookup(b uint64) (int, uint) {
	e := h.fast[b&(1<<fastBits-1)]
	if e&15 != 0 {
		return int(e >> 4), uint(e & 15)
	}
	if e == 0 {
		return 0, 0
	}
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= int(b>>(l-1)) & 1
		n := int(h.count[l])
		if code-first < n {
			return int(h.syms[index+code-first]), uint(l)
		}
		index += n
		first = (first + n) << 1
		code <<= 1
	}
	return 0, 0
}

// inflateStream is the state of a message being inflated in pieces.
type inflateStream struct {
	// hist holds the window (the last maxWindow bytes of history) followed by
	// output not yet given to the caller: hist[r:w].
	hist []byte
	r, w int

	// Input bits not yet used, the earliest in the lowest bit.
	b  uint64
	nb uint

	state uint8
	final bool // the current block is the last one
	fixed bool // the current block uses the fixed codes

	lit, dist, clen huffman // the dynamic block's codes
	nlit, ndist     int
	nclen, i        int // code lengths in the header, and read so far
	rep             int // the repeat code waiting for its extra bits
	lens            [maxLitCodes + maxDistCodes]uint8

	extra  uint // extra bits waiting to be read
	length int  // of the match in progress, or left of a stored block
	dist0  int  // distance of the match in progress

	total, limit int64
	tail         int // bytes of inflateTrailer used
	err          error
	active       bool
}

// errCorrupt is what the decoder found; the caller wraps it with ErrBadDeflate.
var errCorrupt = errors.New("corrupt input")

// Begin starts inflating a message that arrives in pieces, fed to [Inflater.InflateChunk],
// whose inflated size may not exceed limit. It abandons any message in progress.
// With context takeover the message may refer back into the earlier messages of the
// direction, inflated either way.
//
// While a message streams, the Inflater holds about 100 KiB more than its window (a
// copy of it, a staging area and code tables), whatever the size of the message or
// its compression ratio; the memory is kept for the next message. Like every method of
// an Inflater, Begin and InflateChunk are for one goroutine at a time.
func (f *Inflater) Begin(limit int64) {
	s := f.st
	if s == nil {
		s = &inflateStream{hist: make([]byte, maxWindow+streamStage)}
		f.st = s
	}
	var window []byte
	if f.takeover {
		window = f.window
	}
	s.w = copy(s.hist, window)
	s.r = s.w
	s.b, s.nb = 0, 0
	s.state, s.final, s.fixed = sBlock, false, false
	s.total, s.limit = 0, limit
	s.tail, s.err, s.active = 0, nil, true
}

// InflateChunk inflates the next piece of the compressed payload of the message
// begun with [Inflater.Begin]: it reads from src and writes plaintext to dst, and
// returns how many bytes of each it used. The pieces may be cut anywhere (frames,
// parts of frames, single bytes).
//
// Set final from the call that passes the message's last byte on (or on a call with
// an empty src after it), and on every call after that: the Inflater then also
// inflates the 00 00 ff ff tail RFC 7692 §7.2.1 has senders remove.
//
// It returns when dst is full, when it has used all of src and needs more (never
// with final set), at the end of the message, or at an error; nDst < len(dst) and
// a nil error mean that it used all of src. The caller keeps calling with the rest
// of src until then. At the end of the message it returns io.EOF (not wrapped),
// once all of the plaintext is in dst: the window then holds what [Inflater.Inflate]
// would leave in it, and the Inflater is ready for the next message.
//
// dst and src belong to the caller and are not retained; dst must not be empty.
// More than the Begin's limit of plaintext in all is an error wrapping
// [ErrInflateTooBig] (close code 1009), and never more than limit bytes are written;
// corrupt data, or a message that ends inside its data, wraps [ErrBadDeflate]. Errors
// repeat until the next Begin; after one, the Inflater's window is unreliable and the
// connection should end. Whatever the chunking, the plaintext, the window left and
// the error (too big or corrupt) are those of [Inflater.Inflate] on the whole message.
func (f *Inflater) InflateChunk(dst, src []byte, final bool) (nDst, nSrc int, err error) {
	s := f.st
	switch {
	case s == nil || !s.active:
		return 0, 0, errors.New("wsframe: InflateChunk without a message begun")
	case s.err != nil:
		return 0, 0, s.err
	case len(dst) == 0:
		return 0, 0, io.ErrShortBuffer
	}
	starved := false
	for {
		if s.r < s.w {
			n := copy(dst[nDst:], s.hist[s.r:s.w])
			s.r += n
			nDst += n
			if s.r < s.w {
				return nDst, nSrc, nil
			}
		}
		if s.state == sEnd {
			nSrc = len(src) // what follows the final block is ignored, as Inflate does
			if !final {
				return nDst, nSrc, nil
			}
			f.endMessage()
			return nDst, nSrc, io.EOF
		}
		if starved {
			return nDst, nSrc, nil
		}
		if s.w == len(s.hist) {
			// All given out: keep the window, make room behind it.
			s.r = copy(s.hist, s.hist[s.w-maxWindow:s.w])
			s.w = s.r
		}
		in, tail := src[nSrc:], false
		if len(in) == 0 && final {
			in, tail = inflateTrailer[s.tail:], true
		}
		used, err := s.run(in)
		if tail {
			s.tail += used
		} else {
			nSrc += used
		}
		switch {
		case s.total > s.limit:
			err = fmt.Errorf("%w of %d bytes", ErrInflateTooBig, s.limit)
		case err != nil:
			err = fmt.Errorf("%w: %w", ErrBadDeflate, err)
		case s.state != sEnd && s.w < len(s.hist): // the input ran out
			if tail {
				err = fmt.Errorf("%w: %w", ErrBadDeflate, io.ErrUnexpectedEOF)
			}
			starved = !final
		}
		if err != nil {
			s.err = err
			return nDst, nSrc, err
		}
	}
}

// endMessage ends the message being streamed, sliding the window over it.
func (f *Inflater) endMessage() {
	s := f.st
	s.active = false
	if f.takeover {
		f.window = append(f.window[:0], s.hist[max(0, s.w-maxWindow):s.w]...)
	}
}

// endStream abandons a message being streamed, for one inflated whole.
func (f *Inflater) endStream() {
	if f.st != nil {
		f.st.active = false
	}
}

// more buffers input bits until there are n, and reports false if in runs out first.
func (s *inflateStream) more(n uint, in []byte, i *int) bool {
	for s.nb < n {
		if *i == len(in) {
			return false
		}
		s.b |= uint64(in[*i]) << s.nb
		*i++
		s.nb += 8
	}
	return true
}

// drop discards n buffered bits.
func (s *inflateStream) drop(n uint) {
	s.b >>= n
	s.nb -= n
}

// sym decodes a symbol of h, reading in as needed; ok is false if in ran out first.
func (s *inflateStream) sym(h *huffman, in []byte, i *int) (sym int, ok bool, err error) {
	n := h.maxRead
	for {
		if !s.more(n, in, i) {
			return 0, false, nil
		}
		sym, l := h.lookup(s.b)
		if l <= s.nb {
			if l == 0 {
				return 0, false, errCorrupt
			}
			s.drop(l)
			return sym, true, nil
		}
		n = l
	}
}

// litCode returns the literal/length code of the current block.
func (s *inflateStream) litCode() *huffman {
	if s.fixed {
		return fixedLit
	}
	return &s.lit
}

// endBlock moves on after a block.
func (s *inflateStream) endBlock() {
	if s.final {
		s.state = sEnd
	} else {
		s.state = sBlock
	}
}

// run decodes from in into hist until the staging area is full, in runs out, the
// final block ends or the data turns out corrupt, and returns how much of in it used.
func (s *inflateStream) run(in []byte) (int, error) {
	i := 0
	for {
		switch s.state {
		case sBlock:
			if !s.more(3, in, &i) {
				return i, nil
			}
			s.final = s.b&1 == 1
			typ := s.b >> 1 & 3
			s.drop(3)
			switch typ {
			case 0:
				s.drop(s.nb & 7) // to the byte boundary
				s.state = sStoredLen
			case 1:
				s.fixed, s.state = true, sSym
			case 2:
				s.fixed, s.state = false, sDynCounts
			default:
				return i, errCorrupt
			}

		case sStoredLen:
			if !s.more(32, in, &i) {
				return i, nil
			}
			n, nn := uint16(s.b), uint16(s.b>>16)
			s.drop(32)
			if nn != ^n {
				return i, errCorrupt
			}
			s.length = int(n)
			s.state = sStored

		case sStored:
			for s.length > 0 && s.nb >= 8 && s.w < len(s.hist) {
				s.hist[s.w] = byte(s.b)
				s.drop(8)
				s.w++
				s.length--
				s.total++
			}
			if s.length > 0 && s.nb == 0 {
				n := copy(s.hist[s.w:min(len(s.hist), s.w+s.length)], in[i:])
				s.w += n
				i += n
				s.length -= n
				s.total += int64(n)
			}
			if s.length > 0 {
				return i, nil // full, or in ran out
			}
			s.endBlock()

		case sDynCounts:
			if !s.more(14, in, &i) {
				return i, nil
			}
			s.nlit = int(s.b&31) + 257
			s.ndist = int(s.b>>5&31) + 1
			s.nclen = int(s.b>>10&15) + 4
			s.drop(14)
			if s.nlit > maxLitCodes || s.ndist > maxDistCodes {
				return i, errCorrupt
			}
			clear(s.lens[:len(codeOrder)])
			s.i, s.state = 0, sDynCodeLens

		case sDynCodeLens:
			for ; s.i < s.nclen; s.i++ {
				if !s.more(3, in, &i) {
					return i, nil
				}
				s.lens[codeOrder[s.i]] = uint8(s.b & 7)
				s.drop(3)
			}
			if !s.clen.init(s.lens[:len(codeOrder)]) {
				return i, errCorrupt
			}
			s.i, s.state = 0, sDynLens

		case sDynLens:
			n := s.nlit + s.ndist
			for s.i < n {
				sym, ok, err := s.sym(&s.clen, in, &i)
				if err != nil || !ok {
					return i, err
				}
				if sym >= 16 {
					s.rep, s.state = sym, sDynRepeat
					break
				}
				s.lens[s.i] = uint8(sym)
				s.i++
			}
			if s.state == sDynRepeat {
				continue
			}
			if !s.lit.init(s.lens[:s.nlit]) || !s.dist.init(s.lens[s.nlit:n]) {
				return i, errCorrupt
			}
			// As klauspost's decoder: wait for the end-of-block code, and for the
			// shortest next block header after it unless this block is the last.
			s.lit.maxRead = max(s.lit.maxRead, uint(s.lens[256]))
			if !s.final {
				s.lit.maxRead += 10
			}
			s.state = sSym

		case sDynRepeat:
			nbits, count, value := uint(7), 11, uint8(0)
			switch s.rep {
			case 16:
				if s.i == 0 {
					return i, errCorrupt
				}
				nbits, count, value = 2, 3, s.lens[s.i-1]
			case 17:
				nbits, count = 3, 3
			}
			if !s.more(nbits, in, &i) {
				return i, nil
			}
			count += int(s.b & (1<<nbits - 1))
			s.drop(nbits)
			if s.i+count > s.nlit+s.ndist {
				return i, errCorrupt
			}
			for range count {
				s.lens[s.i] = value
				s.i++
			}
			s.state = sDynLens

		case sSym:
			if len(in)-i >= 8 && s.w <= len(s.hist)-maxMatch {
				n, err := s.fast(in[i:])
				i += n
				if err != nil {
					return i, err
				}
				continue
			}
			if s.w == len(s.hist) {
				return i, nil
			}
			sym, ok, err := s.sym(s.litCode(), in, &i)
			if err != nil || !ok {
				return i, err
			}
			switch {
			case sym < 256:
				s.hist[s.w] = byte(sym)
				s.w++
				s.total++
			case sym == 256:
				s.endBlock()
			case sym < maxLitCodes:
				s.length = int(lenBase[sym-257])
				s.extra = uint(lenExtra[sym-257])
				s.state = sLenExtra
			default:
				return i, errCorrupt
			}

		case sLenExtra:
			if !s.more(s.extra, in, &i) {
				return i, nil
			}
			s.length += int(s.b & (1<<s.extra - 1))
			s.drop(s.extra)
			s.state = sDist

		case sDist:
			var d int
			if s.fixed {
				if !s.more(5, in, &i) {
					return i, nil
				}
				d = int(bits.Reverse8(uint8(s.b&31) << 3))
				s.drop(5)
			} else {
				sym, ok, err := s.sym(&s.dist, in, &i)
				if err != nil || !ok {
					return i, err
				}
				d = sym
			}
			if d >= maxDistCodes {
				return i, errCorrupt
			}
			if d < 4 {
				s.dist0 = d + 1
				if s.dist0 > min(s.w, maxWindow) {
					return i, errCorrupt
				}
				s.state = sCopy
				continue
			}
			s.extra = uint(d-2) >> 1
			s.dist0 = 1<<(s.extra+1) + 1 + (d&1)<<s.extra
			s.state = sDistExtra

		case sDistExtra:
			if !s.more(s.extra, in, &i) {
				return i, nil
			}
			s.dist0 += int(s.b & (1<<s.extra - 1))
			s.drop(s.extra)
			if s.dist0 > min(s.w, maxWindow) {
				return i, errCorrupt
			}
			s.state = sCopy

		case sCopy:
			n := min(s.length, len(s.hist)-s.w)
			if n == 0 {
				return i, nil
			}
			copyMatch(s.hist, s.w, s.dist0, n)
			s.w += n
			s.total += int64(n)
			s.length -= n
			if s.length == 0 {
				s.state = sSym
			}

		case sEnd:
			return len(in), nil
		}
	}
}

// fast decodes whole symbols of a Huffman-coded block, matches included, while in
// holds at least 8 bytes and hist has room for a longest match, buffering input 64
// bits at a time; it returns how much of in it used. It leaves s in sSym, or after
// the block's end-of-block code.
func (s *inflateStream) fast(in []byte) (int, error) {
	lit := s.litCode()
	b, nb, w, i := s.b, s.nb, s.w, 0
	hist := s.hist
	var err error
	for len(in)-i >= 8 && w <= len(hist)-maxMatch {
		for nb <= 56 {
			b |= uint64(in[i]) << nb
			i++
			nb += 8
		}
		sym, l := lit.lookup(b)
		if l == 0 {
			err = errCorrupt
			break
		}
		b >>= l
		nb -= l
		if sym < 256 {
			hist[w] = byte(sym)
			w++
			continue
		}
		if sym == 256 {
			s.endBlock()
			break
		}
		if sym >= maxLitCodes {
			err = errCorrupt
			break
		}
		length := int(lenBase[sym-257])
		if e := uint(lenExtra[sym-257]); e > 0 {
			length += int(b & (1<<e - 1))
			b >>= e
			nb -= e
		}
		var d int
		if s.fixed {
			d = int(bits.Reverse8(uint8(b&31) << 3))
			b >>= 5
			nb -= 5
		} else {
			if d, l = s.dist.lookup(b); l == 0 {
				err = errCorrupt
				break
			}
			b >>= l
			nb -= l
		}
		if d >= maxDistCodes {
			err = errCorrupt
			break
		}
		dist := d + 1
		if d >= 4 {
			e := uint(d-2) >> 1
			dist = 1<<(e+1) + 1 + (d&1)<<e + int(b&(1<<e-1))
			b >>= e
			nb -= e
		}
		if dist > min(w, maxWindow) {
			err = errCorrupt
			break
		}
		copyMatch(hist, w, dist, length)
		w += length
	}
	s.total += int64(w - s.w)
	s.b, s.nb, s.w = b, nb, w
	return i, err
}

// copyMatch copies length bytes from dist bytes back to h[w:], the copy overlapping
// its source when dist < length (RFC 1951 §3.2.3): a run of the last dist bytes.
func copyMatch(h []byte, w, dist, length int) {
	src, end := w-dist, w+length
	if dist >= length {
		copy(h[w:end], h[src:src+length])
		return
	}
	for w < end {
		w += copy(h[w:end], h[src:w]) // doubles what is copied at each step
	}
}
