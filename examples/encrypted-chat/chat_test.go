package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
	"github.com/wstap/wstap/internal/wstest"
)

var listenLine = regexp.MustCompile(`chat listening on (https?)://(\S+)/ `)

// startServer runs the chat server with key on a free port until the test ends and
// returns its host:port and its output.
func startServer(t *testing.T, key string) (string, *wstest.SyncBuffer) {
	t.Helper()
	box, err := chatcrypto.NewHex(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &wstest.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, "127.0.0.1:0", false, box, key, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the server did not stop within 5 s")
		}
	})
	var m []string
	if !wstest.Poll(5*time.Second, func() bool { m = listenLine.FindStringSubmatch(out.String()); return m != nil }) {
		t.Fatalf("no 'chat listening on' line within 5 s; output:\n%s", out)
	}
	return m[2], out
}

// waitFor polls until s() contains want.
func waitFor(t *testing.T, what string, s func() string, want string) {
	t.Helper()
	if !wstest.Poll(5*time.Second, func() bool { return strings.Contains(s(), want) }) {
		t.Fatalf("%s has no %q within 5 s:\n%s", what, want, s())
	}
}

func runClient(t *testing.T, addr, key string, timeout time.Duration, stdin io.Reader, out []outgoing) (string, error) {
	t.Helper()
	box, err := chatcrypto.NewHex(key)
	if err != nil {
		t.Fatal(err)
	}
	var buf wstest.SyncBuffer
	c := client{url: "ws://" + addr + "/ws", user: "alice", timeout: timeout, box: box, out: &buf, stdin: stdin}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.run(ctx, out)
	return buf.String(), err
}

func TestChat(t *testing.T) {
	addr, srv := startServer(t, chatcrypto.DemoKey)

	out, err := runClient(t, addr, chatcrypto.DemoKey, 5*time.Second, nil, []outgoing{
		{raw: true, text: "plain text, not base64!"},
		{text: "hello"},
		{text: "two\nlines"},
	})
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	for _, want := range []string{
		`sent raw "plain text, not base64!"`,
		"got user=alice text=hello\n",
		`got user=alice text="two\nlines"` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("client output has no %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		"received user=alice text=hello\n",
		`received user=alice text="two\nlines"` + "\n",
		`not base64: illegal base64 data at input byte 5: "plain text, not base64!"` + "\n",
	} {
		waitFor(t, "server output", srv.String, want)
	}
	if n := strings.Count(srv.String(), "rejected from"); n != 1 {
		t.Errorf("server rejected %d messages, want 1:\n%s", n, srv)
	}

	// One message per stdin line when there is no -send.
	out, err = runClient(t, addr, chatcrypto.DemoKey, 5*time.Second, strings.NewReader("from stdin\nsecond line\n"), nil)
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	for _, want := range []string{"got user=alice text=from stdin\n", "got user=alice text=second line\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("client output has no %q:\n%s", want, out)
		}
	}

	// With another key the server rejects the message, so no echo comes back: the
	// client gives up after its timeout.
	const otherKey = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100"
	start := time.Now()
	out, err = runClient(t, addr, otherKey, 300*time.Millisecond, nil, []outgoing{{text: "wrong key"}})
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms: got 0 of 1 echoes") {
		t.Errorf("client with the wrong key: %v, want a timeout\n%s", err, out)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the client took %v to time out after 300ms", d)
	}
	waitFor(t, "server output", srv.String, "message authentication failed")
}

func TestPage(t *testing.T) {
	const key = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100"
	addr, _ := startServer(t, key)
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<meta name="chat-key" content="`+key+`">`) || !strings.Contains(body, `from "./chatcrypto.js"`) {
		t.Errorf("GET /: %s, want the page with the key inlined:\n%s", resp.Status, body)
	}
	resp, body = get("/chatcrypto.js")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/javascript") || !strings.Contains(body, "export async function seal") {
		t.Errorf("GET /chatcrypto.js: %s, Content-Type %q (a module script needs a JavaScript type)", resp.Status, ct)
	}
	if resp, _ := get("/nothing"); resp.StatusCode != 404 {
		t.Errorf("GET /nothing: %s, want 404", resp.Status)
	}
}

// TestBrowserCrypto runs the page's crypto module (static/chatcrypto.js, WebCrypto)
// under node against the Go implementation: each side opens what the other sealed.
// Without node (Debian: nodejs) it is skipped, or fails under CI.
func TestBrowserCrypto(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		wstest.Unavailable(t, "node is not installed (Debian: apt-get install nodejs): the page's WebCrypto code is not checked")
	}
	dir := t.TempDir()
	js, err := static.ReadFile("static/chatcrypto.js")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chatcrypto.mjs"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	const script = `
import { importKey, seal, open } from "./chatcrypto.mjs";
const [keyHex, wire] = process.argv.slice(2);
const key = await importKey(keyHex);
const m = await open(key, wire);
console.log(JSON.stringify(m));
console.log(await seal(key, { user: "browser", text: m.text + " back ✓" }));
try {
  await open(key, "plain text, not base64!");
  console.log("opened garbage");
} catch (e) {
  console.log("refused garbage");
}
`
	if err := os.WriteFile(filepath.Join(dir, "check.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	box, _ := chatcrypto.NewHex(chatcrypto.DemoKey)
	wire := box.SealMessage(chatcrypto.Message{User: "alice", Text: "hi ✓"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.mjs", chatcrypto.DemoKey, string(wire))
	cmd.Dir = dir
	outb, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(outb), "crypto is not defined") {
			wstest.Unavailable(t, "this node has no global WebCrypto: %s", outb)
		}
		t.Fatalf("node: %v\n%s", err, outb)
	}
	lines := strings.Split(strings.TrimSpace(string(outb)), "\n")
	if len(lines) != 3 || lines[0] != `{"user":"alice","text":"hi ✓"}` || lines[2] != "refused garbage" {
		t.Fatalf("node output:\n%s", outb)
	}
	m, err := box.OpenMessage([]byte(lines[1]))
	if err != nil {
		t.Fatalf("Go cannot open what the page's code sealed (%q): %v", lines[1], err)
	}
	if m.User != "browser" || m.Text != "hi ✓ back ✓" {
		t.Errorf("opened %+v", m)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-key", "abcd"},
		{"-send", "x"},
		{"extra"},
		{"-nosuchflag"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}
