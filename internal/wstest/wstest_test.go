package wstest

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestHandshakes: each hand-written side of the handshake completes one against a
// real library (gorilla), and against the other.
func TestHandshakes(t *testing.T) {
	t.Run("client against gorilla", func(t *testing.T) {
		up := websocket.Upgrader{Subprotocols: []string{"chat"}}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, err := up.Upgrade(w, r, nil); err == nil {
				c.WriteMessage(websocket.TextMessage, []byte("hi"))
				c.Close()
			}
		}))
		defer srv.Close()
		addr := strings.TrimPrefix(srv.URL, "http://")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		key := NewKey()
		br, resp, err := ClientHandshake(c, "/x", addr, key, append(UpgradeHeader(key), [2]string{"Sec-WebSocket-Protocol", "chat"}), nil)
		if err != nil || resp.Header.Get("Sec-WebSocket-Protocol") != "chat" {
			t.Fatalf("%v, %v", resp, err)
		}
		frame := make([]byte, 4)
		if _, err := br.Read(frame); err != nil || string(frame) != "\x81\x02hi" {
			t.Fatalf("first frame %q, %v", frame, err)
		}
	})
	t.Run("gorilla against the server side", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			_, req, err := ServerHandshake(c, func(*http.Request) Header { return Header{{"Sec-WebSocket-Protocol", "chat"}} })
			if err == nil && req.URL.Path != "/y" {
				err = http.ErrNotSupported
			}
			done <- err
			c.Write([]byte("\x81\x02ok"))
		}()
		d := websocket.Dialer{Subprotocols: []string{"chat"}}
		c, _, err := d.Dial("ws://"+ln.Addr().String()+"/y", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, m, err := c.ReadMessage(); err != nil || string(m) != "ok" || c.Subprotocol() != "chat" {
			t.Fatalf("%q, %v", m, err)
		}
	})
	t.Run("a wrong accept key is an error", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			http.ReadRequest(bufio.NewReader(b))
			b.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"))
			b.Close()
		}()
		key := NewKey()
		if _, _, err := ClientHandshake(a, "/", "h", key, UpgradeHeader(key), nil); err == nil || !strings.Contains(err.Error(), "Sec-WebSocket-Accept") {
			t.Fatalf("err %v", err)
		}
	})
}
