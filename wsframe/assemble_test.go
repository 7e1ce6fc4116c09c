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
	for _, sizes := range [][]int{{0}, {1}, {64 << 10}, {64<<10 + 1}, {300 << 10}, {3 << 20}, {100, 200 << 10, 1, 5 << 20}} {
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
