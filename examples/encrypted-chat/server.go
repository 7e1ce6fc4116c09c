package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
)

//go:embed static
var static embed.FS

var page = template.Must(template.ParseFS(static, "static/index.html"))

// maxMessage is the largest WebSocket message the server reads.
const maxMessage = 64 << 10

// chatServer holds the connected clients.
type chatServer struct {
	box *chatcrypto.Box
	key string

	outMu sync.Mutex
	out   io.Writer

	mu      sync.Mutex
	clients map[*chatClient]bool
}

type chatClient struct {
	conn *websocket.Conn
	wmu  sync.Mutex // one writer at a time
}

// serve runs the chat server on addr until ctx ends.
func serve(ctx context.Context, addr string, useTLS bool, box *chatcrypto.Box, key string, out io.Writer) error {
	s := &chatServer{box: box, key: key, out: out, clients: map[*chatClient]bool{}}
	files, err := fs.Sub(static, "static")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.Handle("GET /chatcrypto.js", http.FileServerFS(files))
	mux.HandleFunc("GET /ws", s.serveWS)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	scheme, wsScheme := "http", "ws"
	if useTLS {
		cert, err := selfSigned()
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		scheme, wsScheme = "https", "wss"
	}
	a := ln.Addr().String()
	keyNote := ""
	if key == chatcrypto.DemoKey {
		keyNote = " (the demo key)"
	}
	s.printf("chat listening on %s://%s/ (WebSocket %s://%s/ws)\n", scheme, a, wsScheme, a)
	s.printf("key: %s%s\n", key, keyNote)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	srv.Close() // hijacked WebSocket connections are not closed by the server
	s.mu.Lock()
	for c := range s.clients {
		c.wmu.Lock()
		c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		c.wmu.Unlock()
		c.conn.Close()
	}
	s.mu.Unlock()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *chatServer) printf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.out, format, args...)
}

func (s *chatServer) servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := page.Execute(w, struct{ Key string }{s.key}); err != nil {
		s.printf("page: %v\n", err)
	}
}

func (s *chatServer) serveWS(w http.ResponseWriter, r *http.Request) {
	// The default origin check accepts clients without an Origin header (the Go
	// client) and pages served by this server.
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the client
	}
	conn.SetReadLimit(maxMessage)
	c := &chatClient{conn: conn}
	s.mu.Lock()
	s.clients[c] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		conn.Close()
	}()
	from := r.RemoteAddr
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		m, err := s.box.OpenMessage(data)
		if err != nil {
			s.printf("rejected from %s: %v: %s\n", from, err, strconv.Quote(preview(data)))
			continue
		}
		s.printf("received user=%s text=%s\n", printable(m.User), printable(m.Text))
		s.broadcast(m)
	}
}

// broadcast sends m to every client, each copy encrypted with its own fresh nonce.
func (s *chatServer) broadcast(m chatcrypto.Message) {
	s.mu.Lock()
	clients := make([]*chatClient, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		wire := s.box.SealMessage(m)
		c.wmu.Lock()
		c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		err := c.conn.WriteMessage(websocket.TextMessage, wire)
		c.wmu.Unlock()
		if err != nil {
			c.conn.Close() // its reader ends and unregisters it
		}
	}
}

func preview(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// selfSigned returns a fresh self-signed certificate for 127.0.0.1, ::1 and
// localhost, for -tls. Clients must not verify it (wstap: --upstream-insecure).
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "encrypted-chat (self-signed)"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
