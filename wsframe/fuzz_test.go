package wsframe_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wstap/wstap/wsframe"
)

// Fuzz targets of the codec. Helpers here are prefixed with "fz" so they cannot clash
// with the helpers of the package's other test files. The seed corpora live in
// testdata/fuzz/<FuzzName>/ next to the f.Add seeds below.

// fzFrame is one frame of a seed stream.
type fzFrame struct {
	fin     bool
	rsv     uint8
	op      wsframe.Opcode
	payload []byte
}

// fzStream encodes frames as side sends them, with fixed masking keys so that seeds
// are deterministic.
func fzStream(side wsframe.Side, frames ...fzFrame) []byte {
	var buf bytes.Buffer
	w := wsframe.NewWriter(&buf, side, 0)
	for i, fr := range frames {
		h := wsframe.Header{
			Fin: fr.fin, Rsv: fr.rsv, Opcode: fr.op,
			Masked: side == wsframe.Client,
			Mask:   [4]byte{byte(0x11*i + 0x3c), 0xa5, 0x5a, byte(0x80 + i)},
		}
		if err := w.WriteFrame(h, fr.payload); err != nil {
			panic(err)
		}
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// fzDeflate compresses messages in order with one Deflater.
func fzDeflate(c wsframe.Compression, msgs ...string) [][]byte {
	d, err := wsframe.NewDeflater(c)
	if err != nil {
		panic(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		if out[i], err = d.Deflate(nil, []byte(m)); err != nil {
			panic(err)
		}
	}
	return out
}

func fzBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// fzSeedStreams returns real frame streams: masked and unmasked, 7-bit, 16-bit and
// 64-bit lengths, a fragmented message with interleaved control frames, close
// frames, compressed messages (with context takeover, and fragmented), and the
// malformed headers a strict reader rejects.
func fzSeedStreams() [][]byte {
	F := func(fin bool, rsv uint8, op wsframe.Opcode, p string) fzFrame {
		return fzFrame{fin, rsv, op, []byte(p)}
	}
	const T = true
	json := `{"type":"chat","room":"lobby","text":"hello hello hello, world"}`
	takeover := fzDeflate(wsframe.Compression{ContextTakeover: true}, json, json)
	var seeds [][]byte
	for _, side := range []wsframe.Side{wsframe.Client, wsframe.Server} {
		seeds = append(seeds,
			fzStream(side, F(T, 0, wsframe.OpText, "Hello")),
			fzStream(side, fzFrame{T, 0, wsframe.OpBinary, fzBytes(200)}),   // 126: 16-bit length
			fzStream(side, fzFrame{T, 0, wsframe.OpBinary, fzBytes(65536)}), // 127: 64-bit length
			fzStream(side,
				F(false, 0, wsframe.OpText, "Hel"),
				F(T, 0, wsframe.OpPing, "are you there?"),
				F(false, 0, wsframe.OpContinuation, "lo, "),
				F(T, 0, wsframe.OpPong, ""),
				F(T, 0, wsframe.OpContinuation, "world"),
				F(T, 0, wsframe.OpClose, "\x03\xe8bye"),
			),
			fzStream(side, F(T, 0, wsframe.OpClose, "\x03\xe9"), F(T, 0, wsframe.OpClose, "")),
			fzStream(side,
				fzFrame{T, wsframe.RSV1, wsframe.OpText, takeover[0]},
				fzFrame{T, wsframe.RSV1, wsframe.OpText, takeover[1]},
				F(T, 0, wsframe.OpText, "plain"),
			),
			fzStream(side,
				fzFrame{false, wsframe.RSV1, wsframe.OpBinary, takeover[0][:3]},
				F(T, 0, wsframe.OpPing, ""),
				fzFrame{T, 0, wsframe.OpContinuation, takeover[0][3:]},
			),
		)
	}
	seeds = append(seeds,
		nil,
		[]byte{0x82, 0x7e, 0x00, 0x05, 1, 2, 3, 4, 5},             // non-minimal 16-bit length
		[]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x02, 1, 2},       // non-minimal 64-bit length
		[]byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 0xff},    // length MSB set
		[]byte{0x81, 0x85, 1, 2, 3, 4, 'H' ^ 1, 'e' ^ 2, 'l' ^ 3}, // truncated masked frame
		[]byte{0x83, 0x00},             // reserved opcode
		[]byte{0x09, 0x00},             // fragmented ping
		[]byte{0xf1, 0x80, 0, 0, 0, 0}, // RSV1|RSV2|RSV3, masked, empty
		append([]byte{0x89, 0x7e, 0x00, 0x7e}, fzBytes(126)...), // ping of 126 bytes
	)
	return seeds
}

// fzChunkReader serves data in reads of varying size, at most max bytes (all of it
// when max is 0), so that headers and payloads straddle reads everywhere.
type fzChunkReader struct {
	data []byte
	max  int
	k    int
}

func (r *fzChunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if r.max > 0 {
		r.k++
		if n := 1 + (r.k*7)%r.max; len(p) > n {
			p = p[:n]
		}
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// fzReadFrame is a frame the reader accepted: where it starts in the input, its
// header and its encoded header size.
type fzReadFrame struct {
	off  int
	h    wsframe.Header
	hlen int
}

// FuzzReader reads arbitrary bytes as a frame stream, for both senders, strict and
// lenient, with and without a negotiated RSV1, through source reads and reader
// buffers of many sizes. Every accepted header is what ParseHeader makes of the input
// at that offset; every payload is the input's, unmasked; errors are of the right
// kind at the right place; and in strict mode writing an accepted frame back with the
// header and unmasked payload the Reader returned reproduces its exact input bytes.
func FuzzReader(f *testing.F) {
	for i, s := range fzSeedStreams() {
		f.Add(s, uint8(0), uint8(0))
		f.Add(s, uint8(i%5+1), uint8(14+i))
	}
	f.Fuzz(func(t *testing.T, data []byte, readSize, bufSize uint8) {
		for _, side := range []wsframe.Side{wsframe.Client, wsframe.Server} {
			for _, ext := range []uint8{0, wsframe.RSV1} {
				rules := wsframe.Rules{Sender: side, Extensions: ext}
				strict := fzCheckReader(t, data, rules, int(readSize), int(bufSize), false)
				rules.Lenient = true
				lenient := fzCheckReader(t, data, rules, int(readSize), int(bufSize), false)
				// Lenient mode accepts a superset: what strict mode read, it reads too.
				if len(lenient) < len(strict) || !slices.Equal(lenient[:len(strict)], strict) {
					t.Fatalf("%v: strict read %d frames that lenient mode does not read the same (%d)", rules, len(strict), len(lenient))
				}
			}
		}
		// Payloads read in small pieces, mixing Read and ReadRaw, must chain the
		// masking key across pieces.
		fzCheckReader(t, data, wsframe.Rules{Sender: wsframe.Client, Lenient: true}, int(readSize), int(bufSize), true)
	})
}

// fzCheckReader reads data to its end with r and checks every frame; see FuzzReader.
// pieces reads payloads in small pieces alternating Read and ReadRaw instead of with
// io.ReadAll. It returns the frames read.
func fzCheckReader(t *testing.T, data []byte, rules wsframe.Rules, readSize, bufSize int, pieces bool) []fzReadFrame {
	t.Helper()
	r := wsframe.NewReader(&fzChunkReader{data: data, max: readSize}, rules, bufSize)
	var frames []fzReadFrame
	off := 0
	for {
		h, err := r.NextFrame()
		rest := data[off:]
		if err != nil {
			var pe *wsframe.ProtocolError
			switch {
			case err == io.EOF:
				if len(rest) != 0 {
					t.Fatalf("%v: io.EOF at offset %d of %d", rules, off, len(data))
				}
			case err == io.ErrUnexpectedEOF:
				if len(rest) == 0 || len(rest) >= 2 && len(rest) >= wsframe.HeaderLen(rest[0], rest[1]) {
					t.Fatalf("%v: io.ErrUnexpectedEOF at offset %d, with %d bytes left", rules, off, len(rest))
				}
			case errors.As(err, &pe):
				ph, _, perr := wsframe.ParseHeader(rest)
				if perr != nil || ph != h {
					t.Fatalf("%v: error %v came with header %+v, input has %+v (%v)", rules, err, h, ph, perr)
				}
				if rules.Lenient && !errors.Is(err, wsframe.ErrReservedOpcode) &&
					!errors.Is(err, wsframe.ErrControlTooLong) && !errors.Is(err, wsframe.ErrFragmentedControl) {
					t.Fatalf("%v: lenient mode rejected %+v: %v", rules, h, err)
				}
			default:
				t.Fatalf("%v: NextFrame at offset %d: unexpected error %v", rules, off, err)
			}
			return frames
		}
		raw := r.RawHeader()
		ph, n, perr := wsframe.ParseHeader(rest)
		if perr != nil || ph != h || n != len(raw) || !bytes.Equal(raw, rest[:n]) {
			t.Fatalf("%v: at offset %d the Reader returned %+v from % x; ParseHeader gives %+v, %d, %v",
				rules, off, h, raw, ph, n, perr)
		}
		if err := rules.Check(h, n); err != nil {
			t.Fatalf("%v: Reader accepted a header Check rejects: %v", rules, err)
		}
		if !rules.Lenient && (h.Masked != (rules.Sender == wsframe.Client) || n != h.EncodedLen() || h.Rsv&^rules.Extensions != 0) {
			t.Fatalf("%v: strict Reader accepted %+v in %d bytes", rules, h, n)
		}
		frames = append(frames, fzReadFrame{off, h, n})
		body := rest[n:]
		if h.Length > uint64(len(body)) {
			// A truncated frame: reading it must end in io.ErrUnexpectedEOF after
			// what is there, and never in io.EOF. (This also bounds memory: nothing
			// allocates the announced length.)
			got, err := io.Copy(io.Discard, r)
			if err != io.ErrUnexpectedEOF || got != int64(len(body)) {
				t.Fatalf("%v: truncated frame of %d bytes with %d left: read %d, %v", rules, h.Length, len(body), got, err)
			}
			if _, err := r.NextFrame(); err != io.ErrUnexpectedEOF {
				t.Fatalf("%v: NextFrame after a truncated frame: %v, want io.ErrUnexpectedEOF", rules, err)
			}
			return frames
		}
		wire := body[:h.Length]
		want := bytes.Clone(wire)
		if h.Masked {
			wsframe.Mask(h.Mask, 0, want)
		}
		var payload []byte
		if pieces {
			payload = fzReadPieces(t, r, h, len(rest)+readSize)
		} else {
			var err error
			if payload, err = io.ReadAll(r); err != nil {
				t.Fatalf("%v: reading a %d-byte payload that is all there: %v", rules, h.Length, err)
			}
		}
		if !bytes.Equal(payload, want) || r.Remaining() != 0 {
			t.Fatalf("%v: payload of %+v:\n got % x\nwant % x (remaining %d)", rules, h, payload, want, r.Remaining())
		}
		r.Ready() // must not panic whatever is buffered

		if !rules.Lenient {
			// Round trip: the header and unmasked payload, written back, are the
			// input bytes of the frame.
			var out bytes.Buffer
			w := wsframe.NewWriter(&out, wsframe.Server, 0)
			if err := w.WriteFrame(h, payload); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if frame := rest[:n+len(wire)]; !bytes.Equal(out.Bytes(), frame) {
				t.Fatalf("%v: frame at offset %d re-encodes differently:\n got % x\nwant % x", rules, off, out.Bytes(), frame)
			}
			if !bytes.Equal(payload, want) {
				t.Fatalf("WriteFrame modified the caller's payload")
			}
		}
		off += n + len(wire)
	}
}

// fzReadPieces reads the current frame's payload in pieces of 1 to 13 bytes,
// alternating Read and ReadRaw, and unmasks the raw pieces itself.
func fzReadPieces(t *testing.T, r *wsframe.Reader, h wsframe.Header, maxReads int) []byte {
	t.Helper()
	var out []byte
	for i := 0; ; i++ {
		p := make([]byte, 1+i%13)
		var n int
		var err error
		if i%2 == 0 {
			n, err = r.Read(p)
		} else {
			n, err = r.ReadRaw(p)
			if h.Masked {
				wsframe.Mask(h.Mask, len(out), p[:n])
			}
		}
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading a payload in pieces: %v", err)
		}
		if i > 2*maxReads+16 {
			t.Fatalf("reading a payload in pieces makes no progress")
		}
	}
}

// fzLimits are the small limits of FuzzAssembler.
var fzLimits = wsframe.Limits{MaxMessageSize: 1 << 16, MaxFragments: 16}

// fzConfig decodes FuzzAssembler's configuration byte: bit 0 picks the server as the
// sender, bit 1 lenient mode, bit 2 permessage-deflate, bit 3 context takeover, bit 4
// a frame size limit below the message size limit.
func fzConfig(cfg uint8) (wsframe.Rules, wsframe.AssemblerConfig, wsframe.Compression) {
	rules := wsframe.Rules{Sender: wsframe.Client, Lenient: cfg&2 != 0}
	if cfg&1 != 0 {
		rules.Sender = wsframe.Server
	}
	acfg := wsframe.AssemblerConfig{Limits: fzLimits, Lenient: rules.Lenient}
	if cfg&16 != 0 {
		acfg.MaxFrameSize = 1 << 15
	}
	comp := wsframe.Compression{ContextTakeover: cfg&8 != 0}
	if cfg&4 != 0 {
		rules.Extensions = wsframe.RSV1
		acfg.Inflater = wsframe.NewInflater(comp)
	}
	return rules, acfg, comp
}

// fzInflateRef inflates a message with the standard library's decompressor, the
// reference for the package's Inflater, given the uncompressed history of the
// previous messages (nil without context takeover).
func fzInflateRef(wire, hist []byte, limit int64) ([]byte, error) {
	in := append(bytes.Clone(wire), 0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff)
	if len(hist) > 1<<15 {
		hist = hist[len(hist)-1<<15:]
	}
	fr := flate.NewReaderDict(bytes.NewReader(in), hist)
	out, err := io.ReadAll(io.LimitReader(fr, limit+1))
	if err == nil && int64(len(out)) > limit {
		err = errors.New("over the limit")
	}
	return out, err
}

// FuzzAssembler reads arbitrary bytes as messages through a Reader and an Assembler
// with small limits, in the configurations fzConfig decodes, and checks every message
// it returns against the invariants of Message and the limits (and every compressed
// one against the standard library's inflater). Then it builds a message from the
// same input, writes it with Writer.WriteMessage (compressed when the configuration
// negotiates permessage-deflate) and reads it back: the same message, in the same
// frames, or the error strict mode owes it.
func FuzzAssembler(f *testing.F) {
	for i, s := range fzSeedStreams() {
		if len(s) <= 1<<12 {
			for _, cfg := range []uint8{0, 1, 2, 4, 4 | 8, 1 | 4 | 8, 2 | 4 | 8 | 16} {
				f.Add(s, cfg)
			}
		} else {
			f.Add(s, uint8(i))
		}
	}
	// Message specifications for the round trip: opcode choice, fragment count, then
	// the payload whose bytes also pick the fragment sizes.
	f.Add([]byte("\x00\x03Hello, world"), uint8(0))
	f.Add([]byte("\x01\x05\x00\x01\x02\x03\x04\x05\x06\x07"), uint8(1|4))
	f.Add([]byte("\x04\x00\x03\xe8bye"), uint8(4|8))
	f.Add([]byte("\x00\x02\xff\xfe"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, cfg uint8) {
		fzCheckAssembler(t, data, cfg)
		fzAssemblerRoundTrip(t, data, cfg)
	})
}

func fzCheckAssembler(t *testing.T, data []byte, cfg uint8) {
	rules, acfg, comp := fzConfig(cfg)
	r := wsframe.NewReader(bytes.NewReader(data), rules, 0)
	a := wsframe.NewAssembler(acfg)
	var hist []byte // uncompressed history for the reference inflater
	for {
		m, err := a.ReadMessage(r)
		if err != nil {
			var pe *wsframe.ProtocolError
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &pe) {
				t.Fatalf("cfg %#x: unexpected error %v", cfg, err)
			}
			return
		}
		fr := m.Frames
		if len(fr) == 0 || fr[0].Opcode != m.Opcode || m.Opcode == wsframe.OpContinuation || m.Opcode.IsReserved() {
			t.Fatalf("cfg %#x: message %s with frames %+v", cfg, m.Opcode, fr)
		}
		var sum uint64
		for i, h := range fr {
			sum += h.Length
			if i > 0 && h.Opcode != wsframe.OpContinuation || h.Fin != (i == len(fr)-1) {
				t.Fatalf("cfg %#x: frame %d of %d is %+v", cfg, i, len(fr), h)
			}
			if !rules.Lenient && h.Masked != (rules.Sender == wsframe.Client) {
				t.Fatalf("cfg %#x: strict Assembler returned a frame %+v", cfg, h)
			}
			if h.Length > uint64(fzLimits.MaxMessageSize) || cfg&16 != 0 && h.Length > 1<<15 {
				t.Fatalf("cfg %#x: frame of %d bytes passed the limits", cfg, h.Length)
			}
		}
		if sum != uint64(len(m.Wire)) {
			t.Fatalf("cfg %#x: frames hold %d bytes, Wire %d", cfg, sum, len(m.Wire))
		}
		// Control frames are never compressed (RFC 7692 §6.1), even when a lenient
		// Assembler lets one through with RSV1 set.
		if m.Compressed != (fr[0].Compressed() && !m.Opcode.IsControl()) {
			t.Fatalf("cfg %#x: Compressed is %v, first frame %+v", cfg, m.Compressed, fr[0])
		}
		if int64(len(m.Wire)) > fzLimits.MaxMessageSize || int64(len(m.Payload)) > fzLimits.MaxMessageSize {
			t.Fatalf("cfg %#x: message of %d bytes (%d on the wire) passed the limit", cfg, len(m.Payload), len(m.Wire))
		}
		if m.Opcode.IsControl() {
			if len(fr) != 1 || len(m.Payload) > wsframe.MaxControlPayload {
				t.Fatalf("cfg %#x: control message of %d bytes in %d frames", cfg, len(m.Payload), len(fr))
			}
			if _, _, err := wsframe.ParseClose(m.Payload); m.Opcode == wsframe.OpClose && !rules.Lenient && err != nil {
				t.Fatalf("cfg %#x: strict Assembler returned a bad close payload % x: %v", cfg, m.Payload, err)
			}
		} else if len(fr) > fzLimits.MaxFragments {
			t.Fatalf("cfg %#x: message in %d frames", cfg, len(fr))
		}
		if m.Compressed && acfg.Inflater != nil {
			ref, err := fzInflateRef(m.Wire, hist, fzLimits.MaxMessageSize)
			if err != nil || !bytes.Equal(ref, m.Payload) {
				t.Fatalf("cfg %#x: inflated % x from % x; compress/flate gives % x, %v", cfg, m.Payload, m.Wire, ref, err)
			}
			if comp.ContextTakeover {
				hist = append(hist, m.Payload...)
			}
		} else if !bytes.Equal(m.Payload, m.Wire) {
			t.Fatalf("cfg %#x: uncompressed message with Payload != Wire", cfg)
		}
		if m.Opcode == wsframe.OpText && !rules.Lenient && !utf8.Valid(m.Payload) {
			t.Fatalf("cfg %#x: strict Assembler returned invalid UTF-8 text % x", cfg, m.Payload)
		}
	}
}

// fzMessageSpec builds a message from fuzz input: data[0] picks the opcode, data[1]
// the number of fragments of a data message, and the rest is the payload, whose
// bytes also pick the fragment sizes (zero-length fragments included).
func fzMessageSpec(data []byte) (op wsframe.Opcode, payload []byte, nfrag int, ok bool) {
	if len(data) < 2 {
		return 0, nil, 0, false
	}
	ops := []wsframe.Opcode{wsframe.OpText, wsframe.OpBinary, wsframe.OpPing, wsframe.OpPong, wsframe.OpClose}
	op = ops[int(data[0])%len(ops)]
	payload = data[2:]
	nfrag = 1 + int(data[1])%8
	if op.IsControl() {
		payload, nfrag = payload[:min(len(payload), wsframe.MaxControlPayload)], 1
	}
	return op, payload[:min(len(payload), 1<<14)], nfrag, true
}

// fzSizes splits n bytes into nfrag fragment sizes picked by pick's bytes.
func fzSizes(n, nfrag int, pick []byte) []int {
	sizes := make([]int, nfrag)
	rest := n
	for i := 0; i < nfrag-1; i++ {
		c := 0
		if len(pick) > 0 {
			c = int(pick[i%len(pick)])*(i+3) + i
		}
		sizes[i] = c % (rest + 1)
		rest -= sizes[i]
	}
	sizes[nfrag-1] = rest
	return sizes
}

func fzAssemblerRoundTrip(t *testing.T, data []byte, cfg uint8) {
	op, payload, nfrag, ok := fzMessageSpec(data)
	if !ok {
		return
	}
	rules, acfg, comp := fzConfig(cfg)
	compress := acfg.Inflater != nil && op.IsData()

	// The message twice in a row, so that the second one can refer back into the
	// first under context takeover.
	var stream bytes.Buffer
	w := wsframe.NewWriter(&stream, rules.Sender, 0)
	var d *wsframe.Deflater
	if compress {
		var err error
		if d, err = wsframe.NewDeflater(comp); err != nil {
			t.Fatal(err)
		}
	}
	var sizes [2][]int
	for i := range sizes {
		wire, rsv := payload, uint8(0)
		if compress {
			var err error
			if wire, err = d.Deflate(nil, payload); err != nil {
				t.Fatal(err)
			}
			rsv = wsframe.RSV1
		}
		sizes[i] = fzSizes(len(wire), nfrag, data)
		if err := w.WriteMessage(op, rsv, wire, sizes[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	var wantErr error
	if !rules.Lenient {
		switch {
		case op == wsframe.OpText && !utf8.Valid(payload):
			wantErr = wsframe.ErrInvalidUTF8
		case op == wsframe.OpClose:
			_, _, wantErr = wsframe.ParseClose(payload)
		}
	}
	r := wsframe.NewReader(bytes.NewReader(stream.Bytes()), rules, 0)
	a := wsframe.NewAssembler(acfg)
	for i := range sizes {
		m, err := a.ReadMessage(r)
		if wantErr != nil {
			if !errors.Is(err, wantErr) && !errors.Is(err, errors.Unwrap(wantErr)) {
				t.Fatalf("cfg %#x: %s message % x read back with error %v, want %v", cfg, op, payload, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("cfg %#x: reading back message %d (%s, % x, sizes %v): %v", cfg, i, op, payload, sizes[i], err)
		}
		if m.Opcode != op || !bytes.Equal(m.Payload, payload) || m.Compressed != compress {
			t.Fatalf("cfg %#x: wrote %s % x, read back %s % x (compressed %v)", cfg, op, payload, m.Opcode, m.Payload, m.Compressed)
		}
		got := make([]int, len(m.Frames))
		for j, h := range m.Frames {
			got[j] = int(h.Length)
			if h.Masked != (rules.Sender == wsframe.Client) {
				t.Fatalf("cfg %#x: frame %+v from a %v", cfg, h, rules.Sender)
			}
		}
		if !reflect.DeepEqual(got, sizes[i]) {
			t.Fatalf("cfg %#x: WriteMessage(%s, sizes %v) wrote frames of %v bytes", cfg, op, sizes[i], got)
		}
	}
	if _, err := a.ReadMessage(r); err != io.EOF {
		t.Fatalf("cfg %#x: after the messages: %v, want io.EOF", cfg, err)
	}
}

// FuzzInflate inflates arbitrary bytes, with and without context takeover, and checks
// the limit, the error kinds, dst handling and the output against compress/flate.
// Then it deflates the input, split into messages, with window bits 8..15 and
// takeover on or off, and inflates it back; every back-reference must stay within
// the negotiated window, which a zlib receiver with that window enforces.
func FuzzInflate(f *testing.F) {
	json := `{"type":"chat","room":"lobby","text":"hello hello hello, world"}`
	for _, c := range []wsframe.Compression{{}, {ContextTakeover: true}, {WindowBits: 8}} {
		for _, m := range fzDeflate(c, json, json, "", strings.Repeat("abcd", 300)) {
			f.Add(m, uint8(7), c.ContextTakeover)
		}
	}
	f.Add([]byte{0x00, 0x00, 0xff, 0xff}, uint8(0), false) // an empty stored block
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff}, uint8(0), false)
	f.Add([]byte{0x03, 0x00}, uint8(0), true)             // final empty fixed block
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9}, uint8(3), true) // truncated
	f.Add([]byte(json), uint8(2), true)
	f.Add([]byte(strings.Repeat("a", 5000)+json), uint8(0), true)
	f.Fuzz(func(t *testing.T, data []byte, window uint8, takeover bool) {
		fzCheckInflate(t, data)
		fzDeflateRoundTrip(t, data, 8+int(window%8), takeover, int(window/8))
	})
}

const fzInflateLimit = 1 << 20

func fzCheckInflate(t *testing.T, data []byte) {
	for _, takeover := range []bool{false, true} {
		inf := wsframe.NewInflater(wsframe.Compression{ContextTakeover: takeover})
		var hist []byte
		// The same bytes twice, as two messages: with takeover the second is
		// inflated with the first one's output as its window.
		for i := 0; i < 2; i++ {
			prefix := []byte("dst")
			out, err := inf.Inflate(prefix, data, fzInflateLimit)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("Inflate lost dst: % x", out[:min(len(out), 8)])
			}
			out = out[len(prefix):]
			if len(out) > fzInflateLimit {
				t.Fatalf("Inflate returned %d bytes, limit %d", len(out), fzInflateLimit)
			}
			if err != nil {
				if len(out) != 0 {
					t.Fatalf("Inflate returned %d bytes with error %v", len(out), err)
				}
				if !errors.Is(err, wsframe.ErrBadDeflate) && !errors.Is(err, wsframe.ErrInflateTooBig) {
					t.Fatalf("Inflate error %v wraps neither ErrBadDeflate nor ErrInflateTooBig", err)
				}
				break // the Inflater's window is unreliable after an error
			}
			ref, rerr := fzInflateRef(data, hist, fzInflateLimit)
			if rerr != nil || !bytes.Equal(out, ref) {
				t.Fatalf("takeover %v, message %d: Inflate gives %d bytes, compress/flate %d bytes, %v", takeover, i, len(out), len(ref), rerr)
			}
			if i == 0 && len(out) > 0 {
				// One byte less room must be an error wrapping ErrInflateTooBig.
				small := wsframe.NewInflater(wsframe.Compression{ContextTakeover: takeover})
				if _, err := small.Inflate(nil, data, int64(len(out)-1)); !errors.Is(err, wsframe.ErrInflateTooBig) {
					t.Fatalf("%d bytes inflated under a limit of %d: %v", len(out), len(out)-1, err)
				}
			}
			if takeover {
				hist = append(hist, out...)
			}
		}
	}
}

// fzDeflateRoundTrip splits data into messages (and an empty one), deflates them in
// order with window bits wbits, and inflates them back in order.
func fzDeflateRoundTrip(t *testing.T, data []byte, wbits int, takeover bool, split int) {
	c := wsframe.Compression{ContextTakeover: takeover, WindowBits: wbits}
	d, err := wsframe.NewDeflater(c)
	if err != nil {
		t.Fatalf("NewDeflater(%+v): %v", c, err)
	}
	inf := wsframe.NewInflater(c)
	cut1, cut2 := len(data)*(split%8)/8, len(data)*(1+split%8)/9
	cut1, cut2 = min(cut1, cut2), max(cut1, cut2)
	msgs := [][]byte{data[:cut1], data[cut1:cut2], nil, data[cut2:], data}
	var comp, out []byte
	for i, m := range msgs {
		if comp, err = d.Deflate(comp[:0], m); err != nil {
			t.Fatalf("%+v: Deflate message %d: %v", c, i, err)
		}
		if dist, err := fzMaxDistance(comp, len(m)); err != nil || dist > 1<<wbits {
			t.Fatalf("%+v: message %d of %d bytes: back-reference of %d bytes (window %d), %v",
				c, i, len(m), dist, 1<<wbits, err)
		}
		if out, err = inf.Inflate(out[:0], comp, int64(len(m))); err != nil || !bytes.Equal(out, m) {
			t.Fatalf("%+v: message %d of %d bytes inflates to %d bytes, %v", c, i, len(m), len(out), err)
		}
	}
}

// fzBitReader reads a DEFLATE stream least significant bit first (RFC 1951 §3.1.1).
type fzBitReader struct {
	b   []byte
	bit int
}

var errFzShort = errors.New("deflate stream ends early")

func (r *fzBitReader) read(n int) (int, error) {
	v := 0
	for i := 0; i < n; i++ {
		if r.bit>>3 >= len(r.b) {
			return 0, errFzShort
		}
		v |= int(r.b[r.bit>>3]>>(r.bit&7)&1) << i
		r.bit++
	}
	return v, nil
}

// fzHuffman is a canonical Huffman code (RFC 1951 §3.2.2): how many codes have each
// length, and the symbols in code order.
type fzHuffman struct {
	count [16]int
	syms  []int
}

func fzNewHuffman(lengths []int) *fzHuffman {
	h := &fzHuffman{}
	for _, l := range lengths {
		h.count[l]++
	}
	for l := 1; l < 16; l++ {
		for s, sl := range lengths {
			if sl == l {
				h.syms = append(h.syms, s)
			}
		}
	}
	return h
}

// decode reads one symbol. Codes of one length are consecutive integers starting
// right after the (shifted) codes of the shorter lengths, so the code read so far is
// compared with the first code of each length in turn.
func (r *fzBitReader) decode(h *fzHuffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := r.read(1)
		if err != nil {
			return 0, err
		}
		code |= b
		if n := h.count[l]; code-first < n {
			return h.syms[index+code-first], nil
		}
		index += h.count[l]
		first = (first + h.count[l]) << 1
		code <<= 1
	}
	return 0, errors.New("bad Huffman code")
}

var (
	fzLengthBase  = [...]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	fzLengthExtra = [...]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	fzDistBase    = [...]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	fzDistExtra   = [...]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	fzCodeOrder   = [...]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// fzMaxDistance parses the compressed message comp (without its 00 00 ff ff tail, as
// a Deflater returns it) and returns the longest back-reference distance in it. It
// checks that the blocks decode to size bytes, which shows the parse went right.
func fzMaxDistance(comp []byte, size int) (int, error) {
	r := &fzBitReader{b: append(bytes.Clone(comp), 0x00, 0x00, 0xff, 0xff)}
	maxDist, n := 0, 0
	for (r.bit+7)>>3 < len(r.b) {
		hdr, err := r.read(3)
		if err != nil {
			return 0, err
		}
		var lit, dist *fzHuffman
		switch hdr >> 1 {
		case 0: // stored
			r.bit = (r.bit + 7) &^ 7
			l, err := r.read(16)
			if err != nil {
				return 0, err
			}
			if nl, err := r.read(16); err != nil || nl != l^0xffff {
				return 0, fmt.Errorf("stored block length %d/%d, %v", l, nl, err)
			}
			if r.bit += 8 * l; r.bit > 8*len(r.b) {
				return 0, errFzShort
			}
			n += l
		case 1: // fixed Huffman codes
			lengths := make([]int, 288)
			for i := range lengths {
				switch {
				case i < 144, i >= 280:
					lengths[i] = 8
				case i < 256:
					lengths[i] = 9
				default:
					lengths[i] = 7
				}
			}
			lit = fzNewHuffman(lengths)
			fives := make([]int, 32) // 32 distance codes of 5 bits
			for i := range fives {
				fives[i] = 5
			}
			dist = fzNewHuffman(fives)
		case 2: // dynamic Huffman codes
			if lit, dist, err = r.dynamicCodes(); err != nil {
				return 0, err
			}
		default:
			return 0, errors.New("reserved block type")
		}
		for lit != nil {
			sym, err := r.decode(lit)
			if err != nil {
				return 0, err
			}
			switch {
			case sym < 256:
				n++
				continue
			case sym == 256:
				lit = nil
				continue
			case sym > 285:
				return 0, fmt.Errorf("length symbol %d", sym)
			}
			extra, err := r.read(fzLengthExtra[sym-257])
			if err != nil {
				return 0, err
			}
			n += fzLengthBase[sym-257] + extra
			ds, err := r.decode(dist)
			if err != nil || ds > 29 {
				return 0, fmt.Errorf("distance symbol %d, %v", ds, err)
			}
			dextra, err := r.read(fzDistExtra[ds])
			if err != nil {
				return 0, err
			}
			maxDist = max(maxDist, fzDistBase[ds]+dextra)
		}
		if hdr&1 != 0 {
			break // final block
		}
	}
	if n != size {
		return maxDist, fmt.Errorf("blocks decode to %d bytes, want %d", n, size)
	}
	return maxDist, nil
}

// dynamicCodes reads the code length code and the literal/length and distance code
// lengths of a dynamic block (RFC 1951 §3.2.7).
func (r *fzBitReader) dynamicCodes() (lit, dist *fzHuffman, err error) {
	hlit, err1 := r.read(5)
	hdist, err2 := r.read(5)
	hclen, err3 := r.read(4)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, nil, err
	}
	var clen [19]int
	for i := 0; i < hclen+4; i++ {
		if clen[fzCodeOrder[i]], err = r.read(3); err != nil {
			return nil, nil, err
		}
	}
	cl := fzNewHuffman(clen[:])
	lengths := make([]int, 0, hlit+257+hdist+1)
	for len(lengths) < hlit+257+hdist+1 {
		sym, err := r.decode(cl)
		if err != nil {
			return nil, nil, err
		}
		rep, val := 1, sym
		switch sym {
		case 16:
			if len(lengths) == 0 {
				return nil, nil, errors.New("repeat with no previous length")
			}
			val = lengths[len(lengths)-1]
			rep, err = r.read(2)
			rep += 3
		case 17:
			val = 0
			rep, err = r.read(3)
			rep += 3
		case 18:
			val = 0
			rep, err = r.read(7)
			rep += 11
		}
		if err != nil {
			return nil, nil, err
		}
		for ; rep > 0; rep-- {
			lengths = append(lengths, val)
		}
	}
	if len(lengths) != hlit+257+hdist+1 {
		return nil, nil, errors.New("code lengths overrun")
	}
	return fzNewHuffman(lengths[:hlit+257]), fzNewHuffman(lengths[hlit+257:]), nil
}

// fzFormatExtensions formats extensions as one Sec-WebSocket-Extensions value:
// values that are tokens as they are, others as quoted strings.
func fzFormatExtensions(exts []wsframe.Extension) string {
	var b strings.Builder
	for i, e := range exts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.Name)
		for _, p := range e.Params {
			b.WriteString("; " + p.Name)
			if !p.HasValue {
				continue
			}
			b.WriteByte('=')
			if fzIsToken(p.Value) {
				b.WriteString(p.Value)
				continue
			}
			b.WriteByte('"')
			for j := 0; j < len(p.Value); j++ {
				if c := p.Value[j]; c == '"' || c == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(p.Value[j])
			}
			b.WriteByte('"')
		}
	}
	return b.String()
}

// fzIsToken reports whether s is an RFC 7230 token.
func fzIsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// FuzzParseExtensions parses arbitrary header values (one per line of the input):
// no panic; whatever parses re-parses the same after formatting; errors wrap
// ErrExtensions. The two halves of the lines, as an offer and a response, go through
// NegotiateDeflate, and accepted parameters negotiate the same again when the server
// answers with their String form.
func FuzzParseExtensions(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits\npermessage-deflate; server_no_context_takeover; client_max_window_bits=10",
		"permessage-deflate; client_max_window_bits; server_max_window_bits=12, permessage-deflate\nx-webkit-deflate-frame",
		`foo; bar="baz \"quoted\""; empty=""; bare, , ,qux;a=1`,
		"permessage-deflate;server_max_window_bits=08\npermessage-deflate;server_max_window_bits=8",
		"permessage-deflate; client_no_context_takeover; client_no_context_takeover\npermessage-deflate",
		"mux; max-channels=4; flow-control, deflate-stream\n\tpermessage-deflate ;\tclient_max_window_bits = 15 ",
		`a; b="unterminated`,
		"; a",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		values := strings.Split(s, "\n")
		exts, err := wsframe.ParseExtensions(values)
		if err != nil {
			if !errors.Is(err, wsframe.ErrExtensions) {
				t.Fatalf("ParseExtensions(%q): error %v does not wrap ErrExtensions", values, err)
			}
		} else {
			formatted := fzFormatExtensions(exts)
			again, err := wsframe.ParseExtensions([]string{formatted})
			if err != nil || !reflect.DeepEqual(again, exts) {
				t.Fatalf("ParseExtensions(%q) = %+v\nformatted %q\nre-parses as %+v, %v", values, exts, formatted, again, err)
			}
		}

		offer, response := values[:len(values)/2], values[len(values)/2:]
		params, ok, err := wsframe.NegotiateDeflate(offer, response)
		if err != nil && !errors.Is(err, wsframe.ErrExtensions) {
			t.Fatalf("NegotiateDeflate: error %v does not wrap ErrExtensions", err)
		}
		if !ok {
			if params != (wsframe.DeflateParams{}) {
				t.Fatalf("NegotiateDeflate returned %+v with ok false", params)
			}
			return
		}
		for _, bits := range []int{params.ServerMaxWindowBits, params.ClientMaxWindowBits} {
			if bits != 0 && (bits < 8 || bits > 15) {
				t.Fatalf("NegotiateDeflate accepted window bits %d", bits)
			}
		}
		// RFC 7692 §7.1.2: a window size is a decimal integer without leading zeroes,
		// so an accepted value is exactly the number's decimal form.
		resp, _ := wsframe.ParseExtensions(response)
		for _, e := range resp {
			for _, p := range e.Params {
				bits := map[string]int{"server_max_window_bits": params.ServerMaxWindowBits, "client_max_window_bits": params.ClientMaxWindowBits}
				if n, isBits := bits[p.Name]; e.Name == wsframe.DeflateName && isBits && p.Value != strconv.Itoa(n) {
					t.Fatalf("NegotiateDeflate accepted %s=%q as %d", p.Name, p.Value, n)
				}
			}
		}
		again, ok, err := wsframe.NegotiateDeflate(offer, []string{params.String()})
		if err != nil || !ok || again != params {
			t.Fatalf("NegotiateDeflate(%q, %q) = %+v; its String %q negotiates %+v, %v, %v", offer, response, params, params.String(), again, ok, err)
		}
	})
}

// FuzzParseClose parses arbitrary close payloads: no panic; the code and reason are
// the payload's; the error says what is wrong; an accepted payload that fits a
// control frame is exactly what AppendClose makes of its code and reason. AppendClose
// of an arbitrary code and reason fits a control frame, and a valid pair parses back
// (with the reason cut at a rune boundary when too long).
func FuzzParseClose(f *testing.F) {
	f.Add([]byte{}, uint16(1000))
	f.Add([]byte{0x03}, uint16(1005))
	f.Add([]byte("\x03\xe8"), uint16(1006))
	f.Add([]byte("\x03\xe9going away"), uint16(3000))
	f.Add([]byte("\x03\xeebad"), uint16(999))
	f.Add([]byte("\x0f\xa0\xff\xfe"), uint16(4999))
	f.Add(append([]byte("\x03\xf0"), strings.Repeat("é", 70)...), uint16(1011))
	f.Fuzz(func(t *testing.T, payload []byte, code16 uint16) {
		code, reason, err := wsframe.ParseClose(payload)
		switch len(payload) {
		case 0:
			if code != wsframe.CloseNoStatus || reason != "" || err != nil {
				t.Fatalf("empty payload: %d %q %v", code, reason, err)
			}
		case 1:
			if !errors.Is(err, wsframe.ErrClosePayload) {
				t.Fatalf("one-byte payload: %v", err)
			}
		default:
			if code != wsframe.CloseCode(binary.BigEndian.Uint16(payload)) || reason != string(payload[2:]) {
				t.Fatalf("ParseClose(% x) = %d %q", payload, code, reason)
			}
			var want error
			switch {
			case !code.ValidOnWire():
				want = wsframe.ErrCloseCode
			case !utf8.ValidString(reason):
				want = wsframe.ErrInvalidCloseUTF8
			}
			if !errors.Is(err, want) || (want == nil) != (err == nil) {
				t.Fatalf("ParseClose(% x): error %v, want %v", payload, err, want)
			}
		}
		if c := wsframe.CloseCodeOf(err); err != nil && c != wsframe.CloseProtocolError && c != wsframe.CloseInvalidPayload {
			t.Fatalf("close code %d for %v", c, err)
		}
		if err == nil && len(payload) <= wsframe.MaxControlPayload {
			if got := wsframe.AppendClose(nil, code, reason); !bytes.Equal(got, payload) {
				t.Fatalf("AppendClose(%d, %q) = % x, want % x", code, reason, got, payload)
			}
		}

		c, s := wsframe.CloseCode(code16), string(payload)
		out := wsframe.AppendClose([]byte("dst"), c, s)
		if !bytes.HasPrefix(out, []byte("dst")) || len(out)-3 > wsframe.MaxControlPayload {
			t.Fatalf("AppendClose(%d, %d bytes) = %d bytes", c, len(s), len(out)-3)
		}
		if c.ValidOnWire() && utf8.ValidString(s) {
			pc, pr, err := wsframe.ParseClose(out[3:])
			if err != nil || pc != c || !strings.HasPrefix(s, pr) || len(pr) < min(len(s), wsframe.MaxControlPayload-2-(utf8.UTFMax-1)) {
				t.Fatalf("AppendClose(%d, %q) parses back as %d %q, %v", c, s, pc, pr, err)
			}
		}
	})
}
