// Package proxy is wstap's intercepting proxy: an HTTP proxy (goproxy) that MITMs
// HTTPS with certificates from package certs, passes ordinary HTTP through untouched,
// and takes over every WebSocket upgrade (ws:// inside CONNECT, wss:// inside a
// MITM'd CONNECT, and absolute-form GET ws://): the handshake goes upstream with the
// client's header values, and then every message in both directions is parsed by
// wsframe, passed through the plugins.Chain, and written to the other side.
//
// Unchanged messages are forwarded byte for byte (same frames, same masks, same
// compressed bytes). A rewritten, dropped or injected message under
// permessage-deflate with context takeover would desynchronise the receiver's
// inflate window, so from the first such change on the proxy compresses that
// direction itself, without back-references and within the receiver's negotiated
// window (see wsframe.Deflater).
//
// Every request wstap reads, on its listening socket or inside a CONNECT tunnel,
// is read by a net/http server with the same header size limit and timeouts
// (Config.MaxHeaderBytes, ReadHeaderTimeout, IdleTimeout): wstap opens CONNECT
// tunnels itself, terminating TLS in them when the client speaks it, and hands
// their requests to goproxy as absolute-form ones. Every 101 Switching Protocols
// is decided on too (see onSwitch): a WebSocket always goes through the relay,
// another protocol the client asked for is relayed byte for byte until either
// side ends, and anything else is answered 502. HTTP/2 stays off everywhere
// (ALPN http/1.1, no h2c upgrade): WebSocket over it would bypass the relay.
package proxy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"golang.org/x/net/http/httpguts"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/internal/handshake"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Default limits (the --max-hook-message and --max-message flags).
const (
	DefaultMaxHookMessage = plugins.DefaultMaxHookMessage
	DefaultMaxMessage     = 1 << 30
)

// Default limits on the requests wstap reads, on its listening socket and inside
// CONNECT tunnels alike (see [Config]).
const (
	DefaultReadHeaderTimeout = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = http.DefaultMaxHeaderBytes
)

// Config configures a [Proxy].
type Config struct {
	// CA signs the certificates presented to clients for MITM'd hosts. Required.
	CA *certs.CA
	// Chain runs on every WebSocket message; nil passes everything.
	Chain *plugins.Chain
	// Observer receives connection events after the chain (the event log); nil
	// means none. It is called on the relay's goroutines, outside its locks: an
	// observer that may be slow belongs behind plugins.NewAsync.
	Observer plugins.Observer
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger

	// UpstreamInsecure skips verification of upstream TLS certificates.
	UpstreamInsecure bool
	// UpstreamProxy, when set, is an HTTP proxy all upstream traffic goes through.
	// What wstap sends it carries a Via entry naming this run of wstap (on the
	// CONNECT, or on a plain request sent in absolute form), so that a request
	// that comes back (an upstream proxy that is wstap itself, or forwards to it)
	// is answered 508 Loop Detected instead of going round until the file
	// descriptors run out.
	UpstreamProxy *url.URL

	// MaxHookMessage is the largest message passed to the hooks; larger ones are
	// streamed through (DefaultMaxHookMessage when 0).
	MaxHookMessage int64
	// MaxMessage is the largest message relayed; a larger one closes the
	// connection with 1009 (DefaultMaxMessage when 0).
	MaxMessage int64
	// LastConnID, when not 0, makes connection ids continue after "c<LastConnID>"
	// (an event log being appended to holds the ones before: see
	// eventlog.OpenFile).
	LastConnID uint64

	// ControlBurst, when positive, is how many pings and pongs a second each
	// direction reports to the observer one by one; the rest are counted (see
	// plugins.Pipeline.ControlBurst). 0 reports every one.
	ControlBurst int

	// The limits below hold for every request wstap reads: on the listening
	// socket, and inside CONNECT tunnels (plain or TLS), which wstap serves with
	// a net/http server of its own rather than goproxy's loop (that loop reads
	// headers of any size and waits for them forever).

	// ReadHeaderTimeout bounds the reading of each request's header, and how
	// long a tunnel may stay silent after CONNECT (and take for its TLS
	// handshake); a slower client is disconnected (DefaultReadHeaderTimeout
	// when 0).
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection waits for its next request
	// before it is closed (DefaultIdleTimeout when 0).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds each request's header (request line and fields; as
	// in net/http, 4 KiB more are read before the limit bites); a larger one is
	// answered 431 Request Header Fields Too Large and the connection closed
	// (DefaultMaxHeaderBytes when 0).
	MaxHeaderBytes int
}

// Proxy is an intercepting HTTP proxy. It is an http.Handler; [Proxy.Serve] runs it
// on a listener.
type Proxy struct {
	gp             *goproxy.ProxyHttpServer
	tr             *http.Transport
	ca             *certs.CA
	chain          *plugins.Chain
	pipeline       *plugins.Pipeline
	log            *slog.Logger
	maxHookMessage int64
	maxMessage     int64

	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	tunnels           *http.Server // serves the requests inside CONNECT tunnels
	via               string       // this run's Via pseudonym (see looped)
	viaOut            bool         // requests go through an upstream proxy: mark them

	ids      handshake.IDs
	reclaim  reclaimer // gives the memory of large messages back
	sessions sync.Map  // *session → struct{}
}

// upgradeInfo travels from the request handler to the round trip and the
// response handler in goproxy's ProxyCtx.UserData, for a request that asks to
// switch protocols.
type upgradeInfo struct {
	url    *url.URL // ws:// or wss://; nil when the request does not offer WebSocket
	server atomic.Pointer[net.Conn]
	// connection is the client's Connection header, for a request offering
	// another protocol: goproxy drops it from every request that is not a
	// WebSocket upgrade, and without it the server cannot switch.
	connection []string
}

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if cfg.CA == nil {
		return nil, errors.New("proxy: Config.CA is required")
	}
	p := &Proxy{ca: cfg.CA, chain: cfg.Chain, log: cfg.Logger,
		maxHookMessage: cfg.MaxHookMessage, maxMessage: cfg.MaxMessage}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.maxMessage <= 0 {
		p.maxMessage = DefaultMaxMessage
	}
	if p.maxHookMessage <= 0 {
		p.maxHookMessage = DefaultMaxHookMessage
	}
	p.maxHookMessage = min(p.maxHookMessage, p.maxMessage)
	p.ids.After(cfg.LastConnID)
	p.pipeline = &plugins.Pipeline{Chain: cfg.Chain, Observer: cfg.Observer, MaxHookMessage: p.maxHookMessage,
		ControlBurst: cfg.ControlBurst, Logger: p.log}
	p.readHeaderTimeout = cmp.Or(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	p.idleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	p.maxHeaderBytes = cmp.Or(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	var run [8]byte
	rand.Read(run[:])
	p.via, p.viaOut = fmt.Sprintf("wstap-%x", run), cfg.UpstreamProxy != nil

	p.tr = &http.Transport{
		Proxy:               http.ProxyURL(cfg.UpstreamProxy),
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: cfg.UpstreamInsecure},
		DisableCompression:  true, // never add Accept-Encoding the client did not send
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 15 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	if p.viaOut {
		p.tr.ProxyConnectHeader = http.Header{"Via": {"1.1 " + p.via}}
	}
	gp := goproxy.NewProxyHttpServer()
	gp.Tr = p.tr
	gp.KeepAcceptEncoding = true
	gp.Logger = goproxyLogger{p.log}
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wstap is a proxy: point your browser's HTTP and HTTPS proxy at this address", http.StatusBadRequest)
	})
	// CONNECT never reaches goproxy (see serveConnect): only its request and
	// response handling is used.
	gp.OnRequest().DoFunc(p.onRequest)
	gp.OnResponse().DoFunc(p.onResponse)
	p.gp = gp
	p.tunnels = p.newServer(http.HandlerFunc(p.serveTunnelled))
	p.tunnels.BaseContext = func(l net.Listener) context.Context {
		return context.WithValue(context.Background(), tunnelTargetKey{}, l.(*tunnelListener).target)
	}
	return p, nil
}

// newServer returns an HTTP/1 server for h with wstap's limits on the requests
// it reads.
func (p *Proxy) newServer(h http.Handler) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true) // no HTTP/2: WebSocket over it (RFC 8441) would bypass the relay
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: p.readHeaderTimeout,
		IdleTimeout:       p.idleTimeout,
		MaxHeaderBytes:    p.maxHeaderBytes,
		Protocols:         &protos,
		ErrorLog:          slogErrorLog(p.log),
	}
}

// ServeHTTP serves one proxy request: a CONNECT opens a tunnel whose requests
// wstap serves itself (see serveConnect); any other request goes upstream through
// goproxy.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	p.gp.ServeHTTP(w, r)
}

// tlsRecordHandshake is the first byte of a TLS ClientHello (RFC 8446 §5.1).
const tlsRecordHandshake = 22

// serveConnect opens a CONNECT tunnel and hands its client connection to
// p.tunnels, a net/http server with the same header limit and timeouts as the
// listening one (goproxy's loop for MITM'd tunnels has neither: a 512 MiB header
// was read whole, and a slow or silent client held its connection for ever). The
// first byte decides what the tunnel carries: a TLS ClientHello is answered with
// a certificate for the host from the CA (ALPN http/1.1 only), anything else is
// read as plain HTTP. Requests inside then take the way of every proxied request
// (serveTunnelled), WebSocket upgrades included.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	if p.looped(r.Header) {
		p.log.Warn("request loop: a CONNECT wstap sent came back to it; is --upstream-proxy wstap itself?", "host", r.Host)
		http.Error(w, loopMessage, http.StatusLoopDetected)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "wstap: cannot open a tunnel on this connection", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		p.log.Debug("CONNECT: hijack failed", "host", r.Host, "err", err)
		return
	}
	target := r.URL.Host
	if target == "" {
		target = r.Host
	}
	fail := func(what string, err error) {
		p.log.Debug("CONNECT tunnel closed", "host", target, "stage", what, "err", err)
		conn.Close()
	}
	// A silent client, or one that takes for ever over its TLS handshake, is
	// held to the header timeout too.
	conn.SetDeadline(time.Now().Add(p.readHeaderTimeout))
	major, minor := r.ProtoMajor, r.ProtoMinor
	if major == 0 {
		major, minor = 1, 1
	}
	if _, err := fmt.Fprintf(conn, "HTTP/%d.%d 200 Connection established\r\n\r\n", major, minor); err != nil {
		fail("answering CONNECT", err)
		return
	}
	// brw.Reader holds whatever the client sent right behind its CONNECT.
	first, err := brw.Reader.Peek(1)
	if err != nil {
		fail("waiting for the first byte", err)
		return
	}
	var c net.Conn = &tunnelConn{Conn: conn, r: brw.Reader}
	if first[0] == tlsRecordHandshake {
		tc := tls.Server(c, p.ca.TLSConfig(target))
		if err := tc.Handshake(); err != nil {
			fail("TLS handshake", err)
			return
		}
		c = tc
	}
	conn.SetDeadline(time.Time{})
	// Serve returns as soon as it has started serving the one connection.
	p.tunnels.Serve(&tunnelListener{conn: c, target: target})
}

// tunnelTargetKey is the request context key under which p.tunnels finds the
// CONNECT target of a request's tunnel.
type tunnelTargetKey struct{}

// serveTunnelled serves a request read inside a CONNECT tunnel. It arrives in
// origin form ("GET /path" and a Host header), and goproxy proxies absolute-form
// requests only, so its URL is made absolute first: the scheme is the tunnel's
// (https when wstap terminated TLS in it), the host the Host header's, or the
// CONNECT target's when there is none.
func (p *Proxy) serveTunnelled(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		http.Error(w, "wstap: CONNECT inside a CONNECT tunnel", http.StatusMethodNotAllowed)
		return
	}
	u := *r.URL
	u.Scheme = "http"
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if !r.URL.IsAbs() {
		u.Host = r.Host
		if u.Host == "" {
			u.Host, _ = r.Context().Value(tunnelTargetKey{}).(string)
		}
	}
	r.URL = &u
	// As in goproxy's loop, a client that hangs up does not cancel the request
	// upstream: the response goes on until writing it to the client fails. (A
	// page may close an event stream and then tell the server it got the last
	// event; cancelling would race that message.)
	p.gp.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
}

// tunnelConn is the client side of a CONNECT tunnel: the hijacked connection,
// read through the buffer that may hold bytes the client sent right behind its
// CONNECT (a ClientHello, a request).
type tunnelConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection when the underlying one can, as net/http
// does before it closes a connection after an error answer (a 431), so that the
// answer reaches the client before a reset does.
func (c *tunnelConn) CloseWrite() error { return closeWrite(c.Conn) }

// closeWrite half-closes c if it can.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tunnelListener hands one tunnel's connection to p.tunnels: Accept returns it
// once and then reports the listener closed, which ends that Serve call at once
// while the server goes on serving the connection on a goroutine of its own.
type tunnelListener struct {
	mu     sync.Mutex
	conn   net.Conn
	target string // the CONNECT request's host:port
}

func (l *tunnelListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.conn
	if c == nil {
		return nil, net.ErrClosed
	}
	l.conn = nil
	return c, nil
}

func (l *tunnelListener) Close() error { return nil }

func (l *tunnelListener) Addr() net.Addr { return tunnelAddr(l.target) }

// tunnelAddr is the address of a tunnel: its CONNECT target.
type tunnelAddr string

func (a tunnelAddr) Network() string { return "tunnel" }
func (a tunnelAddr) String() string  { return string(a) }

// loopMessage is the body of a 508 answer.
const loopMessage = "wstap: request loop: this request already went through this wstap (the upstream proxy leads back to it)"

// looped reports whether h, a request's header, carries this run's Via entry:
// the request went out through the upstream proxy and came back.
func (p *Proxy) looped(h http.Header) bool {
	for _, v := range h.Values("Via") {
		for entry := range strings.SplitSeq(v, ",") {
			// received-protocol received-by [comment] (RFC 9110 §7.6.3)
			if f := strings.Fields(entry); len(f) >= 2 && f[1] == p.via {
				return true
			}
		}
	}
	return false
}

// onRequest prepares upgrades: it maps ws:// and wss:// to the schemes the
// transport speaks, keeps the client's header values intact, records which server
// the transport connects to, and runs the handshake hooks. A request that already
// went through this wstap is answered 508.
func (p *Proxy) onRequest(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	if p.looped(r.Header) {
		p.log.Warn("request loop: a request wstap sent came back to it; is --upstream-proxy wstap itself?", "url", r.URL.String())
		return r, goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusLoopDetected, loopMessage+"\n")
	}
	ctx.RoundTripper = goproxy.RoundTripperFunc(p.roundTrip)
	switch r.URL.Scheme {
	case "ws":
		r.URL.Scheme = "http"
	case "wss":
		r.URL.Scheme = "https"
	}
	p.keepUserAgent(r)
	if handshake.UpgradesTo(r.Header, "h2c") {
		dropH2C(r.Header)
	}
	if !handshake.UpgradesTo(r.Header, "websocket") {
		if r.Header.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
			ctx.UserData = &upgradeInfo{connection: slices.Clone(r.Header["Connection"])}
		}
		return r, nil
	}
	// A request offering WebSocket is treated as an upgrade even without
	// "Connection: upgrade": a lenient server may switch anyway, and then the
	// relay must be there (see onSwitch).
	info := &upgradeInfo{url: handshake.URL(r, false)}
	ctx.UserData = info // onResponse reports the upgrade refused if it is
	if err := p.chain.Handshake(r.Context(), &plugins.Handshake{URL: info.url, Request: r.Header}); err != nil {
		p.log.Warn("handshake refused by a hook", "url", info.url.String(), "err", err)
		return r, goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusForbidden, "refused by wstap hook: "+err.Error()+"\n")
	}
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { info.server.Store(&ci.Conn) }}
	ctx.UserData = info
	return r.WithContext(httptrace.WithClientTrace(r.Context(), trace)), nil
}

// dropH2C takes the offer of HTTP/2 out of a request's header (h, which asks to
// upgrade to h2c). HTTP/2 stays off, as on the TLS leg (ALPN http/1.1):
// WebSocket over it (RFC 8441) would pass uninspected. The offer is optional
// (RFC 7540 §3.2): without it the server answers in HTTP/1.1.
func dropH2C(h http.Header) {
	var keep []string
	for _, t := range upgradeTokens(h) {
		if !strings.EqualFold(t, "h2c") {
			keep = append(keep, t)
		}
	}
	h.Del("HTTP2-Settings")
	if len(keep) == 0 {
		h.Del("Upgrade")
		return
	}
	h["Upgrade"] = []string{strings.Join(keep, ", ")}
}

// roundTrip sends a request upstream. When that fails (no connection, a TLS
// certificate that does not verify, a timeout) the client gets a 502 that says
// why, as from any proxy; goproxy would drop an intercepted HTTPS connection
// without a word, and answer plain HTTP with a 500.
func (p *Proxy) roundTrip(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
	if info, ok := ctx.UserData.(*upgradeInfo); ok && info.connection != nil {
		r.Header["Connection"] = info.connection
	}
	if p.viaOut && r.URL.Scheme == "http" {
		// Sent to the upstream proxy in absolute form: mark it as ours (a CONNECT
		// carries the mark in ProxyConnectHeader).
		r.Header.Add("Via", "1.1 "+p.via)
	}
	resp, err := p.tr.RoundTrip(r)
	if err == nil {
		p.log.Debug("HTTP request", "method", r.Method, "url", r.URL.String(), "status", resp.StatusCode)
		return resp, nil
	}
	if r.Context().Err() != nil {
		return nil, err // the client is gone: nobody to answer
	}
	p.log.Warn("upstream request failed", "method", r.Method, "url", r.URL.String(), "err", err)
	hint := ""
	if certUnverified(err) {
		hint = "; to accept a server whose certificate you trust anyway, restart wstap with --upstream-insecure"
	}
	return goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusBadGateway,
		fmt.Sprintf("wstap: cannot reach %s: %v%s\n", r.URL.Host, err, hint)), nil
}

// certUnverified reports whether err is an upstream certificate that did not
// verify (unknown authority, wrong host name, expired, ...).
func certUnverified(err error) bool {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// keepUserAgent stops Go's client from adding "User-Agent: Go-http-client/1.1" to a
// request that had none: the server must see the client's headers, not ours.
func (p *Proxy) keepUserAgent(r *http.Request) {
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header["User-Agent"] = []string{""}
	}
}

// onResponse takes over a 101 answer (see onSwitch), and makes goproxy stream a
// response whose length is unknown.
func (p *Proxy) onResponse(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	if resp == nil {
		return resp
	}
	out := resp
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		out = p.onSwitch(resp, ctx)
	case resp.ContentLength < 0:
		// Go's client moves Transfer-Encoding out of resp.Header, so goproxy's plain
		// HTTP path does not see that the body streams and buffers it (it flushes
		// only for event streams and chunked responses). The header makes it flush
		// each piece; net/http does the chunking.
		resp.Header.Set("Transfer-Encoding", "chunked")
	}
	if info, ok := ctx.UserData.(*upgradeInfo); ok && info.url != nil && out.StatusCode != http.StatusSwitchingProtocols {
		p.refused(ctx.Req, out, info)
	}
	return out
}

// refused reports a WebSocket upgrade that got an answer other than 101, from the
// server or from wstap (a hook refused it, the server could not be reached or
// answered wrongly): the tester sees the app try, and what it was told.
func (p *Proxy) refused(req *http.Request, resp *http.Response, info *upgradeInfo) {
	conn := handshake.NewConn(plugins.Proxy, p.ids.Next(), info.url, req, resp)
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		conn.Client = net.TCPAddrFromAddrPort(ap)
	}
	if c := info.server.Load(); c != nil {
		conn.Server = (*c).RemoteAddr()
	}
	p.log.Debug("WebSocket upgrade refused", "conn", conn.ID, "url", info.url.String(), "status", resp.StatusCode)
	p.pipeline.Refused(conn, time.Now())
}

// onSwitch decides what becomes of a 101 Switching Protocols, which goproxy
// would otherwise relay blind (a WebSocket without events, hooks or frame
// checks) or not at all (another protocol), and without ever closing the
// connections:
//   - a switch to WebSocket goes through the relay, the session replacing the
//     response body that goproxy relays; this holds for every 101 that says
//     websocket, whatever the request's Connection header said;
//   - a switch to another protocol the client asked for (a custom one; not
//     h2c, whose offer onRequest removes) is relayed byte for byte by a
//     protocolRelay, which ends both connections when either ends;
//   - anything else is answered 502: a 101 without Upgrade and "Connection:
//     upgrade" (nobody could tell what the connection speaks now; the
//     transport does not even hand it over), or one switching to a protocol
//     the client did not offer (RFC 9110 §7.8).
func (p *Proxy) onSwitch(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	req := ctx.Req
	refuse := func(format string, args ...any) *http.Response {
		resp.Body.Close()
		msg := fmt.Sprintf(format, args...)
		p.log.Warn("protocol switch refused", "url", req.URL.String(), "reason", msg)
		return goproxy.NewResponse(req, goproxy.ContentTypeText, http.StatusBadGateway, "wstap: "+msg+"\n")
	}
	protocols := upgradeTokens(resp.Header)
	if len(protocols) == 0 || !httpguts.HeaderValuesContainsToken(resp.Header["Connection"], "upgrade") {
		return refuse("the server answered 101 Switching Protocols without saying to what (Upgrade and Connection: upgrade)")
	}
	for _, proto := range protocols {
		if !handshake.UpgradesTo(req.Header, proto) {
			return refuse("the server switched to %q, which the client did not ask for", proto)
		}
	}
	upstream, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return refuse("the server's connection cannot be taken over after its 101")
	}
	if !handshake.IsUpgrade(resp.Header) {
		p.log.Info("relaying a switched protocol byte for byte, uninspected", "url", req.URL.String(), "protocol", strings.Join(protocols, ", "))
		// A 101 has no body: nothing may make goproxy wrap the response writer
		// that protocolRelay takes the client connection from.
		resp.Header.Del("Content-Type")
		resp.Header.Del("Transfer-Encoding")
		resp.Body = &protocolRelay{p: p, upstream: upstream, url: req.URL.String()}
		return resp
	}
	info, _ := ctx.UserData.(*upgradeInfo)
	if info == nil || info.url == nil { // cannot happen: the request offered websocket
		return refuse("the server switched to WebSocket, but the request was not prepared for it")
	}
	s, err := p.newSession(req, resp, upstream, info)
	if err != nil {
		upstream.Close()
		p.log.Warn("server's WebSocket handshake answer is invalid", "url", info.url.String(), "err", err)
		return goproxy.NewResponse(req, goproxy.ContentTypeText, http.StatusBadGateway, "wstap: "+err.Error()+"\n")
	}
	resp.Body = s
	return resp
}

// errSwitchPath reports that goproxy drove a protocolRelay in a way it was not
// built for; tests pin the goproxy version that drives it as expected.
var errSwitchPath = errors.New("proxy: goproxy relayed a switched protocol through an unexpected path")

// upgradeTokens returns the protocols an Upgrade header names.
func upgradeTokens(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Upgrade") {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// protocolRelay carries a protocol other than WebSocket that a server switched
// to, byte for byte: wstap cannot read it, but the connections are its to end.
// It takes goproxy's place as the 101 response body, which goproxy copies to
// the client with io.Copy after writing the head: WriteTo takes the client
// connection over from the response writer, relays both ways until either side
// ends, then closes both and returns, leaving no goroutine behind.
type protocolRelay struct {
	p        *Proxy
	upstream io.ReadWriteCloser
	url      string
}

// Read is not used: goproxy copies from the relay with WriteTo.
func (r *protocolRelay) Read([]byte) (int, error) {
	r.upstream.Close()
	return 0, errSwitchPath
}

// Close closes the server connection.
func (r *protocolRelay) Close() error { return r.upstream.Close() }

// WriteTo relays the switched connection; w is the response writer the 101 head
// was written to.
func (r *protocolRelay) WriteTo(w io.Writer) (int64, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		r.upstream.Close()
		r.p.log.Error("relay", "url", r.url, "err", errSwitchPath)
		return 0, errSwitchPath
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		r.upstream.Close()
		return 0, fmt.Errorf("proxy: take over the switched connection: %w", err)
	}
	// The parser may hold bytes the client sent right behind its request.
	var fromClient io.Reader = client
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		fromClient = io.MultiReader(bytes.NewReader(early), client)
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			r.upstream.Close()
		})
	}
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(r.upstream, fromClient)
		closeBoth()
		done <- n
	}()
	s2c, _ := io.Copy(client, r.upstream)
	closeBoth()
	c2s := <-done
	r.p.log.Debug("switched protocol relayed", "url", r.url, "c2s", c2s, "s2c", s2c)
	return s2c, nil
}

func (p *Proxy) newSession(req *http.Request, resp *http.Response, upstream io.ReadWriteCloser, info *upgradeInfo) (*session, error) {
	params, deflate, err := handshake.Negotiate(req.Header.Values("Sec-WebSocket-Extensions"), resp.Header.Values("Sec-WebSocket-Extensions"))
	if err != nil {
		return nil, err
	}
	conn := handshake.NewConn(plugins.Proxy, p.ids.Next(), info.url, req, resp)
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		conn.Client = net.TCPAddrFromAddrPort(ap)
	}
	if c := info.server.Load(); c != nil {
		conn.Server = (*c).RemoteAddr()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{p: p, conn: conn, upstream: upstream, params: params, deflate: deflate,
		ctx: ctx, cancel: cancel, finished: make(chan struct{})}
	s.pumps.Store(2)
	for _, d := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
		s.streams[d-1] = p.pipeline.Stream(conn, d)
		s.gates[d-1].onFull = func() {
			p.log.Warn("a message held with order=strict holds back more than the queue bounds; reading this direction waits until it is released",
				"conn", conn.ID, "dir", d.String(), "messages", maxGateMessages, "bytes", maxGateBytes)
		}
	}
	s.toServer = newLeg(upstreamWriter{upstream, info}, wsframe.Client, params.Sender(wsframe.Client), deflate)
	conn.Controller = control{s}
	p.sessions.Store(s, struct{}{})
	p.pipeline.Open(ctx, conn, time.Now())
	return s, nil
}

// upstreamWriter writes to the server through the 101 body and sets deadlines on
// the underlying connection.
type upstreamWriter struct {
	io.Writer
	info *upgradeInfo
}

func (u upstreamWriter) SetWriteDeadline(t time.Time) error {
	if c := u.info.server.Load(); c != nil {
		return (*c).SetWriteDeadline(t)
	}
	return nil
}

// SetReadDeadline sets the read deadline of the server connection.
func (u upstreamWriter) SetReadDeadline(t time.Time) error {
	if c := u.info.server.Load(); c != nil {
		return (*c).SetReadDeadline(t)
	}
	return nil
}

// Serve accepts proxy connections on ln until ctx is cancelled, then closes the
// listener, every client connection and every WebSocket session (with 1001 Going
// Away), and returns.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	tl := &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	srv := p.newServer(p)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tl) }()
	select {
	case err := <-errc:
		p.shutdown(tl)
		return err
	case <-ctx.Done():
	}
	srv.Close()
	<-errc
	p.shutdown(tl)
	return nil
}

func (p *Proxy) shutdown(tl *trackingListener) {
	var ending []*session
	p.sessions.Range(func(k, _ any) bool {
		s := k.(*session)
		s.end(wsframe.CloseGoingAway, "proxy shutting down", "proxy")
		ending = append(ending, s)
		return true
	})
	// Let the close frames reach the peers before the sockets close under them
	// (each session's lingering is bounded by closeTimeout).
	for _, s := range ending {
		<-s.finished
	}
	tl.closeAll()
	p.tr.CloseIdleConnections()
}

// trackingListener remembers accepted connections, including the ones the HTTP
// server hijacks for CONNECT tunnels and WebSockets, so shutdown can close them.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

// CloseWrite lets net/http half-close the connection before it closes it after
// an error answer (a 431), so that the answer reaches the client before a reset.
func (c *trackedConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// goproxyLogger sends goproxy's printf-style logs to slog at debug level.
type goproxyLogger struct{ log *slog.Logger }

func (g goproxyLogger) Printf(format string, v ...any) {
	g.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "goproxy")
}

// slogErrorLog routes net/http's server errors (TLS handshake noise, mostly) to
// slog at debug level.
func slogErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelDebug)
}
