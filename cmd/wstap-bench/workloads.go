package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wstap/wstap/internal/childproc"
)

// target is one way from the client to an echo server.
type target struct {
	Name   string // "wstap ws"
	kind   string // direct, tunnel, wstap, mitmdump
	scheme string // ws, wss
	url    string
	dialer *websocket.Dialer
	proc   *childproc.Child // the proxy process, nil for direct
}

// Client write buffers come from a pool of 64 KiB buffers, so a 64 KiB message
// leaves as one frame (as a browser sends it) instead of 16 gorilla fragments.
var clientPool = &sync.Pool{}

const clientWriteBuffer = 64 << 10

// memPool lends the default 4 KiB write buffers to the memory test's connections.
var memPool = &sync.Pool{}

func tlsConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots}
}

func (t *target) dial() (*websocket.Conn, error) {
	c, resp, err := t.dialer.Dial(t.url, nil)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("%s: dial %s: %w", t.Name, t.url, err)
	}
	return c, nil
}

// result is one measurement.
type result struct {
	count   int           // messages echoed
	elapsed time.Duration // first write to last echo
	cpu     time.Duration // the proxy process's CPU time meanwhile
	// the proxy process's read and write system calls meanwhile
	syscalls int64
	lat      []time.Duration
}

// measure dials t, runs fn on the connection and records the proxy's CPU time.
func measure(t *target, fn func(*websocket.Conn) (result, error)) (result, error) {
	c, err := t.dial()
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	cpu0, sys0 := t.proc.CPUTime(), t.proc.Syscalls()
	r, err := fn(c)
	r.cpu = t.proc.CPUTime() - cpu0
	r.syscalls = t.proc.Syscalls() - sys0
	if err != nil {
		err = fmt.Errorf("%s: %w", t.Name, err)
		if t.proc != nil {
			if perr := t.proc.Alive(); perr != nil {
				err = fmt.Errorf("%w; %w", err, perr)
			}
		}
	}
	return r, err
}

var errStopped = errors.New("stopped")

// pipelined sends up to n binary messages of size bytes (fewer if maxDur passes
// first) from one goroutine while this one reads the echoes, with at most window
// messages in flight (so a slow proxy is not buried under megabytes of backlog whose
// drain would dominate the time). Credit goes back to the writer in quarter windows,
// so the two goroutines do not wake each other once per message. A text message
// marks the end.
func pipelined(c *websocket.Conn, size, n, window int, maxDur time.Duration) (result, error) {
	deadline := time.Now().Add(maxDur + 60*time.Second)
	c.SetReadDeadline(deadline)
	c.SetWriteDeadline(deadline)
	chunk := max(window/4, 1)
	credit := make(chan struct{}, window/chunk+1) // each is chunk messages echoed
	stop := make(chan struct{})
	werr := make(chan error, 1)
	start := time.Now()
	go func() {
		msg := make([]byte, size)
		var err error
		avail := window
		for i := 0; i < n && err == nil; i++ {
			if i&63 == 0 && time.Since(start) > maxDur {
				break
			}
			if avail == 0 {
				select {
				case <-credit:
					avail += chunk
				case <-stop:
					err = errStopped
					continue
				}
			}
			avail--
			binary.LittleEndian.PutUint64(msg, uint64(i))
			err = c.WriteMessage(websocket.BinaryMessage, msg)
		}
		if err == nil {
			err = c.WriteMessage(websocket.TextMessage, []byte("end"))
		}
		werr <- err
	}()
	fail := func(err error) (result, error) {
		close(stop)
		c.Close()
		<-werr
		return result{}, err
	}
	buf := make([]byte, size+1)
	got := 0
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return fail(fmt.Errorf("read echo %d: %w", got, err))
		}
		if mt == websocket.TextMessage {
			break
		}
		k, err := io.ReadFull(r, buf)
		if err != io.ErrUnexpectedEOF || k != size {
			return fail(fmt.Errorf("echo %d: %d bytes (%v), want %d", got, k, err, size))
		}
		if seq := binary.LittleEndian.Uint64(buf); seq != uint64(got) {
			return fail(fmt.Errorf("echo %d carries sequence number %d", got, seq))
		}
		got++
		if got%chunk == 0 {
			credit <- struct{}{}
		}
	}
	elapsed := time.Since(start)
	if err := <-werr; err != nil {
		return result{}, fmt.Errorf("write: %w", err)
	}
	return result{count: got, elapsed: elapsed}, nil
}

// latency sends n 64 B messages one at a time (up to maxDur) and times each round trip.
func latency(c *websocket.Conn, n int, maxDur time.Duration) (result, error) {
	deadline := time.Now().Add(maxDur + 60*time.Second)
	c.SetReadDeadline(deadline)
	c.SetWriteDeadline(deadline)
	msg := make([]byte, 64)
	buf := make([]byte, 65)
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		if time.Since(start) > maxDur {
			break
		}
		t0 := time.Now()
		binary.LittleEndian.PutUint64(msg, uint64(i))
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			return result{}, err
		}
		_, r, err := c.NextReader()
		if err != nil {
			return result{}, err
		}
		if k, err := io.ReadFull(r, buf); err != io.ErrUnexpectedEOF || k != 64 || binary.LittleEndian.Uint64(buf) != uint64(i) {
			return result{}, fmt.Errorf("round trip %d: bad echo (%d bytes, %v)", i, k, err)
		}
		lat = append(lat, time.Since(t0))
	}
	return result{count: len(lat), elapsed: time.Since(start), lat: lat}, nil
}

// percentile returns the p-th percentile (0-100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}

// exchange sends one 64 B message on c and reads its echo.
func exchange(c *websocket.Conn) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	msg := []byte("wstap-bench: one message to open the connection fully....64 B!")
	if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		return err
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		return err
	}
	if string(got) != string(msg) {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	c.SetReadDeadline(time.Time{})
	return nil
}

// openConns opens n connections through t (par at a time), each exchanging one
// message, and returns them open.
func openConns(t *target, n, par int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	next := make(chan int)
	errc := make(chan error, par)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := t.dial()
				if err == nil {
					if err = exchange(c); err != nil {
						c.Close()
					}
				}
				if err != nil {
					errc <- fmt.Errorf("connection %d: %w", i, err)
					for range next { // drain
					}
					return
				}
				conns[i] = c
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		closeAll(conns)
		return nil, err
	default:
	}
	return conns, nil
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// sortedCopy returns d sorted.
func sortedCopy(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// proxyFunc is http.ProxyURL for a proxy at addr.
func proxyFunc(addr string) func(*http.Request) (*url.URL, error) {
	return http.ProxyURL(&url.URL{Scheme: "http", Host: addr})
}
