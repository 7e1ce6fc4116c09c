package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
)

// hdCountingListener counts the connections it accepts.
type hdCountingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *hdCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestHardeningUpstreamLoop: with its upstream proxy pointing at itself, wstap
// answers 508 (or a 502 that says so, for what it tunnels) at once instead of
// connecting to itself until the file descriptors run out. Two wstaps chained
// still work: the mark is per run.
func TestHardeningUpstreamLoop(t *testing.T) {
	t.Run("self", func(t *testing.T) {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := &hdCountingListener{Listener: raw}
		ca, err := certs.Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		self := &url.URL{Scheme: "http", Host: ln.Addr().String()}
		p, err := proxy.New(proxy.Config{CA: ca, UpstreamProxy: self})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Serve(ctx, ln) }()
		defer func() {
			cancel()
			<-done
		}()
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(self), TLSClientConfig: &tls.Config{RootCAs: pool}},
			Timeout: hdGuard}
		defer client.CloseIdleConnections()
		// Nothing listens at the target: only the loop answers.
		for _, tc := range []struct {
			url  string
			want []int
		}{
			{"http://127.0.0.1:9/loop", []int{http.StatusLoopDetected}},
			{"https://127.0.0.1:9/loop", []int{http.StatusLoopDetected, http.StatusBadGateway}},
			{"ws://127.0.0.1:9/loop", []int{http.StatusLoopDetected}},
			{"wss://127.0.0.1:9/loop", []int{http.StatusLoopDetected, http.StatusBadGateway}},
		} {
			var status int
			var body string
			if strings.HasPrefix(tc.url, "ws") {
				d := &websocket.Dialer{Proxy: http.ProxyURL(self), TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: hdGuard}
				ws, resp, err := d.Dial(tc.url, nil)
				if err == nil {
					ws.Close()
				}
				if resp == nil {
					t.Errorf("%s: %v, want an answer", tc.url, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				status, body = resp.StatusCode, string(b)
			} else {
				resp, err := client.Get(tc.url)
				if err != nil {
					t.Errorf("%s: %v, want an answer", tc.url, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status, body = resp.StatusCode, string(b)
			}
			if !slices.Contains(tc.want, status) || !strings.Contains(strings.ToLower(body), "loop") {
				t.Errorf("%s: %d %q, want %v saying there is a loop", tc.url, status, body, tc.want)
			}
		}
		// Each request reached the proxy at most twice (the client's, and the
		// proxy's own through itself), plus the tunnels'.
		if n := ln.n.Load(); n > 12 {
			t.Errorf("the proxy accepted %d connections for 4 requests", n)
		}
	})

	t.Run("two wstaps chained", func(t *testing.T) {
		second := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
		first := startProxy(t, proxy.Config{UpstreamProxy: second.URL, UpstreamInsecure: true}, plugins.FailOpen)
		plain := hdStartServer(t, nil, hdOK)
		secure := hdStartServer(t, first.CA, hdOK)
		client := first.HTTPClient()
		defer client.CloseIdleConnections()
		for _, u := range []string{"http://" + plain.Addr + "/chained", "https://" + secure.Addr + "/chained"} {
			resp, err := client.Get(u)
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(b) != "ok" {
				t.Errorf("%s through two wstaps: %s %q", u, resp.Status, b)
			}
		}
	})
}
