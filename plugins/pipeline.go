package plugins

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/wsframe"
)

// DefaultMaxHookMessage is the default of [Pipeline.MaxHookMessage].
const DefaultMaxHookMessage = 16 << 20

// PreviewBytes is how much of a message that bypasses the hooks is recorded.
const PreviewBytes = 4 << 10

// Pipeline is the step after the frame parser that every front end shares (the
// proxy, the sniffer, the client): it applies the hook size limit, runs the chain,
// builds the [Record] and notifies the observers. Front ends own sockets and bytes;
// the Pipeline owns what happens to a message and what is said about it.
//
// A Pipeline is safe for concurrent use; each direction of each connection gets its
// own [Stream].
type Pipeline struct {
	// Chain runs on every data message that fits MaxHookMessage; nil passes all.
	Chain *Chain
	// Observer sees every event; nil means none.
	Observer Observer
	// MaxHookMessage is the largest payload passed to the chain; larger messages
	// are recorded with Hooked false and a preview of PreviewBytes. 0 means
	// DefaultMaxHookMessage.
	MaxHookMessage int64
	// Logger receives the pipeline's warnings (a message too large for the
	// hooks, once per connection); nil discards them.
	Logger *slog.Logger

	// ControlBurst, when positive, is how many pings and pongs a second each
	// direction records one by one; past it they are counted, and reported
	// together (Observer.Controls) when the second is over, or before the next
	// message or the close: a million pings then cost a few lines of log, not a
	// million. 0 records every one.
	ControlBurst int
}

// DefaultControlBurst is the ControlBurst the command line uses unless asked to log
// every control frame.
const DefaultControlBurst = 5

// controlWindow is the interval ControlBurst counts in.
const controlWindow = time.Second

func (p *Pipeline) observer() Observer {
	if p.Observer == nil {
		return Observers(nil)
	}
	return p.Observer
}

func (p *Pipeline) maxHook() int64 {
	if p.MaxHookMessage <= 0 {
		return DefaultMaxHookMessage
	}
	return p.MaxHookMessage
}

// Open announces a new connection to the observers, then to the chain's OpenHooks.
func (p *Pipeline) Open(ctx context.Context, c *Conn, t time.Time) {
	p.observer().Opened(c, t)
	p.Chain.Opened(ctx, c)
}

// Refused reports an upgrade that did not become a WebSocket (see
// [Observer].Refused).
func (p *Pipeline) Refused(c *Conn, t time.Time) {
	p.observer().Refused(c, t)
}

// Close reports the end of a connection to the chain's CloseHooks, then to the
// observers, after the counted pings and pongs of streams (the connection's
// streams; call it when they are done).
func (p *Pipeline) Close(ctx context.Context, c *Conn, ev CloseEvent, streams ...*Stream) {
	for _, s := range streams {
		if s != nil {
			s.flushControls()
		}
	}
	p.Chain.Closed(ctx, c, ev.Code, ev.Reason)
	p.observer().Closed(c, ev)
}

// Stream returns the pipeline of direction dir of connection c.
func (p *Pipeline) Stream(c *Conn, dir Direction) *Stream {
	return &Stream{p: p, conn: c, dir: dir, obs: p.observer(), maxHook: p.maxHook(), burst: p.ControlBurst}
}

// Stream runs the messages of one direction of one connection through a
// [Pipeline]. Message, Control, Streamed and Undecodable reuse one Record and must
// be called by one goroutine at a time (the one that reads the direction);
// NextSeq, Injected and Emit may be called from any goroutine.
type Stream struct {
	p       *Pipeline
	conn    *Conn
	dir     Direction
	obs     Observer
	maxHook int64
	burst   int // see Pipeline.ControlBurst
	seq     atomic.Uint64

	rec Record
	msg Message

	// Pings and pongs: when the current window began, how many were recorded in
	// it, and those counted instead (0: ping, 1: pong). ctlMu guards counted, which
	// Pipeline.Close may flush from another goroutine.
	ctlMu    sync.Mutex
	ctlStart time.Time
	ctlShown int
	counted  [2]ControlSummary
}

// NextSeq returns the next sequence number of the direction, from 0.
func (s *Stream) NextSeq() uint64 { return s.seq.Add(1) - 1 }

// Emit hands a record to the observers; a nil record (a counted ping) is skipped.
// Call it outside any lock the observers might need (they may inject or close).
func (s *Stream) Emit(r *Record) {
	if r == nil {
		return
	}
	s.obs.Message(r)
	if r == &s.rec {
		// Observers are done with it: do not pin the payload until the next message.
		s.rec, s.msg = Record{}, Message{}
	}
}

// Effects are what a front end does for a message besides forwarding it (or not).
type Effects struct {
	// Inject are the messages the hooks asked to send after it.
	Inject []Injection
	// Hold, when not nil, says a [Breakpoint] held the message (its record has
	// Held set): nothing is forwarded now. The front end takes it out of its
	// stream and hands it to Hold.Breakpoint() as a [Held] ([NewHeld]).
	Hold *Suspension
}

// Message runs an assembled data message through the chain, when it fits under the
// hook limit, and returns its record, in which the caller finds the verdict to
// apply: Dropped, Held (see [Effects].Hold), or Modified with the new wire Payload
// (otherwise the message goes on unchanged); and the messages the hooks asked to
// inject. In sniff mode the verdict is recorded as a dry run (Would…) and nothing
// is to be applied.
//
// The error is non-nil only under [FailClose], when a plugin failed: the caller
// closes the connection. The record is valid until the next call; Emit it first.
func (s *Stream) Message(ctx context.Context, m *wsframe.Message, t time.Time) (*Record, Effects, error) {
	return s.message(ctx, m, t, &s.rec, &s.msg)
}

// Detached is [Stream.Message] for a message processed away from the goroutine
// that reads the direction: one that waited behind a held message and is released
// after it. Its record is its own (not reused), and the caller makes sure that no
// other message of the direction goes through the chain meanwhile.
func (s *Stream) Detached(ctx context.Context, m *wsframe.Message, t time.Time) (*Record, Effects, error) {
	return s.message(ctx, m, t, new(Record), new(Message))
}

func (s *Stream) message(ctx context.Context, m *wsframe.Message, t time.Time, rec *Record, msg *Message) (*Record, Effects, error) {
	s.flushControls()
	*rec = Record{Conn: s.conn, Dir: s.dir, Seq: s.NextSeq(), Opcode: m.Opcode, Time: t,
		Payload: m.Payload, Len: int64(len(m.Payload)), Frames: len(m.Frames), Compressed: m.Compressed,
		Hooked: int64(len(m.Payload)) <= s.maxHook}
	if !rec.Hooked {
		rec.Payload, rec.Truncated = textPrefix(m.Opcode, m.Payload[:PreviewBytes]), true
		s.bypassed(rec.Len)
		return rec, Effects{}, nil
	}
	if s.p.Chain.Len() == 0 {
		return rec, Effects{}, nil
	}
	*msg = Message{Conn: s.conn, Dir: s.dir, Opcode: m.Opcode, Payload: m.Payload, Time: t, Seq: rec.Seq}
	res, err := s.p.Chain.Run(ctx, msg)
	if err != nil {
		return rec, Effects{}, err
	}
	rec.DecodeError = res.DecodeError
	if s.conn.Mode == Sniff {
		// Nothing can change a capture: record what the rules would have done.
		rec.Decoded = res.OriginalDecoded
		switch res.Action {
		case Modify:
			rec.WouldModify, rec.WouldPayload = true, res.Payload
			if !bytes.Equal(res.Decoded, res.OriginalDecoded) {
				rec.WouldDecoded = res.Decoded
			}
		case Drop:
			rec.WouldDrop = true
		}
		rec.WouldInject = len(res.Inject)
		return rec, Effects{}, nil
	}
	rec.Decoded = res.Decoded
	if res.Hold != nil {
		rec.Held, rec.HoldOrder = true, res.Hold.Order()
		return rec, Effects{Inject: res.Inject, Hold: res.Hold}, nil
	}
	switch res.Action {
	case Modify:
		rec.Modified = true
		rec.Original, rec.OriginalLen = rec.Payload, rec.Len
		rec.Payload, rec.Len = res.Payload, int64(len(res.Payload))
	case Drop:
		rec.Dropped = true
	}
	if res.Action != Pass && !bytes.Equal(res.Decoded, res.OriginalDecoded) {
		rec.OriginalDecoded = res.OriginalDecoded
	}
	return rec, Effects{Inject: res.Inject}, nil
}

// Release says how the hold of a message ended, for the record of its release
// ([Stream.Released]).
type Release struct {
	// Decision is the decision carried out; Drop when the connection ended first.
	Decision Decision
	// Result is the chain's result ([Suspension.Resume]) for a message forwarded
	// through the chain; ignored when Decision.Drop or Decision.Raw.
	Result Result
	// OutOfOrder says later messages of its direction were forwarded before it.
	OutOfOrder bool
	// ConnClosed says its connection ended while it was held: it was dropped.
	ConnClosed bool
	// Frames is the number of frames it went out in; Compressed whether
	// permessage-deflate was applied to it.
	Frames     int
	Compressed bool
}

// Released returns the record of the end of h's hold: what was forwarded (or that
// it was dropped), with Released and HeldSeq set, seq its sequence number (taken
// when it went out, as an injection's) and t the time. Unlike Message's, the record
// is not reused.
func (s *Stream) Released(h *Held, rel Release, seq uint64, t time.Time) *Record {
	d := rel.Decision
	rec := &Record{Conn: s.conn, Dir: s.dir, Seq: seq, Opcode: h.Opcode, Time: t, Payload: h.Wire, Len: int64(len(h.Wire)),
		Frames: rel.Frames, Compressed: rel.Compressed, Hooked: true, Released: true, HeldSeq: h.Seq,
		TimedOut: d.TimedOut, OutOfOrder: rel.OutOfOrder, ConnClosed: rel.ConnClosed}
	decoded := h.susp.Decoded()
	res := rel.Result
	switch {
	case d.Drop:
		rec.Dropped, rec.Decoded = true, decoded
		return rec
	case d.Raw:
		rec.Edited = !bytes.Equal(d.Payload, h.Wire)
		if rec.Edited {
			rec.Modified = true
			rec.Original, rec.OriginalLen = h.Wire, int64(len(h.Wire))
			rec.Payload, rec.Len = d.Payload, int64(len(d.Payload))
			rec.OriginalDecoded = decoded
		} else {
			rec.Decoded = decoded
		}
		return rec
	}
	rec.Edited = !d.TimedOut && h.Edited(d.Payload)
	rec.Decoded, rec.DecodeError = res.Decoded, res.DecodeError
	switch res.Action {
	case Modify:
		rec.Modified = true
		rec.Original, rec.OriginalLen = rec.Payload, rec.Len
		rec.Payload, rec.Len = res.Payload, int64(len(res.Payload))
	case Drop:
		rec.Dropped = true
	}
	if res.Action != Pass && !bytes.Equal(res.Decoded, res.OriginalDecoded) {
		rec.OriginalDecoded = res.OriginalDecoded
	}
	return rec
}

// Unsent returns the record of a data message that waited behind a held one
// (order strict) and was never forwarded, its connection having ended first:
// Dropped and ConnClosed, not seen by the hooks. The record is not reused.
func (s *Stream) Unsent(m *wsframe.Message, t time.Time) *Record {
	rec := &Record{Conn: s.conn, Dir: s.dir, Seq: s.NextSeq(), Opcode: m.Opcode, Time: t, Payload: m.Payload, Len: int64(len(m.Payload)),
		Frames: len(m.Frames), Compressed: m.Compressed, Dropped: true, ConnClosed: true}
	if int64(len(m.Payload)) > s.maxHook {
		rec.Payload, rec.Truncated = textPrefix(m.Opcode, m.Payload[:min(len(m.Payload), PreviewBytes)]), true
	}
	return rec
}

// Control records a control frame (ping, pong, close), which bypasses the hooks.
// For a close frame it also returns the close it announces (ok true). rec is nil
// for a ping or pong past the burst (see [Pipeline.ControlBurst]): it was counted,
// and the count is reported later. The record is valid until the next call.
func (s *Stream) Control(m *wsframe.Message, t time.Time) (rec *Record, ev CloseEvent, ok bool) {
	seq := s.NextSeq()
	if m.Opcode == wsframe.OpClose {
		s.flushControls()
		code, reason, _ := wsframe.ParseClose(m.Payload)
		ev, ok = CloseEvent{Time: t, Code: code, Reason: reason, By: s.dir.Sender().String()}, true
	} else if s.burst > 0 {
		if t.Sub(s.ctlStart) >= controlWindow || t.Before(s.ctlStart) {
			s.flushControls()
			s.ctlStart, s.ctlShown = t, 0
		}
		if s.ctlShown >= s.burst {
			s.ctlMu.Lock()
			c := &s.counted[0]
			if m.Opcode == wsframe.OpPong {
				c = &s.counted[1]
			}
			if c.Count == 0 {
				*c = ControlSummary{Opcode: m.Opcode, First: t, FirstSeq: seq}
			}
			c.Count++
			c.Bytes += int64(len(m.Payload))
			c.Last, c.LastSeq = t, seq
			s.ctlMu.Unlock()
			return nil, ev, ok
		}
		s.ctlShown++
	}
	rec = &s.rec
	*rec = Record{Conn: s.conn, Dir: s.dir, Seq: seq, Opcode: m.Opcode, Time: t,
		Payload: m.Payload, Len: int64(len(m.Payload)), Frames: 1}
	return rec, ev, ok
}

// bypassed warns, once per connection, that a message of n bytes went past the
// hooks because of the size limit: a rule that silently does not apply would
// mislead (the record says so too: Hooked is false).
func (s *Stream) bypassed(n int64) {
	if s.p.Chain.Len() == 0 || s.p.Logger == nil || !s.conn.once("hook-limit") {
		return
	}
	s.p.Logger.Warn("message above the hook limit: the hooks do not see it (raise --max-hook-message; logged once per connection)",
		"conn", s.conn.ID, "dir", s.dir.String(), "len", n, "limit", s.maxHook)
}

// flushControls reports the pings and pongs counted so far.
func (s *Stream) flushControls() {
	s.ctlMu.Lock()
	counted := s.counted
	s.counted = [2]ControlSummary{}
	s.ctlMu.Unlock()
	for _, c := range counted {
		if c.Count > 0 {
			s.obs.Controls(s.conn, s.dir, c)
		}
	}
}

// Streamed records a message that went through without the hooks because it was
// too large to hold: preview is its beginning (at most PreviewBytes are kept), n its
// full length, seq the number NextSeq gave it when it completed on the wire (a
// front end takes it there, so that injections queued behind the message follow
// it). The record is valid until the next call.
func (s *Stream) Streamed(op wsframe.Opcode, preview []byte, n int64, frames int, compressed bool, seq uint64, t time.Time) *Record {
	s.flushControls()
	rec := &s.rec
	preview = preview[:min(len(preview), PreviewBytes)]
	*rec = Record{Conn: s.conn, Dir: s.dir, Seq: seq, Opcode: op, Time: t,
		Payload: textPrefix(op, preview), Len: n, Truncated: n > int64(len(preview)), Frames: frames, Compressed: compressed}
	s.bypassed(n)
	return rec
}

// Undecodable reports a message that was seen but cannot be shown, with the reason
// (see [Observer]): m's payload is not recorded, and its length is the wire length.
func (s *Stream) Undecodable(m *wsframe.Message, t time.Time, reason string) {
	s.flushControls()
	rec := &s.rec
	*rec = Record{Conn: s.conn, Dir: s.dir, Seq: s.NextSeq(), Opcode: m.Opcode, Time: t,
		Len: int64(len(m.Wire)), Frames: len(m.Frames), Compressed: m.Compressed}
	s.obs.Undecodable(rec, reason)
}

// Injected returns a new record for an injected message: wire is what was sent,
// plaintext what the codecs encoded into it (nil when the payload was sent as
// given). Unlike the other records it is not reused.
func (s *Stream) Injected(op wsframe.Opcode, wire, plaintext []byte, seq uint64, t time.Time) *Record {
	return &Record{Conn: s.conn, Dir: s.dir, Seq: seq, Opcode: op, Time: t,
		Payload: wire, Len: int64(len(wire)), Decoded: plaintext, Frames: 1, Injected: true}
}

// textPrefix cuts a text payload back to a whole UTF-8 sequence, so that a preview
// ending in the middle of a character is still logged as text.
func textPrefix(op wsframe.Opcode, p []byte) []byte {
	if op != wsframe.OpText {
		return p
	}
	for i := 0; i < utf8.UTFMax && len(p) > 0 && !utf8.Valid(p); i++ {
		p = p[:len(p)-1]
	}
	return p
}
