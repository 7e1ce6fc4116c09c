package sniff

import (
	"time"

	"github.com/wstap/wstap/plugins"
)

// CaptureObserver is an optional interface of the observers in [Config]: the events
// only a capture has. The event log and the terminal view (internal/eventlog)
// implement it. Like [plugins.Observer], implementations must not keep the
// *plugins.Record or its slices after returning.
type CaptureObserver interface {
	// Gap reports that bytes bytes of direction dir are missing from the capture
	// (a lost packet, or out-of-order data given up on). lost is true when a
	// message was in progress: that message is lost. The decoder then looks for
	// the next frame header, reported by Resync.
	Gap(c *plugins.Conn, dir plugins.Direction, t time.Time, bytes int64, lost bool)

	// Resync reports that the decoder found a frame header again after a gap or a
	// protocol error, skipping skipped bytes that could not be decoded.
	Resync(c *plugins.Conn, dir plugins.Direction, t time.Time, skipped int64)

	// Undecodable reports a message that was seen but cannot be shown, with the
	// reason: a compressed message whose inflate state is unknown (the capture
	// started mid-stream, or lost bytes, under context takeover; or the handshake
	// is missing). r has everything but the payload: Payload is nil and Len is the
	// compressed length.
	Undecodable(r *plugins.Record, reason string)

	// StreamError reports a protocol error in direction dir: the message in
	// progress is lost and the decoder resynchronises; or a message larger than
	// the limits, which is skipped.
	StreamError(c *plugins.Conn, dir plugins.Direction, t time.Time, err error)
}
