package plugins

import (
	"time"

	"github.com/wstap/wstap/wsframe"
)

// Observer sees every connection event after the chain's final verdict: the event
// log, the terminal view and the UI's history are observers. Every front end reports
// through the same interface, so an observer cannot miss a kind of event by
// forgetting to look for it: the capture-only events (Gap, Resync, Undecodable,
// StreamError) are methods of every observer, which the proxy never calls.
//
// Methods are called concurrently for different connections and directions, so
// implementations must be safe for concurrent use. They are called outside every
// lock of the front end, so an observer may call [Conn.Inject] or [Conn.Close]; but
// they are called on the relay's goroutines: an observer that may be slow (it waits
// for I/O, a person or a network) must sit behind [NewAsync]. They must not keep a
// *Record or its slices after returning (front ends reuse them for the next message).
type Observer interface {
	// Opened reports a new WebSocket connection, before its first message.
	Opened(c *Conn, t time.Time)
	// Refused reports an upgrade that did not become a WebSocket: the server (or
	// wstap: a hook refused it, the server could not be reached) answered with
	// something other than 101. c holds the request and that answer (Status,
	// Reason, Response); it gets an id but no messages or close.
	Refused(c *Conn, t time.Time)
	// Message reports a message (data or control) after the chain's verdict.
	Message(r *Record)
	// Closed reports the end of a connection, once.
	Closed(c *Conn, ev CloseEvent)

	// Gap reports that bytes bytes of direction dir are missing from a capture (a
	// lost packet, or out-of-order data given up on). lost is true when a message
	// was in progress: that message is lost. The decoder then looks for the next
	// frame header, reported by Resync.
	Gap(c *Conn, dir Direction, t time.Time, bytes int64, lost bool)
	// Resync reports that a capture's decoder found a frame header again after a
	// gap or a protocol error, skipping skipped bytes that could not be decoded.
	Resync(c *Conn, dir Direction, t time.Time, skipped int64)
	// Undecodable reports a captured message that was seen but cannot be shown,
	// with the reason (a compressed message whose inflate state is unknown). r has
	// everything but the payload: Payload is nil and Len is the compressed length.
	Undecodable(r *Record, reason string)
	// StreamError reports a protocol error in a capture's direction dir: the
	// message in progress is lost and the decoder resynchronises; or a message
	// larger than the limits, which is skipped.
	StreamError(c *Conn, dir Direction, t time.Time, err error)

	// Controls reports pings or pongs that were counted instead of reported one by
	// one (see [Pipeline.ControlBurst]): a flood of them must not flood the log.
	Controls(c *Conn, dir Direction, s ControlSummary)
}

// ControlSummary counts the pings or pongs of one direction that were not reported
// one by one.
type ControlSummary struct {
	Opcode            wsframe.Opcode // OpPing or OpPong
	Count, Bytes      int64          // frames and payload bytes
	First, Last       time.Time
	FirstSeq, LastSeq uint64
}

// Record is what happened to one message.
type Record struct {
	Conn   *Conn
	Dir    Direction
	Seq    uint64
	Opcode wsframe.Opcode
	Time   time.Time

	// Payload is the application payload as forwarded (as received when dropped,
	// and always in sniff mode), possibly cut short when Truncated. Len is its full
	// length.
	Payload   []byte
	Len       int64
	Truncated bool
	// Decoded is what the codecs decoded from Payload, after the hooks (the
	// forwarded message in plaintext); nil when no codec decoded the message.
	Decoded []byte

	// Original and OriginalLen are the payload as received, when the chain changed
	// it (Modified); nil and 0 otherwise.
	Original    []byte
	OriginalLen int64
	// OriginalDecoded is what the codecs decoded from the message as received,
	// when the hooks changed that (Modified or Dropped after a change); nil
	// otherwise.
	OriginalDecoded []byte
	// DecodeError names the codec that could not decode the message: the elements
	// after it up to the next scope did not see it.
	DecodeError string

	Frames     int  // number of frames the message arrived in
	Compressed bool // permessage-deflate was applied on the wire

	Modified, Dropped, Injected bool
	// Hooked is false when the message bypassed the hooks (too large, or a control
	// frame).
	Hooked bool

	// In sniff mode the chain only observes: WouldModify and WouldDrop say what its
	// verdict would have done to a live connection (a dry run of the rules),
	// WouldPayload and WouldDecoded are the payload it would have forwarded, and
	// WouldInject counts the messages it would have injected.
	WouldModify, WouldDrop bool
	WouldPayload           []byte
	WouldDecoded           []byte
	WouldInject            int

	// A message a [Breakpoint] held has two records. The first, when it arrived,
	// has Held set, with the HoldOrder asked for: it was not forwarded. The
	// second, when the hold ended, has Released set and HeldSeq naming the first,
	// and says what was forwarded like any record (Payload, Decoded, Modified,
	// Original…) or that it was Dropped; Edited when someone changed it, TimedOut
	// when nobody decided in time (it was forwarded unchanged), OutOfOrder when
	// later messages of its direction went out before it, and ConnClosed when its
	// connection ended first (Dropped). A message that waited behind a held one
	// (order strict) and never went out has Dropped and ConnClosed.
	Held                                     bool
	HoldOrder                                Order
	Released                                 bool
	HeldSeq                                  uint64
	Edited, TimedOut, OutOfOrder, ConnClosed bool
}

// CloseEvent is the end of a connection.
type CloseEvent struct {
	Time   time.Time
	Code   wsframe.CloseCode // CloseAbnormal (1006) when no close frame was seen
	Reason string
	By     string // "client", "server" or "proxy"
}

// Observers fans events out to several observers in order.
type Observers []Observer

// Opened calls Opened on each observer.
func (os Observers) Opened(c *Conn, t time.Time) {
	for _, o := range os {
		o.Opened(c, t)
	}
}

// Refused calls Refused on each observer.
func (os Observers) Refused(c *Conn, t time.Time) {
	for _, o := range os {
		o.Refused(c, t)
	}
}

// Message calls Message on each observer.
func (os Observers) Message(r *Record) {
	for _, o := range os {
		o.Message(r)
	}
}

// Closed calls Closed on each observer.
func (os Observers) Closed(c *Conn, ev CloseEvent) {
	for _, o := range os {
		o.Closed(c, ev)
	}
}

// Gap calls Gap on each observer.
func (os Observers) Gap(c *Conn, dir Direction, t time.Time, bytes int64, lost bool) {
	for _, o := range os {
		o.Gap(c, dir, t, bytes, lost)
	}
}

// Resync calls Resync on each observer.
func (os Observers) Resync(c *Conn, dir Direction, t time.Time, skipped int64) {
	for _, o := range os {
		o.Resync(c, dir, t, skipped)
	}
}

// Undecodable calls Undecodable on each observer.
func (os Observers) Undecodable(r *Record, reason string) {
	for _, o := range os {
		o.Undecodable(r, reason)
	}
}

// StreamError calls StreamError on each observer.
func (os Observers) StreamError(c *Conn, dir Direction, t time.Time, err error) {
	for _, o := range os {
		o.StreamError(c, dir, t, err)
	}
}

// Controls calls Controls on each observer.
func (os Observers) Controls(c *Conn, dir Direction, s ControlSummary) {
	for _, o := range os {
		o.Controls(c, dir, s)
	}
}

var _ Observer = Observers(nil)

// NopObserver implements every [Observer] method as a no-op. Embed it in an observer
// that cares about some events only, and say in its documentation which ones it
// ignores: embedding it opts out of the compile-time check that an observer
// handles every kind of event.
type NopObserver struct{}

// Opened does nothing.
func (NopObserver) Opened(*Conn, time.Time) {}

// Refused does nothing.
func (NopObserver) Refused(*Conn, time.Time) {}

// Message does nothing.
func (NopObserver) Message(*Record) {}

// Closed does nothing.
func (NopObserver) Closed(*Conn, CloseEvent) {}

// Gap does nothing.
func (NopObserver) Gap(*Conn, Direction, time.Time, int64, bool) {}

// Resync does nothing.
func (NopObserver) Resync(*Conn, Direction, time.Time, int64) {}

// Undecodable does nothing.
func (NopObserver) Undecodable(*Record, string) {}

// StreamError does nothing.
func (NopObserver) StreamError(*Conn, Direction, time.Time, error) {}

// Controls does nothing.
func (NopObserver) Controls(*Conn, Direction, ControlSummary) {}

var _ Observer = NopObserver{}
