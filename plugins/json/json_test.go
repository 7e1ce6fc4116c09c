package json_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/json"
	_ "github.com/wstap/wstap/plugins/replace"
	"github.com/wstap/wstap/wsframe"
)

func newPlugin(t *testing.T, spec string) (plugins.Element, error) {
	t.Helper()
	s, err := plugins.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	return plugins.New(s.Name, s.Options)
}

func msg(p string) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1", Mode: plugins.Proxy}, Dir: plugins.ServerToClient, Opcode: wsframe.OpText, Payload: []byte(p)}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		spec, wire string
		want       string // decoded
		wantErr    string
	}{
		{spec: "json", wire: `{"a":1,"b":[true,null,"x"]}`, want: "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    null,\n    \"x\"\n  ]\n}"},
		{spec: "json:style=pretty", wire: ` [1, {}] `, want: "[\n  1,\n  {}\n]"},
		{spec: "json", wire: `"just a string"`, want: `"just a string"`},
		{spec: "json", wire: `{"n":1.50e+3,"s":"\u00e9<>&"}`, want: "{\n  \"n\": 1.50e+3,\n  \"s\": \"\\u00e9<>&\"\n}"}, // tokens keep their bytes
		{spec: "json:style=compact", wire: "{ \"a\" : 1 ,\n \"b\" : [ 1 , 2 ] }\n", want: `{"a":1,"b":[1,2]}`},
		{spec: "json:style=compact", wire: `{"a":1}`, want: `{"a":1}`},
		{spec: "json", wire: `{"a":1`, wantErr: "not a valid JSON value"},
		{spec: "json", wire: `{"a":1}{"b":2}`, wantErr: "not a valid JSON value"},
		{spec: "json", wire: `hello`, wantErr: "not a valid JSON value"},
		{spec: "json", wire: ``, wantErr: "not a valid JSON value"},
		{spec: "json:style=compact", wire: `{'a':1}`, wantErr: "not a valid JSON value"},
	}
	for _, tc := range tests {
		t.Run(tc.spec+" "+tc.wire, func(t *testing.T) {
			p, err := newPlugin(t, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			c := p.(plugins.Codec)
			if c.Name() != "json" {
				t.Fatalf("Name() = %q", c.Name())
			}
			got, err := c.Decode(context.Background(), msg(tc.wire))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode = %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Decode = %q, %v; want %q", got, err, tc.want)
			}
			// Encode compacts whatever spacing the decoded form has.
			enc, err := c.Encode(context.Background(), msg(tc.wire), got)
			if err != nil || strings.ContainsAny(string(enc), "\n") || strings.Contains(string(enc), ": ") {
				t.Fatalf("Encode = %q, %v; want compact JSON", enc, err)
			}
		})
	}
}

func TestEncodeInvalid(t *testing.T) {
	p, _ := newPlugin(t, "json")
	enc, err := p.(plugins.Codec).Encode(context.Background(), msg(`{"a":1}`), []byte(`{"a":1,}`))
	if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("Encode = %q, %v; want an error", enc, err)
	}
}

// TestChain: a hook after the json codec sees pretty JSON, and only a changed message
// is re-encoded (compact); an unchanged one keeps its original spacing.
func TestChain(t *testing.T) {
	codec, err := newPlugin(t, "json")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := newPlugin(t, `replace:match='"admin": false',with='"admin": true'`)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := plugins.NewChain(plugins.FailOpen, nil, codec, rep)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		wire       string
		wantAction plugins.Action
		wantOut    string
	}{
		{wire: `{"user": "eve",  "admin":false}`, wantAction: plugins.Modify, wantOut: `{"user":"eve","admin":true}`},
		{wire: `{"user": "bob",  "admin":true}`, wantAction: plugins.Pass},
		// Not JSON: the codec declines it, so the replace written for JSON skips it.
		{wire: `not json, "admin": false`, wantAction: plugins.Pass},
	}
	for _, tc := range tests {
		res, err := chain.Run(context.Background(), msg(tc.wire))
		if err != nil || res.Action != tc.wantAction || string(res.Payload) != tc.wantOut {
			t.Errorf("%s: %v %q, %v; want %v %q", tc.wire, res.Action, res.Payload, err, tc.wantAction, tc.wantOut)
		}
	}
}

func TestOptions(t *testing.T) {
	for spec, wantErr := range map[string]string{
		"json:style=yaml": `plugins: json: option style: "yaml", want pretty or compact`,
		"json:indent=4":   "unknown option indent",
	} {
		if _, err := newPlugin(t, spec); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want one containing %q", spec, err, wantErr)
		}
	}
}
