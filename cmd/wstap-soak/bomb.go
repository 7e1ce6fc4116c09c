package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coder "github.com/coder/websocket"
	"github.com/klauspost/compress/flate"

	"github.com/wstap/wstap/wsframe"
)

func init() {
	register(scenario{name: "bomb", run: bomb,
		doc: "10 connections at once each send a 1 GiB compression bomb (about 1 MiB on the wire) to a server that inflates with context takeover: wstap must stay under 256 MB, relay every byte, keep the window (a later message that refers back into the bomb still inflates), and not hold up an unrelated connection"})
}

const (
	bombConns = 10
	bombSize  = 1 << 30
	afterBomb = "after the bomb: 0000000000000000000000000000000000000000"
)

// bombPayloads returns the compressed payloads of two messages a sender compressing
// with context takeover would send: a bomb of bombSize zero bytes, then afterBomb
// (whose zeros refer back into the bomb's).
func bombPayloads() (bomb, after []byte, err error) {
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, nil, err
	}
	zeros := make([]byte, 1<<20)
	for range bombSize / len(zeros) {
		fw.Write(zeros)
	}
	fw.Flush()
	bomb = bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff}))
	buf.Reset()
	fw.Write([]byte(afterBomb))
	fw.Flush()
	after = bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff}))
	return bomb, after, nil
}

// writeCompressed writes a compressed message from a client, in frames of at most
// 64 KiB.
func writeCompressed(w *wsframe.Writer, payload []byte) error {
	var sizes []int
	for n := len(payload); n > 0; n -= 64 << 10 {
		sizes = append(sizes, min(n, 64<<10))
	}
	if err := w.WriteMessage(wsframe.OpBinary, wsframe.RSV1, payload, sizes); err != nil {
		return err
	}
	return w.Flush()
}

func bomb(e *env) ([]check, error) {
	p, err := e.wstap("wstap")
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	bombWire, afterWire, err := bombPayloads()
	if err != nil {
		return nil, err
	}
	fmt.Printf("   a %d MiB bomb is %d KiB on the wire\n", bombSize>>20, len(bombWire)>>10)

	// The server reads each message as a stream, inflating with context takeover,
	// and checks it.
	type result struct {
		n        int64
		allZero  bool
		after    string
		err      error
		received time.Time
	}
	results := make(chan result, bombConns)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo" {
			c, err := coder.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, b, err := c.Read(r.Context())
				if err != nil {
					return
				}
				c.Write(r.Context(), typ, b)
			}
		}
		c, err := coder.Accept(w, r, &coder.AcceptOptions{CompressionMode: coder.CompressionContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(2 * bombSize)
		ctx := r.Context()
		res := result{allZero: true}
		_, rd, err := c.Reader(ctx)
		if err == nil {
			buf := make([]byte, 256<<10)
			for {
				n, rerr := rd.Read(buf)
				res.n += int64(n)
				if res.allZero && !bytes.Equal(buf[:n], make([]byte, n)) {
					res.allZero = false
				}
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					err = rerr
					break
				}
			}
		}
		if err == nil {
			var b []byte
			_, b, err = c.Read(ctx)
			res.after = string(b)
		}
		res.err, res.received = err, time.Now()
		results <- res
		c.Close(coder.StatusNormalClosure, "")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	defer srv.Close()
	server := ln.Addr().String()

	// The bystander: an uncompressed echo connection through the proxy, timed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pu := &url.URL{Scheme: "http", Host: p.Addr}
	echo, _, err := coder.Dial(ctx, "ws://"+server+"/echo", &coder.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}})
	if err != nil {
		return nil, fmt.Errorf("bystander: %w", err)
	}
	defer echo.CloseNow()
	var worstRTT atomic.Int64
	stopEcho := make(chan struct{})
	var echoWG sync.WaitGroup
	echoWG.Go(func() {
		for {
			select {
			case <-stopEcho:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			if echo.Write(ctx, coder.MessageText, []byte("ping")) != nil {
				return
			}
			if _, _, err := echo.Read(ctx); err != nil {
				return
			}
			if d := time.Since(start); int64(d) > worstRTT.Load() {
				worstRTT.Store(int64(d))
			}
		}
	})

	idle, _, _ := p.Mem()
	start := time.Now()
	var clients sync.WaitGroup
	sendErrs := make(chan error, bombConns)
	for range bombConns {
		clients.Go(func() {
			c, err := rawClient(ctx, p.Addr, server)
			if err != nil {
				sendErrs <- err
				return
			}
			defer c.Close()
			w := wsframe.NewWriter(c, wsframe.Client, 0)
			if err := writeCompressed(w, bombWire); err != nil {
				sendErrs <- err
				return
			}
			if err := writeCompressed(w, afterWire); err != nil {
				sendErrs <- err
				return
			}
			io.Copy(io.Discard, c) // until the close
		})
	}
	var got []result
	for len(got) < bombConns {
		select {
		case r := <-results:
			got = append(got, r)
		case err := <-sendErrs:
			return nil, fmt.Errorf("client: %w", err)
		case <-ctx.Done():
			return nil, fmt.Errorf("after %s, %d of %d bombs arrived", time.Since(start).Round(time.Second), len(got), bombConns)
		}
	}
	took := time.Since(start)
	close(stopEcho)
	echoWG.Wait()
	clients.Wait()
	_, hwm, err := p.Mem()
	if err != nil {
		return nil, err
	}
	if err := p.Alive(); err != nil {
		return nil, err
	}
	intact, windowOK := 0, 0
	var errs []string
	for _, r := range got {
		if r.err != nil {
			errs = append(errs, r.err.Error())
		}
		if r.n == bombSize && r.allZero {
			intact++
		}
		if r.after == afterBomb {
			windowOK++
		}
	}
	fmt.Printf("   %d bombs through wstap in %s; RSS idle %s, peak %s; slowest bystander round trip %s\n",
		bombConns, took.Round(time.Millisecond), mib(idle), mib(hwm), time.Duration(worstRTT.Load()).Round(time.Millisecond))
	if len(errs) > 0 {
		fmt.Printf("   server errors: %s\n", strings.Join(errs, "; "))
	}
	return []check{
		{what: fmt.Sprintf("peak RSS with %d bombs of %d MiB at once < 256 MB", bombConns, bombSize>>20), got: mib(hwm), ok: hwm < 256e6},
		{what: "every bomb arrives whole (1 GiB of zeros)", got: fmt.Sprintf("%d of %d", intact, bombConns), ok: intact == bombConns},
		{what: "the message after each bomb, which refers back into it, inflates at the server", got: fmt.Sprintf("%d of %d", windowOK, bombConns), ok: windowOK == bombConns},
		{what: "an unrelated connection's round trips during the bombs stay under 1 s", got: time.Duration(worstRTT.Load()).Round(time.Millisecond).String(),
			ok: worstRTT.Load() < int64(time.Second)},
	}, nil
}
