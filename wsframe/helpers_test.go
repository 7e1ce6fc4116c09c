package wsframe_test

import (
	"strings"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// bits decodes an annotated bit string such as "1 000 0001 | 0 0000011" into bytes:
// '0' and '1' are bits, everything else is commentary.
func bits(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	var cur byte
	n := 0
	for _, c := range s {
		if c != '0' && c != '1' {
			continue
		}
		cur = cur<<1 | byte(c-'0')
		if n++; n == 8 {
			out, cur, n = append(out, cur), 0, 0
		}
	}
	if n != 0 {
		t.Fatalf("bits(%q): %d bits left over", s, n)
	}
	return out
}

// frame encodes one frame with the package's own writer, masking with key when masked.
func frame(fin bool, rsv uint8, op wsframe.Opcode, masked bool, payload string) []byte {
	var b strings.Builder
	w := wsframe.NewWriter(&b, wsframe.Server, 0)
	h := wsframe.Header{Fin: fin, Rsv: rsv, Opcode: op, Masked: masked, Mask: [4]byte{0x37, 0xfa, 0x21, 0x3d}}
	if err := w.WriteFrame(h, []byte(payload)); err != nil {
		panic(err)
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	return []byte(b.String())
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
