package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	coder "github.com/coder/websocket"

	"github.com/wstap/wstap/wsframe"
)

func init() {
	register(scenario{name: "idle", run: idle,
		doc: "10 connections each send one compressed message of 12 MiB (for the hooks) and one of 60 MiB (streamed), then stay open and idle: wstap must give the memory back (RSS under 96 MB 15 s later)"})
}

func idle(e *env) ([]check, error) {
	const conns = 10
	p, err := e.wstap("wstap")
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, &coder.AcceptOptions{CompressionMode: coder.CompressionContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 30)
		for {
			_, rd, err := c.Reader(r.Context())
			if err != nil {
				return
			}
			io.Copy(io.Discard, rd)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	defer srv.Close()

	// Two messages of random-looking but compressible JSON-ish text.
	payload := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, `{"seq":%d,"user":"u%d","text":"the quick brown fox %d"},`, i, i%977, i*7919%100003)
		}
		return b.Bytes()[:n]
	}
	small, large := payload(12<<20), payload(60<<20)
	compress := func(p []byte) ([]byte, error) {
		d, err := wsframe.NewDeflater(wsframe.Compression{})
		if err != nil {
			return nil, err
		}
		return d.Deflate(nil, p)
	}
	smallWire, err := compress(small)
	if err != nil {
		return nil, err
	}
	largeWire, err := compress(large)
	if err != nil {
		return nil, err
	}
	idleRSS, _, _ := p.Mem()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	var clients []net.Conn
	var mu sync.Mutex
	for range conns {
		wg.Go(func() {
			c, err := rawClient(ctx, p.Addr, ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
			w := wsframe.NewWriter(c, wsframe.Client, 0)
			if err := writeCompressed(w, smallWire); err != nil {
				errs <- err
				return
			}
			if err := writeCompressed(w, largeWire); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	time.Sleep(3 * time.Second) // the messages are through
	_, hwm, _ := p.Mem()
	time.Sleep(15 * time.Second)
	rss, _, err := p.Mem()
	if err != nil {
		return nil, err
	}
	if err := p.Alive(); err != nil {
		return nil, err
	}
	fmt.Printf("   RSS before %s, peak %s, 15 s after the messages with %d connections open and idle %s\n", mib(idleRSS), mib(hwm), conns, mib(rss))
	return []check{{what: fmt.Sprintf("RSS of %d idle connections after a 12 MiB and a 60 MiB compressed message each < 96 MB", conns),
		got: mib(rss), ok: rss < 96e6}}, nil
}
