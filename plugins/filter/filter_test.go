package filter_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/base64"
	_ "github.com/wstap/wstap/plugins/drop"
	"github.com/wstap/wstap/plugins/filter"
	"github.com/wstap/wstap/wsframe"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "wss://anything/at/all?q=1", true},
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"abc", "ABC", false}, // case-sensitive
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a?c", "aéc", true}, // ? is one character, not one byte
		{"wss://*.example.com/*", "wss://api.example.com/socket", true},
		{"wss://*.example.com/*", "wss://a.b.example.com/deep/path?x=1", true}, // * crosses "/"
		{"wss://*.example.com/*", "wss://example.com/socket", false},
		{"wss://*.example.com/*", "ws://api.example.com/socket", false},
		{"wss://*.example.com/*", "wss://api.example.com.evil/", false},
		{"wss://*.example.com/*", "wss://evil.test/x.example.com/", true}, // documented
		{"*://example.com/*", "ws://example.com/", true},
		{"*://example.com/*", "wss://example.com/a", true},
		{"wss://example.com/chat", "wss://example.com/chat?room=1", false},
		{"wss://example.com/chat*", "wss://example.com/chat?room=1", true},
		{"ws://[::1]:8080/*", "ws://[::1]:8080/ws", true}, // [ ] are literal
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
		{"a*b*c", "abcbc", true},
		{"a**c", "ac", true},
		{"*?", "", false},
		{"*?", "x", true},
	}
	for _, tc := range tests {
		if got := filter.Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func newHook(t *testing.T, spec string) (plugins.Hook, error) {
	t.Helper()
	s, err := plugins.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plugins.New(s.Name, s.Options)
	if err != nil {
		return nil, err
	}
	return p.(plugins.Hook), nil
}

type message struct {
	url     string // "" means no URL
	dir     plugins.Direction
	op      wsframe.Opcode
	payload string
}

func (m message) build() *plugins.Message {
	c := &plugins.Conn{ID: "c1", Mode: plugins.Proxy}
	if m.url != "" {
		c.URL, _ = url.Parse(m.url)
	}
	if m.dir == 0 {
		m.dir = plugins.ClientToServer
	}
	if m.op == 0 {
		m.op = wsframe.OpText
	}
	return &plugins.Message{Conn: c, Dir: m.dir, Opcode: m.op, Payload: []byte(m.payload)}
}

// TestRule runs each rule through both hooks: filter passes exactly the messages drop
// drops.
func TestRule(t *testing.T) {
	const site = "wss://api.example.com/socket?v=2"
	tests := []struct {
		rule  string
		msg   message
		match bool
	}{
		{rule: "", msg: message{url: site, payload: "x"}, match: true},
		{rule: "", msg: message{payload: "no conn URL"}, match: true},
		{rule: "dir=c2s", msg: message{dir: plugins.ClientToServer}, match: true},
		{rule: "dir=c2s", msg: message{dir: plugins.ServerToClient}, match: false},
		{rule: "dir=s2c", msg: message{dir: plugins.ServerToClient}, match: true},
		{rule: "dir=both", msg: message{dir: plugins.ServerToClient}, match: true},
		{rule: "opcode=text", msg: message{op: wsframe.OpText}, match: true},
		{rule: "opcode=text", msg: message{op: wsframe.OpBinary}, match: false},
		{rule: "opcode=binary", msg: message{op: wsframe.OpBinary}, match: true},
		{rule: "opcode=any", msg: message{op: wsframe.OpBinary}, match: true},
		{rule: `match=^\{"type":"ping"`, msg: message{payload: `{"type":"ping","t":1}`}, match: true},
		{rule: `match=^\{"type":"ping"`, msg: message{payload: `{"t":1,"type":"ping"}`}, match: false},
		{rule: "match=telemetry", msg: message{payload: `{"type":"telemetry"}`}, match: true}, // anywhere in the payload
		{rule: "match='a,b'", msg: message{payload: "xa,by"}, match: true},
		{rule: "url=wss://*.example.com/*", msg: message{url: site}, match: true},
		{rule: "url=wss://*.example.com/*", msg: message{url: "wss://example.org/socket"}, match: false},
		{rule: "url=wss://api.example.com/socket", msg: message{url: site}, match: false}, // the query is part of the URL
		{rule: "url=*", msg: message{}, match: false},                                     // a url rule needs a URL
		{rule: "dir=s2c,opcode=text,match=hello,url=*example*", msg: message{url: site, dir: plugins.ServerToClient, payload: "hello"}, match: true},
		{rule: "dir=s2c,opcode=text,match=hello,url=*example*", msg: message{url: site, dir: plugins.ClientToServer, payload: "hello"}, match: false},
		{rule: "dir=s2c,opcode=text,match=hello,url=*example*", msg: message{url: site, dir: plugins.ServerToClient, op: wsframe.OpBinary, payload: "hello"}, match: false},
		{rule: "dir=s2c,opcode=text,match=hello,url=*example*", msg: message{url: site, dir: plugins.ServerToClient, payload: "bye"}, match: false},
		{rule: "dir=s2c,opcode=text,match=hello,url=*example*", msg: message{url: "wss://other.test/", dir: plugins.ServerToClient, payload: "hello"}, match: false},
	}
	for _, tc := range tests {
		t.Run(tc.rule+" "+tc.msg.payload, func(t *testing.T) {
			for _, name := range []string{"filter", "drop"} {
				spec := name
				if tc.rule != "" {
					spec += ":" + tc.rule
				}
				h, err := newHook(t, spec)
				if err != nil {
					t.Fatal(err)
				}
				if h.Name() != name {
					t.Fatalf("Name() = %q, want %q", h.Name(), name)
				}
				v, err := h.OnMessage(context.Background(), tc.msg.build())
				if err != nil {
					t.Fatal(err)
				}
				wantDrop := tc.match == (name == "drop")
				if (v.Action == plugins.Drop) != wantDrop || (v.Action != plugins.Drop && v.Action != plugins.Pass) || v.Inject != nil {
					t.Fatalf("%s: verdict %v, want drop=%v", spec, v.Action, wantDrop)
				}
			}
		})
	}
}

func TestOptions(t *testing.T) {
	for _, name := range []string{"filter", "drop"} {
		for rule, wantErr := range map[string]string{
			"dir=up":       "plugins: " + name + ": option dir",
			"opcode=ping":  "plugins: " + name + ": option opcode",
			"match=(":      "plugins: " + name + ": option match",
			"host=example": "unknown option host",
		} {
			if _, err := newHook(t, name+":"+rule); err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s:%s: error %v, want one containing %q", name, rule, err, wantErr)
			}
		}
	}
}

// TestChain: the rule's match sees the payload as the codecs before it decoded it, a
// drop stops the chain, and a message the codec cannot decode is not the rule's to
// drop.
func TestChain(t *testing.T) {
	codec, err := plugins.New("base64", nil)
	if err != nil {
		t.Fatal(err)
	}
	drop, err := newHook(t, "drop:match=^secret")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	after := plugins.HookFunc{HookName: "after", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		seen = append(seen, string(m.Payload))
		return plugins.Verdict{}, nil
	}}
	chain, err := plugins.NewChain(plugins.FailOpen, nil, codec, drop, after)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		wire       string
		mode       plugins.Mode
		wantAction plugins.Action
		wantSeen   bool
	}{
		{wire: "c2VjcmV0IHN0dWZm", mode: plugins.Proxy, wantAction: plugins.Drop}, // base64("secret stuff")
		{wire: "aGVsbG8=", mode: plugins.Proxy, wantAction: plugins.Pass, wantSeen: true},
		{wire: "secret, not base64", mode: plugins.Proxy, wantAction: plugins.Pass},
	}
	for _, tc := range tests {
		seen = nil
		m := message{payload: tc.wire}.build()
		m.Conn.Mode = tc.mode
		res, err := chain.Run(context.Background(), m)
		if err != nil || res.Action != tc.wantAction || (len(seen) > 0) != tc.wantSeen {
			t.Errorf("%s (%v): %v, %v, later hook saw %q; want %v, seen=%v", tc.wire, tc.mode, res.Action, err, seen, tc.wantAction, tc.wantSeen)
		}
	}
}
