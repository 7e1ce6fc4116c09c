package base64_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/base64"
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
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte(p)}
}

func TestBase64(t *testing.T) {
	// "\xfb\xff\xbf?" uses both characters that differ between the alphabets.
	const data = "\xfb\xff\xbf?>"
	tests := []struct {
		spec    string
		wire    string
		want    string // decoded
		wantErr string // Decode error
	}{
		{spec: "base64", wire: "aGVsbG8=", want: "hello"},
		{spec: "base64", wire: "+/+/Pz4=", want: data},
		{spec: "base64", wire: "", want: ""},
		{spec: "base64:variant=std", wire: "aGk=\r\n", want: "hi"},    // line breaks are ignored
		{spec: "base64", wire: "aGVsbG8", wantErr: "illegal base64"},  // padding missing
		{spec: "base64", wire: "-_-_Pz4=", wantErr: "illegal base64"}, // URL alphabet
		{spec: "base64", wire: "hello world", wantErr: "illegal base64"},
		{spec: "base64", wire: `{"a":1}`, wantErr: "illegal base64"},
		{spec: "base64", wire: "aGk9", want: "hi="},
		{spec: "base64", wire: "aGl=", wantErr: "illegal base64"}, // non-zero trailing bits (strict)
		{spec: "base64:variant=url", wire: "-_-_Pz4=", want: data},
		{spec: "base64:variant=url", wire: "+/+/Pz4=", wantErr: "illegal base64"},
		{spec: "base64:variant=rawstd", wire: "+/+/Pz4", want: data},
		{spec: "base64:variant=rawstd", wire: "+/+/Pz4=", wantErr: "illegal base64"},
		{spec: "base64:variant=rawurl", wire: "-_-_Pz4", want: data},
		{spec: "base64:variant=rawurl", wire: "+/+/Pz4", wantErr: "illegal base64"},
	}
	for _, tc := range tests {
		t.Run(tc.spec+" "+tc.wire, func(t *testing.T) {
			c, err := newCodec(t, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if c.Name() != "base64" {
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
			enc, err := c.Encode(context.Background(), msg(tc.wire), got)
			if want := strings.TrimRight(tc.wire, "\r\n"); err != nil || string(enc) != want {
				t.Fatalf("Encode = %q, %v; want %q", enc, err, want)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	for spec, wantErr := range map[string]string{
		"base64:variant=hex":  "plugins: base64: option variant: \"hex\", want std, url, rawstd or rawurl",
		"base64:variant=":     "option variant",
		"base64:alphabet=url": "unknown option alphabet",
	} {
		if _, err := newCodec(t, spec); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want one containing %q", spec, err, wantErr)
		}
	}
}
