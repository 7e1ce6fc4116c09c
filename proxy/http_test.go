package proxy_test

// End-to-end tests of the plain-HTTP side of the proxy: ordinary requests and
// responses (http:// and MITM'd https://) pass through untouched, streamed
// responses stay streamed, connections are reused, upstream certificates are
// verified unless told otherwise, an upstream proxy is honoured, and shutdown
// ends every connection and goroutine.
//
// Identifiers here carry an "ht" prefix so they do not collide with the other
// test files of package proxy_test.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
)

// htBigSize is the size of the large download.
const htBigSize = 20 << 20

// htBig is the large download's content: deterministic pseudo-random bytes, so a
// dropped, repeated or reordered block changes its SHA-256.
var htBig = sync.OnceValue(func() []byte {
	b := make([]byte, htBigSize)
	rng := rand.NewChaCha8([32]byte{'w', 's', 't', 'a', 'p'})
	_, _ = rng.Read(b)
	return b
})

func htSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// htGateTimeout is how long a streaming handler waits for the test to release it
// after its first piece. A proxy that buffers holds the first piece back until the
// handler ends, i.e. until this expires.
const htGateTimeout = 5 * time.Second

// htEcho is what the upstream's /echo endpoint reports about the request it got.
type htEcho struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	BodyLen    int
	BodySHA    string
}

// htPieces are the pieces of the chunked response, flushed one by one.
var htPieces = []string{"first piece\n", "second piece\n", "third piece\n", "fourth piece\n"}

// htApp is the upstream web application.
type htApp struct {
	hits     atomic.Int64 // requests served
	newConns atomic.Int64 // TCP connections accepted
	open     atomic.Int64 // TCP connections not yet closed

	mu    sync.Mutex
	gates map[string]chan struct{}
	done  map[string]bool
}

func newHTApp() *htApp {
	return &htApp{gates: map[string]chan struct{}{}, done: map[string]bool{}}
}

// gate returns the channel that releases the streaming handler serving id.
func (a *htApp) gate(id string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, ok := a.gates[id]
	if !ok {
		g = make(chan struct{})
		a.gates[id] = g
	}
	return g
}

// finished reports whether the streaming handler serving id has written its last
// piece.
func (a *htApp) finished(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done[id]
}

func (a *htApp) finish(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done[id] = true
}

func (a *htApp) waitGate(id string) {
	select {
	case <-a.gate(id):
	case <-time.After(htGateTimeout):
	}
}

func (a *htApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.hits.Add(1)
	rc := http.NewResponseController(w)
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/echo"):
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(htEcho{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header, BodyLen: len(body), BodySHA: htSHA(body)})
	case p == "/chunked":
		id := r.URL.Query().Get("id")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = io.WriteString(w, htPieces[0])
		_ = rc.Flush()
		a.waitGate(id)
		for _, piece := range htPieces[1:] {
			time.Sleep(20 * time.Millisecond)
			_, _ = io.WriteString(w, piece)
			_ = rc.Flush()
		}
		a.finish(id)
	case p == "/sse":
		id := r.URL.Query().Get("id")
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := range 5 {
			if i == 1 {
				a.waitGate(id)
			}
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			_ = rc.Flush()
		}
		a.finish(id)
	case p == "/big":
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(htBigSize))
		_, _ = w.Write(htBig())
	case p == "/status/404":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Custom", "custom value")
		w.Header()["X-Multi"] = []string{"one", "two"}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "nothing here\n")
	case p == "/redirect":
		w.Header().Set("Location", "/echo?from=redirect")
		w.Header()["Set-Cookie"] = []string{"a=1; Path=/", "b=2; Path=/; HttpOnly"}
		w.WriteHeader(http.StatusFound)
		_, _ = io.WriteString(w, "moved\n")
	case p == "/nocontent":
		w.Header().Set("X-Custom", "empty")
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// htQuiet keeps a test server's expected errors (refused TLS handshakes) off
// stderr.
func htQuiet(s *http.Server) { s.ErrorLog = log.New(io.Discard, "", 0) }

// startHTApp starts the upstream application on a plain or TLS httptest server
// (self-signed certificate), counting its connections.
func startHTApp(t *testing.T, useTLS bool, opts ...func(*http.Server)) (*htApp, *httptest.Server) {
	t.Helper()
	app := newHTApp()
	srv := httptest.NewUnstartedServer(app)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			app.newConns.Add(1)
			app.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			app.open.Add(-1)
		}
	}
	for _, o := range opts {
		o(srv.Config)
	}
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return app, srv
}

// htClient is a client that goes through tp, trusts only tp's CA, adds no
// Accept-Encoding of its own, follows no redirect, and counts its dials to the
// proxy.
func htClient(t *testing.T, tp *testProxy, dials *atomic.Int64) *http.Client {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		Proxy:              http.ProxyURL(tp.URL),
		TLSClientConfig:    &tls.Config{RootCAs: tp.Pool},
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials != nil {
				dials.Add(1)
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// htDo sends req with c and returns the response with its body read.
func htDo(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

func htNewRequest(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func htDecodeEcho(t *testing.T, body []byte) htEcho {
	t.Helper()
	var e htEcho
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("upstream /echo answer is not JSON (%v): %q", err, body)
	}
	return e
}

// htRaw sends one hand-written request through tp to the upstream at base
// (http:// as an absolute-form request, https:// inside a CONNECT tunnel) and
// returns the response with its body read. headers are full header lines.
func htRaw(t *testing.T, tp *testProxy, base *url.URL, method, target string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", tp.Addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var rw net.Conn = conn
	requestTarget := "http://" + base.Host + target
	if base.Scheme == "https" {
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", base.Host, base.Host)
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatalf("CONNECT %s: %v", base.Host, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT %s: %s", base.Host, resp.Status)
		}
		tc := tls.Client(conn, &tls.Config{RootCAs: tp.Pool, ServerName: base.Hostname()})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS inside CONNECT: %v", err)
		}
		rw, requestTarget = tc, target
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, requestTarget, base.Host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(rw, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("raw %s %s: %v", method, requestTarget, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("raw %s %s: reading body: %v", method, requestTarget, err)
	}
	return resp, body
}

var htSchemes = []struct {
	name string
	tls  bool
}{{"http", false}, {"https", true}}

func TestHTTPPassthrough(t *testing.T) {
	tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
	for _, sc := range htSchemes {
		t.Run(sc.name, func(t *testing.T) {
			app, srv := startHTApp(t, sc.tls)
			base, _ := url.Parse(srv.URL)
			c := htClient(t, tp, nil)

			t.Run("GET with query", func(t *testing.T) {
				const uri = "/echo/a%2Fb?q=a%20b&x=1&x=2&empty=&plus=a+b"
				resp, body := htDo(t, c, htNewRequest(t, http.MethodGet, srv.URL+uri, nil))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s, want 200 OK; body %q", resp.Status, body)
				}
				e := htDecodeEcho(t, body)
				if e.Method != http.MethodGet || e.RequestURI != uri || e.Host != base.Host {
					t.Errorf("upstream saw %s %s (Host %s), want GET %s (Host %s)", e.Method, e.RequestURI, e.Host, uri, base.Host)
				}
			})

			t.Run("POST with body", func(t *testing.T) {
				payload := htBig()[:300<<10]
				req := htNewRequest(t, http.MethodPost, srv.URL+"/echo/post", strings.NewReader(string(payload)))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, body := htDo(t, c, req)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s, want 200 OK", resp.Status)
				}
				e := htDecodeEcho(t, body)
				if e.Method != http.MethodPost || e.BodyLen != len(payload) || e.BodySHA != htSHA(payload) {
					t.Errorf("upstream got %s with %d body bytes (sha256 %s), want POST with %d (%s)",
						e.Method, e.BodyLen, e.BodySHA, len(payload), htSHA(payload))
				}
				if got := e.Header.Get("Content-Type"); got != "application/octet-stream" {
					t.Errorf("upstream Content-Type %q, want application/octet-stream", got)
				}
			})

			t.Run("chunked response streams", func(t *testing.T) {
				id := t.Name()
				release := app.gate(id)
				resp, err := c.Get(srv.URL + "/chunked?id=" + url.QueryEscape(id))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
					t.Errorf("status %s, Content-Length %d; want 200 with no length: a streamed response of unknown length can only be given one by buffering it whole", resp.Status, resp.ContentLength)
				}
				first := make([]byte, len(htPieces[0]))
				if _, err := io.ReadFull(resp.Body, first); err != nil {
					t.Fatalf("reading the first piece: %v", err)
				}
				if app.finished(id) {
					t.Errorf("the first flushed piece arrived only after the upstream handler had finished: the proxy buffered the chunked response instead of streaming it")
				}
				close(release)
				rest, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("reading the rest: %v", err)
				}
				if got, want := string(first)+string(rest), strings.Join(htPieces, ""); got != want {
					t.Errorf("body %q, want %q", got, want)
				}
			})

			t.Run("20 MiB download", func(t *testing.T) {
				resp, err := c.Get(srv.URL + "/big")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				h := sha256.New()
				n, err := io.Copy(h, resp.Body)
				if err != nil {
					t.Fatalf("after %d bytes: %v", n, err)
				}
				if n != htBigSize || hex.EncodeToString(h.Sum(nil)) != htSHA(htBig()) {
					t.Errorf("downloaded %d bytes with sha256 %x, want %d bytes with %s", n, h.Sum(nil), htBigSize, htSHA(htBig()))
				}
				if resp.ContentLength != htBigSize {
					t.Errorf("Content-Length %d, want %d", resp.ContentLength, htBigSize)
				}
			})

			t.Run("server-sent events stream", func(t *testing.T) {
				id := t.Name()
				release := app.gate(id)
				resp, err := c.Get(srv.URL + "/sse?id=" + url.QueryEscape(id))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("Content-Type %q, want text/event-stream", ct)
				}
				br := bufio.NewReader(resp.Body)
				readEvent := func() string {
					t.Helper()
					data, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("reading an event: %v (got %q)", err, data)
					}
					blank, err := br.ReadString('\n')
					if err != nil || blank != "\n" {
						t.Fatalf("event %q not followed by a blank line: %q, %v", data, blank, err)
					}
					return data
				}
				start := time.Now()
				if ev := readEvent(); ev != "data: 0\n" {
					t.Errorf("first event %q, want %q", ev, "data: 0\n")
				}
				if app.finished(id) {
					t.Errorf("the first event arrived only after the upstream handler had finished (%v): the proxy buffered the event stream", time.Since(start))
				}
				close(release)
				for i := 1; i < 5; i++ {
					if ev, want := readEvent(), fmt.Sprintf("data: %d\n", i); ev != want {
						t.Errorf("event %d is %q, want %q", i, ev, want)
					}
				}
				if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
					t.Errorf("after the last event: %q, %v; want a clean end", rest, err)
				}
			})

			t.Run("keep-alive", func(t *testing.T) {
				var dials atomic.Int64
				kc := htClient(t, tp, &dials)
				upBefore := app.newConns.Load()
				const n = 5
				for i := range n {
					var reused, gotConn bool
					trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { gotConn, reused = true, ci.Reused }}
					req := htNewRequest(t, http.MethodGet, srv.URL+"/echo/keepalive?i="+strconv.Itoa(i), nil)
					req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
					resp, body := htDo(t, kc, req)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("request %d: %s %q", i, resp.Status, body)
					}
					if !gotConn || reused != (i > 0) {
						t.Errorf("request %d: connection reused = %v (traced %v), want %v", i, reused, gotConn, i > 0)
					}
				}
				if d := dials.Load(); d != 1 {
					t.Errorf("client dialled the proxy %d times for %d requests, want 1", d, n)
				}
				if up := app.newConns.Load() - upBefore; up > 1 {
					t.Errorf("proxy opened %d upstream connections for %d sequential requests, want at most 1", up, n)
				}
			})

			t.Run("response status and headers", func(t *testing.T) {
				resp, body := htDo(t, c, htNewRequest(t, http.MethodGet, srv.URL+"/status/404", nil))
				if resp.StatusCode != http.StatusNotFound || string(body) != "nothing here\n" {
					t.Errorf("got %s %q, want 404 %q", resp.Status, body, "nothing here\n")
				}
				if got := resp.Header.Get("X-Custom"); got != "custom value" {
					t.Errorf("X-Custom %q, want %q", got, "custom value")
				}
				if got := resp.Header.Values("X-Multi"); !slices.Equal(got, []string{"one", "two"}) {
					t.Errorf("X-Multi %q, want [one two]", got)
				}

				resp, body = htDo(t, c, htNewRequest(t, http.MethodGet, srv.URL+"/redirect", nil))
				if resp.StatusCode != http.StatusFound || string(body) != "moved\n" {
					t.Errorf("got %s %q, want 302 %q (not followed)", resp.Status, body, "moved\n")
				}
				if got := resp.Header.Get("Location"); got != "/echo?from=redirect" {
					t.Errorf("Location %q, want /echo?from=redirect", got)
				}
				if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1; Path=/", "b=2; Path=/; HttpOnly"}) {
					t.Errorf("Set-Cookie %q, want both cookies unchanged", got)
				}

				resp, body = htDo(t, c, htNewRequest(t, http.MethodGet, srv.URL+"/nocontent", nil))
				if resp.StatusCode != http.StatusNoContent || len(body) != 0 || resp.Header.Get("X-Custom") != "empty" {
					t.Errorf("got %s %q X-Custom %q, want 204 with no body and X-Custom empty", resp.Status, body, resp.Header.Get("X-Custom"))
				}

				resp, body = htDo(t, c, htNewRequest(t, http.MethodHead, srv.URL+"/big", nil))
				if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(htBigSize) {
					t.Errorf("HEAD: got %s, %d body bytes, Content-Length %q; want 200, none, %d",
						resp.Status, len(body), resp.Header.Get("Content-Length"), htBigSize)
				}
			})

			t.Run("request headers unchanged", func(t *testing.T) {
				// A hand-written request with neither User-Agent nor Accept-Encoding:
				// the upstream must see exactly the headers sent, nothing added.
				resp, body := htRaw(t, tp, base, http.MethodGet, "/echo/raw?x=1", "X-Probe: bare", "X-Probe: again")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s %q", resp.Status, body)
				}
				e := htDecodeEcho(t, body)
				if want := (http.Header{"X-Probe": {"bare", "again"}}); !htHeaderEqual(e.Header, want) {
					t.Errorf("upstream got headers %v, want exactly %v (no User-Agent, no Accept-Encoding added)", e.Header, want)
				}
				if e.RequestURI != "/echo/raw?x=1" {
					t.Errorf("upstream RequestURI %q, want /echo/raw?x=1", e.RequestURI)
				}

				resp, body = htRaw(t, tp, base, http.MethodGet, "/echo/raw2", "Accept-Encoding: br", "User-Agent: wstap-test/1.0 (raw)")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s %q", resp.Status, body)
				}
				e = htDecodeEcho(t, body)
				if want := (http.Header{"Accept-Encoding": {"br"}, "User-Agent": {"wstap-test/1.0 (raw)"}}); !htHeaderEqual(e.Header, want) {
					t.Errorf("upstream got headers %v, want exactly %v", e.Header, want)
				}

				// The same through Go's client: an explicit Accept-Encoding arrives as
				// sent, and a client that sends none gets none added by the proxy.
				req := htNewRequest(t, http.MethodGet, srv.URL+"/echo/ae", nil)
				req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
				_, body = htDo(t, c, req)
				if got := htDecodeEcho(t, body).Header.Values("Accept-Encoding"); !slices.Equal(got, []string{"gzip, deflate, br, zstd"}) {
					t.Errorf("upstream Accept-Encoding %q, want [gzip, deflate, br, zstd]", got)
				}
				req = htNewRequest(t, http.MethodGet, srv.URL+"/echo/noae", nil)
				req.Header["User-Agent"] = []string{""} // Go's client then sends none
				_, body = htDo(t, c, req)
				if h := htDecodeEcho(t, body).Header; h.Values("Accept-Encoding") != nil || h.Values("User-Agent") != nil {
					t.Errorf("upstream got Accept-Encoding %q, User-Agent %q; the client sent neither", h.Values("Accept-Encoding"), h.Values("User-Agent"))
				}
			})
		})
	}
}

// htHeaderEqual compares header sets, ignoring the order of names.
func htHeaderEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// htCurl runs curl with args and no proxy settings from the environment.
func htCurl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", args...)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !strings.Contains(strings.ToLower(name), "proxy") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("curl %q: %v\nstdout: %s\nstderr: %s", args, err, out, stderr)
	}
	return string(out)
}

func TestHTTPCurl(t *testing.T) {
	wstest.Command(t, "curl", "curl")
	tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
	_, proxyPort, _ := net.SplitHostPort(tp.Addr)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, tp.CA.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	postFile := filepath.Join(dir, "post.bin")
	post := htBig()[1<<20 : 1<<20+123457]
	if err := os.WriteFile(postFile, post, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sc := range htSchemes {
		t.Run(sc.name, func(t *testing.T) {
			_, srv := startHTApp(t, sc.tls)
			// Only the wstap CA is trusted: an https request that bypassed the proxy
			// would fail verification. -w reports the port curl connected to.
			common := []string{"-sS", "--max-time", "60", "-x", "http://" + tp.Addr, "--cacert", caFile,
				"-w", "%{http_code} %{remote_port}"}
			check := func(t *testing.T, out string) {
				t.Helper()
				if want := "200 " + proxyPort; out != want {
					t.Errorf("curl -w reported %q, want %q (status 200, connected to the proxy's port)", out, want)
				}
			}

			t.Run("GET with query and Accept-Encoding", func(t *testing.T) {
				bodyFile := filepath.Join(t.TempDir(), "body")
				const uri = "/echo/curl?a=1&b=two%20words"
				check(t, htCurl(t, append(common, "-o", bodyFile, "-H", "Accept-Encoding: br", srv.URL+uri)...))
				body, err := os.ReadFile(bodyFile)
				if err != nil {
					t.Fatal(err)
				}
				e := htDecodeEcho(t, body)
				if e.RequestURI != uri {
					t.Errorf("upstream RequestURI %q, want %q", e.RequestURI, uri)
				}
				if got := e.Header.Values("Accept-Encoding"); !slices.Equal(got, []string{"br"}) {
					t.Errorf("upstream Accept-Encoding %q, want [br]", got)
				}
				if ua := e.Header.Get("User-Agent"); !strings.HasPrefix(ua, "curl/") {
					t.Errorf("upstream User-Agent %q, want curl's own", ua)
				}
				if pc := e.Header.Values("Proxy-Connection"); pc != nil {
					t.Errorf("hop-by-hop Proxy-Connection %q was forwarded upstream", pc)
				}
			})

			t.Run("POST", func(t *testing.T) {
				bodyFile := filepath.Join(t.TempDir(), "body")
				check(t, htCurl(t, append(common, "-o", bodyFile, "--data-binary", "@"+postFile,
					"-H", "Content-Type: application/octet-stream", srv.URL+"/echo/post")...))
				body, err := os.ReadFile(bodyFile)
				if err != nil {
					t.Fatal(err)
				}
				if e := htDecodeEcho(t, body); e.Method != http.MethodPost || e.BodyLen != len(post) || e.BodySHA != htSHA(post) {
					t.Errorf("upstream got %s with %d bytes (%s), want POST with %d (%s)", e.Method, e.BodyLen, e.BodySHA, len(post), htSHA(post))
				}
			})

			t.Run("20 MiB download", func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "big")
				check(t, htCurl(t, append(common, "-o", out, srv.URL+"/big")...))
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != htBigSize || htSHA(got) != htSHA(htBig()) {
					t.Errorf("curl saved %d bytes with sha256 %s, want %d bytes with %s", len(got), htSHA(got), htBigSize, htSHA(htBig()))
				}
			})
		})
	}
}

// htWS is a gorilla WebSocket echo server.
type htWS struct {
	*httptest.Server
	upgrades atomic.Int64 // handshakes accepted
	active   atomic.Int64 // connections still open
}

func htWSEcho(t *testing.T, useTLS bool, opts ...func(*http.Server)) *htWS {
	t.Helper()
	ws := &htWS{}
	up := websocket.Upgrader{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		ws.upgrades.Add(1)
		ws.active.Add(1)
		defer ws.active.Add(-1)
		defer c.Close()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, m); err != nil {
				return
			}
		}
	})
	ws.Server = httptest.NewUnstartedServer(h)
	for _, o := range opts {
		o(ws.Config)
	}
	if useTLS {
		ws.StartTLS()
	} else {
		ws.Start()
	}
	t.Cleanup(ws.Close)
	return ws
}

func htWSURL(srv *htWS) string {
	if strings.HasPrefix(srv.URL, "https://") {
		return "wss://" + strings.TrimPrefix(srv.URL, "https://")
	}
	return "ws://" + strings.TrimPrefix(srv.URL, "http://")
}

// htWSEchoOnce dials u through tp, checks one echo and closes.
func htWSEchoOnce(t *testing.T, tp *testProxy, u string) {
	t.Helper()
	c, resp, err := tp.Dialer().Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s through the proxy: %v (response %v)", u, err, resp)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping "+u)); err != nil {
		t.Fatal(err)
	}
	mt, m, err := c.ReadMessage()
	if err != nil || mt != websocket.TextMessage || string(m) != "ping "+u {
		t.Fatalf("echo: %d %q %v, want the text message back", mt, m, err)
	}
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

func TestHTTPUpstreamTLSVerified(t *testing.T) {
	app, srv := startHTApp(t, true, htQuiet)
	wsSrv := htWSEcho(t, true, htQuiet)

	// Without UpstreamInsecure the upstream's self-signed certificate is refused,
	// and the client is told so with a 502 (as from any proxy), over the
	// intercepted TLS connection.
	strict := startProxy(t, proxy.Config{}, plugins.FailOpen)
	c := htClient(t, strict, nil)
	resp, body := htDo(t, c, htNewRequest(t, http.MethodGet, srv.URL+"/echo/secret", nil))
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "certificate") || strings.Contains(string(body), "/echo/secret") {
		t.Errorf("https to a self-signed upstream: got %s %q, want 502 naming the certificate", resp.Status, body)
	}
	if n := app.hits.Load(); n != 0 {
		t.Errorf("the self-signed upstream served %d requests through a verifying proxy, want 0", n)
	}
	ws, wsResp, err := strict.Dialer().Dial(htWSURL(wsSrv), nil)
	if err == nil {
		ws.Close()
		t.Errorf("wss:// to a self-signed upstream through a verifying proxy: handshake succeeded, want it refused")
	} else if wsResp == nil || wsResp.StatusCode != http.StatusBadGateway {
		t.Errorf("wss:// to a self-signed upstream: %v (response %v), want a 502", err, wsResp)
	}
	if n := wsSrv.upgrades.Load(); n != 0 {
		t.Errorf("the self-signed WebSocket upstream accepted %d handshakes through a verifying proxy, want 0", n)
	}

	// The same requests succeed with UpstreamInsecure: the failures above were
	// verification, not something else.
	lax := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
	resp2, body := htDo(t, htClient(t, lax, nil), htNewRequest(t, http.MethodGet, srv.URL+"/echo/secret", nil))
	if resp2.StatusCode != http.StatusOK || htDecodeEcho(t, body).RequestURI != "/echo/secret" {
		t.Errorf("with UpstreamInsecure: %s %q, want 200 from the upstream", resp2.Status, body)
	}
	htWSEchoOnce(t, lax, htWSURL(wsSrv))
	if n := wsSrv.upgrades.Load(); n != 1 {
		t.Errorf("WebSocket upstream accepted %d handshakes, want 1 (through the lax proxy)", n)
	}
}

// htChainProxy is a minimal HTTP proxy for chaining: CONNECT tunnels, absolute-form
// requests forwarded with a Transport, and absolute-form upgrades spliced raw. It
// records what it was asked for.
type htChainProxy struct {
	tr   *http.Transport
	mu   sync.Mutex
	seen []string
}

func (cp *htChainProxy) record(s string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.seen = append(cp.seen, s)
}

func (cp *htChainProxy) saw() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.seen)
}

// htSplice copies both ways between a client (whose already-buffered bytes are
// in clientR) and an upstream connection, and closes both when either side ends.
func htSplice(client net.Conn, clientR io.Reader, up net.Conn) {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, clientR)
		up.Close()
		client.Close()
		close(done)
	}()
	_, _ = io.Copy(client, up)
	up.Close()
	client.Close()
	<-done
}

func (cp *htChainProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	upgrade := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	switch {
	case r.Method == http.MethodConnect:
		cp.record("CONNECT " + r.Host)
		up, err := net.DialTimeout("tcp", r.Host, 10*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
		htSplice(client, brw.Reader, up)
	case !r.URL.IsAbs():
		http.Error(w, "chain proxy: not a proxy request", http.StatusBadRequest)
	case upgrade:
		cp.record("UPGRADE " + r.URL.String())
		up, err := net.DialTimeout("tcp", r.URL.Host, 10*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out := r.Clone(context.Background())
		out.Header.Del("Proxy-Connection")
		if _, ok := out.Header["User-Agent"]; !ok {
			out.Header["User-Agent"] = []string{""}
		}
		if err := out.Write(up); err != nil {
			up.Close()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		htSplice(client, brw.Reader, up)
	default:
		cp.record(r.Method + " " + r.URL.String())
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Connection")
		if _, ok := out.Header["User-Agent"]; !ok {
			out.Header["User-Agent"] = []string{""}
		}
		resp, err := cp.tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}
}

func TestHTTPUpstreamProxy(t *testing.T) {
	cp := &htChainProxy{tr: &http.Transport{DisableCompression: true}}
	t.Cleanup(cp.tr.CloseIdleConnections)
	chain := httptest.NewServer(cp)
	t.Cleanup(chain.Close)
	chainURL, _ := url.Parse(chain.URL)

	tp := startProxy(t, proxy.Config{UpstreamProxy: chainURL, UpstreamInsecure: true}, plugins.FailOpen)
	c := htClient(t, tp, nil)

	_, plain := startHTApp(t, false)
	_, secure := startHTApp(t, true)
	wsPlain := htWSEcho(t, false)
	wsSecure := htWSEcho(t, true)

	for _, srv := range []*httptest.Server{plain, secure} {
		resp, body := htDo(t, c, htNewRequest(t, http.MethodGet, srv.URL+"/echo/chained?x=1", nil))
		if resp.StatusCode != http.StatusOK || htDecodeEcho(t, body).RequestURI != "/echo/chained?x=1" {
			t.Errorf("GET %s/echo/chained through the chain: %s %q", srv.URL, resp.Status, body)
		}
	}
	htWSEchoOnce(t, tp, htWSURL(wsPlain))
	htWSEchoOnce(t, tp, htWSURL(wsSecure))

	hostOf := func(u string) string { p, _ := url.Parse(u); return p.Host }
	saw := cp.saw()
	for _, want := range []string{
		"GET " + plain.URL + "/echo/chained?x=1",
		"CONNECT " + hostOf(secure.URL),
		"UPGRADE " + wsPlain.URL + "/",
		"CONNECT " + hostOf(wsSecure.URL),
	} {
		if !slices.Contains(saw, want) {
			t.Errorf("the upstream proxy never saw %q; it saw %q", want, saw)
		}
	}
}

func TestHTTPNonProxyRequest(t *testing.T) {
	tp := startProxy(t, proxy.Config{}, plugins.FailOpen)
	direct := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	t.Cleanup(direct.CloseIdleConnections)
	for _, path := range []string{"/", "/favicon.ico"} {
		resp, body := htDo(t, direct, htNewRequest(t, http.MethodGet, "http://"+tp.Addr+path, nil))
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(string(body), "proxy") {
			t.Errorf("GET %s straight to the proxy: %s %q, want a 4xx saying it is a proxy", path, resp.Status, body)
		}
	}

	// Garbage on a connection gets an error, not a hang.
	conn, err := net.DialTimeout("tcp", tp.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "NONSENSE\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Errorf("garbage request: %v, want a 400 answer", err)
	} else if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage request: %s, want 400", resp.Status)
	}
	conn.Close()

	// The proxy keeps serving.
	_, srv := startHTApp(t, false)
	resp, body := htDo(t, htClient(t, tp, nil), htNewRequest(t, http.MethodGet, srv.URL+"/echo/after", nil))
	if resp.StatusCode != http.StatusOK || htDecodeEcho(t, body).RequestURI != "/echo/after" {
		t.Errorf("proxied request after the bad ones: %s %q", resp.Status, body)
	}
}

// htWatchedConn reports when a read on it first fails (the peer closed it).
type htWatchedConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *htWatchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { close(c.closed) })
	}
	return n, err
}

func TestHTTPShutdownClosesEverything(t *testing.T) {
	ignore := goleak.IgnoreCurrent()

	secureApp, secure := startHTApp(t, true)
	plainApp, plain := startHTApp(t, false)
	wsSrv := htWSEcho(t, false)
	tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)

	// A client whose connections to the proxy report being closed by it.
	var mu sync.Mutex
	var conns []*htWatchedConn
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		Proxy:           http.ProxyURL(tp.URL),
		TLSClientConfig: &tls.Config{RootCAs: tp.Pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			wc := &htWatchedConn{Conn: c, closed: make(chan struct{})}
			mu.Lock()
			conns = append(conns, wc)
			mu.Unlock()
			return wc, nil
		},
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for _, srv := range []*httptest.Server{secure, plain} {
		_, body := htDo(t, client, htNewRequest(t, http.MethodGet, srv.URL+"/echo/idle", nil))
		if htDecodeEcho(t, body).RequestURI != "/echo/idle" {
			t.Fatalf("unexpected answer %q", body)
		}
	}
	mu.Lock()
	idle := slices.Clone(conns)
	mu.Unlock()
	if len(idle) != 2 {
		t.Fatalf("client opened %d connections to the proxy, want 2 (an HTTPS tunnel and a plain one)", len(idle))
	}

	ws, _, err := tp.Dialer().Dial(htWSURL(wsSrv), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, m, err := ws.ReadMessage(); err != nil || string(m) != "hello" {
		t.Fatalf("echo: %q %v", m, err)
	}

	start := time.Now()
	tp.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopping the proxy took %v", d)
	}

	// The WebSocket client hears 1001 Going Away, or at least the connection ends.
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		if ce.Code != websocket.CloseGoingAway && ce.Code != websocket.CloseAbnormalClosure {
			t.Errorf("WebSocket closed with %d %q, want 1001 Going Away (or EOF)", ce.Code, ce.Text)
		}
		t.Logf("WebSocket client got close %d %q", ce.Code, ce.Text)
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("WebSocket still open 5s after the proxy stopped")
	case err == nil:
		t.Errorf("WebSocket got a message after the proxy stopped")
	default:
		t.Logf("WebSocket client: %v", err)
	}
	ws.Close()

	// The idle keep-alive connections (the HTTPS tunnel and the plain one) are
	// closed by the proxy.
	for i, c := range idle {
		select {
		case <-c.closed:
		case <-time.After(5 * time.Second):
			t.Errorf("idle client connection %d to the proxy still open 5s after it stopped", i)
		}
	}

	// The proxy's own connections upstream (idle keep-alive ones and the
	// WebSocket's) are closed too.
	wstest.Poll(5*time.Second, func() bool { return secureApp.open.Load()+plainApp.open.Load()+wsSrv.active.Load() == 0 })
	if n, m, w := secureApp.open.Load(), plainApp.open.Load(), wsSrv.active.Load(); n+m+w != 0 {
		t.Errorf("5s after the proxy stopped, upstream connections still open: https %d, http %d, WebSocket %d", n, m, w)
	}

	tr.CloseIdleConnections()
	secure.Close()
	plain.Close()
	wsSrv.Close()
	goleak.VerifyNone(t, ignore)
}

// TestHTTPUpstreamUnreachable: a server that refuses connections gets the client a
// 502 naming the error, for plain HTTP, intercepted HTTPS, ws:// and wss://, and
// the proxy goes on serving.
func TestHTTPUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there any more: connections are refused

	tp := startProxy(t, proxy.Config{}, plugins.FailOpen)
	c := htClient(t, tp, nil)
	for _, u := range []string{"http://" + dead + "/x", "https://" + dead + "/x"} {
		resp, body := htDo(t, c, htNewRequest(t, http.MethodGet, u, nil))
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "refused") {
			t.Errorf("GET %s: %s %q, want 502 saying the connection was refused", u, resp.Status, body)
		}
	}
	for _, u := range []string{"ws://" + dead + "/ws", "wss://" + dead + "/ws"} {
		ws, resp, err := tp.Dialer().Dial(u, nil)
		if err == nil {
			ws.Close()
			t.Errorf("%s: handshake succeeded", u)
		} else if resp == nil || resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: %v (response %v), want a 502", u, err, resp)
		}
	}
	// Still serving.
	_, srv := startHTApp(t, false, htQuiet)
	if resp, _ := htDo(t, c, htNewRequest(t, http.MethodGet, srv.URL+"/echo/after", nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("after the failures: %s, want 200", resp.Status)
	}
}
