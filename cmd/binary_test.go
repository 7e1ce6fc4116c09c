package cmd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var (
	buildDir  string // removed by TestMain
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wstap-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool returns the go command of the toolchain running the tests.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); runtime.GOROOT() != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// wstapBinary builds cmd/wstap once (with -race when the tests run with it).
func wstapBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		args := []string{"build", "-o", filepath.Join(buildDir, "wstap")}
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "-race" && s.Value == "true" {
					args = append(args, "-race")
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, goTool(), append(args, "./wstap")...)
		out, err := c.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		buildBin = filepath.Join(buildDir, "wstap")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// childEnv is the test's environment without the variables that choose wstap's
// directories, plus kv.
func childEnv(kv ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if k != caEnv && k != "HOME" && k != "XDG_CONFIG_HOME" {
			env = append(env, e)
		}
	}
	return append(env, kv...)
}

// binProc is a running wstap proxy.
type binProc struct {
	*proc
	addr string
}

// startBinary starts the wstap binary and waits for its listening address. It must
// stop within 5 s of SIGINT.
func startBinary(t *testing.T, env []string, args ...string) *binProc {
	t.Helper()
	p := &binProc{proc: startProc(t, wstapBinary(t), "", env, args...)}
	p.name, p.stopWithin = "wstap", 5*time.Second
	select {
	case p.addr = <-p.stderr.addr:
	case <-p.done:
		t.Fatalf("wstap %q exited (%v) before listening; stderr:\n%s", args, p.cmd.ProcessState, p.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("wstap %q printed no 'proxy listening on' line within 20 s; stderr:\n%s", args, p.stderr)
	}
	return p
}

// runBinary runs a wstap command that finishes on its own.
func runBinary(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, wstapBinary(t), args...)
	c.Env = env
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wstap %q: %v", args, err)
	}
	return c.ProcessState.ExitCode(), o.String(), e.String()
}

func TestBinaryEndToEnd(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	caDir, home, xdg := filepath.Join(tmp, "ca"), filepath.Join(tmp, "home"), filepath.Join(tmp, "xdg")
	for _, d := range []string{home, xdg} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// GORACE: a -race binary otherwise sleeps 1 s before exiting.
	env := childEnv(caEnv+"="+caDir, "HOME="+home, "XDG_CONFIG_HOME="+xdg, "GORACE=atexit_sleep_ms=0")
	const hook = "replace:dir=c2s,match=secret,with=public"

	plain := newEchoServer(t, false, false, "")
	secure := newEchoServer(t, true, true, "")
	exported := filepath.Join(tmp, "exported-ca.pem")
	var caPEM []byte

	t.Run("ws", func(t *testing.T) {
		events := filepath.Join(tmp, "events.jsonl")
		p := startBinary(t, env, "--listen", "127.0.0.1:0", "--log", events, "--hook", hook)

		u := plain.wsURL("/echo?room=1")
		c, _ := dialVia(t, p.addr, u, websocket.Dialer{})
		var pongs []string
		c.SetPongHandler(func(s string) error { pongs = append(pongs, s); return nil })
		bin := []byte{0, 1, 2, 0xfe, 0xff}
		send(t, c, websocket.TextMessage, []byte("my secret"), []byte("my public"))
		send(t, c, websocket.TextMessage, []byte("hello"), []byte("hello"))
		send(t, c, websocket.BinaryMessage, bin, bin)
		if err := c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		send(t, c, websocket.TextMessage, []byte("secret secret"), []byte("public public"))
		if !slices.Equal(pongs, []string{"p1"}) {
			t.Errorf("pongs received: %q, want [p1]", pongs)
		}
		clientAddr := c.LocalAddr().String()
		if got := closeWith(t, c, 4001, "bye"); got != 4001 {
			t.Errorf("close code echoed back: %d, want 4001", got)
		}
		plain.waitReceived(t, "text:my public", "text:hello", "binary:000102feff", "ping:p1", "text:public public", "close:4001 bye")
		waitEvents(t, events, "close event", func(evs []event) bool {
			return slices.ContainsFunc(evs, func(e event) bool { return e.str("event") == "close" })
		})

		// wstap ca export, against the same CA directory, gives the CA in use.
		code, out, errOut := runBinary(t, env, "ca", "export", "--out", exported)
		if code != 0 || out != "" || errOut != "" {
			t.Fatalf("wstap ca export --out: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		exportedPEM, err := os.ReadFile(exported)
		if err != nil {
			t.Fatal(err)
		}
		parseCACert(t, exportedPEM)
		caPEM = checkCA(t, caDir)
		if !bytes.Equal(exportedPEM, caPEM) {
			t.Errorf("wstap ca export wrote a certificate other than %s/ca.pem", caDir)
		}

		// Without --upstream-insecure an untrusted upstream certificate is refused.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(exportedPEM)
		d := websocket.Dialer{Proxy: proxyFunc(p.addr), TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 10 * time.Second}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		bad, resp, err := d.DialContext(ctx, secure.wsURL("/untrusted"), nil)
		cancel()
		if err == nil {
			bad.Close()
			t.Errorf("a wss:// server with a self-signed certificate was reached without --upstream-insecure")
		} else if resp == nil || resp.StatusCode != http.StatusBadGateway {
			t.Errorf("dial failed (%v) with %v, want a 502", err, resp)
		} else if body, _ := io.ReadAll(resp.Body); !bytes.Contains(body, []byte("--upstream-insecure")) {
			// The page names the way out.
			t.Errorf("the 502 for an upstream certificate that does not verify does not name --upstream-insecure: %q", body)
		}

		if code := p.interrupt(t); code != 0 {
			t.Errorf("exit status after SIGINT: %d, want 0; stderr:\n%s", code, p.stderr)
		}
		// The view is the output, on stdout (the log goes to a file); the banner,
		// warnings and logs are on stderr.
		view := p.stdout.String()
		for _, line := range strings.SplitAfter(view, "\n") {
			if line != "" && !terminalLine.MatchString(line) {
				t.Errorf("stdout holds %q, which is no line of the view:\n%s", line, view)
			}
		}
		if !strings.Contains(view, " open  "+u+"\n") || !regexp.MustCompile(`→ text +9 M my public\n`).MatchString(view) {
			t.Errorf("stdout lacks the view of the connection:\n%s", view)
		}
		if terminalLine.MatchString(p.stderr.String()) {
			t.Errorf("the view is on stderr too:\n%s", p.stderr)
		}
		for _, w := range []string{"created a new CA in " + caDir + "\n", "proxy listening on " + p.addr, "hooks:   replace\n", "log:     " + events + "\n", "CA:      " + filepath.Join(caDir, "ca.pem")} {
			if !strings.Contains(p.stderr.String(), w) {
				t.Errorf("the startup block lacks %q:\n%s", w, p.stderr)
			}
		}
		evs := readEvents(t, events)
		open := openEvent(t, evs, u)
		if open.str("client") != clientAddr || open.str("server") != plain.srv.Listener.Addr().String() ||
			open.str("subprotocol") != "" || open.str("extensions") != "" {
			t.Errorf("open event %v: want client %s, server %s, no subprotocol or extensions", open, clientAddr, plain.srv.Listener.Addr())
		}
		id := open.str("conn")
		checkMessages(t, evs, id, []wantMsg{
			data("c2s", "text", "my public", true, false),
			data("s2c", "text", "my public", false, false),
			data("c2s", "text", "hello", false, false),
			data("s2c", "text", "hello", false, false),
			data("c2s", "binary", string(bin), false, false),
			data("s2c", "binary", string(bin), false, false),
			ctrl("c2s", "ping", []byte("p1")),
			ctrl("s2c", "pong", []byte("p1")),
			data("c2s", "text", "public public", true, false),
			data("s2c", "text", "public public", false, false),
			ctrl("c2s", "close", websocket.FormatCloseMessage(4001, "bye")),
			ctrl("s2c", "close", websocket.FormatCloseMessage(4001, "")),
		})
		checkClose(t, evs, id, 4001, "bye", "client")
		refused := 0
		for _, e := range evs {
			switch {
			case e.str("event") == "refused" && strings.HasSuffix(e.str("url"), "/untrusted"):
				// The upgrade to the server whose certificate does not verify: the
				// client got wstap's 502, and the log says so.
				if resp, _ := e["response"].(map[string]any); resp == nil || fmt.Sprint(resp["status"]) != "502" {
					t.Errorf("refused event %v: want the 502 the client got", e)
				}
				refused++
			case e.str("conn") != id:
				t.Errorf("event of another connection: %v", e)
			}
		}
		if refused != 1 {
			t.Errorf("%d refused events for the upgrade to the untrusted server, want 1", refused)
		}
		if entries, err := os.ReadDir(home); err != nil || len(entries) != 0 {
			t.Errorf("HOME got %d entries (%v); the CA belongs in $%s", len(entries), err, caEnv)
		}
	})
	if caPEM == nil {
		t.Fatal("the ws:// run failed; skipping the wss:// run")
	}

	t.Run("wss", func(t *testing.T) {
		events := filepath.Join(tmp, "events-tls.jsonl")
		p := startBinary(t, env, "--listen", "127.0.0.1:0", "--log", events, "--hook", hook, "--upstream-insecure")
		if strings.Contains(p.stderr.String(), "created a new CA") {
			t.Errorf("the second run created a new CA:\n%s", p.stderr)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(must(os.ReadFile(exported))) {
			t.Fatal("no certificate in the exported file")
		}
		d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, EnableCompression: true, Subprotocols: []string{"chat"}}

		u := secure.wsURL("/tls")
		c, resp := dialVia(t, p.addr, u, d)
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if !strings.Contains(ext, "permessage-deflate") || c.Subprotocol() != "chat" {
			t.Errorf("negotiated extensions %q, subprotocol %q: want permessage-deflate and chat", ext, c.Subprotocol())
		}
		big := strings.Repeat("secret ", 2000)
		send(t, c, websocket.TextMessage, []byte("my secret"), []byte("my public"))
		send(t, c, websocket.TextMessage, []byte(big), []byte(strings.ReplaceAll(big, "secret", "public")))
		clientAddr := c.LocalAddr().String()
		if got := closeWith(t, c, 1000, "done"); got != 1000 {
			t.Errorf("close code back: %d, want 1000", got)
		}

		// More connections are still open when wstap gets SIGINT.
		const nOpen = 3
		var openURLs []string
		closed := make(chan error, nOpen)
		for i := range nOpen {
			u := secure.wsURL(fmt.Sprintf("/tls-open-%d", i))
			openURLs = append(openURLs, u)
			c, _ := dialVia(t, p.addr, u, d)
			msg := fmt.Appendf(nil, "still here %d", i)
			send(t, c, websocket.TextMessage, msg, msg)
			go func() {
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				_, _, err := c.ReadMessage()
				closed <- err
			}()
		}
		waitEvents(t, events, "close event of the first connection", func(evs []event) bool {
			return slices.ContainsFunc(evs, func(e event) bool { return e.str("event") == "close" })
		})

		if code := p.interrupt(t); code != 0 {
			t.Errorf("exit status after SIGINT: %d, want 0; stderr:\n%s", code, p.stderr)
		}
		for range nOpen {
			select {
			case err := <-closed:
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
					t.Errorf("a connection open at SIGINT ended with %v, want a close frame 1001 (going away)", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("a connection open at SIGINT was not closed within 5 s of wstap exiting")
			}
		}
		big2 := strings.ReplaceAll(big, "secret", "public")
		wantReceived := []string{"text:my public", "text:" + big2, "close:1000 done"}
		for i := range nOpen {
			wantReceived = append(wantReceived, fmt.Sprintf("text:still here %d", i))
		}
		for range nOpen {
			wantReceived = append(wantReceived, "close:1001 proxy shutting down")
		}
		secure.waitReceived(t, wantReceived...)

		evs := readEvents(t, events)
		open := openEvent(t, evs, u)
		if open.str("client") != clientAddr || open.str("server") != secure.srv.Listener.Addr().String() ||
			open.str("subprotocol") != "chat" || open.str("extensions") != ext {
			t.Errorf("open event %v: want client %s, server %s, subprotocol chat, extensions %q", open, clientAddr, secure.srv.Listener.Addr(), ext)
		}
		id := open.str("conn")
		checkMessages(t, evs, id, []wantMsg{
			data("c2s", "text", "my public", true, true),
			data("s2c", "text", "my public", false, true),
			data("c2s", "text", big2, true, true),
			data("s2c", "text", big2, false, true),
			ctrl("c2s", "close", websocket.FormatCloseMessage(1000, "done")),
			ctrl("s2c", "close", websocket.FormatCloseMessage(1000, "")),
		})
		checkClose(t, evs, id, 1000, "done", "client")

		// The connections open at shutdown: their messages, and a close by the proxy.
		// Close frames answering the proxy's may or may not be read before the
		// sockets close, so they are counted apart.
		answers := 0
		for i, u := range openURLs {
			id := openEvent(t, evs, u).str("conn")
			var msgs []event
			closeFrames := map[string]int{}
			for _, e := range evs {
				if e.str("conn") != id {
					continue
				}
				if e.str("event") == "message" && e.str("opcode") == "close" {
					closeFrames[e.str("dir")]++
					answers++
					if p, _ := payloadOf(e); len(p) < 2 || int(p[0])<<8|int(p[1]) != websocket.CloseGoingAway {
						t.Errorf("conn %s: close frame %v, want one answering the proxy's 1001", id, e)
					}
					continue
				}
				msgs = append(msgs, e)
			}
			if closeFrames["c2s"] > 1 || closeFrames["s2c"] > 1 {
				t.Errorf("conn %s: close frames logged %v, want at most one per direction", id, closeFrames)
			}
			msg := fmt.Sprintf("still here %d", i)
			checkMessages(t, msgs, id, []wantMsg{
				data("c2s", "text", msg, false, true),
				data("s2c", "text", msg, false, true),
			})
			checkClose(t, evs, id, 1001, "proxy shutting down", "proxy")
		}
		if want := (1+nOpen)*2 + 6 + 2*nOpen + answers; len(evs) != want {
			t.Errorf("%d events, want %d (opens and closes, 6 + %d messages, %d answers to the proxy's close):\n%v", len(evs), want, 2*nOpen, answers, evs)
		}

		if again := checkCA(t, caDir); !bytes.Equal(again, caPEM) {
			t.Errorf("the second run changed the CA")
		}
	})

	// The key file is never readable by others, and the CA directory holds only the CA.
	entries, err := os.ReadDir(caDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"ca-key.pem", "ca.pem"}) {
		t.Errorf("CA directory holds %v, want [ca-key.pem ca.pem]", names)
	}
	if info, err := os.Stat(filepath.Join(caDir, "ca-key.pem")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem: %v %v, want mode 0600", info, err)
	}
	if _, err := os.Stat(filepath.Join(xdg, "wstap")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("$XDG_CONFIG_HOME/wstap exists (%v) although $%s was set", err, caEnv)
	}
}

// proxyFunc routes every request through the HTTP proxy at addr.
func proxyFunc(addr string) func(*http.Request) (*url.URL, error) {
	return http.ProxyURL(&url.URL{Scheme: "http", Host: addr})
}
