package wsframe

import (
	"errors"
	"io"
)

// DefaultReaderBufferSize is the read buffer size of a [Reader] when none is given.
// Batching comes from the flush rule (see [Reader.Ready]), not from large buffers.
const DefaultReaderBufferSize = 4096

// Reader reads frames from a byte stream. It does not assume anything about how the
// stream is cut: a header may arrive a byte at a time and one read may hold many
// frames. Payloads are streamed: [Reader.Read] returns the current frame's payload,
// unmasked, in pieces of the caller's choosing, so a frame of any length passes
// through the fixed-size buffer.
//
// Typical use:
//
//	r := wsframe.NewReader(conn, wsframe.Rules{Sender: wsframe.Client}, 0)
//	for {
//		h, err := r.NextFrame()
//		if err != nil { ... }
//		payload := buf[:h.Length] // after checking h.Length against a limit
//		if _, err := io.ReadFull(r, payload); err != nil { ... }
//	}
type Reader struct {
	src   io.Reader
	rules Rules

	buf        []byte // buf[start:end] holds bytes read from src and not yet consumed
	start, end int
	err        error // sticky error from src

	hdr       Header
	raw       [MaxHeaderSize]byte
	rawLen    int
	remaining uint64 // payload bytes of the current frame not yet returned
	maskPos   int
	inFrame   bool
	keys      keyBlock
}

// NewReader returns a Reader of frames from src checked against rules, with a
// read buffer of bufSize bytes (DefaultReaderBufferSize when bufSize < MaxHeaderSize).
func NewReader(src io.Reader, rules Rules, bufSize int) *Reader {
	if bufSize < MaxHeaderSize {
		bufSize = DefaultReaderBufferSize
	}
	return &Reader{src: src, rules: rules, buf: make([]byte, bufSize)}
}

// Rules returns the rules r checks frames against.
func (r *Reader) Rules() Rules { return r.rules }

// SetRules changes the rules for the frames that follow, e.g. once the extensions of
// a connection are known.
func (r *Reader) SetRules(rules Rules) { r.rules = rules }

// NextFrame reads the next frame header, first skipping whatever payload of the
// current frame was not read. It returns io.EOF when the stream ends cleanly between
// frames, io.ErrUnexpectedEOF when it ends inside a frame, and a *ProtocolError
// (wrapped) when the header breaks the rules; the header is returned with that error
// so callers can log it, and it stays the current frame: a caller that goes on (to
// find the peer's close frame after sending its own, say) skips its payload with
// the next NextFrame.
func (r *Reader) NextFrame() (Header, error) {
	if r.inFrame && r.remaining > 0 {
		if err := r.skip(); err != nil {
			return Header{}, err
		}
	}
	r.inFrame = false
	if err := r.fill(2); err != nil {
		if errors.Is(err, io.EOF) && r.end == r.start {
			return Header{}, io.EOF
		}
		return Header{}, unexpected(err)
	}
	n := HeaderLen(r.buf[r.start], r.buf[r.start+1])
	if err := r.fill(n); err != nil {
		return Header{}, unexpected(err)
	}
	h, _, _ := ParseHeader(r.buf[r.start : r.start+n])
	r.rawLen = copy(r.raw[:], r.buf[r.start:r.start+n])
	r.start += n
	r.hdr, r.remaining, r.maskPos, r.inFrame = h, h.Length, 0, true
	if err := r.rules.Check(h, n); err != nil {
		return h, err
	}
	return h, nil
}

// Header returns the header of the current frame.
func (r *Reader) Header() Header { return r.hdr }

// RawHeader returns the current frame's header exactly as it was on the wire (a
// non-minimal length encoding included). The slice is valid until the next NextFrame.
func (r *Reader) RawHeader() []byte { return r.raw[:r.rawLen] }

// Remaining returns how many payload bytes of the current frame are still unread.
func (r *Reader) Remaining() uint64 { return r.remaining }

// Read reads unmasked payload bytes of the current frame into p. It returns io.EOF
// at the end of the frame's payload and io.ErrUnexpectedEOF if the stream ends
// before it.
func (r *Reader) Read(p []byte) (int, error) { return r.read(p, true) }

// ReadRaw reads payload bytes of the current frame into p exactly as they were on the
// wire (still masked), for byte-identical forwarding. It shares Read's position, so
// the two can be mixed on one frame.
func (r *Reader) ReadRaw(p []byte) (int, error) { return r.read(p, false) }

func (r *Reader) read(p []byte, unmask bool) (int, error) {
	if !r.inFrame || r.remaining == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if uint64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	var n int
	if r.end > r.start {
		n = copy(p, r.buf[r.start:r.end])
		r.start += n
	} else {
		if r.err != nil {
			return 0, unexpected(r.err)
		}
		if len(p) < len(r.buf) {
			// Small reads go through the buffer so the next header comes with them.
			if err := r.fill(1); err != nil {
				return 0, unexpected(err)
			}
			n = copy(p, r.buf[r.start:r.end])
			r.start += n
		} else {
			// Large reads bypass the buffer: one copy less.
			n, r.err = r.src.Read(p)
			if n == 0 && r.err != nil {
				return 0, unexpected(r.err)
			}
		}
	}
	switch {
	case r.hdr.Masked && unmask:
		r.maskPos = r.keys.mask(r.hdr.Mask, r.maskPos, p[:n])
	case r.hdr.Masked:
		r.maskPos = (r.maskPos + n) & 3
	}
	r.remaining -= uint64(n)
	return n, nil
}

// Buffered returns the number of bytes read from the source and not yet consumed.
func (r *Reader) Buffered() int { return r.end - r.start }

// Ready reports whether the rest of the current frame and the whole next frame are
// already buffered, so that reading them will not block. A relay flushes its output
// only when Ready is false: that batches many small frames into one write.
func (r *Reader) Ready() bool {
	avail := uint64(r.end - r.start)
	if r.remaining > avail {
		return false
	}
	avail -= r.remaining
	if avail < 2 {
		return false
	}
	b := r.buf[r.end-int(avail) : r.end]
	n := HeaderLen(b[0], b[1])
	if avail < uint64(n) {
		return false
	}
	h, _, _ := ParseHeader(b)
	return h.Length <= avail-uint64(n)
}

// skip discards the rest of the current frame's payload.
func (r *Reader) skip() error {
	for r.remaining > 0 {
		if r.end == r.start {
			if err := r.fill(1); err != nil {
				return unexpected(err)
			}
		}
		n := min(uint64(r.end-r.start), r.remaining)
		r.start += int(n)
		r.remaining -= n
	}
	return nil
}

// fill makes sure at least n bytes are buffered, compacting the buffer first.
func (r *Reader) fill(n int) error {
	if r.end-r.start >= n {
		return nil
	}
	if r.start > 0 && r.start+n > len(r.buf) {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	for r.end-r.start < n {
		if r.err != nil {
			return r.err
		}
		var m int
		m, r.err = r.src.Read(r.buf[r.end:])
		r.end += m
	}
	return nil
}

// unexpected maps a clean EOF inside a frame to io.ErrUnexpectedEOF, so that a
// truncated frame is never mistaken for a complete one.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
