// Package wstest holds the helpers the project's tests share, in one place: the
// rule for tools a test needs (skip on a developer's machine, fail in CI), polling
// for a condition, a buffer safe for concurrent writers, and both sides of a
// WebSocket opening handshake written by hand, for tests that must control or see
// every byte, and serving a proxy or UI server on loopback for a test.
package wstest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Unavailable is what a test does when something it needs is missing from the
// machine (a command, a package, a privilege): on a developer's machine it skips;
// when the CI environment variable is set it fails, because `make test` installs
// everything the tests need and a skip there would count as a pass.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (and CI is set: make test should have installed it)")
	}
	t.Skip(msg)
}

// Command returns the path of command name (a name looked up in PATH, or an absolute
// path), or calls [Unavailable] saying which Debian package has it.
func Command(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed (apt-get install %s; make test installs it): %v", name, pkg, err)
	}
	return p
}

// Poll calls cond every 20 ms until it returns true or timeout has passed, and
// reports whether it did: the caller says what failed, with the state it found.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Eventually is [Poll] that fails t, saying what it waited for, when cond does not
// hold within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("no %s within %v", what, timeout)
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *SyncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// guid is the fixed string of RFC 6455 §1.3 that the accept key hashes with.
const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2).
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + guid))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// NewKey returns a random Sec-WebSocket-Key: 16 random bytes in base64.
func NewKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// Header is header lines in the order they are written, duplicates allowed, as a
// hand-written request or response sends them.
type Header [][2]string

// UpgradeHeader returns the lines every upgrade request needs, with key.
func UpgradeHeader(key string) Header {
	return Header{{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Key", key}, {"Sec-WebSocket-Version", "13"}}
}

// ClientHandshake does the client side of the opening handshake on c by hand: it
// writes "GET target HTTP/1.1", the Host line, exactly the lines of hdr and then
// early (frames a client may send right behind its request), in one write; reads
// the answer; and checks that it is a 101 accepting key. It returns the reader
// that read the answer (it may already hold frames: read them from it) and the
// answer; a wrong answer is an error that quotes it.
func ClientHandshake(c net.Conn, target, host, key string, hdr Header, early []byte) (*bufio.Reader, *http.Response, error) {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for _, h := range hdr {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(early)
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, nil, fmt.Errorf("write upgrade request: %w", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, nil, fmt.Errorf("read upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, resp, fmt.Errorf("upgrade answer %s, want 101: %s", resp.Status, body)
	}
	switch {
	case !httpguts.HeaderValuesContainsToken(resp.Header["Upgrade"], "websocket"):
		return nil, resp, fmt.Errorf("upgrade answer Upgrade: %q", resp.Header.Values("Upgrade"))
	case !httpguts.HeaderValuesContainsToken(resp.Header["Connection"], "upgrade"):
		return nil, resp, fmt.Errorf("upgrade answer Connection: %q", resp.Header.Values("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != AcceptKey(key):
		return nil, resp, fmt.Errorf("Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), AcceptKey(key))
	}
	return br, resp, nil
}

// ServerHandshake does the server side of the opening handshake on c by hand: it
// reads the request, checks that it is a WebSocket upgrade (GET, Upgrade,
// Connection, version 13, a 16-byte key) and answers 101 with the accept key and the
// lines respond returns for it (respond may be nil). It returns the reader that read
// the request (frames must be read from it) and the request.
func ServerHandshake(c net.Conn, respond func(*http.Request) Header) (*bufio.Reader, *http.Request, error) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, fmt.Errorf("read upgrade request: %w", err)
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	switch k, err := base64.StdEncoding.DecodeString(key); {
	case req.Method != http.MethodGet:
		return nil, req, fmt.Errorf("upgrade request method %q", req.Method)
	case !httpguts.HeaderValuesContainsToken(req.Header["Upgrade"], "websocket"):
		return nil, req, fmt.Errorf("upgrade request Upgrade: %q", req.Header.Values("Upgrade"))
	case !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "upgrade"):
		return nil, req, fmt.Errorf("upgrade request Connection: %q", req.Header.Values("Connection"))
	case req.Header.Get("Sec-WebSocket-Version") != "13":
		return nil, req, fmt.Errorf("upgrade request Sec-WebSocket-Version %q", req.Header.Get("Sec-WebSocket-Version"))
	case err != nil || len(k) != 16:
		return nil, req, fmt.Errorf("Sec-WebSocket-Key %q is not 16 bytes in base64", key)
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + AcceptKey(key) + "\r\n")
	if respond != nil {
		for _, h := range respond(req) {
			b.WriteString(h[0] + ": " + h[1] + "\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, req, fmt.Errorf("write upgrade answer: %w", err)
	}
	return br, req, nil
}

// ConnectTunnel opens a CONNECT tunnel through the HTTP proxy at proxyAddr to target
// and returns the connection after the proxy's 200, having read nothing past it.
func ConnectTunnel(ctx context.Context, proxyAddr, target string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		c.Close()
		return nil, err
	}
	// Read the answer a byte at a time: nothing after its head may be consumed.
	var head []byte
	var one [1]byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(one[:]); err != nil {
			c.Close()
			return nil, fmt.Errorf("CONNECT answer: %w (have %q)", err, head)
		}
		head = append(head, one[0])
		if len(head) > 8<<10 {
			c.Close()
			return nil, fmt.Errorf("CONNECT answer too long: %q", head)
		}
	}
	if f := strings.Fields(string(head)); len(f) < 2 || f[1] != "200" {
		c.Close()
		return nil, fmt.Errorf("CONNECT answer: %q", head)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
