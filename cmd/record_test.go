package cmd_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/wstest"
)

// gateReplace is the tutorial's rule behind a base64 codec (docs/plugins.md, "The
// codec ordering rule").
const gateReplace = "replace:match=mallory,with=trent"

// TestCodecGateAndRecord is the tutorial's example of the codec gate, through the
// real command line and a real server: a message the codec decodes is rewritten and
// logged with both sides; one it cannot decode reaches the server as sent, unseen
// by the rule; a dropped message is logged as received.
func TestCodecGateAndRecord(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	srv := newEchoServer(t, false, false, "")
	logPath := filepath.Join(tmp, "events.jsonl")
	r := startRun(t, "--listen", "127.0.0.1:0", "--quiet", "--log", logPath,
		"--hook", "base64", "--hook", gateReplace, "--hook", "drop:dir=c2s,match=^secret")
	u := srv.wsURL("/gate")
	c, _ := dialVia(t, r.addr, u, websocket.Dialer{})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	send(t, c, websocket.TextMessage, []byte(b64("msg 0 from mallory")), []byte(b64("msg 0 from trent")))
	send(t, c, websocket.TextMessage, []byte("not base64 at all: mallory!"), []byte("not base64 at all: mallory!"))
	c.WriteMessage(websocket.TextMessage, []byte(b64("secret plans"))) // dropped: no echo
	send(t, c, websocket.TextMessage, []byte(b64("last")), []byte(b64("last")))
	closeWith(t, c, websocket.CloseNormalClosure, "")
	srv.waitReceived(t, "text:"+b64("msg 0 from trent"), "text:not base64 at all: mallory!", "text:"+b64("last"), "close:1000 ")
	waitEvents(t, logPath, "close event", func(evs []event) bool {
		return slices.ContainsFunc(evs, func(e event) bool { return e.str("event") == "close" })
	})
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit %d:\n%s", code, r.stderr)
	}

	var c2s []*eventlog.Event
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = eventlog.Read(f, func(e *eventlog.Event) error {
		if e.Event == "message" && e.Dir == "c2s" && e.Opcode == "text" {
			c2s = append(c2s, e)
		}
		return nil
	})
	if err != nil || len(c2s) != 4 {
		t.Fatalf("%d c2s text messages, %v", len(c2s), err)
	}
	if m := c2s[0]; string(m.Payload) != b64("msg 0 from trent") || string(m.Decoded) != "msg 0 from trent" ||
		string(m.Original) != b64("msg 0 from mallory") || string(m.OriginalDecoded) != "msg 0 from mallory" ||
		m.OriginalLen != int64(len(b64("msg 0 from mallory"))) || !m.Modified || m.DecodeError != "" {
		t.Errorf("rewritten message: %+v", m)
	}
	if m := c2s[1]; string(m.Payload) != "not base64 at all: mallory!" || m.Decoded != nil || m.Original != nil ||
		m.Modified || m.DecodeError != "base64" {
		t.Errorf("message the codec declined: %+v", m)
	}
	if m := c2s[2]; string(m.Payload) != b64("secret plans") || string(m.Decoded) != "secret plans" || !m.Dropped ||
		m.Original != nil || m.OriginalDecoded != nil {
		t.Errorf("dropped message: %+v", m)
	}
	if m := c2s[3]; m.Modified || m.Dropped || m.Original != nil || string(m.Decoded) != "last" || m.Seq != 3 {
		t.Errorf("unchanged message: %+v", m)
	}
	if n := strings.Count(r.stderr.String(), "cannot decode"); n != 1 {
		t.Errorf("%d 'cannot decode' warnings, want 1:\n%s", n, r.stderr)
	}
}

// TestHandshakeFromLog rebuilds a connection's upgrade request from the event log
// alone and sends it to the server again, as a repeater would: the server sees the
// same request (cookies, authorization, origin, subprotocol, extension offer, path
// and query) and accepts it.
func TestHandshakeFromLog(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	seen := make(chan *http.Request, 4)
	up := websocket.Upgrader{Subprotocols: []string{"chat.v2"}, EnableCompression: true, CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.Close()
	}))
	defer srv.Close()
	logPath := filepath.Join(tmp, "events.jsonl")
	r := startRun(t, "--listen", "127.0.0.1:0", "--quiet", "--log", logPath)
	target := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket?room=7&t=a%2Fb"
	hdr := http.Header{"Cookie": {"sid=abc; theme=dark"}, "Authorization": {"Bearer t0ken"}, "Origin": {"https://app.example"},
		"Sec-Websocket-Protocol": {"chat.v2, chat.v1"}, "X-Custom": {"one", "two"}}
	d := websocket.Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: r.addr}), EnableCompression: true}
	c, resp, err := d.Dial(target, hdr)
	if err != nil {
		if resp != nil {
			t.Fatalf("%v: %s", err, resp.Status)
		}
		t.Fatal(err)
	}
	c.Close()
	first := <-seen
	waitEvents(t, logPath, "open event", func(evs []event) bool {
		return slices.ContainsFunc(evs, func(e event) bool { return e.str("event") == "open" })
	})
	r.stop(t)

	// From here on, only the log file.
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var open *eventlog.Event
	eventlog.Read(f, func(e *eventlog.Event) error {
		if e.Event == "open" {
			open = e
		}
		return nil
	})
	if open == nil || open.Response == nil || open.Response.Status != 101 || open.Response.Headers.Get("Sec-Websocket-Protocol") != "chat.v2" {
		t.Fatalf("open event %+v", open)
	}
	req, err := open.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString([]byte("a fresh key 16 b")))
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req.URL.Scheme = "http" // Write speaks HTTP; the target and Host are what matter
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Protocol") != "chat.v2" {
		t.Fatalf("the rebuilt upgrade got %v, %v", resp, err)
	}
	again := <-seen
	if again.RequestURI != first.RequestURI || again.Host != first.Host || again.Method != first.Method {
		t.Errorf("request line: %s %s (Host %s), first %s %s (Host %s)", again.Method, again.RequestURI, again.Host, first.Method, first.RequestURI, first.Host)
	}
	for name, vals := range first.Header {
		if name == "Sec-Websocket-Key" {
			continue
		}
		if !slices.Equal(again.Header[name], vals) {
			t.Errorf("header %s: %q, the first upgrade had %q", name, again.Header[name], vals)
		}
	}
	if len(again.Header) != len(first.Header) {
		t.Errorf("headers %v, the first upgrade had %v", again.Header, first.Header)
	}
}

// TestCAWarnsAboutWritableDir: a CA directory that other users can write to (they
// could swap the CA) is used with a warning that says how to fix it.
func TestCAWarnsAboutWritableDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "ca", "path", "--ca-dir", dir)
	if code != 0 || !strings.Contains(stdout, dir) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "wstap: warning:") || !strings.Contains(stderr, "chmod go-w") {
		t.Errorf("no warning about the writable directory:\n%s", stderr)
	}
	os.Chmod(dir, 0o700)
	if _, _, stderr := runCmd(t, "ca", "path", "--ca-dir", dir); strings.Contains(stderr, "warning") {
		t.Errorf("a warning for a private directory:\n%s", stderr)
	}
}

// TestPingFloodCounted: a flood of pings costs a few lines of log, not one each,
// and every ping is accounted for; --every-control logs each.
func TestPingFloodCounted(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	srv := newEchoServer(t, false, false, "")
	for _, every := range []bool{false, true} {
		logPath := filepath.Join(tmp, fmt.Sprintf("events-%v.jsonl", every))
		args := []string{"--listen", "127.0.0.1:0", "--quiet", "--log", logPath}
		if every {
			args = append(args, "--every-control")
		}
		r := startRun(t, args...)
		c, _ := dialVia(t, r.addr, srv.wsURL("/pings"), websocket.Dialer{})
		const pings = 2000
		for i := range pings {
			if err := c.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(5*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		send(t, c, websocket.TextMessage, []byte("after the pings"), []byte("after the pings"))
		closeWith(t, c, websocket.CloseNormalClosure, "")
		waitEvents(t, logPath, "close event", func(evs []event) bool {
			return slices.ContainsFunc(evs, func(e event) bool { return e.str("event") == "close" })
		})
		r.stop(t)
		evs := readEvents(t, logPath) // checks every line against the schema
		var one, counted, lines int64
		for _, e := range evs {
			lines++
			switch {
			case e.str("event") == "message" && e.str("opcode") == "ping" && e.str("dir") == "c2s":
				one++
			case e.str("event") == "controls" && e.str("opcode") == "ping":
				counted += e.num("count")
				if e.num("seq_last")-e.num("seq_first")+1 < e.num("count") {
					t.Errorf("controls event %v: seq range shorter than the count", e)
				}
			}
		}
		switch {
		case one+counted != pings:
			t.Errorf("every=%v: %d pings logged one by one and %d counted, want %d in all", every, one, counted, pings)
		case every && counted != 0:
			t.Errorf("--every-control: %d pings counted instead of logged", counted)
		case !every && lines > 100:
			t.Errorf("%d lines of log for %d pings: the flood was not counted", lines, pings)
		}
	}
}

// TestHookLimitVisible: a message above --max-hook-message skips the hooks, and the
// user is told: once per connection on stderr, naming the flag, and with an L on
// its terminal line.
func TestHookLimitVisible(t *testing.T) {
	noLeaks(t)
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	srv := newEchoServer(t, false, false, "")
	r := startRun(t, "--listen", "127.0.0.1:0", "--max-hook-message", "1KiB", "--hook", "replace:match=x,with=y")
	c, _ := dialVia(t, r.addr, srv.wsURL("/big"), websocket.Dialer{})
	big := strings.Repeat("x", 4096)
	for range 3 {
		send(t, c, websocket.TextMessage, []byte(big), []byte(big)) // too large for the hooks: not rewritten
	}
	send(t, c, websocket.TextMessage, []byte("x"), []byte("y"))
	closeWith(t, c, websocket.CloseNormalClosure, "")
	if !wstest.Poll(5*time.Second, func() bool { return strings.Contains(r.stdout.String(), " close ") }) {
		t.Fatalf("no close line on stdout:\n%s", r.stdout)
	}
	r.stop(t)
	stderr, view := r.stderr.String(), r.stdout.String()
	if n := strings.Count(stderr, "above the hook limit"); n != 1 || !strings.Contains(stderr, "--max-hook-message") {
		t.Errorf("%d warnings about the hook limit on stderr, want 1 naming --max-hook-message:\n%s", n, stderr)
	}
	if n := regexp.MustCompile(`→ text +4096 L `).FindAllStringIndex(view, -1); len(n) != 3 {
		t.Errorf("%d terminal lines on stdout flag the large messages with L, want 3:\n%s", len(n), view)
	}
}

// TestRefusedUpgradeLogged: an upgrade the server refuses (403, a redirect) or that
// cannot reach the server is logged (issue #23: it was invisible), with the request
// and the answer the client got, and shown on one terminal line.
func TestRefusedUpgradeLogged(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		http.Error(w, "no sockets for you", http.StatusForbidden)
	}))
	defer srv.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := closed.Addr().String()
	closed.Close()
	logPath := filepath.Join(tmp, "events.jsonl")
	r := startRun(t, "--listen", "127.0.0.1:0", "--log", logPath)
	d := websocket.Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: r.addr})}
	want := map[string]int{"/forbidden": 403, "/moved": 302}
	for path, status := range want {
		_, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+path, http.Header{"Cookie": {"sid=7"}})
		if err == nil || resp == nil || resp.StatusCode != status {
			t.Fatalf("%s: %v, %v; want the server's %d", path, resp, err, status)
		}
	}
	if _, resp, err := d.Dial("ws://"+deadAddr+"/gone", nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("unreachable server: %v, %v; want 502", resp, err)
	}
	want["/gone"] = http.StatusBadGateway
	var got []*eventlog.Event
	if !wstest.Poll(5*time.Second, func() bool {
		got = got[:0]
		f, err := os.Open(logPath)
		if err != nil {
			return false
		}
		defer f.Close()
		eventlog.Read(f, func(e *eventlog.Event) error {
			if e.Event == "refused" {
				got = append(got, e)
			}
			return nil
		})
		return len(got) == 3
	}) {
		t.Fatalf("%d refused events, want 3", len(got))
	}
	r.stop(t)
	for _, e := range got {
		u, _ := url.Parse(e.URL)
		if e.Response == nil || e.Response.Status != want[u.Path] || e.Request == nil || e.Request.Method != "GET" ||
			e.Conn == "" || e.Mode != "proxy" {
			t.Errorf("refused event %+v", e)
			continue
		}
		if u.Path != "/gone" && e.Request.Headers.Get("Cookie") != "sid=7" {
			t.Errorf("%s: the request's headers are not in the event: %v", u.Path, e.Request.Headers)
		}
	}
	out := r.stdout.String() + r.stderr.String()
	if n := strings.Count(out, " refused ws://"); n != 3 || !strings.Contains(out, ": 403 Forbidden") {
		t.Errorf("%d terminal lines for refused upgrades, want 3:\n%s", n, out)
	}
}

// TestLogAppends: a second run with the same --log adds to the file instead of
// emptying it, and its connection ids continue after the first run's, so an id
// names one connection in the whole file; for the proxy and for sniff alike.
func TestLogAppends(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	srv := newEchoServer(t, false, false, "")
	logPath := filepath.Join(tmp, "events.jsonl")
	// A log that ends in the middle of a line, as after a crash.
	if err := os.WriteFile(logPath, []byte(`{"event":"open","time":"2026-01-01T00:00:00.000000Z","conn":"c7","url":"ws://x/"}`+"\n"+`{"event":"mess`), 0o644); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		r := startRun(t, "--listen", "127.0.0.1:0", "--quiet", "--log", logPath)
		c, _ := dialVia(t, r.addr, srv.wsURL(fmt.Sprintf("/run%d", run)), websocket.Dialer{})
		send(t, c, websocket.TextMessage, []byte("hi"), []byte("hi"))
		closeWith(t, c, websocket.CloseNormalClosure, "")
		if !wstest.Poll(5*time.Second, func() bool {
			data, _ := os.ReadFile(logPath) // not parsed: the cut line is not an event
			return bytes.Count(data, []byte(`"event":"close"`)) == run+1
		}) {
			t.Fatalf("run %d: no close event", run)
		}
		r.stop(t)
	}
	if code, _, stderr := runCmd(t, "sniff", "-r", "../sniff/testdata/ws-plain.pcap", "--quiet", "--log", logPath); code != 0 {
		t.Fatalf("sniff: exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(`{"event":"open","time":"2026-01-01T00:00:00.000000Z","conn":"c7"`)) ||
		!bytes.Contains(data, []byte("{\"event\":\"mess\n")) {
		t.Fatalf("the first run's lines are gone, or the cut line was joined to the next:\n%.300s", data)
	}
	opens := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[2:] {
		e, err := eventlog.ParseEvent([]byte(line))
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if e.Event == "open" {
			if prev, dup := opens[e.Conn]; dup {
				t.Errorf("conn %s opened twice: %s and %s", e.Conn, prev, e.URL)
			}
			opens[e.Conn] = e.URL
		}
	}
	for _, id := range []string{"c8", "c9", "c10"} {
		if opens[id] == "" {
			t.Errorf("no connection %s: the ids did not continue after the file's (have %v)", id, opens)
		}
	}
}
