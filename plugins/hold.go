package plugins

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/wstap/wstap/wsframe"
)

// Order says what a message held at a [Breakpoint] does to the later messages of
// its direction.
type Order uint8

// Orders.
const (
	// StepOut takes the held message out of its stream: the later messages of its
	// direction go on, and it is sent when released, after them (out of order).
	StepOut Order = iota + 1
	// Strict holds the data messages of the direction behind it, in order, until
	// it is released, for protocols with sequence numbers. Control frames still
	// pass, and so does a message too large for the hooks (it streams through).
	Strict
)

// String returns "out" or "strict", as rules and the event log write them.
func (o Order) String() string {
	switch o {
	case StepOut:
		return "out"
	case Strict:
		return "strict"
	}
	return "order-" + strconv.Itoa(int(o))
}

// Breakpoint is a chain element that stops messages for a person to look at (the
// web UI's intercept, package intercept). When Break holds a message, the chain
// stops there: [Chain.Run] returns a [Result] with Hold set, the front end takes
// the message out of its stream and hands it to Hold as a [Held], and the
// elements after the breakpoint (and the Encode of the codecs before it) run when
// it is released ([Suspension.Resume]).
//
// Only live connections (Mode Proxy) are held: in a capture's dry run the chain
// passes over breakpoints. A front end that cannot hold messages must not put a
// Breakpoint in its chain.
type Breakpoint interface {
	// Name identifies the breakpoint in logs ("intercept").
	Name() string
	// Break reports whether m stops here and in which [Order]. m.Payload is the
	// message as the codecs before the breakpoint decoded it. Break is called on
	// the relay's goroutine: it must decide at once, never wait.
	Break(ctx context.Context, m *Message) (order Order, hold bool)
	// Hold takes a message Break stopped, once its record (Held set) went to the
	// observers. It must not block: the message waits until someone calls
	// h.Forward, h.Drop or h.Release, or its connection ends.
	Hold(h *Held)
	// Ended is called once for every message given to Hold, when its hold ended,
	// whatever ended it: a decision, or the end of its connection (the message is
	// then dropped).
	Ended(h *Held)
}

// Decision is what becomes of a held message.
type Decision struct {
	// Drop drops the message: it is never forwarded.
	Drop bool
	// Payload, when not nil, replaces the message in the form the breakpoint saw
	// it ([Held].Payload: what the codecs before the breakpoint decoded): the
	// hooks after the breakpoint see it, and the codecs before it encode it for
	// the wire, exactly as a replace hook's change would be. A Payload equal to
	// Held.Payload is no change: the original bytes go out.
	Payload []byte
	// Raw says Payload is the wire payload itself: it is sent as it is, with
	// neither the hooks after the breakpoint nor any codec.
	Raw bool
	// TimedOut says nobody decided in time: the message is forwarded unchanged
	// (Payload and Drop are ignored), and its record says so.
	TimedOut bool
}

// ErrNotHeld is the error of a decision about a message that is no longer held:
// someone else decided first, or its connection ended.
var ErrNotHeld = errors.New("plugins: the message is no longer held")

// HoldControl is the front end's side of a held message (the proxy implements
// it): it carries out decisions and says when the hold ended.
type HoldControl interface {
	// Release carries out d. It returns nil once the hold ended; an error leaves
	// the message held (an edit the codecs cannot encode), unless it wraps
	// [ErrNotHeld].
	Release(ctx context.Context, d Decision) error
	// Done is closed once the hold ended.
	Done() <-chan struct{}
}

// Held is a message held at a [Breakpoint]: taken out of its stream by the front
// end, it waits for a decision (forward it, as it was or edited, or drop it) or for
// its connection to end. Its fields are set by [NewHeld] and not changed
// afterwards; its methods are safe for concurrent use, and the first decision wins
// (later ones get [ErrNotHeld]).
type Held struct {
	Conn   *Conn
	Dir    Direction
	Opcode wsframe.Opcode
	// Seq is the sequence number of the message's record (the one with Held
	// set); the record of its release names it in HeldSeq.
	Seq   uint64
	Time  time.Time // when it arrived
	Order Order
	// Payload is the message as the breakpoint saw it: what the codecs before it
	// decoded, with the changes of the hooks before it. An edit is written in
	// this form ([Decision].Payload).
	Payload []byte
	// Wire is the payload as it arrived (unmasked and inflated, before any codec).
	Wire []byte
	// Codecs names the codecs before the breakpoint that decoded the message,
	// outermost first: an edit is encoded by them, innermost first.
	Codecs []string

	bp   Breakpoint
	ctl  HoldControl
	susp *Suspension
}

// NewHeld returns the held message of s, whose record has sequence number seq,
// controlled by ctl. Front ends call it; the breakpoint gets it through Hold.
func NewHeld(s *Suspension, seq uint64, ctl HoldControl) *Held {
	h := &Held{Conn: s.msg.Conn, Dir: s.msg.Dir, Opcode: s.msg.Opcode, Seq: seq, Time: s.msg.Time, Order: s.order,
		Payload: s.cur, Wire: s.wire, bp: s.bp, ctl: ctl, susp: s}
	for _, l := range s.stack {
		h.Codecs = append(h.Codecs, l.name)
	}
	return h
}

// Breakpoint returns the breakpoint that holds h.
func (h *Held) Breakpoint() Breakpoint { return h.bp }

// Forward sends the message on: as it was with a nil payload, or with payload in
// place of [Held].Payload (see [Decision]).
func (h *Held) Forward(ctx context.Context, payload []byte) error {
	return h.ctl.Release(ctx, Decision{Payload: payload})
}

// Drop drops the message: it is never forwarded.
func (h *Held) Drop(ctx context.Context) error { return h.ctl.Release(ctx, Decision{Drop: true}) }

// Release carries out d (see [Decision]).
func (h *Held) Release(ctx context.Context, d Decision) error { return h.ctl.Release(ctx, d) }

// Done is closed once the hold ended: the message was forwarded or dropped, or its
// connection ended.
func (h *Held) Done() <-chan struct{} { return h.ctl.Done() }

// Edited reports whether p, a decision's payload, changes the message.
func (h *Held) Edited(p []byte) bool { return p != nil && !bytes.Equal(p, h.Payload) }

// Suspension is a message a [Breakpoint] stopped halfway through a [Chain], with
// what the chain needs to finish its trip once released ([Suspension.Resume]). It
// owns its bytes (the front end may reuse the message's buffers).
type Suspension struct {
	chain     *Chain
	at        int // the breakpoint's index in chain.elems
	bp        Breakpoint
	order     Order
	msg       Message // Payload nil
	stack     []layer // the codecs that decoded the message before the breakpoint
	cur       []byte  // the payload at the breakpoint
	rootDirty bool    // a hook before the first codec changed the wire payload
	wire      []byte  // the payload as it arrived
}

// Breakpoint returns the breakpoint that stopped the message.
func (s *Suspension) Breakpoint() Breakpoint { return s.bp }

// Order returns the order the breakpoint asked for.
func (s *Suspension) Order() Order { return s.order }

// Decoded returns what the innermost codec before the breakpoint decoded, before
// any hook changed it; nil when no codec decoded the message.
func (s *Suspension) Decoded() []byte {
	if len(s.stack) == 0 {
		return nil
	}
	return s.stack[len(s.stack)-1].out
}

// suspend copies the state of a message stopped at element at into a Suspension.
func (c *Chain) suspend(m *Message, st *runState, at int, bp Breakpoint, order Order, wire []byte) *Suspension {
	n := len(wire) + len(st.cur)
	for _, l := range st.stack {
		n += len(l.in) + len(l.out)
	}
	buf := make([]byte, 0, n)
	keep := func(p []byte) []byte {
		if p == nil {
			return nil
		}
		buf = append(buf, p...)
		return buf[len(buf)-len(p) : len(buf) : len(buf)]
	}
	s := &Suspension{chain: c, at: at, bp: bp, order: order, msg: *m, rootDirty: st.rootDirty}
	s.msg.Payload = nil
	s.wire, s.cur = keep(wire), keep(st.cur)
	if s.cur == nil {
		s.cur = []byte{}
	}
	for _, l := range st.stack {
		l.in, l.out = keep(l.in), keep(l.out)
		s.stack = append(s.stack, l)
	}
	return s
}

// Resume finishes the trip of the held message through the chain, with payload in
// place of the one at the breakpoint (nil, or the same bytes: unchanged): the
// elements after the breakpoint run (other breakpoints are passed over: the
// message was released), then the codecs whose output changed encode again,
// innermost first, and unchanged layers keep their original bytes. The result is
// that of [Chain.Run]: Pass forwards the original wire payload (Wire), Modify
// forwards Payload, Drop nothing.
//
// Hook errors follow the chain's [ErrorPolicy]; an Encode error is returned
// whatever the policy (the message cannot be sent as asked, and stays held). It
// may be called again after an error.
func (s *Suspension) Resume(ctx context.Context, payload []byte) (Result, error) {
	c := s.chain
	st := runState{stack: append([]layer(nil), s.stack...), cur: s.cur, rootDirty: s.rootDirty}
	if payload != nil && !bytes.Equal(payload, s.cur) {
		st.cur = payload
		st.markDirty()
	}
	m := s.msg
	m.Payload = s.wire
	if _, err := c.walk(ctx, &m, &st, s.at+1, false); err != nil {
		return Result{}, err
	}
	if st.res.Action == Drop {
		return st.res, nil
	}
	return c.unwind(ctx, &m, &st, true)
}
