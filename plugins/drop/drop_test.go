package drop_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/drop"
	"github.com/wstap/wstap/wsframe"
)

// The rule itself is tested with the filter hook (package filter), which shares it;
// these cases pin down drop's side of it.
func TestDrop(t *testing.T) {
	u, _ := url.Parse("wss://chat.example.com/ws")
	msg := func(dir plugins.Direction, op wsframe.Opcode, payload string) *plugins.Message {
		return &plugins.Message{Conn: &plugins.Conn{ID: "c1", URL: u, Mode: plugins.Proxy}, Dir: dir, Opcode: op, Payload: []byte(payload)}
	}
	c2s, s2c := plugins.ClientToServer, plugins.ServerToClient
	text, bin := wsframe.OpText, wsframe.OpBinary
	tests := []struct {
		opts     map[string]string
		msg      *plugins.Message
		wantDrop bool
	}{
		{opts: nil, msg: msg(c2s, text, "anything"), wantDrop: true}, // no condition: drop all
		{opts: map[string]string{"dir": "c2s", "match": `"type":"telemetry"`}, msg: msg(c2s, text, `{"type":"telemetry"}`), wantDrop: true},
		{opts: map[string]string{"dir": "c2s", "match": `"type":"telemetry"`}, msg: msg(s2c, text, `{"type":"telemetry"}`)},
		{opts: map[string]string{"dir": "c2s", "match": `"type":"telemetry"`}, msg: msg(c2s, text, `{"type":"chat"}`)},
		{opts: map[string]string{"opcode": "binary", "dir": "s2c"}, msg: msg(s2c, bin, "\x00"), wantDrop: true},
		{opts: map[string]string{"opcode": "binary", "dir": "s2c"}, msg: msg(s2c, text, "\x00")},
		{opts: map[string]string{"url": "wss://*.example.com/*"}, msg: msg(c2s, text, "x"), wantDrop: true},
		{opts: map[string]string{"url": "wss://*.example.org/*"}, msg: msg(c2s, text, "x")},
	}
	for _, tc := range tests {
		p, err := plugins.New("drop", tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		h := p.(plugins.Hook)
		if h.Name() != "drop" {
			t.Fatalf("Name() = %q", h.Name())
		}
		v, err := h.OnMessage(context.Background(), tc.msg)
		if err != nil || (v.Action == plugins.Drop) != tc.wantDrop || (!tc.wantDrop && v.Action != plugins.Pass) {
			t.Errorf("%v on %v %q: %v, %v; want drop=%v", tc.opts, tc.msg.Dir, tc.msg.Payload, v.Action, err, tc.wantDrop)
		}
	}
	if _, err := plugins.New("drop", map[string]string{"match": "["}); err == nil || !strings.Contains(err.Error(), "plugins: drop: option match") {
		t.Fatalf("bad match: %v", err)
	}
}
