package ui_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/har"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/ui"
	"github.com/wstap/wstap/wsframe"
)

// Payloads from traffic that a page must show as text.
const (
	xssPayload = `<img src=x onerror=alert(1)>`
	escPayload = "\x1b[2J\x1b]0;owned\x07red"
)

// fillStore adds two connections to st: c1 (ws://chat.example/chat, closed) with
// n text messages each way and, for c1, one XSS and one escape payload; c2
// (wss://feed.example/feed, open) with a binary message and a decoded, modified one.
func fillStore(st *history.Store, n int) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	c1 := &plugins.Conn{ID: "c1", URL: &url.URL{Scheme: "ws", Host: "chat.example", Path: "/chat"}, Mode: plugins.Proxy,
		Method: "GET", Target: "/chat", Proto: "HTTP/1.1", Request: map[string][]string{"Host": {"chat.example"}, "Cookie": {"sid=<b>42</b>"}},
		Status: 101, Reason: "Switching Protocols", ResponseProto: "HTTP/1.1", Response: map[string][]string{"Upgrade": {"websocket"}},
		Client: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}, Server: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 80}}
	c2 := &plugins.Conn{ID: "c2", URL: &url.URL{Scheme: "wss", Host: "feed.example", Path: "/feed"}, Mode: plugins.Proxy}
	st.Opened(c1, t0)
	st.Opened(c2, t0.Add(time.Millisecond))
	seq := map[plugins.Direction]uint64{}
	msg := func(c *plugins.Conn, dir plugins.Direction, op wsframe.Opcode, p string, f func(*plugins.Record)) {
		r := &plugins.Record{Conn: c, Dir: dir, Seq: seq[dir], Opcode: op, Time: t0.Add(time.Duration(seq[plugins.ClientToServer]+seq[plugins.ServerToClient]) * time.Millisecond),
			Payload: []byte(p), Len: int64(len(p)), Frames: 1, Hooked: true}
		seq[dir]++
		if f != nil {
			f(r)
		}
		st.Message(r)
	}
	for i := range n {
		msg(c1, plugins.ClientToServer, wsframe.OpText, fmt.Sprintf(`{"op":"say","n":%d}`, i), nil)
		msg(c1, plugins.ServerToClient, wsframe.OpText, fmt.Sprintf(`{"op":"echo","n":%d}`, i), nil)
	}
	msg(c1, plugins.ServerToClient, wsframe.OpText, xssPayload, nil)
	msg(c1, plugins.ServerToClient, wsframe.OpText, escPayload, nil)
	msg(c1, plugins.ClientToServer, wsframe.OpPing, "p", func(r *plugins.Record) { r.Hooked = false })
	msg(c2, plugins.ServerToClient, wsframe.OpBinary, "\x00\x01\xff", nil)
	msg(c2, plugins.ClientToServer, wsframe.OpText, "eyJhIjoiYmFuYW5hIn0=", func(r *plugins.Record) {
		r.Decoded = []byte(`{"a":"banana"}`)
		r.Modified, r.Original, r.OriginalLen = true, []byte("eyJhIjoiYXBwbGUifQ=="), 20
		r.OriginalDecoded = []byte(`{"a":"apple"}`)
	})
	st.Closed(c1, plugins.CloseEvent{Time: t0.Add(time.Second), Code: 1000, Reason: "<script>bye</script>", By: "client"})
}

// request sends a request to the UI at base with the given changes and returns the
// response, its body read.
func request(t *testing.T, method, base, path string, edit func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// TestAPISecurity: the token, Host and Origin rules, and the headers every
// response carries.
func TestAPISecurity(t *testing.T) {
	st := history.New(0, "")
	fillStore(st, 1)
	srv, base := startUI(t, st, ui.Info{Mode: "proxy"}, nil)
	port := base[strings.LastIndex(base, ":")+1:]
	tok := srv.Token()
	if len(tok) != 32 {
		t.Fatalf("token %q: want 128 random bits in hex", tok)
	}
	_, base2 := startUI(t, history.New(0, ""), ui.Info{}, nil)
	srv2Port := base2[strings.LastIndex(base2, ":")+1:]

	cases := []struct {
		name, method, path string
		edit               func(*http.Request)
		status             int
	}{
		{"no token", "GET", "/api/connections", nil, 401},
		{"wrong token", "GET", "/api/connections", bearer(strings.Repeat("0", 32)), 401},
		{"empty bearer", "GET", "/api/connections", bearer(""), 401},
		{"token in the query is not a token", "GET", "/api/connections?token=" + tok, nil, 401},
		{"wrong cookie", "GET", "/api/messages", func(r *http.Request) { r.Header.Set("Cookie", "wstap_ui=nope") }, 401},
		{"bearer", "GET", "/api/connections", bearer(tok), 200},
		{"cookie", "GET", "/api/messages", func(r *http.Request) { r.Header.Set("Cookie", "wstap_ui="+tok) }, 200},
		{"every endpoint needs it: detail", "GET", "/api/messages/0", nil, 401},
		{"every endpoint needs it: events", "GET", "/api/events", nil, 401},
		{"every endpoint needs it: export", "GET", "/api/export.har", nil, 401},
		{"every endpoint needs it: export jsonl", "GET", "/api/export.jsonl", nil, 401},
		{"every endpoint needs it: info", "GET", "/api/info", nil, 401},
		{"the page itself has no data and no token", "GET", "/", nil, 200},
		{"foreign Host (DNS rebinding)", "GET", "/api/connections", func(r *http.Request) {
			bearer(tok)(r)
			r.Host = "evil.example:" + port
		}, 421},
		{"foreign Host for the page too", "GET", "/", func(r *http.Request) { r.Host = "evil.example:" + port }, 421},
		{"another port", "GET", "/api/connections", func(r *http.Request) { bearer(tok)(r); r.Host = "127.0.0.1:" + srv2Port }, 421},
		{"no port", "GET", "/api/connections", func(r *http.Request) { bearer(tok)(r); r.Host = "127.0.0.1" }, 421},
		{"localhost", "GET", "/api/connections", func(r *http.Request) { bearer(tok)(r); r.Host = "localhost:" + port }, 200},
		{"login, foreign Origin", "POST", "/api/login", func(r *http.Request) {
			r.Header.Set("X-Wstap-Token", tok)
			r.Header.Set("Origin", "http://evil.example")
		}, 403},
		{"login, no Origin", "POST", "/api/login", func(r *http.Request) { r.Header.Set("X-Wstap-Token", tok) }, 403},
		{"login, wrong token", "POST", "/api/login", func(r *http.Request) {
			r.Header.Set("X-Wstap-Token", "x")
			r.Header.Set("Origin", base)
		}, 401},
		{"login", "POST", "/api/login", func(r *http.Request) {
			r.Header.Set("X-Wstap-Token", tok)
			r.Header.Set("Origin", base)
		}, 204},
		{"event stream, foreign Origin", "GET", "/api/events", func(r *http.Request) {
			bearer(tok)(r)
			r.Header.Set("Origin", "http://evil.example")
		}, 403},
		{"a POST to a GET endpoint, foreign Origin", "POST", "/api/connections", func(r *http.Request) {
			bearer(tok)(r)
			r.Header.Set("Origin", "http://127.0.0.1:1")
		}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := request(t, tc.method, base, tc.path, tc.edit)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %s %q; want %d", tc.method, tc.path, resp.Status, body, tc.status)
			}
			h := resp.Header
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
				if h.Get(k) != want {
					t.Errorf("%s: %q, want %q", k, h.Get(k), want)
				}
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy %q allows inline script", csp)
			}
			if tc.status == 401 && strings.Contains(body, tok) {
				t.Errorf("a refusal shows the token: %q", body)
			}
			if tc.name == "login" {
				var c *http.Cookie
				for _, k := range resp.Cookies() {
					if k.Name == "wstap_ui" {
						c = k
					}
				}
				if c == nil || c.Value != tok || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
					t.Errorf("login cookie %+v: want the token, HttpOnly, SameSite=Strict", c)
				}
			}
		})
	}
}

// TestAPITrafficIsText: payloads, header values and close reasons come back as
// JSON strings with HTML escaped, never as markup, and previews replace control
// characters.
func TestAPITrafficIsText(t *testing.T) {
	st := history.New(0, "")
	fillStore(st, 1)
	srv, base := startUI(t, st, ui.Info{Mode: "proxy"}, nil)
	for _, path := range []string{"/api/messages?conn=c1", "/api/connections/c1", "/api/connections"} {
		resp, body := request(t, "GET", base, path, bearer(srv.Token()))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("%s: %s, %s", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		if strings.ContainsAny(body, "<>\x1b\x07") {
			t.Errorf("%s: the JSON holds raw markup or control characters:\n%s", path, body)
		}
	}
	var page struct {
		Items []struct{ Preview string }
	}
	_, body := request(t, "GET", base, "/api/messages?conn=c1&dir=s2c", bearer(srv.Token()))
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	var previews []string
	for _, it := range page.Items {
		previews = append(previews, it.Preview)
	}
	if !contains(previews, xssPayload) {
		t.Errorf("previews %q: want the XSS payload as it is, as text", previews)
	}
	for _, p := range previews {
		if strings.ContainsAny(p, "\x1b\x07") {
			t.Errorf("preview %q keeps terminal escapes", p)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestAPIQueries: paging and every filter of /api/messages, and the connection
// list's glob.
func TestAPIQueries(t *testing.T) {
	st := history.New(0, "")
	fillStore(st, 150)
	srv, base := startUI(t, st, ui.Info{Mode: "proxy"}, nil)
	type page struct {
		Total, Offset int
		Items         []struct {
			ID         any // a number for messages, a string for connections
			Conn, Dir  string
			Opcode     string
			Flags      []string
			Preview    string
			PreviewHex bool `json:"preview_hex"`
		}
	}
	get := func(path string) page {
		t.Helper()
		resp, body := request(t, "GET", base, path, bearer(srv.Token()))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Status, body)
		}
		var p page
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		path  string
		total int
		check func(p page) string
	}{
		{"/api/messages", 304, func(p page) string {
			if len(p.Items) != 100 || p.Items[0].Preview != `{"op":"say","n":0}` {
				return "want the first 100, oldest first"
			}
			return ""
		}},
		{"/api/messages?offset=300&limit=10", 304, func(p page) string {
			if len(p.Items) != 4 || p.Offset != 300 {
				return "want the last 4"
			}
			return ""
		}},
		{"/api/messages?limit=100000", 304, func(p page) string {
			if len(p.Items) != 304 {
				return "a large limit is capped, not refused"
			}
			return ""
		}},
		{"/api/messages?control=1", 305, nil},
		{"/api/messages?type=ping", 1, nil},
		{"/api/messages?dir=c2s", 151, nil},
		{"/api/messages?dir=s2c&conn=c1", 152, nil},
		{"/api/messages?type=binary", 1, func(p page) string {
			if !p.Items[0].PreviewHex || p.Items[0].Preview == "" {
				return "a binary preview is hex"
			}
			return ""
		}},
		{"/api/messages?q=ECHO", 150, nil},
		{"/api/messages?q=" + url.QueryEscape(`"n":149}`), 2, nil},
		{"/api/messages?re=" + url.QueryEscape(`"n":1[0-4]\d\}`), 100, nil},
		{"/api/messages?q=banana", 1, func(p page) string {
			if p.Items[0].Preview != `{"a":"banana"}` {
				return "the search and the preview see the decoded payload"
			}
			return ""
		}},
		{"/api/messages?q=apple", 0, nil}, // what was received before a hook changed it is not searched
		{"/api/messages?flags=modified,decoded", 1, nil},
		{"/api/messages?flags=dropped", 0, nil},
		{"/api/messages?url=*feed.example*", 2, nil},
		{"/api/messages?url=feed.example", 2, nil},
		{"/api/messages?url=*nowhere*", 0, nil},
		{"/api/connections?url=*.example/chat", 1, nil},
		{"/api/connections", 2, nil},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			p := get(tc.path)
			if p.Total != tc.total {
				t.Fatalf("total %d, want %d", p.Total, tc.total)
			}
			if tc.check != nil {
				if msg := tc.check(p); msg != "" {
					t.Errorf("%s: %+v", msg, p.Items[:min(len(p.Items), 3)])
				}
			}
		})
	}
	for _, bad := range []string{"/api/messages?dir=up", "/api/messages?re=(", "/api/messages?flags=shiny", "/api/messages?offset=-1", "/api/messages?limit=x", "/api/messages/x"} {
		resp, body := request(t, "GET", base, bad, bearer(srv.Token()))
		if resp.StatusCode != 400 || !strings.HasPrefix(body, "wstap ui: ") {
			t.Errorf("%s: %s %q; want 400 and a wstap ui: line", bad, resp.Status, body)
		}
	}
	if resp, _ := request(t, "GET", base, "/api/messages/99999", bearer(srv.Token())); resp.StatusCode != 404 {
		t.Errorf("a message that does not exist: %s", resp.Status)
	}
	if resp, _ := request(t, "GET", base, "/api/connections/c9", bearer(srv.Token())); resp.StatusCode != 404 {
		t.Errorf("a connection that does not exist: %s", resp.Status)
	}
}

// TestAPIDetailAndEviction: a message's payloads in full, and past the history's
// limit, evicted (the row stays).
func TestAPIDetailAndEviction(t *testing.T) {
	st := history.New(2000, "")
	fillStore(st, 100)
	srv, base := startUI(t, st, ui.Info{Mode: "proxy"}, nil)
	type detail struct {
		Evicted bool
		Parts   map[string]struct {
			Len    int
			Base64 string
		}
	}
	get := func(path string, v any) {
		t.Helper()
		resp, body := request(t, "GET", base, path, bearer(srv.Token()))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Status, body)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatal(err)
		}
	}
	var last struct {
		Items []struct{ ID int }
	}
	get("/api/messages?flags=modified", &last)
	var d detail
	get(fmt.Sprintf("/api/messages/%d", last.Items[0].ID), &d)
	for part, want := range map[string]string{"payload": "eyJhIjoiYmFuYW5hIn0=", "decoded": `{"a":"banana"}`,
		"original": "eyJhIjoiYXBwbGUifQ==", "original_decoded": `{"a":"apple"}`} {
		got, _ := base64.StdEncoding.DecodeString(d.Parts[part].Base64)
		if string(got) != want || d.Parts[part].Len != len(want) {
			t.Errorf("part %s: %q (len %d), want %q", part, got, d.Parts[part].Len, want)
		}
	}
	var first detail
	get("/api/messages/0", &first)
	if !first.Evicted || first.Parts["payload"].Base64 != "" {
		t.Errorf("the oldest message, past a 2000-byte history: %+v; want evicted, no payload", first)
	}
	var all struct{ Total int }
	get("/api/messages?flags=evicted", &all)
	if all.Total == 0 {
		t.Errorf("no row is marked evicted")
	}
	var info struct {
		History history.Stats
	}
	get("/api/info", &info)
	if info.History.Used > 2000 || info.History.Evicted == 0 {
		t.Errorf("history %+v: want at most 2000 bytes held and rows evicted", info.History)
	}
}

// TestAPIExports: the JSONL export reads back as the same events; the HAR export
// is Chrome's format with the same messages; conns= selects connections.
func TestAPIExports(t *testing.T) {
	st := history.New(0, "")
	fillStore(st, 3)
	srv, base := startUI(t, st, ui.Info{Mode: "proxy", Version: "test"}, nil)
	resp, body := request(t, "GET", base, "/api/export.jsonl", bearer(srv.Token()))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment; filename=\"wstap-") {
		t.Fatalf("export.jsonl: %s %v", resp.Status, resp.Header)
	}
	var evs []*eventlog.Event
	if err := eventlog.Read(strings.NewReader(body), func(e *eventlog.Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var payloads []string
	for _, e := range evs {
		kinds[e.Event]++
		if e.Event == "message" {
			payloads = append(payloads, string(e.Payload))
		}
	}
	if kinds["open"] != 2 || kinds["close"] != 1 || kinds["message"] != 11 || !contains(payloads, escPayload) {
		t.Errorf("export.jsonl: %v, payloads %q", kinds, payloads)
	}

	resp, body = request(t, "GET", base, "/api/export.har?conns=c2", bearer(srv.Token()))
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), ".har\"") {
		t.Fatalf("export.har: %s %v", resp.Status, resp.Header)
	}
	var doc struct {
		Log struct {
			Version string
			Creator struct{ Name, Version string }
			Entries []struct {
				ResourceType string `json:"_resourceType"`
				Request      struct{ URL string }
				Messages     []struct {
					Type   string
					Opcode int
					Data   string
				} `json:"_webSocketMessages"`
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("export.har is not JSON: %v", err)
	}
	l := doc.Log
	if l.Version != "1.2" || l.Creator.Name != "wstap" || l.Creator.Version != "test" || len(l.Entries) != 1 {
		t.Fatalf("export.har?conns=c2: %+v", l)
	}
	e := l.Entries[0]
	if e.ResourceType != "websocket" || e.Request.URL != "wss://feed.example/feed" || len(e.Messages) != 2 ||
		e.Messages[0].Type != "receive" || e.Messages[0].Opcode != 2 || e.Messages[0].Data != base64.StdEncoding.EncodeToString([]byte("\x00\x01\xff")) {
		t.Errorf("export.har entry: %+v", e)
	}
	back, err := har.ReadLog(strings.NewReader(body))
	if err != nil || back.Connections != 1 || back.Messages != 2 {
		t.Errorf("export.har read back: %+v, %v", back, err)
	}
}

// TestAPIEvents: the event stream says the history grew, in coalesced states.
func TestAPIEvents(t *testing.T) {
	st := history.New(0, "")
	srv, base := startUI(t, st, ui.Info{Mode: "proxy"}, nil)
	req, _ := http.NewRequest("GET", base+"/api/events", nil)
	bearer(srv.Token())(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	states := make(chan map[string]any, 100)
	go func() {
		defer close(states)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: ")); ok {
				var m map[string]any
				json.Unmarshal(d, &m)
				states <- m
			}
		}
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case m := <-states:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no state event within 10 s")
		}
		return nil
	}
	if m := next(); m["rows"] != float64(0) {
		t.Fatalf("first state %v: want 0 rows", m)
	}
	// A burst of changes arrives as few states, the last one complete.
	for range 5 {
		fillStore(st, 200)
	}
	var m map[string]any
	for m == nil || m["rows"] != float64(st.Stats().Rows) {
		m = next()
	}
	resp.Body.Close()
	n := 1
	for range states {
		n++
	}
	if n >= 100 { // one per 200 ms: a burst of thousands of changes is a few events
		t.Errorf("%d state events for one burst of %d changes; want them coalesced", n, st.Stats().Rows)
	}
}
