package wsframe

import (
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
