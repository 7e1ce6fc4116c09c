package proxy_test

import (
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/proxy"
)

func TestSmokeEcho(t *testing.T) {
	ca, err := certs.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	term := eventlog.NewTerminal(os.Stderr, eventlog.Live)
	defer term.Close()
	p, err := proxy.New(proxy.Config{CA: ca, Observer: term, UpstreamInsecure: true, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	up := websocket.Upgrader{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, m)
		}
	})
	for _, tls := range []bool{false, true} {
		var srv *httptest.Server
		if tls {
			srv = httptest.NewTLSServer(h)
		} else {
			srv = httptest.NewServer(h)
		}
		u, _ := url.Parse(srv.URL)
		if tls {
			u.Scheme = "wss"
		} else {
			u.Scheme = "ws"
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		d := websocket.Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: ln.Addr().String()}), HandshakeTimeout: 5 * time.Second}
		d.TLSClientConfig = &cryptotls.Config{RootCAs: pool}
		c, _, err := d.Dial(u.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{"hello", "world"} {
			c.WriteMessage(websocket.TextMessage, []byte(msg))
			_, got, err := c.ReadMessage()
			if err != nil || string(got) != msg {
				t.Fatalf("got %q, %v", got, err)
			}
		}
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
		_, _, err = c.ReadMessage()
		t.Logf("after close: %v", err)
		c.Close()
		srv.Close()
	}
}
