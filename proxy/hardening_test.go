package proxy_test

// Tests of the hardening issue: limits and timeouts on every request wstap reads,
// tunnelled or not; no 101 relayed blind; switched protocols that end both
// connections; and an upstream proxy that leads back to wstap. Helpers, shared by
// the hardening_*_test.go files, start with "hd".

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
)

// Ways a raw client reaches a server through the proxy.
const (
	hdListener    = "absolute-form"
	hdPlainTunnel = "plain tunnel"
	hdTLSTunnel   = "TLS tunnel"
)

var hdWays = []string{hdListener, hdPlainTunnel, hdTLSTunnel}

// hdGuard bounds every wait for something the proxy should do within a short
// configured timeout: reaching it means the proxy never did it.
const hdGuard = 10 * time.Second

// hdServer is a raw TCP server, plain or TLS, that runs handle on every
// connection and closes it afterwards.
type hdServer struct {
	Addr string
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	all  []net.Conn
}

// hdStartServer starts a server; with ca, it speaks TLS with a certificate from it.
func hdStartServer(t testing.TB, ca *certs.CA, handle func(c net.Conn)) *hdServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ca != nil {
		ln = tls.NewListener(ln, ca.TLSConfig(ln.Addr().String()))
	}
	s := &hdServer{Addr: ln.Addr().String(), ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.all = append(s.all, c)
			s.mu.Unlock()
			c.SetDeadline(time.Now().Add(wsrConnTimeout))
			s.wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(s.Close)
	return s
}

// Close stops the server, closes its connections and waits for their handlers.
func (s *hdServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.all {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// hdOK answers every request on a connection with 200 "ok", keeping it alive.
func hdOK(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

// hdOpen opens a connection through the proxy on which a raw client writes a
// request for server (plainAddr, or tlsAddr inside a TLS tunnel); it returns the
// connection and the request target to write.
func hdOpen(t testing.TB, tp *testProxy, way, plainAddr, tlsAddr string) (net.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
	defer cancel()
	var c net.Conn
	var err error
	target := "/hd"
	switch way {
	case hdListener:
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", tp.Addr)
		target = "http://" + plainAddr + "/hd"
	case hdPlainTunnel:
		c, err = wstest.ConnectTunnel(ctx, tp.Addr, plainAddr)
	case hdTLSTunnel:
		if c, err = wstest.ConnectTunnel(ctx, tp.Addr, tlsAddr); err == nil {
			tc := tls.Client(c, &tls.Config{RootCAs: tp.Pool, ServerName: "127.0.0.1"})
			err = tc.HandshakeContext(ctx)
			c = tc
		}
	default:
		t.Fatalf("unknown way %q", way)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wsrConnTimeout))
	return c, target
}

// hdHost is the Host header for a request opened by hdOpen.
func hdHost(way, plainAddr, tlsAddr string) string {
	if way == hdTLSTunnel {
		return tlsAddr
	}
	return plainAddr
}

// hdExpectClosed waits until the proxy closes c: a read returns EOF or an error
// other than the guard's deadline. It fails the test when c is still open after
// hdGuard.
func hdExpectClosed(t testing.TB, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(hdGuard))
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: connection still open after %v (read %q last)", what, hdGuard, buf[:n])
		}
		return
	}
}

// TestHardeningHeaderLimit: a request header past Config.MaxHeaderBytes is answered
// 431 wherever the request is read: on the listener, and inside plain and TLS
// tunnels (where goproxy's own loop read headers of any size).
func TestHardeningHeaderLimit(t *testing.T) {
	tp := startProxy(t, proxy.Config{MaxHeaderBytes: 1 << 10, UpstreamInsecure: true}, plugins.FailOpen)
	plain := hdStartServer(t, nil, hdOK)
	secure := hdStartServer(t, tp.CA, hdOK)
	cases := []struct {
		name string
		size int
		want int
	}{
		{"within the limit", 512, http.StatusOK},
		// 1 KiB, plus the 4 KiB net/http reads past any limit, is far below 64 KiB;
		// the server would take it (its limit is 1 MiB).
		{"past the limit", 64 << 10, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, way := range hdWays {
		for _, tc := range cases {
			t.Run(way+"/"+tc.name, func(t *testing.T) {
				c, target := hdOpen(t, tp, way, plain.Addr, secure.Addr)
				req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n",
					target, hdHost(way, plain.Addr, secure.Addr), strings.Repeat("b", tc.size))
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("answer %s, want %d", resp.Status, tc.want)
				}
			})
		}
	}
}

// TestHardeningSlowClients: clients too slow for Config.ReadHeaderTimeout or idle
// past Config.IdleTimeout are disconnected, tunnelled or not.
func TestHardeningSlowClients(t *testing.T) {
	tp := startProxy(t, proxy.Config{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
		UpstreamInsecure: true}, plugins.FailOpen)
	plain := hdStartServer(t, nil, hdOK)
	secure := hdStartServer(t, tp.CA, hdOK)

	t.Run("silent after CONNECT", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
		defer cancel()
		c, err := wstest.ConnectTunnel(ctx, tp.Addr, plain.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hdExpectClosed(t, c, "tunnel that never speaks")
	})
	t.Run("stalled TLS handshake", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), hdGuard)
		defer cancel()
		c, err := wstest.ConnectTunnel(ctx, tp.Addr, secure.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The first bytes of a ClientHello record, and nothing more.
		if _, err := c.Write([]byte{0x16, 0x03, 0x01}); err != nil {
			t.Fatal(err)
		}
		hdExpectClosed(t, c, "tunnel whose TLS handshake stalls")
	})
	for _, way := range hdWays {
		t.Run(way+"/slowloris", func(t *testing.T) {
			c, target := hdOpen(t, tp, way, plain.Addr, secure.Addr)
			if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, hdHost(way, plain.Addr, secure.Addr)); err != nil {
				t.Fatal(err)
			}
			// A header line every 50 ms, never the end of the header, until the
			// proxy hangs up.
			closed := make(chan struct{})
			go func() {
				defer close(closed)
				hdExpectClosed(t, c, "slowloris client")
			}()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-closed:
					return
				case <-tick.C:
					if _, err := fmt.Fprintf(c, "X-Slow-%d: x\r\n", i); err != nil {
						<-closed
						return
					}
				}
			}
		})
		t.Run(way+"/idle keep-alive", func(t *testing.T) {
			c, target := hdOpen(t, tp, way, plain.Addr, secure.Addr)
			br := bufio.NewReader(c)
			if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, hdHost(way, plain.Addr, secure.Addr)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" || resp.Close {
				t.Fatalf("answer %s %q (close %v), want a kept-alive 200 ok", resp.Status, body, resp.Close)
			}
			hdExpectClosed(t, c, "idle keep-alive connection")
		})
	}
}
