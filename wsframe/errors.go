package wsframe

import (
	"errors"
	"io"
)

// ProtocolError is a violation of RFC 6455 or RFC 7692 by the peer, or a limit it
// exceeded. Code is the close code to send it. The exported Err values are
// *ProtocolError sentinels; the package wraps them with details, so match them with
// [errors.Is] and read the code with [errors.As] or [CloseCodeOf].
type ProtocolError struct {
	Code CloseCode
	Msg  string
}

func (e *ProtocolError) Error() string { return "wsframe: " + e.Msg }

// Header and framing violations (close code 1002).
var (
	ErrReservedOpcode      = &ProtocolError{CloseProtocolError, "reserved opcode"}
	ErrReservedBits        = &ProtocolError{CloseProtocolError, "RSV bit set without a negotiated extension"}
	ErrUnmaskedClientFrame = &ProtocolError{CloseProtocolError, "client frame is not masked"}
	ErrMaskedServerFrame   = &ProtocolError{CloseProtocolError, "server frame is masked"}
	ErrNonMinimalLength    = &ProtocolError{CloseProtocolError, "payload length not in its minimal encoding"}
	ErrLengthMSB           = &ProtocolError{CloseProtocolError, "64-bit payload length has its most significant bit set"}
	ErrControlTooLong      = &ProtocolError{CloseProtocolError, "control frame payload longer than 125 bytes"}
	ErrFragmentedControl   = &ProtocolError{CloseProtocolError, "fragmented control frame"}
	ErrControlCompressed   = &ProtocolError{CloseProtocolError, "control frame with RSV1 set"}
	ErrUnexpectedContinue  = &ProtocolError{CloseProtocolError, "continuation frame without a message to continue"}
	ErrExpectedContinue    = &ProtocolError{CloseProtocolError, "new data frame inside a fragmented message"}
	ErrContinuationRSV1    = &ProtocolError{CloseProtocolError, "continuation frame with RSV1 set"}
	ErrClosePayload        = &ProtocolError{CloseProtocolError, "close payload of one byte"}
	ErrCloseCode           = &ProtocolError{CloseProtocolError, "close code not allowed on the wire"}
	ErrBadDeflate          = &ProtocolError{CloseProtocolError, "invalid permessage-deflate data"}
)

// Payload violations (close code 1007).
var (
	ErrInvalidUTF8      = &ProtocolError{CloseInvalidPayload, "text message is not valid UTF-8"}
	ErrInvalidCloseUTF8 = &ProtocolError{CloseInvalidPayload, "close reason is not valid UTF-8"}
)

// Limits (close code 1009).
var (
	ErrFrameTooBig   = &ProtocolError{CloseMessageTooBig, "frame exceeds the size limit"}
	ErrMessageTooBig = &ProtocolError{CloseMessageTooBig, "message exceeds the size limit"}
	ErrTooManyFrames = &ProtocolError{CloseMessageTooBig, "message exceeds the fragment limit"}
	ErrInflateTooBig = &ProtocolError{CloseMessageTooBig, "inflated message exceeds the size limit"}
)

// CloseCodeOf returns the close code that fits err when a connection ends because of
// it: the code of a [*ProtocolError], [CloseAbnormal] for a connection that ended
// without a close frame (io.EOF, io.ErrUnexpectedEOF), and [CloseInternalError]
// otherwise. CloseAbnormal must never be sent on the wire: an intermediary tells the
// other side [CloseGoingAway] instead.
func CloseCodeOf(err error) CloseCode {
	var pe *ProtocolError
	switch {
	case err == nil:
		return CloseNormal
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return CloseAbnormal
	}
	return CloseInternalError
}
