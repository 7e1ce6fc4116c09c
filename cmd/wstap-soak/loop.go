package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func init() {
	register(scenario{name: "loop", run: loop,
		doc: "wstap with --upstream-proxy pointing at itself: plain and HTTPS requests must be answered 508 or 502 within a second, with its open files bounded, and it must stay usable"})
}

func loop(e *env) ([]check, error) {
	// A port to listen on, known before wstap starts: it is its own upstream.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := e.wstap("wstap", "--listen", addr, "--upstream-proxy", "http://"+addr)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	time.Sleep(500 * time.Millisecond)
	idle, err := openFDs(p)
	if err != nil {
		return nil, err
	}
	proxyURL := &url.URL{Scheme: "http", Host: addr}
	var checks []check
	for _, u := range []string{"http://127.0.0.1:9/loop", "https://127.0.0.1:9/loop", "http://127.0.0.1:9/again"} {
		w := watchFDs(p)
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		start := time.Now()
		resp, err := client.Get(u)
		took := time.Since(start)
		got := ""
		ok := false
		if err != nil {
			got = err.Error()
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			got = fmt.Sprintf("%s %q", resp.Status, strings.TrimSpace(string(b)))
			ok = resp.StatusCode == http.StatusLoopDetected || resp.StatusCode == http.StatusBadGateway
		}
		client.CloseIdleConnections()
		time.Sleep(time.Second)
		w.close()
		after, _ := openFDs(p)
		fmt.Printf("   GET %s: %s after %s; open files peak %d, %d a second later (idle %d)\n",
			u, got, took.Round(time.Millisecond), w.peak(), after, idle)
		checks = append(checks,
			check{what: fmt.Sprintf("GET %s answered 508/502 within 1s", u), got: fmt.Sprintf("%s after %s", got, took.Round(time.Millisecond)),
				ok: ok && took < time.Second},
			check{what: fmt.Sprintf("GET %s: open files stay below idle+32 (%d)", u, idle+32), got: fmt.Sprint(w.peak()), ok: w.peak() < idle+32})
		if err := p.Alive(); err != nil {
			return checks, err
		}
	}
	return checks, nil
}
