package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/wstap/wstap/wsframe"
)

// ErrReadOnly is the error of an injection into a connection of a capture (sniff
// mode), which cannot be changed.
var ErrReadOnly = errors.New("plugins: the chain is read-only in sniff mode")

// Error is a failure of one plugin on one connection.
type Error struct {
	Plugin string
	Conn   string
	Op     string // "OnMessage", "Decode", "Encode" or "Break"
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("plugins: %s: conn %s: %s: %v", e.Plugin, e.Conn, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorPolicy says what a failing hook does to its connection.
type ErrorPolicy uint8

// Error policies.
const (
	// FailOpen logs the error and goes on as if the hook had passed the message
	// (a failed Encode sends the message unmodified).
	FailOpen ErrorPolicy = iota
	// FailClose makes Run return the error: the proxy closes the connection with 1011.
	FailClose
)

// Chain runs hooks and codecs in order. The zero value is an empty chain that passes
// everything. A Chain is safe for concurrent use once built.
type Chain struct {
	elems  []element
	policy ErrorPolicy
	log    *slog.Logger
}

type element struct {
	name  string
	hook  Hook
	codec Codec
	scope Scope
	bp    Breakpoint
}

// NewChain returns a chain of the given elements, run in order. A nil logger
// discards logs.
func NewChain(policy ErrorPolicy, log *slog.Logger, elems ...Element) (*Chain, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Chain{policy: policy, log: log}
	for _, e := range elems {
		el := element{name: e.Name()}
		switch v := e.(type) {
		case Scope:
			el.scope = v
		case Breakpoint:
			el.bp = v
		case Codec:
			el.codec = v
		case Hook:
			el.hook = v
		default:
			return nil, fmt.Errorf("plugins: %s (%T) is not a Hook, a Codec, a Scope or a Breakpoint", e.Name(), e)
		}
		c.elems = append(c.elems, el)
	}
	return c, nil
}

// Len returns the number of hooks and codecs in the chain.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.elems)
}

// Names returns the names of the chain's elements in order.
func (c *Chain) Names() []string {
	var names []string
	if c != nil {
		for _, e := range c.elems {
			names = append(names, e.name)
		}
	}
	return names
}

// Result is the outcome of a message's trip through the chain.
type Result struct {
	// Action is Pass (forward the original bytes), Modify (forward Payload) or Drop.
	Action  Action
	Payload []byte
	// Decoded is the payload as the innermost codec decoded it, after the hooks
	// (what was forwarded, in plaintext); nil when no codec decoded the message.
	Decoded []byte
	// OriginalDecoded is what the innermost codec decoded before the hooks after it
	// changed anything; nil when no codec decoded the message.
	OriginalDecoded []byte
	// DecodeError names the codec that could not decode the message; the elements
	// after it, up to the next scope, were skipped.
	DecodeError string
	// Inject are the messages hooks asked to send.
	Inject []Injection
	// Hold, when not nil, says a [Breakpoint] stopped the message: nothing is to
	// be forwarded now (Action is Pass, Payload nil), the front end holds it, and
	// Hold finishes its trip through the chain when it is released. Decoded and
	// OriginalDecoded are then what the codecs before the breakpoint decoded.
	Hold *Suspension
}

// Run passes m through the chain. m.Payload is the wire payload; it is restored
// before Run returns. The error is non-nil only under [FailClose], when a plugin
// failed: the caller should close the connection.
//
// Run computes the verdict whatever the connection's mode; applying it (or, in sniff
// mode, only reporting it) is the caller's business (see [Pipeline]). A
// [Breakpoint] stops only messages of live connections (Mode Proxy): the result
// then has Hold set, and the rest of the trip waits for [Suspension.Resume].
func (c *Chain) Run(ctx context.Context, m *Message) (Result, error) {
	if c == nil || len(c.elems) == 0 {
		return Result{}, nil
	}
	var layers [4]layer
	orig := m.Payload
	defer func() { m.Payload = orig }()
	st := runState{stack: layers[:0], cur: orig}
	at, err := c.walk(ctx, m, &st, 0, m.Conn != nil && m.Conn.Mode == Proxy)
	if err != nil {
		return Result{}, err
	}
	if st.res.Action == Drop {
		return st.res, nil
	}
	if at >= 0 {
		bp := c.elems[at].bp
		s := c.suspend(m, &st, at, bp, st.order, orig)
		res := Result{Hold: s, Inject: st.res.Inject, DecodeError: st.res.DecodeError}
		res.Decoded, res.OriginalDecoded = s.Decoded(), s.Decoded()
		return res, nil
	}
	return c.unwind(ctx, m, &st, false)
}

// layer is a codec that decoded the message on its way in.
type layer struct {
	codec Codec
	name  string
	in    []byte // this layer's input: the payload as it arrived at the codec
	out   []byte // what the codec decoded, before any hook
	dirty bool   // a hook changed the payload above this layer
}

// runState is a message's trip through the chain so far.
type runState struct {
	stack     []layer
	cur       []byte // the payload as the next element sees it
	rootDirty bool   // a hook before the first codec changed the payload
	res       Result
	order     Order // the order of the breakpoint that held the message
}

// markDirty notes that a hook changed the payload at the current depth.
func (st *runState) markDirty() {
	if len(st.stack) > 0 {
		st.stack[len(st.stack)-1].dirty = true
	} else {
		st.rootDirty = true
	}
}

// walk runs the elements from index from on. It returns the index of a breakpoint
// that held the message (-1 when none did; breakpoints only hold when hold is
// true), or stops early with st.res.Action Drop. The error is non-nil only under
// FailClose.
func (c *Chain) walk(ctx context.Context, m *Message, st *runState, from int, hold bool) (int, error) {
	// inScope is false after a scope that does not match the connection; skipping
	// after a codec that could not decode the message. Both last until the next
	// scope. A walk resumed after a breakpoint starts where both were clear (the
	// breakpoint ran).
	inScope, skipping := true, false
	for i := from; i < len(c.elems); i++ {
		e := c.elems[i]
		if e.scope != nil {
			inScope, skipping = m.Conn == nil || e.scope.MatchConn(m.Conn), false
			continue
		}
		if !inScope || skipping {
			continue
		}
		m.Payload = st.cur
		switch {
		case e.bp != nil:
			if !hold {
				continue
			}
			var order Order
			var stop bool
			if _, err := safeCall(func() ([]byte, error) { order, stop = e.bp.Break(ctx, m); return nil, nil }); err != nil {
				if err := c.fail(m, e.name, "Break", err); err != nil {
					return -1, err
				}
				continue
			}
			if stop {
				if order != Strict {
					order = StepOut
				}
				st.order = order
				return i, nil
			}
			continue
		case e.codec != nil:
			out, err := safeCall(func() ([]byte, error) { return e.codec.Decode(ctx, m) })
			if err != nil {
				// Not this layer's format: the hooks after it were written for what
				// it decodes, so they do not see this message. Say so once per
				// connection.
				if m.Conn == nil || m.Conn.once("decode:"+e.name) {
					c.log.Warn("codec cannot decode; the message passes unchanged and the hooks after the codec skip it (logged once per connection)",
						"plugin", e.name, "conn", connID(m), "dir", m.Dir.String(), "err", err)
				}
				if st.res.DecodeError == "" {
					st.res.DecodeError = e.name
				}
				skipping = true
				continue
			}
			st.stack = append(st.stack, layer{codec: e.codec, name: e.name, in: st.cur, out: out})
			st.cur = out
			continue
		}
		var v Verdict
		_, err := safeCall(func() ([]byte, error) {
			var err error
			v, err = e.hook.OnMessage(ctx, m)
			return nil, err
		})
		if err != nil {
			if err := c.fail(m, e.name, "OnMessage", err); err != nil {
				return -1, err
			}
			continue
		}
		st.res.Inject = append(st.res.Inject, v.Inject...)
		switch v.Action {
		case Modify:
			st.cur = v.Payload
			st.markDirty()
		case Drop:
			st.res.Action = Drop
			if len(st.stack) > 0 {
				st.res.Decoded, st.res.OriginalDecoded = st.cur, st.stack[len(st.stack)-1].out
			}
			return -1, nil
		}
	}
	return -1, nil
}

// unwind encodes the layers on the way out: a layer whose output changed is encoded
// again; an unchanged layer restores its original input bytes. An Encode error
// follows the error policy, unless strict, when it is returned whatever the policy.
func (c *Chain) unwind(ctx context.Context, m *Message, st *runState, strict bool) (Result, error) {
	res, stack, cur := st.res, st.stack, st.cur
	if len(stack) > 0 {
		res.Decoded, res.OriginalDecoded = cur, stack[len(stack)-1].out
	}
	rootDirty := st.rootDirty
	for i := len(stack) - 1; i >= 0; i-- {
		l := stack[i]
		if !l.dirty {
			cur = l.in
			continue
		}
		m.Payload = l.in
		decoded := cur
		enc, err := safeCall(func() ([]byte, error) { return l.codec.Encode(ctx, m, decoded) })
		if err != nil {
			if strict {
				return Result{}, &Error{Plugin: l.name, Conn: connID(m), Op: "Encode", Err: err}
			}
			if err := c.fail(m, l.name, "Encode", err); err != nil {
				return Result{}, err
			}
			// The change cannot be encoded: send the message as it came, and log
			// what it decoded to, not the change that was never sent.
			out := stack[len(stack)-1].out
			return Result{Decoded: out, OriginalDecoded: out, Inject: res.Inject, DecodeError: res.DecodeError}, nil
		}
		cur = enc
		if i > 0 {
			stack[i-1].dirty = true
		} else {
			rootDirty = true
		}
	}
	if rootDirty {
		res.Action, res.Payload = Modify, cur
	}
	return res, nil
}

// Encode turns plaintext into a new message's wire payload: the Encode of every
// codec in the chain that applies to conn, innermost first, each called with a nil
// m.Payload (no original to reuse a layout from; see [Codec]). Injections and
// edited messages go out through it, so a tester can write plaintext to an app that
// encrypts. A chain without codecs returns plaintext unchanged.
//
// A codec error is returned (whatever the error policy): the message cannot be sent
// as asked.
func (c *Chain) Encode(ctx context.Context, conn *Conn, dir Direction, op wsframe.Opcode, plaintext []byte) ([]byte, error) {
	if c == nil {
		return plaintext, nil
	}
	var codecs [4]element
	applies := codecs[:0]
	inScope := true
	for _, e := range c.elems {
		switch {
		case e.scope != nil:
			inScope = conn == nil || e.scope.MatchConn(conn)
		case e.codec != nil && inScope:
			applies = append(applies, e)
		}
	}
	m := &Message{Conn: conn, Dir: dir, Opcode: op, Time: time.Now(), Injected: true}
	cur := plaintext
	for i := len(applies) - 1; i >= 0; i-- {
		e := applies[i]
		in := cur
		out, err := safeCall(func() ([]byte, error) { return e.codec.Encode(ctx, m, in) })
		if err != nil {
			return nil, &Error{Plugin: e.name, Conn: connID(m), Op: "Encode", Err: err}
		}
		cur = out
	}
	return cur, nil
}

// fail applies the error policy to a plugin failure.
func (c *Chain) fail(m *Message, name, op string, err error) error {
	perr := &Error{Plugin: name, Conn: connID(m), Op: op, Err: err}
	if c.policy == FailClose {
		return perr
	}
	if m.Conn == nil || m.Conn.once("error:"+name) {
		c.log.Error("plugin failed; the message goes on unmodified (further failures of this plugin on this connection are not logged)",
			"plugin", name, "conn", perr.Conn, "dir", m.Dir.String(), "op", op, "err", err)
		logStack(c.log, err)
	}
	return nil
}

// PanicError is a plugin's panic, recovered. Its message is the panic value (and,
// when known, where it happened); the stack is logged apart, at debug level
// (wstap -v), so that the error line stays readable.
//
// A plugin may recover its own panic and panic again with a *PanicError that says
// more (the Go-source loader adds the position in the file and the interpreter's
// trace): the chain keeps that one as it is.
type PanicError struct {
	Value any
	// Where is the panic's position in a Go-source hook ("hook.go:16:6 in
	// main.OnMessage"); empty when unknown.
	Where string
	Stack []byte
}

func (e *PanicError) Error() string {
	if e.Where != "" {
		return fmt.Sprintf("panic: %v (at %s)", e.Value, e.Where)
	}
	return fmt.Sprintf("panic: %v", e.Value)
}

// logStack logs the stack of a recovered panic in err, at debug level.
func logStack(log *slog.Logger, err error) {
	var pe *PanicError
	if errors.As(err, &pe) && log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("plugin panic stack\n" + string(pe.Stack))
	}
}

// safeCall runs f, turning a panic into a *PanicError.
func safeCall(f func() ([]byte, error)) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			if pe, ok := p.(*PanicError); ok {
				err = pe
				return
			}
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return f()
}

func connID(m *Message) string {
	if m.Conn == nil {
		return ""
	}
	return m.Conn.ID
}

// Handshake calls the chain's HandshakeHooks in order; the first error refuses the
// connection.
func (c *Chain) Handshake(ctx context.Context, h *Handshake) error {
	if c == nil {
		return nil
	}
	for _, e := range c.elems {
		if hh, ok := e.plugin().(HandshakeHook); ok {
			if _, err := safeCall(func() ([]byte, error) { return nil, hh.OnHandshake(ctx, h) }); err != nil {
				return &Error{Plugin: e.name, Op: "OnHandshake", Err: err}
			}
		}
	}
	return nil
}

// Opened calls the chain's OpenHooks for a new connection.
func (c *Chain) Opened(ctx context.Context, conn *Conn) {
	if c == nil {
		return
	}
	for _, e := range c.elems {
		if oh, ok := e.plugin().(OpenHook); ok {
			if _, err := safeCall(func() ([]byte, error) { oh.OnOpen(ctx, conn); return nil, nil }); err != nil {
				c.log.Error("plugin failed", "plugin", e.name, "conn", conn.ID, "op", "OnOpen", "err", err)
				logStack(c.log, err)
			}
		}
	}
}

// Closed calls the chain's CloseHooks for a connection that ended.
func (c *Chain) Closed(ctx context.Context, conn *Conn, code wsframe.CloseCode, reason string) {
	if c == nil {
		return
	}
	for _, e := range c.elems {
		if ch, ok := e.plugin().(CloseHook); ok {
			if _, err := safeCall(func() ([]byte, error) { ch.OnClose(ctx, conn, code, reason); return nil, nil }); err != nil {
				c.log.Error("plugin failed", "plugin", e.name, "conn", conn.ID, "op", "OnClose", "err", err)
				logStack(c.log, err)
			}
		}
	}
}

// Close closes the elements that hold resources (io.Closer, such as hook processes),
// after the last message. It returns the first error.
func (c *Chain) Close() error {
	if c == nil {
		return nil
	}
	var first error
	for _, e := range c.elems {
		if cl, ok := e.plugin().(io.Closer); ok {
			if err := cl.Close(); err != nil && first == nil {
				first = fmt.Errorf("plugins: %s: close: %w", e.name, err)
			}
		}
	}
	return first
}

func (e element) plugin() any {
	switch {
	case e.codec != nil:
		return e.codec
	case e.scope != nil:
		return e.scope
	case e.bp != nil:
		return e.bp
	}
	return e.hook
}
