package plugins

import (
	"time"

	"github.com/wstap/wstap/wsframe"
)

// Observer sees every connection event after the chain's final verdict: the event
// log and the terminal view are observers. Methods are called concurrently for
// different connections and directions, so implementations must be safe for
// concurrent use; they must not keep a *Record or its slices after returning (the
// proxy reuses them for the next message).
type Observer interface {
	Opened(c *Conn, t time.Time)
	Message(r *Record)
	Closed(c *Conn, ev CloseEvent)
}

// Record is what happened to one message.
type Record struct {
	Conn   *Conn
	Dir    Direction
	Seq    uint64
	Opcode wsframe.Opcode
	Time   time.Time

	// Payload is the application payload as forwarded (as received when dropped),
	// possibly cut short when Truncated. Len is its full length.
	Payload   []byte
	Len       int64
	Truncated bool

	// Decoded is what the codecs decoded, when any did.
	Decoded []byte

	Frames     int  // number of frames the message arrived in
	Compressed bool // permessage-deflate was applied on the wire

	Modified, Dropped, Injected bool
	// Hooked is false when the message bypassed the hooks (too large, or a control
	// frame).
	Hooked bool
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

var _ Observer = Observers(nil)
