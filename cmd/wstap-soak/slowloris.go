package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wstap/wstap/internal/wstest"
)

func init() {
	register(scenario{name: "slowloris", run: slowloris,
		doc: "500 clients send a request header a line every 5 s inside CONNECT tunnels (half plain, half TLS) and 300 more say nothing after CONNECT: once wstap's 30 s header timeout has passed its open files must be back to the idle count"})
}

// slowClient sends a request header a line at a time, every interval, inside c
// until wstap hangs up or stop is closed; it reports whether wstap hung up.
func slowClient(c net.Conn, interval time.Duration, stop <-chan struct{}) bool {
	hungUp := make(chan struct{})
	go func() {
		defer close(hungUp)
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	if _, err := fmt.Fprintf(c, "GET /slow HTTP/1.1\r\nHost: slow.example\r\n"); err != nil {
		<-hungUp
		return true
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-hungUp:
			return true
		case <-stop:
			c.Close()
			<-hungUp
			return false
		case <-t.C:
			if _, err := fmt.Fprintf(c, "X-Slow-%d: still coming\r\n", i); err != nil {
				<-hungUp
				return true
			}
		}
	}
}

func slowloris(e *env) ([]check, error) {
	const (
		slow   = 500
		silent = 300
		wait   = 45 * time.Second // past the 30 s header timeout
	)
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
	// The tunnels' target: wstap intercepts them without connecting to it, and
	// no request inside is ever complete.
	const target = "127.0.0.1:9"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var hungUp atomic.Int64
	var conns []net.Conn
	defer func() {
		close(stop)
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range slow + silent {
		c, err := wstest.ConnectTunnel(ctx, p.Addr, target)
		if err != nil {
			return nil, fmt.Errorf("tunnel %d: %w", i, err)
		}
		conns = append(conns, c)
		switch {
		case i >= slow:
			// Silent: wstap waits for a first byte.
			wg.Go(func() {
				buf := make([]byte, 1)
				_, err := c.Read(buf)
				if !errors.Is(err, net.ErrClosed) {
					hungUp.Add(1)
				}
			})
		case i%2 == 1:
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("tunnel %d: TLS: %w", i, err)
			}
			conns[len(conns)-1] = tc
			wg.Go(func() {
				if slowClient(tc, 5*time.Second, stop) {
					hungUp.Add(1)
				}
			})
		default:
			wg.Go(func() {
				if slowClient(c, 5*time.Second, stop) {
					hungUp.Add(1)
				}
			})
		}
	}
	opened, _ := openFDs(p)
	fmt.Printf("   %d slow and %d silent tunnels open; wstap has %d open files (idle: %d)\n", slow, silent, opened, idle)
	start := time.Now()
	n, err := settledFDs(p, idle, wait)
	took := time.Since(start)
	if err != nil {
		return nil, err
	}
	if err := p.Alive(); err != nil {
		return nil, err
	}
	// The clients hear of it a moment later.
	wstest.Poll(2*time.Second, func() bool { return hungUp.Load() == slow+silent })
	fmt.Printf("   %s later: %d open files, %d of %d clients hung up on\n", took.Round(time.Second), n, hungUp.Load(), slow+silent)
	return []check{
		{what: fmt.Sprintf("open files within %s after %d slow and %d silent tunnels <= idle (%d)", wait, slow, silent, idle),
			got: fmt.Sprint(n), ok: n <= idle},
		{what: "every slow or silent client hung up on", got: fmt.Sprintf("%d of %d", hungUp.Load(), slow+silent),
			ok: hungUp.Load() == slow+silent},
	}, nil
}
