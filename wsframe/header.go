package wsframe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxHeaderSize is the longest frame header: 2 bytes, an 8-byte extended payload
// length and a 4-byte masking key (RFC 6455 §5.2).
const MaxHeaderSize = 14

// MaxControlPayload is the largest payload of a control frame (RFC 6455 §5.5).
const MaxControlPayload = 125

// RSV bits as they sit in the first header byte (RFC 6455 §5.2).
const (
	RSV1 uint8 = 0x40 // permessage-deflate: "Per-Message Compressed" (RFC 7692 §6)
	RSV2 uint8 = 0x20
	RSV3 uint8 = 0x10
)

// ErrShortHeader is returned by [ParseHeader] when b does not yet hold the whole
// header; [HeaderLen] says how many bytes it needs.
var ErrShortHeader = errors.New("wsframe: incomplete frame header")

// Header is a decoded frame header. It is a plain value: parsing does no validation
// beyond what is needed to find the frame's end; [Rules.Check] applies the RFC.
type Header struct {
	Fin    bool
	Rsv    uint8 // RSV1|RSV2|RSV3 bits, in their wire positions
	Opcode Opcode
	Masked bool
	Mask   [4]byte
	Length uint64 // payload length
}

// Compressed reports whether RSV1 is set: under permessage-deflate, the first frame
// of a compressed message (RFC 7692 §6).
func (h Header) Compressed() bool { return h.Rsv&RSV1 != 0 }

// EncodedLen returns the size of h in its minimal encoding, as [AppendHeader] writes it.
func (h Header) EncodedLen() int {
	n := 2
	switch {
	case h.Length > 0xFFFF:
		n += 8
	case h.Length > 125:
		n += 2
	}
	if h.Masked {
		n += 4
	}
	return n
}

// HeaderLen returns the size of the header whose first two bytes are b0 and b1: the
// 7-bit length and the MASK bit determine it (RFC 6455 §5.2).
func HeaderLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// ParseHeader decodes the frame header at the start of b and returns it with its
// encoded size. It returns [ErrShortHeader] when b holds fewer bytes than the header
// needs. It does not allocate, and it rejects nothing that has a defined length:
// validation is [Rules.Check]'s job, which needs the returned size to spot non-minimal
// length encodings.
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < 2 {
		return Header{}, 0, ErrShortHeader
	}
	n := HeaderLen(b[0], b[1])
	if len(b) < n {
		return Header{}, 0, ErrShortHeader
	}
	h := Header{
		Fin:    b[0]&0x80 != 0,
		Rsv:    b[0] & (RSV1 | RSV2 | RSV3),
		Opcode: Opcode(b[0] & 0x0F),
		Masked: b[1]&0x80 != 0,
		Length: uint64(b[1] & 0x7F),
	}
	i := 2
	switch h.Length {
	case 126:
		h.Length = uint64(binary.BigEndian.Uint16(b[2:]))
		i += 2
	case 127:
		h.Length = binary.BigEndian.Uint64(b[2:])
		i += 8
	}
	if h.Masked {
		copy(h.Mask[:], b[i:i+4])
	}
	return h, n, nil
}

// AppendHeader appends h to dst in its minimal encoding and returns the extended
// slice. h.Length must be below 1<<63.
func AppendHeader(dst []byte, h Header) []byte {
	b0 := h.Rsv&(RSV1|RSV2|RSV3) | byte(h.Opcode&0x0F)
	if h.Fin {
		b0 |= 0x80
	}
	var b1 byte
	if h.Masked {
		b1 = 0x80
	}
	switch {
	case h.Length > 0xFFFF:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, h.Length)
	case h.Length > 125:
		dst = append(dst, b0, b1|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(h.Length))
	default:
		dst = append(dst, b0, b1|byte(h.Length))
	}
	if h.Masked {
		dst = append(dst, h.Mask[:]...)
	}
	return dst
}

// Rules are the RFC 6455 §5 checks for the frames of one sender. The zero value is
// not useful: set Sender.
type Rules struct {
	// Sender is who sent the frames: a client's frames must be masked and a server's
	// must not be (§5.1).
	Sender Side

	// Extensions holds the RSV bits that negotiated extensions define; RSV1 when
	// permessage-deflate was negotiated. Any other RSV bit is an error (§5.2).
	Extensions uint8

	// Lenient accepts what a passive observer must still decode: non-minimal length
	// encodings, a set length MSB, a masking bit that does not fit the sender, and RSV
	// bits without an extension. Reserved opcodes and malformed control frames are
	// rejected in both modes: their frame boundaries are still known, but nothing
	// after them can be trusted to be WebSocket.
	Lenient bool
}

// Check validates h, which [ParseHeader] decoded from n bytes, against r. The error
// wraps one of the package's *ProtocolError sentinels. Sequencing across frames
// (continuations, interleaved control frames) is the [Assembler]'s job.
func (r Rules) Check(h Header, n int) error {
	if r.valid(h, n) {
		return nil
	}
	if h.Opcode.IsReserved() {
		return fmt.Errorf("%w 0x%X", ErrReservedOpcode, uint8(h.Opcode))
	}
	if h.Opcode.IsControl() {
		if h.Length > MaxControlPayload {
			return fmt.Errorf("%w: %s of %d bytes", ErrControlTooLong, h.Opcode, h.Length)
		}
		if !h.Fin {
			return fmt.Errorf("%w: %s", ErrFragmentedControl, h.Opcode)
		}
	}
	if r.Lenient {
		return nil
	}
	if extra := h.Rsv &^ r.Extensions; extra != 0 {
		return fmt.Errorf("%w (0x%02X)", ErrReservedBits, extra)
	}
	switch {
	case r.Sender == Client && !h.Masked:
		return ErrUnmaskedClientFrame
	case r.Sender == Server && h.Masked:
		return ErrMaskedServerFrame
	}
	if h.Length>>63 != 0 {
		return ErrLengthMSB
	}
	if n != h.EncodedLen() {
		return fmt.Errorf("%w: %d in a %d-byte header", ErrNonMinimalLength, h.Length, n)
	}
	return nil
}

// valid reports whether Check accepts h, without building an error: a search
// for frame headers calls it at every byte.
func (r Rules) valid(h Header, n int) bool {
	if h.Opcode.IsReserved() || h.Opcode.IsControl() && (h.Length > MaxControlPayload || !h.Fin) {
		return false
	}
	if r.Lenient {
		return true
	}
	return h.Rsv&^r.Extensions == 0 && (r.Sender != Client || h.Masked) && (r.Sender != Server || !h.Masked) &&
		h.Length>>63 == 0 && n == h.EncodedLen()
}
