// Package filter is the "filter" hook, which passes only the messages matching a rule
// and drops the others, and the home of [Rule], the message rule it shares with the
// "drop" hook (package drop), which drops the messages matching it.
//
//	--hook 'filter:url=wss://*.example.com/*'            # only this site's messages
//	--hook 'filter:dir=s2c,opcode=text,match=^\{'         # only JSON-looking server text
//	--hook base64 --hook 'filter:match=^(ping|pong)$'
//
// A rule has four conditions, all optional; a message matches when every condition
// set holds (a rule with none matches every message):
//
//   - dir: c2s, s2c or both;
//   - opcode: text, binary or any;
//   - match: a Go regular expression (RE2) found anywhere in the payload, as the
//     codecs before the hook decoded it (anchor it with ^ and $ to match it whole);
//   - url: a glob matched against the whole connection URL as a string, scheme,
//     host, port, path and query included (wss://host:8443/path?q=1). In the glob,
//     a "*" matches any run of characters, "/" included, a "?" matches exactly one
//     character and every other character matches itself, case-sensitively; "["
//     and "]" are ordinary characters (IPv6 hosts). So wss://*.example.com/*
//     matches every path on every subdomain, but not wss://example.com/; write
//     *://example.com/* for both schemes, and end a pattern with "*" to allow a
//     query. Since "*" crosses "/", it also matches the unlikely
//     wss://evil.test/x.example.com/; a url rule selects traffic, it is no security
//     boundary.
//
// Dropping a message means it is not forwarded and later hooks do not see it. In
// sniff mode nothing can be dropped: the log says which messages would be (would_drop).
package filter

import (
	"context"
	"regexp"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// RuleOptions documents the options [NewRule] reads, for the registrations of the
// hooks that use a rule.
var RuleOptions = []plugins.OptionDoc{
	{Name: "dir", Usage: "c2s, s2c or both", Default: "both"},
	{Name: "opcode", Usage: "text, binary or any", Default: "any"},
	{Name: "match", Usage: "a Go regular expression (RE2) found in the payload", Default: "any payload"},
	{Name: "url", Usage: "a glob on the whole connection URL: * matches anything, / included; ? one character", Default: "any URL"},
}

func init() {
	plugins.Register(plugins.Registration{
		Name:        "filter",
		Description: "pass only the messages matching a rule; the others are dropped from the traffic, never reaching the peer (to narrow only the view: --show)",
		Options:     RuleOptions,
		New:         New,
	})
}

// Rule is a condition on messages; the zero Rule matches every message.
type Rule struct {
	dir    plugins.Direction // 0: both
	opcode wsframe.Opcode    // 0: any
	re     *regexp.Regexp    // nil: any payload
	url    string            // "": any URL
}

// NewRule reads a rule from the options dir, opcode, match and url.
func NewRule(o *plugins.Options) (Rule, error) {
	var r Rule
	var err error
	if r.dir, err = o.Direction("dir"); err != nil {
		return Rule{}, err
	}
	switch op := o.String("opcode", "any"); op {
	case "any", "":
	case "text":
		r.opcode = wsframe.OpText
	case "binary":
		r.opcode = wsframe.OpBinary
	default:
		return Rule{}, o.Errorf("opcode", "%q, want text, binary or any", op)
	}
	if expr := o.String("match", ""); expr != "" {
		if r.re, err = regexp.Compile(expr); err != nil {
			return Rule{}, o.Errorf("match", "%v", err)
		}
	}
	r.url = o.String("url", "")
	return r, nil
}

// Match reports whether m meets every condition of the rule. A rule with a url
// condition does not match messages of a connection without a URL.
func (r Rule) Match(m *plugins.Message) bool {
	if r.dir != 0 && m.Dir != r.dir {
		return false
	}
	if r.opcode != 0 && m.Opcode != r.opcode {
		return false
	}
	if r.url != "" {
		if m.Conn == nil || m.Conn.URL == nil || !Glob(r.url, m.Conn.URL.String()) {
			return false
		}
	}
	return r.re == nil || r.re.Match(m.Payload)
}

// Glob reports whether s matches pattern, in which * matches any run of characters
// (including none, and including "/"), ? matches exactly one character (one rune) and
// every other character matches itself.
func Glob(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti := 0, 0
	star, mark := -1, 0 // position of the last * in p, and where in t it started matching
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			// Let the last * absorb one more character and retry after it.
			mark++
			pi, ti = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// Hook is the filter hook: it drops the messages its rule does not match.
type Hook struct {
	rule Rule
}

// New builds a filter hook from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	r, err := NewRule(o)
	if err != nil {
		return nil, err
	}
	return &Hook{rule: r}, nil
}

// Name returns "filter".
func (h *Hook) Name() string { return "filter" }

// OnMessage passes m when the rule matches it and drops it otherwise.
func (h *Hook) OnMessage(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if h.rule.Match(m) {
		return plugins.Verdict{}, nil
	}
	return plugins.Verdict{Action: plugins.Drop}, nil
}

var _ plugins.Hook = (*Hook)(nil)
