package wsframe_test

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	kflate "github.com/klauspost/compress/flate"

	"github.com/wstap/wstap/wsframe"
)

// streamInflate inflates the compressed message wire with InflateChunk, cutting it
// into pieces of the sizes piece returns and taking the plaintext out through a dst
// of dstSize bytes. It checks the contract of every call on the way.
func streamInflate(t testing.TB, f *wsframe.Inflater, wire []byte, limit int64, piece func() int, dstSize int) ([]byte, error) {
	t.Helper()
	f.Begin(limit)
	dst := make([]byte, dstSize)
	var out []byte
	for pos := 0; ; {
		n := min(max(piece(), 0), len(wire)-pos)
		src := wire[pos : pos+n]
		final := pos+n == len(wire)
		for {
			nDst, nSrc, err := f.InflateChunk(dst, src, final)
			if nDst < 0 || nDst > len(dst) || nSrc < 0 || nSrc > len(src) {
				t.Fatalf("InflateChunk(%d, %d, %v) = %d, %d", len(dst), len(src), final, nDst, nSrc)
			}
			out = append(out, dst[:nDst]...)
			src, pos = src[nSrc:], pos+nSrc
			if int64(len(out)) > limit {
				t.Fatalf("%d bytes given out, limit %d", len(out), limit)
			}
			if err == io.EOF {
				if pos != len(wire) {
					t.Fatalf("io.EOF with %d bytes of the message left", len(wire)-pos)
				}
				return out, nil
			}
			if err != nil {
				return out, err
			}
			if nDst < len(dst) {
				if len(src) != 0 || final {
					t.Fatalf("InflateChunk stopped short of a full dst with %d bytes of src left (final %v)", len(src), final)
				}
				break
			}
		}
	}
}

// pieces returns a named way to cut a message into pieces.
type pieces struct {
	name string
	next func(rng *rand.Rand) int
}

var chunkings = []pieces{
	{"whole", func(*rand.Rand) int { return 1 << 30 }},
	{"bytes", func(*rand.Rand) int { return 1 }},
	{"random", func(rng *rand.Rand) int { return rng.IntN(3000) }},
	{"empty-and-small", func(rng *rand.Rand) int { return rng.IntN(3) }},
}

// chunkingsAndDst pairs the ways of cutting a message with dst sizes, from a byte
// up to more than the Inflater stages.
var chunkingsAndDst = []struct {
	pieces
	dst int
}{
	{chunkings[0], 100 << 10},
	{chunkings[0], 1},
	{chunkings[1], 4096},
	{chunkings[2], 13},
	{chunkings[2], 4096},
	{chunkings[3], 7},
}

// streamCorpus returns messages that make the encoders use every kind of block:
// short and long, repetitive and not, compressible and not, and empty.
func streamCorpus() [][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, 70<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	msgs := history(30)
	msgs = append(msgs,
		nil,
		[]byte("a"),
		bytes.Repeat([]byte("0123456789abcdef"), 5000),
		random,
		make([]byte, 200<<10),
		bigPayload(150<<10),
		append(bytes.Clone(random[:5000]), bytes.Repeat([]byte{'x'}, 70000)...),
		bytes.Repeat(random[:32768], 4), // matches as far back as the window goes
	)
	return append(msgs, history(10)...)
}

// encoders compress a sequence of messages for one direction as different senders
// would, returning the payloads of the messages (without their 00 00 ff ff tail).
var encoders = []struct {
	name string
	enc  func(t testing.TB, c wsframe.Compression, msgs [][]byte) [][]byte
}{
	{"wsframe", func(t testing.TB, c wsframe.Compression, msgs [][]byte) [][]byte { return benchCompressed(t, c, msgs) }},
	{"stdlib-stored", stdlibEncoder(flate.NoCompression)},
	{"stdlib-huffman-only", stdlibEncoder(flate.HuffmanOnly)},
	{"stdlib-best-speed", stdlibEncoder(flate.BestSpeed)},
	{"klauspost-level1", klauspostEncoder(1)},
}

// stdlibEncoder compresses with compress/flate at level, flushing after each message
// and starting afresh without context takeover.
func stdlibEncoder(level int) func(testing.TB, wsframe.Compression, [][]byte) [][]byte {
	return func(t testing.TB, c wsframe.Compression, msgs [][]byte) [][]byte {
		var b bytes.Buffer
		w, err := flate.NewWriter(&b, level)
		if err != nil {
			t.Fatal(err)
		}
		return flushEach(t, &b, w, c, msgs)
	}
}

func klauspostEncoder(level int) func(testing.TB, wsframe.Compression, [][]byte) [][]byte {
	return func(t testing.TB, c wsframe.Compression, msgs [][]byte) [][]byte {
		var b bytes.Buffer
		w, err := kflate.NewWriter(&b, level)
		if err != nil {
			t.Fatal(err)
		}
		return flushEach(t, &b, w, c, msgs)
	}
}

type flushWriter interface {
	io.Writer
	Flush() error
	Reset(io.Writer)
}

func flushEach(t testing.TB, b *bytes.Buffer, w flushWriter, c wsframe.Compression, msgs [][]byte) [][]byte {
	var out [][]byte
	for _, m := range msgs {
		if !c.ContextTakeover {
			w.Reset(b)
		}
		if _, err := w.Write(m); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		p, ok := bytes.CutSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
		if !ok {
			t.Fatal("flush did not end with 00 00 ff ff")
		}
		out = append(out, bytes.Clone(p))
		b.Reset()
	}
	return out
}

// TestInflateChunkMatchesInflate inflates the same messages whole and in pieces, with
// and without context takeover, from several encoders, cut in many ways and taken
// out through dst buffers from 1 byte up: the plaintext and the window left after
// each message must be the same. A third Inflater switches between the two ways from
// one message to the next.
func TestInflateChunkMatchesInflate(t *testing.T) {
	msgs := streamCorpus()
	for _, takeover := range []bool{false, true} {
		c := wsframe.Compression{ContextTakeover: takeover}
		for _, enc := range encoders {
			wires := enc.enc(t, c, msgs)
			for _, cd := range chunkingsAndDst {
				name := fmt.Sprintf("takeover=%v/%s/%s/dst=%d", takeover, enc.name, cd.name, cd.dst)
				t.Run(name, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(cd.dst), 1))
					piece := func() int { return cd.next(rng) }
					whole, stream, mixed := wsframe.NewInflater(c), wsframe.NewInflater(c), wsframe.NewInflater(c)
					for i, wire := range wires {
						want, err := whole.Inflate(nil, wire, 1<<30)
						if err != nil || !bytes.Equal(want, msgs[i]) {
							t.Fatalf("message %d: Inflate: %v", i, err)
						}
						got, err := streamInflate(t, stream, wire, 1<<30, piece, cd.dst)
						if err != nil || !bytes.Equal(got, want) {
							t.Fatalf("message %d: InflateChunk gives %d bytes, Inflate %d (%v)", i, len(got), len(want), err)
						}
						if w, s := wsframe.InflaterWindow(whole), wsframe.InflaterWindow(stream); !bytes.Equal(w, s) {
							t.Fatalf("message %d: window of %d bytes after InflateChunk, %d after Inflate", i, len(s), len(w))
						}
						if i%2 == 0 {
							got, err = mixed.Inflate(got[:0], wire, 1<<30)
						} else {
							got, err = streamInflate(t, mixed, wire, 1<<30, piece, cd.dst)
						}
						if err != nil || !bytes.Equal(got, want) {
							t.Fatalf("message %d: switching between Inflate and InflateChunk: %v", i, err)
						}
					}
				})
			}
		}
	}
}

// TestInflateChunkErrors checks corrupt and truncated messages and the limit: each
// fails as Inflate fails on it, with the same error kind and close code, and
// InflateChunk never gives out more than the limit.
func TestInflateChunkErrors(t *testing.T) {
	d, _ := wsframe.NewDeflater(wsframe.Compression{})
	mib, _ := d.Deflate(nil, make([]byte, 1<<20))
	text, _ := d.Deflate(nil, bytes.Repeat([]byte("hello, world "), 1000))
	tests := []struct {
		name  string
		wire  []byte
		limit int64
		want  error
	}{
		{"at the limit", mib, 1 << 20, nil},
		{"one byte over the limit", mib, 1<<20 - 1, wsframe.ErrInflateTooBig},
		{"far over the limit", mib, 1000, wsframe.ErrInflateTooBig},
		{"limit 0", text, 0, wsframe.ErrInflateTooBig},
		{"empty payload", nil, 100, wsframe.ErrBadDeflate},
		{"reserved block type", []byte{0x07, 0x00}, 100, wsframe.ErrBadDeflate},
		{"stored length mismatch", []byte{0x01, 0x05, 0x00, 0xfa, 0xfe, 'h', 'e', 'l', 'l', 'o'}, 100, wsframe.ErrBadDeflate},
		{"truncated", text[:len(text)/2], 1 << 20, wsframe.ErrBadDeflate},
		{"distance too far back", deflateBits("1 10 | 0000001 00000 | 0000000"), 100, wsframe.ErrBadDeflate},
		{"distance 1 after a literal", deflateBits("1 10 | 10010001 | 0000001 00000 | 0000000"), 100, nil},
		{"distance 5 after 4 literals", deflateBits("1 10 | 10010001 10010001 10010001 10010001 | 0000001 00100 0 | " +
			strings.Repeat("10010001 ", 12) + "| 0000000"), 100, wsframe.ErrBadDeflate},
		{"distance 4 after 4 literals", deflateBits("1 10 | 10010001 10010001 10010001 10010001 | 0000001 00011 | " +
			strings.Repeat("10010001 ", 12) + "| 0000000"), 100, nil},
		{"fixed code 286", deflateBits("1 10 | 11000110 | 0000000"), 100, wsframe.ErrBadDeflate},
		{"fixed distance code 30", deflateBits("1 10 | 10010001 | 0000001 11110 | 0000000"), 100, wsframe.ErrBadDeflate},
		{"dynamic block with too many length codes", deflateBits("1 01 | 11111 00000 0000"), 100, wsframe.ErrBadDeflate},
		// "aaa" with a literal/length code of two 1-bit codes ('a' and end of block),
		// its lengths coded with 2-bit codes for 0, 1, 17 and 18 (HCLEN 14: up to
		// the length of 1's code), 18 repeating zeros with 7 extra bits.
		{"dynamic block", deflateBits("1 01 | 00000 00000 0111 | 000 010 010 010" + strings.Repeat(" 000", 13) + " 010 | " +
			"11 0110101 | 01 | 11 1111111 | 11 1001000 | 01 | 00 | 0 0 0 1"), 100, nil},
		// The same without a code for 17: an incomplete code length code.
		{"incomplete code length code", deflateBits("1 01 | 00000 00000 0111 | 000 000 010 010" + strings.Repeat(" 000", 13) + " 010 | " +
			"10 0110101 | 01 | 10 1111111 | 10 1001000 | 01 | 00 | 0 0 0 1"), 100, wsframe.ErrBadDeflate},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 100), 1 << 20, wsframe.ErrBadDeflate},
		{"final fixed block, then garbage", append([]byte{0x03, 0x00}, bytes.Repeat([]byte{0xff}, 10)...), 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, werr := wsframe.NewInflater(wsframe.Compression{}).Inflate(nil, tt.wire, tt.limit)
			for _, chunking := range chunkings {
				rng := rand.New(rand.NewPCG(3, 3))
				f := wsframe.NewInflater(wsframe.Compression{})
				got, err := streamInflate(t, f, tt.wire, tt.limit, func() int { return chunking.next(rng) }, 1000)
				if !errors.Is(err, tt.want) || !errors.Is(werr, tt.want) || (err == nil) != (werr == nil) {
					t.Fatalf("%s: InflateChunk: %v; Inflate: %v; want %v", chunking.name, err, werr, tt.want)
				}
				if err == nil && !bytes.Equal(got, want) {
					t.Fatalf("%s: InflateChunk gives %q, Inflate %q", chunking.name, got, want)
				}
				if err != nil && wsframe.CloseCodeOf(err) != wsframe.CloseCodeOf(werr) {
					t.Fatalf("close code %d, Inflate's %d", wsframe.CloseCodeOf(err), wsframe.CloseCodeOf(werr))
				}
				if err != nil {
					if _, _, again := f.InflateChunk(make([]byte, 10), []byte{0}, true); again != err {
						t.Fatalf("after %v, InflateChunk returns %v", err, again)
					}
				}
			}
		})
	}
}

// deflateBits packs a DEFLATE stream written as its bits in stream order, in groups
// separated by spaces or '|' for reading: Huffman codes appear most significant bit
// first, other numbers least significant bit first (RFC 1951 §3.1.1), so BTYPE 01
// (fixed codes) is written 10, and 10 (dynamic codes) 01.
func deflateBits(s string) []byte {
	var out []byte
	n := 0
	for _, c := range s {
		if c != '0' && c != '1' {
			continue
		}
		if n%8 == 0 {
			out = append(out, 0)
		}
		out[len(out)-1] |= byte(c-'0') << (n % 8)
		n++
	}
	return out
}

// zeroBomb returns one message of n MiB of zeros, compressed about 1000:1, built by
// repeating the output of a compressor that settled into a repeating state.
func zeroBomb(t testing.TB, n int) []byte {
	var b bytes.Buffer
	w, err := kflate.NewWriter(&b, kflate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	var chunks [][]byte
	for range 4 {
		w.Write(zeros)
		w.Flush()
		chunks = append(chunks, bytes.Clone(b.Bytes()))
		b.Reset()
	}
	if !bytes.Equal(chunks[2], chunks[3]) {
		t.Fatal("the compressor's output for another MiB of zeros keeps changing")
	}
	bomb := append(chunks[0], chunks[1]...)
	for range n - 2 {
		bomb = append(bomb, chunks[2]...)
	}
	return bomb[:len(bomb)-4] // the 00 00 ff ff tail, as a sender strips it
}

// TestInflateChunkBomb streams a 1 GiB decompression bomb (1 MiB of compressed
// zeros) through InflateChunk with a 32 KiB buffer, checking the output and that the
// heap does not grow with it: less than 512 KiB is allocated in all.
func TestInflateChunkBomb(t *testing.T) {
	const size = 1 << 30
	bomb := zeroBomb(t, size>>20)
	f := wsframe.NewInflater(wsframe.Compression{ContextTakeover: true})
	dst := make([]byte, 32<<10)
	zeros := make([]byte, len(dst))
	var total int64
	var before, after runtime.MemStats
	var peak uint64
	runtime.GC()
	runtime.ReadMemStats(&before)
	f.Begin(size)
	calls := 0
	for src := bomb; ; {
		piece := src[:min(len(src), 1400)] // a TCP segment at a time
		final := len(piece) == len(src)
		nDst, nSrc, err := f.InflateChunk(dst, piece, final)
		if !bytes.Equal(dst[:nDst], zeros[:nDst]) {
			t.Fatalf("non-zero byte within bytes %d..%d", total, total+int64(nDst))
		}
		total += int64(nDst)
		src = src[nSrc:]
		if calls++; calls%4096 == 0 {
			runtime.ReadMemStats(&after)
			peak = max(peak, after.HeapAlloc)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if total != size {
		t.Fatalf("%d bytes inflated, want %d", total, size)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes inflated from %d in %d calls; %d bytes allocated, heap peak %d KiB above the start",
		total, len(bomb), calls, allocated, (int64(peak)-int64(before.HeapAlloc))>>10)
	if allocated > 512<<10 {
		t.Fatalf("%d bytes allocated while inflating %d bytes, want < 512 KiB", allocated, total)
	}
	// The window carried over: a message referring back into it inflates.
	d, _ := wsframe.NewDeflater(wsframe.Compression{ContextTakeover: true})
	d.Deflate(nil, make([]byte, 1<<20))
	wire, _ := d.Deflate(nil, make([]byte, 1000))
	if out, err := f.Inflate(nil, wire, 1<<20); err != nil || !bytes.Equal(out, make([]byte, 1000)) {
		t.Fatalf("the message after the bomb: %d bytes, %v", len(out), err)
	}
}

// FuzzInflateStream inflates arbitrary bytes as a message, twice in a row (with
// takeover the second one refers back into the first), whole with Inflate and in
// pieces with InflateChunk, cut and taken out as seed says, under the limit given:
// both must succeed with the same plaintext and window, or fail with the same kind
// of error (too big or corrupt). Inflate is klauspost's decoder, InflateChunk this
// package's own, so each checks the other.
func FuzzInflateStream(f *testing.F) {
	json := `{"type":"chat","room":"lobby","text":"hello hello hello, world"}`
	for _, c := range []wsframe.Compression{{}, {ContextTakeover: true}, {WindowBits: 8}} {
		for _, m := range fzDeflate(c, json, json, "", strings.Repeat("abcd", 300)) {
			f.Add(m, uint64(7), uint32(1<<20), c.ContextTakeover)
		}
	}
	for _, enc := range encoders[1:] {
		for _, m := range enc.enc(f, wsframe.Compression{ContextTakeover: true}, [][]byte{[]byte(json), []byte(json), bigPayload(3000)}) {
			f.Add(m, uint64(0x1234), uint32(2500), true)
		}
	}
	f.Add([]byte{0x00, 0x00, 0xff, 0xff}, uint64(0), uint32(100), false)
	f.Add([]byte{0x03, 0x00, 0xff}, uint64(1), uint32(100), true)
	f.Add(deflateBits("1 10 | 10010001 | 0000001 00000 | 0000000"), uint64(2), uint32(3), false)
	f.Add(deflateBits("0 01 | 11111 00000 0000"), uint64(3), uint32(100), false)
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limit uint32, takeover bool) {
		c := wsframe.Compression{ContextTakeover: takeover}
		whole, stream := wsframe.NewInflater(c), wsframe.NewInflater(c)
		rng := rand.New(rand.NewPCG(seed, seed>>32))
		chunking := chunkings[seed%uint64(len(chunkings))]
		dstSize := []int{1, 2, 7, 100, 4096, 40000}[seed/4%6]
		lim := int64(limit % (4 << 20))
		for i := range 2 {
			want, werr := whole.Inflate(nil, data, lim)
			got, err := streamInflate(t, stream, data, lim, func() int { return chunking.next(rng) }, dstSize)
			if (err == nil) != (werr == nil) ||
				errors.Is(err, wsframe.ErrInflateTooBig) != errors.Is(werr, wsframe.ErrInflateTooBig) ||
				errors.Is(err, wsframe.ErrBadDeflate) != errors.Is(werr, wsframe.ErrBadDeflate) {
				t.Fatalf("message %d, limit %d, %s, dst %d: InflateChunk: %d bytes, %v; Inflate: %d bytes, %v",
					i, lim, chunking.name, dstSize, len(got), err, len(want), werr)
			}
			if err != nil {
				return // the windows are unreliable now
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("message %d: InflateChunk gives %d bytes, Inflate %d", i, len(got), len(want))
			}
			if w, s := wsframe.InflaterWindow(whole), wsframe.InflaterWindow(stream); !bytes.Equal(w, s) {
				t.Fatalf("message %d: window of %d bytes after InflateChunk, %d after Inflate", i, len(s), len(w))
			}
		}
	})
}
