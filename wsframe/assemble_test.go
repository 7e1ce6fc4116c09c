package wsframe_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// allocated returns how many bytes of heap f allocates, freed or not.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// retained returns how much more live heap there is after f than before it, once
// the garbage is collected. f's result is kept alive until the measurement.
func retained(f func() any) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// announceReader is a peer that sends one frame header and then only some of the
// payload it announced, and then goes away.
type announceReader struct {
	hdr  []byte
	sent uint64 // payload bytes sent so far
	stop uint64 // payload bytes sent in all
}

func (r *announceReader) Read(p []byte) (int, error) {
	if len(r.hdr) > 0 {
		n := copy(p, r.hdr)
		r.hdr = r.hdr[n:]
		return n, nil
	}
	if r.sent == r.stop {
		return 0, io.EOF
	}
	n := min(uint64(len(p)), r.stop-r.sent, 1400) // a TCP segment at a time
	for i := range p[:n] {
		p[i] = byte(r.sent) + byte(i)
	}
	r.sent += n
	return int(n), nil
}

// TestAssemblerAllocatesWhatArrives sends frame headers announcing a large payload
// and then far fewer payload bytes: the Assembler may allocate for what arrived, not
// for what was announced, whichever side sends (masked or not) and whether the
// message is compressed. Limits are still checked against the header first.
func TestAssemblerAllocatesWhatArrives(t *testing.T) {
	const (
		mib = 1 << 20
		gib = 1 << 30
	)
	tests := []struct {
		name      string
		sender    wsframe.Side
		rsv       uint8
		announced uint64
		sent      uint64
		limit     int64
		wantErr   error
	}{
		{"server/header only", wsframe.Server, 0, 16*mib + 1, 1, 32 * mib, io.ErrUnexpectedEOF},
		{"client/header only", wsframe.Client, 0, 16*mib + 1, 1, 32 * mib, io.ErrUnexpectedEOF},
		{"server/compressed 1 GiB", wsframe.Server, wsframe.RSV1, gib, 1, gib, io.ErrUnexpectedEOF},
		{"client/compressed 1 GiB", wsframe.Client, wsframe.RSV1, gib, 1, gib, io.ErrUnexpectedEOF},
		{"server/3 MiB of 1 GiB", wsframe.Server, 0, gib, 3 * mib, gib, io.ErrUnexpectedEOF},
		{"client/3 MiB of 1 GiB", wsframe.Client, wsframe.RSV1, gib, 3 * mib, gib, io.ErrUnexpectedEOF},
		{"over the limit", wsframe.Server, 0, gib, 1, gib - 1, wsframe.ErrMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := wsframe.Header{Fin: true, Rsv: tt.rsv, Opcode: wsframe.OpBinary, Length: tt.announced,
				Masked: tt.sender == wsframe.Client, Mask: [4]byte{1, 2, 3, 4}}
			src := &announceReader{hdr: wsframe.AppendHeader(nil, h), stop: tt.sent}
			rules := wsframe.Rules{Sender: tt.sender}
			cfg := wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: tt.limit}}
			if tt.rsv != 0 {
				rules.Extensions = wsframe.RSV1
				cfg.Inflater = wsframe.NewInflater(wsframe.Compression{ContextTakeover: true})
			}
			r := wsframe.NewReader(src, rules, 0)
			a := wsframe.NewAssembler(cfg)
			var err error
			n := allocated(func() { _, err = a.ReadMessage(r) })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadMessage: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == wsframe.ErrMessageTooBig && src.sent != 0 {
				t.Fatalf("%d payload bytes read before the limit was checked", src.sent)
			}
			// Growing a buffer to twice what it holds, plus one step ahead of it,
			// allocates at most 4× what arrived in all, plus the step.
			bound := 4*tt.sent + 256<<10
			t.Logf("%d of %d announced bytes arrived; %d bytes allocated", tt.sent, tt.announced, n)
			if n > bound {
				t.Fatalf("%d bytes allocated for %d bytes received (%d announced), want at most %d", n, tt.sent, tt.announced, bound)
			}
		})
	}
}

// TestAssemblerReadsPayloadInPieces checks that a payload read in steps as it grows
// arrives intact, for frames around the growth step and across fragments.
func TestAssemblerReadsPayloadInPieces(t *testing.T) {
	for _, sizes := range [][]int{{0}, {1}, {64 << 10}, {64<<10 + 1}, {300 << 10}, {1 << 20}, {100, 200 << 10, 1, 2 << 20}} {
		var stream, want []byte
		for i, n := range sizes {
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(j*7 + i)
			}
			want = append(want, p...)
			op := wsframe.OpBinary
			if i > 0 {
				op = wsframe.OpContinuation
			}
			h := wsframe.Header{Fin: i == len(sizes)-1, Opcode: op, Masked: true, Mask: [4]byte{9, 8, 7, 6}, Length: uint64(n)}
			var b bytes.Buffer
			w := wsframe.NewWriter(&b, wsframe.Server, 0)
			if err := w.WriteFrame(h, p); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			stream = append(stream, b.Bytes()...)
		}
		r := wsframe.NewReader(&announceReader{hdr: stream}, wsframe.Rules{Sender: wsframe.Client}, 0)
		a := wsframe.NewAssembler(wsframe.AssemblerConfig{})
		m, err := a.ReadMessage(r)
		if err != nil {
			t.Fatalf("sizes %v: %v", sizes, err)
		}
		if !bytes.Equal(m.Payload, want) || len(m.Frames) != len(sizes) {
			t.Fatalf("sizes %v: %d bytes in %d frames, want %d in %d", sizes, len(m.Payload), len(m.Frames), len(want), len(sizes))
		}
	}
}

// bigPayload returns n pseudo-random letters, compressible but not trivially: 64 KiB
// of them, repeated beyond the reach of DEFLATE's 32 KiB window.
func bigPayload(n int) []byte {
	block := make([]byte, min(n, 64<<10))
	x := uint32(1)
	for i := range block {
		x = x*1664525 + 1013904223
		block[i] = 'a' + byte(x>>28)
	}
	return bytes.Repeat(block, n/len(block)+1)[:n]
}

// clientMessages returns the frames of msgs as a client sends them, each cut into
// the given number of fragments and compressed in order when c is not nil.
func clientMessages(t *testing.T, c *wsframe.Compression, fragments int, msgs ...[]byte) []byte {
	t.Helper()
	var d *wsframe.Deflater
	if c != nil {
		var err error
		if d, err = wsframe.NewDeflater(*c); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	w := wsframe.NewWriter(&b, wsframe.Client, 0)
	for _, wire := range msgs {
		rsv, n := uint8(0), fragments
		if len(wire) < 1000 {
			n = 1
		}
		if d != nil {
			var err error
			if wire, err = d.Deflate(nil, wire); err != nil {
				t.Fatal(err)
			}
			rsv = wsframe.RSV1
		}
		for i := range n {
			part := wire[len(wire)*i/n : len(wire)*(i+1)/n]
			h := wsframe.Header{Fin: i == n-1, Opcode: wsframe.OpContinuation, Masked: true, Mask: w.NewMaskKey()}
			if i == 0 {
				h.Opcode, h.Rsv = wsframe.OpText, rsv
			}
			if err := w.WriteFrame(h, part); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAssemblerLetsGoOfLargeMessages reads one large message and drops it while
// keeping the Assembler, as a connection that goes idle after it does: the
// Assembler must not keep the message's buffers (wire, inflated or frame headers)
// alive. A large message it handed over stays intact while it reads the next one.
func TestAssemblerLetsGoOfLargeMessages(t *testing.T) {
	deflate := &wsframe.Compression{ContextTakeover: true}
	tests := []struct {
		name      string
		size      int
		fragments int
		comp      *wsframe.Compression
	}{
		{"uncompressed", 4 << 20, 1, nil},
		{"fragmented", 2 << 20, 10000, nil},
		{"compressed", 2 << 20, 3, deflate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bigPayload(tt.size)
			next := []byte("next")
			stream := clientMessages(t, tt.comp, tt.fragments, payload, next, payload, next)
			rules := wsframe.Rules{Sender: wsframe.Client}
			cfg := wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: 64 << 20, MaxFragments: 1 << 20}}
			if tt.comp != nil {
				rules.Extensions = wsframe.RSV1
				cfg.Inflater = wsframe.NewInflater(*tt.comp)
			}
			r := wsframe.NewReader(bytes.NewReader(stream), rules, 0)
			a := wsframe.NewAssembler(cfg)
			read := func(want []byte, frames int) *wsframe.Message {
				t.Helper()
				m, err := a.ReadMessage(r)
				if err != nil || !bytes.Equal(m.Payload, want) || len(m.Frames) != frames {
					t.Fatalf("message of %d bytes: %v", len(want), err)
				}
				return m
			}
			held := retained(func() any {
				read(payload, tt.fragments)
				return a // the caller is done with the message; the connection idles
			})
			runtime.KeepAlive(stream) // measured against a heap that held them throughout
			runtime.KeepAlive(payload)
			t.Logf("after a %d-byte message in %d frames, the Assembler holds %d more bytes", tt.size, tt.fragments, held)
			if held > 512<<10 {
				t.Fatalf("the Assembler holds %d more bytes after a %d-byte message", held, tt.size)
			}
			read(next, 1)
			m := read(payload, tt.fragments)
			read(next, 1)
			if !bytes.Equal(m.Payload, payload) || len(m.Frames) != tt.fragments {
				t.Fatal("the large message changed when the next one was read")
			}
		})
	}
}
