package cmd_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/wstap/wstap/internal/wstest"
)

// TestSniffLiveInterrupt runs `wstap sniff -i lo` as a user does: it waits for
// the line saying the capture is open, watches a WebSocket echo on loopback, and
// is stopped with SIGINT, as Ctrl-C stops it. It must exit 0 with every message
// once in the JSONL (loopback's second copies dropped) and the summary last. It
// needs CAP_NET_RAW: skipped without it, but CI runs as root and must capture.
func TestSniffLiveInterrupt(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			op, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(op, p)
		}
	}))
	defer srv.Close()
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)

	p := startProc(t, wstapBinary(t), "", childEnv(), "sniff", "-i", "lo", "--filter", "tcp port "+port, "--log", "-")
	started := p.wait(t, p.stderr, regexp.MustCompile(`wstap sniff: (capturing on lo \(tcp port \d+\); Ctrl-C stops|.*CAP_NET_RAW.*)\n`))
	if strings.Contains(started, "CAP_NET_RAW") {
		wstest.Unavailable(t, "%s", started) // CI runs as root: live capture must work there
	}

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"one", "two", "three"} {
		c.WriteMessage(websocket.TextMessage, []byte(m))
		c.ReadMessage()
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
	c.ReadMessage()
	c.Close()
	p.wait(t, p.stdout, regexp.MustCompile(`"event":"close"`))
	if code := p.interrupt(t); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.stderr)
	}

	var texts []string
	sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, sc.Text())
		}
		if m["event"] == "message" && m["opcode"] == "text" {
			texts = append(texts, m["dir"].(string)+" "+m["payload"].(string))
		}
		if m["event"] == "open" && !strings.HasSuffix(m["url"].(string), "/live") {
			t.Errorf("open %v", m)
		}
	}
	if want := "c2s one,s2c one,c2s two,s2c two,c2s three,s2c three"; strings.Join(texts, ",") != want {
		t.Errorf("messages %q, want %s\n%s", texts, want, p.stderr)
	}
	summary := regexp.MustCompile(`wstap sniff: \d+ packets, 1 connection, 8 messages \(.*\), 0 gaps, 0 errors; .*\n$`)
	if !summary.MatchString(p.stderr.String()) {
		t.Errorf("stderr does not end with a summary of 1 connection and 8 messages:\n%s", p.stderr)
	}
}

// TestSniffLiveUnprivileged runs `wstap sniff -i lo` as nobody (uid 65534, no
// capabilities), from a directory outside /root, as a user without
// CAP_NET_RAW would: it must exit 1 with one line that names the capability and
// says how to grant it.
func TestSniffLiveUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		wstest.Unavailable(t, "needs root to switch to an unprivileged user")
	}
	setpriv := wstest.Command(t, "setpriv", "util-linux")
	// The binary lives in a private temporary directory: copy it where nobody
	// may run it.
	dir, err := os.MkdirTemp("/tmp", "wstap-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(wstapBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wstap"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, setpriv, dir, childEnv(), "--reuid=65534", "--regid=65534", "--clear-groups",
		filepath.Join(dir, "wstap"), "sniff", "-i", "lo", "--filter", "tcp port 9")
	code := p.finish(t)
	out := p.stderr.String()
	t.Logf("exit %d: %s", code, out)
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "wstap sniff: -i lo: ") {
		t.Errorf("exit %d, want 1 with one line of error:\n%s", code, out)
	}
	for _, want := range []string{"CAP_NET_RAW", "sudo setcap cap_net_raw+ep"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error lacks %q", want)
		}
	}
}
