package wsframe_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/wstap/wstap/wsframe"
)

// chunkers cut a stream in ways that ignore frame boundaries.
var chunkers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one-byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data-err", iotest.DataErrReader},
	{"seven-bytes", func(r io.Reader) io.Reader { return &chunkReader{r: r, n: 7} }},
}

type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestReaderChunking reads the same stream of frames at the length-encoding
// boundaries, masked and unmasked, through readers that return any number of bytes
// per call, with small and default buffers, and expects the same frames every time.
func TestReaderChunking(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 70000}
	for _, masked := range []bool{true, false} {
		sender := wsframe.Server
		if masked {
			sender = wsframe.Client
		}
		var stream []byte
		var payloads [][]byte
		for i, n := range sizes {
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(i + j*31)
			}
			payloads = append(payloads, p)
			stream = append(stream, frame(true, 0, wsframe.OpBinary, masked, string(p))...)
		}
		for _, ch := range chunkers {
			for _, bufSize := range []int{0, wsframe.MaxHeaderSize, 100} {
				r := wsframe.NewReader(ch.wrap(bytes.NewReader(stream)), wsframe.Rules{Sender: sender}, bufSize)
				for i, want := range payloads {
					h, err := r.NextFrame()
					if err != nil {
						t.Fatalf("masked=%v %s buf=%d frame %d: %v", masked, ch.name, bufSize, i, err)
					}
					if h.Length != uint64(len(want)) || h.Masked != masked || !h.Fin || h.Opcode != wsframe.OpBinary {
						t.Fatalf("masked=%v %s frame %d: header %+v", masked, ch.name, i, h)
					}
					got, err := io.ReadAll(r)
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("masked=%v %s buf=%d frame %d: payload differs (%d bytes, err %v)", masked, ch.name, bufSize, i, len(got), err)
					}
				}
				if _, err := r.NextFrame(); err != io.EOF {
					t.Fatalf("masked=%v %s: after the last frame: %v, want io.EOF", masked, ch.name, err)
				}
			}
		}
	}
}

// TestReaderSkipsUnreadPayload checks that NextFrame discards what Read did not take.
func TestReaderSkipsUnreadPayload(t *testing.T) {
	stream := cat(frame(true, 0, wsframe.OpBinary, true, "0123456789"), frame(true, 0, wsframe.OpText, true, "next"))
	r := wsframe.NewReader(iotest.OneByteReader(bytes.NewReader(stream)), wsframe.Rules{Sender: wsframe.Client}, 0)
	if _, err := r.NextFrame(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "012" {
		t.Fatalf("first bytes %q, %v", buf, err)
	}
	if r.Remaining() != 7 {
		t.Fatalf("Remaining = %d, want 7", r.Remaining())
	}
	h, err := r.NextFrame()
	if err != nil || h.Opcode != wsframe.OpText {
		t.Fatalf("second frame %+v, %v", h, err)
	}
	if got, _ := io.ReadAll(r); string(got) != "next" {
		t.Fatalf("second payload %q", got)
	}
}

// TestReaderRawAndReady covers the relay helpers: RawHeader and ReadRaw give the wire
// bytes, mixing Read and ReadRaw keeps the key offset, and Ready tells whether the
// next frame is wholly buffered.
func TestReaderRawAndReady(t *testing.T) {
	f1 := frame(true, 0, wsframe.OpText, true, "hello, world")
	f2 := frame(true, 0, wsframe.OpText, true, "second")
	stream := cat(f1, f2, f1[:3])
	r := wsframe.NewReader(bytes.NewReader(stream), wsframe.Rules{Sender: wsframe.Client}, 0)
	if _, err := r.NextFrame(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.RawHeader(), f1[:6]) {
		t.Fatalf("RawHeader %x, want %x", r.RawHeader(), f1[:6])
	}
	raw := make([]byte, 5)
	if _, err := io.ReadFull(r, raw[:2]); err != nil || string(raw[:2]) != "he" {
		t.Fatalf("Read %q %v", raw[:2], err)
	}
	if n, err := r.ReadRaw(raw[:5]); n != 5 || err != nil || !bytes.Equal(raw, f1[6+2:6+7]) {
		t.Fatalf("ReadRaw %x, want %x (%v)", raw, f1[8:13], err)
	}
	if !r.Ready() {
		t.Fatal("Ready = false with the rest of the frame and the next one buffered")
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "world" {
		t.Fatalf("Read after ReadRaw %q, want %q", rest, "world")
	}
	if _, err := r.NextFrame(); err != nil {
		t.Fatal(err)
	}
	if r.Ready() {
		t.Fatal("Ready = true with only 3 bytes of the next frame buffered")
	}
}

// zeroFrame streams one huge frame: a header and then n zero bytes, without holding
// them in memory.
type zeroFrame struct {
	hdr []byte
	n   uint64
}

func (z *zeroFrame) Read(p []byte) (int, error) {
	if len(z.hdr) > 0 {
		n := copy(p, z.hdr)
		z.hdr = z.hdr[n:]
		return n, nil
	}
	if z.n == 0 {
		return 0, io.EOF
	}
	n := min(uint64(len(p)), z.n)
	clear(p[:n])
	z.n -= n
	return int(n), nil
}

// TestReaderStreams4GiBFrame streams a 4 GiB masked frame through the Reader with a
// 64 KiB buffer and checks the unmasked content and that the heap stays small.
func TestReaderStreams4GiBFrame(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 4 GiB")
	}
	const size = 4 << 30
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	hdr := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpBinary, Masked: true, Mask: key, Length: size})
	r := wsframe.NewReader(&zeroFrame{hdr: hdr, n: size}, wsframe.Rules{Sender: wsframe.Client}, 0)
	h, err := r.NextFrame()
	if err != nil || h.Length != size {
		t.Fatalf("header %+v, %v", h, err)
	}
	buf := make([]byte, 64<<10)
	var total uint64
	var peak uint64
	var ms runtime.MemStats
	for i := 0; ; i++ {
		n, err := r.Read(buf)
		// The payload is zeros, so unmasked bytes are the key, repeating.
		for j := 0; j < n; j += 4093 {
			if buf[j] != key[(total+uint64(j))&3] {
				t.Fatalf("byte %d = %#x, want %#x", total+uint64(j), buf[j], key[(total+uint64(j))&3])
			}
		}
		total += uint64(n)
		if i%8192 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != size {
		t.Fatalf("read %d bytes, want %d", total, uint64(size))
	}
	if peak > 64<<20 {
		t.Fatalf("heap peaked at %d MiB, want < 64 MiB", peak>>20)
	}
	t.Logf("4 GiB frame streamed; heap peak %.1f MiB", float64(peak)/(1<<20))
}
