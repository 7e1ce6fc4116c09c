package wsframe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/flate"
)

// deflateTail is the empty stored block a sync flush ends with; RFC 7692 §7.2.1 has
// senders strip it and receivers put it back.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// inflateTrailer is the tail plus a final empty stored block, so the decompressor
// reports a clean io.EOF at the end of each message instead of waiting for more.
var inflateTrailer = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// maxWindow is the largest LZ77 window of DEFLATE (15 bits).
const maxWindow = 1 << 15

// Inflater decompresses the messages of one direction of a permessage-deflate
// connection. With context takeover it carries the sender's LZ77 window (the last
// 32 KiB of output) from one message to the next, so messages must be inflated in
// order and none may be skipped.
//
// A message is inflated whole with [Inflater.Inflate], or as it arrives with
// [Inflater.Begin] and [Inflater.InflateChunk], in bounded memory whatever its size;
// the two can be mixed from one message to the next. Between messages the Inflater
// holds its window and small buffers only: those grown for a large message are let
// go of when it ends.
type Inflater struct {
	takeover bool
	fr       io.ReadCloser
	in       []byte
	src      bytes.Reader
	window   []byte
	st       *inflateStream // the message being streamed, if any
}

// NewInflater returns an Inflater for messages compressed as c describes.
func NewInflater(c Compression) *Inflater {
	return &Inflater{takeover: c.ContextTakeover}
}

// Inflate appends the decompressed form of the message payload src to dst and
// returns the extended slice. More than limit bytes of output is an error wrapping
// [ErrInflateTooBig] (close code 1009): a decompression bomb costs at most limit
// bytes. Corrupt data wraps [ErrBadDeflate]. After an error the Inflater's window
// is unreliable; the connection should end. src is only read; the Inflater keeps no
// reference to src or dst. Inflate abandons a message being streamed.
func (f *Inflater) Inflate(dst, src []byte, limit int64) ([]byte, error) {
	f.endStream()
	// The decompressor reads fastest from a *bytes.Reader, so message and trailer are
	// copied into one buffer: cheap next to inflating them.
	f.in = append(append(f.in[:0], src...), inflateTrailer...)
	f.src.Reset(f.in)
	defer f.letGo()
	var dict []byte
	if f.takeover {
		dict = f.window
	}
	if f.fr == nil {
		f.fr = flate.NewReaderDict(&f.src, dict)
	} else if err := f.fr.(flate.Resetter).Reset(&f.src, dict); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrBadDeflate, err)
	}
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			room := max(len(dst)-start, 4*len(src), 512)
			room = int(min(int64(room), limit+1-int64(len(dst)-start)))
			dst = slices.Grow(dst, max(room, 1))
		}
		n, err := f.fr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)-start) > limit {
			return dst[:start], fmt.Errorf("%w of %d bytes", ErrInflateTooBig, limit)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dst[:start], fmt.Errorf("%w: %w", ErrBadDeflate, err)
		}
	}
	if f.takeover {
		f.remember(dst[start:])
	}
	return dst, nil
}

// letGo drops the Inflater's hold on the message it inflated: the decompressor's
// source, and the copy of the message unless it is small enough to keep for the next.
func (f *Inflater) letGo() {
	f.src.Reset(nil)
	if cap(f.in) > keepBufferSize {
		f.in = nil
	}
}

// remember slides the window over out.
func (f *Inflater) remember(out []byte) {
	if len(out) >= maxWindow {
		f.window = append(f.window[:0], out[len(out)-maxWindow:]...)
		return
	}
	if keep := maxWindow - len(out); len(f.window) > keep {
		f.window = f.window[:copy(f.window, f.window[len(f.window)-keep:])]
	}
	f.window = append(f.window, out...)
}

// Deflater compresses the messages of one direction for a receiver that inflates as c
// describes: its window never exceeds 1<<c.WindowBits bytes (a zlib receiver with a
// smaller window rejects longer back-references), and without context takeover no
// message refers back into an earlier one.
type Deflater struct {
	takeover bool
	fw       *flate.Writer
	out      appendWriter
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// NewDeflater returns a Deflater for a receiver with parameters c.
func NewDeflater(c Compression) (*Deflater, error) {
	d := &Deflater{takeover: c.ContextTakeover}
	bits := c.WindowBits
	if bits == 0 {
		bits = 15
	}
	if bits < 8 || bits > 15 {
		return nil, fmt.Errorf("wsframe: window bits %d, want 8..15", c.WindowBits)
	}
	var err error
	if bits == 15 {
		d.fw, err = flate.NewWriter(&d.out, flate.DefaultCompression)
	} else {
		d.fw, err = flate.NewWriterWindow(&d.out, 1<<bits)
	}
	if err != nil {
		return nil, fmt.Errorf("wsframe: deflater: %w", err)
	}
	return d, nil
}

// Deflate appends the compressed form of the message src to dst, without the
// trailing 00 00 ff ff (RFC 7692 §7.2.1), and returns the extended slice.
func (d *Deflater) Deflate(dst, src []byte) ([]byte, error) {
	d.out.b = dst
	defer func() { d.out.b = nil }()
	if !d.takeover {
		d.fw.Reset(&d.out)
	}
	if _, err := d.fw.Write(src); err != nil {
		return dst, fmt.Errorf("wsframe: deflate: %w", err)
	}
	if err := d.fw.Flush(); err != nil {
		return dst, fmt.Errorf("wsframe: deflate: %w", err)
	}
	out := d.out.b
	if !bytes.HasSuffix(out[len(dst):], deflateTail) {
		return dst, errors.New("wsframe: deflate: sync flush did not end with 00 00 ff ff")
	}
	return out[:len(out)-len(deflateTail)], nil
}
