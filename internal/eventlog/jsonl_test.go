package eventlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"reflect"
	"strings"
	"sync"
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
	j := NewJSONL(&out, Block)
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
	for _, s := range []string{"", "plain", `"quoted" \ back`, "tab\tnl\ncr\r\x00\x1f\x7f", "é中😀", "\u2028\u2029", "bad \xff utf8 \xc3", strings.Repeat("a\"", 1000),
		// Dense escapes switch the scan to a byte at a time; what follows must still
		// be validated and escaped.
		strings.Repeat(`{"a":"b\\"},`, 50) + "é✓\u2028 tail", strings.Repeat(`{"a":"b"},`, 50) + "é \xff\u2029 tail\x01"} {
		var got string
		enc := appendString(nil, s)
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("appendString(%q) = %s is not JSON: %v", s, enc, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want {
			t.Errorf("appendString(%q) decodes to %q, want %q", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello \"world\"\n")
	f.Add(strings.Repeat(`{"k":"v"}`, 20) + "é\u2028\xff")
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
		// As a payload: text exactly when valid UTF-8, base64 otherwise.
		var rec map[string]string
		if err := json.Unmarshal(append(appendPayload([]byte(`{"x":"y"`), "payload", "encoding", []byte(s), true), '}'), &rec); err != nil {
			t.Fatalf("appendPayload(%q) is not JSON: %v", s, err)
		}
		if utf8.ValidString(s) {
			if rec["encoding"] != "text" || rec["payload"] != s {
				t.Fatalf("appendPayload(%q) = %v, want it as text", s, rec)
			}
		} else if p, err := base64.StdEncoding.DecodeString(rec["payload"]); rec["encoding"] != "base64" || err != nil || string(p) != s {
			t.Fatalf("appendPayload(%q) = %v, want it as base64", s, rec)
		}
	})
}

// TestAppendStringEveryPosition puts each byte that needs attention at every offset
// of a string long enough for the word-at-a-time scan, next to every neighbour class,
// so a wrong bit trick in special shows up as a byte copied raw.
func TestAppendStringEveryPosition(t *testing.T) {
	specials := []string{"\x00", "\x1f", "\"", "\\", "\n", "é", "\u2028", "\u2029", "\u2027", "\u20ac", "\xff", "😀"}
	fillers := []string{"a", "\x20", "\x7f", "!", "]", "\x21"}
	for _, sp := range specials {
		for _, fill := range fillers {
			for n := range 20 {
				for pos := 0; pos <= n; pos++ {
					s := strings.Repeat(fill, pos) + sp + strings.Repeat(fill, n-pos)
					enc := appendString(nil, s)
					var got string
					if err := json.Unmarshal(enc, &got); err != nil {
						t.Fatalf("appendString(%q) = %s is not JSON: %v", s, enc, err)
					}
					want := strings.ToValidUTF8(s, "\ufffd")
					if got != want {
						t.Fatalf("appendString(%q) decodes to %q, want %q", s, got, want)
					}
					if bytes.ContainsAny(enc, "\x00\x1f\u2028") {
						t.Fatalf("appendString(%q) = %q holds a raw control or U+2028", s, enc)
					}
				}
			}
		}
	}
}

// BenchmarkAppendPayload compares the escaper with encoding/json's (the baseline, in
// the same run) on text payloads: ASCII prose, JSON with many quotes, and CJK.
func BenchmarkAppendPayload(b *testing.B) {
	prose := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 100))
	jsonish := []byte(strings.Repeat(`{"user":"alice","text":"hi","n":1},`, 100))
	cjk := []byte(strings.Repeat("中文文本，", 200))
	for _, c := range []struct {
		name string
		p    []byte
	}{{"prose", prose}, {"json", jsonish}, {"cjk", cjk}} {
		b.Run(c.name+"/wstap", func(b *testing.B) {
			b.SetBytes(int64(len(c.p)))
			buf := make([]byte, 0, 4*len(c.p))
			for b.Loop() {
				buf = appendPayload(buf[:0], "payload", "encoding", c.p, true)
			}
		})
		b.Run(c.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(c.p)))
			var out bytes.Buffer
			enc := json.NewEncoder(&out)
			s := string(c.p)
			for b.Loop() {
				out.Reset()
				if err := enc.Encode(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONLMessage(b *testing.B) {
	var out bytes.Buffer
	j := NewJSONL(&out, Block)
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

// TestJSONLConcurrentBuffers writes lines from several goroutines, with payloads of
// up to twice the buffer size and Flush calls in between, through the two-buffer
// writer; every line must come out whole, once, and in each goroutine's order.
func TestJSONLConcurrentBuffers(t *testing.T) {
	var out bytes.Buffer
	j := NewJSONL(&out, Block)
	c := testConn()
	const writers, each = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := &plugins.Record{Conn: c, Dir: plugins.Direction(w % 2), Opcode: wsframe.OpText, Time: time.Now()}
			for i := range each {
				size := (i * 7919) % 3000
				if i%100 == 99 {
					size = 2 * bufferSize // larger than a buffer: formatted into a grown one
				}
				r.Seq = uint64(w*each + i)
				r.Payload = bytes.Repeat([]byte{byte('a' + w)}, size)
				r.Len = int64(size)
				j.Message(r)
				if i%50 == 0 {
					if err := j.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]uint64, writers)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	for n, line := range lines {
		var ev struct {
			Seq     uint64
			Len     int
			Payload string
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		w := ev.Seq / each
		if ev.Seq%each != next[w] || len(ev.Payload) != ev.Len || strings.Trim(ev.Payload, string(rune('a'+w))) != "" {
			t.Fatalf("line %d: seq %d (want %d), payload of %d bytes for len %d", n, ev.Seq, w*each+next[w], len(ev.Payload), ev.Len)
		}
		next[w]++
	}
	if cap(j.buf) > maxKept {
		t.Errorf("after huge lines the buffer kept %d bytes of capacity, want ≤ %d", cap(j.buf), maxKept)
	}
}

// failWriter accepts n bytes and then fails.
type failWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errDiskFull
	}
	f.n -= len(p)
	return len(p), nil
}

// TestJSONLWriteError checks that a failing writer's error reaches Flush, Err and
// Close, that later lines are dropped without blocking, and that lines after Close
// do not panic.
func TestJSONLWriteError(t *testing.T) {
	j := NewJSONL(&failWriter{n: 100}, Block)
	c := testConn()
	r := &plugins.Record{Conn: c, Opcode: wsframe.OpText, Payload: []byte("hello"), Len: 5, Time: time.Now()}
	j.Message(r)
	if err := j.Flush(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Flush = %v, want %v", err, errDiskFull)
	}
	for range 10000 { // more than a buffer's worth
		j.Message(r)
	}
	if err := j.Err(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Err = %v, want %v", err, errDiskFull)
	}
	if err := j.Close(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Close = %v, want %v", err, errDiskFull)
	}
	j.Message(r)
	j.Closed(c, plugins.CloseEvent{})

	var out bytes.Buffer
	ok := NewJSONL(&out, Block)
	if err := ok.Close(); err != nil {
		t.Fatal(err)
	}
	ok.Message(r) // after Close: dropped, no panic
	if out.Len() != 0 {
		t.Fatalf("a line written after Close reached the writer: %q", out.String())
	}
}

// TestTimeClamped: a time RFC 3339 cannot write (a capture file may say anything)
// is written as the nearest one it can, and reads back.
func TestTimeClamped(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(10000, 1, 1, 4, 0, 0, 0, time.UTC), "9999-12-31T23:59:59.999999Z"},
		{time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("x", -2*3600)), "9999-12-31T23:59:59.999999Z"},
		{time.Date(-1, 12, 31, 23, 0, 0, 0, time.UTC), "0000-01-01T00:00:00.000000Z"},
		{time.Date(2026, 12, 6, 10, 0, 0, 1500, time.UTC), "2026-12-06T10:00:00.000001Z"},
	} {
		var buf bytes.Buffer
		j := NewJSONL(&buf, Block)
		j.Opened(&plugins.Conn{ID: "c1"}, tc.t)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), `"time":"`+tc.want+`"`) {
			t.Errorf("%v: %s; want %s", tc.t, buf.String(), tc.want)
		}
		if err := Read(&buf, func(*Event) error { return nil }); err != nil {
			t.Errorf("%v: does not read back: %v", tc.t, err)
		}
	}
}
