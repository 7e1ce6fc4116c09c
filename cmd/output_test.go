package cmd_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestViewOnStdout: as with tcpdump, the view of a capture is the output, on
// stdout, so it can be piped (wstap sniff -r FILE 2>/dev/null | grep -c fox); the
// summary stays on stderr. --log - takes stdout for the JSON lines, and the view
// (--view) then goes to stderr.
func TestViewOnStdout(t *testing.T) {
	const capture = "../sniff/testdata/ws-deflate-ctx.pcap" // 120 messages with "fox", 2 close frames
	code, stdout, stderr := runBinary(t, childEnv(), "sniff", "-r", capture)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if n := strings.Count(stdout, "fox"); n != 120 {
		t.Errorf("%d lines with fox on stdout, want 120:\n%s", n, stdout)
	}
	if strings.Contains(stderr, "fox") || !strings.Contains(stderr, "122 messages") {
		t.Errorf("stderr holds the view, or not the summary:\n%s", stderr)
	}

	code, stdout, stderr = runBinary(t, childEnv(), "sniff", "-r", capture, "--log", "-", "--view")
	if code != 0 {
		t.Fatalf("--log - --view: exit %d:\n%s", code, stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasPrefix(l, `{"event":`) {
			t.Fatalf("--log -: stdout holds a line that is not JSON: %q", l)
		}
	}
	if n := len(viewLines(stderr)); n != 124 {
		t.Errorf("--log - --view: %d lines of the view on stderr, want open, 122 messages (two of them close frames), close:\n%s", n, stderr)
	}
}

// TestVerboseHTTPRequests: with -v the proxy logs one line per HTTP request it
// relays, with its status; without -v, none.
func TestVerboseHTTPRequests(t *testing.T) {
	noLeaks(t)
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	for _, verbose := range []bool{true, false} {
		args := []string{"--listen", "127.0.0.1:0"}
		if verbose {
			args = append(args, "-v")
		}
		r := startRun(t, args...)
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: r.addr})}, Timeout: 10 * time.Second}
		for _, path := range []string{"/page", "/missing"} {
			resp, err := client.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		client.CloseIdleConnections()
		r.stop(t)
		stderr := r.stderr.String()
		lines := 0
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, `msg="HTTP request"`) {
				lines++
				if !strings.Contains(l, "method=GET") || !strings.Contains(l, "url="+srv.URL+"/") ||
					!(strings.Contains(l, "/page status=200") || strings.Contains(l, "/missing status=404")) {
					t.Errorf("-v request line lacks the method, URL or status: %s", l)
				}
			}
		}
		switch {
		case verbose && lines != 2:
			t.Errorf("-v: %d request lines, want one per request (2):\n%s", lines, stderr)
		case !verbose && lines != 0:
			t.Errorf("without -v: %d request lines, want none:\n%s", lines, stderr)
		}
	}
}
