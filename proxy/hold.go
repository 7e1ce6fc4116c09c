package proxy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Holding messages at a breakpoint (plugins.Breakpoint, the web UI's intercept).
//
// The pump never waits for a person. A held message leaves its stream at once (the
// pump goes on reading: control frames always pass) and waits in a heldMsg until
// someone decides (plugins.Held.Release, on an API goroutine, or the breakpoint's
// timeout), or the session ends. It is then sent the way injections are: by the
// deciding goroutine, under the leg's lock, serialised with the relayed messages.
//
// With order=strict the direction's data messages must not overtake it: the pump
// queues them in the direction's gate instead of running them through the chain,
// and the goroutine that releases the held message runs them through the chain and
// out, in order, after it (drain), until the queue is empty or one of them is held
// again. So within a direction messages still go through the chain one at a time,
// in order.

// Bounds of a gate's queue: past them the pump waits for room (the peer then sees
// backpressure, as from a slow receiver), reading nothing from that direction.
const (
	maxGateMessages = 4096
	maxGateBytes    = 64 << 20
)

// gate holds back the data messages of one direction behind a message held with
// order=strict (see above). The zero value is an open gate.
type gate struct {
	// blocked: a strict hold waits, or a drain runs, and data messages queue.
	// Written with mu held; the pump reads it without, which is safe because
	// only the pump closes an open gate (it holds the message that closes it).
	blocked atomic.Bool
	onFull  func() // called once, when the pump first waits for room

	mu     sync.Mutex
	queue  []queued
	bytes  int64
	room   chan struct{} // closed when the queue shrinks; nil while nobody waits
	warned bool
}

// queued is a data message waiting behind a strict hold, with its own copy of its
// bytes, and the time it arrived.
type queued struct {
	m wsframe.Message
	t time.Time
}

// offer queues m (copied) when the gate is blocked and reports whether it did.
// When the queue is full it waits for room, or for ctx, which it reports as
// errEnded.
func (g *gate) offer(ctx context.Context, m *wsframe.Message, t time.Time) (bool, error) {
	if !g.blocked.Load() {
		return false, nil
	}
	size := int64(len(m.Payload) + len(m.Wire))
	g.mu.Lock()
	for g.blocked.Load() && len(g.queue) > 0 && (len(g.queue) >= maxGateMessages || g.bytes+size > maxGateBytes) {
		if g.room == nil {
			g.room = make(chan struct{})
		}
		room, first := g.room, !g.warned
		g.warned = true
		g.mu.Unlock()
		if first && g.onFull != nil {
			g.onFull()
		}
		select {
		case <-room:
		case <-ctx.Done():
			return true, errEnded
		}
		g.mu.Lock()
	}
	defer g.mu.Unlock()
	if !g.blocked.Load() {
		return false, nil
	}
	g.queue = append(g.queue, queued{m: cloneMessage(m), t: t})
	g.bytes += size
	return true, nil
}

// block makes the pump queue the direction's data messages.
func (g *gate) block() {
	g.mu.Lock()
	g.blocked.Store(true)
	g.mu.Unlock()
}

// next takes the first message of the queue; when the queue is empty it opens the
// gate and returns false.
func (g *gate) next() (queued, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.blocked.Store(false)
		return queued{}, false
	}
	q := g.queue[0]
	g.queue[0] = queued{}
	g.queue = g.queue[1:]
	g.bytes -= int64(len(q.m.Payload) + len(q.m.Wire))
	g.freed()
	return q, true
}

// clear empties the queue, opens the gate and returns what was queued.
func (g *gate) clear() []queued {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := g.queue
	g.queue, g.bytes = nil, 0
	g.blocked.Store(false)
	g.freed()
	return q
}

// freed wakes a pump waiting for room. Called with mu held.
func (g *gate) freed() {
	if g.room != nil {
		close(g.room)
		g.room = nil
	}
}

// cloneMessage returns a copy of m that owns its bytes (the pump reuses its
// buffers for the next message).
func cloneMessage(m *wsframe.Message) wsframe.Message {
	buf := make([]byte, 0, len(m.Payload)+len(m.Wire))
	buf = append(buf, m.Payload...)
	buf = append(buf, m.Wire...)
	c := *m
	c.Payload = buf[:len(m.Payload):len(m.Payload)]
	c.Wire = buf[len(m.Payload):]
	c.Frames = slices.Clone(m.Frames)
	return c
}

// heldMsg is a message held at a breakpoint, the proxy's side of a plugins.Held:
// out of its stream until a decision (Release) or the end of the session
// (abandon).
type heldMsg struct {
	s          *session
	dir        plugins.Direction
	h          *plugins.Held
	susp       *plugins.Suspension
	compressed bool
	frames     []wsframe.Header // the message as it came, for byte-identical forwarding
	wire       []byte
	arrival    uint64 // its number in the leg's arrived count

	mu    sync.Mutex // serialises decisions
	ended bool
	done  chan struct{}
}

// newHeld takes message m of direction dir, which the breakpoint of susp stopped,
// out of its stream; its record has sequence number seq. With order=strict it
// closes the direction's gate first, so that the next message waits behind it.
func (s *session) newHeld(dir plugins.Direction, susp *plugins.Suspension, m *wsframe.Message, seq, arrival uint64) *heldMsg {
	hm := &heldMsg{s: s, dir: dir, susp: susp, compressed: m.Compressed, frames: slices.Clone(m.Frames),
		wire: bytes.Clone(m.Wire), arrival: arrival, done: make(chan struct{})}
	hm.h = plugins.NewHeld(susp, seq, hm)
	if susp.Order() == plugins.Strict {
		s.gate(dir).block()
	}
	return hm
}

// hold registers hm with the session and hands it to its breakpoint; a session
// that is over drops it at once.
func (s *session) hold(hm *heldMsg) {
	s.mu.Lock()
	if s.tornDown {
		s.mu.Unlock()
		hm.abandon(false)
		return
	}
	if s.holds == nil {
		s.holds = map[*heldMsg]struct{}{}
	}
	s.holds[hm] = struct{}{}
	s.mu.Unlock()
	s.p.log.Debug("message held", "conn", s.conn.ID, "dir", hm.dir.String(), "seq", hm.h.Seq, "order", hm.h.Order.String())
	hm.h.Breakpoint().Hold(hm.h)
}

// Done is closed once the hold ended (plugins.HoldControl).
func (hm *heldMsg) Done() <-chan struct{} { return hm.done }

// Release carries out d (plugins.HoldControl): it finishes the message's trip
// through the chain (plugins.Suspension.Resume), sends the result the way an
// injection is sent, emits the record of the release, and with order=strict
// sends the messages that waited behind it. An edit the codecs cannot encode
// leaves the message held and returns the error.
func (hm *heldMsg) Release(ctx context.Context, d plugins.Decision) error {
	s := hm.s
	s.mu.Lock()
	if s.tornDown {
		s.mu.Unlock()
		return fmt.Errorf("proxy: conn %s: %w (its connection ended)", s.conn.ID, plugins.ErrNotHeld)
	}
	s.releasing.Add(1)
	s.mu.Unlock()
	defer s.releasing.Done()
	// The hooks run for the connection, not for the caller: they stop when either
	// goes away.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	hm.mu.Lock()
	if hm.ended {
		hm.mu.Unlock()
		return fmt.Errorf("proxy: conn %s: %w", s.conn.ID, plugins.ErrNotHeld)
	}
	if d.TimedOut {
		d = plugins.Decision{TimedOut: true}
	}
	var res plugins.Result
	if !d.Drop && !d.Raw {
		var err error
		res, err = hm.susp.Resume(ctx, d.Payload)
		var perr *plugins.Error
		switch {
		case err == nil:
		case d.TimedOut:
			// Forwarded unchanged: the bytes as they came.
			s.p.log.Warn("a held message timed out and its hooks failed; forwarding it as it came", "conn", s.conn.ID, "err", err)
			res = plugins.Result{Decoded: hm.susp.Decoded(), OriginalDecoded: hm.susp.Decoded()}
		case errors.As(err, &perr) && perr.Op == "Encode":
			hm.mu.Unlock()
			return fmt.Errorf("proxy: the edit cannot be sent; the message is still held: %w", err)
		default:
			// A hook failed under --hook-errors close.
			hm.mu.Unlock()
			s.finish(hm.dir, err)
			return fmt.Errorf("proxy: conn %s: %w", s.conn.ID, err)
		}
	}
	if err := s.sendReleased(hm, d, res); err != nil {
		// The connection is going away: the teardown drops the message and says so.
		hm.mu.Unlock()
		if s.ctx.Err() == nil {
			s.finish(hm.dir, err)
		}
		return fmt.Errorf("proxy: conn %s: release: %w", s.conn.ID, err)
	}
	hm.ended = true
	close(hm.done)
	hm.mu.Unlock()
	s.mu.Lock()
	delete(s.holds, hm)
	s.mu.Unlock()
	hm.h.Breakpoint().Ended(hm.h)
	if !d.Drop && !d.Raw {
		s.injectAll(res.Inject, hm.h.Opcode)
	}
	if hm.h.Order == plugins.Strict {
		s.drain(hm.dir)
	}
	return nil
}

// sendReleased sends a released message as d and res say (nothing when it is
// dropped) and emits the record of its release. Called with hm.mu held.
func (s *session) sendReleased(hm *heldMsg, d plugins.Decision, res plugins.Result) error {
	h := hm.h
	out, st := s.leg(hm.dir), s.stream(hm.dir)
	rel := plugins.Release{Decision: d, Result: res, Compressed: hm.compressed, Frames: len(hm.frames)}
	payload, modified := h.Wire, false
	switch {
	case d.Drop, res.Action == plugins.Drop:
		seq := st.NextSeq()
		st.Emit(st.Released(h, rel, seq, time.Now()))
		return nil
	case d.Raw:
		payload, modified = d.Payload, !bytes.Equal(d.Payload, h.Wire)
	case res.Action == plugins.Modify:
		payload, modified = res.Payload, true
	}
	out.mu.Lock()
	err := out.waitIdle(s.ctx)
	if err == nil {
		rel.OutOfOrder = out.sentUpTo > hm.arrival // a message that came after it went out first
		if modified || (hm.compressed && out.owned) {
			rel.Frames = 1
		}
		if err = out.writeRelayed(hm.arrival, h.Opcode, payload, modified, hm.compressed, hm.frames, hm.wire, nil); err == nil {
			err = out.w.Flush()
		}
	}
	var rec *plugins.Record
	if err == nil {
		rec = st.Released(h, rel, st.NextSeq(), time.Now())
	}
	out.mu.Unlock()
	if rec != nil {
		st.Emit(rec)
	}
	return err
}

// drain runs the messages that waited behind a strict hold of direction dir
// through the chain and out, in order, until the queue is empty (the gate opens) or
// one of them is held with order=strict again.
func (s *session) drain(dir plugins.Direction) {
	g, st := s.gate(dir), s.stream(dir)
	// The pump flushes what it writes once its input runs dry; what a drain
	// writes, it flushes itself, once done.
	defer func() {
		out := s.leg(dir)
		out.mu.Lock()
		if out.state != legClosed {
			if err := out.w.Flush(); err != nil && s.ctx.Err() == nil {
				out.mu.Unlock()
				s.finish(dir, err)
				return
			}
		}
		out.mu.Unlock()
	}()
	for s.ctx.Err() == nil {
		q, ok := g.next()
		if !ok {
			return
		}
		rec, fx, err := st.Detached(s.ctx, &q.m, q.t)
		if err == nil {
			err = s.apply(dir, rec, fx, &q.m, nil)
		}
		if err != nil {
			s.finish(dir, err)
			return
		}
		if rec.Held && rec.HoldOrder == plugins.Strict {
			return // the direction waits behind this one now
		}
	}
}

// abandon ends the hold because the session ended: the message is dropped, its
// record says so (ConnClosed), and, when notify, its breakpoint is told.
func (hm *heldMsg) abandon(notify bool) {
	hm.mu.Lock()
	if hm.ended {
		hm.mu.Unlock()
		return
	}
	hm.ended = true
	close(hm.done)
	hm.mu.Unlock()
	s, h := hm.s, hm.h
	st := s.stream(hm.dir)
	st.Emit(st.Released(h, plugins.Release{Decision: plugins.Decision{Drop: true}, ConnClosed: true, Compressed: hm.compressed,
		Frames: len(hm.frames)}, st.NextSeq(), time.Now()))
	s.p.log.Info("held message dropped: its connection ended", "conn", s.conn.ID, "dir", hm.dir.String(), "seq", h.Seq)
	if notify {
		h.Breakpoint().Ended(h)
	}
}

// dropHeld ends every hold of the session, once the sockets are closed: each held
// message is dropped, and so is every message waiting behind a strict hold, each
// with a record that says so, before the connection's close is reported.
func (s *session) dropHeld() {
	s.mu.Lock()
	s.tornDown = true
	holds := s.holds
	s.holds = nil
	s.mu.Unlock()
	s.releasing.Wait()
	ordered := slices.SortedFunc(maps.Keys(holds), func(a, b *heldMsg) int {
		return cmp.Or(cmp.Compare(a.dir, b.dir), cmp.Compare(a.h.Seq, b.h.Seq))
	})
	for _, hm := range ordered {
		hm.abandon(true)
	}
	for _, d := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
		st := s.stream(d)
		for _, q := range s.gate(d).clear() {
			st.Emit(st.Unsent(&q.m, q.t))
		}
	}
}
