// Package ui is wstap's web interface: the live history of WebSocket connections
// and messages (package history) served to a browser, and the HTTP/JSON API the
// page is built on, which scripts can use too (docs/ui.md).
//
// # Security
//
// The UI holds what went through the proxy: cookies, tokens, the app's plaintext.
// So it listens on loopback unless asked otherwise, every API request needs the
// per-run token (from the URL fragment the UI prints, which browsers do not send
// or log; the page trades it for a cookie that is HttpOnly and SameSite=Strict),
// the Host header must name the UI itself (no DNS rebinding), requests that change
// anything and the event stream are refused from a foreign Origin, a strict
// Content-Security-Policy forbids inline script and every other origin, and the
// page inserts nothing from the traffic as HTML.
package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/intercept"
)

//go:embed static
var static embed.FS

// Info describes what the UI shows, for the page's header and /api/info.
type Info struct {
	Version  string `json:"version"`
	Mode     string `json:"mode"` // proxy, sniff or open
	Source   string `json:"source,omitempty"`
	Proxy    string `json:"proxy,omitempty"` // the proxy's address, in proxy mode
	ReadOnly bool   `json:"read_only"`
}

// Config configures a [Server].
type Config struct {
	// Store is the history to show. Required.
	Store *history.Store
	// Info describes the session.
	Info Info
	// Token is what every API request must carry; a random 128-bit one when empty.
	Token string
	// Lost, when set, returns how many messages never reached the history (its
	// queue was full).
	Lost func() int64
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Intercept, when set (a live proxy), is the breakpoint the write side of the
	// API drives: its settings and held messages, and injections into live
	// connections (docs/ui.md, "Intercept and inject API"). Nil: read-only.
	Intercept *intercept.Controller
	// Breakpoint says where the breakpoint sits in the hook chain, for
	// GET /api/intercept ("after base64 → aes").
	Breakpoint string
}

// Server serves the UI. Create it with [New], run it with [Server.Serve].
type Server struct {
	cfg   Config
	token string
	mux   *http.ServeMux
	log   *slog.Logger
	addr  string // the address it listens on, once Serve started
}

// cookieName is the cookie that carries the token after the page traded it.
const cookieName = "wstap_ui"

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("ui: Config.Store is required")
	}
	s := &Server{cfg: cfg, token: cfg.Token, log: cfg.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.token == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("ui: token: %w", err)
		}
		s.token = hex.EncodeToString(b[:])
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(sub)
	s.mux.Handle("GET /{$}", files)
	// The page's modules and style sheet, each by its name (index.html is "/").
	names, err := fs.Glob(sub, "*.*")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if name != "index.html" {
			s.mux.Handle("GET /"+name, files)
		}
	}
	s.mux.HandleFunc("POST /api/login", s.login)
	s.api("GET /api/info", s.info)
	s.api("GET /api/connections", s.connections)
	s.api("GET /api/connections/{id}", s.connection)
	s.api("GET /api/messages", s.messages)
	s.api("GET /api/messages/{id}", s.message)
	s.api("GET /api/events", s.events)
	s.api("GET /api/export.har", s.exportHAR)
	s.api("GET /api/export.jsonl", s.exportJSONL)
	s.api("GET /api/intercept", s.getIntercept)
	s.api("PUT /api/intercept", s.putIntercept)
	s.api("POST /api/intercept/check", s.checkRule)
	s.api("GET /api/intercept/held", s.heldList)
	s.api("POST /api/intercept/held/{id}/forward", s.forwardHeld)
	s.api("POST /api/intercept/held/{id}/drop", s.dropHeld)
	s.api("POST /api/intercept/forward-all", s.forwardAll)
	s.api("POST /api/connections/{id}/inject", s.inject)
	s.api("POST /api/messages/{id}/resend", s.resend)
	return s, nil
}

// Token returns the token API requests must carry.
func (s *Server) Token() string { return s.token }

// URL returns the address to open in a browser: the UI at addr, with the token in
// the fragment (which the browser keeps to itself).
func (s *Server) URL(addr string) string { return "http://" + browserAddr(addr) + "/#token=" + s.token }

// browserAddr turns a listening address into one a browser can open (an
// unspecified host becomes loopback).
func browserAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// api registers an API handler behind the token check.
func (s *Server) api(pattern string, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.authorized(h))
}

// ServeHTTP serves one request, after the checks that hold for every request: the
// Host must be the UI's own, and the response headers forbid framing, sniffing and
// any script or connection not from the UI itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !s.hostAllowed(r.Host) {
		http.Error(w, "wstap ui: wrong Host header (open the URL wstap printed)", http.StatusMisdirectedRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !s.sameOrigin(r, true) {
		http.Error(w, "wstap ui: cross-origin request refused", http.StatusForbidden)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether host names the UI: an IP address or localhost, with
// the UI's port. Any other name is a page of another site reaching the UI through
// a DNS name it controls (DNS rebinding).
func (s *Server) hostAllowed(host string) bool {
	if s.addr == "" {
		return false
	}
	_, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		return false
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != port {
		return false
	}
	return strings.EqualFold(h, "localhost") || net.ParseIP(h) != nil
}

// sameOrigin reports whether r comes from the UI's own page: its Origin (or,
// without one, its Referer) names the Host it was sent to. required says whether
// a request with neither may pass.
func (s *Server) sameOrigin(r *http.Request, required bool) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if ref := r.Header.Get("Referer"); ref != "" {
			origin = ref
		}
	}
	if origin == "" {
		return !required
	}
	return origin == "http://"+r.Host || strings.HasPrefix(origin, "http://"+r.Host+"/")
}

// authorized wraps h with the token check: the cookie the page got from login, or
// an "Authorization: Bearer TOKEN" header (scripts, curl).
func (s *Server) authorized(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.tokenOK(r) {
			http.Error(w, "wstap ui: missing or wrong token (open the URL wstap printed, or send Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		h(w, r)
	})
}

func (s *Server) tokenOK(r *http.Request) bool {
	var got string
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		got = strings.TrimPrefix(a, "Bearer ")
	} else if c, err := r.Cookie(cookieName); err == nil {
		got = c.Value
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

// login trades the token (from the URL fragment, sent by the page in a header) for
// the cookie the event stream needs (EventSource cannot send headers).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get("X-Wstap-Token")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
		http.Error(w, "wstap ui: wrong token", http.StatusUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// Serve serves the UI on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	srv.Close()
	<-errc
	return nil
}
