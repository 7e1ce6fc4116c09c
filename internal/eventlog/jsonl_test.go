package eventlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

func testConn() *plugins.Conn {
	u, _ := url.Parse("wss://example.test/chat?room=1")
	return &plugins.Conn{ID: "c1", URL: u, Mode: plugins.Proxy,
		Client:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5412},
		Server:     &net.TCPAddr{IP: net.IPv4(93, 184, 216, 34), Port: 443},
		Extensions: "permessage-deflate"}
}

// TestJSONLSchema writes one event of each kind and decodes the lines with
// encoding/json, checking every field of the documented schema.
func TestJSONLSchema(t *testing.T) {
	var out bytes.Buffer
	j := NewJSONL(&out)
	c := testConn()
	ts := time.Date(2026, 11, 25, 20, 15, 1, 123456789, time.FixedZone("X", 3600))
	j.Opened(c, ts)
	j.Message(&plugins.Record{Conn: c, Dir: plugins.ClientToServer, Seq: 0, Opcode: wsframe.OpText, Time: ts,
		Payload: []byte("hi websocket"), Len: 12, Frames: 1, Hooked: true})
	j.Message(&plugins.Record{Conn: c, Dir: plugins.ServerToClient, Seq: 3, Opcode: wsframe.OpBinary, Time: ts,
		Payload: []byte{0, 1, 0xff}, Len: 3, Frames: 2, Compressed: true, Decoded: []byte("plain \"text\"\n"), Modified: true, Hooked: true})
	j.Message(&plugins.Record{Conn: c, Dir: plugins.ClientToServer, Seq: 1, Opcode: wsframe.OpText, Time: ts,
		Payload: []byte("\xff\xfe"), Len: 2, Frames: 1, Dropped: true})
	j.Closed(c, plugins.CloseEvent{Time: ts, Code: 4001, Reason: "bye", By: "client"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []map[string]any{
		{"event": "open", "time": "2026-11-25T19:15:01.123456Z", "conn": "c1", "url": "wss://example.test/chat?room=1",
			"client": "127.0.0.1:5412", "server": "93.184.216.34:443", "subprotocol": "", "extensions": "permessage-deflate", "mode": "proxy"},
		{"event": "message", "time": "2026-11-25T19:15:01.123456Z", "conn": "c1", "dir": "c2s", "seq": 0.0, "opcode": "text", "len": 12.0,
			"payload": "hi websocket", "encoding": "text", "frames": 1.0, "compressed": false, "modified": false, "dropped": false, "injected": false, "hooked": true},
		{"event": "message", "time": "2026-11-25T19:15:01.123456Z", "conn": "c1", "dir": "s2c", "seq": 3.0, "opcode": "binary", "len": 3.0,
			"payload": base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff}), "encoding": "base64", "frames": 2.0, "compressed": true,
			"decoded": "plain \"text\"\n", "decoded_encoding": "text", "modified": true, "dropped": false, "injected": false, "hooked": true},
		{"event": "message", "time": "2026-11-25T19:15:01.123456Z", "conn": "c1", "dir": "c2s", "seq": 1.0, "opcode": "text", "len": 2.0,
			"payload": "//4=", "encoding": "base64", "frames": 1.0, "compressed": false, "modified": false, "dropped": true, "injected": false, "hooked": false},
		{"event": "close", "time": "2026-11-25T19:15:01.123456Z", "conn": "c1", "code": 4001.0, "reason": "bye", "by": "client"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d:\n got %v\nwant %v", i, got, want[i])
		}
	}
}

// TestAppendStringMatchesEncodingJSON checks the hand-written escaper against
// encoding/json's decoder on awkward strings.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "tab\tnl\ncr\r\x00\x1f\x7f", "é中😀", "\u2028\u2029", "bad \xff utf8 \xc3", strings.Repeat("a\"", 1000)} {
		var got string
		enc := appendString(nil, s)
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("appendString(%q) = %s is not JSON: %v", s, enc, err)
		}
		// Ranging over a string yields U+FFFD for each invalid byte, as the escaper does.
		var want strings.Builder
		for _, r := range s {
			want.WriteRune(r)
		}
		if got != want.String() {
			t.Errorf("appendString(%q) decodes to %q, want %q", s, got, want.String())
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello \"world\"\n")
	f.Add("\xff\x00é")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		enc := appendString(nil, s)
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("appendString(%q) = %s is not JSON: %v", s, enc, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("appendString(%q) decodes to %q", s, got)
		}
	})
}

func BenchmarkJSONLMessage(b *testing.B) {
	var out bytes.Buffer
	j := NewJSONL(&out)
	defer j.Close()
	c := testConn()
	r := &plugins.Record{Conn: c, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Time: time.Now(),
		Payload: []byte(`{"seq":1,"user":"alice","text":"the quick brown fox"}`), Frames: 1, Hooked: true}
	r.Len = int64(len(r.Payload))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Seq = uint64(i)
		j.Message(r)
		if out.Len() > 1<<20 {
			j.mu.Lock()
			out.Reset()
			j.mu.Unlock()
		}
	}
}
