// Package handshake is the WebSocket opening handshake (RFC 6455 §4) as every front
// end of wstap sees it: whether an HTTP exchange is an upgrade, the ws:// or wss://
// URL it opens, the permessage-deflate parameters it negotiated, and the
// plugins.Conn that describes the connection from then on. The proxy, the sniffer
// and the client share it.
package handshake

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// IsUpgrade reports whether h, a request's or a response's header, asks for (or
// agrees to) a WebSocket upgrade: "Connection: upgrade" and "Upgrade: websocket",
// as tokens, in any case.
func IsUpgrade(h http.Header) bool {
	return httpguts.HeaderValuesContainsToken(h["Connection"], "upgrade") &&
		httpguts.HeaderValuesContainsToken(h["Upgrade"], "websocket")
}

// UpgradesTo reports whether h names protocol among its Upgrade tokens, whatever
// its Connection header says.
func UpgradesTo(h http.Header, protocol string) bool {
	return httpguts.HeaderValuesContainsToken(h["Upgrade"], protocol)
}

// URL returns the ws:// or wss:// URL that request r opens: wss when secure (the
// request came over TLS) or when r's URL says https or wss. The host is the URL's,
// or r.Host for a request in origin form.
func URL(r *http.Request, secure bool) *url.URL {
	u := *r.URL
	if secure || u.Scheme == "https" || u.Scheme == "wss" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	if u.Host == "" {
		u.Host = r.Host
	}
	return &u
}

// Negotiate returns the permessage-deflate parameters that a client's offer (its
// Sec-WebSocket-Extensions values) and the server's answer agreed on; deflate is
// false when they agreed on none. An answer that does not fit the offer (RFC 7692),
// or that accepts an extension wstap cannot parse, is an error: the frames that
// follow could not be read.
func Negotiate(offer, answer []string) (params wsframe.DeflateParams, deflate bool, err error) {
	params, deflate, err = wsframe.NegotiateDeflate(offer, answer)
	if err != nil {
		return params, false, err
	}
	if exts, _ := wsframe.ParseExtensions(answer); len(exts) > 1 || (len(exts) == 1 && !deflate) {
		return params, false, fmt.Errorf("server accepted extensions wstap cannot parse: %s", strings.Join(answer, ", "))
	}
	return params, deflate, nil
}

// NewConn describes the connection that req opened at u and resp accepted (resp
// may be nil for a capture that lost it; req nil for one that began after it). The
// headers are copied; the request's Host header, which net/http keeps apart, is put
// back in, as the server received it.
func NewConn(mode plugins.Mode, id string, u *url.URL, req *http.Request, resp *http.Response) *plugins.Conn {
	c := &plugins.Conn{ID: id, URL: u, Mode: mode}
	if req != nil {
		c.Method, c.Proto = req.Method, req.Proto
		c.Target = req.URL.RequestURI()
		c.Request = req.Header.Clone()
		if c.Request == nil {
			c.Request = http.Header{}
		}
		if host := req.Host; host != "" {
			c.Request["Host"] = []string{host}
		} else if req.URL.Host != "" {
			c.Request["Host"] = []string{req.URL.Host}
		}
	}
	if resp != nil {
		c.Status, c.ResponseProto = resp.StatusCode, resp.Proto
		c.Reason = strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)+" ")
		if c.Reason == resp.Status && c.Reason != "" {
			c.Reason = "" // a Status without the code: no reason phrase known
		}
		if c.Reason == "" {
			c.Reason = http.StatusText(resp.StatusCode)
		}
		c.Response = resp.Header.Clone()
		c.Subprotocol = resp.Header.Get("Sec-WebSocket-Protocol")
		c.Extensions = strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	}
	return c
}

// IDs mints connection ids: "c1", "c2", … It is safe for concurrent use; the zero
// value is ready.
type IDs struct {
	n atomic.Uint64
}

// After makes the ids continue after "c<last>": an event log being appended to
// already holds the ones up to it.
func (ids *IDs) After(last uint64) { ids.n.Store(last) }

// Next returns a new id.
func (ids *IDs) Next() string {
	return "c" + strconv.FormatUint(ids.n.Add(1), 10)
}
