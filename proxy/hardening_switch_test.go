package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/wsframe"
)

// hdLenient is a server that switches protocols whatever the request says: it
// answers every request with head (a "%s" in it becomes the accept key of the
// request's Sec-WebSocket-Key) and then echoes every byte.
func hdLenient(head string) func(c net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		answer := head
		if strings.Contains(head, "%s") {
			answer = fmt.Sprintf(head, wstest.AcceptKey(req.Header.Get("Sec-WebSocket-Key")))
		}
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		io.Copy(c, br)
	}
}

// TestHardeningWebSocketSwitch: a 101 that says websocket goes through the relay
// whatever the request's headers said (else a client and a lenient server pass
// frames uninspected), and a 101 the client could not have asked for, or that does
// not say what it switches to, is answered 502.
func TestHardeningWebSocketSwitch(t *testing.T) {
	const (
		accepts    = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
		bare       = "HTTP/1.1 101 Switching Protocols\r\n\r\n"
		noConn     = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: %s\r\n\r\n"
		upgradeFoo = "Upgrade: foo\r\nConnection: Upgrade\r\n"
	)
	key := wstest.NewKey()
	wsHeader := fmt.Sprintf("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key)
	noConnHeader := fmt.Sprintf("Upgrade: websocket\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key)
	cases := []struct {
		name   string
		header string // the client's upgrade header lines
		answer string // the server's
		relay  bool   // the relay takes the connection; otherwise a 502
	}{
		{"no Connection: upgrade in the request", noConnHeader, accepts, true},
		{"the request asks for another protocol", upgradeFoo, accepts, false},
		{"101 without Upgrade and Connection", wsHeader, bare, false},
		{"101 without Connection", wsHeader, noConn, false},
	}
	for _, way := range hdWays {
		for _, tc := range cases {
			t.Run(way+"/"+tc.name, func(t *testing.T) {
				tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
				plain := hdStartServer(t, nil, hdLenient(tc.answer))
				secure := hdStartServer(t, tp.CA, hdLenient(tc.answer))
				c, target := hdOpen(t, tp, way, plain.Addr, secure.Addr)
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, hdHost(way, plain.Addr, secure.Addr), tc.header); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				if !tc.relay {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
					if resp.StatusCode != http.StatusBadGateway {
						t.Fatalf("answer %s %q, want 502", resp.Status, body)
					}
					t.Logf("answer %s %q", resp.Status, body)
					return
				}
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("answer %s, want 101", resp.Status)
				}
				// The relay checks frames: an unmasked client frame is a protocol
				// error (a blind relay would have the server echo it back).
				cl := newWsrConn(c, br, wsframe.Client, false)
				cl.Start()
				frame := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpText, Length: 2})
				if err := cl.SendRaw(append(frame, "hi"...)); err != nil {
					t.Fatal(err)
				}
				// The close frame is the relay's business (and the close event below
				// is the proof the relay was there): here, only nothing else may come.
				for {
					m, ok := cl.Next(t)
					if !ok {
						break
					}
					if m.Op != wsframe.OpClose {
						t.Fatalf("client received %v: the frame went through unchecked", m)
					}
					if code, reason, _ := wsframe.ParseClose(m.Payload); code != wsframe.CloseProtocolError {
						t.Errorf("client got close %d %q, want %d", code, reason, wsframe.CloseProtocolError)
					}
				}
				if open := wsrOpenEvent(t, tp, "c1"); !strings.HasSuffix(open["url"].(string), "/hd") {
					t.Errorf("open event for %v", open["url"])
				}
				wsrWaitClose(t, tp, "c1", wsframe.CloseProtocolError, wsrAnyReason, "proxy")
			})
		}
	}
}

// hdSwitchEcho is a server that, like a real one, switches to "x-echo" only when
// asked with Upgrade and Connection: upgrade; then it echoes every byte until its
// peer ends, or closes the connection itself on reading "quit". It reports on
// ended how the connection ended: "eof" when the peer closed it.
func hdSwitchEcho(ended chan<- string) func(c net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			ended <- "bad request: " + err.Error()
			return
		}
		if !strings.EqualFold(req.Header.Get("Upgrade"), "x-echo") || !strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade") {
			io.WriteString(c, "HTTP/1.1 426 Upgrade Required\r\nUpgrade: x-echo\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			ended <- fmt.Sprintf("refused: Upgrade %q, Connection %q", req.Header.Values("Upgrade"), req.Header.Values("Connection"))
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-echo\r\nConnection: Upgrade\r\n\r\n")
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			if strings.Contains(string(buf[:n]), "quit") {
				ended <- "quit"
				return
			}
			if n > 0 {
				c.Write(buf[:n])
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					ended <- "eof"
				} else {
					ended <- err.Error()
				}
				return
			}
		}
	}
}

// TestHardeningProtocolSwitch: a switch to another protocol than WebSocket that the
// client asked for is relayed byte for byte (bytes sent right behind the request
// included), and when either side ends the proxy closes the other, leaving no
// goroutine behind.
func TestHardeningProtocolSwitch(t *testing.T) {
	for _, way := range hdWays {
		for _, serverCloses := range []bool{false, true} {
			name := way + "/client closes"
			if serverCloses {
				name = way + "/server closes"
			}
			t.Run(name, func(t *testing.T) {
				ignore := goleak.IgnoreCurrent()
				tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
				ended := make(chan string, 4)
				plain := hdStartServer(t, nil, hdSwitchEcho(ended))
				secure := hdStartServer(t, tp.CA, hdSwitchEcho(ended))
				beforeSwitch := goleak.IgnoreCurrent()

				c, target := hdOpen(t, tp, way, plain.Addr, secure.Addr)
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: x-echo\r\nConnection: Upgrade\r\n\r\nearly",
					target, hdHost(way, plain.Addr, secure.Addr)); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "x-echo" {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
					select {
					case why := <-ended:
						t.Logf("server: %s", why)
					default:
					}
					t.Fatalf("answer %s (Upgrade %q) %q, want 101 to x-echo", resp.Status, resp.Header.Get("Upgrade"), body)
				}
				want := "early"
				for _, msg := range []string{"", " and more"} {
					if msg != "" {
						if _, err := io.WriteString(c, msg); err != nil {
							t.Fatal(err)
						}
						want = msg
					}
					got := make([]byte, len(want))
					if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
						t.Fatalf("echo %q, %v; want %q", got, err, want)
					}
				}
				if serverCloses {
					io.WriteString(c, "quit")
					hdExpectClosed(t, c, "client after the server closed")
				} else {
					c.Close()
					select {
					case why := <-ended:
						if why != "eof" {
							t.Errorf("server connection ended with %q, want EOF", why)
						}
					case <-time.After(hdGuard):
						t.Fatalf("the proxy did not close the server connection within %v after the client left", hdGuard)
					}
				}
				// (The proxy's accept loop may have started after beforeSwitch.)
				if err := goleak.Find(beforeSwitch, goleak.IgnoreAnyFunction("github.com/wstap/wstap/proxy.(*Proxy).Serve.func1")); err != nil {
					t.Errorf("goroutines of the ended connection still run: %v", err)
				}
				c.Close()
				plain.Close()
				secure.Close()
				tp.stop()
				goleak.VerifyNone(t, ignore)
			})
		}
	}
}

// TestHardeningNoH2C: an offer to upgrade to HTTP/2 (h2c) does not reach the
// server, which answers in HTTP/1.1: relayed blind, HTTP/2 could carry WebSockets
// (RFC 8441) past the relay. Other protocols offered with it stay.
func TestHardeningNoH2C(t *testing.T) {
	tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
	// The server answers with the upgrade headers it got.
	seen := func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		body := fmt.Sprintf("Upgrade %q HTTP2-Settings %q", req.Header.Values("Upgrade"), req.Header.Values("HTTP2-Settings"))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	plain := hdStartServer(t, nil, seen)
	secure := hdStartServer(t, tp.CA, seen)
	for _, way := range hdWays {
		for _, tc := range []struct{ offer, want string }{
			{"h2c", `Upgrade [] HTTP2-Settings []`},
			{"x-other, h2c", `Upgrade ["x-other"] HTTP2-Settings []`},
		} {
			t.Run(way+"/"+tc.offer, func(t *testing.T) {
				c, target := hdOpen(t, tp, way, plain.Addr, secure.Addr)
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: %s\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
					target, hdHost(way, plain.Addr, secure.Addr), tc.offer); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK || string(body) != tc.want {
					t.Errorf("answer %s %q, want 200 %q", resp.Status, body, tc.want)
				}
			})
		}
	}
}
