package wsframe_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// TestWriterForwardsByteIdentical reads frames of every length encoding, masked and
// not, and writes them back with the headers and payloads the Reader returned: the
// output must equal the input byte for byte, for small buffers (large-payload paths)
// and default ones.
func TestWriterForwardsByteIdentical(t *testing.T) {
	for _, masked := range []bool{true, false} {
		sender := wsframe.Server
		if masked {
			sender = wsframe.Client
		}
		var in []byte
		for i, n := range []int{0, 5, 125, 126, 4000, 65535, 65536, 200000} {
			p := bytes.Repeat([]byte{byte(i), 0xA5}, n/2+1)[:n]
			op, fin := wsframe.OpBinary, true
			if i == 3 {
				op, fin = wsframe.OpText, false
				p = bytes.Repeat([]byte("é"), n/2)
			} else if i == 4 {
				op = wsframe.OpContinuation
			}
			in = append(in, frame(fin, 0, op, masked, string(p))...)
		}
		for _, bufSize := range []int{0, 64} {
			var out bytes.Buffer
			r := wsframe.NewReader(bytes.NewReader(in), wsframe.Rules{Sender: sender}, 0)
			w := wsframe.NewWriter(&out, sender, bufSize)
			for {
				h, err := r.NextFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				p, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.WriteFrame(h, p); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), in) {
				t.Fatalf("masked=%v buf=%d: forwarded %d bytes differ from the %d read", masked, bufSize, out.Len(), len(in))
			}
		}
	}
}

// TestWriterNeverMasksCallerBuffer checks that the caller's payload is untouched by
// masking, in the buffered and the large-payload paths.
func TestWriterNeverMasksCallerBuffer(t *testing.T) {
	for _, n := range []int{10, 3000, 100000} {
		payload := bytes.Repeat([]byte("abcd"), n/4)
		orig := bytes.Clone(payload)
		var out bytes.Buffer
		w := wsframe.NewWriter(&out, wsframe.Client, 0)
		if err := w.WriteMessage(wsframe.OpBinary, 0, payload, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(payload, orig) {
			t.Fatalf("%d bytes: the caller's payload was modified", n)
		}
		r := wsframe.NewReader(&out, wsframe.Rules{Sender: wsframe.Client}, 0)
		m, err := wsframe.NewAssembler(wsframe.AssemblerConfig{}).ReadMessage(r)
		if err != nil || !bytes.Equal(m.Payload, orig) {
			t.Fatalf("%d bytes: read back %d bytes, %v", n, len(m.Payload), err)
		}
		if !m.Frames[0].Masked || m.Frames[0].Mask == [4]byte{} {
			t.Fatalf("%d bytes: frame not masked with a key: %+v", n, m.Frames[0])
		}
	}
}

// TestWriteMessageFraming checks fragment sizes, fresh keys per frame, and RSV on
// the first frame only.
func TestWriteMessageFraming(t *testing.T) {
	tests := []struct {
		name   string
		sizes  []int
		n      int
		frames []uint64
	}{
		{"one frame", nil, 10, []uint64{10}},
		{"kept sizes", []int{3, 0, 7}, 10, []uint64{3, 0, 7}},
		{"trailing empty frame", []int{6, 4, 0}, 10, []uint64{6, 4, 0}},
		{"sizes not adding up", []int{3, 3}, 10, []uint64{10}},
		{"empty", nil, 0, []uint64{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := wsframe.NewWriter(&out, wsframe.Client, 0)
			payload := []byte("0123456789")[:tc.n]
			if err := w.WriteMessage(wsframe.OpText, wsframe.RSV1, payload, tc.sizes); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			r := wsframe.NewReader(&out, wsframe.Rules{Sender: wsframe.Client, Extensions: wsframe.RSV1}, 0)
			m, err := wsframe.NewAssembler(wsframe.AssemblerConfig{}).ReadMessage(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Wire) != string(payload) || len(m.Frames) != len(tc.frames) {
				t.Fatalf("got %q in %d frames", m.Wire, len(m.Frames))
			}
			keys := map[[4]byte]bool{}
			for i, h := range m.Frames {
				keys[h.Mask] = true
				if h.Length != tc.frames[i] || h.Compressed() != (i == 0) || h.Fin != (i == len(m.Frames)-1) {
					t.Errorf("frame %d: %+v", i, h)
				}
			}
			if len(keys) != len(m.Frames) {
				t.Errorf("%d distinct keys for %d frames", len(keys), len(m.Frames))
			}
		})
	}
}

// TestWriteFramesRoundTrip replays a fragmented, compressed message from its Frames
// and Wire and expects the original bytes.
func TestWriteFramesRoundTrip(t *testing.T) {
	wire := deflated(t, "a message worth compressing, compressing, compressing")
	first := frame(false, wsframe.RSV1, wsframe.OpText, true, wire[:5])
	ping := frame(true, 0, wsframe.OpPing, true, "x")
	last := frame(true, 0, wsframe.OpContinuation, true, wire[5:])
	in := cat(first, ping, last)
	r := wsframe.NewReader(bytes.NewReader(in), wsframe.Rules{Sender: wsframe.Client, Extensions: wsframe.RSV1}, 0)
	a := wsframe.NewAssembler(wsframe.AssemblerConfig{Inflater: wsframe.NewInflater(wsframe.Compression{})})
	var out bytes.Buffer
	w := wsframe.NewWriter(&out, wsframe.Client, 0)
	for range 2 {
		m, err := a.ReadMessage(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrames(m.Frames, m.Wire); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	// The ping completes first, so it is replayed first; then the message's frames.
	want := cat(ping, first, last)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("replayed bytes differ:\n got %x\nwant %x", out.Bytes(), want)
	}
}
