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

// conn is one TCP connection.
type conn struct {
	s      *Sniffer
	key    connKey
	sides  [2]side // sides[i] is the stream sent by key.a (i=0) or key.b (i=1)
	client int     // index of the client's side; -1 while unknown
	state  uint8
	last   time.Time // capture time of the last packet

	list       *connList
	prev, next *conn

	ending bool   // endConn is under way
	finBy  string // who sent the first FIN

	queue []request // requests waiting for their response

	pc        *plugins.Conn // once WebSocket
	closeSeen bool
	closeEv   plugins.CloseEvent // from the first close frame
}

// side is one direction of a connection: its reassembly and the parser its bytes
// go to. It is the reassembler's streamSink.
type side struct {
	c   *conn
	idx int
	r   reassembler

	accounted int  // r.pendingBytes as counted in Sniffer.buffered
	waiting   bool // in Sniffer.waiting
	flushing  bool
	finished  bool // the FIN was reached

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

func (c *conn) addr(i int) netip.AddrPort {
	if i == 0 {
		return c.key.a
	}
	return c.key.b
}

// sideName returns "client" or "server" for side i, or "" while roles are unknown.
func (c *conn) sideName(i int) string {
	switch {
	case c.client < 0:
		return ""
	case i == c.client:
		return "client"
	}
	return "server"
}

func (c *conn) wsPort() bool {
	return c.s.wsPorts[c.key.a.Port()] || c.s.wsPorts[c.key.b.Port()]
}

// ignore stops following the connection. Out-of-order bytes it still holds are
// released when they time out or the connection is forgotten (never here: ignore
// may be called while the reassembler delivers).
func (c *conn) ignore() {
	c.state = stIgnore
	c.queue = nil
	for i := range c.sides {
		sd := &c.sides[i]
		sd.buf, sd.held, sd.holding, sd.ws = nil, nil, false, nil
	}
}

// data receives the next bytes of the side's stream.
func (sd *side) data(p []byte) {
	c := sd.c
	switch c.state {
	case stNew:
		c.classify(sd, p)
	case stHTTP:
		c.http(sd, p)
	case stWS:
		sd.ws.feed(p)
	}
}

// gap receives a hole of n bytes in the side's stream.
func (sd *side) gap(n int64) {
	c := sd.c
	switch c.state {
	case stNew:
		if !c.wsPort() {
			c.ignore()
			return
		}
		c.startPortWS(sd.idx)
		sd.ws.gap(n)
	case stHTTP:
		c.httpGap(sd, n)
	case stWS:
		sd.ws.gap(n)
	}
}

// fin notes that the side's stream ended; the connection ends once both have
// (checked by the caller, outside the reassembler).
func (sd *side) fin() {
	sd.finished = true
	if sd.c.finBy == "" {
		sd.c.finBy = sd.c.sideName(sd.idx)
	}
}

// classify decides from the first bytes what the connection carries.
func (c *conn) classify(sd *side, p []byte) {
	b := p
	if len(sd.buf) > 0 {
		sd.buf = append(sd.buf, p...)
		b = sd.buf
	}
	req, reqMore := looksLikeRequest(b)
	resp, respMore := looksLikeResponse(b)
	switch {
	case req && c.client != 1-sd.idx:
		c.client, c.state = sd.idx, stHTTP
	case resp && c.client != sd.idx:
		c.client, c.state = 1-sd.idx, stHTTP
	case (reqMore || respMore) && len(b) < 32:
		if len(sd.buf) == 0 {
			sd.buf = append(sd.buf, p...)
		}
		return
	case c.wsPort():
		sd.buf = nil
		c.startPortWS(sd.idx)
		sd.ws.feed(b)
		return
	default:
		c.ignore()
		return
	}
	sd.buf = nil // b owns the bytes now
	c.s.log.Debug("sniff: following HTTP", "client", c.addr(c.client), "server", c.addr(1-c.client))
	c.http(sd, b)
}

// http parses the side's HTTP/1.x messages, skipping bodies, until a WebSocket
// upgrade succeeds.
func (c *conn) http(sd *side, p []byte) {
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
				c.s.log.Debug("sniff: not following", "conn", c.addr(c.client), "err", err)
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
		if sd.idx == c.client {
			c.request(block)
			continue
		}
		if c.response(block) {
			// WebSocket from here on: the rest is frames.
			if len(work) > 0 {
				sd.ws.feed(work)
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
	if yes, _ := looksLikeRequest(block); !yes || len(c.queue) >= 64 {
		c.ignore()
		return
	}
	req, err := parseRequest(block)
	if err != nil {
		c.s.log.Debug("sniff: not following", "conn", c.addr(c.client), "err", err)
		c.ignore()
		return
	}
	r := request{method: req.Method, upgrade: isUpgradeRequest(req), req: req}
	c.queue = append(c.queue, r)
	sd := &c.sides[c.client]
	if r.upgrade {
		sd.holding = true
		return
	}
	sd.body.set(requestBody(req))
}

// response handles a response header block from the server and reports whether it
// switched the connection to WebSocket.
func (c *conn) response(block []byte) bool {
	method := http.MethodGet
	var front *request
	if len(c.queue) > 0 {
		front = &c.queue[0]
		method = front.method
	}
	resp, err := parseResponse(block, method)
	if err != nil {
		c.s.log.Debug("sniff: not following", "conn", c.addr(c.client), "err", err)
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
		c.queue = nil
		c.upgrade(req, resp)
		return true
	case resp.StatusCode/100 == 1:
		return false // informational: the final response follows
	}
	upgrade := front != nil && front.upgrade
	if front != nil {
		c.queue = c.queue[1:]
	}
	c.sides[1-c.client].body.set(responseBody(method, resp))
	if upgrade {
		// Refused: what the client sent after its request is HTTP again.
		cl := &c.sides[c.client]
		held := cl.held
		cl.held, cl.heldLen, cl.holding = nil, 0, false
		for _, h := range held {
			if c.state != stHTTP {
				break
			}
			if h.gap > 0 {
				c.httpGap(cl, h.gap)
			} else {
				c.http(cl, h.data)
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
// when the capture began after the request).
func (c *conn) upgrade(req *http.Request, resp *http.Response) {
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
	for i := range c.sides {
		sender := wsframe.Server
		if i == c.client {
			sender = wsframe.Client
		}
		var comp *wsframe.Compression
		if deflate {
			p := params.Sender(sender)
			comp = &p
		}
		c.sides[i].ws = newWSDir(c, i, sender, comp, false, noDeflate)
	}
	c.open(pc)
	cl := &c.sides[c.client]
	if req == nil {
		cl.ws.startMidStream()
	}
	held, rest := cl.held, cl.buf
	cl.held, cl.heldLen, cl.holding, cl.buf = nil, 0, false, nil
	for _, h := range held {
		if h.gap > 0 {
			cl.ws.gap(h.gap)
		} else {
			cl.ws.feed(h.data)
		}
	}
	if len(rest) > 0 {
		cl.ws.feed(rest)
	}
}

// startPortWS treats the connection as WebSocket because of its port (--ws-port):
// no handshake, so the extensions are unknown (RSV1 is expected: compressed
// messages are reported undecodable); a stream that did not start at its SYN may start
// anywhere in a frame. first is the side whose bytes decided it.
func (c *conn) startPortWS(first int) {
	if c.client < 0 {
		a, b := c.s.wsPorts[c.key.a.Port()], c.s.wsPorts[c.key.b.Port()]
		switch {
		case a && !b:
			c.client = 1
		case b && !a:
			c.client = 0
		default:
			c.client = first // the first to speak
		}
	}
	for i := range c.sides {
		sender := wsframe.Server
		if i == c.client {
			sender = wsframe.Client
		}
		c.sides[i].ws = newWSDir(c, i, sender, nil, true,
			"compressed (RSV1), but the handshake is not in the capture: the permessage-deflate parameters are unknown")
		c.sides[i].ws.checkStart = true
	}
	// No handshake, so no path: the URL names the server only.
	c.open(handshake.NewConn(plugins.Sniff, "", &url.URL{Scheme: "ws", Host: c.addr(1 - c.client).String()}, nil, nil))
	for i := range c.sides {
		if sd := &c.sides[i]; len(sd.buf) > 0 {
			b := sd.buf
			sd.buf = nil
			sd.ws.feed(b)
		}
	}
}

// open announces a new WebSocket connection.
func (c *conn) open(pc *plugins.Conn) {
	s := c.s
	c.state = stWS
	pc.ID = s.ids.Next()
	pc.Client = net.TCPAddrFromAddrPort(c.addr(c.client))
	pc.Server = net.TCPAddrFromAddrPort(c.addr(1 - c.client))
	c.pc = pc
	for i := range c.sides {
		if d := c.sides[i].ws; d != nil {
			d.st = s.pipeline.Stream(pc, d.dir)
		}
	}
	c.list.remove(c)
	s.wsConns.push(c)
	s.stats.Connections++
	s.pipeline.Open(s.ctxOrBackground(), pc, s.pktTime)
}
