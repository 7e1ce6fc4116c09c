package wsframe

import (
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
)

// DefaultWriterBufferSize is the output buffer size of a [Writer] when none is given.
const DefaultWriterBufferSize = 4096

// maskChunkSize is the size of the scratch buffer that masks large payloads on their
// way out; scratch buffers are pooled, so idle writers hold none.
const maskChunkSize = 64 << 10

var maskScratch = sync.Pool{New: func() any { b := make([]byte, maskChunkSize); return &b }}

// writerBufs holds the output buffers of default-size Writers while they are idle:
// under the relay's flush rule most connections are idle most of the time, so
// they hold no buffer (4 KiB less per direction and connection).
var writerBufs = sync.Pool{New: func() any { b := make([]byte, 0, DefaultWriterBufferSize); return &b }}

// Writer writes frames to a byte stream. Small frames are gathered in a buffer until
// [Writer.Flush]; large payloads go out with vectored I/O (header and payload in one
// writev) instead of being copied through the buffer. The caller's payload is never
// modified: masking happens in the Writer's own memory.
type Writer struct {
	dst     io.Writer
	buf     []byte  // pending output; nil while an idle pooled Writer holds none
	pooled  *[]byte // buf's pool entry
	size    int     // buffer capacity; DefaultWriterBufferSize buffers are pooled
	masks   bool
	rng     *rand.ChaCha8
	vec     [2][]byte
	buffers net.Buffers
}

// NewWriter returns a Writer to dst for frames sent by sender, with an output buffer
// of bufSize bytes (DefaultWriterBufferSize when bufSize < 2*MaxHeaderSize). A
// client's Writer masks new frames with keys from a ChaCha8 generator seeded from
// crypto/rand (RFC 6455 §5.3 asks for unpredictable keys; a crypto/rand read per
// frame would cost more than the rest of the frame).
func NewWriter(dst io.Writer, sender Side, bufSize int) *Writer {
	if bufSize < 2*MaxHeaderSize {
		bufSize = DefaultWriterBufferSize
	}
	w := &Writer{dst: dst, size: bufSize, masks: sender == Client}
	if w.masks {
		w.rng = newMaskRNG()
	}
	return w
}

// grab makes sure the Writer holds its output buffer.
func (w *Writer) grab() {
	switch {
	case w.buf != nil:
	case w.size == DefaultWriterBufferSize:
		w.pooled = writerBufs.Get().(*[]byte)
		w.buf = (*w.pooled)[:0]
	default:
		w.buf = make([]byte, 0, w.size)
	}
}

// release returns an empty pooled buffer to the pool.
func (w *Writer) release() {
	if w.pooled != nil && len(w.buf) == 0 {
		*w.pooled = w.buf
		writerBufs.Put(w.pooled)
		w.pooled, w.buf = nil, nil
	}
}

func newMaskRNG() *rand.ChaCha8 {
	var seed [32]byte
	crand.Read(seed[:]) // never fails: crypto/rand crashes the program instead
	return rand.NewChaCha8(seed)
}

// NewMaskKey returns a fresh random masking key.
func (w *Writer) NewMaskKey() [4]byte {
	if w.rng == nil {
		w.rng = newMaskRNG()
	}
	v := w.rng.Uint64()
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// WriteFrame writes one frame with header h (its Length is set to len(payload)) and
// the unmasked payload, masked with h.Mask when h.Masked. Writing a frame with the
// header and payload a [Reader] returned reproduces the original bytes exactly, for
// any header in its minimal encoding (which strict [Rules] guarantee).
func (w *Writer) WriteFrame(h Header, payload []byte) error {
	w.grab()
	h.Length = uint64(len(payload))
	size := h.EncodedLen() + len(payload)
	if size > cap(w.buf)-len(w.buf) && size <= cap(w.buf) {
		// It fits in an empty buffer: make room.
		if err := w.Flush(); err != nil {
			return err
		}
		w.grab()
	}
	if size <= cap(w.buf)-len(w.buf) {
		w.buf = AppendHeader(w.buf, h)
		off := len(w.buf)
		w.buf = append(w.buf, payload...)
		if h.Masked {
			Mask(h.Mask, 0, w.buf[off:])
		}
		return nil
	}
	w.buf = AppendHeader(w.buf, h)
	if !h.Masked {
		return w.WriteRaw(payload)
	}
	sp := maskScratch.Get().(*[]byte)
	defer maskScratch.Put(sp)
	scratch := (*sp)[:0]
	scratch = append(scratch, w.buf...)
	w.buf = w.buf[:0]
	pos := 0
	for len(payload) > 0 {
		n := min(len(payload), cap(scratch)-len(scratch))
		off := len(scratch)
		scratch = append(scratch, payload[:n]...)
		pos = Mask(h.Mask, pos, scratch[off:])
		payload = payload[n:]
		if _, err := w.dst.Write(scratch); err != nil {
			return fmt.Errorf("wsframe: write: %w", err)
		}
		scratch = scratch[:0]
	}
	return nil
}

// WriteMessage writes a new message: frames of the given payload sizes when they are
// non-negative and add up to len(payload) (to keep the framing of a relayed message),
// one frame otherwise.
// rsv is set on the first frame only (RSV1 marks a compressed message, RFC 7692 §6).
// A client's Writer masks each frame with a fresh key.
func (w *Writer) WriteMessage(op Opcode, rsv uint8, payload []byte, sizes []int) error {
	total := 0
	for _, s := range sizes {
		if s < 0 {
			total = -1
			break
		}
		total += s
	}
	whole := [1]int{len(payload)}
	if total != len(payload) || len(sizes) == 0 {
		sizes = whole[:]
	}
	h := Header{Opcode: op, Rsv: rsv, Masked: w.masks}
	for i, n := range sizes {
		h.Fin = i == len(sizes)-1
		if w.masks {
			h.Mask = w.NewMaskKey()
		}
		if err := w.WriteFrame(h, payload[:n]); err != nil {
			return err
		}
		payload = payload[n:]
		h.Opcode, h.Rsv = OpContinuation, 0
	}
	return nil
}

// WriteFragment writes one frame of a message the caller cuts into frames as its
// payload becomes available: op and rsv on the first frame (OpContinuation and 0 on
// the others), fin on the last. A client's Writer masks it with a fresh key.
func (w *Writer) WriteFragment(op Opcode, rsv uint8, payload []byte, fin bool) error {
	h := Header{Fin: fin, Opcode: op, Rsv: rsv, Masked: w.masks}
	if w.masks {
		h.Mask = w.NewMaskKey()
	}
	return w.WriteFrame(h, payload)
}

// WriteFrames writes frames with the given headers, whose payloads follow one another
// in payload (unmasked): the byte-identical forwarding path for an unmodified
// [Message] (its Frames and Wire).
func (w *Writer) WriteFrames(frames []Header, payload []byte) error {
	for _, h := range frames {
		if h.Length > uint64(len(payload)) {
			return fmt.Errorf("wsframe: WriteFrames: headers describe %d more bytes than the payload holds", h.Length-uint64(len(payload)))
		}
		if err := w.WriteFrame(h, payload[:h.Length]); err != nil {
			return err
		}
		payload = payload[h.Length:]
	}
	return nil
}

// WriteHeader writes a frame header on its own, for a caller that streams the
// payload after it with WriteRaw.
func (w *Writer) WriteHeader(h Header) error {
	w.grab()
	if MaxHeaderSize > cap(w.buf)-len(w.buf) {
		if err := w.Flush(); err != nil {
			return err
		}
		w.grab()
	}
	w.buf = AppendHeader(w.buf, h)
	return nil
}

// WriteRaw writes bytes exactly as given: payload that is already masked (or needs
// no mask), from [Reader.ReadRaw], after WriteHeader. Large writes bypass the buffer.
func (w *Writer) WriteRaw(p []byte) error {
	w.grab()
	if len(p) <= cap(w.buf)-len(w.buf) {
		w.buf = append(w.buf, p...)
		return nil
	}
	w.vec = [2][]byte{w.buf, p}
	w.buffers = w.vec[:]
	_, err := w.buffers.WriteTo(w.dst)
	w.buf, w.vec = w.buf[:0], [2][]byte{}
	if err != nil {
		return fmt.Errorf("wsframe: write: %w", err)
	}
	return nil
}

// Buffered returns the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes the buffered frames to the destination. A Writer with the default
// buffer size then gives its buffer back to a pool until the next write.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		w.release()
		return nil
	}
	_, err := w.dst.Write(w.buf)
	w.buf = w.buf[:0]
	w.release()
	if err != nil {
		return fmt.Errorf("wsframe: write: %w", err)
	}
	return nil
}
