package proxy_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/intercept"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/gosrc"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/wsframe"
)

// interceptProxy runs a proxy whose chain is elems and then the breakpoint, on,
// with rules and timeout (the default when 0).
func interceptProxy(t testing.TB, timeout time.Duration, rules []string, elems ...plugins.Element) (*testProxy, *intercept.Controller) {
	t.Helper()
	return interceptProxyCfg(t, proxy.Config{}, timeout, rules, elems...)
}

// interceptProxyCfg is interceptProxy with the proxy's configuration.
func interceptProxyCfg(t testing.TB, cfg proxy.Config, timeout time.Duration, rules []string, elems ...plugins.Element) (*testProxy, *intercept.Controller) {
	t.Helper()
	st := intercept.Settings{Enabled: true, Timeout: timeout}
	for _, r := range rules {
		st.Rules = append(st.Rules, intercept.MustParseRule(r))
	}
	ctl := intercept.New(intercept.Config{Settings: st})
	tp := startProxy(t, cfg, plugins.FailOpen, append(elems, ctl)...)
	return tp, ctl
}

// waitHeld waits until ctl holds n messages and returns them.
func waitHeld(t testing.TB, ctl *intercept.Controller, n int) []intercept.Message {
	t.Helper()
	var held []intercept.Message
	wstest.Eventually(t, wsrWait, fmt.Sprintf("%d held messages", n), func() bool { held = ctl.Held(); return len(held) == n })
	return held
}

// coderReader reads c's messages into a channel until c ends.
func coderReader(ctx context.Context, c *coder.Conn) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			ch <- string(p)
		}
	}()
	return ch
}

// next returns the next message of ch, failing the test after wsrWait.
func next(t testing.TB, ch <-chan string, what string) string {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the connection ended", what)
		}
		return m
	case <-time.After(wsrWait):
		t.Fatalf("%s: nothing came", what)
	}
	return ""
}

// none checks that nothing arrives on ch for a while.
func none(t testing.TB, ch <-chan string, what string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("%s: %q arrived", what, m)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestInterceptOrder: a held message steps out of its stream (later ones go on, it
// goes out when released, edited) or, with order=strict, holds its direction back
// (everything arrives in order after it); in both directions, and with every
// permessage-deflate mode, every message still inflates at the receiver (coder
// fails the connection otherwise), including those after the release.
func TestInterceptOrder(t *testing.T) {
	modes := []struct {
		name string
		mode coder.CompressionMode
	}{{"no-deflate", coder.CompressionDisabled}, {"no-context-takeover", coder.CompressionNoContextTakeover},
		{"context-takeover", coder.CompressionContextTakeover}}
	for _, m := range modes {
		for _, order := range []string{"out", "strict"} {
			for _, dir := range []string{"c2s", "s2c"} {
				t.Run(m.name+"/"+order+"/"+dir, func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					tp, ctl := interceptProxy(t, 0, []string{"dir=" + dir + ",match=^hold,order=" + order})
					client, server, _ := wsrCoderPair(ctx, t, tp, "/order", m.mode)
					sender, receiver := client, server
					if dir == "s2c" {
						sender, receiver = server, client
					}
					got := coderReader(ctx, receiver)
					// The other direction keeps a reader too (pongs, closes).
					other := coderReader(ctx, sender)
					// A long repetitive payload: compressed, and a back-reference for
					// the next message under context takeover.
					long := strings.Repeat("the same words again and again ", 40)
					for _, p := range []string{"before " + long, "hold me " + long, "after-1 " + long, "after-2 " + long} {
						if err := sender.Write(ctx, coder.MessageText, []byte(p)); err != nil {
							t.Fatal(err)
						}
					}
					if got := next(t, got, "first message"); !strings.HasPrefix(got, "before ") {
						t.Fatalf("first message %.20q", got)
					}
					held := waitHeld(t, ctl, 1)
					if h := held[0].Held; !strings.HasPrefix(string(h.Payload), "hold me ") || h.Dir.String() != dir || h.Order.String() != order {
						t.Fatalf("held %s %s %.20q", h.Dir, h.Order, h.Payload)
					}
					if order == "out" {
						for _, want := range []string{"after-1 ", "after-2 "} {
							if got := next(t, got, want); !strings.HasPrefix(got, want) {
								t.Fatalf("want %q, got %.20q", want, got)
							}
						}
					} else {
						none(t, got, "behind a strict hold")
					}
					edited := "edited " + long
					if err := ctl.Release(ctx, held[0].ID, plugins.Decision{Payload: []byte(edited)}); err != nil {
						t.Fatal(err)
					}
					if got := next(t, got, "the released message"); got != edited {
						t.Fatalf("released as %.20q", got)
					}
					if order == "strict" {
						for _, want := range []string{"after-1 ", "after-2 "} {
							if got := next(t, got, want); !strings.HasPrefix(got, want) {
								t.Fatalf("want %q, got %.20q", want, got)
							}
						}
					}
					// Later traffic both ways still inflates.
					for i := range 3 {
						p := fmt.Sprintf("later %d %s", i, long)
						if err := sender.Write(ctx, coder.MessageText, []byte(p)); err != nil {
							t.Fatal(err)
						}
						if got := next(t, got, "later"); got != p {
							t.Fatalf("later message %d arrived as %.20q", i, got)
						}
						if err := receiver.Write(ctx, coder.MessageText, []byte("back "+p)); err != nil {
							t.Fatal(err)
						}
						if got := next(t, other, "back"); got != "back "+p {
							t.Fatalf("reply %d arrived as %.20q", i, got)
						}
					}
					// An injection both ways (written by the proxy, uncompressed,
					// between relayed messages), and traffic after it.
					for _, d := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
						p := "injected " + d.String() + " " + long
						if err := ctl.Inject(ctx, "c1", plugins.Injection{Dir: d, Opcode: wsframe.OpText, Payload: []byte(p)}); err != nil {
							t.Fatal(err)
						}
						ch := got
						if d.String() != dir {
							ch = other
						}
						if m := next(t, ch, "injected"); m != p {
							t.Fatalf("injection arrived as %.20q", m)
						}
					}
					if err := sender.Write(ctx, coder.MessageText, []byte("last "+long)); err != nil {
						t.Fatal(err)
					}
					if m := next(t, got, "last"); m != "last "+long {
						t.Fatalf("last message arrived as %.20q", m)
					}
					if n := len(ctl.Held()); n != 0 {
						t.Fatalf("%d still held", n)
					}
					evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool {
						for _, ev := range evs {
							if ev["released"] == true {
								return true
							}
						}
						return false
					})
					for _, ev := range evs {
						switch {
						case ev["held"] == true:
							if ev["order"] != order || ev["dir"] != dir {
								t.Errorf("held record %v", ev)
							}
						case ev["released"] == true:
							if ev["edited"] != true || ev["modified"] != true || ev["payload"] != edited || (ev["out_of_order"] == true) != (order == "out") {
								t.Errorf("release record %v", ev)
							}
						}
					}
				})
			}
		}
	}
}

// TestInterceptTimeout: a message nobody decides about goes on unchanged after the
// timeout, and its record says so.
func TestInterceptTimeout(t *testing.T) {
	brNoLeaks(t) // timers and goroutines of held messages end with their connection
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tp, ctl := interceptProxy(t, 300*time.Millisecond, []string{"dir=c2s"})
	client, server, _ := wsrCoderPair(ctx, t, tp, "/timeout", coder.CompressionContextTakeover)
	got := coderReader(ctx, server)
	coderReader(ctx, client)
	start := time.Now()
	if err := client.Write(ctx, coder.MessageText, []byte("wait for me")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, ctl, 1)
	if m := next(t, got, "timed-out message"); m != "wait for me" {
		t.Fatalf("forwarded as %q", m)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("forwarded after %s, before the timeout", d)
	}
	evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool { return len(evs) == 2 })
	if ev := evs[1]; ev["released"] != true || ev["timed_out"] != true || ev["modified"] == true || ev["edited"] == true {
		t.Fatalf("release record %v", ev)
	}
}

// TestInterceptConnEnds: a connection that ends while a message is held drops it,
// and the record says so; so are the messages that waited behind a strict hold.
func TestInterceptConnEnds(t *testing.T) {
	brNoLeaks(t) // timers and goroutines of held messages end with their connection
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tp, ctl := interceptProxy(t, 0, []string{"dir=c2s,match=^hold,order=strict"})
	client, server, _ := wsrCoderPair(ctx, t, tp, "/ends", coder.CompressionDisabled)
	got := coderReader(ctx, server)
	coderReader(ctx, client)
	for _, p := range []string{"hold me", "queued"} {
		if err := client.Write(ctx, coder.MessageText, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	held := waitHeld(t, ctl, 1)
	server.Close(coder.StatusGoingAway, "bye")
	wstest.Eventually(t, wsrWait, "the hold to end", func() bool { return len(ctl.Held()) == 0 })
	for m := range got {
		t.Errorf("the server got %q", m)
	}
	if err := ctl.Release(ctx, held[0].ID, plugins.Decision{}); err == nil {
		t.Fatal("a message of a closed connection was released")
	}
	evs := tp.WaitEvents(t, "", wsrWait, func(evs []map[string]any) bool { return len(evs) > 0 && evs[len(evs)-1]["event"] == "close" })
	var dropped []string
	for _, ev := range evs {
		if ev["conn_closed"] == true && ev["dropped"] == true {
			dropped = append(dropped, ev["payload"].(string))
		}
	}
	if strings.Join(dropped, ",") != "hold me,queued" {
		t.Fatalf("dropped because the connection ended: %q\n%s", dropped, tp.events.String())
	}
}

// TestInterceptOneConn: a hold on one connection leaves another untouched, even
// with order=strict.
func TestInterceptOneConn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tp, ctl := interceptProxy(t, 0, []string{"url=*/held*,order=strict"})
	c1, s1, _ := wsrCoderPair(ctx, t, tp, "/held", coder.CompressionContextTakeover)
	c2, s2, _ := wsrCoderPair(ctx, t, tp, "/free", coder.CompressionContextTakeover)
	got1, got2 := coderReader(ctx, s1), coderReader(ctx, s2)
	back2 := coderReader(ctx, c2)
	coderReader(ctx, c1)
	if err := c1.Write(ctx, coder.MessageText, []byte("stuck")); err != nil {
		t.Fatal(err)
	}
	held := waitHeld(t, ctl, 1)
	for i := range 20 {
		p := fmt.Sprintf("free %d", i)
		if err := c2.Write(ctx, coder.MessageText, []byte(p)); err != nil {
			t.Fatal(err)
		}
		if m := next(t, got2, "the other connection"); m != p {
			t.Fatalf("got %q, want %q", m, p)
		}
		if err := s2.Write(ctx, coder.MessageText, []byte("re "+p)); err != nil {
			t.Fatal(err)
		}
		if m := next(t, back2, "the other connection's reply"); m != "re "+p {
			t.Fatalf("got %q", m)
		}
	}
	none(t, got1, "the held connection")
	if err := ctl.Release(ctx, held[0].ID, plugins.Decision{}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, got1, "released"); m != "stuck" {
		t.Fatalf("released as %q", m)
	}
}

// TestInterceptKeepsPings: a server that pings every second and closes after 3 s
// without a pong keeps a connection whose client message is held for 30 s, over ws
// and wss, with rules that hold every data message in both directions in strict
// order: pings, pongs and closes are never held nor queued. The message then goes
// out when released.
func TestInterceptKeepsPings(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s hold")
	}
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"ws", false}, {"wss", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const hold = 30 * time.Second
			// The test server's certificate is its own: the proxy does not check it.
			tp, ctl := interceptProxyCfg(t, proxy.Config{UpstreamInsecure: true}, 0, []string{"dir=both,order=strict"})
			got := make(chan string, 4)
			closedByServer := make(chan string, 1)
			var pongs atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer c.Close()
				var last atomic.Int64
				last.Store(time.Now().UnixNano())
				c.SetPongHandler(func(string) error { pongs.Add(1); last.Store(time.Now().UnixNano()); return nil })
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						_, p, err := c.ReadMessage()
						if err != nil {
							return
						}
						got <- string(p)
					}
				}()
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-done:
						return
					case <-tick.C:
					}
					if time.Since(time.Unix(0, last.Load())) > 3*time.Second {
						closedByServer <- "no pong for 3 s"
						c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "no pong"), time.Now().Add(time.Second))
						return
					}
					if err := c.WriteControl(websocket.PingMessage, []byte("ka"), time.Now().Add(time.Second)); err != nil {
						return
					}
				}
			})
			var srv *httptest.Server
			scheme := "ws"
			if tc.tls {
				srv, scheme = httptest.NewTLSServer(h), "wss"
			} else {
				srv = httptest.NewServer(h)
			}
			t.Cleanup(srv.Close)
			d := tp.Dialer()
			d.TLSClientConfig = &tls.Config{RootCAs: tp.Pool}
			c, _, err := d.Dial(scheme+"://"+srv.Listener.Addr().String()+"/ping", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The client answers pings while it reads (gorilla's default handler).
			go func() {
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}()
			if err := c.WriteMessage(websocket.TextMessage, []byte("held for 30 s")); err != nil {
				t.Fatal(err)
			}
			held := waitHeld(t, ctl, 1)
			select {
			case why := <-closedByServer:
				t.Fatalf("the server closed: %s", why)
			case m := <-got:
				t.Fatalf("the server got %q while it was held", m)
			case <-time.After(hold):
			}
			if err := ctl.Release(context.Background(), held[0].ID, plugins.Decision{}); err != nil {
				t.Fatalf("release after %s: %v", hold, err)
			}
			select {
			case m := <-got:
				if m != "held for 30 s" {
					t.Fatalf("the server got %q", m)
				}
			case why := <-closedByServer:
				t.Fatalf("the server closed: %s", why)
			case <-time.After(wsrWait):
				t.Fatal("the released message did not arrive")
			}
			if n := pongs.Load(); n < 25 {
				t.Fatalf("%d pongs in %s", n, hold)
			}
		})
	}
}

// TestScriptInjectsPlaintext: a Go-source hook injects plaintext on a live
// connection through the path the web UI uses (plugins.Conn.Inject with Encode):
// the chain's codecs encode it, and it is logged as injected with its plaintext.
func TestScriptInjectsPlaintext(t *testing.T) {
	t.Parallel()
	b64, err := plugins.New("base64", nil)
	if err != nil {
		t.Fatal(err)
	}
	script, err := gosrc.Load("testdata/knock.go")
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, proxy.Config{}, plugins.FailOpen, append([]plugins.Element{b64}, script...)...)
	srv := startRecordingServer(t)
	c, _, err := tp.Dialer().Dial(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte(base64.StdEncoding.EncodeToString([]byte("knock")))); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, srv.got, "the knock"); got != "a25vY2s=" {
		t.Fatalf("the server got %q", got)
	}
	if got := readText(t, c); got != base64.StdEncoding.EncodeToString([]byte("who is there")) {
		t.Fatalf("the client got %q", got)
	}
	evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool { return len(evs) == 2 })
	var injected []map[string]any
	for _, ev := range evs {
		if ev["injected"] == true {
			injected = append(injected, ev)
		}
	}
	if len(injected) != 1 || injected[0]["dir"] != "s2c" || injected[0]["decoded"] != "who is there" {
		t.Fatalf("injections logged as %v", injected)
	}
}

// TestInterceptEditRefused: an edit the codecs cannot encode leaves the message
// held, with an error that says so (the UI's 422); a raw edit then goes out as
// it is, past the codecs.
func TestInterceptEditRefused(t *testing.T) {
	brNoLeaks(t) // timers and goroutines of held messages end with their connection
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jsonCodec, err := plugins.New("json", nil)
	if err != nil {
		t.Fatal(err)
	}
	tp, ctl := interceptProxy(t, 0, []string{"dir=c2s"}, jsonCodec)
	client, server, _ := wsrCoderPair(ctx, t, tp, "/json", coder.CompressionContextTakeover)
	got := coderReader(ctx, server)
	coderReader(ctx, client)
	if err := client.Write(ctx, coder.MessageText, []byte(`{"a": 1}`)); err != nil {
		t.Fatal(err)
	}
	held := waitHeld(t, ctl, 1)
	if h := held[0].Held; !strings.Contains(string(h.Payload), `"a": 1`) || strings.Join(h.Codecs, ",") != "json" {
		t.Fatalf("held %q (codecs %v)", h.Payload, h.Codecs)
	}
	err = ctl.Release(ctx, held[0].ID, plugins.Decision{Payload: []byte("not json")})
	var perr *plugins.Error
	if !errors.As(err, &perr) || perr.Op != "Encode" || perr.Plugin != "json" {
		t.Fatalf("an edit json cannot encode: %v", err)
	}
	if n := len(ctl.Held()); n != 1 {
		t.Fatalf("%d held after a refused edit", n)
	}
	none(t, got, "after a refused edit")
	if err := ctl.Release(ctx, held[0].ID, plugins.Decision{Payload: []byte("raw, not json"), Raw: true}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, got, "the raw edit"); m != "raw, not json" {
		t.Fatalf("the raw edit arrived as %q", m)
	}
}

// TestInterceptReleasedInOrder: messages released in the order they came are not
// out of order, even when each waited for the one before it; they are when a later
// message of their direction went out first.
func TestInterceptReleasedInOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		later bool // a message the rule does not hold follows the held ones
	}{{"released in order", false}, {"overtaken", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tp, ctl := interceptProxy(t, 0, []string{"dir=c2s,match=^held"})
			client, server, _ := wsrCoderPair(ctx, t, tp, "/inorder", coder.CompressionContextTakeover)
			got := coderReader(ctx, server)
			coderReader(ctx, client)
			want := []string{"held 1", "held 2"}
			for _, m := range want {
				if err := client.Write(ctx, coder.MessageText, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			waitHeld(t, ctl, 2)
			if tc.later {
				if err := client.Write(ctx, coder.MessageText, []byte("free 3")); err != nil {
					t.Fatal(err)
				}
				if m := next(t, got, "the message after the held ones"); m != "free 3" {
					t.Fatalf("got %q first", m)
				}
			}
			if n, err := ctl.ReleaseAll(ctx); err != nil || n != 2 {
				t.Fatalf("ReleaseAll: %d, %v", n, err)
			}
			for _, w := range want {
				if m := next(t, got, w); m != w {
					t.Fatalf("got %q, want %q", m, w)
				}
			}
			evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool {
				n := 0
				for _, ev := range evs {
					if ev["released"] == true {
						n++
					}
				}
				return n == 2
			})
			for _, ev := range evs {
				if ev["released"] == true && (ev["out_of_order"] == true) != tc.later {
					t.Errorf("release of %v: out_of_order %v, want %v", ev["payload"], ev["out_of_order"], tc.later)
				}
			}
		})
	}
}
