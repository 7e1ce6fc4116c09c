package intercept_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/wstap/wstap/intercept"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// TestRuleMatches: which messages a rule's conditions select, as the breakpoint
// sees them (the decoded payload).
func TestRuleMatches(t *testing.T) {
	chat := &plugins.Conn{ID: "c3", URL: &url.URL{Scheme: "wss", Host: "chat.example.com", Path: "/socket"}}
	feed := &plugins.Conn{ID: "c12", URL: &url.URL{Scheme: "ws", Host: "feed.example.org:8080", Path: "/live"}}
	msg := func(c *plugins.Conn, dir plugins.Direction, op wsframe.Opcode, p string) *plugins.Message {
		return &plugins.Message{Conn: c, Dir: dir, Opcode: op, Payload: []byte(p)}
	}
	c2s, s2c := plugins.ClientToServer, plugins.ServerToClient
	transfer := msg(chat, c2s, wsframe.OpText, `{"op":"transfer","amount":5}`)
	for _, tc := range []struct {
		rule string
		m    *plugins.Message
		want bool
	}{
		{"dir=both", transfer, true},
		{"dir=c2s", transfer, true},
		{"dir=s2c", transfer, false},
		{"dir=s2c", msg(chat, s2c, wsframe.OpBinary, "x"), true},
		{"dir=both", msg(chat, c2s, wsframe.OpPing, "x"), false},
		{"dir=both", msg(chat, s2c, wsframe.OpClose, ""), false},
		{"opcode=binary", transfer, false},
		{"opcode=text", transfer, true},
		{"opcode=data", msg(feed, s2c, wsframe.OpBinary, "\x00"), true},
		{"url=*chat*", transfer, true},
		{"url=*chat*", msg(feed, c2s, wsframe.OpText, "transfer"), false},
		{"url=*.example.com", transfer, true},
		{"url=feed.example.org:8080", msg(feed, c2s, wsframe.OpText, ""), true},
		{"url=WSS://CHAT.example.com/*", transfer, true},
		{"conn=c3", transfer, true},
		{"conn=c1?", msg(feed, c2s, wsframe.OpText, ""), true},
		{"conn=c1?", transfer, false},
		{"match=transfer", transfer, true},
		{"match=^transfer", transfer, false},
		{`match='"amount":\d+'`, transfer, true},
		{"match=(?i)TRANSFER", transfer, true},
		{"dir=c2s,url=*chat*,match=transfer", transfer, true},
		{"dir=c2s,url=*chat*,match=withdraw", transfer, false},
		{"dir=s2c,url=*chat*,match=transfer", transfer, false},
		{"match=transfer,order=strict", transfer, true},
	} {
		r, err := intercept.ParseRule(tc.rule)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.rule, err)
			continue
		}
		if got := r.Matches(tc.m); got != tc.want {
			t.Errorf("%q matches %s %s %q on %s: %v, want %v", tc.rule, tc.m.Dir, tc.m.Opcode, tc.m.Payload, tc.m.Conn.ID, got, tc.want)
		}
		if r.String() != tc.rule {
			t.Errorf("%q reads back as %q", tc.rule, r.String())
		}
	}
}

// TestParseRule: orders, and the errors a person must be able to act on.
func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		rule  string
		order plugins.Order
		err   string // a part of the error; "" for none
	}{
		{"dir=c2s", plugins.StepOut, ""},
		{"dir=c2s,order=out", plugins.StepOut, ""},
		{"dir=c2s,order=strict", plugins.Strict, ""},
		{"", 0, "empty rule"},
		{"dir=up", 0, "dir=up: want c2s, s2c or both"},
		{"opcode=ping", 0, "control frames are never held"},
		{"opcode=frame", 0, "want text, binary or data"},
		{"order=later", 0, "want out"},
		{"match=(", 0, "match: error parsing regexp"},
		{"host=x", 0, `unknown condition "host"`},
		{"match='a,b", 0, `rule "match='a,b"`},
	} {
		r, err := intercept.ParseRule(tc.rule)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseRule(%q): %v", tc.rule, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseRule(%q) = %v, want an error with %q", tc.rule, err, tc.err)
		case tc.err == "" && r.Order != tc.order:
			t.Errorf("ParseRule(%q).Order = %v, want %v", tc.rule, r.Order, tc.order)
		}
	}
}

// TestControllerBreak: the switch and the first matching rule's order.
func TestControllerBreak(t *testing.T) {
	c := intercept.New(intercept.Config{Settings: intercept.Settings{Enabled: true, Rules: []intercept.Rule{
		intercept.MustParseRule("dir=c2s,match=a,order=strict"), intercept.MustParseRule("match=a")}}})
	defer c.Close()
	conn := &plugins.Conn{ID: "c1"}
	ctx := context.Background()
	if o, ok := c.Break(ctx, &plugins.Message{Conn: conn, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("a")}); !ok || o != plugins.Strict {
		t.Fatalf("c2s: %v %v", o, ok)
	}
	if o, ok := c.Break(ctx, &plugins.Message{Conn: conn, Dir: plugins.ServerToClient, Opcode: wsframe.OpText, Payload: []byte("a")}); !ok || o != plugins.StepOut {
		t.Fatalf("s2c: %v %v", o, ok)
	}
	if c.Settings().Timeout != intercept.DefaultTimeout {
		t.Fatalf("timeout %s", c.Settings().Timeout)
	}
	v0, changed := c.Changes()
	st := c.Settings()
	st.Enabled = false
	c.SetSettings(st)
	select {
	case <-changed:
	default:
		t.Fatal("no change signalled")
	}
	if v, _ := c.Changes(); v == v0 {
		t.Fatal("the version did not change")
	}
	if _, ok := c.Break(ctx, &plugins.Message{Conn: conn, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("a")}); ok {
		t.Fatal("held while off")
	}
}

// FuzzParseRule: any text is a rule or an error, never a panic; a rule reads back
// as it was written and parses again to a rule that matches the same message.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"dir=c2s,url=*chat*,match=transfer", "order=strict", "match='a,b'", "opcode=binary,conn=c?", "dir=both,_=x", ""} {
		f.Add(s, []byte(`{"op":"transfer"}`))
	}
	conn := &plugins.Conn{ID: "c1", URL: &url.URL{Scheme: "ws", Host: "chat.example", Path: "/chat"}}
	f.Fuzz(func(t *testing.T, s string, payload []byte) {
		r, err := intercept.ParseRule(s)
		if err != nil {
			return
		}
		again, err := intercept.ParseRule(r.String())
		if err != nil {
			t.Fatalf("%q parsed, but its String %q does not: %v", s, r.String(), err)
		}
		m := &plugins.Message{Conn: conn, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: payload}
		if r.Matches(m) != again.Matches(m) || r.Order != again.Order {
			t.Fatalf("%q and its reparse disagree", s)
		}
	})
}
