package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
)

// client is the command-line chat client.
type client struct {
	url, proxy, caFile string
	user               string
	timeout            time.Duration
	box                *chatcrypto.Box
	stdin              io.Reader // nil: send only the -send and -raw messages

	outMu sync.Mutex
	out   io.Writer
}

func (c *client) printf(format string, args ...any) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	fmt.Fprintf(c.out, format, args...)
}

func (c *client) dialer() (*websocket.Dialer, error) {
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if c.proxy != "" {
		u, err := url.Parse(c.proxy)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-proxy %q: want a URL such as http://127.0.0.1:8080", c.proxy)
		}
		d.Proxy = http.ProxyURL(u)
	}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca %s: no PEM certificate in the file", c.caFile)
		}
		d.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return d, nil
}

// run connects, sends out (or the stdin lines) and waits for the echoes.
func (c *client) run(ctx context.Context, out []outgoing) error {
	d, err := c.dialer()
	if err != nil {
		return err
	}
	conn, resp, err := d.DialContext(ctx, c.url, nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("connect %s: %v (HTTP %s)", c.url, err, resp.Status)
		}
		return fmt.Errorf("connect %s: %w", c.url, err)
	}
	defer conn.Close()

	// The reader counts the echoes: messages from c.user broadcast by the server.
	echoes := make(chan struct{}, 1024)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			m, err := c.box.OpenMessage(data)
			if err != nil {
				c.printf("got undecryptable message (%v): %s\n", err, strconv.Quote(preview(data)))
				continue
			}
			c.printf("got user=%s text=%s\n", printable(m.User), printable(m.Text))
			if m.User == c.user {
				echoes <- struct{}{}
			}
		}
	}()

	var wmu sync.Mutex
	send := func(o outgoing) error {
		wire := []byte(o.text)
		if !o.raw {
			wire = c.box.SealMessage(chatcrypto.Message{User: c.user, Text: o.text})
		}
		wmu.Lock()
		defer wmu.Unlock()
		if err := conn.WriteMessage(websocket.TextMessage, wire); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if o.raw {
			c.printf("sent raw %s\n", strconv.Quote(o.text))
		} else {
			c.printf("sent user=%s text=%s\n", printable(c.user), printable(o.text))
		}
		return nil
	}

	// The sender reports how many echoes to expect once it has sent everything.
	sent := make(chan int, 1)
	sendErr := make(chan error, 1)
	go func() {
		n := 0
		if c.stdin == nil {
			for _, o := range out {
				if err := send(o); err != nil {
					sendErr <- err
					return
				}
				if !o.raw {
					n++
				}
			}
			sent <- n
			return
		}
		sc := bufio.NewScanner(c.stdin)
		for sc.Scan() {
			if err := send(outgoing{text: sc.Text()}); err != nil {
				sendErr <- err
				return
			}
			n++
		}
		sent <- n
	}()

	got, want := 0, -1
	var deadline <-chan time.Time
	for want < 0 || got < want {
		select {
		case <-echoes:
			got++
		case want = <-sent:
			t := time.NewTimer(c.timeout)
			defer t.Stop()
			deadline = t.C
		case err := <-sendErr:
			return err
		case err := <-readErr:
			return fmt.Errorf("connection ended after %d echoes: %w", got, err)
		case <-deadline:
			return fmt.Errorf("timed out after %s: got %d of %d echoes of the messages sent as %q", c.timeout, got, want, c.user)
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// Close politely and give the server a moment to answer the close.
	wmu.Lock()
	err = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	wmu.Unlock()
	if err == nil {
		select {
		case <-readErr:
		case <-time.After(2 * time.Second):
		}
	}
	return nil
}
