package intercept

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/wstap/wstap/internal/glob"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Rule says which messages the breakpoint holds, and how. It is conditions
// joined by commas, all of which must hold, written like a --hook value's options
// (plugins.ParseSpec: a value containing "," or "=" is quoted, 'a,b'):
//
//	dir=c2s|s2c|both          the direction (default both)
//	opcode=text|binary|data   the opcode; data (the default) is text and binary
//	url=GLOB                  the connection's URL or host: * matches anything, / included; ? one character; case ignored
//	conn=GLOB                 the connection id (c3)
//	match=REGEXP              a Go regular expression (RE2) found in the payload as the
//	                          breakpoint sees it: what the codecs before it decoded
//	order=out|strict          out (the default): the held message steps out of its stream and
//	                          the later ones go on; strict: the direction's data messages wait
//	                          behind it, in order
//
// A rule with no conditions but order (dir=both, say) holds every message. Control
// frames (ping, pong, close) are never held.
type Rule struct {
	Dir   plugins.Direction // 0: both
	Ops   []wsframe.Opcode  // nil: text and binary
	URL   string            // a glob on the URL or the host; "": any
	Conn  string            // a glob on the connection id; "": any
	Match *regexp.Regexp    // nil: any payload
	Order plugins.Order     // StepOut or Strict

	text string // as written
}

// ruleKeys are the conditions of a rule, in the order errors list them.
var ruleKeys = []string{"dir", "opcode", "url", "conn", "match", "order"}

// ParseRule parses a rule (see [Rule]).
func ParseRule(s string) (Rule, error) {
	r := Rule{Order: plugins.StepOut, text: strings.TrimSpace(s)}
	if r.text == "" {
		return Rule{}, fmt.Errorf("intercept: empty rule; want conditions such as dir=c2s,match=transfer (dir=both holds every message)")
	}
	// The --hook grammar, with the conditions as the options of a made-up
	// plugin; the trailing empty option keeps a value ending in ".go" from
	// reading as a Go file.
	spec := "intercept:" + r.text + ",_="
	sp, err := plugins.ParseSpec(spec)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("%v %q: ", plugins.ErrSpec, spec))
		return Rule{}, fmt.Errorf("intercept: rule %q: %s", r.text, msg)
	}
	delete(sp.Options, "_")
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("intercept: rule %q: %s", r.text, fmt.Sprintf(format, args...))
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range sp.Options {
			if !yield(k) {
				return
			}
		}
	}) {
		v := sp.Options[k]
		switch k {
		case "dir":
			switch v {
			case "c2s":
				r.Dir = plugins.ClientToServer
			case "s2c":
				r.Dir = plugins.ServerToClient
			case "both":
			default:
				return bad("dir=%s: want c2s, s2c or both", v)
			}
		case "opcode":
			switch v {
			case "text":
				r.Ops = []wsframe.Opcode{wsframe.OpText}
			case "binary":
				r.Ops = []wsframe.Opcode{wsframe.OpBinary}
			case "data", "any":
			case "ping", "pong", "close", "control":
				return bad("opcode=%s: control frames are never held (a held ping would cost the connection); want text, binary or data", v)
			default:
				return bad("opcode=%s: want text, binary or data (both)", v)
			}
		case "url":
			r.URL = v
		case "conn":
			r.Conn = v
		case "match":
			re, err := regexp.Compile(v)
			if err != nil {
				return bad("match: %v", err)
			}
			r.Match = re
		case "order":
			switch v {
			case "out":
				r.Order = plugins.StepOut
			case "strict":
				r.Order = plugins.Strict
			default:
				return bad("order=%s: want out (the held message steps out of its stream) or strict (its direction waits behind it)", v)
			}
		default:
			return bad("unknown condition %q; want %s", k, strings.Join(ruleKeys, ", "))
		}
	}
	return r, nil
}

// MustParseRule is ParseRule for rules known to be valid; it panics on an error.
func MustParseRule(s string) Rule {
	r, err := ParseRule(s)
	if err != nil {
		panic(err)
	}
	return r
}

// String returns the rule as it was written.
func (r Rule) String() string { return r.text }

// Matches reports whether m, a data message as the breakpoint sees it, meets every
// condition of the rule.
func (r *Rule) Matches(m *plugins.Message) bool {
	if r.Dir != 0 && m.Dir != r.Dir {
		return false
	}
	if r.Ops == nil {
		if !m.Opcode.IsData() {
			return false
		}
	} else if !slices.Contains(r.Ops, m.Opcode) {
		return false
	}
	if r.URL != "" && (m.Conn == nil || !glob.URL(r.URL, m.Conn.URL)) {
		return false
	}
	if r.Conn != "" && (m.Conn == nil || !glob.Match(r.Conn, m.Conn.ID)) {
		return false
	}
	return r.Match == nil || r.Match.Match(m.Payload)
}
