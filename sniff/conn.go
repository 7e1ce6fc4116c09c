package sniff

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/wstap/wstap/internal/handshake"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Connection states.
const (
	stNew    uint8 = iota // no payload seen yet: not known what it carries
	stHTTP                // HTTP/1.x, watched for a WebSocket upgrade
	stWS                  // WebSocket: both directions go to frame decoders
	stIgnore              // something else: packets are dropped unread
	stClosed              // ended; remembered a while to absorb stray packets
)

// conn is one TCP connection. Every connection seen costs one, up to
// Config.MaxConns of them, so it holds only what every connection needs (its
// reassembly, its place in the table and the lists): a connection gets the
// state of a followed one ([follow]) when it shows HTTP or is WebSocket by its
// port, and lets go of it when it turns out to be something else.
type conn struct {
	s          *Sniffer
	key        connKey
	hnext      *conn // the next connection in the table whose key has the same hash
	prev, next *conn // in Sniffer.wsConns while WebSocket, in Sniffer.others otherwise
	last       int64 // capture time of the last packet, Unix nanoseconds
	// r[i] orders the stream sent by side i: the key's first endpoint (i=0) or
	// its second (i=1).
	r      [2]reassembler
	f      *follow
	client int8 // index of the client's side; -1 while unknown
	state  uint8
	flags  uint8
	finBy  uint8 // 1 + the index of the side whose FIN came first; 0 before any
	early  uint8 // packets seen while a direction waits for its start
	frames uint8 // for a connection not followed: what its bytes look like (frame bits)
}

// conn flags.
const (
	cWaiting uint8 = 1 << iota // side 0 is in Sniffer.waiting; cWaiting<<1 is side 1
	_
	cFlushing // side 0 is being flushed; cFlushing<<1 is side 1
	_
)

// Frame bits of conn.frames, for side 0 (side 1's are shifted by 4): whether the
// bytes of a connection that is not followed look like WebSocket frames, which
// suggests a capture that began after its handshake (Stats.NoHandshake).
const (
	frTries  uint8 = 3      // how many payloads were looked at, up to 3
	frLike   uint8 = 1 << 2 // one of them starts with frames
	frMasked uint8 = 1 << 3 // masked ones: the side is the client
)

// follow is the state of a connection that is followed: its HTTP exchange, then
// its WebSocket.
type follow struct {
	sides [2]side // sides[i] parses the stream of conn.r[i]

	queue []request // requests waiting for their response

	pc        *plugins.Conn // once WebSocket
	closeSeen bool
	closeEv   plugins.CloseEvent // from the first close frame

	order  uint64 // of the next event queued (see conn.release)
	queued int    // bytes of the events queued
}

// side is the parser of one direction of a followed connection.
type side struct {
	c   *conn
	idx int

	buf     []byte // bytes not classified or parsed yet (an HTTP header in progress)
	body    bodySkipper
	holding bool        // the client sent an upgrade request; its response decides what follows
	held    []heldPiece // what the client sent meanwhile
	heldLen int

	ws *wsDir
}

// heldPiece is data, or a gap of gap bytes.
type heldPiece struct {
	data []byte
	gap  int64
}

// The reassemblers deliver to their connection through these sinks, one type
// per side: each is a bare *conn, so that passing one as a streamSink allocates
// nothing.
type (
	sink0 struct{ c *conn }
	sink1 struct{ c *conn }
)

func (k sink0) data(p []byte, t time.Time) { k.c.data(0, p, t) }
func (k sink0) gap(n int64, t time.Time)   { k.c.gap(0, n, t) }
func (k sink0) fin()                       { k.c.fin(0) }
func (k sink1) data(p []byte, t time.Time) { k.c.data(1, p, t) }
func (k sink1) gap(n int64, t time.Time)   { k.c.gap(1, n, t) }
func (k sink1) fin()                       { k.c.fin(1) }

// sink returns what side i's reassembler delivers to.
func (c *conn) sink(i int) streamSink {
	if i == 0 {
		return sink0{c}
	}
	return sink1{c}
}

func (c *conn) addr(i int) netip.AddrPort { return c.key.addr(i) }

// sideName returns "client" or "server" for side i, or "" while roles are unknown.
func (c *conn) sideName(i int) string {
	switch {
	case c.client < 0:
		return ""
	case i == int(c.client):
		return "client"
	}
	return "server"
}

func (c *conn) wsPort() bool {
	return c.s.wsPorts[c.key.port(0)] || c.s.wsPorts[c.key.port(1)]
}

// follow returns the connection's follow state, made on first use.
func (c *conn) follow() *follow {
	if c.f == nil {
		f := &follow{}
		for i := range f.sides {
			f.sides[i] = side{c: c, idx: i}
		}
		c.f = f
	}
	return c.f
}

// ignore stops following the connection and lets go of its follow state.
// Out-of-order bytes it still holds are released when they time out or the
// connection is forgotten (never here: ignore may be called while the reassembler
// delivers).
func (c *conn) ignore() {
	c.state = stIgnore
	c.f = nil
}

// data receives the next bytes of side i's stream, all there at t.
func (c *conn) data(i int, p []byte, t time.Time) {
	switch c.state {
	case stNew:
		c.classify(i, p, t)
	case stHTTP:
		c.http(&c.f.sides[i], p, t)
	case stWS:
		c.f.sides[i].ws.feed(p, t)
	}
}

// gap receives a hole of n bytes in side i's stream.
func (c *conn) gap(i int, n int64, t time.Time) {
	switch c.state {
	case stNew:
		if !c.wsPort() {
			c.ignore()
			return
		}
		c.startPortWS(i, t)
		c.f.sides[i].ws.gap(n, t)
	case stHTTP:
		c.httpGap(&c.f.sides[i], n)
	case stWS:
		c.f.sides[i].ws.gap(n, t)
	}
}

// fin notes that side i's stream ended; the connection ends once both have
// (checked by the caller, outside the reassembler).
func (c *conn) fin(i int) {
	if c.finBy == 0 {
		c.finBy = uint8(1 + i)
	}
}

// finName names who sent the first FIN, or "" while roles are unknown.
func (c *conn) finName() string {
	if c.finBy == 0 {
		return ""
	}
	return c.sideName(int(c.finBy) - 1)
}

// classify decides from the first bytes of side i what the connection carries.
func (c *conn) classify(i int, p []byte, t time.Time) {
	b := p
	if c.f != nil && len(c.f.sides[i].buf) > 0 {
		sd := &c.f.sides[i]
		sd.buf = append(sd.buf, p...)
		b = sd.buf
	}
	req, reqMore := looksLikeRequest(b)
	resp, respMore := looksLikeResponse(b)
	switch {
	case req && int(c.client) != 1-i:
		c.client, c.state = int8(i), stHTTP
	case resp && int(c.client) != i:
		c.client, c.state = int8(1-i), stHTTP
	case (reqMore || respMore) && len(b) < 32:
		if sd := &c.follow().sides[i]; len(sd.buf) == 0 {
			sd.buf = append(sd.buf, p...)
		}
		return
	case c.wsPort():
		if c.f != nil {
			c.f.sides[i].buf = nil
		}
		c.startPortWS(i, t)
		c.f.sides[i].ws.feed(b, t)
		return
	default:
		c.noteFrames(i, b)
		c.ignore()
		return
	}
	sd := &c.follow().sides[i]
	sd.buf = nil // b owns the bytes now
	c.s.log.Debug("sniff: following HTTP", "client", c.addr(int(c.client)), "server", c.addr(1-int(c.client)))
	c.http(sd, b, t)
}

// http parses the side's HTTP/1.x messages, skipping bodies, until a WebSocket
// upgrade succeeds. p was all there at t.
func (c *conn) http(sd *side, p []byte, t time.Time) {
	if sd.holding {
		c.hold(sd, p)
		return
	}
	work, fromBuf := p, false
	if len(sd.buf) > 0 {
		sd.buf = append(sd.buf, p...)
		work, fromBuf = sd.buf, true
	}
	for len(work) > 0 && c.state == stHTTP && !sd.holding {
		if sd.body.active() {
			n, err := sd.body.skip(work)
			work = work[n:]
			if err != nil {
				c.s.log.Debug("sniff: not following", "conn", c.addr(int(c.client)), "err", err)
				c.ignore()
			}
			continue
		}
		for len(work) > 0 && (work[0] == '\r' || work[0] == '\n') {
			work = work[1:] // empty lines before a message (RFC 9112 §2.2)
		}
		e := headerEnd(work)
		if e < 0 {
			if len(work) > maxHeaderBlock {
				c.ignore()
			}
			break
		}
		block := work[:e]
		work = work[e:]
		if sd.idx == int(c.client) {
			c.request(block)
			continue
		}
		if c.response(block, t) {
			// WebSocket from here on: the rest is frames.
			if len(work) > 0 {
				sd.ws.feed(work, t)
			}
			sd.buf = nil
			return
		}
	}
	switch {
	case c.state != stHTTP:
		sd.buf = nil
	case sd.holding && len(work) > 0:
		c.hold(sd, work)
		sd.buf = sd.buf[:0]
	case fromBuf:
		sd.buf = sd.buf[:copy(sd.buf, work)]
	default:
		sd.buf = append(sd.buf[:0], work...)
	}
}

// request handles a request header block from the client.
func (c *conn) request(block []byte) {
	f := c.f
	if yes, _ := looksLikeRequest(block); !yes || len(f.queue) >= 64 {
		c.ignore()
		return
	}
	req, err := parseRequest(block)
	if err != nil {
		c.s.log.Debug("sniff: not following", "conn", c.addr(int(c.client)), "err", err)
		c.ignore()
		return
	}
	r := request{method: req.Method, upgrade: isUpgradeRequest(req), req: req}
	f.queue = append(f.queue, r)
	sd := &f.sides[c.client]
	if r.upgrade {
		sd.holding = true
		return
	}
	sd.body.set(requestBody(req))
}

// response handles a response header block from the server, all there at t, and
// reports whether it switched the connection to WebSocket.
func (c *conn) response(block []byte, t time.Time) bool {
	f := c.f
	method := http.MethodGet
	var front *request
	if len(f.queue) > 0 {
		front = &f.queue[0]
		method = front.method
	}
	resp, err := parseResponse(block, method)
	if err != nil {
		c.s.log.Debug("sniff: not following", "conn", c.addr(int(c.client)), "err", err)
		c.ignore()
		return false
	}
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		if !handshake.UpgradesTo(resp.Header, "websocket") || (front != nil && !front.upgrade) {
			c.ignore() // another protocol
			return false
		}
		var req *http.Request
		if front != nil {
			req = front.req
		}
		f.queue = nil
		c.upgrade(req, resp, t)
		return true
	case resp.StatusCode/100 == 1:
		return false // informational: the final response follows
	}
	upgrade := front != nil && front.upgrade
	if front != nil {
		f.queue = f.queue[1:]
	}
	f.sides[1-c.client].body.set(responseBody(method, resp))
	if upgrade {
		c.refused(front.req, resp, t)
		// Refused: what the client sent after its request is HTTP again.
		cl := &f.sides[c.client]
		held := cl.held
		cl.held, cl.heldLen, cl.holding = nil, 0, false
		for _, h := range held {
			if c.state != stHTTP {
				break
			}
			if h.gap > 0 {
				c.httpGap(cl, h.gap)
			} else {
				c.http(cl, h.data, t)
			}
		}
	}
	return false
}

// hold keeps what the client sends after an upgrade request until the response.
func (c *conn) hold(sd *side, p []byte) {
	if sd.heldLen+len(p) > maxHeld {
		c.ignore()
		return
	}
	sd.heldLen += len(p)
	if n := len(sd.held); n > 0 && sd.held[n-1].gap == 0 {
		sd.held[n-1].data = append(sd.held[n-1].data, p...)
		return
	}
	sd.held = append(sd.held, heldPiece{data: append([]byte(nil), p...)})
}

// httpGap handles lost bytes in the HTTP phase: inside a body of known length they
// only shorten it; elsewhere the connection cannot be followed.
func (c *conn) httpGap(sd *side, n int64) {
	switch {
	case sd.holding:
		sd.held = append(sd.held, heldPiece{gap: n})
	case sd.body.mode == bodyLength && len(sd.buf) == 0 && sd.body.remain >= n:
		sd.body.remain -= n
		if sd.body.remain == 0 {
			sd.body.mode = bodyNone
		}
	case sd.body.mode == bodyToEOF:
	default:
		c.ignore()
	}
}

// upgrade switches the connection to WebSocket after a 101 response to req (nil
// when the capture began after the request), all there at t.
func (c *conn) upgrade(req *http.Request, resp *http.Response, t time.Time) {
	f := c.f
	respExt := resp.Header.Values("Sec-WebSocket-Extensions")
	offer := respExt
	var u *url.URL
	if req != nil {
		offer, u = req.Header.Values("Sec-WebSocket-Extensions"), handshake.URL(req, false)
	}
	pc := handshake.NewConn(plugins.Sniff, "", u, req, resp)
	params, deflate, err := handshake.Negotiate(offer, respExt)
	noDeflate := "compressed (RSV1), but permessage-deflate was not negotiated"
	if err != nil {
		noDeflate, deflate = "compressed, but the permessage-deflate negotiation is not understood: "+err.Error(), false
	}
	for i := range f.sides {
		sender := wsframe.Server
		if i == int(c.client) {
			sender = wsframe.Client
		}
		var comp *wsframe.Compression
		if deflate {
			p := params.Sender(sender)
			comp = &p
		}
		f.sides[i].ws = newWSDir(c, i, sender, comp, false, noDeflate)
	}
	c.open(pc, t)
	cl := &f.sides[c.client]
	if req == nil {
		cl.ws.startMidStream()
	}
	held, rest := cl.held, cl.buf
	cl.held, cl.heldLen, cl.holding, cl.buf = nil, 0, false, nil
	// What the client sent after its request could be read only now: it is
	// stamped with the response.
	for _, h := range held {
		if h.gap > 0 {
			cl.ws.gap(h.gap, t)
		} else {
			cl.ws.feed(h.data, t)
		}
	}
	if len(rest) > 0 {
		cl.ws.feed(rest, t)
	}
}

// startPortWS treats the connection as WebSocket because of its port (--ws-port):
// no handshake, so the extensions are unknown (RSV1 is expected: compressed
// messages are reported undecodable); a stream that did not start at its SYN may start
// anywhere in a frame. first is the side whose bytes decided it, at t.
func (c *conn) startPortWS(first int, t time.Time) {
	f := c.follow()
	if c.client < 0 {
		a, b := c.s.wsPorts[c.key.port(0)], c.s.wsPorts[c.key.port(1)]
		switch {
		case a && !b:
			c.client = 1
		case b && !a:
			c.client = 0
		default:
			c.client = int8(first) // the first to speak
		}
	}
	for i := range f.sides {
		sender := wsframe.Server
		if i == int(c.client) {
			sender = wsframe.Client
		}
		f.sides[i].ws = newWSDir(c, i, sender, nil, true,
			"compressed (RSV1), but the handshake is not in the capture: the permessage-deflate parameters are unknown")
		f.sides[i].ws.checkStart = true
	}
	// No handshake, so no path: the URL names the server only.
	c.open(handshake.NewConn(plugins.Sniff, "", &url.URL{Scheme: "ws", Host: c.addr(1 - int(c.client)).String()}, nil, nil), t)
	for i := range f.sides {
		if sd := &f.sides[i]; len(sd.buf) > 0 {
			b := sd.buf
			sd.buf = nil
			sd.ws.feed(b, t)
		}
	}
}

// open announces a new WebSocket connection, at t.
func (c *conn) open(pc *plugins.Conn, t time.Time) {
	s := c.s
	s.others.remove(c)
	c.state = stWS
	s.wsConns.push(c)
	pc.ID = s.ids.Next()
	pc.Client = net.TCPAddrFromAddrPort(c.addr(int(c.client)))
	pc.Server = net.TCPAddrFromAddrPort(c.addr(1 - int(c.client)))
	c.f.pc = pc
	for i := range c.f.sides {
		if d := c.f.sides[i].ws; d != nil {
			d.st = s.pipeline.Stream(pc, d.dir)
		}
	}
	s.stats.Connections++
	s.pipeline.Open(s.ctxOrBackground(), pc, t)
}

// refused reports an upgrade request that the server answered with something
// other than 101.
func (c *conn) refused(req *http.Request, resp *http.Response, t time.Time) {
	s := c.s
	pc := handshake.NewConn(plugins.Sniff, s.ids.Next(), handshake.URL(req, false), req, resp)
	pc.Client = net.TCPAddrFromAddrPort(c.addr(int(c.client)))
	pc.Server = net.TCPAddrFromAddrPort(c.addr(1 - int(c.client)))
	s.stats.Refused++
	s.pipeline.Refused(pc, t)
}

// noteFrames looks at a payload of side i of a connection that is not followed:
// does it start with WebSocket frames? Up to 3 payloads a side are looked at.
func (c *conn) noteFrames(i int, p []byte) {
	shift := 4 * i
	v := c.frames >> shift & 0xf
	if v&frLike != 0 || v&frTries == frTries {
		return
	}
	v++
	if ok, masked := looksLikeFrames(p); ok {
		v |= frLike
		if masked {
			v |= frMasked
		}
	}
	c.frames = c.frames&^(0xf<<shift) | v<<shift
}

// framesPort returns the server port of a connection not followed whose bytes look
// like WebSocket frames: a side's payloads start with frames, masked from the
// client and not from the server, and no side's first payloads all look like
// something else.
func (c *conn) framesPort() (uint16, bool) {
	server := -1
	for i := range 2 {
		switch v := c.frames >> (4 * i) & 0xf; {
		case v&frLike != 0:
			srv := i
			if v&frMasked != 0 {
				srv = 1 - i
			}
			if server >= 0 && server != srv {
				return 0, false
			}
			server = srv
		case v&frTries == frTries:
			return 0, false
		}
	}
	if server < 0 {
		return 0, false
	}
	return c.key.port(server), true
}

// looksLikeFrames reports whether b, the payload of a segment, starts with
// WebSocket frames, all masked or all not: a cheap check that random bytes rarely
// pass. The headers must pass the strict rules (permessage-deflate allowed), and
// either end exactly where b ends or hold two whole frames before one that does
// not fit.
func looksLikeFrames(b []byte) (ok, masked bool) {
	whole := 0
	for off := 0; off < len(b); {
		if len(b)-off < 2 || len(b)-off < wsframe.HeaderLen(b[off], b[off+1]) {
			return whole >= 2, masked
		}
		h, n, err := wsframe.ParseHeader(b[off:])
		if err != nil || whole > 0 && h.Masked != masked {
			return false, false
		}
		masked = h.Masked
		sender := wsframe.Server
		if masked {
			sender = wsframe.Client
		}
		if (wsframe.Rules{Sender: sender, Extensions: wsframe.RSV1}).Check(h, n) != nil {
			return false, false
		}
		end := uint64(off) + uint64(n) + h.Length
		if end > uint64(len(b)) {
			return whole >= 2, masked
		}
		whole++
		off = int(end)
	}
	return whole >= 1, masked
}
