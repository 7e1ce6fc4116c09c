package wsframe_test

// Helpers for interop_test.go: hand-made HTTP upgrades on both sides, adapters over the
// gorilla and coder peers, and a link that ties one wsframe endpoint to one peer over
// loopback TCP. Every name starts with "iop" so the package's other test files stay
// free to pick theirs.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/wsframe"
)

// iopTimeout bounds every connection (read and write deadlines) and every peer context.
const iopTimeout = 15 * time.Second

// iopDialRaw does the client side of the opening handshake by hand: a GET with the
// Upgrade headers, a random key and, when offer is not empty, a
// Sec-WebSocket-Extensions offer. It returns the connection, the bufio.Reader that read
// the 101 (which may already hold the first frames: read frames from it, not from the
// connection) and the response.
func iopDialRaw(t *testing.T, addr, offer string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, iopTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(iopTimeout))
	key := wstest.NewKey()
	hdr := wstest.UpgradeHeader(key)
	if offer != "" {
		hdr = append(hdr, [2]string{"Sec-WebSocket-Extensions", offer})
	}
	br, resp, err := wstest.ClientHandshake(conn, "/ws", addr, key, hdr, nil)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn, br, resp
}

// iopAcceptRaw does the server side of the opening handshake by hand on the next
// connection of ln. respond gets the client's Sec-WebSocket-Extensions values and
// returns the value to answer with ("" for none). It returns the connection, the
// bufio.Reader that read the request (frames must be read from it), the request and
// the extension answer.
func iopAcceptRaw(t *testing.T, ln net.Listener, respond func(offer []string) string) (net.Conn, *bufio.Reader, *http.Request, string) {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(iopTimeout))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	conn.SetDeadline(time.Now().Add(iopTimeout))
	ext := ""
	br, req, err := wstest.ServerHandshake(conn, func(req *http.Request) wstest.Header {
		if respond != nil {
			ext = respond(req.Header.Values("Sec-WebSocket-Extensions"))
		}
		if ext == "" {
			return nil
		}
		return wstest.Header{{"Sec-WebSocket-Extensions", ext}}
	})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn, br, req, ext
}

// iopMsg is one data message of a test script.
type iopMsg struct {
	name    string
	op      wsframe.Opcode
	payload []byte
	// chunks: the peer writes the message in pieces of these sizes through its
	// streaming writer (gorilla NextWriter, coder Writer), which makes several frames.
	chunks []int
	// frames: wsframe writes the message as frames of these payload sizes.
	frames []int
	// plain: in compression tests, wsframe sends this message without compressing it.
	plain bool
	// midPing: gorilla sends a ping with this payload after the first midPingAfter
	// chunks, between two frames of the message (gorilla only: coder cannot ping
	// without a concurrent reader).
	midPing      []byte
	midPingAfter int
}

// iopPieces cuts total into pieces of size n (the last one shorter).
func iopPieces(total, n int) []int {
	var p []int
	for total > 0 {
		k := min(n, total)
		p = append(p, k)
		total -= k
	}
	return p
}

// iopRandom returns n deterministic pseudo-random bytes.
func iopRandom(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// iopScript is the set of data messages every peer exchanges with wsframe: text with
// multi-byte UTF-8, binary messages at every length-encoding boundary and a large one,
// and messages split over several frames.
func iopScript() []iopMsg {
	msgs := []iopMsg{
		{name: "text-utf8", op: wsframe.OpText, payload: []byte("héllo wörld — 日本語 🎉 ✓")},
		{name: "text-empty", op: wsframe.OpText, payload: []byte{}},
		{name: "text-utf8-long", op: wsframe.OpText, payload: []byte(strings.Repeat("żółć 😀 Ωμέγα ", 40))},
	}
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		msgs = append(msgs, iopMsg{name: "binary-" + strconv.Itoa(n), op: wsframe.OpBinary, payload: iopRandom(uint64(n), n)})
	}
	frag := iopRandom(5000, 5000)
	msgs = append(msgs, iopMsg{
		name: "binary-fragmented-5000", op: wsframe.OpBinary, payload: frag,
		chunks: iopPieces(len(frag), 300), frames: []int{1000, 0, 4000},
	})
	// Fragment boundaries that cut through UTF-8 sequences are legal (RFC 6455 §5.6).
	runes := []byte(strings.Repeat("日本語", 100)) // 900 bytes, 3 per rune
	msgs = append(msgs, iopMsg{
		name: "text-fragmented-mid-rune", op: wsframe.OpText, payload: runes,
		chunks: iopPieces(len(runes), 301), frames: []int{1, 298, 1, 600},
	})
	big := iopRandom(77, 1<<20)
	msgs = append(msgs, iopMsg{
		name: "binary-fragmented-1MiB", op: wsframe.OpBinary, payload: big,
		chunks: iopPieces(len(big), 100000), frames: []int{1 << 19, 0, 1 << 19},
	})
	return msgs
}

// iopPeerConn is an upgraded connection of a real peer library.
type iopPeerConn interface {
	// Send sends m, through the streaming writer in m.chunks when set.
	Send(ctx context.Context, m iopMsg) error
	// Ping sends a ping; coder's waits for the matching pong.
	Ping(ctx context.Context) error
	// Close starts the closing handshake and waits for the echo, which must carry code.
	Close(ctx context.Context, code int, reason string) error
	// Read returns the next data message.
	Read(ctx context.Context) (wsframe.Opcode, []byte, error)
	// Pings and Pongs are the payloads of the pings and pongs the peer received.
	Pings() [][]byte
	Pongs() [][]byte
	// Abort closes the TCP connection.
	Abort()
}

// iopPingPayload is the payload of the first ping each peer sends: gorilla's is ours,
// coder's Ping sends its ping counter in decimal.
var iopPingPayload = map[string][]byte{
	"gorilla": []byte("gorilla ping ✓"),
	"coder":   []byte("1"),
}

// iopRecorder records control frame payloads from the peers' callbacks.
type iopRecorder struct {
	mu           sync.Mutex
	pings, pongs [][]byte
}

func (r *iopRecorder) ping(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pings = append(r.pings, bytes.Clone(p))
}

func (r *iopRecorder) pong(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pongs = append(r.pongs, bytes.Clone(p))
}

func (r *iopRecorder) Pings() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return iopCloneAll(r.pings)
}

func (r *iopRecorder) Pongs() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return iopCloneAll(r.pongs)
}

func iopCloneAll(s [][]byte) [][]byte { return append([][]byte(nil), s...) }

func iopDeadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(iopTimeout)
}

// iopGorilla adapts a gorilla connection.
type iopGorilla struct {
	iopRecorder
	c *websocket.Conn
}

func newIopGorilla(c *websocket.Conn) *iopGorilla {
	g := &iopGorilla{c: c}
	c.SetPingHandler(func(s string) error {
		g.ping([]byte(s))
		err := c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(iopTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	c.SetPongHandler(func(s string) error {
		g.pong([]byte(s))
		return nil
	})
	return g
}

func (g *iopGorilla) Send(ctx context.Context, m iopMsg) error {
	g.c.SetWriteDeadline(iopDeadline(ctx))
	if m.chunks == nil {
		return g.c.WriteMessage(int(m.op), m.payload)
	}
	w, err := g.c.NextWriter(int(m.op))
	if err != nil {
		return err
	}
	p := m.payload
	for i, n := range m.chunks {
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if m.midPing != nil && i+1 == m.midPingAfter {
			// WriteControl may be used while a message writer is open.
			if err := g.c.WriteControl(websocket.PingMessage, m.midPing, iopDeadline(ctx)); err != nil {
				return err
			}
		}
	}
	return w.Close()
}

func (g *iopGorilla) Ping(ctx context.Context) error {
	return g.c.WriteControl(websocket.PingMessage, iopPingPayload["gorilla"], iopDeadline(ctx))
}

func (g *iopGorilla) Close(ctx context.Context, code int, reason string) error {
	if err := g.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), iopDeadline(ctx)); err != nil {
		return fmt.Errorf("write close: %w", err)
	}
	g.c.SetReadDeadline(iopDeadline(ctx))
	typ, p, err := g.c.ReadMessage()
	if err == nil {
		return fmt.Errorf("data message (type %d, %d bytes) instead of the close echo", typ, len(p))
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		return fmt.Errorf("waiting for the close echo: %w", err)
	}
	if ce.Code != code {
		return fmt.Errorf("close echo with code %d, want %d", ce.Code, code)
	}
	return nil
}

func (g *iopGorilla) Read(ctx context.Context) (wsframe.Opcode, []byte, error) {
	g.c.SetReadDeadline(iopDeadline(ctx))
	typ, p, err := g.c.ReadMessage()
	return wsframe.Opcode(typ), p, err
}

func (g *iopGorilla) Abort() { g.c.Close() }

// iopCoder adapts a coder connection.
type iopCoder struct {
	iopRecorder
	c *coder.Conn
}

func (k *iopCoder) onPing(_ context.Context, p []byte) bool { k.ping(p); return true }
func (k *iopCoder) onPong(_ context.Context, p []byte)      { k.pong(p) }

func (k *iopCoder) Send(ctx context.Context, m iopMsg) error {
	typ := coder.MessageType(m.op)
	if m.chunks == nil {
		return k.c.Write(ctx, typ, m.payload)
	}
	w, err := k.c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	p := m.payload
	for _, n := range m.chunks {
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return w.Close()
}

// Ping sends a ping and waits for the pong. coder needs a concurrent reader for the
// pong: CloseRead provides one, after which no data message may arrive.
func (k *iopCoder) Ping(ctx context.Context) error {
	k.c.CloseRead(ctx)
	return k.c.Ping(ctx)
}

func (k *iopCoder) Close(_ context.Context, code int, reason string) error {
	// Close returns nil only when the echo carries code.
	return k.c.Close(coder.StatusCode(code), reason)
}

func (k *iopCoder) Read(ctx context.Context) (wsframe.Opcode, []byte, error) {
	typ, p, err := k.c.Read(ctx)
	return wsframe.Opcode(typ), p, err
}

func (k *iopCoder) Abort() { k.c.CloseNow() }

// iopCloseOf extracts the code and reason of a close error from either peer library.
func iopCloseOf(err error) (code int, reason string, ok bool) {
	var ge *websocket.CloseError
	if errors.As(err, &ge) {
		return ge.Code, ge.Text, true
	}
	if code := coder.CloseStatus(err); code != -1 {
		var ce coder.CloseError
		errors.As(err, &ce)
		return int(code), ce.Reason, true
	}
	return 0, "", false
}

// iopSetup describes a link between wsframe and a peer.
type iopSetup struct {
	peer     string       // "gorilla" or "coder"
	peerSide wsframe.Side // the role the peer plays; wsframe plays the other
	compress bool         // negotiate permessage-deflate (gorilla: EnableCompression; coder: context takeover)
	bufSize  int          // gorilla read and write buffer size (0: gorilla's default)
	record   io.Writer    // if set, gets a copy of every byte the wsframe Reader reads
}

func (s iopSetup) name() string { return s.peer + "-" + s.peerSide.String() }

// iopLink is the wsframe end of a connection to a peer, with the peer running in
// its own goroutine.
type iopLink struct {
	t       *testing.T
	conn    net.Conn
	r       *wsframe.Reader
	w       *wsframe.Writer
	side    wsframe.Side // wsframe's role
	deflate bool
	params  wsframe.DeflateParams

	cancel context.CancelFunc
	errc   chan error
	done   bool
	perr   error
	srv    *httptest.Server
	ln     net.Listener
}

// iopConnect connects a wsframe endpoint to the peer s describes over loopback TCP and
// runs peerFn with the peer's connection in another goroutine; the peer's connection is
// closed when peerFn returns. The caller must defer link.close().
func iopConnect(t *testing.T, s iopSetup, peerFn func(ctx context.Context, p iopPeerConn) error) *iopLink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), iopTimeout)
	l := &iopLink{t: t, cancel: cancel, errc: make(chan error, 1)}
	connected := false
	defer func() {
		if !connected { // a failed handshake: t.Fatal is unwinding
			l.close()
		}
	}()
	run := func(p iopPeerConn) {
		defer p.Abort()
		l.errc <- peerFn(ctx, p)
	}
	const offer = "permessage-deflate; client_max_window_bits"
	var rules wsframe.Rules
	if s.peerSide == wsframe.Server {
		l.side = wsframe.Client
		var once sync.Once
		l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			first := false
			once.Do(func() { first = true })
			if !first {
				http.Error(w, "one connection per test", http.StatusServiceUnavailable)
				return
			}
			switch s.peer {
			case "gorilla":
				up := websocket.Upgrader{
					ReadBufferSize: s.bufSize, WriteBufferSize: s.bufSize,
					EnableCompression: s.compress,
					CheckOrigin:       func(*http.Request) bool { return true },
				}
				c, err := up.Upgrade(w, r, nil)
				if err != nil {
					l.errc <- fmt.Errorf("gorilla upgrade: %w", err)
					return
				}
				run(newIopGorilla(c))
			case "coder":
				k := &iopCoder{}
				opts := &coder.AcceptOptions{OnPingReceived: k.onPing, OnPongReceived: k.onPong}
				if s.compress {
					opts.CompressionMode = coder.CompressionContextTakeover
				}
				c, err := coder.Accept(w, r, opts)
				if err != nil {
					l.errc <- fmt.Errorf("coder accept: %w", err)
					return
				}
				c.SetReadLimit(4 << 20)
				k.c = c
				run(k)
			}
		}))
		o := ""
		if s.compress {
			o = offer
		}
		conn, br, resp := iopDialRaw(t, l.srv.Listener.Addr().String(), o)
		l.conn = conn
		if s.compress {
			params, ok, err := wsframe.NegotiateDeflate([]string{o}, resp.Header.Values("Sec-WebSocket-Extensions"))
			if err != nil || !ok {
				t.Fatalf("NegotiateDeflate(%q, %q) = %v, %v", o, resp.Header.Values("Sec-WebSocket-Extensions"), ok, err)
			}
			l.deflate, l.params = true, params
			rules.Extensions = wsframe.RSV1
		}
		rules.Sender = wsframe.Server
		l.r = wsframe.NewReader(iopSource(br, s.record), rules, 0)
	} else {
		l.side = wsframe.Server
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.ln = ln
		url := "ws://" + ln.Addr().String() + "/ws"
		go func() {
			switch s.peer {
			case "gorilla":
				d := websocket.Dialer{
					HandshakeTimeout: iopTimeout,
					ReadBufferSize:   s.bufSize, WriteBufferSize: s.bufSize,
					EnableCompression: s.compress,
				}
				c, _, err := d.DialContext(ctx, url, nil)
				if err != nil {
					l.errc <- fmt.Errorf("gorilla dial: %w", err)
					return
				}
				run(newIopGorilla(c))
			case "coder":
				k := &iopCoder{}
				opts := &coder.DialOptions{OnPingReceived: k.onPing, OnPongReceived: k.onPong}
				if s.compress {
					opts.CompressionMode = coder.CompressionContextTakeover
				}
				c, _, err := coder.Dial(ctx, url, opts)
				if err != nil {
					l.errc <- fmt.Errorf("coder dial: %w", err)
					return
				}
				c.SetReadLimit(4 << 20)
				k.c = c
				run(k)
			}
		}()
		var offers []string
		respond := func(offer []string) string {
			offers = offer
			if !s.compress {
				return ""
			}
			exts, err := wsframe.ParseExtensions(offer)
			if err != nil || len(exts) == 0 || exts[0].Name != wsframe.DeflateName {
				return ""
			}
			if s.peer == "gorilla" {
				// gorilla insists on both no_context_takeover parameters.
				return wsframe.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}.String()
			}
			return wsframe.DeflateParams{}.String() // context takeover both ways
		}
		conn, br, _, ext := iopAcceptRaw(t, ln, respond)
		l.conn = conn
		if s.compress {
			params, ok, err := wsframe.NegotiateDeflate(offers, []string{ext})
			if err != nil || !ok {
				t.Fatalf("NegotiateDeflate(%q, %q) = %v, %v", offers, ext, ok, err)
			}
			l.deflate, l.params = true, params
			rules.Extensions = wsframe.RSV1
		}
		rules.Sender = wsframe.Client
		l.r = wsframe.NewReader(iopSource(br, s.record), rules, 0)
	}
	l.w = wsframe.NewWriter(l.conn, l.side, 0)
	connected = true
	return l
}

// iopSource is what the wsframe Reader reads: the handshake's bufio.Reader, copied to
// record when it is set.
func iopSource(br *bufio.Reader, record io.Writer) io.Reader {
	if record == nil {
		return br
	}
	return io.TeeReader(br, record)
}

// wait returns peerFn's result, waiting at most iopTimeout for it.
func (l *iopLink) wait() error {
	if l.done {
		return l.perr
	}
	select {
	case l.perr = <-l.errc:
	case <-time.After(iopTimeout):
		l.perr = errors.New("peer did not finish in time")
	}
	l.done = true
	return l.perr
}

// close closes the wsframe end, waits for the peer and shuts the server down. A peer
// error that nobody collected with wait is logged.
func (l *iopLink) close() {
	if l.conn != nil {
		l.conn.Close()
	}
	if l.ln != nil {
		l.ln.Close()
	}
	l.cancel()
	collected := l.done
	if err := l.wait(); err != nil && !collected {
		l.t.Logf("peer: %v", err)
	}
	if l.srv != nil {
		l.srv.Close()
	}
}

// read returns the next message or control frame, failing the test on error.
func (l *iopLink) read(a *wsframe.Assembler, what string) *wsframe.Message {
	l.t.Helper()
	m, err := a.ReadMessage(l.r)
	if err != nil {
		// The peer's own account of what went wrong usually explains the error.
		l.conn.Close()
		l.t.Fatalf("%s: ReadMessage: %v (peer: %v)", what, err, l.wait())
	}
	return m
}

// write writes one message, failing the test on error.
func (l *iopLink) write(op wsframe.Opcode, rsv uint8, payload []byte, sizes []int) {
	l.t.Helper()
	if err := l.w.WriteMessage(op, rsv, payload, sizes); err != nil {
		l.t.Fatalf("WriteMessage(%s, %d bytes): %v", op, len(payload), err)
	}
}

func (l *iopLink) flush() {
	l.t.Helper()
	if err := l.w.Flush(); err != nil {
		l.t.Fatalf("Flush: %v", err)
	}
}

// expectEOF checks that the peer closed the TCP connection after the closing
// handshake, with nothing more on the wire.
func (l *iopLink) expectEOF() {
	l.t.Helper()
	if h, err := l.r.NextFrame(); err == nil || !errors.Is(err, io.EOF) {
		l.t.Errorf("after the closing handshake: NextFrame = %+v, %v; want io.EOF", h, err)
	}
}

// checkFrames checks the frame headers of a data message against its payload and
// the rules of RFC 6455 §5.4 and RFC 7692 §6 as seen from a peer sending as from.
func iopCheckFrames(t *testing.T, what string, m *wsframe.Message, from wsframe.Side) {
	t.Helper()
	var total uint64
	for i, h := range m.Frames {
		total += h.Length
		wantOp := wsframe.OpContinuation
		if i == 0 {
			wantOp = m.Opcode
		}
		if h.Opcode != wantOp {
			t.Errorf("%s: frame %d opcode %s, want %s", what, i, h.Opcode, wantOp)
		}
		if h.Fin != (i == len(m.Frames)-1) {
			t.Errorf("%s: frame %d of %d has FIN=%v", what, i, len(m.Frames), h.Fin)
		}
		if h.Masked != (from == wsframe.Client) {
			t.Errorf("%s: frame %d masked=%v from a %s", what, i, h.Masked, from)
		}
		wantRsv := uint8(0)
		if i == 0 && m.Compressed {
			wantRsv = wsframe.RSV1
		}
		if h.Rsv != wantRsv {
			t.Errorf("%s: frame %d RSV 0x%02X, want 0x%02X", what, i, h.Rsv, wantRsv)
		}
	}
	if total != uint64(len(m.Wire)) {
		t.Errorf("%s: frame lengths add up to %d, wire payload is %d bytes", what, total, len(m.Wire))
	}
	if !m.Compressed && !bytes.Equal(m.Wire, m.Payload) {
		t.Errorf("%s: uncompressed message with Wire != Payload", what)
	}
}

// iopDiff describes the first difference between two payloads.
func iopDiff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("%d bytes, want %d; first difference at offset %d", len(got), len(want), i)
}
