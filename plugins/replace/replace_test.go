package replace_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/replace"
	"github.com/wstap/wstap/wsframe"
)

func TestReplace(t *testing.T) {
	tests := []struct {
		spec    string
		dir     plugins.Direction
		op      wsframe.Opcode
		in      string
		want    string // "" means Pass
		wantErr string
	}{
		{spec: `replace:dir=c2s,match='"user":"a"',with='"user":"admin"'`, dir: plugins.ClientToServer, in: `{"user":"a"}`, want: `{"user":"admin"}`},
		{spec: `replace:dir=c2s,match=a,with=b`, dir: plugins.ServerToClient, in: "aaa"},
		{spec: `replace:match=(\d+),with=[$1]`, dir: plugins.ServerToClient, in: "id 42", want: "id [42]"},
		{spec: `replace:match='a,b',with='c=d'`, in: "xa,by", want: "xc=dy"},
		{spec: `replace:match=.+,with=$0,literal=true`, in: "a.+b", want: "a$0b"},
		{spec: `replace:match=nothing,with=x`, in: "abc"},
		{spec: `replace:hex=true,match=dead,with=beef`, op: wsframe.OpBinary, in: "\x01\xde\xad\x02", want: "\x01\xbe\xef\x02"},
		{spec: `replace:match=a,with=b,opcode=binary`, op: wsframe.OpText, in: "a"},
		{spec: `replace:match=x,with=x`, in: "x"},
		{spec: `replace:with=x`, wantErr: "option match: required"},
		{spec: `replace:match=(,with=x`, wantErr: "option match"},
		{spec: `replace:match=a,dir=up`, wantErr: "option dir"},
		{spec: `replace:match=a,hex=true`, wantErr: "option match: not hex"},
		{spec: `replace:match=a,opcode=ping`, wantErr: "option opcode"},
		{spec: `replace:match=a,colour=red`, wantErr: "unknown option colour"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			spec, err := plugins.ParseSpec(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plugins.New(spec.Name, spec.Options)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dir, op := tc.dir, tc.op
			if dir == 0 {
				dir = plugins.ClientToServer
			}
			if op == 0 {
				op = wsframe.OpText
			}
			v, err := p.(plugins.Hook).OnMessage(context.Background(), &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: dir, Opcode: op, Payload: []byte(tc.in)})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && v.Action != plugins.Pass:
				t.Fatalf("verdict %v %q, want pass", v.Action, v.Payload)
			case tc.want != "" && (v.Action != plugins.Modify || string(v.Payload) != tc.want):
				t.Fatalf("verdict %v %q, want modify %q", v.Action, v.Payload, tc.want)
			}
		})
	}
}
