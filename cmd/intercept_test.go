package cmd_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/internal/wstest"
)

// TestInterceptFlagErrors: a bad --intercept rule, or intercept without the UI
// that would release what it holds, is a usage error of one line saying what to
// fix.
func TestInterceptFlagErrors(t *testing.T) {
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	ui := []string{"--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"--intercept", "dir=up"}, ui...), `--intercept: rule "dir=up": dir=up: want c2s, s2c or both`},
		{append([]string{"--intercept", "match=("}, ui...), "match: error parsing regexp"},
		{append([]string{"--intercept", "opcode=ping"}, ui...), "control frames are never held"},
		{append([]string{"--intercept", "colour=red"}, ui...), `unknown condition "colour"`},
		{append([]string{"--intercept", "dir=c2s", "--intercept-timeout", "0s"}, ui...), `--intercept-timeout "0s": want a duration above 0`},
		{append([]string{"--hook", "intercept:x=1"}, ui...), "--hook intercept takes no options"},
		{append([]string{"--hook", "intercept", "--hook", "intercept"}, ui...), "more than once"},
		{[]string{"--listen", "127.0.0.1:0", "--intercept", "dir=c2s"}, "--intercept needs --ui"},
		{[]string{"--listen", "127.0.0.1:0", "--hook", "intercept"}, "--hook intercept needs --ui"},
	} {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
			oneLine(t, "stderr", stderr)
		})
	}
}

// TestInterceptCLI: --intercept holds what its rule matches, where --hook
// intercept puts the breakpoint (after the base64 codec, before replace: the rule
// matches the decoded payload, and the replace hook still applies after the
// release); --intercept-timeout forwards it unchanged after the timeout; the
// banner and the UI's API say so.
func TestInterceptCLI(t *testing.T) {
	noLeaks(t)
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	srv := newEchoServer(t, false, false, "")
	r := startRun(t, "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0", "--quiet",
		"--hook", "base64", "--hook", "intercept", "--hook", "replace:dir=c2s,match=knock,with=KNOCK",
		"--intercept", "dir=c2s,match=^knock", "--intercept-timeout", "1s")
	ui := waitUI(t, r.stderr, nil)
	wstest.Eventually(t, 5*time.Second, "the intercept banner line", func() bool {
		return strings.Contains(r.stderr.String(), "intercept: 1 rule(s), after base64, before replace;")
	})
	var st struct {
		Enabled    bool
		Rules      []string
		Timeout    string
		Breakpoint string
	}
	ui.get(t, "/api/intercept", &st)
	if !st.Enabled || len(st.Rules) != 1 || st.Rules[0] != "dir=c2s,match=^knock" || st.Timeout != "1s" ||
		st.Breakpoint != "after base64, before replace" {
		t.Fatalf("/api/intercept: %+v", st)
	}

	d := websocket.Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: r.addr}), HandshakeTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := d.DialContext(ctx, srv.wsURL("/chat"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b64 := func(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
	// Not held: echoed at once, with replace applied.
	send(t, c, websocket.TextMessage, b64("a knock"), b64("a KNOCK"))
	// Held for the timeout, then forwarded unchanged by the breakpoint (and
	// changed by replace, after it).
	start := time.Now()
	if err := c.WriteMessage(websocket.TextMessage, b64("knock knock")); err != nil {
		t.Fatal(err)
	}
	var held struct{ Items []struct{ Conn, Dir string } }
	wstest.Poll(5*time.Second, func() bool { ui.get(t, "/api/intercept/held", &held); return len(held.Items) == 1 })
	if len(held.Items) != 1 || held.Items[0].Dir != "c2s" {
		t.Fatalf("held: %+v", held)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, got, err := c.ReadMessage(); err != nil || string(got) != string(b64("KNOCK KNOCK")) {
		t.Fatalf("echo of the held message: %q, %v", got, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("echoed after %s, before the timeout", d)
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
}
