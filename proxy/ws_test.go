package proxy_test

// End-to-end tests of the WebSocket relay: real sockets on loopback, the real proxy
// (startProxy), raw endpoints built on wsframe (ws_helpers_test.go) where the bytes on
// the wire matter, gorilla and coder peers where an independent implementation must
// accept what the proxy sends.

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/wsframe"
)

// wsrSizes are the payload sizes at the edges of the three length encodings of RFC
// 6455 §5.2, plus a large message.
var wsrSizes = []int{0, 125, 126, 65535, 65536, 8 << 20}

// wsrRawSizes are the sizes the raw-client exchanges use: the same edges, and a
// smaller large message (the 8 MiB ones cost seconds under -race).
var wsrRawSizes = []int{0, 125, 126, 65535, 65536, 1 << 20}

// wsrCountingHook passes every message and counts them.
func wsrCountingHook(n *atomic.Int64) plugins.Hook {
	return plugins.HookFunc{HookName: "wsr-pass", Func: func(context.Context, *plugins.Message) (plugins.Verdict, error) {
		n.Add(1)
		return plugins.Verdict{}, nil
	}}
}

// TestRelayByteIdentical checks that an unmodified connection is relayed byte for
// byte in both directions (same frames, same masks), that the close handshake goes
// through with code and reason either way, and that the JSONL log has one event per
// message and control frame, plus one open and one close event.
func TestRelayByteIdentical(t *testing.T) {
	cases := []struct {
		name         string
		writeBuf     int // gorilla client's write buffer: small ones fragment messages
		serverCloses bool
		sizes        []int
	}{
		{"gorilla client closes, one frame per message", 9 << 20, false, wsrSizes},
		{"server closes, gorilla client fragments", 4096, true, wsrRawSizes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hooked atomic.Int64
			tp := startProxy(t, proxy.Config{}, plugins.FailOpen, wsrCountingHook(&hooked))
			srv := wsrStartServer(t, true, nil)
			d, last := wsrRecordingDialer(tp)
			d.WriteBufferSize = tc.writeBuf
			u := "ws://" + srv.Addr + "/relay?x=1"
			c, _, err := d.Dial(u, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.NetConn().SetDeadline(time.Now().Add(wsrConnTimeout))
			rc := last()
			sc := srv.Accept(t)
			sc.Start()
			pings, pongs := make(chan string, 8), make(chan string, 8)
			c.SetPingHandler(func(s string) error {
				pings <- s
				return c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(wsrWait))
			})
			c.SetPongHandler(func(s string) error { pongs <- s; return nil })

			var c2s, s2c []wsrExpectEv
			dataMsgs := 0

			// Client → server: every size as text and binary, a message written in
			// pieces, a ping and an unsolicited pong.
			for _, size := range tc.sizes {
				for _, op := range []wsframe.Opcode{wsframe.OpText, wsframe.OpBinary} {
					p := wsrPayload(op, size, "c2s")
					if err := c.WriteMessage(int(op), p); err != nil {
						t.Fatal(err)
					}
					sc.Expect(t, op, p)
					c2s = append(c2s, wsrExpectEv{Op: op, Payload: p})
					dataMsgs++
				}
			}
			pieces := wsrText(10000, "pieces")
			w, err := c.NextWriter(websocket.TextMessage)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(pieces); i += 2500 {
				w.Write(pieces[i : i+2500])
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			sc.Expect(t, wsframe.OpText, pieces)
			c2s = append(c2s, wsrExpectEv{Op: wsframe.OpText, Payload: pieces})
			dataMsgs++
			for _, ctl := range []struct {
				op      wsframe.Opcode
				payload string
			}{{wsframe.OpPing, "client ping"}, {wsframe.OpPong, "client pong"}} {
				if err := c.WriteControl(int(ctl.op), []byte(ctl.payload), time.Now().Add(wsrWait)); err != nil {
					t.Fatal(err)
				}
				sc.Expect(t, ctl.op, []byte(ctl.payload))
				c2s = append(c2s, wsrExpectEv{Op: ctl.op, Payload: []byte(ctl.payload), Unhooked: true})
			}

			// Server → client: the same sizes, fragmented messages (a rune split
			// between frames, an empty middle fragment), a ping and a pong.
			read := func(op wsframe.Opcode, p []byte) {
				t.Helper()
				mt, got, err := c.ReadMessage()
				if err != nil || mt != int(op) || !bytes.Equal(got, p) {
					t.Fatalf("client read type %d, %d bytes, %v; want %s of %d bytes", mt, len(got), err, op, len(p))
				}
			}
			for _, size := range tc.sizes {
				for _, op := range []wsframe.Opcode{wsframe.OpText, wsframe.OpBinary} {
					p := wsrPayload(op, size, "s2c")
					sc.MustSend(t, op, p)
					read(op, p)
					s2c = append(s2c, wsrExpectEv{Op: op, Payload: p, Frames: 1})
					dataMsgs++
				}
			}
			frags := []struct {
				op     wsframe.Opcode
				pieces []string
			}{
				{wsframe.OpText, []string{"h\xc3", "\xa9llo ", "w\xc3\xb6rld"}},
				{wsframe.OpBinary, []string{"abc", "", "def"}},
			}
			for _, f := range frags {
				op := f.op
				for i, piece := range f.pieces {
					if err := sc.SendFrame(i == len(f.pieces)-1, op, []byte(piece)); err != nil {
						t.Fatal(err)
					}
					op = wsframe.OpContinuation
				}
				whole := []byte(strings.Join(f.pieces, ""))
				read(f.op, whole)
				s2c = append(s2c, wsrExpectEv{Op: f.op, Payload: whole, Frames: len(f.pieces)})
				dataMsgs++
			}
			sc.MustSend(t, wsframe.OpPing, []byte("server ping"))
			sc.MustSend(t, wsframe.OpPong, []byte("server pong"))
			sc.MustSend(t, wsframe.OpText, []byte("last"))
			read(wsframe.OpText, []byte("last"))
			dataMsgs++
			for _, ch := range []struct {
				c    chan string
				want string
			}{{pings, "server ping"}, {pongs, "server pong"}} {
				select {
				case got := <-ch.c:
					if got != ch.want {
						t.Errorf("client got control payload %q, want %q", got, ch.want)
					}
				default:
					t.Errorf("client did not get %q before the next message", ch.want)
				}
			}
			sc.Expect(t, wsframe.OpPong, []byte("server ping"))
			s2c = append(s2c,
				wsrExpectEv{Op: wsframe.OpPing, Payload: []byte("server ping"), Unhooked: true},
				wsrExpectEv{Op: wsframe.OpPong, Payload: []byte("server pong"), Unhooked: true},
				wsrExpectEv{Op: wsframe.OpText, Payload: []byte("last"), Frames: 1})
			c2s = append(c2s, wsrExpectEv{Op: wsframe.OpPong, Payload: []byte("server ping"), Unhooked: true})

			// The close handshake.
			var wantCode wsframe.CloseCode
			var wantReason, wantBy string
			if !tc.serverCloses {
				wantCode, wantReason, wantBy = 4001, "client bye", "client"
				closeMsg := wsframe.AppendClose(nil, wantCode, wantReason)
				if err := c.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(wsrWait)); err != nil {
					t.Fatal(err)
				}
				if code, reason := sc.ExpectClose(t); code != wantCode || reason != wantReason {
					t.Errorf("server got close %d %q, want %d %q", code, reason, wantCode, wantReason)
				}
				ack := wsframe.AppendClose(nil, wantCode, "ack")
				sc.MustSend(t, wsframe.OpClose, ack)
				_, _, err := c.ReadMessage()
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != int(wantCode) || ce.Text != "ack" {
					t.Errorf("client read after close: %v, want close %d \"ack\"", err, wantCode)
				}
				c2s = append(c2s, wsrExpectEv{Op: wsframe.OpClose, Payload: closeMsg, Unhooked: true})
				s2c = append(s2c, wsrExpectEv{Op: wsframe.OpClose, Payload: ack, Unhooked: true})
			} else {
				wantCode, wantReason, wantBy = 4002, "server bye", "server"
				closeMsg := wsframe.AppendClose(nil, wantCode, wantReason)
				sc.MustSend(t, wsframe.OpClose, closeMsg)
				_, _, err := c.ReadMessage() // gorilla answers with close(4002, "")
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != int(wantCode) || ce.Text != wantReason {
					t.Errorf("client read after close: %v, want close %d %q", err, wantCode, wantReason)
				}
				if code, reason := sc.ExpectClose(t); code != wantCode || reason != "" {
					t.Errorf("server got close %d %q, want the client's echo %d \"\"", code, reason, wantCode)
				}
				c2s = append(c2s, wsrExpectEv{Op: wsframe.OpClose, Payload: wsframe.AppendClose(nil, wantCode, ""), Unhooked: true})
				s2c = append(s2c, wsrExpectEv{Op: wsframe.OpClose, Payload: closeMsg, Unhooked: true})
			}
			// The server closes TCP first (RFC 6455 §7.1.1); the proxy must then close
			// the client's connection. Everything the proxy sends until then is recorded.
			sc.CloseWrite()
			sc.ExpectClosedByPeer(t)
			rc.SetReadDeadline(time.Now().Add(wsrWait))
			if n, err := io.Copy(io.Discard, rc); err != nil {
				t.Errorf("client connection after the close handshake: %v (after %d more bytes), want EOF", err, n)
			}

			clientSent, ok1 := wsrAfterHead(rc.wr.Bytes(), "GET ")
			clientGot, ok2 := wsrAfterHead(rc.rd.Bytes(), "HTTP/1.1 101")
			if !ok1 || !ok2 {
				t.Fatalf("cannot find the upgrade request (%v) or the 101 (%v) in the client's bytes", ok1, ok2)
			}
			wsrSameBytes(t, "bytes the server received vs bytes the client sent", sc.Received(), clientSent)
			wsrSameBytes(t, "bytes the client received vs bytes the server sent", clientGot, sc.Sent())

			wsrWaitClose(t, tp, "c1", wantCode, wantReason, wantBy)
			open := wsrOpenEvent(t, tp, "c1")
			for k, want := range map[string]string{"url": u, "client": rc.LocalAddr().String(), "server": srv.Addr,
				"subprotocol": "", "extensions": "", "mode": "proxy"} {
				if open[k] != want {
					t.Errorf("open event %s = %v, want %q", k, open[k], want)
				}
			}
			evs := wsrMessageEvents(t, tp)
			wsrCheckEvents(t, evs, "c1", "c2s", c2s)
			wsrCheckEvents(t, evs, "c1", "s2c", s2c)
			// The client really sent what the case says: whole frames, or fragments.
			for _, ev := range wsrDirEvents(evs, "c1", "c2s") {
				n, frames := wsrNum(ev, "len"), wsrNum(ev, "frames")
				if ev["opcode"] == "text" || ev["opcode"] == "binary" {
					if fragmented := frames > 1; fragmented != (n > int64(tc.writeBuf)) {
						t.Errorf("c2s %v message of %d bytes came in %d frames with a %d-byte write buffer", ev["opcode"], n, frames, tc.writeBuf)
					}
				}
			}
			if got := hooked.Load(); got != int64(dataMsgs) {
				t.Errorf("the hook saw %d messages, want the %d data messages", got, dataMsgs)
			}
		})
	}

	t.Run("raw client through CONNECT", func(t *testing.T) {
		tp := startProxy(t, proxy.Config{}, plugins.FailOpen)
		srv := wsrStartServer(t, true, nil)
		cl := wsrRawClient(t, tp, wsrViaConnect, srv.Addr, "/raw", nil, true)
		sc := srv.Accept(t)
		wsrRawExchange(t, tp, cl, sc)
	})
}

// wsrRawExchange runs a fixed script between a raw client and a raw server connected
// through the proxy (connection c1): messages of every size both ways, fragmented
// messages, pings and pongs, and a close handshake the client starts. It then checks
// that both byte streams went through unchanged, and the event log.
func wsrRawExchange(t *testing.T, tp *testProxy, cl, sc *wsrConn) {
	t.Helper()
	cl.Start()
	sc.Start()
	var c2s, s2c []wsrExpectEv
	for _, dir := range []struct {
		from, to *wsrConn
		evs      *[]wsrExpectEv
	}{{cl, sc, &c2s}, {sc, cl, &s2c}} {
		for _, size := range wsrRawSizes {
			for _, op := range []wsframe.Opcode{wsframe.OpText, wsframe.OpBinary} {
				p := wsrPayload(op, size, dir.from.Side.String())
				dir.from.MustSend(t, op, p)
				dir.to.Expect(t, op, p)
				*dir.evs = append(*dir.evs, wsrExpectEv{Op: op, Payload: p, Frames: 1})
			}
		}
		pieces := []string{"fr\xc3", "\xa9", "", "gment ✓"}
		for i, piece := range pieces {
			op := wsframe.OpText
			if i > 0 {
				op = wsframe.OpContinuation
			}
			if err := dir.from.SendFrame(i == len(pieces)-1, op, []byte(piece)); err != nil {
				t.Fatal(err)
			}
		}
		whole := []byte(strings.Join(pieces, ""))
		dir.to.Expect(t, wsframe.OpText, whole)
		*dir.evs = append(*dir.evs, wsrExpectEv{Op: wsframe.OpText, Payload: whole, Frames: len(pieces)})
		for _, op := range []wsframe.Opcode{wsframe.OpPing, wsframe.OpPong} {
			p := []byte(dir.from.Side.String() + " " + op.String())
			dir.from.MustSend(t, op, p)
			dir.to.Expect(t, op, p)
			*dir.evs = append(*dir.evs, wsrExpectEv{Op: op, Payload: p, Unhooked: true})
		}
	}
	bye := wsframe.AppendClose(nil, 4000, "raw bye")
	cl.MustSend(t, wsframe.OpClose, bye)
	sc.Expect(t, wsframe.OpClose, bye)
	ack := wsframe.AppendClose(nil, 4000, "")
	sc.MustSend(t, wsframe.OpClose, ack)
	cl.Expect(t, wsframe.OpClose, ack)
	c2s = append(c2s, wsrExpectEv{Op: wsframe.OpClose, Payload: bye, Unhooked: true})
	s2c = append(s2c, wsrExpectEv{Op: wsframe.OpClose, Payload: ack, Unhooked: true})
	sc.CloseWrite()
	sc.ExpectClosedByPeer(t)
	cl.ExpectClosedByPeer(t)

	wsrSameBytes(t, "bytes the server received vs bytes the client sent", sc.Received(), cl.Sent())
	wsrSameBytes(t, "bytes the client received vs bytes the server sent", cl.Received(), sc.Sent())
	wsrWaitClose(t, tp, "c1", 4000, "raw bye", "client")
	evs := wsrMessageEvents(t, tp)
	wsrCheckEvents(t, evs, "c1", "c2s", c2s)
	wsrCheckEvents(t, evs, "c1", "s2c", s2c)
}

// TestRelayWSS relays the same kinds of messages over wss:// (MITM'd TLS) to a gorilla
// echo server, and over ws:// with an absolute-form upgrade sent straight to the proxy.
func TestRelayWSS(t *testing.T) {
	t.Run("wss gorilla echo", func(t *testing.T) {
		echo := wsrStartEcho(t, true)
		tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
		u := echo.URL + "/echo"
		c, _, err := tp.Dialer().Dial(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.NetConn().SetDeadline(time.Now().Add(wsrConnTimeout))
		pings, pongs := make(chan string, 8), make(chan string, 8)
		c.SetPingHandler(func(s string) error {
			pings <- s
			return c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(wsrWait))
		})
		c.SetPongHandler(func(s string) error { pongs <- s; return nil })
		var c2s, s2c []wsrExpectEv
		echoed := func(op wsframe.Opcode, p []byte) {
			t.Helper()
			mt, got, err := c.ReadMessage()
			if err != nil || mt != int(op) || !bytes.Equal(got, p) {
				t.Fatalf("echo: type %d, %d bytes, %v; want %s of %d bytes", mt, len(got), err, op, len(p))
			}
			c2s = append(c2s, wsrExpectEv{Op: op, Payload: p})
			s2c = append(s2c, wsrExpectEv{Op: op, Payload: p})
		}
		for _, size := range wsrSizes {
			for _, op := range []wsframe.Opcode{wsframe.OpText, wsframe.OpBinary} {
				p := wsrPayload(op, size, "wss")
				if err := c.WriteMessage(int(op), p); err != nil {
					t.Fatal(err)
				}
				echoed(op, p)
			}
		}
		// Fragmented: gorilla's 4 KiB write buffer cuts this message into frames.
		pieces := wsrBinary(10000, 7)
		w, err := c.NextWriter(websocket.BinaryMessage)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pieces[:3000])
		w.Write(pieces[3000:])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		echoed(wsframe.OpBinary, pieces)

		// A ping (the server answers with a pong before the next echo).
		if err := c.WriteControl(websocket.PingMessage, []byte("client ping"), time.Now().Add(wsrWait)); err != nil {
			t.Fatal(err)
		}
		c2s = append(c2s, wsrExpectEv{Op: wsframe.OpPing, Payload: []byte("client ping"), Unhooked: true})
		s2c = append(s2c, wsrExpectEv{Op: wsframe.OpPong, Payload: []byte("client ping"), Unhooked: true})
		if err := c.WriteMessage(websocket.TextMessage, []byte("after ping")); err != nil {
			t.Fatal(err)
		}
		echoed(wsframe.OpText, []byte("after ping"))
		if got := wsrRecv(t, pongs); got != "client ping" {
			t.Errorf("pong %q, want \"client ping\"", got)
		}
		// The server pings (and the client answers) on request.
		if err := c.WriteMessage(websocket.TextMessage, []byte("ping me")); err != nil {
			t.Fatal(err)
		}
		c2s = append(c2s, wsrExpectEv{Op: wsframe.OpText, Payload: []byte("ping me")})
		s2c = append(s2c, wsrExpectEv{Op: wsframe.OpPing, Payload: []byte("server ping"), Unhooked: true})
		echoed(wsframe.OpText, []byte("ping me"))
		c2s = slices.Delete(c2s, len(c2s)-1, len(c2s)) // echoed added "ping me" again
		c2s = append(c2s, wsrExpectEv{Op: wsframe.OpPong, Payload: []byte("server ping"), Unhooked: true})
		if got := wsrRecv(t, pings); got != "server ping" {
			t.Errorf("ping %q, want \"server ping\"", got)
		}
		if err := c.WriteControl(websocket.PongMessage, []byte("client pong"), time.Now().Add(wsrWait)); err != nil {
			t.Fatal(err)
		}
		c2s = append(c2s, wsrExpectEv{Op: wsframe.OpPong, Payload: []byte("client pong"), Unhooked: true})

		bye := wsframe.AppendClose(nil, 4001, "wss bye")
		if err := c.WriteControl(websocket.CloseMessage, bye, time.Now().Add(wsrWait)); err != nil {
			t.Fatal(err)
		}
		_, _, err = c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Errorf("after close: %v, want the server's close 4001", err)
		}
		c2s = append(c2s, wsrExpectEv{Op: wsframe.OpClose, Payload: bye, Unhooked: true})
		s2c = append(s2c, wsrExpectEv{Op: wsframe.OpClose, Payload: wsframe.AppendClose(nil, 4001, ""), Unhooked: true})

		wsrWaitClose(t, tp, "c1", 4001, "wss bye", "client")
		if open := wsrOpenEvent(t, tp, "c1"); open["url"] != u {
			t.Errorf("open event url %v, want %s", open["url"], u)
		}
		evs := wsrMessageEvents(t, tp)
		wsrCheckEvents(t, evs, "c1", "c2s", c2s)
		wsrCheckEvents(t, evs, "c1", "s2c", s2c)
	})

	t.Run("absolute-form ws upgrade", func(t *testing.T) {
		tp := startProxy(t, proxy.Config{}, plugins.FailOpen)
		srv := wsrStartServer(t, true, nil)
		cl := wsrRawClient(t, tp, wsrViaAbsolute, srv.Addr, "/abs?q=1", nil, true)
		sc := srv.Accept(t)
		if sc.Req.RequestURI != "/abs?q=1" || sc.Req.Host != srv.Addr {
			t.Errorf("server got request for %q on host %q, want /abs?q=1 on %s", sc.Req.RequestURI, sc.Req.Host, srv.Addr)
		}
		wsrRawExchange(t, tp, cl, sc)
		if open := wsrOpenEvent(t, tp, "c1"); open["url"] != "ws://"+srv.Addr+"/abs?q=1" {
			t.Errorf("open event url %v", open["url"])
		}
	})
}

// TestRelayHandshakeHeaders checks that the upgrade request reaches the server with the
// client's header values (nothing added, nothing merged, nothing dropped), through
// CONNECT and through absolute-form, and that the client gets the server's 101 with
// the negotiated subprotocol.
func TestRelayHandshakeHeaders(t *testing.T) {
	full := wstest.Header{
		{"Origin", "https://app.example"},
		{"Cookie", "session=abc123; theme=dark"},
		{"Sec-WebSocket-Protocol", "superchat, chat"},
		{"Sec-WebSocket-Protocol", "v2.wsr"},
		{"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits, x-wsr-ext"},
		{"Accept-Encoding", "identity;q=1, br;q=0.5"},
		{"X-Wsr-Client", "one"},
	}
	cases := []struct {
		name string
		hdr  wstest.Header
		// want lists the values the server must see for each header; nil means absent.
		want map[string][]string
		// proto is the subprotocol the server picks and the client must see.
		proto string
	}{
		{
			name: "browser-like, no User-Agent",
			hdr:  full,
			want: map[string][]string{
				"Origin":                   {"https://app.example"},
				"Cookie":                   {"session=abc123; theme=dark"},
				"Sec-Websocket-Protocol":   {"superchat, chat", "v2.wsr"},
				"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits, x-wsr-ext"},
				"Accept-Encoding":          {"identity;q=1, br;q=0.5"},
				"X-Wsr-Client":             {"one"},
				"User-Agent":               nil,
			},
			proto: "chat",
		},
		{
			name: "with User-Agent",
			hdr:  append(slices.Clone(full), [2]string{"User-Agent", "wsr-agent/1.0 (test)"}),
			want: map[string][]string{
				"Cookie":     {"session=abc123; theme=dark"},
				"User-Agent": {"wsr-agent/1.0 (test)"},
			},
			proto: "chat",
		},
		{
			name: "minimal",
			hdr:  nil,
			want: map[string][]string{
				"Origin":                   nil,
				"Cookie":                   nil,
				"Sec-Websocket-Protocol":   nil,
				"Sec-Websocket-Extensions": nil,
				"Accept-Encoding":          nil,
				"User-Agent":               nil,
			},
		},
	}
	respond := func(req *http.Request) []string {
		lines := []string{"X-Wsr-Server: hello"}
		for _, v := range req.Header.Values("Sec-WebSocket-Protocol") {
			for p := range strings.SplitSeq(v, ",") {
				if strings.TrimSpace(p) == "chat" {
					return append(lines, "Sec-WebSocket-Protocol: chat")
				}
			}
		}
		return lines
	}
	for _, via := range []string{wsrViaConnect, wsrViaAbsolute} {
		for _, tc := range cases {
			t.Run(via+"/"+tc.name, func(t *testing.T) {
				tp := startProxy(t, proxy.Config{}, plugins.FailOpen)
				srv := wsrStartServer(t, false, respond)
				cl := wsrRawClient(t, tp, via, srv.Addr, "/hs?q=1", tc.hdr, false)
				sc := srv.Accept(t)
				h := sc.Req.Header
				for name, want := range tc.want {
					if got := h.Values(name); !slices.Equal(got, want) {
						t.Errorf("server got %s %q, want %q", name, got, want)
					}
				}
				// Nothing added: the server sees exactly the header names the client sent.
				var sentNames, gotNames []string
				for _, l := range append(wstest.UpgradeHeader(""), tc.hdr...) {
					if n := http.CanonicalHeaderKey(l[0]); !slices.Contains(sentNames, n) {
						sentNames = append(sentNames, n)
					}
				}
				for n := range h {
					gotNames = append(gotNames, n)
				}
				slices.Sort(sentNames)
				slices.Sort(gotNames)
				if !slices.Equal(gotNames, sentNames) {
					t.Errorf("server got headers %q, want exactly the client's %q", gotNames, sentNames)
				}
				if got := h.Values("Sec-Websocket-Key"); len(got) != 1 || wstest.AcceptKey(got[0]) != cl.Resp.Header.Get("Sec-WebSocket-Accept") {
					t.Errorf("server got Sec-WebSocket-Key %q, which does not match the client's key", got)
				}
				if got := h.Values("Sec-Websocket-Version"); !slices.Equal(got, []string{"13"}) {
					t.Errorf("server got Sec-WebSocket-Version %q", got)
				}
				if sc.Req.RequestURI != "/hs?q=1" || sc.Req.Host != srv.Addr {
					t.Errorf("server got %q for host %q", sc.Req.RequestURI, sc.Req.Host)
				}
				wantProto := []string{tc.proto}
				if tc.proto == "" {
					wantProto = nil
				}
				if got := cl.Resp.Header.Values("Sec-WebSocket-Protocol"); !slices.Equal(got, wantProto) {
					t.Errorf("client got Sec-WebSocket-Protocol %q in the 101, want %q", got, wantProto)
				}
				if got := cl.Resp.Header.Get("X-Wsr-Server"); got != "hello" {
					t.Errorf("client got X-Wsr-Server %q in the 101, want \"hello\"", got)
				}
				// The connection works after the handshake.
				cl.Start()
				sc.Start()
				cl.MustSend(t, wsframe.OpText, []byte("after handshake"))
				sc.Expect(t, wsframe.OpText, []byte("after handshake"))
				sc.MustSend(t, wsframe.OpBinary, []byte{1, 2, 3})
				cl.Expect(t, wsframe.OpBinary, []byte{1, 2, 3})
				if open := wsrOpenEvent(t, tp, "c1"); open["subprotocol"] != tc.proto {
					t.Errorf("open event subprotocol %v, want %q", open["subprotocol"], tc.proto)
				}
			})
		}
	}
}

// TestRelayEarlyFrames sends the first frames in the same write as the upgrade
// request (the proxy's HTTP parser has them buffered when the relay starts): they
// must reach the server, in order, before what follows.
func TestRelayEarlyFrames(t *testing.T) {
	for _, via := range []string{wsrViaConnect, wsrViaAbsolute} {
		t.Run(via, func(t *testing.T) {
			tp := startProxy(t, proxy.Config{}, plugins.FailOpen)
			srv := wsrStartServer(t, false, nil)
			var early bytes.Buffer
			w := wsframe.NewWriter(&early, wsframe.Client, 0)
			w.WriteMessage(wsframe.OpText, 0, []byte("early one"), nil)
			w.WriteMessage(wsframe.OpBinary, 0, wsrBinary(3000, 5), []int{1000, 2000})
			w.Flush()
			cl := wsrRawClientEarly(t, tp, via, srv.Addr, "/early", nil, early.Bytes(), false)
			sc := srv.Accept(t)
			cl.Start()
			sc.Start()
			sc.Expect(t, wsframe.OpText, []byte("early one"))
			sc.Expect(t, wsframe.OpBinary, wsrBinary(3000, 5))
			cl.MustSend(t, wsframe.OpText, []byte("late"))
			sc.Expect(t, wsframe.OpText, []byte("late"))
			sc.MustSend(t, wsframe.OpText, []byte("back"))
			cl.Expect(t, wsframe.OpText, []byte("back"))
		})
	}
}

// wsrDeflateMsg returns a message of a JSON-like shape that repeats most of the
// previous messages of its direction, so a context-takeover compressor refers back
// into them.
func wsrDeflateMsg(dir string, i int) string {
	return fmt.Sprintf(`{"type":"update","dir":%q,"seq":%d,"user":{"name":"Ada Lovelace","role":"engineer","team":"analytical-engine"},`+
		`"items":[{"sku":"A-%03d","qty":%d,"price":"19.99","note":"the quick brown fox jumps over the lazy dog"},`+
		`{"sku":"B-%03d","qty":%d,"price":"4.50","note":"pack my box with five dozen liquor jugs"}],"status":"ok"}`,
		dir, i, i%17, i%5+1, i%13, i%3+2)
}

// wsrCoderPeer reads messages from a coder connection into a channel.
type wsrCoderPeer struct {
	name string
	c    *coder.Conn
	msgs chan string
	done chan struct{}
	err  error
}

func wsrStartCoderPeer(ctx context.Context, name string, c *coder.Conn) *wsrCoderPeer {
	p := &wsrCoderPeer{name: name, c: c, msgs: make(chan string, 1024), done: make(chan struct{})}
	c.SetReadLimit(1 << 20)
	go func() {
		defer close(p.done)
		defer close(p.msgs)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				p.err = err
				return
			}
			p.msgs <- string(b)
		}
	}()
	return p
}

func (p *wsrCoderPeer) expect(t testing.TB, want []string) {
	t.Helper()
	for i, w := range want {
		select {
		case got, ok := <-p.msgs:
			if !ok {
				t.Fatalf("%s: connection failed after %d of %d messages: %v", p.name, i, len(want), p.err)
			}
			if got != w {
				t.Fatalf("%s: message %d of %d is %.60q, want %.60q", p.name, i, len(want), got, w)
			}
		case <-time.After(wsrWait):
			t.Fatalf("%s: message %d of %d did not arrive", p.name, i, len(want))
		}
	}
}

// wsrWireMessages parses the WebSocket messages of a recorded byte stream sent by
// sender under permessage-deflate and inflates the compressed ones twice: with the
// window of the earlier messages (what the receiver does under context takeover) and
// on their own. needWindow counts the messages that cannot be inflated on their own,
// so they refer back into earlier ones.
func wsrWireMessages(t testing.TB, stream []byte, sender wsframe.Side) (msgs []string, compressed, needWindow int) {
	t.Helper()
	r := wsframe.NewReader(bytes.NewReader(stream), wsframe.Rules{Sender: sender, Extensions: wsframe.RSV1}, 0)
	a := wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true})
	var window []byte
	inflate := func(p, dict []byte) ([]byte, error) {
		in := append(slices.Clone(p), 0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff)
		return io.ReadAll(flate.NewReaderDict(bytes.NewReader(in), dict))
	}
	for {
		m, err := a.ReadMessage(r)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("recorded %s stream: %v", sender, err)
		}
		if !m.Opcode.IsData() {
			continue
		}
		if !m.Compressed {
			msgs = append(msgs, string(m.Payload))
			continue
		}
		compressed++
		out, err := inflate(m.Payload, window)
		if err != nil {
			t.Fatalf("recorded %s stream: message %d does not inflate with the window: %v", sender, len(msgs), err)
		}
		if alone, err := inflate(m.Payload, nil); err != nil || !bytes.Equal(alone, out) {
			needWindow++
		}
		window = append(window, out...)
		if len(window) > 1<<15 {
			window = slices.Clone(window[len(window)-1<<15:])
		}
		msgs = append(msgs, string(out))
	}
}

// TestRelayDeflateTakeover modifies, drops and injects messages on connections where
// both peers (coder/websocket, like Chromium) compress with context takeover, and then
// checks that many more messages in both directions still inflate at the peers.
func TestRelayDeflateTakeover(t *testing.T) {
	for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
		for _, kind := range []string{"modify", "drop", "inject"} {
			t.Run(dir.String()+" "+kind, func(t *testing.T) { wsrDeflateCase(t, dir, kind) })
		}
	}
}

func wsrDeflateCase(t *testing.T, dir plugins.Direction, kind string) {
	hook := plugins.HookFunc{HookName: "wsr-rewrite", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		p := string(m.Payload)
		switch {
		case strings.HasPrefix(p, "MODIFY|"):
			return plugins.Verdict{Action: plugins.Modify, Payload: []byte("MODIFIED|" + strings.ToUpper(p[7:]))}, nil
		case strings.HasPrefix(p, "DROP|"):
			return plugins.Verdict{Action: plugins.Drop}, nil
		case strings.HasPrefix(p, "INJECT|"):
			return plugins.Verdict{Inject: []plugins.Injection{{Dir: m.Dir.Reverse(), Opcode: wsframe.OpText, Payload: []byte("INJECTED|" + p[7:])}}}, nil
		}
		return plugins.Verdict{}, nil
	}}
	tp := startProxy(t, proxy.Config{}, plugins.FailOpen, hook)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cc, sconn, rl := wsrCoderTakeoverPair(ctx, t, tp, "/deflate")
	client := wsrStartCoderPeer(ctx, "client", cc)
	server := wsrStartCoderPeer(ctx, "server", sconn)

	evs := map[plugins.Direction][]wsrExpectEv{}
	counter := map[plugins.Direction]int{}
	from := map[plugins.Direction]*coder.Conn{plugins.ClientToServer: cc, plugins.ServerToClient: sconn}
	to := map[plugins.Direction]*wsrCoderPeer{plugins.ClientToServer: server, plugins.ServerToClient: client}
	normal := func() wsrExpectEv { return wsrExpectEv{Op: wsframe.OpText, CheckCompressed: true, Compressed: true} }
	// batch sends n messages in direction d; trigger, when not empty, prefixes the
	// messages at indices 3 and 8 with it.
	batch := func(d plugins.Direction, n int, trigger string) {
		t.Helper()
		var want, injected []string
		for i := range n {
			body := wsrDeflateMsg(d.String(), counter[d])
			counter[d]++
			msg, ev := body, normal()
			if trigger != "" && (i == 3 || i == 8) {
				msg = trigger + body
				switch trigger {
				case "MODIFY|":
					ev.Modified = true
					ev.Payload = []byte("MODIFIED|" + strings.ToUpper(body))
					want = append(want, string(ev.Payload))
				case "DROP|":
					ev.Dropped = true
					ev.Payload = []byte(msg)
				case "INJECT|":
					ev.Payload = []byte(msg)
					want = append(want, msg)
					inj := "INJECTED|" + body
					injected = append(injected, inj)
					evs[d.Reverse()] = append(evs[d.Reverse()], wsrExpectEv{Op: wsframe.OpText, Payload: []byte(inj),
						Injected: true, Unhooked: true, CheckCompressed: true, Compressed: false})
				}
			} else {
				ev.Payload = []byte(msg)
				want = append(want, msg)
			}
			evs[d] = append(evs[d], ev)
			if err := from[d].Write(ctx, coder.MessageText, []byte(msg)); err != nil {
				t.Fatalf("%s write %d: %v", d, i, err)
			}
		}
		to[d].expect(t, want)
		to[d.Reverse()].expect(t, injected)
	}

	batch(plugins.ClientToServer, 20, "")
	batch(plugins.ServerToClient, 20, "")
	batch(dir, 12, strings.ToUpper(kind)+"|")
	for range 3 {
		batch(plugins.ClientToServer, 20, "")
		batch(plugins.ServerToClient, 20, "")
	}
	if err := cc.Close(coder.StatusNormalClosure, "done"); err != nil {
		t.Errorf("client close handshake: %v", err)
	}
	<-server.done
	if st := coder.CloseStatus(server.err); st != coder.StatusNormalClosure {
		t.Errorf("server ended with %v, want a normal close", server.err)
	}

	wsrWaitClose(t, tp, "c1", 1000, "done", "client")
	open := wsrOpenEvent(t, tp, "c1")
	ext, _ := open["extensions"].(string)
	if !strings.Contains(ext, "permessage-deflate") || strings.Contains(ext, "no_context_takeover") {
		t.Errorf("open event extensions %q, want permessage-deflate with context takeover", ext)
	}
	all := wsrMessageEvents(t, tp)
	var msgEvs []map[string]any
	for _, ev := range all {
		if ev["opcode"] != "close" {
			msgEvs = append(msgEvs, ev)
		}
	}
	wsrCheckEvents(t, msgEvs, "c1", "c2s", evs[plugins.ClientToServer])
	wsrCheckEvents(t, msgEvs, "c1", "s2c", evs[plugins.ServerToClient])

	// The peers really used context takeover: before any change, their messages
	// refer back into earlier ones. What the server received inflates, in order, to
	// what it read.
	recvd, sent := rl.streams(t)
	c2sWire, c2sComp, c2sBack := wsrWireMessages(t, recvd, wsframe.Client)
	s2cWire, s2cComp, s2cBack := wsrWireMessages(t, sent, wsframe.Server)
	t.Logf("c2s on the server's wire: %d messages, %d compressed, %d with back-references; s2c from the server: %d, %d, %d",
		len(c2sWire), c2sComp, c2sBack, len(s2cWire), s2cComp, s2cBack)
	if c2sBack == 0 || s2cBack == 0 {
		t.Errorf("no message refers back into earlier ones (c2s %d, s2c %d): the peers do not use context takeover", c2sBack, s2cBack)
	}
	var wantC2S []string
	for _, ev := range evs[plugins.ClientToServer] {
		if !ev.Dropped {
			wantC2S = append(wantC2S, string(ev.Payload))
		}
	}
	if !slices.Equal(c2sWire, wantC2S) {
		t.Errorf("the server's wire carries %d messages that inflate differently from the %d expected", len(c2sWire), len(wantC2S))
	}
}

// wsrCoderTakeoverPair connects a coder/websocket client to a coder/websocket server
// at path through the proxy, both compressing with context takeover (as browsers
// do); the server's listener records its bytes. Everything is closed when the test
// ends.
func wsrCoderTakeoverPair(ctx context.Context, t testing.TB, tp *testProxy, path string) (client, server *coder.Conn, rl *wsrRecListener) {
	t.Helper()
	return wsrCoderPair(ctx, t, tp, path, coder.CompressionContextTakeover)
}

// wsrCoderPair is wsrCoderTakeoverPair with both sides offering and accepting
// compression as mode says.
func wsrCoderPair(ctx context.Context, t testing.TB, tp *testProxy, path string, mode coder.CompressionMode) (client, server *coder.Conn, rl *wsrRecListener) {
	t.Helper()
	accepted := make(chan *coder.Conn, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, &coder.AcceptOptions{CompressionMode: mode})
		if err == nil {
			accepted <- c
		}
	}))
	rl = &wsrRecListener{Listener: srv.Listener}
	srv.Listener = rl
	srv.Start()
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: &http.Transport{DialContext: wsrDialContext(tp.Addr)}}
	client, _, err := coder.Dial(ctx, "ws://"+srv.Listener.Addr().String()+path, &coder.DialOptions{
		HTTPClient: hc, CompressionMode: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CloseNow() })
	select {
	case server = <-accepted:
	case <-time.After(wsrWait):
		t.Fatal("the server did not accept")
	}
	t.Cleanup(func() { server.CloseNow() })
	return client, server, rl
}

// wsrRecListener records the bytes of the first connection it accepts.
type wsrRecListener struct {
	net.Listener
	mu    sync.Mutex
	first *wsrRecConn
}

func (l *wsrRecListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &wsrRecConn{Conn: c}
	l.mu.Lock()
	if l.first == nil {
		l.first = rc
	}
	l.mu.Unlock()
	return rc, nil
}

// streams returns what the first connection received after the upgrade request and
// sent after the 101.
func (l *wsrRecListener) streams(t testing.TB) (recvd, sent []byte) {
	t.Helper()
	l.mu.Lock()
	rc := l.first
	l.mu.Unlock()
	if rc == nil {
		t.Fatal("the server accepted no connection")
	}
	recvd, ok1 := wsrAfterHead(rc.rd.Bytes(), "GET ")
	sent, ok2 := wsrAfterHead(rc.wr.Bytes(), "HTTP/1.1 101")
	if !ok1 || !ok2 {
		t.Fatal("the server's connection holds no upgrade")
	}
	return recvd, sent
}

// TestRelayCloseAndErrors breaks connections in the ways peers do (protocol errors,
// vanishing) and checks that both sides get a close frame where they still listen,
// that the proxy closes both TCP connections, that a second connection through the
// same proxy is unaffected, and that no goroutine of the broken connection survives.
func TestRelayCloseAndErrors(t *testing.T) {
	const anyCode = wsframe.CloseCode(1) // any code valid on the wire
	type sides struct{ cl, sc *wsrConn }
	cases := []struct {
		name string
		act  func(t testing.TB, s sides)
		// The close code each side must receive; 0 when that side vanished itself.
		client, server wsframe.CloseCode
		event          wsframe.CloseCode
		hookLimit      int64 // Config.MaxHookMessage; 0 for the default
	}{
		{"client sends an unmasked frame", func(t testing.TB, s sides) {
			frame := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpText, Length: 2})
			s.cl.SendRaw(append(frame, "hi"...))
		}, wsframe.CloseProtocolError, anyCode, wsframe.CloseProtocolError, 0},
		{"client sends a reserved opcode", func(t testing.TB, s sides) {
			s.cl.SendFrame(true, wsframe.Opcode(3), []byte("x"))
		}, wsframe.CloseProtocolError, anyCode, wsframe.CloseProtocolError, 0},
		{"client sends invalid UTF-8 text", func(t testing.TB, s sides) {
			s.cl.SendFrame(false, wsframe.OpText, []byte("ok "))
			s.cl.SendFrame(true, wsframe.OpContinuation, []byte("\xff\xfe"))
		}, wsframe.CloseInvalidPayload, anyCode, wsframe.CloseInvalidPayload, 0},
		{"client sends close code 1006", func(t testing.TB, s sides) {
			s.cl.Send(wsframe.OpClose, []byte{0x03, 0xEE})
		}, wsframe.CloseProtocolError, anyCode, wsframe.CloseProtocolError, 0},
		{"server sends a masked frame", func(t testing.TB, s sides) {
			frame := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpBinary, Masked: true, Length: 1})
			s.sc.SendRaw(append(frame, 1))
		}, anyCode, wsframe.CloseProtocolError, wsframe.CloseProtocolError, 0},
		{"server sends invalid UTF-8 text", func(t testing.TB, s sides) {
			s.sc.Send(wsframe.OpText, []byte("\xc0\xaf"))
		}, anyCode, wsframe.CloseInvalidPayload, wsframe.CloseInvalidPayload, 0},
		{"server vanishes", func(t testing.TB, s sides) {
			s.sc.Close()
		}, wsframe.CloseGoingAway, 0, wsframe.CloseGoingAway, 0},
		{"client vanishes", func(t testing.TB, s sides) {
			s.cl.Close()
		}, 0, wsframe.CloseGoingAway, wsframe.CloseGoingAway, 0},
		{"client vanishes in the middle of a message", func(t testing.TB, s sides) {
			s.cl.SendFrame(false, wsframe.OpBinary, []byte("first half"))
			s.cl.Close()
		}, 0, wsframe.CloseGoingAway, wsframe.CloseGoingAway, 0},
		{"server vanishes in the middle of a message", func(t testing.TB, s sides) {
			s.sc.SendFrame(false, wsframe.OpText, []byte("first half"))
			s.sc.Close()
		}, wsframe.CloseGoingAway, 0, wsframe.CloseGoingAway, 0},
		// A message above the hook limit is streamed: its first frame is forwarded at
		// once, and the rest is still to come when the other side misbehaves.
		{"server sends a masked frame while the client streams a large message", func(t testing.TB, s sides) {
			s.cl.SendFrame(false, wsframe.OpBinary, make([]byte, 70<<10))
			wsrWaitReceived(t, s.sc, 70<<10)
			frame := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpBinary, Masked: true, Length: 1})
			s.sc.SendRaw(append(frame, 1))
		}, anyCode, wsframe.CloseProtocolError, wsframe.CloseProtocolError, 64 << 10},
		// A text message streamed past the hooks is checked for UTF-8 as it passes:
		// the frame goes out (the test's receiving side rejects it itself), then
		// the sender gets 1007, as for one the hooks see.
		{"client streams text that is not UTF-8", func(t testing.TB, s sides) {
			s.cl.SendFrame(false, wsframe.OpText, wsrText(2000, "a"))
			s.cl.SendFrame(true, wsframe.OpContinuation, []byte("ok \xff"))
		}, wsframe.CloseInvalidPayload, 0, wsframe.CloseInvalidPayload, 1024},
		{"server streams text that ends inside a character", func(t testing.TB, s sides) {
			s.sc.Send(wsframe.OpText, append(wsrText(2000, "b"), 0xe2, 0x82))
		}, 0, wsframe.CloseInvalidPayload, wsframe.CloseInvalidPayload, 1024},
		{"client sends an unmasked frame while the server streams a large message", func(t testing.TB, s sides) {
			s.sc.SendFrame(false, wsframe.OpBinary, make([]byte, 70<<10))
			wsrWaitReceived(t, s.cl, 70<<10)
			frame := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpText, Length: 2})
			s.cl.SendRaw(append(frame, "hi"...))
		}, wsframe.CloseProtocolError, anyCode, wsframe.CloseProtocolError, 64 << 10},
	}
	for _, via := range []string{wsrViaConnect, wsrViaAbsolute} {
		for _, tc := range cases {
			t.Run(via+"/"+tc.name, func(t *testing.T) {
				atStart := goleak.IgnoreCurrent()
				start := time.Now()
				tp := startProxy(t, proxy.Config{MaxHookMessage: tc.hookLimit}, plugins.FailOpen)
				echo := wsrStartEcho(t, false)
				srv := wsrStartServer(t, true, nil)
				// The bystander: a connection through the same proxy (c1).
				by, _, err := tp.Dialer().Dial(echo.URL+"/bystander", nil)
				if err != nil {
					t.Fatal(err)
				}
				wsrEcho(t, by, "before")
				beforeVictim := goleak.IgnoreCurrent()

				cl := wsrRawClient(t, tp, via, srv.Addr, "/victim", nil, true)
				sc := srv.Accept(t)
				cl.AnswerClose, sc.AnswerClose = true, true
				cl.Start()
				sc.Start()
				cl.MustSend(t, wsframe.OpText, []byte("hello"))
				sc.Expect(t, wsframe.OpText, []byte("hello"))

				tc.act(t, sides{cl, sc})
				for _, side := range []struct {
					c    *wsrConn
					want wsframe.CloseCode
				}{{cl, tc.client}, {sc, tc.server}} {
					if side.want == 0 {
						side.c.WaitEnd(t)
						continue
					}
					code, reason := side.c.ExpectClose(t)
					if side.want == anyCode && !code.ValidOnWire() || side.want != anyCode && code != side.want {
						t.Errorf("%s got close %d %q, want %d", side.c.Side, code, reason, side.want)
					}
					side.c.ExpectClosedByPeer(t)
				}
				wsrWaitClose(t, tp, "c2", tc.event, wsrAnyReason, "proxy")
				wsrEcho(t, by, "after")
				if err := goleak.Find(beforeVictim); err != nil {
					t.Errorf("goroutines of the broken connection still run while the proxy serves on: %v", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("took %v", d)
				}

				by.Close()
				echo.Close()
				srv.Close()
				tp.stop()
				goleak.VerifyNone(t, atStart)
			})
		}
	}
}

// TestRelayHookFailures checks the two error policies with a hook that panics and a
// hook that returns an error.
func TestRelayHookFailures(t *testing.T) {
	failing := func(kind string) plugins.Hook {
		return plugins.HookFunc{HookName: "wsr-" + kind, Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
			if string(m.Payload) != "boom" {
				return plugins.Verdict{}, nil
			}
			if kind == "panic" {
				panic("wsr hook panics")
			}
			return plugins.Verdict{Action: plugins.Drop}, errors.New("wsr hook fails")
		}}
	}
	for _, kind := range []string{"panic", "error"} {
		t.Run("fail-open/"+kind, func(t *testing.T) {
			var seen atomic.Int64
			after := plugins.HookFunc{HookName: "wsr-after", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
				if string(m.Payload) == "boom" {
					seen.Add(1)
				}
				return plugins.Verdict{}, nil
			}}
			tp := startProxy(t, proxy.Config{}, plugins.FailOpen, failing(kind), after)
			echo := wsrStartEcho(t, false)
			c1, _, err := tp.Dialer().Dial(echo.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c2, _, err := tp.Dialer().Dial(echo.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			wsrEcho(t, c1, "boom") // fails the hook both ways, passes unmodified
			wsrEcho(t, c1, "after the failure")
			wsrEcho(t, c2, "other connection")
			if got := seen.Load(); got != 2 {
				t.Errorf("the hook after the failing one saw \"boom\" %d times, want 2 (both directions)", got)
			}
			c3, _, err := tp.Dialer().Dial(echo.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c3.Close()
			wsrEcho(t, c3, "boom")
			for _, conn := range []string{"c1", "c3"} {
				found := false
				for l := range strings.SplitSeq(tp.Logs.String(), "\n") {
					if strings.Contains(l, "plugin=wsr-"+kind) && strings.Contains(l, "conn="+conn+" ") {
						found = true
					}
				}
				if !found {
					t.Errorf("no log line names plugin wsr-%s and conn %s:\n%s", kind, conn, tp.Logs.String())
				}
			}
			if strings.Contains(tp.Logs.String(), "conn=c2 ") {
				t.Errorf("the log blames c2, whose hooks never failed")
			}
			var boom []map[string]any
			for _, ev := range wsrMessageEvents(t, tp) {
				if ev["payload"] == "boom" {
					boom = append(boom, ev)
				}
			}
			if len(boom) != 4 {
				t.Errorf("%d events for \"boom\", want 4 (two connections, both ways)", len(boom))
			}
			for _, ev := range boom {
				if ev["modified"] != false || ev["dropped"] != false || ev["hooked"] != true {
					t.Errorf("event of a message whose hook failed: %v", ev)
				}
			}
		})
	}
	for _, kind := range []string{"panic", "error"} {
		for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
			t.Run("fail-close/"+kind+"/"+dir.String(), func(t *testing.T) {
				tp := startProxy(t, proxy.Config{}, plugins.FailClose, failing(kind))
				srv := wsrStartServer(t, false, nil)
				cl := wsrRawClient(t, tp, wsrViaConnect, srv.Addr, "/", nil, false)
				sc := srv.Accept(t)
				cl.Start()
				sc.Start()
				sender, receiver := cl, sc
				if dir == plugins.ServerToClient {
					sender, receiver = sc, cl
				}
				sender.MustSend(t, wsframe.OpText, []byte("fine"))
				receiver.Expect(t, wsframe.OpText, []byte("fine"))
				sender.MustSend(t, wsframe.OpText, []byte("boom"))
				for _, c := range []*wsrConn{cl, sc} {
					if code, reason := c.ExpectClose(t); code != wsframe.CloseInternalError {
						t.Errorf("%s got close %d %q, want 1011", c.Side, code, reason)
					}
					c.ExpectClosedByPeer(t)
				}
				wsrWaitClose(t, tp, "c1", wsframe.CloseInternalError, "hook wsr-"+kind+" failed", "proxy")

				// The proxy goes on serving.
				cl2 := wsrRawClient(t, tp, wsrViaConnect, srv.Addr, "/", nil, false)
				sc2 := srv.Accept(t)
				cl2.Start()
				sc2.Start()
				cl2.MustSend(t, wsframe.OpText, []byte("still there"))
				sc2.Expect(t, wsframe.OpText, []byte("still there"))
			})
		}
	}
}

// TestRelaySizeLimits checks --max-hook-message (streamed past the hooks, logged
// truncated) and --max-message (1009).
func TestRelaySizeLimits(t *testing.T) {
	const hookLimit, msgLimit = 1 << 16, 1 << 20
	big := wsrBinary(200<<10, 1)
	small := []byte("small after big")
	cases := []struct {
		name string
		// run drives the connection and returns the expected events of each direction.
		run func(t *testing.T, tp *testProxy, srv *wsrServer) (c2s, s2c []wsrExpectEv)
	}{
		{"c2s 200 KiB in one frame", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			cl, sc := wsrPair(t, tp, srv)
			wsrSendStreamed(t, cl, sc, big)
			sc.Expect(t, wsframe.OpBinary, big)
			cl.MustSend(t, wsframe.OpText, small)
			sc.Expect(t, wsframe.OpText, small)
			return []wsrExpectEv{{Op: wsframe.OpBinary, Payload: big, Unhooked: true, Truncated: true, Frames: 1},
				{Op: wsframe.OpText, Payload: small}}, nil
		}},
		{"c2s 200 KiB in 4 KiB frames from gorilla", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			c, _, err := tp.Dialer().Dial("ws://"+srv.Addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.NetConn().SetDeadline(time.Now().Add(wsrConnTimeout))
			sc := srv.Accept(t)
			sc.Start()
			if err := c.WriteMessage(websocket.BinaryMessage, big); err != nil {
				t.Fatal(err)
			}
			sc.Expect(t, wsframe.OpBinary, big)
			if err := c.WriteMessage(websocket.TextMessage, small); err != nil {
				t.Fatal(err)
			}
			sc.Expect(t, wsframe.OpText, small)
			return []wsrExpectEv{{Op: wsframe.OpBinary, Payload: big, Unhooked: true, Truncated: true},
				{Op: wsframe.OpText, Payload: small}}, nil
		}},
		{"s2c 200 KiB in one frame", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			cl, sc := wsrPair(t, tp, srv)
			wsrSendStreamed(t, sc, cl, big)
			cl.Expect(t, wsframe.OpBinary, big)
			sc.MustSend(t, wsframe.OpText, small)
			cl.Expect(t, wsframe.OpText, small)
			return nil, []wsrExpectEv{{Op: wsframe.OpBinary, Payload: big, Unhooked: true, Truncated: true, Frames: 1},
				{Op: wsframe.OpText, Payload: small}}
		}},
		{"s2c 200 KiB in 50 KiB frames with a ping between them", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			cl, sc := wsrPair(t, tp, srv)
			const part = 50 << 10
			for i := 0; i < len(big); i += part {
				op := wsframe.OpBinary
				if i > 0 {
					op = wsframe.OpContinuation
				}
				if err := sc.SendFrame(i+part >= len(big), op, big[i:min(i+part, len(big))]); err != nil {
					t.Fatal(err)
				}
				if i == part {
					sc.MustSend(t, wsframe.OpPing, []byte("mid-message"))
				}
			}
			cl.Expect(t, wsframe.OpPing, []byte("mid-message"))
			cl.Expect(t, wsframe.OpBinary, big)
			sc.MustSend(t, wsframe.OpText, small)
			cl.Expect(t, wsframe.OpText, small)
			// A streamed message keeps its frames and the ping its place among them.
			wsrSameBytes(t, "streamed bytes", cl.Received(), sc.Sent())
			return nil, []wsrExpectEv{
				{Op: wsframe.OpPing, Payload: []byte("mid-message"), Unhooked: true},
				{Op: wsframe.OpBinary, Payload: big, Unhooked: true, Truncated: true, Frames: 4},
				{Op: wsframe.OpText, Payload: small}}
		}},
		{"c2s 200 KiB of text with a rune across the end of the preview", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			cl, sc := wsrPair(t, tp, srv)
			// The log keeps the first 4 KiB of a message that bypassed the hooks;
			// a 2-byte rune straddles that point.
			text := append(bytes.Repeat([]byte("a"), 4095), wsrText(200<<10-4095, "é")...)
			cl.MustSend(t, wsframe.OpText, text)
			sc.Expect(t, wsframe.OpText, text)
			cl.MustSend(t, wsframe.OpText, small)
			sc.Expect(t, wsframe.OpText, small)
			return []wsrExpectEv{{Op: wsframe.OpText, Payload: text, Unhooked: true, Truncated: true, Frames: 1, Encoding: "text"},
				{Op: wsframe.OpText, Payload: small}}, nil
		}},
		{"c2s 200 KiB of text in frames that cut characters", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			cl, sc := wsrPair(t, tp, srv)
			// Streamed and checked for UTF-8 piece by piece: characters cut between
			// frames (and reads) are whole again across them.
			text := wsrText(200<<10, "é✓😀")
			for i, part := 0, 70001; i < len(text); i += part {
				op := wsframe.OpText
				if i > 0 {
					op = wsframe.OpContinuation
				}
				if err := cl.SendFrame(i+part >= len(text), op, text[i:min(i+part, len(text))]); err != nil {
					t.Fatal(err)
				}
			}
			sc.Expect(t, wsframe.OpText, text)
			cl.MustSend(t, wsframe.OpText, small)
			sc.Expect(t, wsframe.OpText, small)
			return []wsrExpectEv{{Op: wsframe.OpText, Payload: text, Unhooked: true, Truncated: true, Frames: 3, Encoding: "text"},
				{Op: wsframe.OpText, Payload: small}}, nil
		}},
		{"c2s compressed, inflating to 200 KiB", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			cl, sc := wsrDeflatePair(t, tp, srv)
			p := bytes.Repeat([]byte("compressible binary payload "), 200<<10/28+1)[:200<<10]
			comp := wsrDeflate(t, p)
			if err := cl.SendCompressed(wsframe.OpBinary, comp); err != nil {
				t.Fatal(err)
			}
			// Unchanged, so the server gets the client's compressed bytes.
			if m, _ := sc.Next(t); m.Op != wsframe.OpBinary || !m.Compressed || !bytes.Equal(m.Payload, comp) {
				t.Fatalf("server got %v, want the client's compressed message", m)
			}
			cl.MustSend(t, wsframe.OpText, small)
			sc.Expect(t, wsframe.OpText, small)
			return []wsrExpectEv{{Op: wsframe.OpBinary, Payload: p, Unhooked: true, Truncated: true, Frames: 1, CheckCompressed: true, Compressed: true},
				{Op: wsframe.OpText, Payload: small}}, nil
		}},
		{"c2s exactly the message limit", func(t *testing.T, tp *testProxy, srv *wsrServer) ([]wsrExpectEv, []wsrExpectEv) {
			cl, sc := wsrPair(t, tp, srv)
			p := wsrBinary(msgLimit, 2)
			cl.MustSend(t, wsframe.OpBinary, p)
			sc.Expect(t, wsframe.OpBinary, p)
			return []wsrExpectEv{{Op: wsframe.OpBinary, Payload: p, Unhooked: true, Truncated: true, Frames: 1}}, nil
		}},
	}
	tooBig := []struct {
		name   string
		dir    plugins.Direction
		frames int
	}{
		{"c2s 2 MiB in one frame", plugins.ClientToServer, 1},
		{"c2s 2 MiB in 64 KiB frames", plugins.ClientToServer, 32},
		{"s2c 2 MiB in one frame", plugins.ServerToClient, 1},
		{"s2c 2 MiB in 64 KiB frames", plugins.ServerToClient, 32},
	}
	// newProxy returns a proxy with the limits and a hook that records the sizes it
	// sees, and a function that returns them.
	newProxy := func(t *testing.T) (*testProxy, func() []int) {
		var mu sync.Mutex
		var seen []int
		rec := plugins.HookFunc{HookName: "wsr-sizes", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
			mu.Lock()
			seen = append(seen, len(m.Payload))
			mu.Unlock()
			return plugins.Verdict{}, nil
		}}
		tp := startProxy(t, proxy.Config{MaxHookMessage: hookLimit, MaxMessage: msgLimit}, plugins.FailOpen, rec)
		return tp, func() []int {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(seen)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, hookSaw := newProxy(t)
			srv := wsrStartServer(t, true, wsrAcceptDeflate)
			c2s, s2c := tc.run(t, tp, srv)
			evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool { return len(evs) >= len(c2s)+len(s2c) })
			wsrCheckEvents(t, evs, "c1", "c2s", c2s)
			wsrCheckEvents(t, evs, "c1", "s2c", s2c)
			tp.stop()
			seen := hookSaw()
			for _, n := range seen {
				if n > hookLimit {
					t.Errorf("a hook saw a message of %d bytes, above the hook limit %d", n, hookLimit)
				}
			}
			if !slices.Contains(seen, len(small)) && tc.name != "c2s exactly the message limit" {
				t.Errorf("the hook did not see the small message after the big one (saw sizes %v)", seen)
			}
		})
	}
	for _, tc := range tooBig {
		t.Run(tc.name, func(t *testing.T) {
			tp, _ := newProxy(t)
			srv := wsrStartServer(t, false, nil)
			cl, sc := wsrPair(t, tp, srv)
			sender, other := cl, sc
			if tc.dir == plugins.ServerToClient {
				sender, other = sc, cl
			}
			p := wsrBinary(2<<20, 3)
			// The proxy stops reading mid-message, so the writes may fail or block
			// until it closes the connection.
			go func() {
				part := len(p) / tc.frames
				for i := range tc.frames {
					op := wsframe.OpBinary
					if i > 0 {
						op = wsframe.OpContinuation
					}
					if sender.SendFrame(i == tc.frames-1, op, p[i*part:(i+1)*part]) != nil {
						return
					}
				}
			}()
			if code, reason := sender.ExpectClose(t); code != wsframe.CloseMessageTooBig {
				t.Errorf("the sender got close %d %q, want 1009", code, reason)
			}
			if code, reason := other.ExpectClose(t); !code.ValidOnWire() {
				t.Errorf("the other side got close %d %q", code, reason)
			}
			sender.ExpectClosedByPeer(t)
			other.ExpectClosedByPeer(t)
			wsrWaitClose(t, tp, "c1", wsframe.CloseMessageTooBig, wsrAnyReason, "proxy")
		})
	}
	t.Run("c2s compressed, inflating past the message limit", func(t *testing.T) {
		tp, hookSaw := newProxy(t)
		srv := wsrStartServer(t, false, wsrAcceptDeflate)
		cl, sc := wsrDeflatePair(t, tp, srv)
		if err := cl.SendCompressed(wsframe.OpBinary, wsrDeflate(t, make([]byte, 2<<20))); err != nil {
			t.Fatal(err)
		}
		if code, reason := cl.ExpectClose(t); code != wsframe.CloseMessageTooBig {
			t.Errorf("the client got close %d %q, want 1009", code, reason)
		}
		// Past the hook limit the message streams, its frames forwarded as they come,
		// before it is known to inflate past the message limit: the server may get
		// them, then the close frame.
		for {
			m, ok := sc.Next(t)
			if !ok {
				t.Fatalf("server: connection ended (%v) without a close frame", sc.rerr)
			}
			if m.Op != wsframe.OpClose {
				continue
			}
			if code, reason, _ := wsframe.ParseClose(m.Payload); !code.ValidOnWire() {
				t.Errorf("the server got close %d %q", code, reason)
			}
			break
		}
		cl.ExpectClosedByPeer(t)
		sc.ExpectClosedByPeer(t)
		wsrWaitClose(t, tp, "c1", wsframe.CloseMessageTooBig, wsrAnyReason, "proxy")
		if seen := hookSaw(); len(seen) != 0 {
			t.Errorf("the hook saw messages of %v bytes", seen)
		}
	})
}

// wsrDeflatePair connects a raw client that offers permessage-deflate through CONNECT
// to srv (which must accept it) and starts both readers.
func wsrDeflatePair(t testing.TB, tp *testProxy, srv *wsrServer) (cl, sc *wsrConn) {
	t.Helper()
	cl = wsrRawClient(t, tp, wsrViaConnect, srv.Addr, "/", wstest.Header{{"Sec-WebSocket-Extensions", "permessage-deflate"}}, true)
	sc = srv.Accept(t)
	if !strings.Contains(cl.Resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("the 101 does not accept permessage-deflate: %v", cl.Resp.Header)
	}
	cl.Ext, sc.Ext = wsframe.RSV1, wsframe.RSV1
	cl.Start()
	sc.Start()
	return cl, sc
}

// wsrSendStreamed sends p from one raw endpoint to the other in a single binary frame,
// written in two halves, and checks that the first half reaches the receiver before
// the second is written: a message above the hook limit is streamed, not held.
func wsrSendStreamed(t testing.TB, from, to *wsrConn, p []byte) {
	t.Helper()
	var b bytes.Buffer
	w := wsframe.NewWriter(&b, from.Side, 0)
	if err := w.WriteMessage(wsframe.OpBinary, 0, p, nil); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	frame := b.Bytes()
	half := len(frame) / 2
	before := len(to.Received())
	if err := from.SendRaw(frame[:half]); err != nil {
		t.Fatal(err)
	}
	wsrWaitReceived(t, to, before+half)
	if err := from.SendRaw(frame[half:]); err != nil {
		t.Fatal(err)
	}
}

// wsrPair connects a raw client through CONNECT to srv and starts both readers.
func wsrPair(t testing.TB, tp *testProxy, srv *wsrServer) (cl, sc *wsrConn) {
	t.Helper()
	cl = wsrRawClient(t, tp, wsrViaConnect, srv.Addr, "/", nil, true)
	sc = srv.Accept(t)
	cl.Start()
	sc.Start()
	return cl, sc
}

// wsrCountingObserver counts the proxy's events (a proxy has no capture events).
type wsrCountingObserver struct {
	plugins.NopObserver
	opened, closed, messages, bytes atomic.Int64
}

func (o *wsrCountingObserver) Opened(*plugins.Conn, time.Time) { o.opened.Add(1) }
func (o *wsrCountingObserver) Message(r *plugins.Record) {
	o.messages.Add(1)
	o.bytes.Add(r.Len)
}
func (o *wsrCountingObserver) Closed(*plugins.Conn, plugins.CloseEvent) { o.closed.Add(1) }

// wsrLineCounter counts the lines written to it.
type wsrLineCounter struct{ n atomic.Int64 }

func (w *wsrLineCounter) Write(p []byte) (int, error) {
	w.n.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}

// TestRelayBackpressure pushes 1 GiB through the proxy to a server that reads slowly
// and checks that the heap stays small (the proxy slows the client down instead of
// buffering) and that every byte arrives in order: 1 GiB of 1 MiB messages streamed
// past the hooks (the hook limit is lower) and logged, and 256 MiB of messages
// assembled for the hooks, without the event log (formatting that much payload as
// base64 under -race would take the better part of a minute).
func TestRelayBackpressure(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB through the proxy")
	}
	t.Run("streamed past the hooks", func(t *testing.T) {
		lines := &wsrLineCounter{}
		obs := &wsrCountingObserver{}
		tp := startProxyWithEventSink(t, proxy.Config{MaxHookMessage: 64 << 10, Observer: obs}, lines, plugins.FailOpen)
		wsrBackpressure(t, tp, obs, 1024)
		// One open, 1024 messages and the client's close frame have been logged.
		wstest.Poll(wsrWait, func() bool { tp.jsonl.Flush(); return lines.n.Load() >= 1024+2 })
		if n := lines.n.Load(); n < 1024+2 {
			t.Errorf("%d event lines, want at least %d", n, 1024+2)
		}
	})
	t.Run("assembled for the hooks", func(t *testing.T) {
		var hooked atomic.Int64
		obs := &wsrCountingObserver{}
		tp := startProxyWithEventSink(t, proxy.Config{Observer: obs}, noEventLog, plugins.FailOpen, wsrCountingHook(&hooked))
		wsrBackpressure(t, tp, obs, 256)
		if n := hooked.Load(); n != 256 {
			t.Errorf("the hook saw %d messages, want 256", n)
		}
	})
}

// wsrBackpressure sends messages × 1 MiB from a raw client through tp to a raw server
// that reads slowly, sampling the heap, and checks what arrived and what obs saw.
func wsrBackpressure(t *testing.T, tp *testProxy, obs *wsrCountingObserver, messages int) {
	const (
		msgSize = 1 << 20
		chunk   = 64 << 10
		heapMax = 128 << 20
	)
	srv := wsrStartServer(t, false, nil)
	cl := wsrRawClient(t, tp, wsrViaConnect, srv.Addr, "/bulk", nil, false)
	sc := srv.Accept(t)
	cl.SetDeadline(time.Now().Add(3 * time.Minute))
	sc.SetDeadline(time.Now().Add(3 * time.Minute))

	wsrPayloads.Clear() // the memoised payloads of other tests
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopSampling) }); <-sampled }
	defer stop()
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	start := time.Now()
	table := crc32.MakeTable(crc32.Castagnoli)
	sentSum := make(chan uint32, 1)
	sendErr := make(chan error, 1)
	var sendDone atomic.Int64 // when the client wrote its last byte, since start
	go func() {
		buf := wsrBinary(msgSize, 42)
		var sum uint32
		for i := range messages {
			binary.BigEndian.PutUint64(buf, uint64(i))
			sum = crc32.Update(sum, table, buf)
			if err := cl.Send(wsframe.OpBinary, buf); err != nil {
				sendErr <- err
				return
			}
		}
		sendDone.Store(int64(time.Since(start)))
		sentSum <- sum
		sendErr <- cl.Send(wsframe.OpClose, wsframe.AppendClose(nil, wsframe.CloseNormal, "done"))
	}()

	// The slow reader: 64 KiB at a time, pausing after every 256 KiB.
	r := wsframe.NewReader(sc.Reader(), wsframe.Rules{Sender: wsframe.Client}, 0)
	buf := make([]byte, chunk)
	var sum uint32
	var total int64
	var got, chunks int
	for {
		h, err := r.NextFrame()
		if err != nil {
			t.Fatalf("server after %d messages: %v", got, err)
		}
		if h.Opcode == wsframe.OpClose {
			break
		}
		if h.Opcode != wsframe.OpBinary || !h.Fin || h.Length != msgSize {
			t.Fatalf("server got frame %+v, want whole binary messages of %d bytes", h, msgSize)
		}
		first := true
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if first {
					if n < 8 || binary.BigEndian.Uint64(buf) != uint64(got) {
						t.Fatalf("message %d arrived in position %d", binary.BigEndian.Uint64(buf), got)
					}
					first = false
				}
				sum = crc32.Update(sum, table, buf[:n])
				total += int64(n)
				if chunks++; chunks%4 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("server reading message %d: %v", got, err)
			}
		}
		got++
	}
	elapsed := time.Since(start)
	stop()
	if err := <-sendErr; err != nil {
		t.Fatalf("client: %v", err)
	}
	if want := <-sentSum; got != messages || total != int64(messages)*msgSize || sum != want {
		t.Errorf("server got %d messages, %d bytes, crc %08x; want %d, %d, %08x", got, total, sum, messages, messages*msgSize, want)
	}
	t.Logf("%d MiB in %v (%.0f MB/s), the client done %v before the server; heap before %d MiB, peak %d MiB",
		total>>20, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds()/1e6,
		(elapsed - time.Duration(sendDone.Load())).Round(time.Millisecond), base.HeapAlloc>>20, peak.Load()>>20)
	if p := peak.Load() - min(peak.Load(), base.HeapAlloc); p > heapMax {
		t.Errorf("the heap grew by %d MiB at its peak, want under %d MiB: the relay buffers instead of applying backpressure", p>>20, heapMax>>20)
	}
	sc.Send(wsframe.OpClose, wsframe.AppendClose(nil, wsframe.CloseNormal, ""))
	sc.CloseWrite()
	wstest.Poll(wsrWait, func() bool { return obs.closed.Load() != 0 })
	// 1024 data messages and two close frames.
	if o, m, c, b := obs.opened.Load(), obs.messages.Load(), obs.closed.Load(), obs.bytes.Load(); o != 1 || m != int64(messages)+2 || c != 1 || b < total {
		t.Errorf("observer saw %d opens, %d messages of %d bytes, %d closes; want 1, %d, %d+, 1", o, m, b, c, messages+2, total)
	}
}

// TestRelayInjectDuringStreamedMessage checks that a hook injecting into a direction
// that is in the middle of a streamed message (above the hook limit) does not stall
// the direction the hook runs on: the injection has to wait for the end of that
// message, the other direction does not.
func TestRelayInjectDuringStreamedMessage(t *testing.T) {
	hook := plugins.HookFunc{HookName: "wsr-inject", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		if string(m.Payload) == "inject please" {
			return plugins.Verdict{Inject: []plugins.Injection{{Dir: m.Dir.Reverse(), Opcode: wsframe.OpText, Payload: []byte("injected")}}}, nil
		}
		return plugins.Verdict{}, nil
	}}
	tp := startProxy(t, proxy.Config{MaxHookMessage: 64 << 10}, plugins.FailOpen, hook)
	srv := wsrStartServer(t, true, nil)
	cl, sc := wsrPair(t, tp, srv)

	first := wsrBinary(70<<10, 9)
	if err := cl.SendFrame(false, wsframe.OpBinary, first); err != nil {
		t.Fatal(err)
	}
	wsrWaitReceived(t, sc, len(first))
	sc.MustSend(t, wsframe.OpText, []byte("inject please"))
	sc.MustSend(t, wsframe.OpText, []byte("second"))
	stalled := false
	for _, want := range []string{"inject please", "second"} {
		m, ok, timedOut := cl.NextWithin(3 * time.Second)
		if timedOut {
			t.Errorf("the client did not get %q within 3 s: server → client is stalled while the client's own message is unfinished", want)
			stalled = true
			break
		}
		if !ok || m.Op != wsframe.OpText || string(m.Payload) != want {
			t.Fatalf("client got %v (%v), want %q", m, ok, want)
		}
	}
	if err := cl.SendFrame(true, wsframe.OpContinuation, []byte("end")); err != nil {
		t.Fatal(err)
	}
	sc.Expect(t, wsframe.OpBinary, append(slices.Clone(first), "end"...))
	sc.Expect(t, wsframe.OpText, []byte("injected"))
	if stalled {
		cl.Expect(t, wsframe.OpText, []byte("inject please"))
		cl.Expect(t, wsframe.OpText, []byte("second"))
		t.Log("… and both arrived once the client finished its message")
	}
}

// TestRelayVanishMidFrame: when a sender vanishes in the middle of a frame that is
// being streamed (above the hook limit), the receiver has part of that frame and no
// valid close frame can follow it. The receiver must get exactly the sender's bytes
// and then the end of the connection, not a close frame spliced into the payload.
func TestRelayVanishMidFrame(t *testing.T) {
	for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
		t.Run(dir.String(), func(t *testing.T) {
			tp := startProxy(t, proxy.Config{MaxHookMessage: 64 << 10}, plugins.FailOpen)
			srv := wsrStartServer(t, true, nil)
			cl, sc := wsrPair(t, tp, srv)
			from, to := cl, sc
			if dir == plugins.ServerToClient {
				from, to = sc, cl
			}
			var b bytes.Buffer
			w := wsframe.NewWriter(&b, from.Side, 0)
			w.WriteMessage(wsframe.OpBinary, 0, wsrBinary(200<<10, 11), nil)
			w.Flush()
			half := b.Bytes()[:b.Len()/2]
			if err := from.SendRaw(half); err != nil {
				t.Fatal(err)
			}
			wsrWaitReceived(t, to, len(half))
			from.Close()
			err := to.WaitEnd(t)
			got := to.Received()
			if !bytes.Equal(got, half) {
				extra := got[min(len(got), len(half)):]
				t.Errorf("the receiver got %d bytes after the half frame's %d (% x): the proxy wrote into the unfinished frame",
					len(got)-len(half), len(half), extra[:min(len(extra), 16)])
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the receiver's stream ended with %v, want the connection closed inside the frame", err)
			}
			wsrWaitClose(t, tp, "c1", wsframe.CloseGoingAway, wsrAnyReason, "proxy")
		})
	}
}

// TestRelaySeqFollowsWireOrder checks the seq of message events when injections mix
// with relayed messages: seqs stay unique and contiguous, hooks see the seq the log
// shows, and a message whose frames went out before an injection has the lower seq.
func TestRelaySeqFollowsWireOrder(t *testing.T) {
	t.Run("injection while a hook holds a message", func(t *testing.T) {
		holding, release := make(chan struct{}), make(chan struct{})
		var heldSeq atomic.Int64
		hook := plugins.HookFunc{HookName: "wsr-order", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
			switch string(m.Payload) {
			case "hold":
				heldSeq.Store(int64(m.Seq))
				close(holding)
				select {
				case <-release:
				case <-time.After(wsrWait):
				}
			case "inject":
				return plugins.Verdict{Inject: []plugins.Injection{{Dir: plugins.ServerToClient, Opcode: wsframe.OpText, Payload: []byte("injected")}}}, nil
			}
			return plugins.Verdict{}, nil
		}}
		tp := startProxy(t, proxy.Config{}, plugins.FailOpen, hook)
		srv := wsrStartServer(t, false, nil)
		cl, sc := wsrPair(t, tp, srv)
		sc.MustSend(t, wsframe.OpText, []byte("hold"))
		select {
		case <-holding:
		case <-time.After(wsrWait):
			t.Fatal("the hook did not get the message")
		}
		cl.MustSend(t, wsframe.OpText, []byte("inject"))
		sc.Expect(t, wsframe.OpText, []byte("inject"))
		cl.Expect(t, wsframe.OpText, []byte("injected")) // the held message does not block it
		close(release)
		cl.Expect(t, wsframe.OpText, []byte("hold"))
		evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool { return len(evs) == 3 })
		got := wsrDirEvents(evs, "c1", "s2c")
		if len(got) != 2 || wsrNum(got[0], "seq") != 0 || wsrNum(got[1], "seq") != 1 {
			t.Fatalf("s2c events %v, want seq 0 and 1", got)
		}
		for _, ev := range got {
			if ev["payload"] == "hold" && wsrNum(ev, "seq") != heldSeq.Load() {
				t.Errorf("the hook saw seq %d for \"hold\", the log says %v", heldSeq.Load(), ev["seq"])
			}
		}
	})
	t.Run("injection queued behind a streamed message", func(t *testing.T) {
		hook := plugins.HookFunc{HookName: "wsr-order", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
			if string(m.Payload) == "inject" {
				return plugins.Verdict{Inject: []plugins.Injection{{Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("injected")}}}, nil
			}
			return plugins.Verdict{}, nil
		}}
		tp := startProxy(t, proxy.Config{MaxHookMessage: 64 << 10}, plugins.FailOpen, hook)
		srv := wsrStartServer(t, true, nil)
		cl, sc := wsrPair(t, tp, srv)
		first := wsrBinary(70<<10, 12)
		cl.SendFrame(false, wsframe.OpBinary, first)
		wsrWaitReceived(t, sc, len(first))
		sc.MustSend(t, wsframe.OpText, []byte("inject"))
		cl.Expect(t, wsframe.OpText, []byte("inject"))
		cl.SendFrame(true, wsframe.OpContinuation, []byte("end"))
		whole := append(slices.Clone(first), "end"...)
		sc.Expect(t, wsframe.OpBinary, whole)
		sc.Expect(t, wsframe.OpText, []byte("injected"))
		evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool { return len(evs) == 3 })
		wsrCheckEvents(t, evs, "c1", "c2s", []wsrExpectEv{
			{Op: wsframe.OpBinary, Payload: whole, Unhooked: true, Truncated: true, Frames: 2},
			{Op: wsframe.OpText, Payload: []byte("injected"), Injected: true, Unhooked: true},
		})
	})
}

// TestRelayHookClosesConnection: a hook that closes the connection through its Conn
// makes both sides get a close frame with its code and reason, and the message it
// was looking at goes nowhere.
func TestRelayHookClosesConnection(t *testing.T) {
	hook := plugins.HookFunc{HookName: "wsr-closer", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		if string(m.Payload) == "close me" {
			m.Conn.Close(4400, "closed by hook")
		}
		return plugins.Verdict{}, nil
	}}
	for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
		t.Run(dir.String(), func(t *testing.T) {
			tp := startProxy(t, proxy.Config{}, plugins.FailOpen, hook)
			srv := wsrStartServer(t, false, nil)
			cl, sc := wsrPair(t, tp, srv)
			from := cl
			if dir == plugins.ServerToClient {
				from = sc
			}
			from.MustSend(t, wsframe.OpText, []byte("close me"))
			for _, c := range []*wsrConn{cl, sc} {
				if code, reason := c.ExpectClose(t); code != 4400 || reason != "closed by hook" {
					t.Errorf("%s got close %d %q, want 4400 \"closed by hook\"", c.Side, code, reason)
				}
				c.ExpectClosedByPeer(t)
			}
			wsrWaitClose(t, tp, "c1", 4400, "closed by hook", "proxy")
		})
	}
}

// TestRelayModifyFraming: a rewritten message keeps its fragmentation when its length
// did not change, and goes out in one frame when it did.
func TestRelayModifyFraming(t *testing.T) {
	hook := plugins.HookFunc{HookName: "wsr-rewrite", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		switch p := string(m.Payload); {
		case strings.HasPrefix(p, "same "):
			return plugins.Verdict{Action: plugins.Modify, Payload: []byte(strings.ToUpper(p))}, nil
		case strings.HasPrefix(p, "grow "):
			return plugins.Verdict{Action: plugins.Modify, Payload: []byte(p + " and more")}, nil
		}
		return plugins.Verdict{}, nil
	}}
	tp := startProxy(t, proxy.Config{}, plugins.FailOpen, hook)
	srv := wsrStartServer(t, false, nil)
	cl, sc := wsrPair(t, tp, srv)
	for _, tc := range []struct {
		pieces []string
		want   string
		frames int
	}{
		{[]string{"same ", "length", " ✓"}, "SAME LENGTH ✓", 3},
		{[]string{"grow ", "longer"}, "grow longer and more", 1},
	} {
		for i, piece := range tc.pieces {
			op := wsframe.OpText
			if i > 0 {
				op = wsframe.OpContinuation
			}
			if err := cl.SendFrame(i == len(tc.pieces)-1, op, []byte(piece)); err != nil {
				t.Fatal(err)
			}
		}
		m, ok := sc.Next(t)
		if !ok || m.Op != wsframe.OpText || string(m.Payload) != tc.want || m.Frames != tc.frames {
			t.Errorf("server got %v, want %q in %d frames", m, tc.want, tc.frames)
		}
	}
	evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool { return len(evs) == 2 })
	wsrCheckEvents(t, evs, "c1", "c2s", []wsrExpectEv{
		{Op: wsframe.OpText, Payload: []byte("SAME LENGTH ✓"), Modified: true, Frames: 3},
		{Op: wsframe.OpText, Payload: []byte("grow longer and more"), Modified: true, Frames: 2},
	})
}
