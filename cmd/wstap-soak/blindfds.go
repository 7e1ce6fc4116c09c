package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wstap/wstap/internal/wstest"
)

func init() {
	register(scenario{name: "blind-fds", run: blindFDs,
		doc: "protocol switches, through CONNECT tunnels and absolute-form, that goproxy relayed blind or mishandled (a WebSocket without Connection: upgrade to a lenient server; a custom protocol), 200 of each closed by the client, then 200 closed by the server: wstap's open files must come back to the idle count, and the other side must be told each time"})
}

// lenientServer switches protocols whatever the request says: it answers 101
// with the protocol the request named (a WebSocket accept key when it sent one),
// and then either keeps the connection until its peer ends it, reporting each
// such end on peerLeft, or (leave) closes it itself after a moment.
type lenientServer struct {
	ln       net.Listener
	leave    bool
	peerLeft atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startLenientServer(leave bool) (*lenientServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &lenientServer{ln: ln, leave: leave}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	return s, nil
}

func (s *lenientServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	proto := req.Header.Get("Upgrade")
	head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + proto + "\r\nConnection: Upgrade\r\n"
	if key := req.Header.Get("Sec-WebSocket-Key"); key != "" {
		head += "Sec-WebSocket-Accept: " + wstest.AcceptKey(key) + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		return
	}
	if s.leave {
		time.Sleep(200 * time.Millisecond)
		return
	}
	if _, err := io.Copy(io.Discard, br); err == nil {
		s.peerLeft.Add(1) // EOF: wstap closed its side
	}
}

func (s *lenientServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// blindSwitch opens a CONNECT tunnel to server (or, absolute, a connection to
// the proxy for an absolute-form request) and asks, inside, for a switch
// that goproxy relayed blind or mishandled: with websocket, a WebSocket without
// "Connection: upgrade"; otherwise a custom protocol. It returns the connection
// after the 101.
func blindSwitch(ctx context.Context, proxyAddr, server string, absolute, websocket bool) (net.Conn, *bufio.Reader, error) {
	var c net.Conn
	var err error
	target := "/blind"
	if absolute {
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", proxyAddr)
		target = "http://" + server + target
	} else {
		c, err = wstest.ConnectTunnel(ctx, proxyAddr, server)
	}
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	hdr := "Upgrade: x-soak\r\nConnection: Upgrade\r\n"
	if websocket {
		hdr = "Upgrade: websocket\r\nSec-WebSocket-Key: " + wstest.NewKey() + "\r\nSec-WebSocket-Version: 13\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, server, hdr); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, nil, fmt.Errorf("answer %s, want 101", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return c, br, nil
}

// switched is a connection after its 101.
type switched struct {
	c  net.Conn
	br *bufio.Reader
}

// blindSwitches opens n switches to server at once and returns those that
// switched, and the first error of the others.
func blindSwitches(ctx context.Context, proxyAddr, server string, n int, absolute, websocket bool) ([]switched, error) {
	var mu sync.Mutex
	var out []switched
	var first error
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, br, err := blindSwitch(ctx, proxyAddr, server, absolute, websocket)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				first = cmp.Or(first, err)
				return
			}
			out = append(out, switched{c, br})
		})
	}
	wg.Wait()
	return out, first
}

func blindFDs(e *env) ([]check, error) {
	const n = 200
	p, err := e.wstap("wstap")
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	time.Sleep(500 * time.Millisecond)
	idle, err := openFDs(p)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var checks []check
	for _, kind := range []struct {
		name                string
		absolute, websocket bool
	}{
		{"CONNECT, WebSocket without Connection: upgrade", false, true},
		{"absolute-form, WebSocket without Connection: upgrade", true, true},
		{"CONNECT, custom protocol", false, false},
		{"absolute-form, custom protocol", true, false},
	} {
		// Closed by the client: the server must see its connection end.
		stays, err := startLenientServer(false)
		if err != nil {
			return nil, err
		}
		conns, serr := blindSwitches(ctx, p.Addr, stays.ln.Addr().String(), n, kind.absolute, kind.websocket)
		open, _ := openFDs(p)
		for _, s := range conns {
			s.c.Close()
		}
		got, err := settledFDs(p, idle, 15*time.Second)
		if err != nil {
			stays.close()
			return nil, err
		}
		wstest.Poll(2*time.Second, func() bool { return stays.peerLeft.Load() == int64(len(conns)) })
		fmt.Printf("   %s, closed by the client: %d of %d switched (%v); open files %d while open, %d after (idle %d); %d servers told\n",
			kind.name, len(conns), n, serr, open, got, idle, stays.peerLeft.Load())
		checks = append(checks,
			check{what: fmt.Sprintf("%s: %d switched", kind.name, n), got: fmt.Sprint(len(conns)), ok: len(conns) == n},
			check{what: fmt.Sprintf("%s: open files after %d switches closed by the client <= idle (%d)", kind.name, n, idle), got: fmt.Sprint(got), ok: got <= idle},
			check{what: fmt.Sprintf("%s: every server told its client left", kind.name), got: fmt.Sprintf("%d of %d", stays.peerLeft.Load(), len(conns)),
				ok: stays.peerLeft.Load() == int64(len(conns))})
		stays.close()

		// Closed by the server: the client must be told.
		leaves, err := startLenientServer(true)
		if err != nil {
			return nil, err
		}
		conns, serr = blindSwitches(ctx, p.Addr, leaves.ln.Addr().String(), n, kind.absolute, kind.websocket)
		var told atomic.Int64
		var wg sync.WaitGroup
		for _, s := range conns {
			wg.Go(func() {
				defer s.c.Close()
				s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
				// A close frame, or nothing, then the end of the connection.
				_, err := io.Copy(io.Discard, s.br)
				var ne net.Error
				if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
					told.Add(1)
				}
			})
		}
		wg.Wait()
		got, err = settledFDs(p, idle, 15*time.Second)
		leaves.close()
		if err != nil {
			return nil, err
		}
		fmt.Printf("   %s, closed by the server: %d of %d switched (%v); %d clients told; open files %d after (idle %d)\n",
			kind.name, len(conns), n, serr, told.Load(), got, idle)
		checks = append(checks,
			check{what: fmt.Sprintf("%s: open files after %d switches closed by the server <= idle (%d)", kind.name, n, idle), got: fmt.Sprint(got), ok: got <= idle},
			check{what: fmt.Sprintf("%s: every client told its server left", kind.name), got: fmt.Sprintf("%d of %d", told.Load(), len(conns)),
				ok: told.Load() == int64(len(conns))})
		if err := p.Alive(); err != nil {
			return checks, err
		}
	}
	return checks, nil
}
