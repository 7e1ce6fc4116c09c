package wsframe

import (
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
)

// maskBlockSize is the size of the expanded key block handed to subtle.XORBytes.
// Larger blocks mean fewer calls; 2 KiB keeps the block in L1 and on the stack.
const maskBlockSize = 2048

// maskWordThreshold is the payload size below which the word loop beats expanding the
// key into a block (measured by BenchmarkMask).
const maskWordThreshold = 128

// Mask XORs b in place with the masking key, starting at key byte pos&3, and returns
// the key position after b (RFC 6455 §5.3). Masking and unmasking are the same
// operation, and chunks chain: Mask(k, Mask(k, 0, b[:i]), b[i:]) equals Mask(k, 0, b).
func Mask(key [4]byte, pos int, b []byte) int {
	pos &= 3
	if len(b) < maskWordThreshold {
		return maskWords(key, pos, b)
	}
	var block [maskBlockSize]byte
	// Rotate the key so that block[0] lines up with b[0].
	block[0], block[1], block[2], block[3] = key[pos], key[(pos+1)&3], key[(pos+2)&3], key[(pos+3)&3]
	for n := 4; n < len(block); n *= 2 {
		copy(block[n:], block[:n])
	}
	for len(b) >= maskBlockSize {
		subtle.XORBytes(b[:maskBlockSize], b[:maskBlockSize], block[:])
		b = b[maskBlockSize:]
	}
	subtle.XORBytes(b, b, block[:len(b)])
	return (pos + len(b)) & 3
}

// maskWords is the small-payload path: one 64-bit word at a time, then the tail.
func maskWords(key [4]byte, pos int, b []byte) int {
	k32 := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*pos)
	k64 := uint64(k32) | uint64(k32)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}
