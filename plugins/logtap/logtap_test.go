package logtap_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/logtap"
	"github.com/wstap/wstap/wsframe"
)

// TestOutput checks the tap's lines as wstap's text log shows them: the payload
// escaped once (by the log handler), as text when it is UTF-8 and as hex
// otherwise, cut at max without splitting a character.
func TestOutput(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]string
		dir     plugins.Direction
		op      wsframe.Opcode
		payload string
		want    string // the line after "level=INFO ", "" for no line
	}{
		{"text", nil, plugins.ClientToServer, wsframe.OpText, "hello world",
			`msg=log conn=c1 dir=c2s seq=3 opcode=text len=11 payload="hello world"`},
		{"quotes and newline escaped once", map[string]string{"label": "tap"}, plugins.ServerToClient, wsframe.OpText, "say \"hi\"\n",
			`msg=tap conn=c1 dir=s2c seq=3 opcode=text len=9 payload="say \"hi\"\n"`},
		{"unicode stays readable", nil, plugins.ClientToServer, wsframe.OpText, "café ✓",
			`msg=log conn=c1 dir=c2s seq=3 opcode=text len=9 payload="café ✓"`},
		{"binary as hex", nil, plugins.ClientToServer, wsframe.OpBinary, "\x00\xff\x10",
			`msg=log conn=c1 dir=c2s seq=3 opcode=binary len=3 hex=00ff10`},
		{"UTF-8 binary as text", nil, plugins.ClientToServer, wsframe.OpBinary, `{"a":1}`,
			`msg=log conn=c1 dir=c2s seq=3 opcode=binary len=7 payload="{\"a\":1}"`},
		{"cut at max", map[string]string{"max": "4"}, plugins.ClientToServer, wsframe.OpText, "abcdef",
			`msg=log conn=c1 dir=c2s seq=3 opcode=text len=6 shown=4 payload=abcd`},
		{"cut before a split character", map[string]string{"max": "4"}, plugins.ClientToServer, wsframe.OpText, "abcé",
			`msg=log conn=c1 dir=c2s seq=3 opcode=text len=5 shown=3 payload=abc`},
		{"binary cut", map[string]string{"max": "2"}, plugins.ClientToServer, wsframe.OpBinary, "\xff\xfe\xfd",
			`msg=log conn=c1 dir=c2s seq=3 opcode=binary len=3 shown=2 hex=fffe`},
		{"other direction not logged", map[string]string{"dir": "c2s"}, plugins.ServerToClient, wsframe.OpText, "x", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := plugins.New("log", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			tap := e.(*logtap.Hook)
			var buf bytes.Buffer
			tap.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey && len(groups) == 0 {
						return slog.Attr{}
					}
					return a
				},
			})))
			m := &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: tc.dir, Opcode: tc.op, Seq: 3, Payload: []byte(tc.payload)}
			v, err := tap.OnMessage(context.Background(), m)
			if err != nil || v.Action != plugins.Pass || len(v.Inject) != 0 {
				t.Errorf("verdict %+v, %v; want pass", v, err)
			}
			got := strings.TrimSuffix(buf.String(), "\n")
			want := ""
			if tc.want != "" {
				want = "level=INFO " + tc.want
			}
			if got != want {
				t.Errorf("logged\n\t%s\nwant\n\t%s", got, want)
			}
		})
	}
}
