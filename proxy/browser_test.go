package proxy_test

// Real-browser tests: headless Chromium (Debian's chromium, driven with chromedp)
// uses wstap as its proxy for loopback URLs and trusts wstap's CA, and loads pages
// from an HTTPS test site on 127.0.0.1 whose WebSocket endpoint is coder/websocket
// with context takeover. See browser_helpers_test.go for the browser, the site and
// the scripted messages. Without Chromium these tests skip, or fail when CI is set.

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/replace"
	"github.com/wstap/wstap/proxy"
)

// TestBrowserWebSocket: the page and the server exchange text and binary messages
// (empty ones, 1 MiB ones, repetitive and random ones) through wstap with
// permessage-deflate and context takeover both ways; each side receives exactly what
// the other sent, and the JSONL log has every message and the negotiated extensions.
func TestBrowserWebSocket(t *testing.T) {
	brRequireTools(t)
	brNoLeaks(t)
	tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)

	pageMsgs := brScript(brScriptOptions{Who: "page", Seed: 1, N: 24})
	srvMsgs := brScript(brScriptOptions{Who: "server", Seed: 2, N: 24})
	pageMsgs = slices.Insert(pageMsgs, 3, brMsg{}, brMsg{Binary: true}) // empty text, empty binary
	pageMsgs = slices.Insert(pageMsgs, 10, brBig(3, ""))
	srvMsgs = slices.Insert(srvMsgs, 4, brMsg{Binary: true}, brMsg{})
	srvMsgs = slices.Insert(srvMsgs, 12, brBig(4, ""))
	x := &brExchange{Send: srvMsgs, Expect: len(pageMsgs), Result: make(chan brServerResult, 1)}
	site := brWSSite(t, pageMsgs, x)
	b := brStartChromium(t, tp)

	page, srv := brExchangeRun(t, b, tp, site, x)
	brCheckServerGot(t, srv, pageMsgs)
	brCheckPageGot(t, page, srvMsgs)
	brCheckTakeover(t, page, srv)

	none := make([]bool, max(len(pageMsgs), len(srvMsgs)))
	byDir := brCheckLog(t, tp, "wss://"+site.Listener.Addr().String()+"/ws", pageMsgs, srvMsgs, none, none)
	// The test means something only if compression was used: Chromium compresses
	// what the page sends, and coder/websocket whatever is above its threshold.
	for dir, evs := range byDir {
		compressed := 0
		for _, ev := range evs {
			if ev["compressed"] == true {
				compressed++
			} else if ev["len"].(float64) >= 16 && dir == "s2c" {
				t.Errorf("s2c message of %v bytes was not compressed: %v", ev["len"], ev["seq"])
			}
		}
		t.Logf("%s: %d of %d messages compressed", dir, compressed, len(evs))
		if compressed < len(evs)/2 {
			t.Errorf("%s: only %d of %d messages were compressed", dir, compressed, len(evs))
		}
	}
	brLogErrors(t, tp)
}

// TestBrowserReplaceRecompression: replace hooks rewrite some page → server messages
// (apple → banana) and some server → page messages (cherry → damson, so Chromium
// itself inflates what wstap re-compressed, with the window it negotiated). After
// the first rewrite in each direction wstap owns that direction's compression; at
// least 50 later messages each way, rewritten or not, 1 MiB ones included, must all
// arrive intact.
func TestBrowserReplaceRecompression(t *testing.T) {
	brRequireTools(t)
	brNoLeaks(t)
	c2sHook, err := plugins.New("replace", map[string]string{"dir": "c2s", "match": "apple", "with": "banana"})
	if err != nil {
		t.Fatal(err)
	}
	s2cHook, err := plugins.New("replace", map[string]string{"dir": "s2c", "match": "cherry", "with": "damson", "literal": "true"})
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen, c2sHook, s2cHook)

	const n, from = 72, 8
	pageMsgs := brScript(brScriptOptions{Who: "page", Seed: 5, N: n, Fruit: "apple", FruitFrom: from})
	srvMsgs := brScript(brScriptOptions{Who: "server", Seed: 6, N: n, Fruit: "cherry", FruitFrom: from})
	// 1 MiB messages after the first rewrite: the page's is rewritten, the server's is
	// not (so wstap deflates a large unmodified message that the server compressed
	// with back-references into history the page never saw in that form).
	pageMsgs = slices.Insert(pageMsgs, from+5, brBig(7, "apple"))
	srvMsgs = slices.Insert(srvMsgs, from+5, brBig(8, ""))
	wantServer, c2sMod := brReplaceAll(pageMsgs, "apple", "banana")
	wantPage, s2cMod := brReplaceAll(srvMsgs, "cherry", "damson")
	for _, d := range []struct {
		name string
		mod  []bool
	}{{"c2s", c2sMod}, {"s2c", s2cMod}} {
		first := slices.Index(d.mod, true)
		later, laterMod := len(d.mod)-first-1, 0
		for _, m := range d.mod[first+1:] {
			if m {
				laterMod++
			}
		}
		if first != from || later < 50 || laterMod < 10 || laterMod > later-20 {
			t.Fatalf("%s script: first rewrite at %d, %d messages after it (%d rewritten); want %d, ≥50, some of each", d.name, first, later, laterMod, from)
		}
	}

	x := &brExchange{Send: srvMsgs, Expect: len(pageMsgs), Result: make(chan brServerResult, 1)}
	site := brWSSite(t, pageMsgs, x)
	b := brStartChromium(t, tp)

	page, srv := brExchangeRun(t, b, tp, site, x)
	brCheckServerGot(t, srv, wantServer)
	brCheckPageGot(t, page, wantPage)
	brCheckTakeover(t, page, srv)

	byDir := brCheckLog(t, tp, "wss://"+site.Listener.Addr().String()+"/ws", wantServer, wantPage, c2sMod, s2cMod)
	// The originals after the first rewrite were compressed by their senders with
	// context takeover: these are the messages wstap had to inflate and deflate again.
	for dir, evs := range byDir {
		compressed := 0
		for _, ev := range evs[min(from+1, len(evs)):] {
			if ev["compressed"] == true {
				compressed++
			}
		}
		t.Logf("%s: %d compressed messages after the first rewrite", dir, compressed)
		if compressed < 40 {
			t.Errorf("%s: only %d compressed messages after the first rewrite; the test needs context takeover to matter", dir, compressed)
		}
	}
	brLogErrors(t, tp)
}

// brCheckTakeover checks both ends negotiated permessage-deflate with context
// takeover, and that the page's close (1000) reached the server and came back.
func brCheckTakeover(t *testing.T, page brPageResult, srv brServerResult) {
	t.Helper()
	for who, ext := range map[string]string{"page (ws.extensions)": page.Extensions, "server": srv.Extensions} {
		if !strings.HasPrefix(ext, "permessage-deflate") || strings.Contains(ext, "no_context_takeover") {
			t.Errorf("%s negotiated %q; want permessage-deflate with context takeover", who, ext)
		}
	}
	if srv.Close != websocket.StatusNormalClosure {
		t.Errorf("server saw close %d, want 1000", srv.Close)
	}
	if page.Close.Code != 1000 || page.Close.Reason != "page done" || !page.Close.Clean {
		t.Errorf("page saw close %+v, want a clean 1000 \"page done\"", page.Close)
	}
}

// TestBrowserPlainPage: an ordinary HTTPS page loads completely through wstap: a
// 2 MiB script (chunked, gzip) that runs, a PNG that decodes to the exact pixels,
// and an SSE stream whose events arrive one at a time (each is sent only after the
// page acknowledged the previous one, so a buffering proxy fails).
func TestBrowserPlainPage(t *testing.T) {
	brRequireTools(t)
	brNoLeaks(t)
	tp := startProxy(t, proxy.Config{UpstreamInsecure: true}, plugins.FailOpen)
	p := newBrPlain(t)
	site := brStartSite(t, p.mux())
	b := brStartChromium(t, tp)

	brNavigate(t, b, tp, site.URL+"/")
	res := brPoll[brPlainResult](t, b, "pageResult")
	if !res.OK {
		t.Fatalf("page failed: %s (SSE handler: %v, %d SSE errors)", res.Error, p.brSSEError(), res.SSEErrors)
	}
	if res.Big == nil {
		t.Error("the large script did not run")
	} else if res.Big.Lines != p.lines || res.Big.Chars != p.chars || res.Big.FNV != p.scriptFNV {
		t.Errorf("large script: page computed %+v, want lines %d chars %d fnv %d", *res.Big, p.lines, p.chars, p.scriptFNV)
	}
	if !p.gzipped.Load() {
		t.Error("the script request did not accept gzip (Accept-Encoding lost on the way)")
	}
	if res.Image.W != p.imgW || res.Image.H != p.imgH || res.Image.SHA != p.pixSHA {
		t.Errorf("image: %dx%d pixels sha256 %.12s…, want %dx%d %.12s…", res.Image.W, res.Image.H, res.Image.SHA, p.imgW, p.imgH, p.pixSHA)
	}
	if len(res.SSE) != len(p.events) {
		t.Errorf("SSE: page got %d events, want %d", len(res.SSE), len(p.events))
	}
	for i := range min(len(res.SSE), len(p.events)) {
		if res.SSE[i].ID != strconv.Itoa(i) || res.SSE[i].Data != p.events[i] {
			t.Errorf("SSE event %d: id %q data %q, want %d %q", i, res.SSE[i].ID, res.SSE[i].Data, i, p.events[i])
		}
	}
	if res.SSEErrors != 0 || p.sseRequests.Load() != 1 {
		t.Errorf("SSE: %d error events and %d stream requests, want none and 1", res.SSEErrors, p.sseRequests.Load())
	}
	if err := p.brSSEError(); err != nil {
		t.Errorf("SSE handler: %v", err)
	}
	if opens := tp.Events(t, "open"); len(opens) != 0 {
		t.Errorf("a page without WebSockets logged WebSocket connections: %v", opens)
	}
	brLogErrors(t, tp)
}
