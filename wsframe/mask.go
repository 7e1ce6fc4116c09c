package wsframe

import (
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
)

// maskBlockSize is the size of the expanded key block handed to subtle.XORBytes, and
// maskWordThreshold the payload size below which the 8-byte word loop wins over
// building that block (about 40 ns for 2 KiB, BenchmarkMask); 512 bytes measured best
// for both on this project's machines, and 1 MiB runs no slower than with 2 KiB.
const (
	maskBlockSize     = 512
	maskWordThreshold = 512
)

// Mask XORs b in place with the masking key, starting at key byte pos&3, and returns
// the key position after b (RFC 6455 §5.3). Masking and unmasking are the same
// operation, and chunks chain: Mask(k, Mask(k, 0, b[:i]), b[i:]) equals Mask(k, 0, b).
func Mask(key [4]byte, pos int, b []byte) int {
	var kb keyBlock
	return kb.mask(key, pos, b)
}

// keyBlock is a masking key expanded into a block for subtle.XORBytes, kept so that a
// frame read in many pieces expands its key once. The 3 extra bytes let a block start
// at any key position.
type keyBlock struct {
	key   [4]byte
	valid bool
	block [maskBlockSize + 3]byte
}

// mask is [Mask] with the expanded key cached in kb.
func (kb *keyBlock) mask(key [4]byte, pos int, b []byte) int {
	pos &= 3
	if len(b) < maskWordThreshold {
		return maskWords(key, pos, b)
	}
	if !kb.valid || kb.key != key {
		kb.key, kb.valid = key, true
		copy(kb.block[:4], key[:])
		for n := 4; n < len(kb.block); n *= 2 {
			copy(kb.block[n:], kb.block[:n])
		}
	}
	block := kb.block[pos : pos+maskBlockSize]
	for len(b) >= maskBlockSize {
		subtle.XORBytes(b[:maskBlockSize], b[:maskBlockSize], block)
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
