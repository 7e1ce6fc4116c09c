package cmd_test

import (
	"encoding/base64"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/internal/wstest"
)

// viewLines returns the lines of the terminal view in out, without their time.
func viewLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if terminalLine.MatchString(l) {
			lines = append(lines, l[len("15:04:05.000 "):])
		}
	}
	return lines
}

// spaces squeezes runs of spaces, to compare view lines without their columns.
var spaces = regexp.MustCompile(` +`)

// TestShowCapture: --show narrows the view of a capture to the events matching one
// of its rules; a connection's open and close lines follow its messages shown. The
// view is on stdout.
func TestShowCapture(t *testing.T) {
	const open, closed = "c1 open ws://127.0.0.1:9101/chat", `c1 close 4001 "bye" by client`
	cases := []struct {
		show []string
		want []string // view lines, spaces squeezed
	}{
		{[]string{"dir=c2s,match=^after"}, []string{open, "c1 → text 10 after-ping", closed}},
		{[]string{"match=after-ping,dir=s2c"}, []string{open, "c1 ← text 10 after-ping", closed}},
		{[]string{"opcode=control"}, []string{open, "c1 → ping 7 ping-42", "c1 ← pong 7 ping-42", `c1 → close 5 4001 "bye"`, "c1 ← close 2 4001", closed}},
		{[]string{"opcode=pong", "dir=c2s,match=^after"}, []string{open, "c1 → text 10 after-ping", "c1 ← pong 7 ping-42", closed}},
		{[]string{"opcode=text,match=^b$"}, []string{open, "c1 → text 1 b", "c1 ← text 1 b", closed}},
		{[]string{"url=ws://*/nowhere"}, nil},
		{[]string{"conn=c2"}, nil},
		{[]string{"match=nothing like this"}, nil},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.show, " "), func(t *testing.T) {
			args := []string{"sniff", "-r", "../sniff/testdata/ws-plain.pcap"}
			for _, s := range tc.show {
				args = append(args, "--show", s)
			}
			code, stdout, stderr := runCmd(t, args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			var got []string
			for _, l := range viewLines(stdout) {
				got = append(got, spaces.ReplaceAllString(l, " "))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("view:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if !strings.Contains(stderr, "36 messages") || terminalLine.MatchString(stderr) {
				t.Errorf("stderr holds the view, or not the summary:\n%s", stderr)
			}
		})
	}

	// A rule on the connection alone shows all of it.
	_, all, _ := runCmd(t, "sniff", "-r", "../sniff/testdata/ws-plain.pcap")
	_, whole, _ := runCmd(t, "sniff", "-r", "../sniff/testdata/ws-plain.pcap", "--show", "url=ws://127.0.0.1:9101/*,conn=c1")
	if n := len(viewLines(all)); n != 38 || whole != all {
		t.Errorf("--show url=…,conn=c1 shows %d lines of the view's %d, want all", len(viewLines(whole)), n)
	}
}

// TestShowProxy: in the proxy, --show narrows the view and nothing else: every
// message reaches its peer and the log; match sees what the codecs decoded.
func TestShowProxy(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	srv := newEchoServer(t, false, false, "")
	logPath := filepath.Join(tmp, "events.jsonl")
	r := startRun(t, "--listen", "127.0.0.1:0", "--hook", "base64", "--log", logPath, "--show", "dir=s2c,match=secret")
	u := srv.wsURL("/show")
	c, _ := dialVia(t, r.addr, u, websocket.Dialer{})
	b64 := func(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
	for _, m := range []string{"hello", "the secret word", "bye"} {
		send(t, c, websocket.TextMessage, b64(m), b64(m))
	}
	closeWith(t, c, websocket.CloseNormalClosure, "")
	srv.waitReceived(t, "text:"+string(b64("hello")), "text:"+string(b64("the secret word")), "text:"+string(b64("bye")), "close:1000 ")
	if !wstest.Poll(5*time.Second, func() bool { return strings.Contains(r.stdout.String(), " close ") }) {
		t.Fatalf("no close line on stdout:\n%s", r.stdout)
	}
	r.stop(t)
	var got []string
	for _, l := range viewLines(r.stdout.String()) {
		_, l, _ = strings.Cut(l, " ") // the connection id
		got = append(got, spaces.ReplaceAllString(l, " "))
	}
	want := []string{"open " + u, "← text 20 + the secret word", "close 1000 by client"}
	if !slices.Equal(got, want) {
		t.Errorf("view:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	messages := 0
	for _, e := range readEvents(t, logPath) {
		if e.str("event") == "message" && e.str("opcode") == "text" {
			messages++
		}
	}
	if messages != 6 {
		t.Errorf("%d text messages in the log, want all 6: --show is for the view only", messages)
	}
}
