package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// serveTunnel runs the raw CONNECT tunnel (the bench re-executes itself with
// -internal-tunnel, so the tunnel's CPU and memory are its own process's, like
// wstap's). It answers CONNECT to loopback addresses only, then copies bytes both
// ways with io.Copy (splice on Linux): no parsing at all, the ceiling for any relay.
func serveTunnel() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tunnel:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "tunnel listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(tunnel), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "tunnel:", err)
		return 1
	}
	return 0
}

func tunnel(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		http.Error(w, "loopback targets only", http.StatusForbidden)
		return
	}
	up, err := net.DialTimeout("tcp", r.Host, 10*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	c, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		up.Close()
		return
	}
	c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		up.Close()
		return
	}
	if n := brw.Reader.Buffered(); n > 0 { // bytes the client sent after the CONNECT
		b, _ := brw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			c.Close()
			up.Close()
			return
		}
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}
