package proxy_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/all"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/wsframe"
)

// recordingServer is a WebSocket server that hands every message it receives to
// got, and sends each message written to send.
type recordingServer struct {
	URL  string
	got  chan string
	send chan string
}

func startRecordingServer(t *testing.T) *recordingServer {
	t.Helper()
	rs := &recordingServer{got: make(chan string, 64), send: make(chan string, 64)}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case m := <-rs.send:
					c.WriteMessage(websocket.TextMessage, []byte(m))
				case <-done:
					return
				}
			}
		}()
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			rs.got <- string(m)
		}
	}))
	t.Cleanup(srv.Close)
	rs.URL = "ws" + strings.TrimPrefix(srv.URL, "http")
	return rs
}

func recv(t *testing.T, ch <-chan string, what string) string {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		return ""
	}
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, m, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(m)
}

// openInjector injects one plaintext message each way as soon as a connection opens.
type openInjector struct{ t *testing.T }

func (openInjector) Name() string { return "open-injector" }
func (openInjector) OnMessage(context.Context, *plugins.Message) (plugins.Verdict, error) {
	return plugins.Verdict{}, nil
}
func (o openInjector) OnOpen(ctx context.Context, c *plugins.Conn) {
	for _, in := range []plugins.Injection{
		{Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte(`{"hello":"server"}`), Encode: true},
		{Dir: plugins.ServerToClient, Opcode: wsframe.OpText, Payload: []byte(`{"hello":"client"}`), Encode: true},
	} {
		if err := c.Inject(ctx, in); err != nil {
			o.t.Errorf("inject from OnOpen: %v", err)
		}
	}
}

// TestInjectEncodes: plaintext injected through the chain's codecs (base64 outside,
// AES-GCM inside) reaches a server and a client that decrypt it with the app's key,
// with a fresh nonce each time; the log holds both the wire form and the plaintext.
// The injections come from an OpenHook, before goproxy has handed the client over.
func TestInjectEncodes(t *testing.T) {
	const key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	b64, err := plugins.New("base64", nil)
	if err != nil {
		t.Fatal(err)
	}
	aesCodec, err := plugins.New("aes", map[string]string{"key": "hex:" + key})
	if err != nil {
		t.Fatal(err)
	}
	rawKey, _ := hex.DecodeString(key)
	block, _ := aes.NewCipher(rawKey)
	gcm, _ := cipher.NewGCM(block)
	decrypt := func(wire string) string {
		t.Helper()
		raw, err := base64.StdEncoding.DecodeString(wire)
		if err != nil || len(raw) < 12 {
			t.Fatalf("%q is not base64(nonce||ciphertext): %v", wire, err)
		}
		pt, err := gcm.Open(nil, raw[:12], raw[12:], nil)
		if err != nil {
			t.Fatalf("%q does not decrypt with the app's key: %v", wire, err)
		}
		return string(pt)
	}

	tp := startProxy(t, proxy.Config{}, plugins.FailOpen, b64, aesCodec, openInjector{t})
	srv := startRecordingServer(t)
	c, _, err := tp.Dialer().Dial(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	toServer := recv(t, srv.got, "injected message at the server")
	if got := decrypt(toServer); got != `{"hello":"server"}` {
		t.Fatalf("the server decrypts %q", got)
	}
	toClient := readText(t, c)
	if got := decrypt(toClient); got != `{"hello":"client"}` {
		t.Fatalf("the client decrypts %q", got)
	}
	if toServer[:16] == toClient[:16] {
		t.Fatalf("both injections start alike (%q, %q): the nonce was not fresh", toServer, toClient)
	}
	evs := tp.WaitEvents(t, "message", 10*time.Second, func(evs []map[string]any) bool { return len(evs) >= 2 })
	for _, ev := range evs {
		wantWire, wantPlain := toServer, `{"hello":"server"}`
		if ev["dir"] == "s2c" {
			wantWire, wantPlain = toClient, `{"hello":"client"}`
		}
		if ev["injected"] != true || ev["payload"] != wantWire || ev["decoded"] != wantPlain {
			t.Errorf("injection logged as %v", ev)
		}
	}
}

// injectingObserver answers every client message that starts with "knock" by
// injecting "who's there" both ways (to the client, and to the server on the very
// leg the message went out on), and closes the connection on "bye", from inside its
// callbacks.
type injectingObserver struct {
	plugins.NopObserver
	t        *testing.T
	injected atomic.Int64
}

func (o *injectingObserver) Message(r *plugins.Record) {
	if r.Dir != plugins.ClientToServer || r.Injected {
		return
	}
	switch {
	case strings.HasPrefix(string(r.Payload), "knock"):
		for _, d := range []plugins.Direction{plugins.ServerToClient, plugins.ClientToServer} {
			err := r.Conn.Inject(context.Background(), plugins.Injection{Dir: d, Opcode: wsframe.OpText, Payload: []byte("who's there")})
			if err != nil {
				o.t.Errorf("inject from an observer: %v", err)
			}
		}
		o.injected.Add(1)
	case string(r.Payload) == "bye":
		r.Conn.Close(wsframe.CloseNormal, "observer says bye")
	}
}

// TestObserverCallsBack: an observer may inject and close from its callback (it is
// called outside the relay's locks): no deadlock, and what it sends arrives. Every
// other knock is larger than the hook limit, so it is streamed, whose record used to
// be emitted with the output leg locked.
func TestObserverCallsBack(t *testing.T) {
	obs := &injectingObserver{t: t}
	tp := startProxy(t, proxy.Config{Observer: obs, MaxHookMessage: 1024}, plugins.FailOpen)
	srv := startRecordingServer(t)
	c, _, err := tp.Dialer().Dial(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 50 {
		knock := "knock"
		if i%2 == 1 {
			knock += strings.Repeat(".", 2048)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte(knock)); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, c); got != "who's there" {
			t.Fatalf("knock %d: got %q", i, got)
		}
		if got := recv(t, srv.got, "knock"); got != knock {
			t.Fatalf("the server got %.20q, want the knock", got)
		}
		if got := recv(t, srv.got, "injection"); got != "who's there" {
			t.Fatalf("the server got %.20q, want the injection", got)
		}
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseNormalClosure || ce.Text != "observer says bye" {
		t.Fatalf("after bye: %v, want the observer's close", err)
	}
	if obs.injected.Load() != 50 {
		t.Fatalf("%d injections", obs.injected.Load())
	}
}

// stuckObserver never returns from Message until released.
type stuckObserver struct {
	plugins.NopObserver
	release chan struct{}
	once    sync.Once
	entered chan struct{}
}

func (o *stuckObserver) Message(*plugins.Record) {
	o.once.Do(func() { close(o.entered) })
	<-o.release
}

// TestSlowObserverBehindAsync: an observer that is stuck does not hold the relay up
// when it sits behind plugins.NewAsync: messages keep flowing both ways while it
// is stuck, and the relay never waits for it.
func TestSlowObserverBehindAsync(t *testing.T) {
	stuck := &stuckObserver{release: make(chan struct{}), entered: make(chan struct{})}
	async := plugins.NewAsync(stuck, 16, 1<<20)
	tp := startProxy(t, proxy.Config{Observer: async}, plugins.FailOpen)
	srv := startRecordingServer(t)
	c, _, err := tp.Dialer().Dial(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 500
	for i := range n {
		c.WriteMessage(websocket.TextMessage, []byte("m"))
		recv(t, srv.got, "message")
		srv.send <- "r"
		readText(t, c)
		if i == 0 {
			<-stuck.entered // from here on the observer is stuck in its callback
		}
	}
	if async.Dropped() == 0 {
		t.Fatal("nothing was dropped although the observer was stuck: it was not behind the queue")
	}
	close(stuck.release)
	c.Close()
	tp.stop()
	async.Close()
}

// sleepyObserver takes 10 ms over every event: a UI or a network feed on a bad day.
type sleepyObserver struct{ plugins.NopObserver }

func (sleepyObserver) Message(*plugins.Record) { time.Sleep(10 * time.Millisecond) }

// BenchmarkObserverCost relays 64 B messages client → server → client through the
// proxy, with the in-memory event log only ("log") and with, beside it, an observer
// that takes 10 ms per event behind plugins.NewAsync ("slow-async"). The relay must
// not wait for the slow one: compare the two with benchstat
// (go test -run '^$' -bench ObserverCost -count 10 ./proxy).
func BenchmarkObserverCost(b *testing.B) {
	for _, tc := range []struct {
		name string
		obs  func() (plugins.Observer, func())
	}{
		{"log", func() (plugins.Observer, func()) { return nil, func() {} }},
		{"slow-async", func() (plugins.Observer, func()) {
			a := plugins.NewAsync(sleepyObserver{}, 64, 1<<20)
			return a, a.Close
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			obs, done := tc.obs()
			defer done()
			tp := startProxyWithEventSink(b, proxy.Config{Observer: obs}, io.Discard, plugins.FailOpen)
			echo := wsrStartEcho(b, false)
			c, _, err := tp.Dialer().Dial(echo.URL, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := bytes.Repeat([]byte("x"), 64)
			b.SetBytes(64)
			b.ReportAllocs()
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() {
				for range b.N {
					if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for range b.N {
				if _, _, err := c.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.StopTimer() // draining the slow observer's queue is not the relay's time
		})
	}
}
