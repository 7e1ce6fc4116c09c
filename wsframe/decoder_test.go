package wsframe_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// collector is a DecodeHandler that records what it is told.
type collector struct {
	msgs    []string // "opcode:payload"
	errs    []error
	resyncs []int64
	events  []string // all three, in order
	limit   int64    // fail when a message is larger (0: no check)
	t       testing.TB
}

func (c *collector) Message(m *wsframe.Message) {
	if c.limit > 0 && int64(len(m.Payload)) > c.limit {
		c.t.Fatalf("message of %d bytes over the limit", len(m.Payload))
	}
	c.msgs = append(c.msgs, m.Opcode.String()+":"+string(m.Payload))
	c.events = append(c.events, "message")
}

func (c *collector) Error(err error) {
	c.errs = append(c.errs, err)
	c.events = append(c.events, "error")
}

func (c *collector) Resync(skipped int64) {
	c.resyncs = append(c.resyncs, skipped)
	c.events = append(c.events, "resync")
}

// newTestDecoder returns a lenient Decoder for frames from sender, reporting to a
// new collector.
func newTestDecoder(t testing.TB, sender wsframe.Side, cfg wsframe.AssemblerConfig) (*wsframe.Decoder, *collector) {
	c := &collector{t: t}
	cfg.Lenient = true
	rules := wsframe.Rules{Sender: sender, Lenient: true}
	if cfg.Inflater != nil {
		rules.Extensions = wsframe.RSV1
	}
	return wsframe.NewDecoder(rules, wsframe.NewAssembler(cfg), c), c
}

// decodeAll pushes stream to a Decoder in pieces cut at the given sizes.
func decodeAll(d *wsframe.Decoder, stream []byte, cuts func() int) {
	stream = bytes.Clone(stream) // Feed unmasks in place
	for len(stream) > 0 {
		n := min(max(cuts(), 1), len(stream))
		d.Feed(stream[:n])
		stream = stream[n:]
	}
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

// firstFrame returns the index of the first frame of testStream's message k
// (counting the entries of its want). Every fifth message is sent in groups of
// three frames: text start, ping, continuation; want holds the ping first.
func firstFrame(k int) int {
	g, r := k/6, k%6
	switch r {
	case 0:
		return 7*g + 1 // the ping
	case 1:
		return 7 * g // the fragmented text
	}
	return 7*g + r + 1
}

// TestDecoderMatchesReader feeds the same stream in random pieces and expects the
// messages the pull Reader gives.
func TestDecoderMatchesReader(t *testing.T) {
	stream, want := testStream()
	for seed := range 20 {
		rng := rand.New(rand.NewPCG(uint64(seed), 9))
		d, c := newTestDecoder(t, wsframe.Client, wsframe.AssemblerConfig{})
		decodeAll(d, stream, func() int { return rng.IntN(1500) })
		if len(c.errs)+len(c.resyncs) > 0 || len(c.msgs) != len(want) {
			t.Fatalf("seed %d: %d messages, errors %v, resyncs %v; want %d", seed, len(c.msgs), c.errs, c.resyncs, len(want))
		}
		for i := range want {
			if c.msgs[i] != want[i] {
				t.Fatalf("seed %d: message %d differs", seed, i)
			}
		}
	}
}

// frameOffsets returns where each frame of a client stream starts.
func frameOffsets(t *testing.T, stream []byte) []int {
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
	if off != len(stream) {
		t.Fatalf("frames end at %d of %d", off, len(stream))
	}
	return offs
}

// TestDecoderGap loses bytes in the middle of the stream: every message wholly
// before or after them comes out intact, the ones they touch do not, and the
// decoder reports the resynchronisation. The gap is cut at many places: inside a
// payload (the next header's place is known), across frame boundaries (searched
// for), and inside headers.
func TestDecoderGap(t *testing.T) {
	stream, want := testStream()
	offs := frameOffsets(t, stream)
	// Frames 31 and 32 are the single-frame messages want[26] and want[27] (every
	// fifth message is three frames and two entries of want).
	for _, tc := range []struct {
		name       string
		from, to   int
		lastBefore int  // want[:lastBefore] come out before the gap
		firstAfter int  // want[firstAfter:] come out after it
		lost       bool // a message was in progress
	}{
		{"inside one payload", offs[31] + 10, offs[31] + 20, 26, 27, true},
		{"payload to payload", offs[31] + 10, offs[32] + 5, 26, 28, true},
		{"whole frames", offs[31], offs[33], 26, 28, false},
		{"header to header", offs[31] + 1, offs[33] + 1, 26, 29, true},
		{"payload to header", offs[31] + 20, offs[32] + 3, 26, 28, true},
		{"in a fragmented message", offs[36] + 9, offs[37] + 1, 31, 32, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, piece := range []int{1, 7, 333, 1 << 20} {
				d, c := newTestDecoder(t, wsframe.Client, wsframe.AssemblerConfig{})
				decodeAll(d, stream[:tc.from], func() int { return piece })
				before := len(c.msgs)
				if lost := d.Gap(int64(tc.to - tc.from)); lost != tc.lost {
					t.Errorf("piece %d: Gap reports lost %v, want %v", piece, lost, tc.lost)
				}
				decodeAll(d, stream[tc.to:], func() int { return piece })
				d.End()
				if len(c.errs) > 0 || len(c.resyncs) != 1 {
					t.Fatalf("piece %d: errors %v, resyncs %v; want one resync", piece, c.errs, c.resyncs)
				}
				if before != tc.lastBefore || !slices.Equal(c.msgs[:before], want[:before]) {
					t.Fatalf("piece %d: %d messages before the gap, want %d", piece, before, tc.lastBefore)
				}
				if after := c.msgs[before:]; !slices.Equal(after, want[tc.firstAfter:]) {
					t.Fatalf("piece %d: %d messages after the gap, want %d (want[%d:])", piece, len(after), len(want)-tc.firstAfter, tc.firstAfter)
				}
			}
		})
	}
}

// TestDecoderStartMidStream starts at every offset of a stream's first frames:
// the messages that start after it come out, and a resynchronisation is reported
// only when bytes were skipped.
func TestDecoderStartMidStream(t *testing.T) {
	stream, want := testStream()
	offs := frameOffsets(t, stream)
	for start := 0; start < offs[12]; start += 37 {
		d, c := newTestDecoder(t, wsframe.Client, wsframe.AssemblerConfig{})
		d.StartMidStream()
		decodeAll(d, stream[start:], func() int { return 1460 })
		d.End()
		// The first frame at or after start, and the messages that begin there or
		// later.
		first := 0
		for first < len(offs) && offs[first] < start {
			first++
		}
		var msgs []string
		for k, m := range want {
			if firstFrame(k) >= first {
				msgs = append(msgs, m)
			}
		}
		if !slices.Equal(c.msgs, msgs) {
			t.Fatalf("start %d (frame %d): %d messages, want %d", start, first, len(c.msgs), len(msgs))
		}
		if wantResync := start != offs[first]; (len(c.resyncs) == 1) != wantResync || len(c.resyncs) > 1 {
			t.Fatalf("start %d: resyncs %v, want one: %v", start, c.resyncs, wantResync)
		}
	}
}

// TestDecoderBadHeader: a reserved opcode in the middle of the stream is reported,
// the message in progress dropped, and the decoder finds the next messages.
func TestDecoderBadHeader(t *testing.T) {
	stream, want := testStream()
	offs := frameOffsets(t, stream)
	bad := slices.Clone(stream)
	bad[offs[20]] = bad[offs[20]]&0xF0 | 0x3 // reserved opcode 3
	for _, piece := range []int{1, 2, 100, 1 << 20} {
		d, c := newTestDecoder(t, wsframe.Client, wsframe.AssemblerConfig{})
		decodeAll(d, bad, func() int { return piece })
		d.End()
		if len(c.errs) != 1 || !errors.Is(c.errs[0], wsframe.ErrReservedOpcode) || len(c.resyncs) != 1 {
			t.Fatalf("piece %d: errors %v, resyncs %v; want one reserved opcode error and one resync", piece, c.errs, c.resyncs)
		}
		if c.events[17] != "error" || c.events[18] != "resync" {
			t.Fatalf("piece %d: events %v: want the error, then the resync, after 17 messages", piece, c.events[:20])
		}
		// Frame 20 is message 17's only frame.
		if firstFrame(17) != 20 || !slices.Equal(c.msgs, append(slices.Clone(want[:17]), want[18:]...)) {
			t.Fatalf("piece %d: messages differ from want without message 17", piece)
		}
	}
}

// TestDecoderSkipsTooLarge keeps going after a message over the limit.
func TestDecoderSkipsTooLarge(t *testing.T) {
	stream := cat(frame(false, 0, wsframe.OpBinary, false, string(make([]byte, 600))), frame(true, 0, wsframe.OpPing, false, "p"),
		frame(true, 0, wsframe.OpContinuation, false, string(make([]byte, 600))), frame(true, 0, wsframe.OpText, false, "after"))
	d, c := newTestDecoder(t, wsframe.Server, wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: 1000}})
	decodeAll(d, stream, func() int { return 97 })
	if len(c.errs) != 1 || !errors.Is(c.errs[0], wsframe.ErrMessageTooBig) || len(c.resyncs) > 0 {
		t.Fatalf("errors %v, resyncs %v; want one ErrMessageTooBig", c.errs, c.resyncs)
	}
	if len(c.msgs) != 2 || c.msgs[0] != "ping:p" || c.msgs[1] != "text:after" {
		t.Fatalf("messages %q, want the ping and the next message", c.msgs)
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
		cfg := wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: 1 << 16}}
		one, all := newTestDecoder(t, wsframe.Client, cfg)
		all.limit = cfg.Limits.MaxMessageSize
		one.Feed(bytes.Clone(data))
		one.End()
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		d, pieces := newTestDecoder(t, wsframe.Client, cfg)
		pieces.limit = cfg.Limits.MaxMessageSize
		buf := bytes.Clone(data)
		for len(buf) > 0 {
			n := min(1+rng.IntN(64), len(buf))
			switch {
			case gaps && rng.IntN(8) == 0:
				d.Gap(int64(n))
			case gaps && rng.IntN(8) == 0:
				d.Idle()
				d.Feed(buf[:n])
			default:
				d.Feed(buf[:n])
			}
			if held := wsframe.ResyncHeld(d); held > wsframe.MaxResyncHeld+64 {
				t.Fatalf("the resynchronisation holds %d bytes", held)
			}
			buf = buf[n:]
		}
		d.End()
		if !gaps && !slices.Equal(pieces.events, all.events) {
			t.Fatalf("events fed in pieces %v, fed at once %v", pieces.events, all.events)
		}
		if !gaps && !slices.Equal(pieces.msgs, all.msgs) {
			t.Fatalf("%d messages fed in pieces, %d fed at once", len(pieces.msgs), len(all.msgs))
		}
	})
}

// TestDecoderPayloadErrorKeepsFraming: a message whose deflate data is corrupt is
// reported, and the next message decodes without a resynchronisation.
func TestDecoderPayloadErrorKeepsFraming(t *testing.T) {
	stream := cat(frame(true, wsframe.RSV1, wsframe.OpBinary, false, "\xff\xff\xff"), frame(true, 0, wsframe.OpText, false, "next"))
	d, c := newTestDecoder(t, wsframe.Server, wsframe.AssemblerConfig{Inflater: wsframe.NewInflater(wsframe.Compression{})})
	decodeAll(d, stream, func() int { return 5 })
	if len(c.errs) != 1 || !errors.Is(c.errs[0], wsframe.ErrBadDeflate) || len(c.resyncs) > 0 {
		t.Fatalf("errors %v, resyncs %v; want one ErrBadDeflate", c.errs, c.resyncs)
	}
	if len(c.msgs) != 1 || c.msgs[0] != "text:next" {
		t.Fatalf("messages %q, want the next message", c.msgs)
	}
}
