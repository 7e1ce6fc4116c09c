package wsframe

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestPlausible checks the payload checks that let a resynchronisation reject a
// false header announcing text or a close frame.
func TestPlausible(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	masked := func(p string) []byte {
		b := []byte(p)
		Mask(key, 0, b)
		return b
	}
	text := Header{Fin: true, Opcode: OpText}
	close := Header{Fin: true, Opcode: OpClose}
	for _, tc := range []struct {
		name string
		h    Header
		p    []byte
		want bool
	}{
		{"text", text, []byte("héllo"), true},
		{"text not UTF-8", text, []byte("h\xffllo"), false},
		{"masked text", Header{Fin: true, Opcode: OpText, Masked: true, Mask: key}, masked("héllo ✓"), true},
		{"masked text, wrong key", Header{Fin: true, Opcode: OpText, Masked: true}, masked("héllo ✓"), false},
		{"text cut mid-rune, more to come", Header{Fin: true, Opcode: OpText, Length: 20}, []byte("héllo\xe2\x9c"), true},
		{"text cut mid-rune, whole frame", text, []byte("héllo\xe2\x9c"), false},
		{"first fragment ends mid-rune", Header{Opcode: OpText}, []byte("héllo\xe2\x9c"), true},
		{"compressed text", Header{Fin: true, Opcode: OpText, Rsv: RSV1}, []byte{0xff, 0xfe}, true},
		{"binary", Header{Fin: true, Opcode: OpBinary}, []byte{0xff, 0xfe}, true},
		{"ping", Header{Fin: true, Opcode: OpPing}, []byte{0xff}, true},
		{"close", close, AppendClose(nil, 1000, "bye"), true},
		{"close without payload", close, nil, true},
		{"close code 59245", close, []byte{0xe7, 0x6d, 'x'}, false},
		{"close, one byte", close, []byte{3}, false},
		{"close not all here", Header{Fin: true, Opcode: OpClose, Length: 10}, []byte{0xe7}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h.Length == 0 {
				h.Length = uint64(len(tc.p))
			}
			r := newResyncer(Rules{}, 1<<20)
			if got := r.plausible(h, tc.p); got != tc.want {
				t.Errorf("plausible = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRulesValidMatchesCheck: the allocation-free check the search uses agrees
// with Rules.Check on every first and second header byte, for each rule set.
func TestRulesValidMatchesCheck(t *testing.T) {
	var rulesets []Rules
	for _, lenient := range []bool{false, true} {
		for _, sender := range []Side{Client, Server} {
			for _, ext := range []uint8{0, RSV1} {
				rulesets = append(rulesets, Rules{Sender: sender, Lenient: lenient, Extensions: ext})
			}
		}
	}
	tails := [][]byte{
		{0, 5, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},             // 16-bit length 5 (not minimal), 64-bit length
		{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2},             // 16-bit length 256
		{0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0},          // 64-bit length with the top bit
		{0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9},             // 64-bit length 65536
		{0, 0, 0, 0, 0, 0, 0, 0x7d, 1, 2, 3, 4},          // 64-bit length 125 (not minimal)
		{0xAB, 0xCD, 0xEF, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}, // a mask key after a 7-bit length
	}
	for b0 := range 256 {
		for b1 := range 256 {
			for _, tail := range tails {
				b := append([]byte{byte(b0), byte(b1)}, tail...)
				h, n, err := ParseHeader(b)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rulesets {
					if ok, err := r.valid(h, n), r.Check(h, n); ok != (err == nil) {
						t.Fatalf("% x under %+v: valid %v, Check %v", b[:n], r, ok, err)
					}
				}
			}
		}
	}
}

// TestEvidenceRate: the rate of valid headers learned from payload samples, for a
// server's frames: text never holds one unmasked (ASCII has no valid first byte),
// random bytes about as often as RFC 6455 allows first bytes, and before any
// sample the rate is that of random bytes or more.
func TestEvidenceRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	random := make([]byte, 200_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte(`{"seq":12,"data":"the quick brown fox jumps over the lazy dog 0123456789"} `), 3000)
	// Random bytes: 9 of the 256 first bytes are valid for a server without
	// extensions, and the MASK bit must be clear.
	randomRate := 9.0 / 256 / 2
	for _, tc := range []struct {
		name     string
		payload  []byte
		min, max float64
	}{
		{"no samples", nil, randomRate, 1},
		{"text", text, 0, 1e-5},
		{"random", random, randomRate / 1.5, randomRate * 1.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEvidence(Rules{Sender: Server})
			for i := 0; i+4 <= len(tc.payload); i++ {
				e.classify(tc.payload[i : i+4])
			}
			if r := e.rate(0); r < tc.min || r > tc.max {
				t.Errorf("rate %.3g after %d samples, want %.3g to %.3g", r, e.sampled, tc.min, tc.max)
			}
		})
	}
}

// TestEvidenceTextLooks: once a direction's text was seen, the payload of a masked
// text frame made of payload bytes (the XOR of two pieces of that text) looks far
// likelier false than the direction's text does.
func TestEvidenceTextLooks(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:-{}\""
	piece := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return b
	}
	e := newEvidence(Rules{Sender: Client})
	if lr := e.textLooks(piece(100)); lr != 1 {
		t.Errorf("before any text: %g, want 1", lr)
	}
	for range 200 {
		p := piece(200)
		e.learn(&Message{Opcode: OpText, Payload: p, Wire: p, Frames: []Header{{Fin: true, Opcode: OpText, Length: 200}}})
	}
	for _, n := range []int{10, 40, 1000} {
		real, a, b := piece(n), piece(n), piece(n)
		xor := make([]byte, n)
		for i := range xor {
			xor[i] = a[i] ^ b[i]
		}
		if lr := e.textLooks(real); lr > 0.1 {
			t.Errorf("%d bytes of text: %g, want below 0.1", n, lr)
		}
		if lr := e.textLooks(xor); lr < 10 {
			t.Errorf("%d bytes of XORed text: %g, want above 10", n, lr)
		}
	}
}

// TestEvidenceNotAtFrame: where the pieces fed begin tells how likely a gap, which
// loses whole pieces, ends at a frame.
func TestEvidenceNotAtFrame(t *testing.T) {
	for _, tc := range []struct {
		atFrame  bool
		min, max float64
	}{{true, 0, 0.02}, {false, 0.98, 1}} {
		e := newEvidence(Rules{Sender: Client})
		if p := e.notAtFrame(); p != 0.5 {
			t.Errorf("before any piece: %g, want 0.5", p)
		}
		for range 200 {
			e.feed(tc.atFrame)
		}
		if p := e.notAtFrame(); p < tc.min || p > tc.max {
			t.Errorf("pieces at a frame %v: %g, want %g to %g", tc.atFrame, p, tc.min, tc.max)
		}
	}
}
