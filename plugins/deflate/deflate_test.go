package deflate_test

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"context"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/deflate"
	"github.com/wstap/wstap/wsframe"
)

func newCodec(t *testing.T, opts map[string]string) (plugins.Codec, error) {
	t.Helper()
	p, err := plugins.New("deflate", opts)
	if err != nil {
		return nil, err
	}
	return p.(plugins.Codec), nil
}

func msg(p []byte) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: plugins.ServerToClient, Opcode: wsframe.OpBinary, Payload: p}
}

func unhex(s string) []byte { b, _ := hex.DecodeString(s); return b }

func compress(t *testing.T, zl bool, s []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	if zl {
		w = zlib.NewWriter(&buf)
	} else {
		w, _ = flate.NewWriter(&buf, flate.BestSpeed)
	}
	w.Write(s)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeflate(t *testing.T) {
	raw, zl := map[string]string{}, map[string]string{"zlib": "true"}
	rawMember, zlMember := compress(t, false, []byte("abc")), compress(t, true, []byte("abc"))
	// An unterminated stream, as permessage-deflate sends it (sync flush, no final block).
	var sync bytes.Buffer
	fw, _ := flate.NewWriter(&sync, 1)
	fw.Write([]byte("abc"))
	fw.Flush()
	tests := []struct {
		name    string
		opts    map[string]string
		wire    []byte
		want    []byte
		wantErr string
	}{
		// From Python's zlib, wbits=-15 and the default wbits.
		{name: "raw, python", opts: raw, wire: unhex("cb48cdc9c9d751c840a200"), want: []byte("hello, hello, hello")},
		{name: "zlib, python", opts: zl, wire: unhex("78dacb48cdc9c9d751c840a200442806d5"), want: []byte("hello, hello, hello")},
		{name: "raw empty content", opts: raw, wire: compress(t, false, nil), want: []byte{}},
		{name: "zlib empty content", opts: zl, wire: compress(t, true, nil), want: []byte{}},
		{name: "raw exactly max", opts: map[string]string{"max": "1MiB"}, wire: compress(t, false, make([]byte, 1<<20)), want: make([]byte, 1<<20)},
		{name: "raw bomb", opts: map[string]string{"max": "1048575"}, wire: compress(t, false, make([]byte, 1<<20)), wantErr: "exceeds max (1048575 bytes)"},
		{name: "zlib bomb", opts: map[string]string{"zlib": "1", "max": "64KiB"}, wire: compress(t, true, make([]byte, 1<<20)), wantErr: "exceeds max (65536 bytes)"},
		{name: "zlib given raw", opts: zl, wire: rawMember, wantErr: "invalid header"},
		{name: "raw given zlib", opts: raw, wire: zlMember, wantErr: "corrupt input"},
		{name: "raw plain text", opts: raw, wire: []byte(`{"a":1}`), wantErr: "deflate"},
		{name: "zlib plain text", opts: zl, wire: []byte(`{"a":1}`), wantErr: "invalid header"},
		{name: "raw empty", opts: raw, wire: nil, wantErr: "unexpected EOF"},
		{name: "raw truncated", opts: raw, wire: rawMember[:len(rawMember)-1], wantErr: "unexpected EOF"},
		{name: "raw sync-flushed, unterminated", opts: raw, wire: sync.Bytes(), wantErr: "unexpected EOF"},
		{name: "zlib truncated checksum", opts: zl, wire: zlMember[:len(zlMember)-1], wantErr: "unexpected EOF"},
		{name: "zlib bad checksum", opts: zl, wire: func() []byte { b := bytes.Clone(zlMember); b[len(b)-1] ^= 1; return b }(), wantErr: "checksum"},
		{name: "raw trailing data", opts: raw, wire: append(bytes.Clone(rawMember), 0), wantErr: "trailing data"},
		{name: "zlib trailing data", opts: zl, wire: append(bytes.Clone(zlMember), 0), wantErr: "trailing data"},
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
	for _, tc := range []struct {
		opts map[string]string
		read func(io.Reader) (io.Reader, error)
	}{
		{opts: map[string]string{}, read: func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil }},
		{opts: map[string]string{"level": "0"}, read: func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil }},
		{opts: map[string]string{"zlib": "true", "level": "9"}, read: func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }},
	} {
		c, err := newCodec(t, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := c.Encode(context.Background(), msg(nil), text)
		if err != nil {
			t.Fatal(err)
		}
		r, err := tc.read(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("%v: %v", tc.opts, err)
		}
		if out, err := io.ReadAll(r); err != nil || !bytes.Equal(out, text) {
			t.Fatalf("%v: standard reader: %v", tc.opts, err)
		}
		if got, err := c.Decode(context.Background(), msg(enc)); err != nil || !bytes.Equal(got, text) {
			t.Fatalf("%v: Decode(Encode) = %d bytes, %v", tc.opts, len(got), err)
		}
		if stored := tc.opts["level"] == "0"; stored != (len(enc) > len(text)) {
			t.Fatalf("%v: %d bytes compressed to %d", tc.opts, len(text), len(enc))
		}
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		opts    map[string]string
		wantErr string
	}{
		{opts: map[string]string{"zlib": "maybe"}, wantErr: "plugins: deflate: option zlib"},
		{opts: map[string]string{"max": "1 parsec"}, wantErr: "option max"},
		{opts: map[string]string{"max": "0"}, wantErr: "option max"},
		{opts: map[string]string{"level": "11"}, wantErr: "option level"},
		{opts: map[string]string{"raw": "true"}, wantErr: "unknown option raw"},
	}
	for _, tc := range tests {
		if _, err := newCodec(t, tc.opts); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: error %v, want one containing %q", tc.opts, err, tc.wantErr)
		}
	}
	c, err := newCodec(t, nil)
	if err != nil || c.Name() != "deflate" {
		t.Fatalf("default codec: %v, %v", c, err)
	}
}
