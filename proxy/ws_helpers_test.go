package proxy_test

// Helpers for ws_test.go: a raw WebSocket endpoint (wsrConn) that records every byte it
// reads and writes after the handshake, a raw server and raw clients (through CONNECT
// or with an absolute-form request) that do the HTTP upgrade by hand, a byte-recording
// net.Conn for gorilla, a gorilla echo server, and checks of the JSONL event log.
// Every name starts with "wsr" so the package's other test files stay free to pick
// theirs.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/wsframe"
)

// wsrConnTimeout is the deadline of every raw connection: no test can hang on one.
const wsrConnTimeout = 60 * time.Second

// wsrWait bounds each wait for something a peer should do promptly.
const wsrWait = 10 * time.Second

// wsrRecorder collects bytes; safe for concurrent use. A nil *wsrRecorder records
// nothing.
type wsrRecorder struct {
	mu sync.Mutex
	b  []byte
}

func (r *wsrRecorder) Write(p []byte) (int, error) {
	if r != nil {
		r.mu.Lock()
		r.b = append(r.b, p...)
		r.mu.Unlock()
	}
	return len(p), nil
}

// Bytes returns a copy of what was recorded.
func (r *wsrRecorder) Bytes() []byte {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.b)
}

// wsrRecConn is a net.Conn that records every byte read from and written to it.
type wsrRecConn struct {
	net.Conn
	rd, wr wsrRecorder
}

func (c *wsrRecConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rd.Write(p[:n])
	return n, err
}

func (c *wsrRecConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.wr.Write(p[:n])
	return n, err
}

// wsrAfterHead returns what follows the HTTP head that starts at the first occurrence
// of startLine in b (up to and including its empty line), or nil, false.
func wsrAfterHead(b []byte, startLine string) ([]byte, bool) {
	i := bytes.Index(b, []byte(startLine))
	if i < 0 {
		return nil, false
	}
	j := bytes.Index(b[i:], []byte("\r\n\r\n"))
	if j < 0 {
		return nil, false
	}
	return b[i+j+4:], true
}

// wsrSameBytes fails the test when got and want differ, showing where.
func wsrSameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	win := func(b []byte) []byte { return b[i:min(len(b), i+24)] }
	t.Errorf("%s: %d bytes, want %d; first difference at offset %d:\n got  % x\n want % x",
		what, len(got), len(want), i, win(got), win(want))
}

// wsrMsg is a message (or control frame) a raw endpoint received.
type wsrMsg struct {
	Op         wsframe.Opcode
	Payload    []byte
	Frames     int
	Compressed bool
}

func (m wsrMsg) String() string {
	p := m.Payload
	if len(p) > 40 {
		p = p[:40]
	}
	return fmt.Sprintf("%s (%d bytes, %d frames) %q", m.Op, len(m.Payload), m.Frames, p)
}

// wsrConn is one raw WebSocket endpoint after the handshake. Its writes go out
// through a wsframe.Writer for Side (masked for a client); its reads, once Start is
// called, are parsed strictly (as RFC 6455 requires of the peer) by a goroutine that
// delivers every message and control frame on a channel. With recording on, every
// byte after the handshake is kept, both ways.
type wsrConn struct {
	net.Conn
	Side wsframe.Side
	Req  *http.Request  // server side: the upgrade request as it arrived
	Resp *http.Response // client side: the proxy's answer
	// Ext are the RSV bits the peer may set (wsframe.RSV1 under permessage-deflate);
	// set before Start. Compressed messages are delivered as they are on the wire.
	Ext uint8
	// AnswerClose makes the reader answer a close frame with one of its own, as
	// RFC 6455 §5.5.1 asks and real peers do (the proxy then need not wait for the
	// end of its lingering close); set before Start. Tests that script every frame
	// leave it off.
	AnswerClose bool

	src         io.Reader // the connection's bytes after the handshake (buffered ones first)
	recvd, sent *wsrRecorder

	wmu       sync.Mutex
	w         *wsframe.Writer
	closeSent bool // a close frame went out (under wmu)

	msgs  chan wsrMsg
	done  chan struct{}
	rerr  error        // why the reader stopped, once done is closed
	nread atomic.Int64 // bytes the reader has read: Next waits while they grow
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// wsrWriteRec writes to a conn and records what was written.
type wsrWriteRec struct {
	c   net.Conn
	rec *wsrRecorder
}

func (w wsrWriteRec) Write(p []byte) (int, error) {
	n, err := w.c.Write(p)
	w.rec.Write(p[:n])
	return n, err
}

func newWsrConn(c net.Conn, br *bufio.Reader, side wsframe.Side, record bool) *wsrConn {
	wc := &wsrConn{Conn: c, Side: side, msgs: make(chan wsrMsg, 1024), done: make(chan struct{})}
	if record {
		wc.recvd, wc.sent = &wsrRecorder{}, &wsrRecorder{}
	}
	wc.src = io.TeeReader(br, wc.recvd)
	wc.w = wsframe.NewWriter(wsrWriteRec{c, wc.sent}, side, 0)
	return wc
}

// Received returns the bytes read after the handshake.
func (c *wsrConn) Received() []byte { return c.recvd.Bytes() }

// Sent returns the bytes written after the handshake.
func (c *wsrConn) Sent() []byte { return c.sent.Bytes() }

// Reader returns the raw byte stream after the handshake, for tests that parse it
// themselves instead of calling Start.
func (c *wsrConn) Reader() io.Reader { return c.src }

func (c *wsrConn) peer() wsframe.Side {
	if c.Side == wsframe.Client {
		return wsframe.Server
	}
	return wsframe.Client
}

// Start runs the reader goroutine.
func (c *wsrConn) Start() {
	go func() {
		defer close(c.done)
		defer close(c.msgs)
		r := wsframe.NewReader(countingReader{c.src, &c.nread}, wsframe.Rules{Sender: c.peer(), Extensions: c.Ext}, 0)
		a := wsframe.NewAssembler(wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: 1 << 30}})
		for {
			m, err := a.ReadMessage(r)
			if err != nil {
				c.rerr = err
				return
			}
			if m.Opcode == wsframe.OpClose && c.AnswerClose {
				// Answer the close with its code, unless one was sent already.
				code, _, _ := wsframe.ParseClose(m.Payload)
				var reply []byte
				if code.ValidOnWire() {
					reply = wsframe.AppendClose(nil, code, "")
				}
				c.sendClose(reply)
			}
			c.msgs <- wsrMsg{Op: m.Opcode, Payload: slices.Clone(m.Payload), Frames: len(m.Frames), Compressed: m.Compressed}
		}
	}()
}

// Next returns the next message, or ok false when the reader stopped (see Err). It
// fails the test when wsrWait passes without a message and without a byte of one
// arriving: a large message that is still coming in (slowly, under -race on a busy
// machine) is waited for, up to wsrConnTimeout.
func (c *wsrConn) Next(t testing.TB) (m wsrMsg, ok bool) {
	t.Helper()
	start, seen := time.Now(), c.nread.Load()
	for {
		select {
		case m, ok = <-c.msgs:
			return m, ok
		case <-time.After(wsrWait):
			n := c.nread.Load()
			if n == seen || time.Since(start) > wsrConnTimeout {
				t.Fatalf("%s: no message within %v, and no bytes of one for %v", c.Side, time.Since(start).Round(time.Second), wsrWait)
			}
			seen = n
		}
	}
}

// Expect reads the next message and checks its opcode and payload.
func (c *wsrConn) Expect(t testing.TB, op wsframe.Opcode, payload []byte) {
	t.Helper()
	m, ok := c.Next(t)
	if !ok {
		t.Fatalf("%s: connection ended (%v), want %s of %d bytes", c.Side, c.rerr, op, len(payload))
	}
	if m.Op != op || !bytes.Equal(m.Payload, payload) {
		t.Fatalf("%s received %v, want %s of %d bytes", c.Side, m, op, len(payload))
	}
}

// ExpectClose reads the next message, which must be a close frame, and returns its
// code and reason.
func (c *wsrConn) ExpectClose(t testing.TB) (wsframe.CloseCode, string) {
	t.Helper()
	m, ok := c.Next(t)
	if !ok {
		t.Fatalf("%s: connection ended (%v) without a close frame", c.Side, c.rerr)
	}
	if m.Op != wsframe.OpClose {
		t.Fatalf("%s received %v, want a close frame", c.Side, m)
	}
	code, reason, err := wsframe.ParseClose(m.Payload)
	if err != nil {
		t.Fatalf("%s: close payload % x: %v", c.Side, m.Payload, err)
	}
	return code, reason
}

// WaitEnd waits until the reader stops and returns why; it fails the test if the
// connection is still open after wsrWait.
func (c *wsrConn) WaitEnd(t testing.TB) error {
	t.Helper()
	select {
	case <-c.done:
		return c.rerr
	case <-time.After(wsrWait):
		t.Fatalf("%s: connection still open after %v", c.Side, wsrWait)
	}
	return nil
}

// ExpectClosedByPeer waits for the end of the stream and checks that the peer closed
// the TCP connection (EOF or reset), with no message left unread.
func (c *wsrConn) ExpectClosedByPeer(t testing.TB) {
	t.Helper()
	for {
		select {
		case m, ok := <-c.msgs:
			if ok {
				t.Errorf("%s: unexpected %v before the end of the connection", c.Side, m)
				continue
			}
			if err := c.rerr; !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s: connection ended with %v, want EOF from the proxy closing it", c.Side, err)
			}
			return
		case <-time.After(wsrWait):
			t.Fatalf("%s: the proxy did not close the connection within %v", c.Side, wsrWait)
		}
	}
}

// sendClose sends a close frame with payload, unless one went out already.
func (c *wsrConn) sendClose(payload []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return
	}
	c.closeSent = true
	if c.w.WriteMessage(wsframe.OpClose, 0, payload, nil) == nil {
		c.w.Flush()
	}
}

// Send writes a whole message in one frame and flushes it.
func (c *wsrConn) Send(op wsframe.Opcode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.closeSent = c.closeSent || op == wsframe.OpClose
	if err := c.w.WriteMessage(op, 0, payload, nil); err != nil {
		return err
	}
	return c.w.Flush()
}

// SendFrame writes one frame (masked with a fresh key by a client) and flushes it.
func (c *wsrConn) SendFrame(fin bool, op wsframe.Opcode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.closeSent = c.closeSent || op == wsframe.OpClose
	h := wsframe.Header{Fin: fin, Opcode: op, Masked: c.Side == wsframe.Client}
	if h.Masked {
		h.Mask = c.w.NewMaskKey()
	}
	if err := c.w.WriteFrame(h, payload); err != nil {
		return err
	}
	return c.w.Flush()
}

// SendCompressed writes a message whose payload is already deflated (RSV1 set).
func (c *wsrConn) SendCompressed(op wsframe.Opcode, deflated []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.w.WriteMessage(op, wsframe.RSV1, deflated, nil); err != nil {
		return err
	}
	return c.w.Flush()
}

// SendRaw writes bytes as they are.
func (c *wsrConn) SendRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := wsrWriteRec{c.Conn, c.sent}.Write(b)
	return err
}

// MustSend is Send that fails the test on an error.
func (c *wsrConn) MustSend(t testing.TB, op wsframe.Opcode, payload []byte) {
	t.Helper()
	if err := c.Send(op, payload); err != nil {
		t.Fatalf("%s: send %s: %v", c.Side, op, err)
	}
}

// CloseWrite half-closes the TCP connection (FIN), so the reader still sees what the
// proxy sends afterwards.
func (c *wsrConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// wsrServer is a raw WebSocket server: it answers each upgrade by hand with a 101 and
// hands the connection to the test.
type wsrServer struct {
	ln      net.Listener
	Addr    string
	respond func(req *http.Request) []string // extra header lines for the 101
	record  bool
	conns   chan *wsrConn
	mu      sync.Mutex
	all     []net.Conn
	wg      sync.WaitGroup
}

// wsrStartServer starts a raw server; respond, when not nil, returns extra header
// lines ("Name: value") for the 101 of a request. Everything is closed when the test
// ends.
func wsrStartServer(t testing.TB, record bool, respond func(req *http.Request) []string) *wsrServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &wsrServer{ln: ln, Addr: ln.Addr().String(), respond: respond, record: record, conns: make(chan *wsrConn, 16)}
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
			s.wg.Go(func() { s.handshake(c) })
		}
	})
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and closes every connection it accepted.
func (s *wsrServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.all {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *wsrServer) handshake(c net.Conn) {
	br, req, err := wstest.ServerHandshake(c, func(req *http.Request) wstest.Header {
		var h wstest.Header
		if s.respond != nil {
			for _, l := range s.respond(req) {
				name, value, _ := strings.Cut(l, ": ")
				h = append(h, [2]string{name, value})
			}
		}
		return h
	})
	if err != nil {
		c.Close()
		return
	}
	wc := newWsrConn(c, br, wsframe.Server, s.record)
	wc.Req = req
	s.conns <- wc
}

// Accept returns the next upgraded connection.
func (s *wsrServer) Accept(t testing.TB) *wsrConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(wsrWait):
		t.Fatalf("raw server: no upgraded connection within %v", wsrWait)
	}
	return nil
}

// wsrDialContext returns a DialContext for http.Transport that reaches every address
// through a CONNECT tunnel of the proxy, as browsers do for ws:// and wss://.
func wsrDialContext(proxyAddr string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return wstest.ConnectTunnel(ctx, proxyAddr, addr)
	}
}

// wsrUpgrade sends an upgrade request for target (origin-form or absolute-form) with
// exactly the given header lines after Host, and early (frames) in the same write,
// reads the answer, and returns the endpoint; it fails the test unless the answer is
// a valid 101 for key.
func wsrUpgrade(t testing.TB, c net.Conn, target, host, key string, hdr wstest.Header, early []byte, record bool) *wsrConn {
	t.Helper()
	c.SetDeadline(time.Now().Add(wsrConnTimeout))
	br, resp, err := wstest.ClientHandshake(c, target, host, key, hdr, early)
	if err != nil {
		t.Fatal(err)
	}
	wc := newWsrConn(c, br, wsframe.Client, record)
	wc.Resp = resp
	return wc
}

// Ways a raw client reaches a ws:// server through the proxy.
const (
	wsrViaConnect  = "CONNECT"
	wsrViaAbsolute = "absolute-form"
)

// wsrRawClient connects a raw client to ws://serverAddr+path through the proxy, either
// inside a CONNECT tunnel (origin-form request) or with an absolute-form request sent
// straight to the proxy, with hdr after the standard upgrade headers.
func wsrRawClient(t testing.TB, tp *testProxy, via, serverAddr, path string, hdr wstest.Header, record bool) *wsrConn {
	t.Helper()
	return wsrRawClientEarly(t, tp, via, serverAddr, path, hdr, nil, record)
}

// wsrRawClientEarly is wsrRawClient that sends early (frames) in the same write as
// the upgrade request, as a client may.
func wsrRawClientEarly(t testing.TB, tp *testProxy, via, serverAddr, path string, hdr wstest.Header, early []byte, record bool) *wsrConn {
	t.Helper()
	key := wstest.NewKey()
	ctx, cancel := context.WithTimeout(context.Background(), wsrWait)
	defer cancel()
	var c net.Conn
	var err error
	target := path
	switch via {
	case wsrViaConnect:
		c, err = wstest.ConnectTunnel(ctx, tp.Addr, serverAddr)
	case wsrViaAbsolute:
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", tp.Addr)
		target = "ws://" + serverAddr + path
	default:
		t.Fatalf("unknown way %q", via)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return wsrUpgrade(t, c, target, serverAddr, key, append(wstest.UpgradeHeader(key), hdr...), early, record)
}

// wsrRecordingDialer returns tp's gorilla dialer whose connections record their bytes;
// last returns the most recent one.
func wsrRecordingDialer(tp *testProxy) (d *websocket.Dialer, last func() *wsrRecConn) {
	var mu sync.Mutex
	var conns []*wsrRecConn
	d = tp.Dialer()
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		rc := &wsrRecConn{Conn: c}
		mu.Lock()
		conns = append(conns, rc)
		mu.Unlock()
		return rc, nil
	}
	return d, func() *wsrRecConn {
		mu.Lock()
		defer mu.Unlock()
		if len(conns) == 0 {
			return nil
		}
		return conns[len(conns)-1]
	}
}

// wsrEchoServer is a gorilla echo server. A text message "ping me" makes it send a
// ping "server ping" before the echo. Close ends every connection it holds.
type wsrEchoServer struct {
	*httptest.Server
	URL   string // ws:// or wss://
	mu    sync.Mutex
	conns []*websocket.Conn
	wg    sync.WaitGroup
}

func wsrStartEcho(t testing.TB, tls bool) *wsrEchoServer {
	t.Helper()
	e := &wsrEchoServer{}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		e.mu.Lock()
		e.conns = append(e.conns, c)
		e.wg.Add(1)
		e.mu.Unlock()
		defer e.wg.Done()
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(wsrConnTimeout))
		for {
			mt, rd, err := c.NextReader()
			if err != nil {
				return
			}
			if mt == websocket.TextMessage {
				// Peek at short messages for the "ping me" command.
				var buf bytes.Buffer
				if _, err := io.Copy(&buf, rd); err != nil {
					return
				}
				if buf.String() == "ping me" {
					c.WriteControl(websocket.PingMessage, []byte("server ping"), time.Now().Add(wsrWait))
				}
				rd = &buf
			}
			wr, err := c.NextWriter(mt)
			if err != nil {
				return
			}
			if _, err := io.Copy(wr, rd); err != nil {
				return
			}
			if err := wr.Close(); err != nil {
				return
			}
		}
	})
	if tls {
		e.Server = httptest.NewTLSServer(h)
		e.URL = "wss" + strings.TrimPrefix(e.Server.URL, "https")
	} else {
		e.Server = httptest.NewServer(h)
		e.URL = "ws" + strings.TrimPrefix(e.Server.URL, "http")
	}
	t.Cleanup(e.Close)
	return e
}

// Close stops the server and ends its WebSocket handlers.
func (e *wsrEchoServer) Close() {
	e.Server.Close()
	e.mu.Lock()
	for _, c := range e.conns {
		c.NetConn().Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// wsrEcho sends msg on c and checks that the same message comes back.
func wsrEcho(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wsrWait))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("echo %q: write: %v", msg, err)
	}
	_, got, err := c.ReadMessage()
	if err != nil || string(got) != msg {
		t.Fatalf("echo %q: got %q, %v", msg, got, err)
	}
}

// wsrExpectEv is one expected "message" event.
type wsrExpectEv struct {
	Op      wsframe.Opcode
	Payload []byte
	Frames  int // checked when > 0

	Modified, Dropped, Injected bool
	// Unhooked is true for control frames and for messages above the hook limit.
	Unhooked bool
	// Truncated: the event carries only a preview of the payload.
	Truncated bool
	// Compressed is checked when CheckCompressed is set.
	Compressed, CheckCompressed bool
	// Encoding, when set, is the payload encoding the event must use.
	Encoding string
}

// wsrEvPayload decodes the payload field of an event.
func wsrEvPayload(t testing.TB, ev map[string]any) []byte {
	t.Helper()
	s, _ := ev["payload"].(string)
	switch ev["encoding"] {
	case "text":
		return []byte(s)
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("event payload is not base64: %v", err)
		}
		return b
	}
	t.Fatalf("event has encoding %v", ev["encoding"])
	return nil
}

// wsrNum returns a numeric field of an event, or -1.
func wsrNum(ev map[string]any, k string) int64 {
	f, ok := ev[k].(float64)
	if !ok {
		return -1
	}
	return int64(f)
}

// wsrDirEvents returns the message events of conn in direction dir, ordered by seq.
func wsrDirEvents(evs []map[string]any, conn, dir string) []map[string]any {
	var out []map[string]any
	for _, ev := range evs {
		if ev["conn"] == conn && ev["dir"] == dir {
			out = append(out, ev)
		}
	}
	slices.SortStableFunc(out, func(a, b map[string]any) int { return int(wsrNum(a, "seq") - wsrNum(b, "seq")) })
	return out
}

// wsrCheckEvents checks the message events of conn in direction dir against want:
// count, seq 0…n-1, opcode, len, payload, frames and flags.
func wsrCheckEvents(t testing.TB, evs []map[string]any, conn, dir string, want []wsrExpectEv) {
	t.Helper()
	got := wsrDirEvents(evs, conn, dir)
	if len(got) != len(want) {
		var ops []string
		for _, ev := range got {
			ops = append(ops, fmt.Sprintf("%v/%v", ev["opcode"], ev["len"]))
		}
		t.Errorf("%s %s: %d message events, want %d: %v", conn, dir, len(got), len(want), ops)
		return
	}
	for i, ev := range got {
		w := want[i]
		where := fmt.Sprintf("%s %s event %d", conn, dir, i)
		if seq := wsrNum(ev, "seq"); seq != int64(i) {
			t.Errorf("%s: seq %d, want %d", where, seq, i)
		}
		if ev["opcode"] != w.Op.String() {
			t.Errorf("%s: opcode %v, want %s", where, ev["opcode"], w.Op)
			continue
		}
		if n := wsrNum(ev, "len"); n != int64(len(w.Payload)) {
			t.Errorf("%s: len %d, want %d", where, n, len(w.Payload))
		}
		p := wsrEvPayload(t, ev)
		wantP := w.Payload
		if w.Truncated {
			wantP = wantP[:min(len(wantP), len(p))]
			if len(p) >= len(w.Payload) {
				t.Errorf("%s: payload of %d bytes is not a preview of %d", where, len(p), len(w.Payload))
			}
		}
		if !bytes.Equal(p, wantP) {
			t.Errorf("%s: payload of %d bytes %.40q, want %d bytes %.40q", where, len(p), p, len(wantP), wantP)
		}
		if w.Encoding != "" && ev["encoding"] != w.Encoding {
			t.Errorf("%s: payload encoding %v, want %s", where, ev["encoding"], w.Encoding)
		}
		if tr, _ := ev["truncated"].(bool); tr != w.Truncated {
			t.Errorf("%s: truncated %v, want %v", where, tr, w.Truncated)
		}
		if w.Frames > 0 && wsrNum(ev, "frames") != int64(w.Frames) {
			t.Errorf("%s: frames %v, want %d", where, ev["frames"], w.Frames)
		}
		for _, f := range []struct {
			name string
			want bool
		}{{"modified", w.Modified}, {"dropped", w.Dropped}, {"injected", w.Injected}, {"hooked", !w.Unhooked}} {
			if ev[f.name] != f.want {
				t.Errorf("%s: %s %v, want %v", where, f.name, ev[f.name], f.want)
			}
		}
		if w.CheckCompressed && ev["compressed"] != w.Compressed {
			t.Errorf("%s: compressed %v, want %v", where, ev["compressed"], w.Compressed)
		}
	}
}

// wsrWaitClose waits for the close event of conn and checks it.
func wsrWaitClose(t testing.TB, tp *testProxy, conn string, code wsframe.CloseCode, reason, by string) map[string]any {
	t.Helper()
	var mine []map[string]any
	closed := func() bool {
		mine = mine[:0]
		for _, ev := range wsrEventsOf(t, tp, "close") {
			if ev["conn"] == conn {
				mine = append(mine, ev)
			}
		}
		return len(mine) > 0
	}
	if !wstest.Poll(wsrWait, closed) {
		t.Fatalf("%s: no close event within %v", conn, wsrWait)
	}
	ev := mine[0]
	if len(mine) != 1 {
		t.Errorf("%s: %d close events, want 1: %v", conn, len(mine), mine)
	}
	if wsrNum(ev, "code") != int64(code) || (reason != "\x00" && ev["reason"] != reason) || ev["by"] != by {
		t.Errorf("%s close event: code %v reason %q by %v; want %d %q %s", conn, ev["code"], ev["reason"], ev["by"], code, reason, by)
	}
	return ev
}

// wsrEventsOf returns the events of kind, decoding only their lines: the lines of
// large messages are costly to decode under -race, and polling would decode them
// again and again.
func wsrEventsOf(t testing.TB, tp *testProxy, kind string) []map[string]any {
	t.Helper()
	if err := tp.jsonl.Flush(); err != nil {
		t.Fatal(err)
	}
	prefix := `{"event":"` + kind + `"`
	var out []map[string]any
	for line := range strings.SplitSeq(tp.events.String(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event log line is not JSON: %v\n%.200s", err, line)
		}
		out = append(out, ev)
	}
	return out
}

// wsrAnyReason in wsrWaitClose accepts any reason.
const wsrAnyReason = "\x00"

// wsrOpenEvent returns the single open event of conn.
func wsrOpenEvent(t testing.TB, tp *testProxy, conn string) map[string]any {
	t.Helper()
	var mine []map[string]any
	for _, ev := range wsrEventsOf(t, tp, "open") {
		if ev["conn"] == conn {
			mine = append(mine, ev)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("%s: %d open events, want 1", conn, len(mine))
	}
	return mine[0]
}

// wsrText returns valid UTF-8 text of exactly n bytes with multi-byte runes in it.
func wsrText(n int, seed string) []byte {
	unit := []byte(seed + " héllo wörld ✓ ")
	b := bytes.Repeat(unit, n/len(unit)+1)[:n]
	// Cut back to a rune boundary and pad with ASCII.
	i := len(b)
	for i > 0 && !utf8.RuneStart(b[i-1]) {
		i--
	}
	if i > 0 && !utf8.FullRune(b[i-1:]) {
		for j := i - 1; j < n; j++ {
			b[j] = 'x'
		}
	}
	return b
}

// wsrBinary returns n pseudo-random bytes, different for each seed: a random 4 KiB
// block repeated, each copy stamped with its index (cheap under -race).
func wsrBinary(n int, seed uint64) []byte {
	var block [4096]byte
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rand.NewChaCha8(key).Read(block[:])
	b := make([]byte, n)
	for i := 0; i < n; i += len(block) {
		m := copy(b[i:], block[:])
		if m >= 8 {
			binary.LittleEndian.PutUint64(b[i:], uint64(i)^seed)
		}
	}
	return b
}

var wsrPayloads sync.Map // "op/size/seed" → []byte

// wsrPayload returns the test payload of a data message of size bytes; the same
// arguments give the same bytes (memoised: the large ones are costly under -race).
func wsrPayload(op wsframe.Opcode, size int, seed string) []byte {
	k := fmt.Sprintf("%d/%d/%s", op, size, seed)
	if p, ok := wsrPayloads.Load(k); ok {
		return p.([]byte)
	}
	var p []byte
	if op == wsframe.OpText {
		p = wsrText(size, seed)
	} else {
		p = wsrBinary(size, uint64(size)*131+uint64(len(seed)))
	}
	wsrPayloads.Store(k, p)
	return p
}

// wsrMessageEvents returns the "message" events. It decodes a large payload without
// encoding/json when the payload needs no unescaping (encoding/json scans every byte
// of the 8 MiB payloads under -race, which costs seconds).
func wsrMessageEvents(t testing.TB, tp *testProxy) []map[string]any {
	t.Helper()
	if err := tp.jsonl.Flush(); err != nil {
		t.Fatal(err)
	}
	const prefix, field = `{"event":"message"`, `"payload":"`
	var out []map[string]any
	for line := range strings.SplitSeq(tp.events.String(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest, payload := line, ""
		if i := strings.Index(line, field); i >= 0 {
			body := line[i+len(field):]
			if j := strings.IndexByte(body, '"'); j >= 0 && strings.IndexByte(body[:j], '\\') < 0 {
				payload = body[:j]
				rest = line[:i+len(field)] + body[j:]
			}
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(rest), &ev); err != nil {
			t.Fatalf("event log line is not JSON: %v\n%.200s", err, line)
		}
		if rest != line {
			ev["payload"] = payload
		}
		out = append(out, ev)
	}
	return out
}

// wsrWaitReceived waits until c has received at least n bytes after the handshake
// (for frames its reader does not deliver yet: parts of a message).
func wsrWaitReceived(t testing.TB, c *wsrConn, n int) {
	t.Helper()
	if !wstest.Poll(wsrWait, func() bool { return len(c.Received()) >= n }) {
		t.Fatalf("%s: received %d bytes, want %d", c.Side, len(c.Received()), n)
	}
}

// NextWithin is Next with its own timeout; timedOut reports that nothing came.
func (c *wsrConn) NextWithin(d time.Duration) (m wsrMsg, ok, timedOut bool) {
	select {
	case m, ok = <-c.msgs:
		return m, ok, false
	case <-time.After(d):
		return wsrMsg{}, false, true
	}
}

// wsrRecv receives from ch within wsrWait.
func wsrRecv(t testing.TB, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(wsrWait):
		t.Fatalf("nothing received within %v", wsrWait)
	}
	return ""
}

// wsrDeflate compresses p as one permessage-deflate message without context
// takeover (RFC 7692 §7.2.1: a sync flush with its 00 00 ff ff tail removed).
func wsrDeflate(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(p)
	fw.Flush()
	out, ok := bytes.CutSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	if !ok {
		t.Fatal("deflate output does not end with a sync flush")
	}
	return out
}

// wsrAcceptDeflate is a respond function for wsrStartServer that accepts
// permessage-deflate without context takeover when the client offers it.
func wsrAcceptDeflate(req *http.Request) []string {
	if strings.Contains(req.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		return []string{"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"}
	}
	return nil
}
