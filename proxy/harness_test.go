package proxy_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
)

// testProxy is a running wstap proxy for one test: listening on 127.0.0.1:0 with
// a fresh CA, logging JSONL events into memory and operational logs into Logs.
type testProxy struct {
	Addr   string
	URL    *url.URL // http://Addr, for http.ProxyURL
	CA     *certs.CA
	Pool   *x509.CertPool // trusts CA
	events *wstest.SyncBuffer
	jsonl  *eventlog.JSONL
	Logs   *wstest.SyncBuffer
	stop   func()
}

// noEventLog, as the sink of startProxyWithEventSink, turns the event log off.
var noEventLog io.Writer = new(wstest.SyncBuffer)

// startProxy runs a proxy with cfg (CA, Observer and Logger are filled in) until the
// test ends. chain elements are Hooks or Codecs.
func startProxy(t testing.TB, cfg proxy.Config, chainPolicy plugins.ErrorPolicy, chain ...plugins.Element) *testProxy {
	t.Helper()
	return startProxyWithEventSink(t, cfg, nil, chainPolicy, chain...)
}

// startProxyWithEventSink is startProxy with the JSONL event log written to sink
// instead of memory (Events then sees nothing), for tests whose traffic would make
// the in-memory log the largest thing on the heap. A nil sink means memory;
// noEventLog runs the proxy without the event log (only cfg.Observer sees events),
// for tests where formatting gigabytes of payload would dominate the run time.
func startProxyWithEventSink(t testing.TB, cfg proxy.Config, sink io.Writer, chainPolicy plugins.ErrorPolicy, chain ...plugins.Element) *testProxy {
	t.Helper()
	ca, err := certs.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tp := &testProxy{CA: ca, Pool: x509.NewCertPool(), events: &wstest.SyncBuffer{}, Logs: &wstest.SyncBuffer{}}
	tp.Pool.AddCert(ca.Cert)
	if sink == nil {
		sink = tp.events
	}
	tp.jsonl = eventlog.NewJSONL(sink, eventlog.Live)
	logger := slog.New(slog.NewTextHandler(tp.Logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.CA, cfg.Logger = ca, logger
	switch {
	case sink == noEventLog:
		// Only cfg.Observer, if any, sees the events.
	case cfg.Observer == nil:
		cfg.Observer = tp.jsonl
	default:
		cfg.Observer = plugins.Observers{tp.jsonl, cfg.Observer}
	}
	if cfg.Chain == nil && len(chain) > 0 {
		c, err := plugins.NewChain(chainPolicy, logger, chain...)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Chain = c
	}
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var stop func()
	tp.Addr, stop = wstest.Serve(t, "proxy", p.Serve)
	tp.URL = &url.URL{Scheme: "http", Host: tp.Addr}
	tp.stop = func() {
		stop()
		tp.jsonl.Close() // closing twice is safe
	}
	t.Cleanup(tp.stop)
	return tp
}

// Dialer returns a gorilla dialer that goes through the proxy and trusts its CA.
func (tp *testProxy) Dialer() *websocket.Dialer {
	return &websocket.Dialer{
		Proxy:            http.ProxyURL(tp.URL),
		TLSClientConfig:  &tls.Config{RootCAs: tp.Pool},
		HandshakeTimeout: 10 * time.Second,
	}
}

// HTTPClient returns an HTTP client that goes through the proxy and trusts its CA.
func (tp *testProxy) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(tp.URL), TLSClientConfig: &tls.Config{RootCAs: tp.Pool}}, Timeout: 60 * time.Second}
}

// Events flushes the event log and returns its lines decoded, optionally only those
// whose "event" field equals kind.
func (tp *testProxy) Events(t testing.TB, kind string) []map[string]any {
	t.Helper()
	if err := tp.jsonl.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(tp.events.String()))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event log line is not JSON: %v\n%s", err, sc.Text())
		}
		if kind == "" || ev["event"] == kind {
			out = append(out, ev)
		}
	}
	return out
}

// WaitEvents polls the event log until pred holds for the events of kind, or fails
// the test after timeout.
func (tp *testProxy) WaitEvents(t testing.TB, kind string, timeout time.Duration, pred func([]map[string]any) bool) []map[string]any {
	t.Helper()
	var evs []map[string]any
	if !wstest.Poll(timeout, func() bool { evs = tp.Events(t, kind); return pred(evs) }) {
		t.Fatalf("timed out waiting for %q events; have %d:\n%s", kind, len(evs), tp.events.String())
	}
	return evs
}
