package eventlog

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// TestJSONLRoundTrip writes every field of the schema that is not in
// TestJSONLSchema (the handshake, what was received beside what was forwarded, the
// codec that declined, a sniff dry run) and reads it back with Read.
func TestJSONLRoundTrip(t *testing.T) {
	var out bytes.Buffer
	j := NewJSONL(&out, Block)
	c := testConn()
	c.Method, c.Target, c.Proto = "GET", "/chat?room=1", "HTTP/1.1"
	c.Request = http.Header{"Host": {"example.test"}, "Cookie": {"sid=1; x=\"2\""}, "Sec-Websocket-Protocol": {"chat, \x1b[31mred"},
		"X-Binary": {"a\xffb"}}
	c.Status, c.Reason, c.ResponseProto = 101, "Switching Protocols", "HTTP/1.1"
	c.Response = http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Accept": {"abc="}}
	ts := time.Now()
	j.Opened(c, ts)
	j.Message(&plugins.Record{Conn: c, Dir: plugins.ClientToServer, Seq: 4, Opcode: wsframe.OpText, Time: ts,
		Payload: []byte("bXNnIHRyZW50"), Len: 12, Decoded: []byte("msg trent"), Original: []byte("bXNnIG1hbGxvcnk="), OriginalLen: 16,
		OriginalDecoded: []byte("msg mallory"), Modified: true, Hooked: true, Frames: 1})
	j.Message(&plugins.Record{Conn: c, Dir: plugins.ServerToClient, Seq: 5, Opcode: wsframe.OpBinary, Time: ts,
		Payload: []byte{0xff, 0}, Len: 2, DecodeError: "aes", Hooked: true, Frames: 1})
	j.Message(&plugins.Record{Conn: c, Dir: plugins.ServerToClient, Seq: 6, Opcode: wsframe.OpText, Time: ts,
		Payload: []byte("fox"), Len: 3, Hooked: true, Frames: 1, WouldModify: true, WouldPayload: []byte("cat"), WouldInject: 2})
	j.Message(&plugins.Record{Conn: c, Dir: plugins.ServerToClient, Seq: 7, Opcode: wsframe.OpText, Time: ts,
		Payload: []byte("drop me"), Len: 7, Hooked: true, Frames: 1, WouldDrop: true})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	var evs []*Event
	if err := Read(&out, func(e *Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 {
		t.Fatalf("%d events", len(evs))
	}
	open := evs[0]
	if open.Request == nil || open.Request.Method != "GET" || open.Request.Target != "/chat?room=1" || open.Request.Proto != "HTTP/1.1" ||
		open.Request.Headers.Get("Cookie") != `sid=1; x="2"` || open.Request.Headers.Get("Sec-Websocket-Protocol") != "chat, \x1b[31mred" ||
		open.Request.Headers.Get("X-Binary") != "a\uFFFDb" {
		t.Errorf("request %+v", open.Request)
	}
	if r := open.Response; r == nil || r.Status != 101 || r.Reason != "Switching Protocols" || r.Headers.Get("Sec-Websocket-Accept") != "abc=" {
		t.Errorf("response %+v", open.Response)
	}
	req, err := open.HTTPRequest()
	if err != nil || req.Host != "example.test" || req.URL.String() != "wss://example.test/chat?room=1" || req.Header.Get("Host") != "" ||
		req.Header.Get("Cookie") != `sid=1; x="2"` {
		t.Errorf("HTTPRequest: %+v, %v", req, err)
	}
	m := evs[1]
	if string(m.Payload) != "bXNnIHRyZW50" || string(m.Decoded) != "msg trent" || string(m.Original) != "bXNnIG1hbGxvcnk=" ||
		m.OriginalLen != 16 || string(m.OriginalDecoded) != "msg mallory" || !m.Modified {
		t.Errorf("modified message %+v", m)
	}
	if m := evs[2]; !bytes.Equal(m.Payload, []byte{0xff, 0}) || m.DecodeError != "aes" || m.Decoded != nil {
		t.Errorf("declined message %+v", m)
	}
	if m := evs[3]; !m.WouldModify || string(m.WouldPayload) != "cat" || m.WouldInject != 2 || m.Modified || string(m.Payload) != "fox" {
		t.Errorf("dry-run modify %+v", m)
	}
	if m := evs[4]; !m.WouldDrop || m.Dropped {
		t.Errorf("dry-run drop %+v", m)
	}
}

// gateWriter blocks every Write until open is closed.
type gateWriter struct {
	open chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.Write(p)
}

// TestLiveNeverBlocks: a Live writer whose destination is stuck takes every event
// without waiting, holds a bounded amount, and says how many lines it dropped once
// the destination moves again. Every line is either written or counted.
func TestLiveNeverBlocks(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func(io.Writer) (plugins.Observer, func() error)
		lost func(line string) bool
	}{
		{"jsonl", func(w io.Writer) (plugins.Observer, func() error) { j := NewJSONL(w, Live); return j, j.Close },
			func(l string) bool { return strings.HasPrefix(l, `{"event":"lost"`) }},
		{"terminal", func(w io.Writer) (plugins.Observer, func() error) { v := NewTerminal(w, Live); return v, v.Close },
			func(l string) bool { return strings.Contains(l, "lines not shown") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gateWriter{open: make(chan struct{})}
			o, closeFn := tc.new(g)
			c := testConn()
			r := &plugins.Record{Conn: c, Opcode: wsframe.OpText, Payload: bytes.Repeat([]byte("x"), 1000), Len: 1000, Time: time.Now()}
			const n = 200000 // 200 MB of lines: more than a Live writer holds
			for range n {
				o.Message(r) // would hang here if the writer waited for g
			}
			close(g.open)
			if err := closeFn(); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(g.out.String(), "\n"), "\n")
			var written, lost int64
			for _, l := range lines {
				if !tc.lost(l) {
					written++
					continue
				}
				var k int64
				if i := strings.Index(l, `"lines":`); i >= 0 {
					l = l[i:]
				}
				if i := strings.IndexAny(l, "0123456789"); i >= 0 {
					for _, ch := range l[i:] {
						if ch < '0' || ch > '9' {
							break
						}
						k = k*10 + int64(ch-'0')
					}
				}
				lost += k
			}
			if lost == 0 || written+lost != n {
				t.Fatalf("%d written + %d reported lost, want %d in all, some lost", written, lost, n)
			}
		})
	}
}

// TestCloseTwice: closing a writer twice is harmless.
func TestCloseTwice(t *testing.T) {
	j := NewJSONL(io.Discard, Block)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	v := NewTerminal(io.Discard, Live)
	v.Close()
	v.Close()
}

// TestTerminalEscapesTraffic: text from the traffic (URL, subprotocol, extensions,
// payloads, close reasons) cannot reach the terminal as control sequences, C1
// controls (U+009B CSI, U+009D OSC) included.
func TestTerminalEscapesTraffic(t *testing.T) {
	var out bytes.Buffer
	v := NewTerminal(&out, Block)
	c := testConn()
	c.ID = "c1\x1b[2J"
	c.Subprotocol = "chat\u009b31m\x1b]0;pwned\x07"
	c.Extensions = "permessage-deflate\u009d0;x\u009c"
	v.Opened(c, time.Now())
	v.Message(&plugins.Record{Conn: c, Dir: plugins.ServerToClient, Opcode: wsframe.OpText, Payload: []byte("hi \x1b[31mred\u009b1m"), Len: 12, Time: time.Now()})
	v.Closed(c, plugins.CloseEvent{Time: time.Now(), Code: 1000, Reason: "bye\x1b[0m\u009b", By: "server"})
	v.Close()
	for _, bad := range []string{"\x1b", "\u009b", "\u009d", "\u009c", "\x07"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("the terminal got %q:\n%q", bad, out.String())
		}
	}
	if !strings.Contains(out.String(), "chat·31m") {
		t.Errorf("the subprotocol is not shown with its controls replaced:\n%s", out.String())
	}
}
