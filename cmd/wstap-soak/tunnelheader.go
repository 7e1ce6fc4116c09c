package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wstap/wstap/internal/wstest"
)

func init() {
	register(scenario{name: "tunnel-header", run: tunnelHeader,
		doc: "a 512 MiB request header inside a plain CONNECT tunnel and a 256 MiB one inside a MITM'd TLS tunnel: wstap must stay under 256 MB and answer 431 (or hang up)"})
}

// discardServer accepts connections and closes them at once: where a request
// would go if wstap let it through.
func discardServer() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, nil
}

// hugeHeader sends, on c, a request whose header has one field of size bytes,
// and returns what wstap made of it: "431" (or another status) when it answered,
// "closed" when it hung up without an answer.
func hugeHeader(c net.Conn, host string, size int64) string {
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	// Read the answer as it comes: wstap may answer and close long before the
	// header is all sent.
	answer := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answer <- "closed (" + err.Error() + ")"
			return
		}
		resp.Body.Close()
		answer <- fmt.Sprint(resp.StatusCode)
	}()
	fmt.Fprintf(c, "GET /huge HTTP/1.1\r\nHost: %s\r\nX-Huge: ", host)
	chunk := bytes.Repeat([]byte("h"), 1<<20)
	for sent := int64(0); sent < size; sent += int64(len(chunk)) {
		if _, err := c.Write(chunk); err != nil {
			break
		}
	}
	io.WriteString(c, "\r\n\r\n")
	return <-answer
}

func tunnelHeader(e *env) ([]check, error) {
	target, err := discardServer()
	if err != nil {
		return nil, err
	}
	defer target.Close()
	var checks []check
	for _, tc := range []struct {
		name string
		size int64
		tls  bool
	}{
		{"plain tunnel", 512 << 20, false},
		{"TLS tunnel", 256 << 20, true},
	} {
		// A wstap per case: the peak is the process's high-water mark.
		p, err := e.wstap("wstap")
		if err != nil {
			return nil, err
		}
		idle, _, _ := p.Mem()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := wstest.ConnectTunnel(ctx, p.Addr, target.Addr().String())
		if err == nil && tc.tls {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
			err = tc.HandshakeContext(ctx)
			c = tc
		}
		cancel()
		if err != nil {
			p.Stop()
			return nil, fmt.Errorf("%s: %w", tc.name, err)
		}
		start := time.Now()
		got := hugeHeader(c, target.Addr().String(), tc.size)
		took := time.Since(start)
		c.Close()
		time.Sleep(500 * time.Millisecond)
		alive := p.Alive()
		_, hwm, merr := p.Mem()
		p.Stop()
		if alive != nil {
			return checks, fmt.Errorf("%s: %w", tc.name, alive)
		}
		if merr != nil {
			return checks, merr
		}
		fmt.Printf("   %s, %s header: answer %s after %s; RSS idle %s, peak %s\n", tc.name, mib(tc.size), got, took.Round(time.Millisecond), mib(idle), mib(hwm))
		checks = append(checks,
			check{what: fmt.Sprintf("%s: peak RSS with a %s header < 256 MB", tc.name, mib(tc.size)), got: mib(hwm), ok: hwm < 256e6},
			check{what: fmt.Sprintf("%s: the %s header is answered 431 or hung up on", tc.name, mib(tc.size)), got: got,
				ok: got == "431" || strings.HasPrefix(got, "closed")})
	}
	return checks, nil
}
