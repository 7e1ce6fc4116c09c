package cmd

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/filter"
	"github.com/wstap/wstap/wsframe"
)

// showRule is one --show value: conditions on what the terminal view shows, all of
// which must hold. The zero showRule matches everything.
type showRule struct {
	dir  plugins.Direction // 0: both
	ops  []wsframe.Opcode  // nil: any
	re   *regexp.Regexp    // nil: any payload
	url  string            // a glob (filter.Glob) on the URL; "": any
	conn string            // a glob on the connection id; "": any
}

// showOpcodes are the values of a rule's opcode condition.
var showOpcodes = map[string][]wsframe.Opcode{
	"text":    {wsframe.OpText},
	"binary":  {wsframe.OpBinary},
	"ping":    {wsframe.OpPing},
	"pong":    {wsframe.OpPong},
	"close":   {wsframe.OpClose},
	"data":    {wsframe.OpText, wsframe.OpBinary},
	"control": {wsframe.OpPing, wsframe.OpPong, wsframe.OpClose},
	"any":     nil,
}

// parseShowRules parses --show values: key=value conditions joined by commas,
// quoted as in --hook values (match='a,b').
func parseShowRules(values []string) ([]showRule, error) {
	var rules []showRule
	for _, v := range values {
		r, err := parseShowRule(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", v, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseShowRule(v string) (showRule, error) {
	var r showRule
	if strings.TrimSpace(v) == "" {
		return r, fmt.Errorf("empty; want conditions such as dir=s2c,match=error")
	}
	// The --hook grammar quotes values; the options of a fake plugin are the
	// conditions. The trailing empty option keeps a value ending in ".go" from
	// reading as a Go file.
	spec := "show:" + v + ",_="
	s, err := plugins.ParseSpec(spec)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("%v %q: ", plugins.ErrSpec, spec))
		return r, fmt.Errorf("%s", msg)
	}
	delete(s.Options, "_")
	for k, val := range s.Options {
		switch k {
		case "dir":
			switch val {
			case "c2s":
				r.dir = plugins.ClientToServer
			case "s2c":
				r.dir = plugins.ServerToClient
			case "both":
			default:
				return r, fmt.Errorf("dir=%s: want c2s, s2c or both", val)
			}
		case "opcode":
			ops, ok := showOpcodes[val]
			if !ok {
				return r, fmt.Errorf("opcode=%s: want text, binary, ping, pong, close, data (text and binary), control (ping, pong and close) or any", val)
			}
			r.ops = ops
		case "match":
			if r.re, err = regexp.Compile(val); err != nil {
				return r, fmt.Errorf("match: %v", err)
			}
		case "url":
			r.url = val
		case "conn":
			r.conn = val
		default:
			return r, fmt.Errorf("unknown condition %q; want dir, opcode, match, url or conn", k)
		}
	}
	return r, nil
}

// connOnly reports whether the rule has only conditions on the connection: it
// selects whole connections.
func (r *showRule) connOnly() bool {
	return r.dir == 0 && r.ops == nil && r.re == nil
}

// matchConn reports whether c meets the rule's url and conn conditions.
func (r *showRule) matchConn(c *plugins.Conn) bool {
	if r.conn != "" && !filter.Glob(r.conn, c.ID) {
		return false
	}
	return r.url == "" || (c.URL != nil && filter.Glob(r.url, c.URL.String()))
}

// matchMessage reports whether a message meets every condition of the rule.
func (r *showRule) matchMessage(c *plugins.Conn, dir plugins.Direction, op wsframe.Opcode, payload []byte) bool {
	return (r.dir == 0 || r.dir == dir) && (r.ops == nil || slices.Contains(r.ops, op)) &&
		(r.re == nil || r.re.Match(payload)) && r.matchConn(c)
}

// showView is the terminal view with --show rules: it passes on the events of
// the view (the Observer it embeds) that match a rule, the rest are not shown.
// The traffic and the event log are untouched.
//
// A message (or a count of pings or pongs, whose payloads are not kept) is shown
// when it matches a rule. A connection's other lines follow its messages: its
// open line is shown just before its first message shown (with the time it
// opened), and its close line, and its gap, resync, undecodable and error lines in
// sniff mode, only when its open line was. A rule with only url and conn
// conditions shows whole connections, open line first, as they open. An upgrade
// that was refused (no messages) is shown when the url and conn conditions of a
// rule hold.
type showView struct {
	plugins.Observer
	rules []showRule

	mu    sync.Mutex
	conns map[*plugins.Conn]*shownConn
}

// shownConn is what showView knows of an open connection.
type shownConn struct {
	opened time.Time // when Opened was called
	shown  bool      // its open line was passed on
}

// newShowView returns view itself without rules, and otherwise view filtered by
// them.
func newShowView(view plugins.Observer, rules []showRule) plugins.Observer {
	if len(rules) == 0 {
		return view
	}
	return &showView{Observer: view, rules: rules, conns: map[*plugins.Conn]*shownConn{}}
}

// Opened shows the connection now when a rule selects it whole, or waits for its
// first message shown.
func (v *showView) Opened(c *plugins.Conn, t time.Time) {
	whole := slices.ContainsFunc(v.rules, func(r showRule) bool { return r.connOnly() && r.matchConn(c) })
	v.mu.Lock()
	defer v.mu.Unlock()
	v.conns[c] = &shownConn{opened: t, shown: whole}
	if whole {
		v.Observer.Opened(c, t) // under the lock: before any message of c
	}
}

// Refused shows a refused upgrade when the url and conn conditions of a rule hold.
func (v *showView) Refused(c *plugins.Conn, t time.Time) {
	if slices.ContainsFunc(v.rules, func(r showRule) bool { return r.matchConn(c) }) {
		v.Observer.Refused(c, t)
	}
}

// reveal shows c's open line, when it was not yet.
func (v *showView) reveal(c *plugins.Conn) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sc := v.conns[c]
	if sc == nil { // a connection this view did not see open
		sc = &shownConn{shown: true}
		v.conns[c] = sc
		return
	}
	if !sc.shown {
		sc.shown = true
		v.Observer.Opened(c, sc.opened)
	}
}

// shown reports whether c's open line was shown.
func (v *showView) shown(c *plugins.Conn) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	sc := v.conns[c]
	return sc != nil && sc.shown
}

// matches reports whether a message matches a rule.
func (v *showView) matches(c *plugins.Conn, dir plugins.Direction, op wsframe.Opcode, payload []byte) bool {
	for i := range v.rules {
		if v.rules[i].matchMessage(c, dir, op, payload) {
			return true
		}
	}
	return false
}

// Message shows a matching message: its payload as the view shows it, decoded
// when a codec decoded it.
func (v *showView) Message(r *plugins.Record) {
	p := r.Payload
	if r.Decoded != nil {
		p = r.Decoded
	}
	if v.matches(r.Conn, r.Dir, r.Opcode, p) {
		v.reveal(r.Conn)
		v.Observer.Message(r)
	}
}

// Controls shows counted pings or pongs that match a rule as messages without a
// payload.
func (v *showView) Controls(c *plugins.Conn, dir plugins.Direction, s plugins.ControlSummary) {
	if v.matches(c, dir, s.Opcode, nil) {
		v.reveal(c)
		v.Observer.Controls(c, dir, s)
	}
}

// Closed shows the close line of a connection whose open line was shown.
func (v *showView) Closed(c *plugins.Conn, ev plugins.CloseEvent) {
	v.mu.Lock()
	sc := v.conns[c]
	delete(v.conns, c)
	v.mu.Unlock()
	if sc != nil && sc.shown {
		v.Observer.Closed(c, ev)
	}
}

// Gap is shown for a connection whose open line was.
func (v *showView) Gap(c *plugins.Conn, dir plugins.Direction, t time.Time, bytes int64, lost bool) {
	if v.shown(c) {
		v.Observer.Gap(c, dir, t, bytes, lost)
	}
}

// Resync is shown for a connection whose open line was.
func (v *showView) Resync(c *plugins.Conn, dir plugins.Direction, t time.Time, skipped int64) {
	if v.shown(c) {
		v.Observer.Resync(c, dir, t, skipped)
	}
}

// Undecodable is shown for a connection whose open line was.
func (v *showView) Undecodable(r *plugins.Record, reason string) {
	if v.shown(r.Conn) {
		v.Observer.Undecodable(r, reason)
	}
}

// StreamError is shown for a connection whose open line was.
func (v *showView) StreamError(c *plugins.Conn, dir plugins.Direction, t time.Time, err error) {
	if v.shown(c) {
		v.Observer.StreamError(c, dir, t, err)
	}
}
