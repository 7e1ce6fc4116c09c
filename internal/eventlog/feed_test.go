package eventlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/har"
	"github.com/wstap/wstap/internal/lossycap"
	"github.com/wstap/wstap/internal/pcaptest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/sniff"
	"github.com/wstap/wstap/wsframe"
)

// scenario makes the observer calls of a log with every field the writer writes, in
// each of its forms: a proxied connection with its handshake; a sniffed one without
// (dry-run verdicts, gaps, resyncs, errors, undecodable messages, counted
// controls); refused upgrades; a connection whose "open" is not in the log; one
// never closed; the connections interleaved.
func scenario(o plugins.Observer) {
	base := time.Date(2026, 3, 1, 12, 0, 59, 999_999_999, time.FixedZone("CET", 3600))
	tick := 0
	at := func() time.Time { tick++; return base.Add(time.Duration(tick) * 377 * time.Millisecond) }
	must := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			panic(err)
		}
		return u
	}

	c1 := &plugins.Conn{ID: "c1", URL: must("wss://example.test/chat?room=1&x=%20y"), Mode: plugins.Proxy,
		Method: "GET", Target: "/chat?room=1&x=%20y", Proto: "HTTP/1.1",
		Request: http.Header{"Host": {"example.test"}, "Cookie": {`sid=1; x="2"`, "b=\\3"}, "X-Binary": {"a\xffb"},
			"Sec-Websocket-Protocol": {"chat, \x1b[31mred\u2028"}, "X-Empty": {}, "x-lower": {""}},
		Status: 101, Reason: "Switching Protocols", ResponseProto: "HTTP/1.1",
		Response:    http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Accept": {"abc="}},
		Client:      &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5412},
		Server:      &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443},
		Subprotocol: "chat", Extensions: "permessage-deflate; client_max_window_bits=15"}
	c2 := &plugins.Conn{ID: "c2", URL: must("ws://10.0.0.2:8000"), Mode: plugins.Sniff,
		Client: &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 50000, Zone: "eth0"},
		Server: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 8000}}
	c3 := &plugins.Conn{ID: "c3", URL: must("wss://example.test/admin"), Mode: plugins.Proxy,
		Method: "GET", Target: "/admin", Proto: "HTTP/1.1", Request: http.Header{"Host": {"example.test"}},
		Status: 403, Reason: "Forbidden", ResponseProto: "HTTP/1.1", Response: http.Header{"Content-Length": {"0"}},
		Client: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5413}, Server: &net.TCPAddr{IP: net.IPv4(93, 184, 216, 34), Port: 443}}
	c4 := &plugins.Conn{ID: "c4"} // its "open" is before the log
	c5 := &plugins.Conn{ID: "c5", Client: &net.UnixAddr{Name: "@wstap", Net: "unix"}}
	c6 := &plugins.Conn{ID: "c6", URL: must("ws://[::1]:9000/x"), Mode: plugins.Sniff,
		Method: "GET", Target: "/x", Proto: "HTTP/1.1", Request: http.Header{},
		Status: 302, Reason: "", ResponseProto: "HTTP/1.0", Response: http.Header{"Location": {"/y"}},
		Client: &net.TCPAddr{IP: net.IPv6loopback, Port: 1}, Server: &net.TCPAddr{IP: net.IPv6loopback, Port: 9000}}
	c7 := &plugins.Conn{ID: "c7", URL: must("wss://h.test/"), Mode: plugins.Proxy, Method: "GET", Target: "/", Proto: "HTTP/1.1",
		Request: http.Header{"Host": {"h.test"}}, Status: 502, Reason: "Bad Gateway", ResponseProto: "HTTP/1.1"}

	msg := func(c *plugins.Conn, dir plugins.Direction, seq uint64, op wsframe.Opcode, p []byte, r plugins.Record) {
		r.Conn, r.Dir, r.Seq, r.Opcode, r.Payload, r.Time = c, dir, seq, op, p, at()
		if r.Len == 0 {
			r.Len = int64(len(p))
		}
		if r.Frames == 0 {
			r.Frames = 1
		}
		o.Message(&r)
	}
	c2s, s2c := plugins.ClientToServer, plugins.ServerToClient
	text, binary := wsframe.OpText, wsframe.OpBinary

	msg(c4, s2c, 17, text, []byte("before the log began"), plugins.Record{Hooked: true})
	o.Opened(c1, at())
	o.Opened(c2, at())
	msg(c1, c2s, 0, text, []byte("hi websocket"), plugins.Record{Hooked: true})
	msg(c2, c2s, 0, text, []byte("fox"), plugins.Record{Hooked: true, WouldModify: true, WouldPayload: []byte("cat"),
		WouldDecoded: []byte("c\xffat"), WouldInject: 3})
	msg(c1, s2c, 0, text, []byte("quote \" backslash \\ nl \n cr \r tab \t ctl \x01\x1f\x7f ls \u2028 ps \u2029 é 😀 </script>"),
		plugins.Record{Hooked: true, Frames: 3, Compressed: true})
	o.Refused(c3, at())
	msg(c1, c2s, 1, text, []byte("a\xffb"), plugins.Record{Hooked: true})
	msg(c1, c2s, 2, text, []byte("\xe2\x80"), plugins.Record{Hooked: true})
	msg(c1, s2c, 1, binary, []byte{0, 1, 2, 0xff}, plugins.Record{Hooked: true})
	msg(c1, s2c, 2, binary, []byte("valid text, sent as binary"), plugins.Record{Hooked: true})
	msg(c1, c2s, 3, text, []byte{}, plugins.Record{Hooked: true})
	msg(c1, c2s, 4, binary, nil, plugins.Record{Hooked: true})
	msg(c1, s2c, 3, binary, bytes.Repeat([]byte{0xAB}, 4096), plugins.Record{Len: 1 << 20, Truncated: true, Frames: 16})
	msg(c1, s2c, 4, binary, []byte("bXNn"), plugins.Record{Hooked: true, Decoded: []byte("msg")})
	msg(c1, s2c, 5, binary, []byte("AP8="), plugins.Record{Hooked: true, Decoded: []byte{0, 0xff}})
	msg(c1, s2c, 6, text, []byte("x"), plugins.Record{Hooked: true, Decoded: []byte{}})
	msg(c1, c2s, 5, text, []byte("bXNnIHRyZW50"), plugins.Record{Hooked: true, Modified: true, Decoded: []byte("msg trent"),
		Original: []byte("bXNnIG1hbGxvcnk="), OriginalLen: 16, OriginalDecoded: []byte("msg mallory")})
	msg(c1, c2s, 6, binary, []byte{9}, plugins.Record{Hooked: true, Modified: true, Original: []byte{}, OriginalLen: 1 << 40,
		OriginalDecoded: []byte{0xc0}})
	msg(c1, s2c, 7, binary, []byte{0xff, 0}, plugins.Record{Hooked: true, DecodeError: "aes: \"bad\" padding\n"})
	msg(c1, c2s, 7, text, []byte("dropped"), plugins.Record{Hooked: true, Dropped: true})
	msg(c1, s2c, 8, text, []byte("injected"), plugins.Record{Injected: true})
	msg(c1, c2s, 8, wsframe.OpPing, []byte("ping-42"), plugins.Record{})
	msg(c1, s2c, 9, wsframe.OpPong, []byte("ping-42"), plugins.Record{})
	msg(c1, c2s, 1<<63+5, wsframe.OpPing, nil, plugins.Record{})
	o.Gap(c2, s2c, at(), 1448, true)
	o.Gap(c2, c2s, at(), 0, false)
	o.Resync(c2, s2c, at(), 37)
	o.StreamError(c2, c2s, at(), errors.New("wsframe: reserved opcode 0x3"))
	o.StreamError(c2, s2c, at(), errors.New("message of 2000000000 bytes \"over\" the limit\t"))
	o.Undecodable(&plugins.Record{Conn: c2, Dir: s2c, Seq: 4, Opcode: text, Time: at(), Len: 81, Frames: 2, Compressed: true},
		"compressed (RSV1), but the handshake is not in the capture: the permessage-deflate parameters are unknown")
	o.Undecodable(&plugins.Record{Conn: c2, Dir: c2s, Seq: 5, Opcode: binary, Time: at()}, "")
	msg(c2, s2c, 5, text, []byte("drop me"), plugins.Record{Hooked: true, WouldDrop: true})
	msg(c2, s2c, 6, binary, []byte{1, 2}, plugins.Record{Hooked: true, WouldModify: true})
	msg(c2, s2c, 7, binary, []byte{1, 2}, plugins.Record{Hooked: true, WouldModify: true, WouldPayload: []byte{0xfe},
		WouldDecoded: []byte("plain"), WouldDrop: true, WouldInject: 1})
	first := at()
	o.Controls(c2, c2s, plugins.ControlSummary{Opcode: wsframe.OpPing, Count: 9995, Bytes: 39980, First: first, Last: at(),
		FirstSeq: 5, LastSeq: 9999})
	o.Controls(c2, s2c, plugins.ControlSummary{Opcode: wsframe.OpPong, Count: 1, Last: at()})
	o.Controls(c4, s2c, plugins.ControlSummary{Opcode: wsframe.OpPong}) // zero times
	o.Opened(c5, at())
	msg(c5, c2s, 0, text, []byte("never closed"), plugins.Record{Hooked: true})
	o.Refused(c6, at())
	o.Refused(c7, at())
	msg(c1, s2c, 10, wsframe.OpClose, []byte("\x03\xe8bye"), plugins.Record{})
	msg(c1, c2s, 9, wsframe.OpClose, []byte{0x0f, 0xa1}, plugins.Record{})
	o.Closed(c1, plugins.CloseEvent{Time: at(), Code: wsframe.CloseNormal, Reason: "bye \"now\" ✓", By: "client"})
	o.Gap(c4, c2s, at(), 1<<40, true)
	o.Closed(c4, plugins.CloseEvent{Time: at(), Code: wsframe.CloseAbnormal, By: "proxy"})
	o.Closed(c2, plugins.CloseEvent{Time: at(), Code: 4001, Reason: "\xff", By: "server"})
	msg(c5, s2c, 0, binary, []byte("last"), plugins.Record{Hooked: true})
}

// writeLog returns the log a JSONL writer writes of the calls run makes to it.
func writeLog(t testing.TB, run func(o plugins.Observer) error) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	j := eventlog.NewJSONL(&out, eventlog.Block)
	err := run(j)
	if cerr := j.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	return out.Bytes(), err
}

// replayLog replays log into a JSONL writer and returns what it wrote.
func replayLog(t testing.TB, log []byte) []byte {
	t.Helper()
	out, err := writeLog(t, func(o plugins.Observer) error { return eventlog.Replay(bytes.NewReader(log), o) })
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return out
}

// sameLog reports the first line where got differs from want.
func sameLog(t testing.TB, want, got []byte) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			t.Fatalf("the replayed log differs at line %d of %d:\nwant %s\ngot  %s", i+1, len(wl), w, g)
		}
	}
}

// TestReplayRoundTrip writes a log of every kind of event and field with the real
// writer, replays it into a second writer, and expects the same bytes.
func TestReplayRoundTrip(t *testing.T) {
	log, _ := writeLog(t, func(o plugins.Observer) error { scenario(o); return nil })
	if n := bytes.Count(log, []byte("\n")); n < 45 {
		t.Fatalf("the scenario wrote %d lines", n)
	}
	// The log has what the test means it to have.
	for _, s := range []string{`"event":"open"`, `"event":"refused"`, `"event":"close"`, `"event":"gap"`, `"event":"resync"`,
		`"event":"error"`, `"event":"undecodable"`, `"event":"controls"`, `"encoding":"base64"`, `"encoding":"text"`,
		`"decoded_encoding":"base64"`, `"original_encoding":"base64"`, `"original_decoded_encoding":"base64"`,
		`"would_encoding":"base64"`, `"would_decoded_encoding":"base64"`, `"truncated":true`, `"decode_error":`,
		`"would_drop":true`, `"would_inject":3`, `"mode":"mode-0"`, `"client":"@wstap"`, `"client":"[fe80::1%eth0]:50000"`,
		`"opcode":"close"`, `\u2028`, `"url":""`, `"time":"0001-01-01T00:00:00.000000Z"`, `"payload":""`, `"modified":true`,
		`"dropped":true`, `"injected":true`, `"compressed":true`} {
		if !bytes.Contains(log, []byte(s)) {
			t.Errorf("the scenario's log has no %s", s)
		}
	}
	got := replayLog(t, log)
	sameLog(t, log, got)
	// And again: the replayed log is a fixed point.
	sameLog(t, log, replayLog(t, got))
}

// tracer records the observer calls as text, with what the log can hold: times in
// UTC to the microsecond, text fields as valid UTF-8.
type tracer struct {
	calls []string
	conns map[string][]*plugins.Conn // every Conn each id came with, in order
}

func (tr *tracer) add(c *plugins.Conn, format string, args ...any) {
	if tr.conns == nil {
		tr.conns = map[string][]*plugins.Conn{}
	}
	if cs := tr.conns[c.ID]; len(cs) == 0 || cs[len(cs)-1] != c {
		tr.conns[c.ID] = append(cs, c)
	}
	tr.calls = append(tr.calls, c.ID+" "+fmt.Sprintf(format, args...))
}

func ts(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }

func q(s string) string { return strconv.Quote(strings.ToValidUTF8(s, "\uFFFD")) }

func pl(p []byte) string {
	if p == nil {
		return "nil"
	}
	return strconv.Quote(string(p))
}

func addr(a net.Addr) string {
	if a == nil {
		return "nil"
	}
	return q(a.String())
}

func conn(c *plugins.Conn) string {
	u := ""
	if c.URL != nil {
		u = c.URL.String()
	}
	h := func(h http.Header) string {
		var b strings.Builder
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range h {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(&b, "%s=[", q(k))
			for _, v := range h[k] {
				b.WriteString(q(v) + " ")
			}
			b.WriteString("] ")
		}
		return b.String()
	}
	req, resp := "", ""
	if c.Method != "" {
		req = fmt.Sprintf("%s %s %s {%s}", q(c.Method), q(c.Target), q(c.Proto), h(c.Request))
	}
	if c.Status != 0 {
		resp = fmt.Sprintf("%d %s %s {%s}", c.Status, q(c.Reason), q(c.ResponseProto), h(c.Response))
	}
	return fmt.Sprintf("url=%s mode=%s client=%s server=%s sub=%s ext=%s req=%s resp=%s", q(u), c.Mode, addr(c.Client),
		addr(c.Server), q(c.Subprotocol), q(c.Extensions), req, resp)
}

func record(r *plugins.Record) string {
	payload := func(p []byte) string {
		if len(p) == 0 && p != nil {
			return `""`
		}
		return pl(p)
	}
	// The writer writes a nil payload as "", and original_len only with original,
	// the would payloads only with would_modify.
	s := fmt.Sprintf("%s #%d %s %s len=%d payload=%s trunc=%v frames=%d comp=%v dec=%s dec_err=%s mod=%v drop=%v inj=%v hooked=%v",
		r.Dir, r.Seq, r.Opcode, ts(r.Time), r.Len, strconv.Quote(string(r.Payload)), r.Truncated, r.Frames, r.Compressed,
		payload(r.Decoded), q(r.DecodeError), r.Modified, r.Dropped, r.Injected, r.Hooked)
	if r.Original != nil {
		s += fmt.Sprintf(" orig=%s orig_len=%d", payload(r.Original), r.OriginalLen)
	}
	s += " orig_dec=" + payload(r.OriginalDecoded)
	if r.WouldModify {
		s += fmt.Sprintf(" would_modify would=%q would_dec=%s", r.WouldPayload, payload(r.WouldDecoded))
	}
	return s + fmt.Sprintf(" would_drop=%v would_inject=%d", r.WouldDrop, r.WouldInject)
}

func (tr *tracer) Opened(c *plugins.Conn, t time.Time)  { tr.add(c, "open %s %s", ts(t), conn(c)) }
func (tr *tracer) Refused(c *plugins.Conn, t time.Time) { tr.add(c, "refused %s %s", ts(t), conn(c)) }
func (tr *tracer) Message(r *plugins.Record)            { tr.add(r.Conn, "message %s", record(r)) }
func (tr *tracer) Closed(c *plugins.Conn, ev plugins.CloseEvent) {
	tr.add(c, "close %s %d %s %s", ts(ev.Time), ev.Code, q(ev.Reason), q(ev.By))
}
func (tr *tracer) Gap(c *plugins.Conn, dir plugins.Direction, t time.Time, bytes int64, lost bool) {
	tr.add(c, "gap %s %s %d %v", dir, ts(t), bytes, lost)
}
func (tr *tracer) Resync(c *plugins.Conn, dir plugins.Direction, t time.Time, skipped int64) {
	tr.add(c, "resync %s %s %d", dir, ts(t), skipped)
}
func (tr *tracer) Undecodable(r *plugins.Record, reason string) {
	tr.add(r.Conn, "undecodable %s #%d %s %s len=%d frames=%d comp=%v %s", r.Dir, r.Seq, r.Opcode, ts(r.Time), r.Len,
		r.Frames, r.Compressed, q(reason))
}
func (tr *tracer) StreamError(c *plugins.Conn, dir plugins.Direction, t time.Time, err error) {
	tr.add(c, "error %s %s %s", dir, ts(t), q(err.Error()))
}
func (tr *tracer) Controls(c *plugins.Conn, dir plugins.Direction, s plugins.ControlSummary) {
	tr.add(c, "controls %s %s ×%d %dB %s…%s #%d…%d", dir, s.Opcode, s.Count, s.Bytes, ts(s.First), ts(s.Last), s.FirstSeq, s.LastSeq)
}

// TestFeedCalls replays the scenario's log and expects the calls the scenario
// made, each connection's events with one Conn.
func TestFeedCalls(t *testing.T) {
	var want tracer
	scenario(&want)
	log, _ := writeLog(t, func(o plugins.Observer) error { scenario(o); return nil })
	var got tracer
	if err := eventlog.Replay(bytes.NewReader(log), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.calls) != len(want.calls) {
		t.Fatalf("%d calls, want %d", len(got.calls), len(want.calls))
	}
	for i := range want.calls {
		if got.calls[i] != want.calls[i] {
			t.Errorf("call %d:\n got %s\nwant %s", i, got.calls[i], want.calls[i])
		}
	}
	for id, cs := range got.conns {
		if len(cs) != 1 {
			t.Errorf("conn %s came with %d Conns", id, len(cs))
		}
		if cs[0].Controller != nil {
			t.Errorf("conn %s has a Controller", id)
		}
	}
	c1, c2, c4, c5 := got.conns["c1"][0], got.conns["c2"][0], got.conns["c4"][0], got.conns["c5"][0]
	if a, ok := c1.Client.(*net.TCPAddr); !ok || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port != 5412 {
		t.Errorf("c1 client %#v", c1.Client)
	}
	if a, ok := c2.Client.(*net.TCPAddr); !ok || a.Zone != "eth0" || a.Port != 50000 {
		t.Errorf("c2 client %#v", c2.Client)
	}
	if c1.Mode != plugins.Proxy || c2.Mode != plugins.Sniff || c1.URL.Scheme != "wss" || c1.URL.Query().Get("x") != " y" {
		t.Errorf("c1 %+v, c2 %+v", c1, c2)
	}
	if c4.URL != nil || c4.Mode != 0 || c4.Client != nil || c4.Method != "" || c4.Status != 0 {
		t.Errorf("c4, never opened in the log: %+v", c4)
	}
	if c5.Client == nil || c5.Client.String() != "@wstap" || c5.Client.Network() != "tcp" || c5.Server != nil || c5.URL != nil {
		t.Errorf("c5 %+v", c5)
	}
	if err := c1.Inject(context.Background(), plugins.Injection{}); !errors.Is(err, plugins.ErrReadOnly) {
		t.Errorf("Inject on a replayed conn: %v", err)
	}
}

// TestFeedCounts: "lost" notes and events of kinds this wstap does not know make
// no call, and are counted.
func TestFeedCounts(t *testing.T) {
	const log = `{"event":"open","time":"2026-03-01T12:00:00.000001Z","conn":"c1","url":"ws://h/","mode":"proxy"}
{"event":"lost","time":"2026-03-01T12:00:01Z","lines":120}

{"event":"annotation","time":"2026-03-01T12:00:02Z","conn":"c1","text":"from a newer wstap"}
{"event":"lost","time":"2026-03-01T12:00:03Z","lines":3}
{"event":"message","time":"2026-03-01T12:00:04Z","conn":"c1","dir":"s2c","seq":0,"opcode":"text","len":2,"payload":"hi","encoding":"text","frames":1}
{"event":"annotation","time":"2026-03-01T12:00:05Z"}
`
	var tr tracer
	f := eventlog.NewFeeder(&tr)
	if err := eventlog.Read(strings.NewReader(log), f.Feed); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if f.Lost() != 123 || f.Skipped() != 2 || len(tr.calls) != 2 {
		t.Errorf("lost %d, skipped %d, calls %q", f.Lost(), f.Skipped(), tr.calls)
	}
	// After Close, the connections are forgotten: a message of c1 gets a new Conn.
	tr.calls = nil
	e, err := eventlog.ParseEvent([]byte(`{"event":"message","conn":"c1","dir":"c2s","opcode":"binary"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Feed(e); err != nil {
		t.Fatal(err)
	}
	if cs := tr.conns["c1"]; len(cs) != 2 || cs[1].URL != nil || cs[1].ID != "c1" {
		t.Errorf("after Close: %+v", cs)
	}
	// Replay reads the same log, blank lines included.
	if err := eventlog.Replay(strings.NewReader(log), &tracer{}); err != nil {
		t.Fatal(err)
	}
}

// TestFeedBad: an event that cannot be mapped is an error wrapping ErrBadEvent,
// and no call is made.
func TestFeedBad(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"message without conn", `{"event":"message","dir":"c2s","opcode":"text"}`},
		{"open without conn", `{"event":"open","url":"ws://h/"}`},
		{"message dir", `{"event":"message","conn":"c1","dir":"up","opcode":"text"}`},
		{"message no dir", `{"event":"message","conn":"c1","opcode":"text"}`},
		{"message dir-0", `{"event":"message","conn":"c1","dir":"dir-0","opcode":"text"}`},
		{"message opcode", `{"event":"message","conn":"c1","dir":"c2s","opcode":"opcode-3"}`},
		{"message continuation", `{"event":"message","conn":"c1","dir":"c2s","opcode":"continuation"}`},
		{"message no opcode", `{"event":"message","conn":"c1","dir":"c2s"}`},
		{"message opcode case", `{"event":"message","conn":"c1","dir":"c2s","opcode":"Text"}`},
		{"message len", `{"event":"message","conn":"c1","dir":"c2s","opcode":"text","len":-1}`},
		{"message original_len", `{"event":"message","conn":"c1","dir":"c2s","opcode":"text","original_len":-1}`},
		{"message frames", `{"event":"message","conn":"c1","dir":"c2s","opcode":"text","frames":-1}`},
		{"message would_inject", `{"event":"message","conn":"c1","dir":"c2s","opcode":"text","would_inject":-2}`},
		{"undecodable opcode", `{"event":"undecodable","conn":"c1","dir":"s2c","opcode":"zip"}`},
		{"undecodable dir", `{"event":"undecodable","conn":"c1","dir":"","opcode":"text"}`},
		{"gap dir", `{"event":"gap","conn":"c1","dir":"c2c","bytes":1}`},
		{"gap bytes", `{"event":"gap","conn":"c1","dir":"c2s","bytes":-1}`},
		{"resync dir", `{"event":"resync","conn":"c1","skipped":1}`},
		{"resync skipped", `{"event":"resync","conn":"c1","dir":"s2c","skipped":-1}`},
		{"error dir", `{"event":"error","conn":"c1","dir":"x","error":"e"}`},
		{"controls opcode", `{"event":"controls","conn":"c1","dir":"c2s","opcode":"text","count":1}`},
		{"controls close", `{"event":"controls","conn":"c1","dir":"c2s","opcode":"close","count":1}`},
		{"controls count", `{"event":"controls","conn":"c1","dir":"c2s","opcode":"ping","count":-1}`},
		{"controls bytes", `{"event":"controls","conn":"c1","dir":"c2s","opcode":"pong","bytes":-1}`},
		{"controls dir", `{"event":"controls","conn":"c1","opcode":"ping"}`},
		{"open mode", `{"event":"open","conn":"c1","url":"ws://h/","mode":"router"}`},
		{"open mode-x", `{"event":"open","conn":"c1","url":"ws://h/","mode":"mode-x"}`},
		{"open mode-256", `{"event":"open","conn":"c1","url":"ws://h/","mode":"mode-256"}`},
		{"open mode-01", `{"event":"open","conn":"c1","url":"ws://h/","mode":"mode-01"}`},
		{"open url", `{"event":"open","conn":"c1","url":"ws://[::1/","mode":"proxy"}`},
		{"open url scheme", `{"event":"open","conn":"c1","url":"http://h/","mode":"proxy"}`},
		{"open url relative", `{"event":"open","conn":"c1","url":"/chat","mode":"proxy"}`},
		{"refused url", `{"event":"refused","conn":"c1","url":"ftp://h/"}`},
		{"refused status", `{"event":"refused","conn":"c1","url":"ws://h/","response":{"status":-403}}`},
		{"open status", `{"event":"open","conn":"c1","url":"ws://h/","response":{"status":1000}}`},
		{"lost lines", `{"event":"lost","lines":-5}`},
		{"time past 9999 in UTC", `{"event":"gap","conn":"c1","dir":"c2s","time":"9999-12-31T23:00:00-05:00"}`},
		{"time before year 0 in UTC", `{"event":"close","conn":"c1","time":"0000-01-01T00:00:00+01:00"}`},
		{"controls first", `{"event":"controls","conn":"c1","dir":"c2s","opcode":"ping","first":"9999-12-31T23:59:59-00:01"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := eventlog.ParseEvent([]byte(tc.line))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			var tr tracer
			f := eventlog.NewFeeder(&tr)
			err = f.Feed(e)
			if !errors.Is(err, eventlog.ErrBadEvent) {
				t.Fatalf("Feed: %v, want ErrBadEvent", err)
			}
			if len(tr.calls) != 0 || f.Lost() != 0 || f.Skipped() != 0 {
				t.Errorf("calls %q, lost %d, skipped %d", tr.calls, f.Lost(), f.Skipped())
			}
			// Replay names the line.
			log := `{"event":"open","conn":"c0","url":"ws://h/","mode":"sniff"}` + "\n\n" + tc.line + "\n" +
				`{"event":"close","conn":"c0","code":1000}` + "\n"
			tr = tracer{}
			err = eventlog.Replay(strings.NewReader(log), &tr)
			if !errors.Is(err, eventlog.ErrBadEvent) || !strings.HasPrefix(err.Error(), "line 3: ") {
				t.Errorf("Replay: %v", err)
			}
			if len(tr.calls) != 1 {
				t.Errorf("Replay made %q", tr.calls)
			}
			t.Log(err)
		})
	}
	// What Read rejects, Replay does too, with the line.
	err := eventlog.Replay(strings.NewReader("{\"event\":\"open\",\"conn\":\"c1\"}\nnot json\n"), &tracer{})
	if !errors.Is(err, eventlog.ErrBadEvent) || !strings.HasPrefix(err.Error(), "line 2: ") {
		t.Errorf("Replay of a line that is not JSON: %v", err)
	}
	if err := eventlog.Replay(errReader{}, &tracer{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Replay of a failing reader: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

// TestFeedAccepts: what is not malformed maps, including what other tools write.
func TestFeedAccepts(t *testing.T) {
	for _, line := range []string{
		`{"event":"open","conn":"h1","url":"wss://h/x","mode":""}`,                          // a HAR of another tool: no mode
		`{"event":"open","conn":"c1","url":"","mode":"mode-7"}`,                             // the writer's name for a Mode it has none for
		`{"event":"open","conn":"c1","client":"localhost:80","server":"x"}`,                 // addresses that are not ip:port
		`{"event":"open","conn":"c1","client":"[::ffff:1.2.3.4]:5"}`,                        // written back as it was
		`{"event":"open","conn":"c1","request":{"method":"GET"},"response":{"status":101}}`, // no headers
		`{"event":"close","conn":"c9","code":1005}`,                                         // the close of a conn never opened
		`{"event":"message","conn":"c1","dir":"s2c","opcode":"close","payload":"A+g=","encoding":"base64"}`,
		`{"event":"error","conn":"c1","dir":"s2c"}`,
		`{"event":"gap","conn":"c1","dir":"s2c","time":"9999-12-31T23:59:59.999999Z"}`, // the bounds of RFC 3339
		`{"event":"gap","conn":"c1","dir":"s2c","time":"0000-01-01T00:00:00Z"}`,
	} {
		e, err := eventlog.ParseEvent([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		var tr tracer
		if err := eventlog.NewFeeder(&tr).Feed(e); err != nil || len(tr.calls) != 1 {
			t.Errorf("%s: %v, %q", line, err, tr.calls)
		}
		if e.Event == "open" {
			c := tr.conns[e.Conn][0]
			if c.Request == nil && e.Request != nil || c.Response == nil && e.Response != nil {
				t.Errorf("%s: nil header in %+v", line, c)
			}
			if a := c.Client; a != nil && a.String() != e.Client {
				t.Errorf("%s: client %q", line, a)
			}
		}
	}
}

// sniffLog returns the log of a capture read by the sniffer.
func sniffLog(t *testing.T, cfg sniff.Config, run func(s *sniff.Sniffer) error) []byte {
	t.Helper()
	log, err := writeLog(t, func(o plugins.Observer) error {
		cfg.Observers = []plugins.Observer{o}
		return run(sniff.New(cfg))
	})
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// TestReplayCaptures round-trips real logs: those the sniffer writes of the real
// captures in sniff/testdata (with and without their handshake) and of a capture
// that lost segments (gaps, resyncs, errors, undecodable messages).
func TestReplayCaptures(t *testing.T) {
	kinds := map[string]int{}
	check := func(t *testing.T, log []byte) {
		t.Helper()
		if err := eventlog.Read(bytes.NewReader(log), func(e *eventlog.Event) error { kinds[e.Event]++; return nil }); err != nil {
			t.Fatal(err)
		}
		sameLog(t, log, replayLog(t, log))
	}
	for _, name := range []string{"ws-plain.pcap", "ws-deflate-gorilla.pcapng", "ws-deflate-ctx.pcap"} {
		t.Run(name, func(t *testing.T) {
			check(t, sniffLog(t, sniff.Config{ControlBurst: 1}, func(s *sniff.Sniffer) error {
				src, err := sniff.OpenFile("../../sniff/testdata/" + name)
				if err != nil {
					return err
				}
				defer src.Close()
				return s.Run(context.Background(), src)
			}))
		})
	}
	// Captures that begin after the handshake: the sniffer follows them because of
	// their port, compressed messages are undecodable, and a small size limit makes
	// "error" events of the large ones.
	for _, tc := range []struct {
		file   string
		port   uint16
		limits wsframe.Limits
	}{
		{"ws-plain.pcap", 9101, wsframe.Limits{MaxMessageSize: 1000}},
		{"ws-deflate-ctx.pcap", 9103, wsframe.Limits{}},
	} {
		t.Run("no handshake "+tc.file, func(t *testing.T) {
			lt, pkts := pcaptest.Read(t, "../../sniff/testdata/"+tc.file)
			i := slices.IndexFunc(pkts, func(p pcaptest.Packet) bool { return bytes.Contains(p.Data, []byte("HTTP/1.1 101")) })
			if i < 0 {
				t.Fatal("no 101 in " + tc.file)
			}
			log := sniffLog(t, sniff.Config{WSPorts: []uint16{tc.port}, Limits: tc.limits}, func(s *sniff.Sniffer) error {
				for _, p := range pkts[i+1:] {
					s.Packet(context.Background(), p.Data, p.CI, lt)
				}
				s.Flush(context.Background())
				return nil
			})
			if !bytes.Contains(log, fmt.Appendf(nil, `"url":"ws://127.0.0.1:%d"`, tc.port)) || bytes.Contains(log, []byte(`"request"`)) {
				t.Errorf("the log has a handshake:\n%.400s", log)
			}
			check(t, log)
		})
	}
	t.Run("lossy", func(t *testing.T) {
		capture, err := lossycap.Generate(lossycap.Mixed(7, 400, 9))
		if err != nil {
			t.Fatal(err)
		}
		var pcap bytes.Buffer
		if err := capture.WritePcap(&pcap); err != nil {
			t.Fatal(err)
		}
		check(t, sniffLog(t, sniff.Config{ControlBurst: 1}, func(s *sniff.Sniffer) error {
			src, err := sniff.NewFileSource(&pcap)
			if err != nil {
				return err
			}
			return s.Run(context.Background(), src)
		}))
	})
	t.Logf("events replayed: %v", kinds)
	for _, k := range []string{"open", "message", "close", "gap", "resync", "undecodable", "error", "controls"} {
		if kinds[k] == 0 {
			t.Errorf("no %q event in the captures' logs", k)
		}
	}
}

// TestFeedHAR feeds the events of a HAR file saved by Chrome DevTools (what `wstap
// open FILE.har` does) into a writer, and round-trips the log it wrote.
func TestFeedHAR(t *testing.T) {
	f, err := os.Open("../har/testdata/chrome-devtools.har")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := har.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	var fd *eventlog.Feeder
	log, err := writeLog(t, func(o plugins.Observer) error {
		fd = eventlog.NewFeeder(o)
		defer fd.Close()
		for _, e := range events {
			if err := fd.Feed(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte("\n")); n != len(events) || fd.Skipped() != 0 || len(events) < 3 {
		t.Errorf("%d events, %d lines, %d skipped", len(events), n, fd.Skipped())
	}
	sameLog(t, log, replayLog(t, log))

	// And the scenario's log through a HAR file wstap writes, per connection: a HAR
	// holds only the connections whose "open" (or "refused") it saw.
	scen, _ := writeLog(t, func(o plugins.Observer) error { scenario(o); return nil })
	var h bytes.Buffer
	if _, err := har.WriteLog(&h, bytes.NewReader(scen), har.Options{}); err != nil {
		t.Fatal(err)
	}
	if events, err = har.Read(&h); err != nil {
		t.Fatal(err)
	}
	back, err := writeLog(t, func(o plugins.Observer) error {
		fd := eventlog.NewFeeder(o)
		for _, e := range events {
			if err := fd.Feed(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// HAR holds headers as a list of names and values: the names come back
	// canonical, and a name without values does not come back.
	header := func(h http.Header) {
		for k, v := range h {
			delete(h, k)
			if len(v) > 0 {
				h[http.CanonicalHeaderKey(k)] = append(h[http.CanonicalHeaderKey(k)], v...)
			}
		}
	}
	byConn := func(log []byte) map[string][]string {
		lines := map[string][]string{}
		for l := range bytes.Lines(log) {
			e, err := eventlog.ParseEvent(l)
			if err != nil {
				t.Fatal(err)
			}
			if e.Request != nil {
				rq, rs := *e.Request, *e.Response
				header(rq.Headers)
				header(rs.Headers)
				e.Request, e.Response = nil, nil
				l = fmt.Appendf(nil, "%+v %+v %+v", *e, rq, rs)
			}
			lines[e.Conn] = append(lines[e.Conn], string(bytes.TrimSuffix(l, []byte("\n"))))
		}
		return lines
	}
	want, got := byConn(scen), byConn(back)
	delete(want, "c4") // never opened: not in the HAR
	for id, w := range want {
		if !slices.Equal(w, got[id]) {
			t.Errorf("conn %s through a HAR:\nwant %.3000s\ngot  %.3000s", id, strings.Join(w, "\n     "), strings.Join(got[id], "\n     "))
		}
	}
	if len(got) != len(want) {
		t.Errorf("conns through a HAR: %d, want %d", len(got), len(want))
	}
}

// FuzzReplay: Replay never panics, and what a writer fed by it writes is a log
// that replays into itself (however the input was malformed).
//
// The two writers live as long as the worker: a writer's goroutines make its
// coverage depend on timing, which a writer per input would turn into a stream of
// "new" inputs to minimize.
func FuzzReplay(f *testing.F) {
	log, _ := writeLog(f, func(o plugins.Observer) error { scenario(o); return nil })
	var small []byte // the scenario's log without its 4 KiB line
	for l := range bytes.Lines(log) {
		if len(l) < 1024 {
			f.Add(l)
			small = append(small, l...)
		}
	}
	f.Add(small)
	for _, s := range []string{
		"", "\n", "{}", "null", `{"event":"lost","lines":-1}`, `{"event":"open","conn":"c1","mode":"mode-255"}`,
		`{"event":"message","conn":"c1","dir":"c2s","opcode":"text","payload":"\u0000","encoding":"base64"}`,
		`{"event":"controls","conn":"c","dir":"s2c","opcode":"pong","first":"2026-01-01T00:00:00+14:00"}`,
		`{"event":"open","conn":"c1","url":"ws://h/%zz"}`,
		`{"event":"gap","conn":"c1","dir":"c2s","time":"9999-12-31T23:00:00-05:00"}`,
		`{"event":"gap","conn":"c1","dir":"c2s","time":"0000-01-01T00:00:00+01:00"}`,
		`{"event":"open","conn":"c1","request":{"method":"GET","headers":{"A":["1"],"a":["2"],"A":["3"]}}}`,
	} {
		f.Add([]byte(s))
	}
	var out1, out2 bytes.Buffer
	w1, w2 := eventlog.NewJSONL(&out1, eventlog.Block), eventlog.NewJSONL(&out2, eventlog.Block)
	f.Cleanup(func() { w1.Close(); w2.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		out1.Reset()
		out2.Reset()
		eventlog.Replay(bytes.NewReader(data), w1)
		if err := w1.Flush(); err != nil {
			t.Fatal(err)
		}
		once := bytes.Clone(out1.Bytes())
		if err := eventlog.Replay(bytes.NewReader(once), w2); err != nil {
			t.Fatalf("the writer's log of a replay does not replay: %v\n%s", err, once)
		}
		if err := w2.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, out2.Bytes()) {
			t.Fatalf("replayed twice:\n%s\n%s", once, out2.Bytes())
		}
	})
}
