package wsframe_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/wstap/wstap/internal/lossycap"
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
// only when bytes were skipped. With nothing seen before, one of the first messages
// may be held back (a 1-byte ping in masked text is not told from payload bytes
// that point at the next frame): it is then counted as skipped.
func TestDecoderStartMidStream(t *testing.T) {
	stream, want := testStream()
	offs := frameOffsets(t, stream)
	heldBack := 0
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
		held := len(msgs) - len(c.msgs)
		ok := held == 0 && slices.Equal(c.msgs, msgs)
		for j := 0; j < 2 && held == 1 && !ok; j++ { // the first frames are those of msgs[0] and msgs[1]
			ok = slices.Equal(c.msgs, slices.Delete(slices.Clone(msgs), j, j+1))
		}
		if !ok {
			t.Fatalf("start %d (frame %d): %d messages, want %d (or all but one of the first two)", start, first, len(c.msgs), len(msgs))
		}
		heldBack += held
		if wantResync := start != offs[first] || held > 0; (len(c.resyncs) == 1) != wantResync || len(c.resyncs) > 1 {
			t.Fatalf("start %d: resyncs %v, want one: %v", start, c.resyncs, wantResync)
		}
	}
	t.Logf("%d of the starts held back one message", heldBack)
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

// FuzzDecoderLossy generates streams that lost every K-th segment (see
// internal/lossycap) from the fuzzer's seed and feeds them to the Decoder: no
// message may come out that was not sent at that place. (The Decoder accepts a
// chance of 1e-5 that a message it shows after a search is made of payload bytes,
// so a long run may find one: that case is worth a look at the odds it was given.)
func FuzzDecoderLossy(f *testing.F) {
	f.Add(uint64(1), uint8(40), false, false)
	f.Add(uint64(2), uint8(20), false, true)
	f.Add(uint64(3), uint8(10), true, false)
	f.Add(uint64(4), uint8(3), true, true)
	f.Fuzz(func(t *testing.T, seed uint64, k uint8, mixed, anywhere bool) {
		cfg := lossycap.Issue(seed, 1500, int(k%64)+2)
		if mixed {
			cfg = lossycap.Mixed(seed, 150, int(k%64)+2)
		}
		if anywhere {
			cfg.Cut = lossycap.Anywhere
		}
		c, err := lossycap.Generate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if u := c.Decode(); u.Corrupted > 0 {
			t.Fatalf("%s: %s\n%v", c.Describe(), u, u.Examples)
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

// uncertainCollector is a collector that also receives the messages held back.
type uncertainCollector struct {
	*collector
	uncertain []string
}

func (u *uncertainCollector) Uncertain(m *wsframe.Message) {
	u.uncertain = append(u.uncertain, m.Opcode.String()+":"+string(m.Payload))
	u.events = append(u.events, "uncertain")
}

// chatStream returns n masked client frames of JSON text, each a piece of its own
// as from a sender that writes one message per send, and the messages.
func chatStream(rng *rand.Rand, n int) (pieces [][]byte, msgs []string) {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:-_"
	for k := range n {
		p := fmt.Appendf(nil, `{"seq":%d,"data":"`, k)
		for range 40 + rng.IntN(120) {
			p = append(p, letters[rng.IntN(len(letters))])
		}
		p = append(p, `"}`...)
		pieces = append(pieces, maskedFrame(rng, wsframe.OpText, p))
		msgs = append(msgs, "text:"+string(p))
	}
	return pieces, msgs
}

// maskedFrame encodes a final client frame with a random key.
func maskedFrame(rng *rand.Rand, op wsframe.Opcode, payload []byte) []byte {
	h := wsframe.Header{Fin: true, Opcode: op, Masked: true, Length: uint64(len(payload))}
	binary.LittleEndian.PutUint32(h.Mask[:], rng.Uint32())
	b := wsframe.AppendHeader(nil, h)
	off := len(b)
	b = append(b, payload...)
	wsframe.Mask(h.Mask, 0, b[off:])
	return b
}

// TestDecoderHoldsFalsePrefix: a gap cuts a masked text message whose tail holds
// bytes that, as they are on the wire, form a valid header pointing exactly at the
// next real frame. The search takes that position (the real frames verify the
// chain), but the false frame is not shown as a message: it is held back, and the
// messages after it come out intact.
func TestDecoderHoldsFalsePrefix(t *testing.T) {
	for _, tc := range []struct {
		name string
		b0   byte // the false header's first byte
		n    int  // its payload length
	}{
		{"ping", 0x89, 20},
		{"pong", 0x8A, 3},
		{"binary", 0x82, 26},
		{"text", 0x81, 26}, // its payload unmasks to the XOR of two pieces of text: still UTF-8
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, uncertain := range []bool{false, true} {
				rng := rand.New(rand.NewPCG(11, uint64(tc.b0)))
				before, want := chatStream(rng, 300)
				after, wantAfter := chatStream(rng, 40)
				// The cut message: masked text whose last 6+n bytes on the wire are
				// the false frame.
				cut := make([]byte, 400)
				for i := range cut {
					cut[i] = 'a' + byte(rng.IntN(26))
				}
				wire := maskedFrame(rng, wsframe.OpText, cut)
				wire[len(wire)-6-tc.n] = tc.b0
				wire[len(wire)-5-tc.n] = 0x80 | byte(tc.n)
				lost := 120 // the header and the start of the payload

				d, c := newTestDecoder(t, wsframe.Client, wsframe.AssemblerConfig{})
				u := &uncertainCollector{collector: c}
				if uncertain {
					d = wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Client, Lenient: true},
						wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true}), u)
				}
				for _, p := range before {
					d.Feed(bytes.Clone(p))
				}
				d.Gap(int64(lost))
				d.Feed(bytes.Clone(wire[lost:]))
				for _, p := range after {
					d.Feed(bytes.Clone(p))
				}
				d.End()

				if !slices.Equal(c.msgs, append(want, wantAfter...)) || len(c.errs) > 0 {
					t.Fatalf("uncertain %v: %d messages, want %d; errors %v", uncertain, len(c.msgs), len(want)+len(wantAfter), c.errs)
				}
				skipped := int64(len(wire) - lost - 6 - tc.n) // up to the false header
				if !uncertain {
					skipped = int64(len(wire) - lost) // and the frame held back
				}
				if len(c.resyncs) != 1 || c.resyncs[0] != skipped {
					t.Fatalf("uncertain %v: resyncs %v, want [%d]", uncertain, c.resyncs, skipped)
				}
				if uncertain {
					// The false frame, as the search found it.
					if len(u.uncertain) != 1 || !strings.HasPrefix(u.uncertain[0], wsframe.Opcode(tc.b0&0x0F).String()+":") ||
						len(u.uncertain[0]) != len(wsframe.Opcode(tc.b0&0x0F).String())+1+tc.n {
						t.Fatalf("held back %q, want the %d-byte %s", u.uncertain, tc.n, tc.name)
					}
					if i := slices.Index(u.events, "uncertain"); i < 1 || u.events[i-1] != "resync" {
						t.Fatalf("events %v: want the resync before the message held back", u.events[len(want):len(want)+3])
					}
				}
			}
		})
	}
}

// TestDecoderLossy feeds generated streams that lost every K-th segment to the
// Decoder, segment by segment, and checks every message against what was sent
// (see internal/lossycap): none reported that was not sent at that place
// (corrupted), and nearly all of those clear of a gap recovered. The messages
// held back after a search are counted as uncertain.
func TestDecoderLossy(t *testing.T) {
	anywhere := func(c lossycap.Config) lossycap.Config { c.Cut = lossycap.Anywhere; return c }
	for _, tc := range []struct {
		name  string
		cfg   func(seed uint64, k int) lossycap.Config
		seeds int
		ks    [][2]float64 // K, and the least share of the messages clear of a gap recovered
	}{
		{"issue", func(seed uint64, k int) lossycap.Config { return lossycap.Issue(seed, 3000, k) }, 3,
			[][2]float64{{10, 0.998}, {40, 0.999}, {100, 0.999}}},
		{"issue-cut-anywhere", func(seed uint64, k int) lossycap.Config { return anywhere(lossycap.Issue(seed, 3000, k)) }, 3,
			[][2]float64{{20, 0.99}, {40, 0.995}}},
		{"mixed", func(seed uint64, k int) lossycap.Config { return lossycap.Mixed(seed, 300, k) }, 6,
			[][2]float64{{10, 0.8}, {30, 0.93}, {100, 0.98}}},
	} {
		for _, km := range tc.ks {
			k, minRate := int(km[0]), km[1]
			t.Run(fmt.Sprintf("%s/K=%d", tc.name, k), func(t *testing.T) {
				var all lossycap.Tally
				for seed := range uint64(tc.seeds) {
					c, err := lossycap.Generate(tc.cfg(seed, k))
					if err != nil {
						t.Fatal(err)
					}
					u := c.Decode()
					if u.Corrupted > 0 {
						t.Errorf("seed %d (%s): %s\n%v", seed, c.Describe(), u, u.Examples)
					}
					all.Add(u)
				}
				t.Logf("%s", all)
				if all.Resyncs == 0 || all.Rate() < minRate {
					t.Errorf("recovered %.3f%% of the messages clear of a gap, want %.1f%%: %s", 100*all.Rate(), 100*minRate, all)
				}
			})
		}
	}
}

// TestDecoderGapInSkippedFrame: a gap inside a frame's payload leaves the next
// header's place known; so does a second gap inside the continuation that the
// resynchronisation then skips (the rest of the message the first gap cut). The
// ping after it comes out, though no chain of frames could verify it.
func TestDecoderGapInSkippedFrame(t *testing.T) {
	stream := cat(frame(false, 0, wsframe.OpText, false, strings.Repeat("a", 300)),
		frame(true, 0, wsframe.OpPing, false, "p"),
		frame(true, 0, wsframe.OpContinuation, false, strings.Repeat("x", 5000)),
		frame(true, 0, wsframe.OpPing, false, "q"))
	// Cut 100 bytes from the first frame's payload and 1000 from the continuation's.
	first, cont := 4+100, 4+300+3+4+1000
	for _, piece := range []int{1, 7, 1460} {
		d, c := newTestDecoder(t, wsframe.Server, wsframe.AssemblerConfig{})
		u := &uncertainCollector{collector: c}
		d = wsframe.NewDecoder(wsframe.Rules{Sender: wsframe.Server, Lenient: true}, wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true}), u)
		decodeAll(d, stream[:first], func() int { return piece })
		if !d.Gap(100) {
			t.Fatalf("piece %d: first gap: no message in progress", piece)
		}
		decodeAll(d, stream[first+100:cont], func() int { return piece })
		if d.Gap(1000) {
			t.Errorf("piece %d: second gap reported a message in progress: it was lost at the first", piece)
		}
		decodeAll(d, stream[cont+1000:], func() int { return piece })
		d.End()
		if !slices.Equal(c.msgs, []string{"ping:p", "ping:q"}) || len(u.uncertain) > 0 || len(c.errs) > 0 || len(c.resyncs) != 1 {
			t.Fatalf("piece %d: messages %q, held back %q, errors %v, resyncs %v; want both pings and one resync", piece, c.msgs, u.uncertain, c.errs, c.resyncs)
		}
	}
}
