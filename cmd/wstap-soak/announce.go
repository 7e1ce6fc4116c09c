package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/wsframe"
)

func init() {
	register(scenario{name: "announce", run: announce,
		doc: "1,000 connections each announce the largest frame wstap accepts (a 1 GiB compressed one, or one just past the hook limit) and send one byte: wstap must stay under 256 MB"})
}

// rawServer accepts WebSocket upgrades by hand, agreeing to permessage-deflate
// when offered, and keeps every connection open until closed.
type rawServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startRawServer() (*rawServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &rawServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go wstest.ServerHandshake(c, func(*http.Request) wstest.Header {
				return wstest.Header{{"Sec-WebSocket-Extensions", "permessage-deflate"}}
			})
		}
	}()
	return s, nil
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// rawClient opens a WebSocket to server through the proxy at proxyAddr inside a
// CONNECT tunnel, offering permessage-deflate.
func rawClient(ctx context.Context, proxyAddr, server string) (net.Conn, error) {
	c, err := wstest.ConnectTunnel(ctx, proxyAddr, server)
	if err != nil {
		return nil, err
	}
	key := wstest.NewKey()
	hdr := append(wstest.UpgradeHeader(key), [2]string{"Sec-WebSocket-Extensions", "permessage-deflate"})
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := wstest.ClientHandshake(c, "/soak", server, key, hdr, nil); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// announceHeader is a masked client frame header announcing n payload bytes.
func announceHeader(op wsframe.Opcode, compressed bool, n uint64) []byte {
	h := wsframe.Header{Fin: true, Opcode: op, Length: n, Masked: true}
	if compressed {
		h.Rsv = wsframe.RSV1
	}
	rand.Read(h.Mask[:])
	return wsframe.AppendHeader(nil, h)
}

func announce(e *env) ([]check, error) {
	const conns = 1000
	p, err := e.wstap("wstap")
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	srv, err := startRawServer()
	if err != nil {
		return nil, err
	}
	defer srv.close()
	idle, _, _ := p.Mem()
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	ctx := context.Background()
	for i := range conns {
		c, err := rawClient(ctx, p.Addr, srv.addr())
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		clients = append(clients, c)
		// Half announce a compressed 1 GiB frame (--max-message), half an
		// uncompressed one just past --max-hook-message; each sends one byte of it.
		hdr := announceHeader(wsframe.OpBinary, i%2 == 0, 1<<30)
		if i%2 == 1 {
			hdr = announceHeader(wsframe.OpBinary, false, 16<<20+1)
		}
		if _, err := c.Write(append(hdr, 0x42)); err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
	}
	time.Sleep(2 * time.Second) // let wstap read what each connection sent
	if err := p.Alive(); err != nil {
		return nil, err
	}
	rss, hwm, err := p.Mem()
	if err != nil {
		return nil, err
	}
	fmt.Printf("   %d connections open; RSS idle %s, now %s, peak %s\n", conns, mib(idle), mib(rss), mib(hwm))
	return []check{{what: fmt.Sprintf("peak RSS with %d connections announcing the largest frame < 256 MB", conns),
		got: mib(hwm), ok: hwm < 256e6}}, nil
}
