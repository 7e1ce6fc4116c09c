package ui_test

// Helpers for browser_test.go: a wstap proxy whose observer is a history (behind
// the asynchronous queue, as wstap --ui runs it), the UI serving that history, a
// WebSocket app behind the proxy and a client that talks to it through the proxy;
// and the steps a person takes in the page (click, type, wait for what the page
// shows, take a screenshot).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/internal/browsertest"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/base64"
	_ "github.com/wstap/wstap/plugins/replace"
	_ "github.com/wstap/wstap/plugins/scope"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/ui"
)

// startUI serves st on 127.0.0.1:0 until the test ends, and returns the server
// and its base URL (http://127.0.0.1:PORT).
func startUI(t *testing.T, st *history.Store, info ui.Info, lost func() int64) (*ui.Server, string) {
	t.Helper()
	return startUIWith(t, ui.Config{Store: st, Info: info, Lost: lost})
}

// startUIWith serves the UI cfg describes on 127.0.0.1:0 until the test ends, and
// returns the server and its base URL.
func startUIWith(t *testing.T, cfg ui.Config) (*ui.Server, string) {
	t.Helper()
	srv, err := ui.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := wstest.Serve(t, "ui", srv.Serve)
	return srv, "http://" + addr
}

// uiEnv is a proxy recording into a history, the UI showing it, and an app behind
// the proxy.
type uiEnv struct {
	Store *history.Store
	UI    *ui.Server
	Base  string // the UI: http://127.0.0.1:PORT
	Proxy *url.URL
	App   string // the app's host:port
}

// The app's behaviour and the proxy's chain: the client's "apple" becomes
// "banana" on its way to the app; the /feed endpoint speaks base64, which a codec
// decodes for that connection only.
const (
	appSubprotocol = "chat.v1"
	feedPath       = "/feed"
	chatPath       = "/chat"
)

// startEnv starts the proxy, the UI and the app.
func startEnv(t *testing.T) *uiEnv {
	t.Helper()
	st := history.New(0, "")
	async := plugins.NewAsync(st, 1<<14, 64<<20)

	var chain []plugins.Element
	for _, spec := range []struct {
		name string
		opts map[string]string
	}{
		{"scope", map[string]string{"url": "*" + feedPath + "*"}},
		{"base64", nil},
		{"scope", nil},
		{"replace", map[string]string{"dir": "c2s", "match": "apple", "with": "banana", "literal": "true"}},
	} {
		e, err := plugins.New(spec.name, spec.opts)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, e)
	}
	logs := &wstest.SyncBuffer{}
	addr := startProxy(t, logs, async, chain...)

	app := httptest.NewUnstartedServer(http.HandlerFunc(serveApp))
	app.Config.ErrorLog = log.New(logs, "app: ", 0)
	app.Start()
	t.Cleanup(app.Close)

	srv, base := startUI(t, st, ui.Info{Version: "test", Mode: "proxy", Proxy: addr}, async.Dropped)
	return &uiEnv{Store: st, UI: srv, Base: base, Proxy: &url.URL{Scheme: "http", Host: addr}, App: app.Listener.Addr().String()}
}

// startProxy runs a wstap proxy with the hook chain of elems on 127.0.0.1:0,
// feeding obs (which it closes, when it is a plugins.Async, once the proxy has
// stopped), until the test ends; its logs go to logs, and into the test's log
// when it fails. It returns the proxy's address.
func startProxy(t *testing.T, logs *wstest.SyncBuffer, obs plugins.Observer, elems ...plugins.Element) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(logs, nil))
	c, err := plugins.NewChain(plugins.FailOpen, logger, elems...)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{CA: ca, Chain: c, Observer: obs, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := wstest.Serve(t, "proxy", p.Serve)
	t.Cleanup(func() {
		stop() // before the observer's queue closes
		if a, ok := obs.(*plugins.Async); ok {
			a.Close()
		}
		if t.Failed() {
			t.Logf("proxy logs:\n%s", logs.String())
		}
	})
	return addr
}

// serveApp is the WebSocket app: it answers each text message with JSON that
// echoes it (on /feed: the JSON in base64), and each binary message with the
// same bytes.
func serveApp(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{appSubprotocol}, EnableCompression: true,
		CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, http.Header{"X-App": {"wstap-ui-test"}})
	if err != nil {
		return
	}
	defer c.Close()
	for n := 1; ; n++ {
		typ, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		if typ == websocket.BinaryMessage {
			err = c.WriteMessage(typ, data)
		} else {
			in := data
			if r.URL.Path == feedPath {
				if in, err = base64.StdEncoding.DecodeString(string(data)); err != nil {
					return
				}
			}
			out, _ := json.Marshal(map[string]any{"n": n, "echo": string(in)})
			if r.URL.Path == feedPath {
				out = []byte(base64.StdEncoding.EncodeToString(out))
			}
			err = c.WriteMessage(websocket.TextMessage, out)
		}
		if err != nil {
			return
		}
	}
}

// appClient is a WebSocket client of the app, through the proxy.
type appClient struct {
	c       *websocket.Conn
	replies chan []byte
}

// dial opens path on the app through the proxy, sending cookie, and reads the
// app's answers in the background.
func (e *uiEnv) dial(t *testing.T, path, cookie string) *appClient {
	t.Helper()
	d := websocket.Dialer{Proxy: http.ProxyURL(e.Proxy), HandshakeTimeout: 10 * time.Second,
		Subprotocols: []string{appSubprotocol}, EnableCompression: true}
	c, resp, err := d.Dial("ws://"+e.App+path+"?room=lobby", http.Header{"Cookie": {cookie}, "Origin": {"http://" + e.App}})
	if err != nil {
		t.Fatalf("dial %s through the proxy: %v", path, err)
	}
	resp.Body.Close()
	ac := &appClient{c: c, replies: make(chan []byte, 1024)}
	go func() {
		defer close(ac.replies)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			ac.replies <- data
		}
	}()
	t.Cleanup(func() { c.Close() })
	return ac
}

// send sends a message and waits for the app's answer.
func (ac *appClient) send(t *testing.T, binary bool, data []byte) {
	t.Helper()
	typ := websocket.TextMessage
	if binary {
		typ = websocket.BinaryMessage
	}
	if err := ac.c.WriteMessage(typ, data); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ac.replies:
		if !ok {
			t.Fatal("the app closed the connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from the app")
	}
}

// close closes the connection with 1000 and waits for the app's close.
func (ac *appClient) close(t *testing.T) {
	t.Helper()
	ac.c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
	for range ac.replies { // until the app's close frame ends the reader
	}
}

// --- the page ---------------------------------------------------------------------

// page is the UI open in a browser, and where its screenshots go.
type page struct {
	t     *testing.T
	b     *browsertest.Browser
	shots string
}

// openBrowser starts Chromium (1280×800) for the UI; screenshots go to the test's
// artifact directory (go test -artifacts keeps it, under -outputdir).
func openBrowser(t *testing.T, timeout time.Duration) *page {
	t.Helper()
	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 800, Timeout: timeout})
	dir := t.ArtifactDir()
	t.Logf("screenshots in %s", dir)
	p := &page{t: t, b: b, shots: dir}
	p.run("sizing the page", chromedp.EmulateViewport(1280, 800))
	return p
}

// run runs chromedp actions, failing the test on error.
func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.b.Ctx, actions...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *page, js string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	v, err := chromedp.Run(p.b.Ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		p.fail("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor waits (10 s at most) until the JavaScript expression js is truthy.
func (p *page) waitFor(what, js string) {
	p.t.Helper()
	_, err := chromedp.Run(p.b.Ctx, chromedp.Poll[any](js,
		chromedp.WithPollingInterval(40*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		p.fail("waiting for %s (%s): %v", what, js, err)
	}
}

// fail saves a screenshot of the page as it is, then fails the test.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	if png, err := chromedp.Run(p.b.Ctx, chromedp.CaptureScreenshot()); err == nil {
		path := filepath.Join(p.shots, "failure.png")
		if os.WriteFile(path, png, 0o644) == nil {
			p.t.Logf("the page when it failed: %s", path)
		}
	}
	p.t.Fatalf(format, args...)
}

// shot saves a screenshot of the page as name.png.
func (p *page) shot(name string) {
	p.t.Helper()
	browsertest.Screenshot(p.t, p.b, filepath.Join(p.shots, name+".png"))
}

// click clicks the element css selects.
func (p *page) click(css string) {
	p.t.Helper()
	p.run("clicking "+css, chromedp.Click(chromedp.CSS(css)))
}

// colorScheme makes the page prefer the colour scheme v (light or dark).
func (p *page) colorScheme(v string) {
	p.t.Helper()
	p.run(v+" scheme", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}})
		return err
	}))
}

// darkShot saves a screenshot of the page in the dark colour scheme as name.png,
// then goes back to the light one.
func (p *page) darkShot(name string) {
	p.t.Helper()
	p.colorScheme("dark")
	p.shot(name)
	p.colorScheme("light")
}

// proxiedTab opens another tab in p's browser, in a browser context of its own
// (its own cookies and cache) whose loopback traffic, and only that, goes through
// the proxy at addr: the app a person tests, beside the UI's tab. It closes when
// the test ends.
func (p *page) proxiedTab(addr string) *page {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.b.Ctx, chromedp.WithNewBrowserContext(func(o *target.CreateBrowserContextParams) {
		o.ProxyServer = "http://" + addr
		o.ProxyBypassList = "*;<-loopback>" // see browsertest.Options.Proxy
	}))
	tab := *p.b
	tab.Ctx = ctx
	q := &page{t: p.t, b: &tab, shots: p.shots}
	q.run("opening a proxied tab", chromedp.EmulateViewport(1000, 700))
	p.t.Cleanup(cancel)
	return q
}

// fill replaces the text of the input or text area css selects with text, as
// typed (without Enter).
func (p *page) fill(css, text string) {
	p.t.Helper()
	eval[any](p, `(() => { const e = document.querySelector(`+js(css)+`); e.focus(); e.select(); })()`)
	if text == "" {
		text = kb.Backspace
	}
	p.run("typing in "+css, chromedp.SendKeys(chromedp.CSS(css), text))
}

// typeIn replaces the text of the input css selects with text, as typed, then
// presses Enter.
func (p *page) typeIn(css, text string) {
	p.t.Helper()
	eval[any](p, `document.querySelector(`+js(css)+`).select()`) // typing replaces the selection
	if text == "" {
		text = kb.Backspace
	}
	p.run("typing in "+css, chromedp.SendKeys(chromedp.CSS(css), text+"\r"))
}

// total is the number of rows the page says the list has.
func (p *page) total() string {
	return eval[string](p, `document.querySelector("#result b")?.textContent || ""`)
}

// waitTotal waits until the page says the list has n rows.
func (p *page) waitTotal(n int) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("the list to have %d rows (it says %q)", n, p.total()),
		fmt.Sprintf(`document.querySelector("#result b")?.textContent === %q`, fmtNum(n)))
}

// fmtNum writes n as the page does (thousands separated by commas).
func fmtNum(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
