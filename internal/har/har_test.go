package har_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/har"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// payloadCase is one tricky payload of the round trips.
type payloadCase struct {
	name    string
	op      wsframe.Opcode
	payload []byte
}

func trickyPayloads() []payloadCase {
	huge := bytes.Repeat([]byte("0123456789abcdef\"\\\n"), 1<<12) // 76 KiB, past every buffer, escapes throughout
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	return []payloadCase{
		{"text", wsframe.OpText, []byte(`{"op":"hello","n":1}`)},
		{"empty text", wsframe.OpText, []byte{}},
		{"empty binary", wsframe.OpBinary, []byte{}},
		{"binary every byte", wsframe.OpBinary, bin},
		{"binary that is UTF-8", wsframe.OpBinary, []byte("plain")},
		{"invalid UTF-8 text", wsframe.OpText, []byte("caf\xe9 \xff\xfe end")},
		{"unicode", wsframe.OpText, []byte("héllo 世界 🎉 \u2028\u2029 \ufeff")},
		{"html", wsframe.OpText, []byte(`<img src=x onerror=alert(1)></script>&amp;`)},
		{"escape sequences", wsframe.OpText, []byte("\x1b[31mred\x1b[0m \x1b]0;title\x07 \x00\x01\x7f \r\n\t")},
		{"huge text", wsframe.OpText, huge},
		{"huge binary", wsframe.OpBinary, append(huge, 0xff)},
		{"close", wsframe.OpClose, []byte("\x03\xe8bye")},
		{"ping", wsframe.OpPing, []byte("\x00\xffp")},
		{"pong", wsframe.OpPong, []byte{}},
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// sessionLog writes, with the event log's own writer, a session with every kind of
// event and field: the tricky payloads both ways, hooks' changes, a truncated
// message, a refused upgrade, a sniffed connection without its handshake and with
// the capture's events, two connections interleaved, and one never closed.
func sessionLog(t *testing.T) []byte {
	t.Helper()
	b, err := session()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var session = sync.OnceValues(func() ([]byte, error) {
	var out bytes.Buffer
	j := eventlog.NewJSONL(&out, eventlog.Block)
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	c1 := &plugins.Conn{ID: "c1", URL: mustURL("wss://chat.example/ws?room=1&name=a%20b&flag"), Mode: plugins.Proxy,
		Method: "GET", Target: "/ws?room=1&name=a%20b&flag", Proto: "HTTP/1.1",
		Request: http.Header{"Host": {"chat.example"}, "Upgrade": {"websocket"}, "Connection": {"Upgrade"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}, "Cookie": {`sid=1; theme="dark"`},
			"X-Multi": {"one", "two"}, "Origin": {"https://chat.example"}},
		Status: 101, Reason: "Switching Protocols", ResponseProto: "HTTP/1.1",
		Response: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Accept": {"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
			"Sec-Websocket-Protocol": {"chat"}, "Set-Cookie": {"sid=2; Path=/; HttpOnly; Secure", "x=y; Expires=Wed, 21 Oct 2035 07:28:00 GMT"}},
		Client: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50123}, Server: &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443},
		Subprotocol: "chat", Extensions: "permessage-deflate; client_max_window_bits"}
	c2 := &plugins.Conn{ID: "c2", URL: mustURL("ws://other.example:8080/feed"), Mode: plugins.Proxy,
		Method: "GET", Target: "/feed", Proto: "HTTP/1.1", Request: http.Header{"Host": {"other.example:8080"}},
		Status: 101, Reason: "Switching Protocols", ResponseProto: "HTTP/1.1", Response: http.Header{},
		Client: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50124}, Server: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 8080}}
	refused := &plugins.Conn{ID: "c3", URL: mustURL("wss://chat.example/admin"), Mode: plugins.Proxy,
		Method: "GET", Target: "/admin", Proto: "HTTP/1.1", Request: http.Header{"Host": {"chat.example"}},
		Status: 302, Reason: "Found", ResponseProto: "HTTP/1.1",
		Response: http.Header{"Location": {"https://chat.example/login"}, "Content-Type": {"text/html; charset=utf-8"}},
		Client:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50125}, Server: &net.TCPAddr{IP: net.IPv4(93, 184, 216, 34), Port: 443}}
	sniffed := &plugins.Conn{ID: "c4", URL: mustURL("ws://10.1.1.1:9000/"), Mode: plugins.Sniff,
		Client: &net.TCPAddr{IP: net.IPv4(10, 1, 1, 2), Port: 40000}, Server: &net.TCPAddr{IP: net.IPv4(10, 1, 1, 1), Port: 9000}}
	open := &plugins.Conn{ID: "c5", URL: mustURL("wss://chat.example/ws"), Mode: plugins.Proxy,
		Method: "GET", Target: "/ws", Proto: "HTTP/1.1", Request: http.Header{"Host": {"chat.example"}},
		Status: 101, Reason: "Switching Protocols", ResponseProto: "HTTP/1.1", Response: http.Header{}}

	j.Opened(c1, at(0))
	j.Opened(c2, at(1))
	j.Refused(refused, at(2))
	ms := 3
	seq := map[plugins.Direction]uint64{}
	for _, tc := range trickyPayloads() {
		for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
			j.Message(&plugins.Record{Conn: c1, Dir: dir, Seq: seq[dir], Opcode: tc.op, Time: at(ms), Payload: tc.payload,
				Len: int64(len(tc.payload)), Frames: 1, Hooked: tc.op < 8})
			seq[dir]++
			ms++
		}
		j.Message(&plugins.Record{Conn: c2, Dir: plugins.ServerToClient, Seq: seq[0], Opcode: tc.op, Time: at(ms),
			Payload: tc.payload, Len: int64(len(tc.payload)), Frames: 3, Compressed: true})
		seq[0]++
	}
	d := plugins.ClientToServer
	j.Message(&plugins.Record{Conn: c1, Dir: d, Seq: seq[d], Opcode: wsframe.OpText, Time: at(ms), Payload: []byte("bXNnIHRyZW50"), Len: 12,
		Decoded: []byte("msg trent"), Original: []byte("bXNnIG1hbGxvcnk="), OriginalLen: 16, OriginalDecoded: []byte("msg mallory"),
		Modified: true, Hooked: true, Frames: 1})
	j.Message(&plugins.Record{Conn: c1, Dir: d, Seq: seq[d] + 1, Opcode: wsframe.OpBinary, Time: at(ms + 1), Payload: []byte{0xff, 0},
		Len: 2, DecodeError: "aes", Hooked: true, Frames: 1})
	j.Message(&plugins.Record{Conn: c1, Dir: d, Seq: seq[d] + 2, Opcode: wsframe.OpBinary, Time: at(ms + 2), Payload: []byte("\x00\xffbin"),
		Len: 5, Decoded: []byte("\xc3\x28 not UTF-8"), Original: []byte{1, 2}, OriginalLen: 2, OriginalDecoded: []byte{0xfe}, Modified: true, Frames: 2})
	j.Message(&plugins.Record{Conn: c1, Dir: d, Seq: seq[d] + 3, Opcode: wsframe.OpText, Time: at(ms + 3), Payload: []byte("drop me"),
		Len: 7, Dropped: true, Hooked: true, Frames: 1})
	j.Message(&plugins.Record{Conn: c1, Dir: plugins.ServerToClient, Seq: seq[plugins.ServerToClient], Opcode: wsframe.OpText,
		Time: at(ms + 4), Payload: []byte("injected"), Len: 8, Injected: true, Frames: 1})
	j.Message(&plugins.Record{Conn: c1, Dir: plugins.ServerToClient, Seq: seq[plugins.ServerToClient] + 1, Opcode: wsframe.OpText,
		Time: at(ms + 5), Payload: bytes.Repeat([]byte("x"), 4096), Len: 10 << 20, Truncated: true, Frames: 160})
	j.Opened(sniffed, at(ms+6))
	j.Gap(sniffed, plugins.ClientToServer, at(ms+7), 1448, true)
	j.Resync(sniffed, plugins.ClientToServer, at(ms+8), 37)
	j.Message(&plugins.Record{Conn: sniffed, Dir: plugins.ServerToClient, Seq: 6, Opcode: wsframe.OpText, Time: at(ms + 9),
		Payload: []byte("fox"), Len: 3, Hooked: true, Frames: 1, WouldModify: true, WouldPayload: []byte("cat"),
		WouldDecoded: []byte("\xffcat"), WouldInject: 2})
	j.Message(&plugins.Record{Conn: sniffed, Dir: plugins.ServerToClient, Seq: 7, Opcode: wsframe.OpText, Time: at(ms + 10),
		Payload: []byte("drop me"), Len: 7, Hooked: true, Frames: 1, WouldDrop: true})
	j.Undecodable(&plugins.Record{Conn: sniffed, Dir: plugins.ServerToClient, Seq: 8, Opcode: wsframe.OpText, Len: 81, Frames: 2,
		Compressed: true, Time: at(ms + 11)}, "the capture lost part of it")
	j.StreamError(sniffed, plugins.ClientToServer, at(ms+12), errors.New("wsframe: reserved opcode 0x3"))
	j.Controls(c2, plugins.ClientToServer, plugins.ControlSummary{Opcode: wsframe.OpPing, Count: 9995, Bytes: 39980,
		First: at(ms + 1), Last: at(ms + 13), FirstSeq: 40, LastSeq: 10034})
	j.Opened(open, at(ms+14))
	j.Message(&plugins.Record{Conn: open, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Time: at(ms + 15),
		Payload: []byte("still open"), Len: 10, Frames: 1, Hooked: true})
	j.Closed(c2, plugins.CloseEvent{Time: at(ms + 16), Code: 1006, By: "server"})
	j.Closed(sniffed, plugins.CloseEvent{Time: at(ms + 17), Code: 1000, Reason: "bye \x1b[0m", By: "client"})
	j.Closed(c1, plugins.CloseEvent{Time: at(ms + 18), Code: 4000, Reason: "café", By: "proxy"})
	err := j.Close()
	return out.Bytes(), err
})

func readLog(t *testing.T, jsonl []byte) []*eventlog.Event {
	t.Helper()
	var evs []*eventlog.Event
	if err := eventlog.Read(bytes.NewReader(jsonl), func(e *eventlog.Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return evs
}

// byConn returns each connection's events as JSON lines, in their order.
func byConn(t *testing.T, evs []*eventlog.Event) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		m[e.Conn] = append(m[e.Conn], string(b))
	}
	return m
}

func writeHAR(t *testing.T, evs []*eventlog.Event, opts har.Options) ([]byte, har.Written) {
	t.Helper()
	var out bytes.Buffer
	n, err := har.Write(&out, slices.Values(evs), opts)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), n
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return s
}

// TestRoundTrip: JSONL → events → HAR → events gives every connection's events
// back, field for field and payloads byte for byte; and the HAR of those events is
// the same file.
func TestRoundTrip(t *testing.T) {
	evs := readLog(t, sessionLog(t))
	file, n := writeHAR(t, evs, har.Options{Version: "v1.2.3"})
	if n.Connections != 5 || n.Skipped != 0 {
		t.Errorf("written %+v", n)
	}
	l, err := har.ReadLog(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if l.Creator != "wstap v1.2.3" || l.Connections != 5 || l.Messages != n.Messages || l.SkippedEntries != 0 || l.SkippedFrames != 0 {
		t.Errorf("read %s: %d connections, %d messages (%d written), skipped %d entries, %d frames",
			l.Creator, l.Connections, l.Messages, n.Messages, l.SkippedEntries, l.SkippedFrames)
	}
	want, got := byConn(t, evs), byConn(t, l.Events)
	if len(got) != len(want) {
		t.Errorf("%d connections back, want %d", len(got), len(want))
	}
	for id, w := range want {
		g := got[id]
		if len(g) != len(w) {
			t.Errorf("conn %s: %d events back, want %d", id, len(g), len(w))
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("conn %s event %d:\n got %s\nwant %s", id, i, short(g[i]), short(w[i]))
			}
		}
	}
	// Read interleaves the connections by time, as the log does.
	for i := 1; i < len(l.Events); i++ {
		if l.Events[i].Time.Before(l.Events[i-1].Time) {
			t.Fatalf("event %d (%s %s) is before the one ahead of it", i, l.Events[i].Conn, l.Events[i].Event)
		}
	}
	again, _ := writeHAR(t, l.Events, har.Options{Version: "v1.2.3"})
	if !bytes.Equal(again, file) {
		t.Errorf("the HAR of the events read back differs from the first")
	}
}

// decodeHAR decodes a HAR file generically, for checks on its JSON.
func decodeHAR(t *testing.T, file []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(file, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return v
}

func entries(t *testing.T, v map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range v["log"].(map[string]any)["entries"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

// TestChromeFields: what Chrome's format says of a connection is in Chrome's fields,
// as Chrome writes them: data as text for opcode 1 and base64 otherwise, the
// directions as send and receive, times as seconds, the port in connection.
func TestChromeFields(t *testing.T) {
	evs := readLog(t, sessionLog(t))
	file, _ := writeHAR(t, evs, har.Options{})
	ents := entries(t, decodeHAR(t, file))
	var ids []string
	for _, e := range ents {
		ids = append(ids, e["_wstapConn"].(string))
	}
	// In the order of the "open" events, although c2 and c4 closed before c1.
	if !slices.Equal(ids, []string{"c1", "c2", "c3", "c4", "c5"}) {
		t.Fatalf("entries %v", ids)
	}
	c1 := ents[0]
	if c1["_resourceType"] != "websocket" || c1["startedDateTime"] != "2025-03-04T05:06:07.123456Z" ||
		c1["serverIPAddress"] != "2001:db8::1" || c1["connection"] != "443" || c1["_wstapServer"] != "[2001:db8::1]:443" {
		t.Errorf("entry c1 %v", c1)
	}
	req := c1["request"].(map[string]any)
	if req["url"] != "wss://chat.example/ws?room=1&name=a%20b&flag" || req["method"] != "GET" || req["httpVersion"] != "HTTP/1.1" {
		t.Errorf("request %v", req)
	}
	if got := fmt.Sprint(req["queryString"]); got != "[map[name:room value:1] map[name:name value:a b] map[name:flag value:]]" {
		t.Errorf("queryString %s", got)
	}
	if got := fmt.Sprint(req["cookies"]); got != "[map[name:sid value:1] map[name:theme value:dark]]" {
		t.Errorf("cookies %s", got)
	}
	hs := fmt.Sprint(req["headers"])
	if !strings.Contains(hs, "map[name:X-Multi value:one] map[name:X-Multi value:two]") || !strings.HasPrefix(hs, "[map[name:Connection") {
		t.Errorf("headers not sorted, values in order: %s", hs)
	}
	resp := c1["response"].(map[string]any)
	if resp["status"] != 101.0 || resp["statusText"] != "Switching Protocols" || fmt.Sprint(resp["content"]) != "map[mimeType:x-unknown size:0]" {
		t.Errorf("response %v", resp)
	}
	if got := fmt.Sprint(resp["cookies"]); got != "[map[httpOnly:true name:sid path:/ secure:true value:2] map[expires:2035-10-21T07:28:00.000000Z name:x value:y]]" {
		t.Errorf("response cookies %s", got)
	}
	closed := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	for _, m := range c1["_webSocketMessages"].([]any) {
		if tm := m.(map[string]any)["time"].(float64); tm < float64(closed.Unix()) || tm > float64(closed.Unix()+1) {
			t.Fatalf("message time %v is not seconds since the epoch", tm)
		}
	}
	msgs := c1["_webSocketMessages"].([]any)
	for i, tc := range trickyPayloads() {
		for k, typ := range []string{"send", "receive"} {
			m := msgs[2*i+k].(map[string]any)
			var want any = string(tc.payload)
			switch {
			case tc.op != wsframe.OpText:
				want = base64Std(tc.payload)
			case tc.name == "invalid UTF-8 text":
				want = "caf\ufffd \ufffd\ufffd end"
				if m["_wstapData"] != base64Std(tc.payload) {
					t.Errorf("%s: _wstapData %v", tc.name, m["_wstapData"])
				}
			}
			if m["type"] != typ || m["opcode"] != float64(tc.op) || m["data"] != want || m["_wstapSeq"] != float64(i) {
				t.Errorf("%s %s: %v", tc.name, typ, short(fmt.Sprint(m)))
			}
		}
	}
	if c1["time"] != c1["timings"].(map[string]any)["receive"] || c1["time"].(float64) <= 0 {
		t.Errorf("time %v, timings %v", c1["time"], c1["timings"])
	}
	if got := fmt.Sprint(c1["_wstapClose"]); got != "map[by:proxy code:4000 reason:café time:2025-03-04T05:06:07.172456Z]" {
		t.Errorf("close %s", got)
	}
}

func base64Std(p []byte) string {
	b, _ := json.Marshal(p) // encoding/json writes []byte as standard base64
	return strings.Trim(string(b), `"`)
}

// TestRefused: an upgrade that was refused is an ordinary entry with the status the
// client got, no messages, and reads back as "refused".
func TestRefused(t *testing.T) {
	evs := readLog(t, sessionLog(t))
	file, _ := writeHAR(t, evs, har.Options{Conns: []string{"c3"}})
	ents := entries(t, decodeHAR(t, file))
	if len(ents) != 1 {
		t.Fatalf("%d entries", len(ents))
	}
	e := ents[0]
	resp := e["response"].(map[string]any)
	if resp["status"] != 302.0 || resp["statusText"] != "Found" || resp["redirectURL"] != "https://chat.example/login" ||
		resp["content"].(map[string]any)["mimeType"] != "text/html" || e["_wstapRefused"] != true ||
		len(e["_webSocketMessages"].([]any)) != 0 || e["time"] != 0.0 {
		t.Errorf("refused entry %v", e)
	}
	back, err := har.Read(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 1 || back[0].Event != "refused" || back[0].Response.Status != 302 || back[0].Request.Target != "/admin" {
		t.Errorf("read back %+v", back)
	}
}

// TestFilterAndSkip: Options.Conns writes those connections only; events no entry
// can hold are counted.
func TestFilterAndSkip(t *testing.T) {
	evs := readLog(t, sessionLog(t))
	_, n := writeHAR(t, evs, har.Options{Conns: []string{"c2", "c4", "c9"}})
	if n.Connections != 2 || n.Messages != len(trickyPayloads())+2 || n.Skipped != 0 {
		t.Errorf("written %+v", n)
	}
	t0 := evs[0].Time
	orphan := []*eventlog.Event{
		{Event: "lost", Time: t0, Lines: 3},
		{Event: "message", Time: t0, Conn: "c8", Dir: "c2s", Opcode: "text", Payload: eventlog.Bytes("no open")},
		{Event: "open", Time: t0, Conn: "c9", URL: "ws://x/"},
		{Event: "close", Time: t0, Conn: "c9", Code: 1000},
		{Event: "message", Time: t0, Conn: "c9", Dir: "c2s", Opcode: "text", Payload: eventlog.Bytes("after close")},
	}
	file, n := writeHAR(t, orphan, har.Options{})
	if n.Connections != 1 || n.Messages != 0 || n.Skipped != 3 {
		t.Errorf("written %+v", n)
	}
	back, err := har.Read(bytes.NewReader(file))
	if err != nil || len(back) != 2 || back[0].Request != nil || back[0].Response != nil || back[1].Event != "close" {
		t.Errorf("read back %v, %v", back, err)
	}
	bad := []*eventlog.Event{{Event: "open", Time: t0, Conn: "c1"}, {Event: "message", Time: t0, Conn: "c1", Dir: "c2s", Opcode: "frob"}}
	if _, err := har.Write(&bytes.Buffer{}, slices.Values(bad), har.Options{}); err == nil || !strings.Contains(err.Error(), `conn c1: c2s message 0: unknown opcode "frob"`) {
		t.Errorf("unknown opcode: %v", err)
	}
}

// TestWriteLog writes the HAR of a JSONL file as the CLI does.
func TestWriteLog(t *testing.T) {
	jsonl := sessionLog(t)
	var a, b bytes.Buffer
	if _, err := har.WriteLog(&a, bytes.NewReader(jsonl), har.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := har.Write(&b, slices.Values(readLog(t, jsonl)), har.Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("WriteLog and Write differ")
	}
	_, err := har.WriteLog(&a, strings.NewReader("{\"event\":\"open\",\"conn\":\"c1\"}\nnot json\n"), har.Options{})
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad log: %v", err)
	}
}

// TestChromeHAR reads testdata/chrome-devtools.har, written by hand after what
// Chrome DevTools' "Save all as HAR with content" writes (Log.ts in
// devtools-frontend; the CDP events Chromium 156 sends for a WebSocket): a page, a
// script, and two WebSocket connections, one refused (with the "error" frame
// DevTools adds for that). Chrome records text and binary messages only: no close,
// ping or pong.
func TestChromeHAR(t *testing.T) {
	f, err := os.Open("testdata/chrome-devtools.har")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := har.ReadLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if l.Creator != "WebInspector 537.36" || l.Connections != 2 || l.SkippedEntries != 2 || l.SkippedFrames != 1 || l.Messages != 5 {
		t.Errorf("read %q: %d connections, %d messages, skipped %d entries and %d frames",
			l.Creator, l.Connections, l.Messages, l.SkippedEntries, l.SkippedFrames)
	}
	var lines []string
	for _, e := range l.Events {
		s := fmt.Sprintf("%s %s %s", e.Time.Format("15:04:05.000000"), e.Conn, e.Event)
		switch e.Event {
		case "open", "refused":
			s += fmt.Sprintf(" %s server=%s sub=%q ext=%q %s %s host=%s key=%s %d %q", e.URL, e.Server, e.Subprotocol, e.Extensions,
				e.Request.Method, e.Request.Target, e.Request.Headers.Get("Host"), e.Request.Headers.Get("Sec-WebSocket-Key"),
				e.Response.Status, e.Response.Reason)
		case "message":
			s += fmt.Sprintf(" %s %d %s %d %q", e.Dir, e.Seq, e.Opcode, e.Len, e.Payload)
		}
		lines = append(lines, s)
	}
	want := []string{
		`10:15:02.114000 h1 open wss://echo.example.net/socket?v=2 server=203.0.113.7:443 sub="chat.v2" ext="permessage-deflate; client_max_window_bits=15" GET /socket?v=2 host=echo.example.net key=x3JJHMbDL1EzLkh9GBhXDw== 101 "Switching Protocols"`,
		`10:15:02.231556 h1 message c2s 0 text 36 "{\"type\":\"hello\",\"user\":\"ada\",\"n\":1}\n"`,
		`10:15:02.298013 h1 message s2c 0 text 25 "{\"type\":\"welcome\",\"id\":7}"`,
		`10:15:03.004871 h1 message c2s 1 binary 4 "\x00\x01\xfe\xff"`,
		`10:15:03.051442 h1 message s2c 1 text 30 "<img src=x onerror=alert(1)>é"`,
		`10:15:04.120000 h2 refused wss://echo.example.net/private server=203.0.113.7:443 sub="" ext="" GET /private host=echo.example.net key=dGhlIHNhbXBsZSBub25jZQ== 403 "Forbidden"`,
		`10:15:05.500102 h1 message c2s 2 text 16 "{\"type\":\"leave\"}"`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestReadErrors: a file that is not a HAR, or an entry that cannot be read, is an
// error that says which and where.
func TestReadErrors(t *testing.T) {
	ws := func(msgs string) string {
		return `{"log":{"version":"1.2","creator":{"name":"x","version":"1"},"entries":[{"startedDateTime":"2025-01-01T00:00:00Z","time":0,
			"request":{"method":"GET","url":"https://a/","headers":[]},"response":{"status":200}},
			{"startedDateTime":"2025-01-01T00:00:00Z","time":0,"request":{"method":"GET","url":"wss://a/"},"response":{"status":101},
			"_webSocketMessages":[` + msgs + `]}]}}`
	}
	for _, tc := range []struct {
		name, file string
		is         error
		msg        string
	}{
		{"empty", "", har.ErrNotHAR, "EOF"},
		{"not JSON", "GET / HTTP/1.1", har.ErrNotHAR, "invalid character"},
		{"array", "[]", har.ErrNotHAR, "found [ where { should be"},
		{"no log", `{"version":"1.2"}`, har.ErrNotHAR, "no log"},
		{"no entries", `{"log":{"version":"1.2"}}`, har.ErrNotHAR, "no log.entries"},
		{"entries not an array", `{"log":{"entries":{}}}`, har.ErrNotHAR, "log.entries: found {"},
		{"entry not an object", `{"log":{"entries":[1]}}`, har.ErrBadEntry, "log.entries[0]: json: cannot unmarshal number"},
		{"bad date", `{"log":{"entries":[{"startedDateTime":"yesterday","request":{"url":"ws://a/"}}]}}`, har.ErrBadEntry,
			`log.entries[0]: startedDateTime: "yesterday" is not an ISO 8601 time`},
		{"bad base64", ws(`{"type":"send","time":1,"opcode":1,"data":"ok"},{"type":"receive","time":1,"opcode":2,"data":"@@"}`),
			har.ErrBadEntry, "log.entries[1]: _webSocketMessages[1]: data of opcode 2: not base64"},
		{"bad type", ws(`{"type":"sent","time":1,"opcode":1,"data":"x"}`), har.ErrBadEntry,
			`log.entries[1]: _webSocketMessages[0]: type "sent" is not send, receive or error`},
		{"no data", ws(`{"type":"send","time":1,"opcode":1}`), har.ErrBadEntry, "log.entries[1]: _webSocketMessages[0]: no data"},
		{"no time", ws(`{"type":"send","opcode":1,"data":""}`), har.ErrBadEntry, "_webSocketMessages[0]: no time"},
		{"bad opcode", ws(`{"type":"send","time":1,"opcode":16,"data":""}`), har.ErrBadEntry, "opcode 16 is not a WebSocket opcode"},
		{"data not a string", ws(`{"type":"send","time":1,"opcode":1,"data":5}`), har.ErrBadEntry, "log.entries[1]: json: cannot unmarshal number"},
		{"bad encoding", ws(`{"type":"send","time":1,"opcode":1,"data":"","_wstapDecoded":"x","_wstapDecodedEncoding":"hex"}`),
			har.ErrBadEntry, `_wstapDecoded: encoding "hex" is not text or base64`},
		{"bad status", `{"log":{"entries":[{"startedDateTime":"2025-01-01T00:00:00Z","request":{"url":"ws://a/"},"response":{"status":1.5}}]}}`,
			har.ErrBadEntry, "response.status 1.5 is not an HTTP status"},
	} {
		_, err := har.Read(strings.NewReader(tc.file))
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want %v with %q", tc.name, err, tc.is, tc.msg)
		}
	}
	// A byte order mark, unknown fields and a non-WebSocket entry are no error.
	l, err := har.ReadLog(strings.NewReader("\xEF\xBB\xBF" + `{"x":[1,{"y":2}],"log":{"pages":[{"id":"p"}],"comment":"c",` +
		ws(`{"type":"error","time":1,"opcode":-1,"data":"boom"},{"type":"send","time":1.5,"opcode":1,"data":"hi","_other":1}`)[8:]))
	if err != nil || l.SkippedEntries != 1 || l.SkippedFrames != 1 || len(l.Events) != 2 || string(l.Events[1].Payload) != "hi" ||
		!l.Events[1].Time.Equal(time.UnixMilli(1500)) {
		t.Errorf("lenient read: %+v, %v", l, err)
	}
}
