package wsframe_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// decodeAll pushes stream to a Decoder in pieces cut at the given sizes and returns
// the payloads of the messages it emits.
func decodeAll(t *testing.T, d *wsframe.Decoder, stream []byte, cuts func() int) ([]string, []error) {
	t.Helper()
	var got []string
	var errs []error
	stream = bytes.Clone(stream) // Feed unmasks in place
	for len(stream) > 0 {
		n := min(max(cuts(), 1), len(stream))
		if err := d.Feed(stream[:n], func(m *wsframe.Message) { got = append(got, m.Opcode.String()+":"+string(m.Payload)) }); err != nil {
			errs = append(errs, err)
		}
		stream = stream[n:]
	}
	return got, errs
}

func testStream() ([]byte, []string) {
	var stream []byte
	var want []string
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 40 {
		p := make([]byte, rng.IntN(3000))
		for j := range p {
			p[j] = 'a' + byte(rng.IntN(26))
		}
		if i%5 == 0 { // fragmented with a ping in the middle
			stream = append(stream, frame(false, 0, wsframe.OpText, true, string(p[:len(p)/2]))...)
			stream = append(stream, frame(true, 0, wsframe.OpPing, true, "p")...)
			stream = append(stream, frame(true, 0, wsframe.OpContinuation, true, string(p[len(p)/2:]))...)
			want = append(want, "ping:p")
		} else {
			stream = append(stream, frame(true, 0, wsframe.OpText, true, string(p))...)
		}
		want = append(want, "text:"+string(p))
	}
	return stream, want
}

// TestDecoderMatchesReader feeds the same stream in random pieces and expects the
// messages the pull Reader gives.
func TestDecoderMatchesReader(t *testing.T) {
	stream, want := testStream()
	for seed := range 20 {
		rng := rand.New(rand.NewPCG(uint64(seed), 9))
		d := wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Client, Lenient: true}, wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true}))
		got, errs := decodeAll(t, d, stream, func() int { return rng.IntN(1500) })
		if len(errs) > 0 || len(got) != len(want) {
			t.Fatalf("seed %d: %d messages, %v; want %d", seed, len(got), errs, len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("seed %d: message %d differs", seed, i)
			}
		}
	}
}

// TestDecoderGap loses a piece in the middle of the stream: every message wholly
// before or after it comes out intact, the ones it touches do not, and the decoder
// reports the resynchronisation.
func TestDecoderGap(t *testing.T) {
	stream, want := testStream()
	var offs []int
	off := 0
	r := wsframe.NewReader(bytes.NewReader(stream), wsframe.Rules{Sender: wsframe.Client}, 0)
	for {
		offs = append(offs, off)
		h, err := r.NextFrame()
		if err != nil {
			break
		}
		off += h.EncodedLen() + int(h.Length)
	}
	// Frames 31 and 32 are the single-frame messages want[26] and want[27] (every
	// fifth message is three frames and two entries of want): lose from the middle
	// of the one to the middle of the other.
	lost0 := offs[31] + 10
	lost1 := offs[32] + 5
	d := wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Client, Lenient: true}, wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true}))
	before, errs := decodeAll(t, d, stream[:lost0], func() int { return 700 })
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	d.Gap()
	after, errs := decodeAll(t, d, stream[lost1:], func() int { return 333 })
	if len(errs) == 0 || !errors.Is(errs[0], wsframe.ErrResync) || d.Resynced() == 0 {
		t.Fatalf("after the gap: errors %v, resynced %d; want ErrResync", errs, d.Resynced())
	}
	if len(before) != 26 {
		t.Fatalf("%d messages before the gap, want 26", len(before))
	}
	for i, m := range before {
		if m != want[i] {
			t.Fatalf("message %d before the gap differs", i)
		}
	}
	// Everything from frame 28 on (message index 28) must come out intact.
	tail := want[28:]
	if len(after) < len(tail) {
		t.Fatalf("%d messages after the gap, want at least %d", len(after), len(tail))
	}
	after = after[len(after)-len(tail):]
	for i, m := range after {
		if m != tail[i] {
			t.Fatalf("message %d after the gap differs", 28+i)
		}
	}
}

// TestDecoderSkipsTooLarge keeps going after a message over the limit.
func TestDecoderSkipsTooLarge(t *testing.T) {
	stream := cat(frame(false, 0, wsframe.OpBinary, false, string(make([]byte, 600))), frame(true, 0, wsframe.OpPing, false, "p"),
		frame(true, 0, wsframe.OpContinuation, false, string(make([]byte, 600))), frame(true, 0, wsframe.OpText, false, "after"))
	d := wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Server, Lenient: true},
		wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true, Limits: wsframe.Limits{MaxMessageSize: 1000}}))
	got, errs := decodeAll(t, d, stream, func() int { return 97 })
	if len(errs) != 1 || !errors.Is(errs[0], wsframe.ErrMessageTooBig) {
		t.Fatalf("errors %v, want one ErrMessageTooBig", errs)
	}
	if len(got) != 2 || got[0] != "ping:p" || got[1] != "text:after" {
		t.Fatalf("messages %q, want the ping and the next message", got)
	}
}

// FuzzDecoder pushes arbitrary bytes in arbitrary pieces, with gaps, through a
// lenient Decoder: no panic, no message over the limit, and the same messages as
// one-shot feeding when there is no gap.
func FuzzDecoder(f *testing.F) {
	stream, _ := testStream()
	f.Add(stream[:2000], uint64(1), false)
	f.Add([]byte("\x81\x05hello\x89\x00\x01\x03abc\x80\x01d"), uint64(7), true)
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, gaps bool) {
		limits := wsframe.Limits{MaxMessageSize: 1 << 16}
		newDecoder := func() *wsframe.Decoder {
			return wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Client, Lenient: true, Extensions: wsframe.RSV1},
				wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true, Limits: limits}))
		}
		var oneShot []string
		newDecoder().Feed(bytes.Clone(data), func(m *wsframe.Message) { oneShot = append(oneShot, string(m.Payload)) })
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		d := newDecoder()
		var pieces []string
		buf := bytes.Clone(data)
		for len(buf) > 0 {
			n := min(1+rng.IntN(64), len(buf))
			if gaps && rng.IntN(8) == 0 {
				d.Gap()
			} else {
				d.Feed(buf[:n], func(m *wsframe.Message) {
					if int64(len(m.Payload)) > limits.MaxMessageSize {
						t.Fatalf("message of %d bytes over the limit", len(m.Payload))
					}
					pieces = append(pieces, string(m.Payload))
				})
			}
			buf = buf[n:]
		}
		if !gaps && len(pieces) != len(oneShot) {
			t.Fatalf("%d messages fed in pieces, %d fed at once", len(pieces), len(oneShot))
		}
	})
}

// TestDecoderPayloadErrorKeepsFraming: a message whose deflate data is corrupt is
// reported, and the next message decodes without a resynchronisation.
func TestDecoderPayloadErrorKeepsFraming(t *testing.T) {
	stream := cat(frame(true, wsframe.RSV1, wsframe.OpBinary, false, "\xff\xff\xff"), frame(true, 0, wsframe.OpText, false, "next"))
	d := wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Server, Lenient: true, Extensions: wsframe.RSV1},
		wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true, Inflater: wsframe.NewInflater(wsframe.Compression{})}))
	got, errs := decodeAll(t, d, stream, func() int { return 5 })
	if len(errs) != 1 || !errors.Is(errs[0], wsframe.ErrBadDeflate) {
		t.Fatalf("errors %v, want one ErrBadDeflate", errs)
	}
	if len(got) != 1 || got[0] != "text:next" {
		t.Fatalf("messages %q, want the next message", got)
	}
}
