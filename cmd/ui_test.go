package cmd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/cmd"
	"github.com/wstap/wstap/internal/wstest"
)

// uiClient calls a running web UI's API as a script does, with the token in an
// Authorization header.
type uiClient struct {
	base, token string
}

var uiURLRE = regexp.MustCompile(`web UI(?::| at) +(http://[^/\s]+)/#token=([0-9a-f]+)`)

// waitUI waits for the web UI's URL in out and returns a client for it.
func waitUI(t *testing.T, out interface{ String() string }, done <-chan int) *uiClient {
	t.Helper()
	var m []string
	wstest.Poll(15*time.Second, func() bool {
		select {
		case code := <-done:
			t.Fatalf("wstap exited with %d before serving the UI; stderr:\n%s", code, out)
		default:
		}
		m = uiURLRE.FindStringSubmatch(out.String())
		return m != nil
	})
	if m == nil {
		t.Fatalf("no web UI URL within 15 s; stderr:\n%s", out)
	}
	return &uiClient{base: m[1], token: m[2]}
}

// get fetches path and decodes its JSON into v; it fails the test on any status
// but 200.
func (c *uiClient) get(t *testing.T, path string, v any) {
	t.Helper()
	body := c.raw(t, path)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// raw fetches path and returns its body; it fails the test on any status but 200.
func (c *uiClient) raw(t *testing.T, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return body
}

// uiMessage is a row of /api/messages with its payload from /api/messages/ID.
type uiMessage struct {
	Dir, Opcode, Payload string
}

// messages returns the data messages of every connection of the UI, in order,
// with their payloads.
func (c *uiClient) messages(t *testing.T) []uiMessage {
	t.Helper()
	var page struct {
		Total int
		Items []struct {
			ID          int
			Kind        string
			Dir, Opcode string
		}
	}
	c.get(t, "/api/messages?limit=5000", &page)
	var out []uiMessage
	for _, it := range page.Items {
		var d struct {
			Parts map[string]struct{ Base64 string }
		}
		c.get(t, fmt.Sprintf("/api/messages/%d", it.ID), &d)
		p, err := base64.StdEncoding.DecodeString(d.Parts["payload"].Base64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, uiMessage{it.Dir, it.Opcode, string(p)})
	}
	return out
}

// TestUIProxyOpenHAR: the proxy with --ui shows a proxied connection live in the
// API (handshake with the client's Cookie, messages with exact payloads); the HAR
// the UI exports, and the one `wstap har` writes from the --log file, reopened
// with `wstap open`, show the same messages; and so does `wstap open` of the log.
func TestUIProxyOpenHAR(t *testing.T) {
	noLeaks(t)
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	dir := t.TempDir()
	logPath := filepath.Join(dir, "events.jsonl")
	srv := newEchoServer(t, false, false, "")
	r := startRun(t, "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0", "--log", logPath, "--quiet")
	ui := waitUI(t, r.stderr, nil)

	d := websocket.Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: r.addr}), HandshakeTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := d.DialContext(ctx, srv.wsURL("/chat?room=1"), http.Header{"Cookie": {"sid=42"}})
	if err != nil {
		t.Fatal(err)
	}
	xss := "<img src=x onerror=alert(1)>"
	esc := "\x1b[31mred\x1b]0;title\x07"
	bin := []byte{0, 1, 2, 0xff}
	send(t, c, websocket.TextMessage, []byte(xss), []byte(xss))
	send(t, c, websocket.TextMessage, []byte(esc), []byte(esc))
	send(t, c, websocket.BinaryMessage, bin, bin)
	closeWith(t, c, 1000, "bye")
	want := []uiMessage{
		{"c2s", "text", xss}, {"s2c", "text", xss},
		{"c2s", "text", esc}, {"s2c", "text", esc},
		{"c2s", "binary", string(bin)}, {"s2c", "binary", string(bin)},
	}

	// Live: the rows arrive (through the UI's queue) while the proxy runs.
	var got []uiMessage
	wstest.Poll(10*time.Second, func() bool { got = ui.messages(t); return len(got) >= len(want) })
	if !slices.Equal(got, want) {
		t.Fatalf("the UI shows\n  %q\nwant\n  %q", got, want)
	}
	var conns struct {
		Total int
		Items []struct{ ID, URL, State, Mode string }
	}
	ui.get(t, "/api/connections", &conns)
	if conns.Total != 1 || !strings.HasSuffix(conns.Items[0].URL, "/chat?room=1") || conns.Items[0].Mode != "proxy" {
		t.Fatalf("connections: %+v", conns)
	}
	var conn struct {
		Handshake struct {
			Method, Target string
			Status         int
			Request        []struct {
				Name   string
				Values []string
			} `json:"request_headers"`
		}
	}
	ui.get(t, "/api/connections/"+conns.Items[0].ID, &conn)
	hs := conn.Handshake
	if hs.Method != "GET" || hs.Target != "/chat?room=1" || hs.Status != 101 ||
		!slices.ContainsFunc(hs.Request, func(h struct {
			Name   string
			Values []string
		}) bool {
			return h.Name == "Cookie" && slices.Equal(h.Values, []string{"sid=42"})
		}) {
		t.Errorf("handshake: %+v; want GET /chat?room=1 with Cookie sid=42 and 101", hs)
	}
	var info struct {
		Mode  string
		Proxy string
		Lost  int64
	}
	ui.get(t, "/api/info", &info)
	if info.Mode != "proxy" || info.Proxy != r.addr || info.Lost != 0 {
		t.Errorf("info: %+v", info)
	}

	// The UI's HAR export, reopened.
	uiHAR := filepath.Join(dir, "ui.har")
	if err := os.WriteFile(uiHAR, ui.raw(t, "/api/export.har"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := r.stop(t); code != 0 {
		t.Fatalf("proxy exit %d; stderr:\n%s", code, r.stderr)
	}

	// wstap har, from the log.
	cliHAR := filepath.Join(dir, "cli.har")
	code, _, stderr := runCmd(t, "har", "--out", cliHAR, logPath)
	if code != 0 || !strings.Contains(stderr, "1 connections, 8 messages") {
		t.Fatalf("wstap har: exit %d, stderr %q", code, stderr)
	}
	for _, f := range []string{uiHAR, cliHAR, logPath} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			o := startOpen(t, f)
			if got := o.ui.messages(t); !slices.Equal(got, want) {
				t.Errorf("wstap open %s shows\n  %q\nwant\n  %q", f, got, want)
			}
			var info struct {
				Mode     string
				Source   string
				ReadOnly bool `json:"read_only"`
			}
			o.ui.get(t, "/api/info", &info)
			if info.Mode != "open" || info.Source != f || !info.ReadOnly {
				t.Errorf("info: %+v", info)
			}
			if code := o.stop(t); code != 0 {
				t.Errorf("wstap open: exit %d; stderr:\n%s", code, o.stderr)
			}
		})
	}
}

// opened is a running `wstap open`.
type opened struct {
	*running
	ui *uiClient
}

// startOpen runs `wstap open path` on any free port and waits for its UI.
func startOpen(t *testing.T, path string, extra ...string) *opened {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &running{stdout: newOutBuf(), stderr: newOutBuf(), cancel: cancel, done: make(chan int, 1)}
	args := append([]string{"open", "--ui", "127.0.0.1:0"}, extra...)
	args = append(args, path)
	go func() { r.done <- cmd.Run(ctx, args, r.stdout, r.stderr) }()
	t.Cleanup(func() { r.stop(t) })
	return &opened{running: r, ui: waitUI(t, r.stderr, r.done)}
}

// TestOpenCapture: `wstap open` of a pcap runs it through sniff into the UI, which
// stays up after the file is read.
func TestOpenCapture(t *testing.T) {
	noLeaks(t)
	o := startOpen(t, "../sniff/testdata/ws-plain.pcap")
	var got []uiMessage
	wstest.Poll(10*time.Second, func() bool { got = o.ui.messages(t); return len(got) > 0 })
	if len(got) == 0 {
		t.Fatalf("no messages from the capture; stderr:\n%s", o.stderr)
	}
	var info struct{ Mode, Source string }
	o.ui.get(t, "/api/info", &info)
	if info.Mode != "sniff" || info.Source != "../sniff/testdata/ws-plain.pcap" {
		t.Errorf("info: %+v", info)
	}
	wstest.Poll(10*time.Second, func() bool { return strings.Contains(o.stderr.String(), "stays up until Ctrl-C") })
	if !strings.Contains(o.stderr.String(), "stays up until Ctrl-C") {
		t.Errorf("stderr does not say the UI stays up:\n%s", o.stderr)
	}
	if code := o.stop(t); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, o.stderr)
	}
}

// TestUIErrors: mistakes with the UI's flags and files are one line and the right
// exit status.
func TestUIErrors(t *testing.T) {
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	dir := t.TempDir()
	notes := writeFile(t, filepath.Join(dir, "notes.txt"), "hello\n")
	empty := writeFile(t, filepath.Join(dir, "empty.jsonl"), "")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--ui", "0.0.0.0:0", "--listen", "127.0.0.1:0"}, 2, "--allow-remote"},
		{[]string{"--ui=127.0.0.1:99999", "--listen", "127.0.0.1:0"}, 2, "0-65535"},
		{[]string{"--ui", "--ui-history", "lots", "--listen", "127.0.0.1:0"}, 2, "--ui-history"},
		{[]string{"sniff", "-r", "x.pcap", "--ui", "192.0.2.1:0"}, 2, "--allow-remote"},
		{[]string{"open"}, 2, "say which FILE"},
		{[]string{"open", "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"open", filepath.Join(dir, "missing.jsonl")}, 1, "no such file"},
		{[]string{"open", notes}, 1, "not a wstap event log, a HAR file or a pcap"},
		{[]string{"open", empty}, 1, "empty"},
		{[]string{"open", "--ui", "10.1.2.3:0", notes}, 2, "--allow-remote"},
		{[]string{"har"}, 2, "say which event log"},
		{[]string{"har", "../sniff/testdata/ws-plain.pcap"}, 1, "wstap sniff -r ../sniff/testdata/ws-plain.pcap --log"},
		{[]string{"har", notes}, 1, "notes.txt"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
			oneLine(t, "stderr", stderr)
		})
	}
}

// TestUIFlagForms: --ui alone is the default address; --ui ADDR and --ui=ADDR
// take one; an argument without a colon after --ui is not an address.
func TestUIFlagForms(t *testing.T) {
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	// Without an address, --ui takes 127.0.0.1:8081, which another program may
	// hold: either the UI starts there or the error names it.
	r := startRunMaybe(t, "--ui", "--listen", "127.0.0.1:0", "--quiet")
	if r != nil {
		wstest.Poll(5*time.Second, func() bool { return strings.Contains(r.stderr.String(), "web UI:") })
		if !strings.Contains(r.stderr.String(), "http://127.0.0.1:8081/#token=") {
			t.Errorf("--ui alone: stderr\n%s", r.stderr)
		}
	}
	code, _, stderr := runCmd(t, "--ui", "notanaddress", "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, `unexpected argument "notanaddress"`) {
		t.Errorf("--ui notanaddress: exit %d, %q", code, stderr)
	}
	var buf bytes.Buffer
	if code := cmd.Run(context.Background(), []string{"--help"}, &buf, io.Discard); code != 0 || !strings.Contains(buf.String(), "-ui") {
		t.Errorf("--help does not list --ui:\n%s", buf.String())
	}
}

// startRunMaybe is startRun for a proxy that may fail to start because its
// address is taken: it returns nil then.
func startRunMaybe(t *testing.T, args ...string) *running {
	t.Helper()
	code, _, stderr := 0, "", ""
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &running{stdout: newOutBuf(), stderr: newOutBuf(), cancel: cancel, done: make(chan int, 1)}
	go func() { r.done <- cmd.Run(ctx, args, r.stdout, r.stderr) }()
	t.Cleanup(func() { r.stop(t) })
	wstest.Poll(15*time.Second, func() bool {
		s := r.stderr.String()
		return strings.Contains(s, "web UI:") || strings.Contains(s, "in use")
	})
	if strings.Contains(r.stderr.String(), "in use") {
		code = r.stop(t)
		stderr = r.stderr.String()
		if code != 1 || !strings.Contains(stderr, "--ui: cannot listen on 127.0.0.1:8081") {
			t.Errorf("--ui on a taken port: exit %d, %q", code, stderr)
		}
		return nil
	}
	return r
}
