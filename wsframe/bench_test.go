package wsframe_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/wsframe"
)

// Benchmarks of the codec's hot paths. Helpers here are prefixed with "bench" so they
// cannot clash with the helpers of the package's other test files.

// benchSize is a payload size with the name it has in benchmark names.
type benchSize struct {
	name string
	n    int
}

// benchLoopReader serves data over and over, as a socket that never runs dry would.
// data must hold whole frames, so that the wrap-around falls on a frame boundary. A
// Read returns at most the bytes up to the wrap-around, like a socket returning one
// segment.
type benchLoopReader struct {
	data []byte
	pos  int
}

func (r *benchLoopReader) Read(p []byte) (int, error) {
	if r.pos == len(r.data) {
		r.pos = 0
	}
	n := copy(p, r.data[r.pos:])
	r.pos += n
	return n, nil
}

// benchConn is a net.Conn whose reads come from a benchLoopReader and whose writes
// are discarded.
type benchConn struct{ benchLoopReader }

func (*benchConn) Write(p []byte) (int, error)      { return len(p), nil }
func (*benchConn) Close() error                     { return nil }
func (*benchConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (*benchConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (*benchConn) SetDeadline(time.Time) error      { return nil }
func (*benchConn) SetReadDeadline(time.Time) error  { return nil }
func (*benchConn) SetWriteDeadline(time.Time) error { return nil }

// benchHijacker is the http.ResponseWriter of a handshake whose connection is conn.
type benchHijacker struct {
	conn   net.Conn
	header http.Header
}

func (h *benchHijacker) Header() http.Header         { return h.header }
func (h *benchHijacker) Write(p []byte) (int, error) { return len(p), nil }
func (h *benchHijacker) WriteHeader(int)             {}
func (h *benchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// benchGorillaConn returns a server-side gorilla *websocket.Conn that reads stream
// (client frames, so masked) over and over.
//
// gorilla/websocket only makes server connections through Upgrader.Upgrade, so this
// runs a real handshake: a GET request with the upgrade headers and a ResponseWriter
// that implements http.Hijacker and hands over a benchConn. The 101 response goes to
// the discarding Write. From then on the Conn reads frames with the same code as on a
// TCP connection: its default 4 KiB bufio.Reader (the hijacked one, as a real server's
// would be) over the looping in-memory stream, header parsing, and its word-at-a-time
// unmasking. Only the kernel copy of a real socket is replaced by a memory copy, which
// the wsframe-reader benchmark pays the same way.
func benchGorillaConn(tb testing.TB, stream []byte) *websocket.Conn {
	tb.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	w := &benchHijacker{conn: &benchConn{benchLoopReader{data: stream}}, header: http.Header{}}
	var up websocket.Upgrader
	c, err := up.Upgrade(w, req, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// benchPayload returns n pseudo-random bytes.
func benchPayload(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// benchStream returns the frames a client sends for binary messages of one frame of
// payload each: masked with fresh keys, and repeated until the stream holds at least
// minSize bytes.
func benchStream(tb testing.TB, payload []byte, minSize int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := wsframe.NewWriter(&buf, wsframe.Client, 0)
	for buf.Len()+w.Buffered() < minSize {
		if err := w.WriteMessage(wsframe.OpBinary, 0, payload, nil); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// benchFrameReader reads the frames of a looping stream of same-size frames one by
// one into a reused buffer.
type benchFrameReader struct {
	r   *wsframe.Reader
	buf []byte
}

func newBenchFrameReader(stream []byte, size int) *benchFrameReader {
	src := &benchLoopReader{data: stream}
	return &benchFrameReader{
		r:   wsframe.NewReader(src, wsframe.Rules{Sender: wsframe.Client}, 0),
		buf: make([]byte, size),
	}
}

func (f *benchFrameReader) next() error {
	h, err := f.r.NextFrame()
	if err != nil {
		return err
	}
	if h.Length != uint64(len(f.buf)) {
		return fmt.Errorf("frame of %d bytes, want %d", h.Length, len(f.buf))
	}
	_, err = io.ReadFull(f.r, f.buf)
	return err
}

// benchMessageReader reads the messages of a looping stream through an Assembler.
type benchMessageReader struct {
	r    *wsframe.Reader
	a    *wsframe.Assembler
	size int
}

func newBenchMessageReader(stream []byte, size int) *benchMessageReader {
	src := &benchLoopReader{data: stream}
	return &benchMessageReader{
		r:    wsframe.NewReader(src, wsframe.Rules{Sender: wsframe.Client}, 0),
		a:    wsframe.NewAssembler(wsframe.AssemblerConfig{}),
		size: size,
	}
}

func (m *benchMessageReader) next() error {
	msg, err := m.a.ReadMessage(m.r)
	if err != nil {
		return err
	}
	if len(msg.Payload) != m.size {
		return fmt.Errorf("message of %d bytes, want %d", len(msg.Payload), m.size)
	}
	return nil
}

// BenchmarkUnmask compares unmasking alone (wsframe), a plain copy of the same size
// (the memory-bandwidth ceiling), and the whole read path of one masked frame per
// message through gorilla/websocket and through wsframe.Reader over the same bytes.
func BenchmarkUnmask(b *testing.B) {
	for _, size := range []benchSize{{"64B", 64}, {"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		payload := benchPayload(size.n)
		stream := benchStream(b, payload, 64<<10)
		b.Run(size.name, func(b *testing.B) {
			b.Run("wsframe", func(b *testing.B) {
				buf := bytes.Clone(payload)
				key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					wsframe.Mask(key, 0, buf)
				}
			})
			b.Run("copy", func(b *testing.B) {
				dst := make([]byte, size.n)
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					copy(dst, payload)
				}
			})
			b.Run("gorilla", func(b *testing.B) {
				c := benchGorillaConn(b, stream)
				buf := make([]byte, size.n)
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					typ, r, err := c.NextReader()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(r, buf); err != nil || typ != websocket.BinaryMessage {
						b.Fatal(typ, err)
					}
				}
				b.StopTimer()
				if !bytes.Equal(buf, payload) {
					b.Fatal("gorilla read a different payload")
				}
			})
			b.Run("wsframe-reader", func(b *testing.B) {
				fr := newBenchFrameReader(stream, size.n)
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := fr.next(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if !bytes.Equal(fr.buf, payload) {
					b.Fatal("wsframe.Reader read a different payload")
				}
			})
		})
	}
}

// BenchmarkMask times Mask across the sizes around its switch from the word loop to
// the expanded-key block (maskWordThreshold, whose comment cites this benchmark), at
// a key offset of 1 as in the middle of a chunked payload.
func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, n := range []int{16, 64, 127, 128, 256, 512, 1024, 2048, 4096} {
		buf := benchPayload(n)
		b.Run(strconv.Itoa(n)+"B", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				wsframe.Mask(key, 1, buf)
			}
		})
	}
}

// BenchmarkReadFrames reads a long stream of masked client frames, one frame per op:
// with Reader.NextFrame and io.ReadFull into a reused buffer, and with
// Assembler.ReadMessage.
func BenchmarkReadFrames(b *testing.B) {
	for _, size := range []benchSize{{"64B", 64}, {"64KiB", 64 << 10}} {
		stream := benchStream(b, benchPayload(size.n), 1<<20)
		b.Run(size.name, func(b *testing.B) {
			b.Run("reader", func(b *testing.B) {
				fr := newBenchFrameReader(stream, size.n)
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := fr.next(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("assembler", func(b *testing.B) {
				mr := newBenchMessageReader(stream, size.n)
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := mr.next(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// TestReadFramesZeroAlloc asserts that, once warmed up, reading frames allocates
// nothing, through the Reader and through the Assembler. Each measured run reads
// many frames and AllocsPerRun is asked for one run, so that a single allocation in
// any frame shows (AllocsPerRun divides by the number of runs, rounding down).
func TestReadFramesZeroAlloc(t *testing.T) {
	const frames = 2000
	for _, size := range []benchSize{{"64B", 64}, {"64KiB", 64 << 10}} {
		stream := benchStream(t, benchPayload(size.n), 256<<10)
		paths := []struct {
			name string
			next func() error
		}{
			{"reader", newBenchFrameReader(stream, size.n).next},
			{"assembler", newBenchMessageReader(stream, size.n).next},
		}
		for _, p := range paths {
			t.Run(size.name+"/"+p.name, func(t *testing.T) {
				var err error
				readMany := func() {
					for i := 0; i < frames && err == nil; i++ {
						err = p.next()
					}
				}
				readMany() // warm-up: buffers reach their steady-state size
				allocs := testing.AllocsPerRun(1, readMany)
				if err != nil {
					t.Fatal(err)
				}
				if allocs != 0 {
					t.Errorf("%v allocations in %d frames, want 0", allocs, frames)
				}
			})
		}
	}
}

// benchJSON returns n JSON-ish messages of exactly size bytes each: market-data
// updates with varied numbers and ids, as a trading or chat app would send, which
// compress about as well as real traffic (far from random, far from repetitive).
func benchJSON(count, size int) [][]byte {
	rng := rand.New(rand.NewPCG(uint64(size), uint64(count)))
	symbols := []string{"BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD", "ETH-BTC"}
	sides := []string{"bid", "ask"}
	msgs := make([][]byte, count)
	for i := range msgs {
		b := fmt.Appendf(nil, `{"op":"update","seq":%d,"channel":"book.%s","ts":"2024-05-%02dT%02d:%02d:%02d.%03dZ","data":[`,
			1000000+i, symbols[rng.IntN(len(symbols))], 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000))
		const tail = `],"pad":""}`
		for first := true; ; first = false {
			rec := fmt.Appendf(nil, `{"price":"%d.%02d","size":"%d.%04d","side":"%s","orders":%d,"id":"%016x"}`,
				40000+rng.IntN(5000), rng.IntN(100), rng.IntN(10), rng.IntN(10000), sides[rng.IntN(2)], 1+rng.IntN(40), rng.Uint64())
			if !first {
				rec = append([]byte{','}, rec...)
			}
			if len(b)+len(rec)+len(tail) > size {
				break
			}
			b = append(b, rec...)
		}
		b = append(b, `],"pad":"`...)
		for len(b)+2 < size {
			b = append(b, 'x')
		}
		msgs[i] = append(b, `"}`...)
		if len(msgs[i]) != size {
			panic("benchJSON: size " + strconv.Itoa(len(msgs[i])))
		}
	}
	return msgs
}

// benchCompressed returns msgs compressed in order by one Deflater with c.
func benchCompressed(tb testing.TB, c wsframe.Compression, msgs [][]byte) [][]byte {
	tb.Helper()
	d, err := wsframe.NewDeflater(c)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		if out[i], err = d.Deflate(nil, m); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

var benchMessageSizes = []benchSize{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}}

// benchInflate inflates a sequence of messages compressed with c, in order, one
// message per op. The first 64 KiB of messages are inflated untimed, so that the
// timed ones are all in the steady state, with a full 32 KiB window and grown
// buffers. Without context takeover the messages are independent and the sequence
// simply starts over. With context takeover a sequence can only be inflated once from
// the start, so when it runs out a fresh Inflater starts it again, with the timer
// stopped for the fresh Inflater and its 64 KiB warm-up.
func benchInflate(b *testing.B, takeover bool) {
	for _, size := range benchMessageSizes {
		c := wsframe.Compression{ContextTakeover: takeover}
		count := (4 << 20) / size.n // 4 MiB of messages
		msgs := benchJSON(count, size.n)
		comp := benchCompressed(b, c, msgs)
		b.Run(size.name, func(b *testing.B) {
			warm := (64 << 10) / size.n
			limit := int64(size.n)
			var inf *wsframe.Inflater
			var dst []byte
			start := func() int {
				inf = wsframe.NewInflater(c)
				for i := 0; i < warm; i++ {
					var err error
					if dst, err = inf.Inflate(dst[:0], comp[i], limit); err != nil {
						b.Fatal(err)
					}
				}
				return warm
			}
			next := start()
			wire := 0
			for _, m := range comp {
				wire += len(m)
			}
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if next == len(comp) {
					if takeover {
						b.StopTimer()
						next = start()
						b.StartTimer()
					} else {
						next = 0
					}
				}
				var err error
				if dst, err = inf.Inflate(dst[:0], comp[next], limit); err != nil {
					b.Fatal(err)
				}
				next++
			}
			b.StopTimer()
			if !bytes.Equal(dst, msgs[next-1]) {
				b.Fatal("inflated message differs from the original")
			}
			b.ReportMetric(float64(wire)/float64(len(comp)), "wire-B/msg")
		})
	}
}

// BenchmarkInflateContextTakeover inflates JSON-ish messages compressed with context
// takeover (each message refers back into the ones before it).
func BenchmarkInflateContextTakeover(b *testing.B) { benchInflate(b, true) }

// BenchmarkInflateNoContextTakeover inflates the same messages compressed one by one.
func BenchmarkInflateNoContextTakeover(b *testing.B) { benchInflate(b, false) }

// BenchmarkInflateLarge inflates one large message per op, whole with Inflate and in
// pieces with InflateChunk (1400-byte pieces, as TCP segments come, into a 32 KiB
// buffer): 4 MiB of JSON-ish text, and a 64 MiB run of zeros compressed 1000:1, as
// a bomb is.
func BenchmarkInflateLarge(b *testing.B) {
	json := bytes.Join(benchJSON(256, 16<<10), nil)
	inputs := []struct {
		name  string
		plain int
		wire  []byte
	}{
		{"json4MiB", len(json), benchCompressed(b, wsframe.Compression{}, [][]byte{json})[0]},
		{"zeros64MiB", 64 << 20, zeroBomb(b, 64)},
	}
	for _, in := range inputs {
		b.Run(in.name+"/Inflate", func(b *testing.B) {
			f := wsframe.NewInflater(wsframe.Compression{})
			dst, err := f.Inflate(nil, in.wire, 1<<30) // warm-up: dst grows to its size
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(in.plain))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if dst, err = f.Inflate(dst[:0], in.wire, 1<<30); err != nil || len(dst) != in.plain {
					b.Fatal(len(dst), err)
				}
			}
		})
		b.Run(in.name+"/InflateChunk", func(b *testing.B) {
			f := wsframe.NewInflater(wsframe.Compression{})
			f.Begin(1 << 30) // warm-up: the Inflater allocates its staging area
			dst := make([]byte, 32<<10)
			b.ReportAllocs()
			b.SetBytes(int64(in.plain))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.Begin(1 << 30)
				total := 0
				for src := in.wire; ; {
					piece := src[:min(len(src), 1400)]
					nDst, nSrc, err := f.InflateChunk(dst, piece, len(piece) == len(src))
					total += nDst
					src = src[nSrc:]
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if total != in.plain {
					b.Fatal(total)
				}
			}
		})
	}
}

// BenchmarkDeflate compresses JSON-ish messages with context takeover, as a sender
// whose receiver accepted a 15-bit (32 KiB) or a 10-bit (1 KiB) window.
func BenchmarkDeflate(b *testing.B) {
	for _, size := range benchMessageSizes {
		msgs := benchJSON(256, size.n)
		b.Run(size.name, func(b *testing.B) {
			for _, bits := range []int{15, 10} {
				b.Run("window"+strconv.Itoa(bits), func(b *testing.B) {
					d, err := wsframe.NewDeflater(wsframe.Compression{ContextTakeover: true, WindowBits: bits})
					if err != nil {
						b.Fatal(err)
					}
					var dst []byte
					for _, m := range msgs[:8] { // warm-up: lazily allocated encoder state
						if dst, err = d.Deflate(dst[:0], m); err != nil {
							b.Fatal(err)
						}
					}
					wire := 0
					b.ReportAllocs()
					b.SetBytes(int64(size.n))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if dst, err = d.Deflate(dst[:0], msgs[(i+8)%len(msgs)]); err != nil {
							b.Fatal(err)
						}
						wire += len(dst)
					}
					b.ReportMetric(float64(wire)/float64(b.N), "wire-B/msg")
				})
			}
		})
	}
}

// BenchmarkWriteFrames writes single-frame binary messages to io.Discard, one frame
// per op: as a client (masked with a fresh key per frame, copying into the Writer's
// buffer or its pooled scratch buffer) and as a server (small frames buffered, large
// ones written straight from the caller's slice).
func BenchmarkWriteFrames(b *testing.B) {
	for _, size := range []benchSize{{"64B", 64}, {"64KiB", 64 << 10}} {
		payload := benchPayload(size.n)
		b.Run(size.name, func(b *testing.B) {
			for _, side := range []wsframe.Side{wsframe.Client, wsframe.Server} {
				b.Run(side.String(), func(b *testing.B) {
					w := wsframe.NewWriter(io.Discard, side, 0)
					h := wsframe.Header{Fin: true, Opcode: wsframe.OpBinary, Masked: side == wsframe.Client}
					b.ReportAllocs()
					b.SetBytes(int64(size.n))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if h.Masked {
							h.Mask = w.NewMaskKey()
						}
						if err := w.WriteFrame(h, payload); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Flush(); err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}

// BenchmarkDecoderResync measures the search after a mid-stream start over bytes
// that never verify as frames, fed in pieces of 1, 7 and 1460 bytes: random bytes,
// and a run of headers that each announce a long payload (every position waits for
// more bytes). The 1460-byte pieces are the baseline the small ones compare to.
func BenchmarkDecoderResync(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	headers := bytes.Repeat([]byte{0x82, 0xFE, 0x7F, 0xFF, 1, 2, 3, 4}, 8<<10)
	for _, data := range []struct {
		name string
		p    []byte
	}{{"random", random}, {"long-headers", headers}} {
		for _, piece := range []int{1, 7, 1460} {
			b.Run(fmt.Sprintf("%s/piece=%d", data.name, piece), func(b *testing.B) {
				b.SetBytes(int64(len(data.p)))
				buf := make([]byte, len(data.p))
				for b.Loop() {
					copy(buf, data.p)
					d := wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Client, Lenient: true},
						wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true}), discardHandler{})
					d.StartMidStream()
					for p := buf; len(p) > 0; {
						n := min(piece, len(p))
						d.Feed(p[:n])
						p = p[n:]
					}
					d.End()
				}
			})
		}
	}
}

// discardHandler is a DecodeHandler that ignores everything.
type discardHandler struct{}

func (discardHandler) Message(*wsframe.Message) {}
func (discardHandler) Resync(int64)             {}
func (discardHandler) Error(error)              {}
