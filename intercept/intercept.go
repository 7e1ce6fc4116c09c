// Package intercept is wstap's breakpoint: a link of the hook chain that holds the
// WebSocket messages its rules match until someone (the web UI, or a script
// through the UI's API) forwards them, as they were or edited, or drops them; and
// the register of live connections that new messages are injected into.
//
// The breakpoint is a place in the chain (plugins.Breakpoint): by default after
// every --hook, so a held message is what the codecs decoded; "--hook intercept"
// puts it elsewhere. A held message waits out of its stream (order=out, the
// default: the later messages of its direction go on) or with its direction
// waiting behind it (order=strict); control frames always pass, so a held message
// never costs its connection its pings. A message held longer than the timeout is
// forwarded unchanged; one whose connection ends is dropped. Forwarding runs the
// rest of the chain: an edit is encoded by the codecs before the breakpoint, as a
// replace hook's change would be, and the hooks after the breakpoint see it (see
// plugins.Suspension.Resume). The proxy carries the decisions out (package proxy);
// this package keeps the rules, the held messages and their timeouts.
//
// Nothing here waits on the relay's goroutines: Break only matches rules, and
// Hold and Ended only update the register.
package intercept

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// DefaultTimeout is how long a message stays held when nobody decides
// (--intercept-timeout).
const DefaultTimeout = 5 * time.Minute

// Settings are what the breakpoint holds: whether it is on, its rules (a message
// is held when any matches; the first that does says the order), and how long a
// message stays held before it is forwarded unchanged.
type Settings struct {
	Enabled bool
	Rules   []Rule
	Timeout time.Duration
}

// Config configures a [Controller].
type Config struct {
	Settings
	// Logger receives what happens to held messages; nil discards it.
	Logger *slog.Logger
}

// Errors of the controller's operations.
var (
	// ErrNoMessage: no message is held with that id (it was released, or never was).
	ErrNoMessage = errors.New("intercept: no such held message")
	// ErrNoConn: no live connection has that id (it closed, or never was).
	ErrNoConn = errors.New("intercept: no such open connection")
)

// Controller is the breakpoint (a plugins.Breakpoint named "intercept", to put in
// the chain) and the register of held messages and live connections. It is safe
// for concurrent use.
type Controller struct {
	log      *slog.Logger
	settings atomic.Pointer[Settings] // read by Break on every message

	mu      sync.Mutex
	held    []*entry // in the order they were held
	nextID  uint64
	conns   map[string]*plugins.Conn
	version uint64
	changed chan struct{} // closed at the next change; nil while nobody waits
	closed  bool
}

// entry is a held message in the register.
type entry struct {
	id       uint64
	h        *plugins.Held
	rule     string
	since    time.Time
	deadline time.Time
	timer    *time.Timer
}

// New returns a controller with cfg's settings (DefaultTimeout when 0).
func New(cfg Config) *Controller {
	c := &Controller{log: cfg.Logger, conns: map[string]*plugins.Conn{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.store(cfg.Settings)
	return c
}

// store sets the settings, with the default timeout.
func (c *Controller) store(s Settings) {
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	s.Rules = slices.Clone(s.Rules)
	c.settings.Store(&s)
}

// Name returns "intercept".
func (c *Controller) Name() string { return "intercept" }

// Settings returns the current settings.
func (c *Controller) Settings() Settings {
	s := *c.settings.Load()
	s.Rules = slices.Clone(s.Rules)
	return s
}

// SetSettings replaces the settings. Messages already held keep their deadline; a
// new timeout applies to the messages held from now on.
func (c *Controller) SetSettings(s Settings) {
	c.store(s)
	c.mu.Lock()
	c.changedLocked()
	c.mu.Unlock()
	names := make([]string, len(s.Rules))
	for i, r := range s.Rules {
		names[i] = r.String()
	}
	c.log.Info("intercept settings changed", "enabled", s.Enabled, "rules", names, "timeout", c.settings.Load().Timeout)
}

// Break reports whether m is held (plugins.Breakpoint): the breakpoint is on and
// one of its rules matches.
func (c *Controller) Break(_ context.Context, m *plugins.Message) (plugins.Order, bool) {
	s := c.settings.Load()
	if !s.Enabled {
		return 0, false
	}
	for i := range s.Rules {
		if s.Rules[i].Matches(m) {
			return s.Rules[i].Order, true
		}
	}
	return 0, false
}

// Hold registers a message Break stopped (plugins.Breakpoint) and starts its
// timeout.
func (c *Controller) Hold(h *plugins.Held) {
	s := c.settings.Load()
	rule := ""
	m := &plugins.Message{Conn: h.Conn, Dir: h.Dir, Opcode: h.Opcode, Payload: h.Payload}
	for i := range s.Rules {
		if s.Rules[i].Matches(m) {
			rule = s.Rules[i].String()
			break
		}
	}
	now := time.Now()
	c.mu.Lock()
	select {
	case <-h.Done():
		// Its connection ended before it got here (Ended came first).
		c.mu.Unlock()
		return
	default:
	}
	c.nextID++
	e := &entry{id: c.nextID, h: h, rule: rule, since: now, deadline: now.Add(s.Timeout)}
	if !c.closed {
		e.timer = time.AfterFunc(s.Timeout, func() { c.expire(e) })
	}
	c.held = append(c.held, e)
	c.changedLocked()
	c.mu.Unlock()
	c.log.Info("message held at the breakpoint", "id", e.id, "conn", connID(h.Conn), "dir", h.Dir.String(), "seq", h.Seq,
		"order", h.Order.String(), "rule", rule)
}

// Ended removes a message whose hold ended from the register (plugins.Breakpoint).
func (c *Controller) Ended(h *plugins.Held) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.held, func(e *entry) bool { return e.h == h })
	if i < 0 {
		return
	}
	if t := c.held[i].timer; t != nil {
		t.Stop()
	}
	c.held = slices.Delete(c.held, i, i+1)
	c.changedLocked()
}

// expire forwards a message held past its deadline, unchanged.
func (c *Controller) expire(e *entry) {
	c.log.Warn("held message timed out; forwarding it unchanged", "id", e.id, "conn", connID(e.h.Conn), "dir", e.h.Dir.String(),
		"seq", e.h.Seq, "held", time.Since(e.since).Round(time.Millisecond))
	if err := e.h.Release(context.Background(), plugins.Decision{TimedOut: true}); err != nil && !errors.Is(err, plugins.ErrNotHeld) {
		c.log.Warn("held message timed out and could not be forwarded", "id", e.id, "conn", connID(e.h.Conn), "err", err)
	}
}

// OnOpen registers a live connection (plugins.OpenHook), for injections.
func (c *Controller) OnOpen(_ context.Context, conn *plugins.Conn) {
	c.mu.Lock()
	c.conns[conn.ID] = conn
	c.mu.Unlock()
}

// OnClose forgets a connection that ended (plugins.CloseHook).
func (c *Controller) OnClose(_ context.Context, conn *plugins.Conn, _ wsframe.CloseCode, _ string) {
	c.mu.Lock()
	if c.conns[conn.ID] == conn {
		delete(c.conns, conn.ID)
	}
	c.mu.Unlock()
}

// Conn returns the live connection with id.
func (c *Controller) Conn(id string) (*plugins.Conn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, ok := c.conns[id]
	return conn, ok
}

// Inject sends in on the live connection with id ([plugins.Conn.Inject]): with
// in.Encode, in.Payload is plaintext that every codec of the chain encodes first.
func (c *Controller) Inject(ctx context.Context, id string, in plugins.Injection) error {
	conn, ok := c.Conn(id)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoConn, id)
	}
	return conn.Inject(ctx, in)
}

// Message is a held message as the register shows it.
type Message struct {
	ID       uint64
	Held     *plugins.Held
	Rule     string    // the rule that held it, as written ("" when the rules changed since)
	Since    time.Time // when it was held
	Deadline time.Time // when it is forwarded unchanged if nobody decides
}

func (e *entry) view() Message {
	return Message{ID: e.id, Held: e.h, Rule: e.rule, Since: e.since, Deadline: e.deadline}
}

// Held returns the messages held now, oldest first.
func (c *Controller) Held() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Message, len(c.held))
	for i, e := range c.held {
		out[i] = e.view()
	}
	return out
}

// Get returns the held message with id.
func (c *Controller) Get(id uint64) (Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.find(id); e != nil {
		return e.view(), true
	}
	return Message{}, false
}

// find returns the entry of id. Called with mu held.
func (c *Controller) find(id uint64) *entry {
	for _, e := range c.held {
		if e.id == id {
			return e
		}
	}
	return nil
}

// Release carries out d for the held message with id (see plugins.Decision): it
// returns once the message went out (or was dropped), or with the error that
// kept it held (an edit its codecs cannot encode).
func (c *Controller) Release(ctx context.Context, id uint64, d plugins.Decision) error {
	c.mu.Lock()
	e := c.find(id)
	c.mu.Unlock()
	if e == nil {
		return fmt.Errorf("%w: %d", ErrNoMessage, id)
	}
	// Outside the lock: releasing a strict hold runs the messages behind it
	// through the chain, which may hold one again (Hold takes the lock).
	if err := e.h.Release(ctx, d); err != nil {
		if errors.Is(err, plugins.ErrNotHeld) {
			return fmt.Errorf("%w: %d (%v)", ErrNoMessage, id, err)
		}
		return err
	}
	return nil
}

// ReleaseAll forwards every message held now, unchanged, oldest first, and returns
// how many went out; the first error stops it.
func (c *Controller) ReleaseAll(ctx context.Context) (int, error) {
	n := 0
	for _, m := range c.Held() {
		switch err := m.Held.Release(ctx, plugins.Decision{}); {
		case err == nil:
			n++
		case errors.Is(err, plugins.ErrNotHeld):
			// Released meanwhile, or its connection ended.
		default:
			return n, fmt.Errorf("intercept: forward %d: %w", m.ID, err)
		}
	}
	return n, nil
}

// Changes returns the version of the register (held messages and settings) and a
// channel closed at its next change.
func (c *Controller) Changes() (uint64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.version, c.changed
}

// changedLocked records a change and wakes the waiters. Called with mu held.
func (c *Controller) changedLocked() {
	c.version++
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// Close stops the timeouts, when wstap stops (the proxy then drops what is still
// held, as their connections end). It implements io.Closer, which the chain calls.
func (c *Controller) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.held {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
	return nil
}

func connID(c *plugins.Conn) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// Interface guards.
var (
	_ plugins.Breakpoint = (*Controller)(nil)
	_ plugins.OpenHook   = (*Controller)(nil)
	_ plugins.CloseHook  = (*Controller)(nil)
)
