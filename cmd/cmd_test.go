package cmd_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wstap/wstap/cmd"
	"github.com/wstap/wstap/internal/wstest"
)

const caEnv = "WSTAP_CA_DIR"

// noLeaks fails the test if it leaves goroutines behind. Call it first: cleanups run
// last-in first-out, so the check runs after every other cleanup of the test.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// outBuf is a goroutine-safe writer that keeps everything written to it and reports,
// once, the address of the first "proxy listening on ADDR" line.
type outBuf struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	seen bool
	addr chan string
}

func newOutBuf() *outBuf { return &outBuf{addr: make(chan string, 1)} }

var listenRE = regexp.MustCompile(`proxy listening on (\S+)\n`)

func (o *outBuf) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, _ := o.buf.Write(p)
	if !o.seen {
		if m := listenRE.FindSubmatch(o.buf.Bytes()); m != nil {
			o.seen = true
			o.addr <- string(m[1])
		}
	}
	return n, nil
}

func (o *outBuf) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// runCmd runs a command line that is expected to finish on its own.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, e := newOutBuf(), newOutBuf()
	code = cmd.Run(ctx, args, o, e)
	if ctx.Err() != nil {
		t.Errorf("wstap %q was still running after 5 s (stopped by its context); it should have exited on its own; stderr:\n%s", args, e)
	}
	return code, o.String(), e.String()
}

// running is a proxy started in-process with cmd.Run.
type running struct {
	addr           string
	stdout, stderr *outBuf
	cancel         context.CancelFunc
	done           chan int
	stopped        bool
	code           int
}

// startRun runs wstap with args in-process and waits for it to print its address.
func startRun(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &running{stdout: newOutBuf(), stderr: newOutBuf(), cancel: cancel, done: make(chan int, 1)}
	go func() { r.done <- cmd.Run(ctx, args, r.stdout, r.stderr) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case r.addr = <-r.stderr.addr:
	case code := <-r.done:
		r.stopped, r.code = true, code
		t.Fatalf("wstap %q exited with %d before listening; stderr:\n%s", args, code, r.stderr)
	case <-time.After(15 * time.Second):
		t.Fatalf("wstap %q printed no 'proxy listening on' line within 15 s; stderr:\n%s", args, r.stderr)
	}
	return r
}

// stop cancels the proxy's context and returns its exit status.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	if r.stopped {
		return r.code
	}
	r.stopped = true
	r.cancel()
	select {
	case r.code = <-r.done:
	case <-time.After(10 * time.Second):
		t.Errorf("wstap did not return within 10 s of its context being cancelled; stderr:\n%s", r.stderr)
		r.code = -1
	}
	return r.code
}

// echoServer is a gorilla WebSocket echo server that records what it receives.
type echoServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []string
	open map[*websocket.Conn]bool
}

// newEchoServer starts an echo server (TLS when useTLS); greet, when not empty, is
// sent to every client first.
func newEchoServer(t *testing.T, useTLS, compress bool, greet string) *echoServer {
	t.Helper()
	e := &echoServer{open: map[*websocket.Conn]bool{}}
	up := websocket.Upgrader{EnableCompression: compress, Subprotocols: []string{"chat"}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		e.mu.Lock()
		e.open[c] = true
		e.mu.Unlock()
		defer func() {
			e.mu.Lock()
			delete(e.open, c)
			e.mu.Unlock()
			c.Close()
		}()
		c.SetPingHandler(func(s string) error {
			e.record("ping:" + s)
			return c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(5*time.Second))
		})
		if greet != "" {
			if c.WriteMessage(websocket.TextMessage, []byte(greet)) != nil {
				return
			}
		}
		for {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			mt, m, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					e.record(fmt.Sprintf("close:%d %s", ce.Code, ce.Text))
				}
				return
			}
			e.record(msgString(mt, m))
			if c.WriteMessage(mt, m) != nil {
				return
			}
		}
	})
	e.srv = httptest.NewUnstartedServer(h)
	// Quiet: the proxy refusing this server's certificate is expected in a test.
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		e.srv.StartTLS()
	} else {
		e.srv.Start()
	}
	t.Cleanup(func() {
		e.mu.Lock()
		for c := range e.open {
			c.NetConn().Close()
		}
		e.mu.Unlock()
		e.srv.Close()
	})
	return e
}

func msgString(mt int, m []byte) string {
	if mt == websocket.BinaryMessage {
		return "binary:" + hex.EncodeToString(m)
	}
	return "text:" + string(m)
}

func (e *echoServer) record(s string) {
	e.mu.Lock()
	e.got = append(e.got, s)
	e.mu.Unlock()
}

func (e *echoServer) received() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// waitReceived waits until the server has received want (in this order, nothing else).
func (e *echoServer) waitReceived(t *testing.T, want ...string) {
	t.Helper()
	wstest.Poll(5*time.Second, func() bool { return slices.Equal(e.received(), want) })
	if got := e.received(); !slices.Equal(got, want) {
		t.Errorf("the server received\n  %q\nwant\n  %q", got, want)
	}
}

// wsURL returns the server's URL with scheme ws or wss and the given path.
func (e *echoServer) wsURL(path string) string {
	u, _ := url.Parse(e.srv.URL)
	u.Scheme = "ws"
	if e.srv.TLS != nil {
		u.Scheme = "wss"
	}
	return u.String() + path
}

// dialVia opens a WebSocket to u through the proxy at proxyAddr.
func dialVia(t *testing.T, proxyAddr, u string, d websocket.Dialer) (*websocket.Conn, *http.Response) {
	t.Helper()
	d.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	d.HandshakeTimeout = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s through the proxy %s: %v (response %q)", u, proxyAddr, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// send writes a message and expects it echoed as want.
func send(t *testing.T, c *websocket.Conn, mt int, msg, want []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(mt, msg); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	gt, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read the echo of %q: %v", msg, err)
	}
	if gt != mt || !bytes.Equal(got, want) {
		t.Fatalf("echo of %q: got type %d %q, want type %d %q", msg, gt, got, mt, want)
	}
}

// expectText reads one text message and checks it.
func expectText(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, got, err := c.ReadMessage()
	if err != nil || mt != websocket.TextMessage || string(got) != want {
		t.Fatalf("read: got type %d %q, %v; want text %q", mt, got, err, want)
	}
}

// closeWith starts the close handshake with code and reason and returns the code
// of the close frame that comes back.
func closeWith(t *testing.T, c *websocket.Conn, code int, reason string) int {
	t.Helper()
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("write close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, m, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("after sending close %d: read %q, %v; want the peer's close frame", code, m, err)
	}
	c.Close()
	return ce.Code
}

// event is one line of the JSONL event log.
type event map[string]any

func (e event) str(k string) string { s, _ := e[k].(string); return s }

func (e event) num(k string) int64 {
	n, ok := e[k].(json.Number)
	if !ok {
		return -1
	}
	i, err := n.Int64()
	if err != nil {
		return -1
	}
	return i
}

func (e event) flag(k string) bool { b, _ := e[k].(bool); return b }

// parseEvents parses JSONL. With strict, every line must be complete and valid;
// otherwise a trailing partial line (a log being written) is ignored.
func parseEvents(data []byte, strict bool) ([]event, error) {
	var evs []event
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			if strict {
				return evs, fmt.Errorf("the last line does not end with a newline: %q", line)
			}
			break
		}
		data = rest
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var e event
		if err := dec.Decode(&e); err != nil {
			return evs, fmt.Errorf("line %q: %v", line, err)
		}
		if dec.More() {
			return evs, fmt.Errorf("line %q holds more than one JSON value", line)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// readEvents reads a complete event log and checks every event against the schema.
func readEvents(t *testing.T, path string) []event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("event log: %v", err)
	}
	evs, err := parseEvents(data, true)
	if err != nil {
		t.Fatalf("event log %s: %v", path, err)
	}
	for _, e := range evs {
		checkSchema(t, e)
	}
	return evs
}

// waitEvents polls the event log until cond holds (the log is flushed within about
// 100 ms of each event).
func waitEvents(t *testing.T, path string, what string, cond func([]event) bool) {
	t.Helper()
	var data []byte
	if !wstest.Poll(5*time.Second, func() bool {
		data, _ = os.ReadFile(path)
		evs, _ := parseEvents(data, false)
		return cond(evs)
	}) {
		t.Fatalf("event log %s: no %s within 5 s; it holds:\n%s", path, what, data)
	}
}

var (
	stringKeys = []string{"event", "time", "conn", "url", "client", "server", "subprotocol", "extensions", "mode", "dir", "opcode", "payload", "first",
		"encoding", "reason", "by", "decoded", "decoded_encoding", "original", "original_encoding", "original_decoded",
		"original_decoded_encoding", "decode_error", "would_payload", "would_encoding", "would_decoded", "would_decoded_encoding"}
	numberKeys = []string{"seq", "len", "frames", "code", "original_len", "would_inject", "count", "bytes", "seq_first", "seq_last"}
	boolKeys   = []string{"compressed", "modified", "dropped", "injected", "hooked", "truncated", "would_modify", "would_drop"}
)

// checkSchema checks one event against the README's JSONL schema: the documented
// fields for its kind and no others, each of the right type and form.
func checkSchema(t *testing.T, e event) {
	t.Helper()
	want, ok := cmd.SchemaKeys[e.str("event")]
	if !ok {
		t.Errorf("event %v: unknown event kind %q", e, e["event"])
		return
	}
	var keys []string
	for k := range e {
		if !slices.Contains(want, k) && !slices.Contains(cmd.OptionalKeys[e.str("event")], k) {
			t.Errorf("%s event has the undocumented field %q: %v", e.str("event"), k, e)
		}
		keys = append(keys, k)
	}
	for _, k := range want {
		if !slices.Contains(keys, k) {
			t.Errorf("%s event lacks the field %q: %v", e.str("event"), k, e)
		}
	}
	for _, k := range stringKeys {
		if v, ok := e[k]; ok {
			if _, ok := v.(string); !ok {
				t.Errorf("field %q = %v (%T), want a string: %v", k, v, v, e)
			}
		}
	}
	for _, k := range numberKeys {
		if _, ok := e[k]; ok && e.num(k) < 0 {
			t.Errorf("field %q = %v, want a non-negative integer: %v", k, e[k], e)
		}
	}
	for _, k := range boolKeys {
		if v, ok := e[k]; ok {
			if _, ok := v.(bool); !ok {
				t.Errorf("field %q = %v (%T), want a boolean: %v", k, v, v, e)
			}
		}
	}
	ts := e.str("time")
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !strings.HasSuffix(ts, "Z") || time.Since(tm) > time.Hour || time.Until(tm) > time.Minute {
		t.Errorf("time %q: want a recent RFC 3339 UTC time ending in Z (%v)", ts, err)
	}
	if e.str("conn") == "" {
		t.Errorf("event without a conn id: %v", e)
	}
	switch e.str("event") {
	case "open":
		if e.str("mode") != "proxy" {
			t.Errorf("open event: mode %q, want proxy: %v", e.str("mode"), e)
		}
	case "message":
		if d := e.str("dir"); d != "c2s" && d != "s2c" {
			t.Errorf("message event: dir %q, want c2s or s2c: %v", d, e)
		}
		if op := e.str("opcode"); !slices.Contains([]string{"text", "binary", "ping", "pong", "close"}, op) {
			t.Errorf("message event: opcode %q: %v", op, e)
		}
		p, err := payloadOf(e)
		if err != nil {
			t.Errorf("message event: %v: %v", err, e)
		} else if int64(len(p)) != e.num("len") {
			t.Errorf("message event: len %d, but the payload has %d bytes: %v", e.num("len"), len(p), e)
		}
	case "close":
		if by := e.str("by"); by != "client" && by != "server" && by != "proxy" {
			t.Errorf("close event: by %q, want client, server or proxy: %v", by, e)
		}
	}
}

// payloadOf decodes a message event's payload according to its encoding.
func payloadOf(e event) ([]byte, error) {
	switch e.str("encoding") {
	case "text":
		return []byte(e.str("payload")), nil
	case "base64":
		return base64.StdEncoding.DecodeString(e.str("payload"))
	}
	return nil, fmt.Errorf("encoding %q, want text or base64", e["encoding"])
}

// openEvent returns the open event of the connection to u.
func openEvent(t *testing.T, evs []event, u string) event {
	t.Helper()
	var found []event
	for _, e := range evs {
		if e.str("event") == "open" && e.str("url") == u {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one open event with url %q, found %d in:\n%v", u, len(found), evs)
	}
	return found[0]
}

// closeEvents returns the close events of connection id.
func closeEvents(evs []event, id string) []event {
	var out []event
	for _, e := range evs {
		if e.str("event") == "close" && e.str("conn") == id {
			out = append(out, e)
		}
	}
	return out
}

// wantMsg is an expected message event.
type wantMsg struct {
	dir, opcode string
	payload     []byte
	modified    bool
	hooked      bool
	compressed  bool
}

func data(dir, op, payload string, modified, compressed bool) wantMsg {
	return wantMsg{dir: dir, opcode: op, payload: []byte(payload), modified: modified, hooked: true, compressed: compressed}
}

func ctrl(dir, op string, payload []byte) wantMsg {
	return wantMsg{dir: dir, opcode: op, payload: payload}
}

// checkMessages compares connection id's message events with want, direction by
// direction, in order, with seq counting from 0 in each direction.
func checkMessages(t *testing.T, evs []event, id string, want []wantMsg) {
	t.Helper()
	for _, dir := range []string{"c2s", "s2c"} {
		var got []event
		for _, e := range evs {
			if e.str("event") == "message" && e.str("conn") == id && e.str("dir") == dir {
				got = append(got, e)
			}
		}
		var w []wantMsg
		for _, m := range want {
			if m.dir == dir {
				w = append(w, m)
			}
		}
		if len(got) != len(w) {
			t.Errorf("conn %s: %d %s message events, want %d:\n%v", id, len(got), dir, len(w), got)
			continue
		}
		for i, e := range got {
			m := w[i]
			p, _ := payloadOf(e)
			wantEnc := "text"
			if m.opcode == "binary" || !isUTF8(m.payload) {
				wantEnc = "base64"
			}
			if e.str("opcode") != m.opcode || !bytes.Equal(p, m.payload) || e.str("encoding") != wantEnc ||
				e.num("seq") != int64(i) || e.num("frames") != 1 ||
				e.flag("modified") != m.modified || e.flag("hooked") != m.hooked || e.flag("compressed") != m.compressed ||
				e.flag("dropped") || e.flag("injected") {
				t.Errorf("conn %s %s message %d:\n  got  %v\n  want seq %d opcode %s payload %q encoding %s frames 1 modified %v hooked %v compressed %v, not dropped or injected",
					id, dir, i, e, i, m.opcode, m.payload, wantEnc, m.modified, m.hooked, m.compressed)
			}
		}
	}
}

func isUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

// checkClose checks that connection id has exactly one close event with these values.
func checkClose(t *testing.T, evs []event, id string, code int64, reason, by string) {
	t.Helper()
	cl := closeEvents(evs, id)
	if len(cl) != 1 {
		t.Errorf("conn %s: %d close events, want 1: %v", id, len(cl), cl)
		return
	}
	if e := cl[0]; e.num("code") != code || e.str("reason") != reason || e.str("by") != by {
		t.Errorf("conn %s close event %v: want code %d reason %q by %q", id, e, code, reason, by)
	}
}

// checkCA checks a CA directory: an ECDSA P-256 CA certificate and a key file of
// mode 0600 in a directory of mode 0700. It returns the certificate file.
func checkCA(t *testing.T, dir string) []byte {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatalf("CA certificate: %v", err)
	}
	cert := parseCACert(t, pemBytes)
	if cert.Subject.CommonName == "" {
		t.Errorf("CA certificate without a subject name")
	}
	for path, want := range map[string]fs.FileMode{filepath.Join(dir, "ca-key.pem"): 0o600, dir: 0o700} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	return pemBytes
}

// parseCACert parses one PEM certificate and checks it is an ECDSA P-256 CA.
func parseCACert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("want exactly one PEM CERTIFICATE block, got:\n%s", pemBytes)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse the CA certificate: %v", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA %v, basic constraints %v, key usage %b: want a CA that can sign certificates", cert.IsCA, cert.BasicConstraintsValid, cert.KeyUsage)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", cert.PublicKey)
	}
	if time.Until(cert.NotAfter) < 365*24*time.Hour || time.Now().Before(cert.NotBefore) {
		t.Errorf("CA certificate valid %v to %v: want valid now and for years", cert.NotBefore, cert.NotAfter)
	}
	return cert
}

// oneLine checks that s is exactly one newline-terminated line.
func oneLine(t *testing.T, what, s string) {
	t.Helper()
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("%s: want exactly one line, got %d:\n%s", what, strings.Count(s, "\n"), s)
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLIErrors(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	caDir := filepath.Join(tmp, "ca")
	t.Setenv(caEnv, caDir)
	// Create the CA first, so that no case prints "created a new CA" next to its error.
	if code, out, errOut := runCmd(t, "ca", "path"); code != 0 || out != filepath.Join(caDir, "ca.pem")+"\n" {
		t.Fatalf("wstap ca path: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// A CA whose key file others can read, and one whose certificate is garbage.
	openKey := filepath.Join(tmp, "open-key")
	garbage := filepath.Join(tmp, "garbage")
	for _, dir := range []string{openKey, garbage} {
		if code, _, errOut := runCmd(t, "ca", "path", "--ca-dir", dir); code != 0 {
			t.Fatalf("wstap ca path --ca-dir %s: exit %d: %s", dir, code, errOut)
		}
	}
	if err := os.Chmod(filepath.Join(openKey, "ca-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(garbage, "ca.pem"), "this is not a certificate\n")

	typoDir := filepath.Join(tmp, "ca-typo")
	missing := filepath.Join(tmp, "missing.yaml")
	unknownField := writeFile(t, filepath.Join(tmp, "unknown.yaml"), "listen: 127.0.0.1:0\nlisten_addr: 127.0.0.1:0\n")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()

	const usage, failure = 2, 1
	cases := []struct {
		name string
		args []string
		code int
		want []string // each must appear in the one line on stderr
	}{
		// Usage errors: the command line is wrong.
		{"unknown flag", []string{"--colour", "red"}, usage, []string{"colour", "--help"}},
		{"hook with a bad name", []string{"--hook", "Bad Name"}, usage, []string{"--hook", "Bad Name", "plugin name"}},
		{"unknown plugin", []string{"--hook", "nope"}, usage, []string{`"nope"`, "replace", "log"}},
		{"unknown plugin option", []string{"--hook", "replace:colour=red,match=a"}, usage, []string{"replace", "colour"}},
		{"hook grammar", []string{"--hook", "replace:match=a,"}, usage, []string{"--hook", "replace:match=a,", "trailing comma"}},
		{"remote listen without --allow-remote", []string{"--listen", "0.0.0.0:0"}, usage, []string{"0.0.0.0:0", "--allow-remote"}},
		{"listen on all interfaces without --allow-remote", []string{"--listen", ":0"}, usage, []string{`":0"`, "--allow-remote"}},
		{"listen without a port", []string{"--listen", "127.0.0.1"}, usage, []string{"--listen", "HOST:PORT"}},
		{"bad --max-message", []string{"--max-message", "12XB"}, usage, []string{"--max-message", "12XB"}},
		{"zero --max-hook-message", []string{"--max-hook-message", "0"}, usage, []string{"--max-hook-message", `"0"`}},
		{"bad --hook-errors", []string{"--hook-errors", "maybe"}, usage, []string{"--hook-errors", "maybe", "pass", "close"}},
		{"bad --upstream-proxy", []string{"--upstream-proxy", "ftp://x"}, usage, []string{"--upstream-proxy", "ftp://x", "http://"}},
		{"listen port out of range", []string{"--listen", "127.0.0.1:99999"}, usage, []string{"--listen", "99999", "0-65535"}},
		{"hook limit above the message limit", []string{"--max-hook-message", "2GiB", "--max-message", "1MiB"}, usage,
			[]string{"--max-hook-message 2GiB", "--max-message 1MiB", "larger"}},
		{"sniff hook limit above the message limit", []string{"sniff", "-r", "../sniff/testdata/ws-plain.pcap", "--max-hook-message", "2MiB", "--max-message", "1MiB"}, usage,
			[]string{"--max-hook-message 2MiB", "--max-message 1MiB"}},
		{"unknown --show condition", []string{"--show", "colour=red"}, usage, []string{"--show", "colour", "dir, opcode, match, url or conn"}},
		{"bad --show direction", []string{"--show", "dir=up"}, usage, []string{"--show", "dir=up", "c2s"}},
		{"bad --show opcode", []string{"sniff", "-r", "../sniff/testdata/ws-plain.pcap", "--show", "opcode=texts"}, usage, []string{"--show", "texts", "binary"}},
		{"bad --show regexp", []string{"--show", "match=("}, usage, []string{"--show", "match", "missing closing )"}},
		{"--show grammar", []string{"--show", "match=a=b"}, usage, []string{"--show", "quote it"}},
		{"--show with --quiet", []string{"--show", "dir=c2s", "--quiet"}, usage, []string{"--show", "--quiet"}},
		{"empty --show", []string{"sniff", "-r", "../sniff/testdata/ws-plain.pcap", "--show", ""}, usage, []string{"--show", "empty"}},
		{"unknown command", []string{"bogus"}, usage, []string{`"bogus"`, "wstap help"}},
		{"ca without subcommand", []string{"ca"}, usage, []string{"export", "path"}},
		{"ca with an unknown subcommand", []string{"ca", "frob"}, usage, []string{"export", "path"}},
		{"version with an argument", []string{"version", "extra"}, usage, []string{`"extra"`}},

		// Other failures.
		{"busy port", []string{"--listen", busyAddr}, failure, []string{busyAddr, "in use", "--listen"}},
		{"ca export from a directory without a CA", []string{"ca", "export", "--ca-dir", typoDir}, failure,
			[]string{"no CA in " + typoDir, "wstap ca path --ca-dir " + typoDir}},
		{"CA key readable by others", []string{"--listen", "127.0.0.1:0", "--ca-dir", openKey}, failure, []string{filepath.Join(openKey, "ca-key.pem"), "chmod 600"}},
		{"garbage CA certificate", []string{"--listen", "127.0.0.1:0", "--ca-dir", garbage}, failure, []string{garbage, "certificate"}},
		{"missing config file", []string{"--config", missing}, failure, []string{missing}},
		{"unknown field in the config file", []string{"--config", unknownField, "--listen", "127.0.0.1:0"}, usage, []string{unknownField + ":2: ", "listen_addr", "known: listen, "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("wstap %q: exit status %d, want %d; stderr:\n%s", tc.args, code, tc.code, stderr)
			}
			if stdout != "" {
				t.Errorf("wstap %q wrote to stdout: %q", tc.args, stdout)
			}
			oneLine(t, fmt.Sprintf("stderr of wstap %q", tc.args), stderr)
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("wstap %q: stderr does not mention %q:\n%s", tc.args, w, stderr)
				}
			}
		})
	}

	// The files the failed runs were pointed at are left alone.
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v, want it still missing", missing, err)
	}
	if info, err := os.Stat(filepath.Join(openKey, "ca-key.pem")); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("the refused CA key changed: %v, %v", info, err)
	}
	if _, err := os.Stat(typoDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ca export created %s (%v): export must never create a CA", typoDir, err)
	}

	t.Run("ca export with a CA key readable by others", func(t *testing.T) {
		// The certificate is public: it is exported, and the key gets a warning.
		code, stdout, stderr := runCmd(t, "ca", "export", "--ca-dir", openKey)
		if code != 0 || stdout != string(must(os.ReadFile(filepath.Join(openKey, "ca.pem")))) {
			t.Errorf("exit %d, stdout %q; want 0 and the certificate; stderr:\n%s", code, stdout, stderr)
		}
		oneLine(t, "stderr", stderr)
		if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "chmod 600 "+filepath.Join(openKey, "ca-key.pem")) {
			t.Errorf("no warning about the key naming chmod 600:\n%s", stderr)
		}
	})

	t.Run("remote listen with --allow-remote", func(t *testing.T) {
		r := startRun(t, "--listen", "0.0.0.0:0", "--allow-remote")
		host, port, err := net.SplitHostPort(r.addr)
		if err != nil || (host != "0.0.0.0" && host != "::") || port == "0" {
			t.Errorf("listening on %q, want 0.0.0.0 or [::] with the port chosen", r.addr)
		}
		if code := r.stop(t); code != 0 {
			t.Errorf("exit status %d after cancelling, want 0; stderr:\n%s", code, r.stderr)
		}
		if strings.Contains(r.stderr.String(), "not a loopback address") {
			t.Errorf("--allow-remote was given, yet the loopback error appeared:\n%s", r.stderr)
		}
		// The banner names addresses a browser can connect to, not 0.0.0.0 or [::].
		_, browser, _ := strings.Cut(r.stderr.String(), "set the HTTP and HTTPS proxy to ")
		browser, _, _ = strings.Cut(browser, "\n")
		if !strings.HasPrefix(browser, "127.0.0.1:"+port+" ") || strings.Contains(browser, "0.0.0.0") || strings.Contains(browser, "[::]") {
			t.Errorf("the banner says to set the proxy to %q; want 127.0.0.1:%s and this machine's addresses", browser, port)
		}
	})
}

func TestConfigFile(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	srv := newEchoServer(t, false, false, "hello a,b")
	log1 := filepath.Join(tmp, "file.jsonl")
	cfg := writeFile(t, filepath.Join(tmp, "wstap.yaml"), `# written by TestConfigFile
listen: 127.0.0.1:0
hooks:
  - replace: {dir: c2s, match: 'a,b', with: c}
  - replace: {match: zz, with: yy, literal: true}
log: `+log1+`
quiet: true
`)

	t.Run("file alone", func(t *testing.T) {
		r := startRun(t, "--config", cfg)
		if _, port, _ := net.SplitHostPort(r.addr); port == "8080" || port == "0" {
			t.Fatalf("listening on %s: the file's listen: 127.0.0.1:0 was not used", r.addr)
		}
		u := srv.wsURL("/cfg")
		c, _ := dialVia(t, r.addr, u, websocket.Dialer{})
		expectText(t, c, "hello a,b") // s2c: the dir=c2s hook leaves it alone
		send(t, c, websocket.TextMessage, []byte("xa,by"), []byte("xcy"))
		send(t, c, websocket.TextMessage, []byte("zz.*"), []byte("yy.*"))
		if got := closeWith(t, c, websocket.CloseNormalClosure, "ok"); got != websocket.CloseNormalClosure {
			t.Errorf("close code back: %d, want 1000", got)
		}
		srv.waitReceived(t, "text:xcy", "text:yy.*", "close:1000 ok")
		waitEvents(t, log1, "close event", func(evs []event) bool {
			return slices.ContainsFunc(evs, func(e event) bool { return e.str("event") == "close" })
		})
		if code := r.stop(t); code != 0 {
			t.Errorf("exit status %d, want 0; stderr:\n%s", code, r.stderr)
		}
		evs := readEvents(t, log1)
		id := openEvent(t, evs, u).str("conn")
		checkMessages(t, evs, id, []wantMsg{
			data("s2c", "text", "hello a,b", false, false),
			data("c2s", "text", "xcy", true, false),
			data("s2c", "text", "xcy", false, false),
			data("c2s", "text", "yy.*", true, false),
			data("s2c", "text", "yy.*", false, false),
			ctrl("c2s", "close", websocket.FormatCloseMessage(1000, "ok")),
			ctrl("s2c", "close", websocket.FormatCloseMessage(1000, "")),
		})
		checkClose(t, evs, id, 1000, "ok", "client")
		stderr := r.stderr.String()
		if terminalLine.MatchString(stderr + r.stdout.String()) {
			t.Errorf("quiet: true in the file, yet connections were printed:\n%s%s", r.stdout, stderr)
		}
		for _, w := range []string{"hooks:   replace → replace", "log:     " + log1} {
			if !strings.Contains(stderr, w) {
				t.Errorf("startup block lacks %q:\n%s", w, stderr)
			}
		}
	})

	t.Run("flags override the file", func(t *testing.T) {
		fileLog := filepath.Join(tmp, "from-file.jsonl")
		flagLog := filepath.Join(tmp, "from-flag.jsonl")
		cfg2 := writeFile(t, filepath.Join(tmp, "wstap2.yaml"), strings.Replace(
			string(must(os.ReadFile(cfg))), "log: "+log1, "log: "+fileLog, 1))
		r := startRun(t, "--config", cfg2, "--log", flagLog, "--quiet=false", "--hook", "replace:match=x,with=q")
		u := srv.wsURL("/flags")
		c, _ := dialVia(t, r.addr, u, websocket.Dialer{})
		expectText(t, c, "hello a,b")
		send(t, c, websocket.TextMessage, []byte("xa,by"), []byte("qa,by")) // the flag's hook, not the file's
		if got := closeWith(t, c, 4000, "flags"); got != 4000 {
			t.Errorf("close code back: %d, want 4000", got)
		}
		waitEvents(t, flagLog, "close event", func(evs []event) bool {
			return slices.ContainsFunc(evs, func(e event) bool { return e.str("event") == "close" })
		})
		if code := r.stop(t); code != 0 {
			t.Errorf("exit status %d, want 0; stderr:\n%s", code, r.stderr)
		}
		if _, err := os.Stat(fileLog); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the file's log %s was created (%v) although --log %s overrides it", fileLog, err, flagLog)
		}
		evs := readEvents(t, flagLog)
		id := openEvent(t, evs, u).str("conn")
		checkMessages(t, evs, id, []wantMsg{
			data("s2c", "text", "hello a,b", false, false),
			data("c2s", "text", "qa,by", true, false),
			data("s2c", "text", "qa,by", false, false),
			ctrl("c2s", "close", websocket.FormatCloseMessage(4000, "flags")),
			ctrl("s2c", "close", websocket.FormatCloseMessage(4000, "")),
		})
		checkClose(t, evs, id, 4000, "flags", "client")
		stderr, view := r.stderr.String(), r.stdout.String()
		if !strings.Contains(view, " open  "+u+"\n") || !terminalLine.MatchString(view) {
			t.Errorf("--quiet=false overrides quiet: true, yet the connection was not printed on stdout:\n%s", view)
		}
		if !strings.Contains(stderr, "hooks:   replace\n") {
			t.Errorf("want only the --hook replace in the chain:\n%s", stderr)
		}
	})
	srv.waitReceived(t, "text:xcy", "text:yy.*", "close:1000 ok", "text:qa,by", "close:4000 flags")
}

// terminalLine matches a line of the terminal view: "15:04:05.000 c1 …".
var terminalLine = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3} c\d+ `)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestPluginsAndVersion(t *testing.T) {
	noLeaks(t)
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))

	code, out, errOut := runCmd(t, "plugins")
	if code != 0 || errOut != "" {
		t.Errorf("wstap plugins: exit %d, stderr %q", code, errOut)
	}
	// Each plugin on its own line, followed by its indented options.
	wantOpts := map[string][]string{
		"replace": {"match", "with", "dir", "literal", "hex", "opcode"},
		"log":     {"dir", "label", "max"},
	}
	plugin := ""
	got := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "  "):
			if name, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && plugin != "" {
				got[plugin] = append(got[plugin], name)
			}
		default:
			plugin, _, _ = strings.Cut(line, " ")
		}
	}
	for name, opts := range wantOpts {
		if !slices.Equal(got[name], opts) {
			t.Errorf("wstap plugins: %s options %v, want %v; output:\n%s", name, got[name], opts, out)
		}
	}
	for _, w := range []string{"replace     rewrite messages", "log         log each message", "(default both)", "--hook"} {
		if !strings.Contains(out, w) {
			t.Errorf("wstap plugins output lacks %q:\n%s", w, out)
		}
	}

	code, out, errOut = runCmd(t, "version")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "wstap ") || len(strings.TrimSpace(out)) <= len("wstap") {
		t.Errorf("wstap version: exit %d, stdout %q, stderr %q; want \"wstap VERSION\\n\"", code, out, errOut)
	}
	oneLine(t, "wstap version", out)

	code, out, errOut = runCmd(t, "help")
	if code != 0 || errOut != "" {
		t.Errorf("wstap help: exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{"wstap ca export", "wstap ca path", "wstap plugins", "wstap version", "wstap [proxy]", "wstap sniff", "wstap help"} {
		if !strings.Contains(out, w) {
			t.Errorf("wstap help lacks %q:\n%s", w, out)
		}
	}

	for _, args := range [][]string{{"--help"}, {"proxy", "-h"}} {
		code, out, errOut = runCmd(t, args...)
		if code != 0 || errOut != "" {
			t.Errorf("wstap %q: exit %d, stderr %q; want 0 and the flags on stdout", args, code, errOut)
		}
		for _, w := range []string{"-listen", `"127.0.0.1:8080"`, "-hook", "-log", "-config", "-allow-remote", "-upstream-insecure", "-max-message", "-hook-errors", "-show", "-v"} {
			if !strings.Contains(out, w) {
				t.Errorf("wstap %q does not document %s:\n%s", args, w, out)
			}
		}
	}

	// ca export --der writes the same certificate as ca.pem, in DER (ca path
	// creates the CA; export never does).
	if code, _, errOut := runCmd(t, "ca", "path"); code != 0 {
		t.Fatalf("wstap ca path: exit %d: %s", code, errOut)
	}
	code, pemOut, errOut := runCmd(t, "ca", "export")
	if code != 0 {
		t.Fatalf("wstap ca export: exit %d: %s", code, errOut)
	}
	cert := parseCACert(t, []byte(pemOut))
	code, derOut, errOut := runCmd(t, "ca", "export", "--der")
	if code != 0 || errOut != "" || !bytes.Equal([]byte(derOut), cert.Raw) {
		t.Errorf("wstap ca export --der: exit %d, stderr %q, %d bytes that are not the PEM's certificate", code, errOut, len(derOut))
	}
}

func TestDefaultsNoConfig(t *testing.T) {
	noLeaks(t)
	tmp := t.TempDir()
	xdg, home := filepath.Join(tmp, "xdg"), filepath.Join(tmp, "home")
	for _, d := range []string{xdg, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Setenv("HOME", home)
	t.Setenv(caEnv, "")
	os.Unsetenv(caEnv) // t.Setenv restores it afterwards
	wantDir := filepath.Join(xdg, "wstap")
	wantCert := filepath.Join(wantDir, "ca.pem")

	r := startRun(t, "--listen", "127.0.0.1:0")
	host, port, err := net.SplitHostPort(r.addr)
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Errorf("listening on %q, want 127.0.0.1 with a chosen port", r.addr)
	}
	// The proxy answers on that address.
	if conn, err := net.DialTimeout("tcp", r.addr, 5*time.Second); err != nil {
		t.Errorf("connect to the printed address %s: %v", r.addr, err)
	} else {
		conn.Close()
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit status %d, want 0; stderr:\n%s", code, r.stderr)
	}
	stderr := r.stderr.String()
	for _, w := range []string{
		"created a new CA in " + wantDir + "\n",
		"proxy listening on " + r.addr + "\n",
		"set the HTTP and HTTPS proxy to " + r.addr,
		wantCert,
		"wstap ca export",
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("the startup block lacks %q:\n%s", w, stderr)
		}
	}
	for _, unwanted := range []string{"hooks:", "log:"} {
		if strings.Contains(stderr, unwanted) {
			t.Errorf("no hooks or log were given, yet the startup block says %q:\n%s", unwanted, stderr)
		}
	}
	if out := r.stdout.String(); out != "" {
		t.Errorf("stdout: %q, want nothing", out)
	}
	first := checkCA(t, wantDir)
	if entries, err := os.ReadDir(home); err != nil || len(entries) != 0 {
		t.Errorf("HOME %s: %v entries (%v); with XDG_CONFIG_HOME set nothing belongs there", home, len(entries), err)
	}

	// A second run reuses the CA and says nothing about creating one.
	r = startRun(t, "--listen", "127.0.0.1:0")
	if code := r.stop(t); code != 0 {
		t.Errorf("second run: exit status %d, want 0; stderr:\n%s", code, r.stderr)
	}
	if strings.Contains(r.stderr.String(), "created a new CA") {
		t.Errorf("the second run created a CA again:\n%s", r.stderr)
	}
	if again := checkCA(t, wantDir); !bytes.Equal(first, again) {
		t.Errorf("the CA changed between runs")
	}
	if code, out, errOut := runCmd(t, "ca", "path"); code != 0 || out != wantCert+"\n" || errOut != "" {
		t.Errorf("wstap ca path: exit %d, stdout %q, stderr %q; want %s", code, out, errOut, wantCert)
	}
}

// TestLogHookOutput: the log plugin's lines go to Run's stderr, like everything
// else the CLI prints.
func TestLogHookOutput(t *testing.T) {
	noLeaks(t)
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	srv := newEchoServer(t, false, false, "")
	r := startRun(t, "--listen", "127.0.0.1:0", "--quiet", "--hook", "log:label=tap-under-test,dir=c2s")
	c, _ := dialVia(t, r.addr, srv.wsURL("/tap"), websocket.Dialer{})
	send(t, c, websocket.TextMessage, []byte("tapped message"), []byte("tapped message"))
	closeWith(t, c, 1000, "")
	srv.waitReceived(t, "text:tapped message", "close:1000 ")
	if code := r.stop(t); code != 0 {
		t.Errorf("exit status %d, want 0; stderr:\n%s", code, r.stderr)
	}
	stderr := r.stderr.String()
	if !strings.Contains(stderr, "tap-under-test") || !strings.Contains(stderr, "tapped message") {
		t.Errorf("the log hook's output did not reach Run's stderr:\n%s", stderr)
	}
}
