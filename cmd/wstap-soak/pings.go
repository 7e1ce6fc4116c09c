package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	coder "github.com/coder/websocket"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/wsframe"
)

func init() {
	register(scenario{name: "pings", run: pings,
		doc: "a client sends 1,000,000 pings (10 MB on the wire) through wstap with --log FILE: the event log must stay small (under 1 MB) and still account for every ping"})
}

func pings(e *env) ([]check, error) {
	const n = 1_000_000
	logPath := filepath.Join(e.tmp, "pings.jsonl")
	p, err := e.wstap("wstap", "--log", logPath)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, nil) // answers every ping with a pong
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := rawClient(ctx, p.Addr, ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, c); close(ended) }() // the pongs, until the close
	w := wsframe.NewWriter(c, wsframe.Client, 0)
	start := time.Now()
	wire := 0
	for i := range n {
		payload := fmt.Appendf(nil, "%08d", i)
		if err := w.WriteMessage(wsframe.OpPing, 0, payload, nil); err != nil {
			return nil, err
		}
		wire += 6 + len(payload)
	}
	if err := w.WriteMessage(wsframe.OpClose, 0, wsframe.AppendClose(nil, wsframe.CloseNormal, ""), nil); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	<-ended // wstap closed the connection: every ping went through
	took := time.Since(start)
	p.Stop() // flushes the log
	st, err := os.Stat(logPath)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counted, err := countPings(f)
	if err != nil {
		return nil, err
	}
	fmt.Printf("   %d pings (%.1f MB on the wire) in %s; event log %d bytes\n", n, float64(wire)/1e6, took.Round(time.Millisecond), st.Size())
	return []check{
		{what: fmt.Sprintf("event log for %d pings < 1 MB", n), got: fmt.Sprintf("%d bytes", st.Size()), ok: st.Size() < 1e6},
		{what: "the log accounts for every ping (one by one or counted)", got: fmt.Sprintf("%d of %d", counted, n), ok: counted == n},
	}, nil
}

// countPings counts the client's pings an event log accounts for: logged one by
// one, or counted in "controls" events.
func countPings(r io.Reader) (int, error) {
	n := 0
	err := eventlog.Read(r, func(e *eventlog.Event) error {
		if e.Dir != "c2s" || e.Opcode != "ping" {
			return nil
		}
		switch e.Event {
		case "message":
			n++
		case "controls":
			n += int(e.Count)
		}
		return nil
	})
	return n, err
}
