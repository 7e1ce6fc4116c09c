package wsframe_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// maskReference is the definition of RFC 6455 §5.3, one byte at a time.
func maskReference(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}

// TestMaskMatchesReference compares the fast path with the definition for every size
// up to a few blocks, every alignment of the slice and every starting key position.
func TestMaskMatchesReference(t *testing.T) {
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, 5000+16)
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	sizes := []int{}
	for n := 0; n <= 300; n++ {
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 2047, 2048, 2049, 4095, 4096, 4097, 5000)
	for _, size := range sizes {
		for align := range 8 {
			for pos := range 4 {
				want := bytes.Clone(src[align : align+size])
				wantPos := maskReference(key, pos, want)
				got := bytes.Clone(src[:align+size])[align:]
				gotPos := wsframe.Mask(key, pos, got)
				if !bytes.Equal(got, want) || gotPos != wantPos {
					t.Fatalf("size %d align %d pos %d: Mask differs from the reference (pos %d, want %d)", size, align, pos, gotPos, wantPos)
				}
			}
		}
	}
}

// TestMaskChunked checks that unmasking in chunks of any size equals one-shot unmasking.
func TestMaskChunked(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	orig := make([]byte, 10000)
	for i := range orig {
		orig[i] = byte(i * 7)
	}
	want := bytes.Clone(orig)
	wsframe.Mask(key, 0, want)
	for _, chunk := range []int{1, 2, 3, 5, 127, 128, 129, 1000, 2048, 3001} {
		got := bytes.Clone(orig)
		pos := 0
		for off := 0; off < len(got); off += chunk {
			pos = wsframe.Mask(key, pos, got[off:min(off+chunk, len(got))])
		}
		if !bytes.Equal(got, want) {
			t.Errorf("chunks of %d: result differs from one-shot masking", chunk)
		}
	}
}
