package sniff

import (
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// TestPlausible checks the payload checks that let a resynchronisation reject a
// false header announcing text or a close frame.
func TestPlausible(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	masked := func(p string) []byte {
		b := []byte(p)
		wsframe.Mask(key, 0, b)
		return b
	}
	text := wsframe.Header{Fin: true, Opcode: wsframe.OpText}
	close := wsframe.Header{Fin: true, Opcode: wsframe.OpClose}
	for _, tc := range []struct {
		name string
		h    wsframe.Header
		p    []byte
		want bool
	}{
		{"text", text, []byte("héllo"), true},
		{"text not UTF-8", text, []byte("h\xffllo"), false},
		{"masked text", wsframe.Header{Fin: true, Opcode: wsframe.OpText, Masked: true, Mask: key}, masked("héllo ✓"), true},
		{"masked text, wrong key", wsframe.Header{Fin: true, Opcode: wsframe.OpText, Masked: true}, masked("héllo ✓"), false},
		{"text cut mid-rune, more to come", wsframe.Header{Fin: true, Opcode: wsframe.OpText, Length: 20}, []byte("héllo\xe2\x9c"), true},
		{"text cut mid-rune, whole frame", text, []byte("héllo\xe2\x9c"), false},
		{"first fragment ends mid-rune", wsframe.Header{Opcode: wsframe.OpText}, []byte("héllo\xe2\x9c"), true},
		{"compressed text", wsframe.Header{Fin: true, Opcode: wsframe.OpText, Rsv: wsframe.RSV1}, []byte{0xff, 0xfe}, true},
		{"binary", wsframe.Header{Fin: true, Opcode: wsframe.OpBinary}, []byte{0xff, 0xfe}, true},
		{"ping", wsframe.Header{Fin: true, Opcode: wsframe.OpPing}, []byte{0xff}, true},
		{"close", close, wsframe.AppendClose(nil, 1000, "bye"), true},
		{"close without payload", close, nil, true},
		{"close code 59245", close, []byte{0xe7, 0x6d, 'x'}, false},
		{"close, one byte", close, []byte{3}, false},
		{"close not all here", wsframe.Header{Fin: true, Opcode: wsframe.OpClose, Length: 10}, []byte{0xe7}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h.Length == 0 {
				h.Length = uint64(len(tc.p))
			}
			r := newResyncer(wsframe.Rules{}, 1<<20)
			if got := r.plausible(h, tc.p); got != tc.want {
				t.Errorf("plausible = %v, want %v", got, tc.want)
			}
		})
	}
}
