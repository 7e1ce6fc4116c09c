package ui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/intercept"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/all"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/ui"
)

// interceptEnv is the encrypted-chat scheme behind the proxy (base64 of AES-GCM,
// decoded by --hook base64 --hook aes), with the breakpoint after the codecs, a
// history, and the UI serving both.
type interceptEnv struct {
	Store    *history.Store
	Ctl      *intercept.Controller
	Base     string // the UI
	Token    string
	Box      *chatcrypto.Box
	Client   *websocket.Conn // through the proxy
	ToServer chan []byte     // what the app received
	ToClient chan []byte     // what the client received
	Send     chan []byte     // what the app is to send
}

func startInterceptEnv(t *testing.T) *interceptEnv {
	t.Helper()
	box, err := chatcrypto.NewHex(chatcrypto.DemoKey)
	if err != nil {
		t.Fatal(err)
	}
	e := &interceptEnv{Store: history.New(0, ""), Box: box, ToServer: make(chan []byte, 16), ToClient: make(chan []byte, 16),
		Send: make(chan []byte, 16)}
	e.Ctl = intercept.New(intercept.Config{})
	b64, err := plugins.New("base64", nil)
	if err != nil {
		t.Fatal(err)
	}
	aesCodec, err := plugins.New("aes", map[string]string{"key": "hex:" + chatcrypto.DemoKey})
	if err != nil {
		t.Fatal(err)
	}
	logs := &wstest.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	chain, err := plugins.NewChain(plugins.FailOpen, logger, b64, aesCodec, e.Ctl)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The history is fed directly (no queue): the test reads it right after.
	p, err := proxy.New(proxy.Config{CA: ca, Chain: chain, Observer: e.Store, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr, stopProxy := wstest.Serve(t, "proxy", p.Serve)

	srv, err := ui.New(ui.Config{Store: e.Store, Info: ui.Info{Mode: "proxy"}, Intercept: e.Ctl, Breakpoint: "after base64 → aes"})
	if err != nil {
		t.Fatal(err)
	}
	uiAddr, stopUI := wstest.Serve(t, "ui", srv.Serve)
	e.Base, e.Token = "http://"+uiAddr, srv.Token()

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		go func() {
			for p := range e.Send {
				if c.WriteMessage(websocket.TextMessage, p) != nil {
					return
				}
			}
		}()
		for {
			_, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			e.ToServer <- p
		}
	}))
	t.Cleanup(func() {
		close(e.Send)
		app.Close()
		stopProxy()
		stopUI()
		e.Ctl.Close()
		if t.Failed() {
			t.Logf("proxy logs:\n%s", logs.String())
		}
	})
	d := websocket.Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr}), HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(app.URL, "http")+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e.Client = c
	go func() {
		for {
			_, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			e.ToClient <- p
		}
	}()
	return e
}

// do sends a request to the UI as its own page would (token, same Origin, JSON
// body) and decodes the JSON answer into out (when not nil); it returns the
// status and the raw body.
func (e *interceptEnv) do(t *testing.T, method, path string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.Token)
	req.Header.Set("Origin", e.Base)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// must is do that fails the test unless the answer is 200.
func (e *interceptEnv) must(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	if status, raw := e.do(t, method, path, body, out); status != 200 {
		t.Fatalf("%s %s: %d %s", method, path, status, raw)
	}
}

// recvPlain waits for a message on ch and decrypts it with the app's key.
func (e *interceptEnv) recvPlain(t *testing.T, ch <-chan []byte, what string) (plain, wire string) {
	t.Helper()
	select {
	case w := <-ch:
		p, err := e.Box.Open(w)
		if err != nil {
			t.Fatalf("%s: %q does not decrypt with the app's key: %v", what, w, err)
		}
		return string(p), string(w)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing arrived", what)
	}
	return "", ""
}

type heldList struct {
	Version uint64 `json:"version"`
	Items   []struct {
		ID      uint64           `json:"id"`
		Conn    string           `json:"conn"`
		Dir     string           `json:"dir"`
		Seq     uint64           `json:"seq"`
		Order   string           `json:"order"`
		Codecs  []string         `json:"codecs"`
		Payload history.PartView `json:"payload"`
		Wire    history.PartView `json:"wire"`
	} `json:"items"`
}

// waitHeld long-polls the held list until it has n messages.
func (e *interceptEnv) waitHeld(t *testing.T, n int) heldList {
	t.Helper()
	var l heldList
	e.must(t, "GET", "/api/intercept/held", nil, &l)
	for deadline := time.Now().Add(10 * time.Second); len(l.Items) != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d held, want %d", len(l.Items), n)
		}
		e.must(t, "GET", "/api/intercept/held?wait=5&since="+itoa(l.Version), nil, &l)
	}
	return l
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestInterceptAPI drives the write side of the API as the page does, against the
// encrypted-chat scheme: a held message shows decrypted, an edit of its plaintext
// reaches the app encrypted again, injected plaintext reaches either side
// encrypted with a fresh nonce, resend sends a message again, drop and forward-all
// do what they say, and the history shows all of it.
func TestInterceptAPI(t *testing.T) {
	e := startInterceptEnv(t)
	var st map[string]any
	e.must(t, "PUT", "/api/intercept", map[string]any{"enabled": true, "rules": []string{"dir=c2s,match=transfer"}, "timeout": "1m"}, &st)
	if st["enabled"] != true || st["timeout"] != "1m0s" || st["breakpoint"] != "after base64 → aes" {
		t.Fatalf("settings %v", st)
	}

	// Held, shown decrypted; edited in plaintext; the app decrypts the edit.
	orig := `{"user":"alice","text":"transfer 5 to bob"}`
	if err := e.Client.WriteMessage(websocket.TextMessage, e.Box.Seal([]byte(orig))); err != nil {
		t.Fatal(err)
	}
	l := e.waitHeld(t, 1)
	h := l.Items[0]
	pl, _ := base64.StdEncoding.DecodeString(h.Payload.Base64)
	if string(pl) != orig || h.Dir != "c2s" || h.Order != "out" || strings.Join(h.Codecs, ",") != "base64,aes" || h.Conn != "c1" {
		t.Fatalf("held %+v (%q)", h, pl)
	}
	edited := `{"user":"alice","text":"transfer 5000 to mallory"}`
	e.must(t, "POST", "/api/intercept/held/"+itoa(h.ID)+"/forward", map[string]any{"text": edited}, nil)
	if got, _ := e.recvPlain(t, e.ToServer, "the edit"); got != edited {
		t.Fatalf("the app got %q", got)
	}
	if status, _ := e.do(t, "POST", "/api/intercept/held/"+itoa(h.ID)+"/forward", map[string]any{}, nil); status != 404 {
		t.Fatalf("forwarding twice: %d", status)
	}

	// Inject plaintext both ways.
	e.must(t, "POST", "/api/connections/c1/inject", map[string]any{"dir": "c2s", "text": `{"op":"balance"}`}, nil)
	got, wire1 := e.recvPlain(t, e.ToServer, "injected to the app")
	if got != `{"op":"balance"}` {
		t.Fatalf("the app got %q", got)
	}
	e.must(t, "POST", "/api/connections/c1/inject", map[string]any{"dir": "s2c", "text": `{"op":"hello client"}`}, nil)
	if got, _ := e.recvPlain(t, e.ToClient, "injected to the client"); got != `{"op":"hello client"}` {
		t.Fatalf("the client got %q", got)
	}
	// Raw bytes pass the codecs by.
	e.must(t, "POST", "/api/connections/c1/inject", map[string]any{"dir": "c2s", "hex": "68 69", "opcode": "text", "raw": true}, nil)
	select {
	case w := <-e.ToServer:
		if string(w) != "hi" {
			t.Fatalf("raw injection arrived as %q", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the raw injection did not arrive")
	}

	// Resend the injected balance request: same plaintext, a fresh nonce.
	var msgs struct {
		Items []history.Row `json:"items"`
	}
	e.must(t, "GET", "/api/messages?conn=c1&dir=c2s&flags=injected", nil, &msgs)
	if len(msgs.Items) != 2 {
		t.Fatalf("%d injected c2s rows: %+v", len(msgs.Items), msgs.Items)
	}
	e.must(t, "POST", "/api/messages/"+itoa(uint64(msgs.Items[0].ID))+"/resend", map[string]any{}, nil)
	got, wire2 := e.recvPlain(t, e.ToServer, "resent")
	if got != `{"op":"balance"}` || wire2 == wire1 {
		t.Fatalf("resent as %q (%q, first %q)", got, wire2, wire1)
	}
	// Resend with an edit.
	e.must(t, "POST", "/api/messages/"+itoa(uint64(msgs.Items[0].ID))+"/resend", map[string]any{"text": `{"op":"balance","all":true}`}, nil)
	if got, _ := e.recvPlain(t, e.ToServer, "resent edited"); got != `{"op":"balance","all":true}` {
		t.Fatalf("resent edited as %q", got)
	}

	// Drop one, then forward all of two.
	for _, p := range []string{"transfer 1", "transfer 2", "transfer 3"} {
		if err := e.Client.WriteMessage(websocket.TextMessage, e.Box.Seal([]byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	l = e.waitHeld(t, 3)
	e.must(t, "POST", "/api/intercept/held/"+itoa(l.Items[0].ID)+"/drop", map[string]any{}, nil)
	var all map[string]any
	e.must(t, "POST", "/api/intercept/forward-all", map[string]any{}, &all)
	if all["forwarded"] != float64(2) {
		t.Fatalf("forward-all: %v", all)
	}
	for _, want := range []string{"transfer 2", "transfer 3"} {
		if got, _ := e.recvPlain(t, e.ToServer, want); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}

	// The server's messages were never held (the rule says c2s).
	e.Send <- e.Box.Seal([]byte("transfer from the server"))
	if got, _ := e.recvPlain(t, e.ToClient, "s2c"); got != "transfer from the server" {
		t.Fatalf("client got %q", got)
	}

	// The history: the held rows, their releases (edited, dropped), injections.
	flags := map[string]int{}
	e.must(t, "GET", "/api/messages?conn=c1&limit=100", nil, &msgs)
	for _, r := range msgs.Items {
		for _, f := range r.Flags {
			flags[f]++
		}
	}
	for f, n := range map[string]int{"held": 4, "released": 4, "edited": 1, "dropped": 1, "injected": 5} {
		if flags[f] != n {
			t.Errorf("%d rows flagged %s, want %d (%v)", flags[f], f, n, flags)
		}
	}
}

// TestInterceptAPIRefuses: the write endpoints keep the UI's security rules and
// say what is wrong with a request.
func TestInterceptAPIRefuses(t *testing.T) {
	e := startInterceptEnv(t)
	post := func(path, ctype, origin, token, body string) (int, string) {
		req, _ := http.NewRequest("POST", e.Base+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	inject := `{"dir":"c2s","text":"x"}`
	for _, tc := range []struct {
		name                             string
		path, ctype, origin, token, body string
		status                           int
		says                             string
	}{
		{"no token", "/api/connections/c1/inject", "application/json", e.Base, "", inject, 401, "token"},
		{"wrong token", "/api/connections/c1/inject", "application/json", e.Base, strings.Repeat("0", 32), inject, 401, "token"},
		{"foreign origin", "/api/connections/c1/inject", "application/json", "http://evil.example", e.Token, inject, 403, "cross-origin"},
		{"no origin", "/api/intercept/forward-all", "application/json", "", e.Token, "{}", 403, "cross-origin"},
		{"a form post", "/api/connections/c1/inject", "application/x-www-form-urlencoded", e.Base, e.Token, "dir=c2s&text=x", 415, "JSON"},
		{"no content type", "/api/intercept/forward-all", "", e.Base, e.Token, "{}", 415, "JSON"},
		{"unknown field", "/api/connections/c1/inject", "application/json", e.Base, e.Token, `{"dir":"c2s","txt":"x"}`, 400, "unknown field"},
		{"bad dir", "/api/connections/c1/inject", "application/json", e.Base, e.Token, `{"dir":"up","text":"x"}`, 400, "dir"},
		{"two payloads", "/api/connections/c1/inject", "application/json", e.Base, e.Token, `{"dir":"c2s","text":"x","hex":"00"}`, 400, "once"},
		{"bad base64", "/api/connections/c1/inject", "application/json", e.Base, e.Token, `{"dir":"c2s","base64":"!!"}`, 400, "base64"},
		{"raw text not UTF-8", "/api/connections/c1/inject", "application/json", e.Base, e.Token, `{"dir":"c2s","hex":"ff","opcode":"text","raw":true}`, 400, "UTF-8"},
		{"no such connection", "/api/connections/c9/inject", "application/json", e.Base, e.Token, inject, 404, "c9"},
		{"no such held message", "/api/intercept/held/99/forward", "application/json", e.Base, e.Token, "{}", 404, "not held"},
		{"bad rule", "/api/intercept/check", "application/json", e.Base, e.Token, `{"rule":"dir=up"}`, 400, "want c2s, s2c or both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(tc.path, tc.ctype, tc.origin, tc.token, tc.body)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d %s; want %d saying %q", status, body, tc.status, tc.says)
			}
		})
	}
	// A bad rule in PUT names it, and changes nothing.
	status, body := e.do(t, "PUT", "/api/intercept", map[string]any{"enabled": true, "rules": []string{"dir=c2s", "match=("}}, nil)
	if status != 400 || !strings.Contains(body, `"rule":1`) || e.Ctl.Settings().Enabled {
		t.Fatalf("PUT with a bad rule: %d %s, enabled %v", status, body, e.Ctl.Settings().Enabled)
	}
	// A read-only UI (sniff, open) says so.
	srv, base := startUI(t, history.New(0, ""), ui.Info{Mode: "sniff"}, nil)
	req, _ := http.NewRequest("GET", base+"/api/intercept", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 409 || !strings.Contains(string(b), "read-only") {
		t.Fatalf("read-only UI: %d %s", resp.StatusCode, b)
	}
}

// TestInterceptEvents: the event stream says when a message is held.
func TestInterceptEvents(t *testing.T) {
	e := startInterceptEnv(t)
	e.must(t, "PUT", "/api/intercept", map[string]any{"enabled": true, "rules": []string{"dir=c2s"}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.Base+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var event string
	sent := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "intercept":
			var ev struct {
				Held    int  `json:"held"`
				Enabled bool `json:"enabled"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Held == 1 && ev.Enabled {
				return
			}
			if !sent {
				sent = true
				if err := e.Client.WriteMessage(websocket.TextMessage, e.Box.Seal([]byte("hold"))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Fatalf("no intercept event with the held message: %v", sc.Err())
}
