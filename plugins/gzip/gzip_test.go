package gzip_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/gzip"
	"github.com/wstap/wstap/wsframe"
)

func newCodec(t *testing.T, opts map[string]string) (plugins.Codec, error) {
	t.Helper()
	p, err := plugins.New("gzip", opts)
	if err != nil {
		return nil, err
	}
	return p.(plugins.Codec), nil
}

func msg(p []byte) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: plugins.ServerToClient, Opcode: wsframe.OpBinary, Payload: p}
}

func gz(t *testing.T, s []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(s)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGzip(t *testing.T) {
	// From `printf 'hello, hello, hello' | gzip -n -9`.
	fromGzip, _ := hex.DecodeString("1f8b0800000000000203cb48cdc9c9d751c840a2009fa1ca0913000000")
	member := gz(t, []byte("abc"))
	zeros := gz(t, make([]byte, 1<<20))
	tests := []struct {
		name    string
		opts    map[string]string
		wire    []byte
		want    []byte
		wantErr string
	}{
		{name: "gzip(1)", wire: fromGzip, want: []byte("hello, hello, hello")},
		{name: "empty content", wire: gz(t, nil), want: []byte{}},
		{name: "two members", wire: append(bytes.Clone(member), gz(t, []byte("def"))...), want: []byte("abcdef")},
		{name: "exactly max", opts: map[string]string{"max": "1MiB"}, wire: zeros, want: make([]byte, 1<<20)},
		{name: "plain integer max", opts: map[string]string{"max": "1048576"}, wire: zeros, want: make([]byte, 1<<20)},
		{name: "bomb over max", opts: map[string]string{"max": "1048575"}, wire: zeros, wantErr: "exceeds max (1048575 bytes)"},
		{name: "bomb over 1KB", opts: map[string]string{"max": "1KB"}, wire: zeros, wantErr: "exceeds max (1000 bytes)"},
		{name: "plain text", wire: []byte(`{"type":"chat","text":"hi"}`), wantErr: "invalid header"},
		{name: "short plain text", wire: []byte(`{"a":1}`), wantErr: "unexpected EOF"},
		{name: "empty", wire: nil, wantErr: "EOF"},
		{name: "truncated", wire: member[:len(member)-4], wantErr: "unexpected EOF"},
		{name: "trailing garbage", wire: append(bytes.Clone(member), "0123456789abcdef"...), wantErr: "invalid header"},
		{name: "trailing byte", wire: append(bytes.Clone(member), 0), wantErr: "unexpected EOF"},
		{name: "bad checksum", wire: func() []byte { b := bytes.Clone(member); b[len(b)-5] ^= 1; return b }(), wantErr: "checksum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newCodec(t, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Decode(context.Background(), msg(tc.wire))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode = %d bytes, %v; want an error containing %q", len(got), err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("Decode = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog. "), 100)
	sizes := map[string]int{}
	for _, level := range []string{"-1", "0", "1", "9"} {
		t.Run("level="+level, func(t *testing.T) {
			c, err := newCodec(t, map[string]string{"level": level})
			if err != nil {
				t.Fatal(err)
			}
			enc, err := c.Encode(context.Background(), msg(nil), text)
			if err != nil {
				t.Fatal(err)
			}
			// Any gzip reader reads it back, and so does the codec.
			r, err := gzip.NewReader(bytes.NewReader(enc))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := out.ReadFrom(r); err != nil || !bytes.Equal(out.Bytes(), text) {
				t.Fatalf("gzip reader: %v", err)
			}
			if got, err := c.Decode(context.Background(), msg(enc)); err != nil || !bytes.Equal(got, text) {
				t.Fatalf("Decode(Encode) = %d bytes, %v", len(got), err)
			}
			sizes[level] = len(enc)
		})
	}
	if sizes["0"] <= len(text) || sizes["9"] >= len(text)/10 {
		t.Fatalf("compressed sizes %v of %d bytes: level is not applied", sizes, len(text))
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		opts    map[string]string
		wantErr string
	}{
		{opts: map[string]string{"max": "lots"}, wantErr: "plugins: gzip: option max"},
		{opts: map[string]string{"max": "0"}, wantErr: "option max"},
		{opts: map[string]string{"max": "-5"}, wantErr: "option max"},
		{opts: map[string]string{"level": "10"}, wantErr: "option level"},
		{opts: map[string]string{"level": "-2"}, wantErr: "option level"},
		{opts: map[string]string{"level": "best"}, wantErr: "option level"},
		{opts: map[string]string{"zlib": "true"}, wantErr: "unknown option zlib"},
	}
	for _, tc := range tests {
		if _, err := newCodec(t, tc.opts); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: error %v, want one containing %q", tc.opts, err, tc.wantErr)
		}
	}
	c, err := newCodec(t, nil)
	if err != nil || c.Name() != "gzip" {
		t.Fatalf("default codec: %v, %v", c, err)
	}
}
