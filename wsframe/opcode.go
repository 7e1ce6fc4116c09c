package wsframe

import "strconv"

// Opcode is the 4-bit frame type of RFC 6455 §5.2.
type Opcode uint8

// Opcodes defined by RFC 6455 §5.2 and §11.8. The others (3-7, 0xB-0xF) are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether o is a control opcode (close, ping, pong or a reserved
// control opcode): the most significant opcode bit is set (RFC 6455 §5.5).
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

// IsData reports whether o starts a data message (text or binary).
func (o Opcode) IsData() bool { return o == OpText || o == OpBinary }

// IsReserved reports whether o has no meaning in RFC 6455 (3-7 and 0xB-0xF).
func (o Opcode) IsReserved() bool {
	switch o {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return false
	}
	return true
}

// String returns the name wstap uses in logs: "text", "binary", "continuation",
// "close", "ping", "pong", or "opcode-N" for a reserved value.
func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "opcode-" + strconv.Itoa(int(o))
}

// CloseCode is a status code of a close frame (RFC 6455 §7.4).
type CloseCode uint16

// Close codes of RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number Registry".
const (
	CloseNormal             CloseCode = 1000
	CloseGoingAway          CloseCode = 1001
	CloseProtocolError      CloseCode = 1002
	CloseUnsupportedData    CloseCode = 1003
	CloseNoStatus           CloseCode = 1005 // never on the wire: an empty close payload
	CloseAbnormal           CloseCode = 1006 // never on the wire: no close frame at all
	CloseInvalidPayload     CloseCode = 1007
	ClosePolicyViolation    CloseCode = 1008
	CloseMessageTooBig      CloseCode = 1009
	CloseMandatoryExtension CloseCode = 1010
	CloseInternalError      CloseCode = 1011
	CloseServiceRestart     CloseCode = 1012
	CloseTryAgainLater      CloseCode = 1013
	CloseBadGateway         CloseCode = 1014
	CloseTLSHandshake       CloseCode = 1015 // never on the wire
)

// ValidOnWire reports whether c may appear in a close frame: the codes RFC 6455 §7.4.1
// and the IANA registry define for use in frames (1000-1003, 1007-1014), and the ranges
// §7.4.2 leaves to libraries and applications (3000-4999).
func (c CloseCode) ValidOnWire() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// Side names an endpoint of a WebSocket connection. Frames sent by the client are
// masked, frames sent by the server are not (RFC 6455 §5.1).
type Side uint8

// The two endpoints.
const (
	Client Side = iota + 1
	Server
)

// String returns "client" or "server".
func (s Side) String() string {
	switch s {
	case Client:
		return "client"
	case Server:
		return "server"
	}
	return "side-" + strconv.Itoa(int(s))
}
