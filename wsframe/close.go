package wsframe

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// ParseClose decodes the payload of a close frame (RFC 6455 §5.5.1): an empty payload
// means [CloseNoStatus]; otherwise a 2-byte code that must be valid on the wire,
// followed by a UTF-8 reason. Errors wrap [ErrClosePayload], [ErrCloseCode] or
// [ErrInvalidCloseUTF8]; the code and reason are returned with them for logging.
func ParseClose(payload []byte) (CloseCode, string, error) {
	switch len(payload) {
	case 0:
		return CloseNoStatus, "", nil
	case 1:
		return 0, "", ErrClosePayload
	}
	code := CloseCode(binary.BigEndian.Uint16(payload))
	reason := string(payload[2:])
	if !code.ValidOnWire() {
		return code, reason, fmt.Errorf("%w: %d", ErrCloseCode, code)
	}
	if !utf8.ValidString(reason) {
		return code, reason, ErrInvalidCloseUTF8
	}
	return code, reason, nil
}

// AppendClose appends a close frame payload to dst. CloseNoStatus gives the empty
// payload; a reason is cut at a rune boundary to fit the 125-byte control frame limit.
func AppendClose(dst []byte, code CloseCode, reason string) []byte {
	if code == CloseNoStatus {
		return dst
	}
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}
