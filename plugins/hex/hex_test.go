package hex_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/hex"
	"github.com/wstap/wstap/wsframe"
)

func msg(p string) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte(p)}
}

func TestHex(t *testing.T) {
	p, err := plugins.New("hex", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := p.(plugins.Codec)
	if c.Name() != "hex" {
		t.Fatalf("Name() = %q", c.Name())
	}
	tests := []struct {
		wire, want string
		newPlain   string // what a hook changes it to
		wantEnc    string // Encode of newPlain
		wantErr    string
	}{
		{wire: "68656c6c6f", want: "hello", newPlain: "hi\xff", wantEnc: "6869ff"},
		{wire: "DEADBEEF", want: "\xde\xad\xbe\xef", newPlain: "\xca\xfe", wantEnc: "CAFE"}, // keeps uppercase
		{wire: "DeadBeef", want: "\xde\xad\xbe\xef", newPlain: "\xca\xfe", wantEnc: "cafe"}, // mixed: lowercase
		{wire: "0123456789", want: "\x01\x23\x45\x67\x89", newPlain: "\xab", wantEnc: "ab"}, // no letters: lowercase
		{wire: "", want: "", newPlain: "a", wantEnc: "61"},
		{wire: "abc", wantErr: "odd length"},
		{wire: "hello!", wantErr: "invalid byte"},
		{wire: "de ad", wantErr: "invalid byte"},
		{wire: "0x41", wantErr: "invalid byte"},
	}
	for _, tc := range tests {
		t.Run(tc.wire, func(t *testing.T) {
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
			enc, err := c.Encode(context.Background(), msg(tc.wire), []byte(tc.newPlain))
			if err != nil || string(enc) != tc.wantEnc {
				t.Fatalf("Encode = %q, %v; want %q", enc, err, tc.wantEnc)
			}
		})
	}
	if _, err := plugins.New("hex", map[string]string{"upper": "true"}); err == nil || !strings.Contains(err.Error(), "unknown option upper") {
		t.Fatalf("hex:upper=true: %v, want an unknown option error", err)
	}
}
