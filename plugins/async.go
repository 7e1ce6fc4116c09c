package plugins

import (
	"sync"
	"time"
)

// Async is an [Observer] that hands events to another observer on a goroutine of
// its own, through a bounded queue, so that the front end calling it never waits for
// that observer: a UI, a network feed, anything that may be slow. When the queue is
// full, message events are dropped and counted ([Async.Dropped]); connection events
// (open, close) and capture events are always queued, being few.
//
// Records are copied into the queue, so the observer behind it may keep them. Call
// Close to deliver what is queued and stop the goroutine.
type Async struct {
	o         Observer
	maxEvents int
	maxBytes  int64

	mu      sync.Mutex
	queue   []asyncEvent
	bytes   int64 // payload bytes of the queued records
	dropped int64
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

type asyncKind uint8

const (
	asyncOpened asyncKind = iota
	asyncMessage
	asyncClosed
	asyncGap
	asyncResync
	asyncUndecodable
	asyncError
	asyncControls
	asyncRefused
)

// asyncEvent is one queued call.
type asyncEvent struct {
	kind   asyncKind
	conn   *Conn
	dir    Direction
	t      time.Time
	rec    *Record
	close  CloseEvent
	n      int64
	lost   bool
	reason string
	err    error
	ctl    ControlSummary
}

// NewAsync starts delivering events to o. At most maxEvents message events, holding
// at most maxBytes payload bytes, wait in the queue (at least one is always
// accepted).
func NewAsync(o Observer, maxEvents int, maxBytes int64) *Async {
	a := &Async{o: o, maxEvents: max(maxEvents, 1), maxBytes: max(maxBytes, 1),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go a.loop()
	return a
}

// Dropped returns how many message events were dropped because the queue was full.
func (a *Async) Dropped() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropped
}

// Close delivers the events still queued, then stops. Events after Close are
// dropped. It is safe to call more than once.
func (a *Async) Close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		a.signal()
	}
	a.mu.Unlock()
	<-a.done
}

// push queues e; a message event is dropped when the queue is full.
func (a *Async) push(e asyncEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if e.kind == asyncMessage {
		size := e.rec.size()
		if len(a.queue) > 0 && (len(a.queue) >= a.maxEvents || a.bytes+size > a.maxBytes) {
			a.dropped++
			return
		}
		a.bytes += size
	}
	a.queue = append(a.queue, e)
	a.signal()
}

// signal wakes the loop. Called with a.mu held.
func (a *Async) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Async) loop() {
	defer close(a.done)
	var batch []asyncEvent
	for range a.wake {
		for {
			a.mu.Lock()
			batch, a.queue = a.queue, batch[:0]
			a.bytes = 0
			closed := a.closed
			a.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			for i := range batch {
				a.deliver(&batch[i])
				batch[i] = asyncEvent{}
			}
		}
	}
}

func (a *Async) deliver(e *asyncEvent) {
	switch e.kind {
	case asyncOpened:
		a.o.Opened(e.conn, e.t)
	case asyncMessage:
		a.o.Message(e.rec)
	case asyncClosed:
		a.o.Closed(e.conn, e.close)
	case asyncGap:
		a.o.Gap(e.conn, e.dir, e.t, e.n, e.lost)
	case asyncResync:
		a.o.Resync(e.conn, e.dir, e.t, e.n)
	case asyncUndecodable:
		a.o.Undecodable(e.rec, e.reason)
	case asyncError:
		a.o.StreamError(e.conn, e.dir, e.t, e.err)
	case asyncControls:
		a.o.Controls(e.conn, e.dir, e.ctl)
	case asyncRefused:
		a.o.Refused(e.conn, e.t)
	}
}

// Opened queues the event.
func (a *Async) Opened(c *Conn, t time.Time) { a.push(asyncEvent{kind: asyncOpened, conn: c, t: t}) }

// Refused queues the event.
func (a *Async) Refused(c *Conn, t time.Time) { a.push(asyncEvent{kind: asyncRefused, conn: c, t: t}) }

// Message queues a copy of r, or drops it when the queue is full.
func (a *Async) Message(r *Record) {
	a.mu.Lock()
	full := a.closed || (len(a.queue) > 0 && (len(a.queue) >= a.maxEvents || a.bytes+r.size() > a.maxBytes))
	if full && !a.closed {
		a.dropped++
	}
	a.mu.Unlock()
	if full {
		return // do not copy what would be dropped
	}
	a.push(asyncEvent{kind: asyncMessage, rec: r.Clone()})
}

// Closed queues the event.
func (a *Async) Closed(c *Conn, ev CloseEvent) {
	a.push(asyncEvent{kind: asyncClosed, conn: c, close: ev})
}

// Gap queues the event.
func (a *Async) Gap(c *Conn, dir Direction, t time.Time, bytes int64, lost bool) {
	a.push(asyncEvent{kind: asyncGap, conn: c, dir: dir, t: t, n: bytes, lost: lost})
}

// Resync queues the event.
func (a *Async) Resync(c *Conn, dir Direction, t time.Time, skipped int64) {
	a.push(asyncEvent{kind: asyncResync, conn: c, dir: dir, t: t, n: skipped})
}

// Undecodable queues the event with a copy of r.
func (a *Async) Undecodable(r *Record, reason string) {
	a.push(asyncEvent{kind: asyncUndecodable, rec: r.Clone(), reason: reason})
}

// StreamError queues the event.
func (a *Async) StreamError(c *Conn, dir Direction, t time.Time, err error) {
	a.push(asyncEvent{kind: asyncError, conn: c, dir: dir, t: t, err: err})
}

// Controls queues the summary.
func (a *Async) Controls(c *Conn, dir Direction, s ControlSummary) {
	a.push(asyncEvent{kind: asyncControls, conn: c, dir: dir, ctl: s})
}

// size is the number of payload bytes r refers to.
func (r *Record) size() int64 {
	return int64(len(r.Payload) + len(r.Decoded) + len(r.Original) + len(r.OriginalDecoded) + len(r.WouldPayload) + len(r.WouldDecoded))
}

// Clone returns a copy of r that owns its payloads (one allocation for all of
// them), for observers that keep records after Message returns.
func (r *Record) Clone() *Record {
	c := *r
	buf := make([]byte, 0, r.size())
	keep := func(p []byte) []byte {
		if p == nil {
			return nil
		}
		buf = append(buf, p...)
		return buf[len(buf)-len(p) : len(buf) : len(buf)]
	}
	c.Payload, c.Decoded, c.Original = keep(r.Payload), keep(r.Decoded), keep(r.Original)
	c.OriginalDecoded, c.WouldPayload, c.WouldDecoded = keep(r.OriginalDecoded), keep(r.WouldPayload), keep(r.WouldDecoded)
	return &c
}

var _ Observer = (*Async)(nil)
