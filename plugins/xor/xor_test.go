package xor_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/xor"
	"github.com/wstap/wstap/wsframe"
)

func newCodec(t *testing.T, spec string) (plugins.Codec, error) {
	t.Helper()
	s, err := plugins.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plugins.New(s.Name, s.Options)
	if err != nil {
		return nil, err
	}
	return p.(plugins.Codec), nil
}

func msg(p string) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: plugins.ClientToServer, Opcode: wsframe.OpBinary, Payload: []byte(p)}
}

func TestXOR(t *testing.T) {
	tests := []struct {
		spec, wire, want string
	}{
		{spec: "xor:key=hex:20", wire: "HELLO", want: "hello"},
		{spec: "xor:key=hex:0001", wire: "aaaaa", want: "a`a`a"},
		{spec: "xor:key=text:ab", wire: "\x00\x00\x00", want: "aba"},
		{spec: "xor:key=text:key", wire: "\x03\x00\x15\x07\x0a", want: "hello"},
		{spec: "xor:key=base64:AQID", wire: "\x00\x00\x00\x00\x00\x00\x00", want: "\x01\x02\x03\x01\x02\x03\x01"},
		{spec: "xor:key=text:a-key-longer-than-the-message", wire: "\x00\x00", want: "a-"},
		{spec: "xor:key=hex:ff", wire: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			c, err := newCodec(t, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			m := msg(tc.wire)
			got, err := c.Decode(context.Background(), m)
			if err != nil || string(got) != tc.want {
				t.Fatalf("Decode = %q, %v; want %q", got, err, tc.want)
			}
			if string(m.Payload) != tc.wire {
				t.Fatalf("Decode modified the payload in place: %q", m.Payload)
			}
			enc, err := c.Encode(context.Background(), m, got)
			if err != nil || string(enc) != tc.wire {
				t.Fatalf("Encode(Decode) = %q, %v; want %q", enc, err, tc.wire)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	for spec, wantErr := range map[string]string{
		"xor":                     "plugins: xor: option key: required",
		"xor:key=20":              "option key: want hex:..., base64:... or text:...",
		"xor:key=hex:2":           "option key: not hex",
		"xor:key=hex:":            "option key: empty",
		"xor:key=text:":           "option key: empty",
		"xor:key=base64:%":        "option key: not base64",
		"xor:key=hex:20,offset=1": "unknown option offset",
	} {
		if _, err := newCodec(t, spec); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want one containing %q", spec, err, wantErr)
		}
	}
	c, err := newCodec(t, "xor:key=hex:20")
	if err != nil || c.Name() != "xor" {
		t.Fatalf("%v, %v", c, err)
	}
}
