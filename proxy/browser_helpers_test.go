package proxy_test

// Helpers for browser_test.go: a headless Chromium (driven with chromedp) whose only
// proxied traffic is loopback, through a wstap proxy whose CA it trusts; an HTTPS
// test site on 127.0.0.1 with a page that exchanges scripted WebSocket messages with
// a coder/websocket endpoint (context takeover), and a plain page with a large
// script, an image and an SSE stream; and the scripted messages themselves. Every
// name starts with "br" so the package's other test files stay free to pick theirs.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/wstap/wstap/internal/browsertest"
	"go.uber.org/goleak"
)

// brTimeout bounds each browser test from Chromium's start to the last check.
const brTimeout = browsertest.DefaultTimeout

// brRequireTools skips the test when Chromium or certutil is missing, or fails it
// when CI is set: CI must never pass by running none of these tests.
func brRequireTools(t *testing.T) {
	t.Helper()
	browsertest.Require(t, true)
}

// brNoLeaks fails the test if goroutines it started are still running once every
// cleanup registered after this call has run. Call it first.
func brNoLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// brStartChromium starts a headless Chromium that sends loopback traffic (and only
// that) through tp and trusts tp's CA, and stops it, with every process it started,
// when the test ends.
func brStartChromium(t *testing.T, tp *testProxy) *browsertest.Browser {
	t.Helper()
	return browsertest.Start(t, browsertest.Options{Proxy: tp.Addr, CA: tp.CA.PEM(), Timeout: brTimeout})
}

// brNavigate loads url in the tab, checks the answer came with a certificate that
// wstap's CA issued (so the page really went through the proxy: the test site's
// own certificate is not trusted) and status 200.
func brNavigate(t *testing.T, b *browsertest.Browser, tp *testProxy, url string) {
	t.Helper()
	resp, err := chromedp.Run(b.Ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("loading %s: status %d %s", url, resp.Status, resp.StatusText)
	}
	want := tp.CA.Cert.Subject.CommonName
	if resp.SecurityDetails == nil || resp.SecurityDetails.Issuer != want {
		t.Fatalf("%s was not served with a certificate of wstap's CA %q: security details %+v", url, want, resp.SecurityDetails)
	}
}

// brPoll waits until the page sets window[name] and decodes it into v.
func brPoll[T any](t *testing.T, b *browsertest.Browser, name string) T {
	t.Helper()
	return browsertest.Poll[T](t, b, "window."+name)
}

// brStartSite serves mux over HTTPS on 127.0.0.1 with httptest's certificate, which
// Chromium does not trust: only wstap (Config.UpstreamInsecure) talks to it.
func brStartSite(t *testing.T, mux *http.ServeMux) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// brMsg is one WebSocket data message.
type brMsg struct {
	Binary bool
	Data   []byte
}

func (m brMsg) String() string {
	kind := "text"
	if m.Binary {
		kind = "binary"
	}
	sum := sha256.Sum256(m.Data)
	return fmt.Sprintf("%s, %d bytes, sha256 %x…", kind, len(m.Data), sum[:6])
}

// brWords is the vocabulary of the generated text: repetitive, so deflate finds
// back-references within and across messages, and with multi-byte UTF-8. No word
// contains the fruit names the replace test looks for.
var brWords = strings.Fields("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua café naïve 日本語 ☕ 🚀 Ωmega quick brown fox jumps over lazy dog")

// brScriptOptions shapes the messages of one direction.
type brScriptOptions struct {
	Who       string // "page" or "server": makes the two directions differ
	Seed      uint64
	N         int
	Fruit     string // when set, every third message from FruitFrom on contains it
	FruitFrom int
}

// brScript returns N deterministic messages that mix small and large, text and
// binary, compressible and random content, and repeat structure across messages
// (so a sender with context takeover refers back into earlier ones).
func brScript(o brScriptOptions) []brMsg {
	r := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	words := func(n int, fruit bool) string {
		var sb strings.Builder
		for i := range n {
			if i > 0 {
				sb.WriteByte(' ')
			}
			if fruit && i%7 == 3 {
				sb.WriteString(o.Fruit)
				continue
			}
			sb.WriteString(brWords[r.IntN(len(brWords))])
		}
		return sb.String()
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	out := make([]brMsg, 0, o.N)
	for i := range o.N {
		fruit := o.Fruit != "" && i >= o.FruitFrom && (i-o.FruitFrom)%3 == 0
		fruitName := "none"
		if fruit {
			fruitName = o.Fruit
		}
		var m brMsg
		switch i % 8 {
		case 0, 5: // JSON-like records with the same keys every time
			m = brMsg{Data: fmt.Appendf(nil, `{"from":%q,"seq":%d,"fruit":%q,"items":[%q,%q,%q],"note":%q}`,
				o.Who, i, fruitName, words(2, false), words(2, false), words(2, false), words(10+r.IntN(30), fruit))}
		case 1: // a few random bytes
			m = brMsg{Binary: true, Data: random(1 + r.IntN(64))}
		case 2: // UTF-8 prose, 1–3 KiB
			m = brMsg{Data: []byte(words(150+r.IntN(300), fruit))}
		case 3: // tiny text, below coder/websocket's compression threshold
			m = brMsg{Data: fmt.Appendf(nil, "%s %d", o.Who, i)}
			if fruit {
				m.Data = fmt.Appendf(nil, "%s %s", o.Fruit, o.Who[:1])
			}
		case 4: // a repetitive binary table, 2–8 KiB
			n := 2048 + r.IntN(6144)
			m = brMsg{Binary: true, Data: make([]byte, n)}
			for j := range n / 4 {
				copy(m.Data[j*4:], []byte{byte(j % 17), byte(j % 5), byte(i), 0xAB})
			}
		case 6: // prose, 20 KiB
			m = brMsg{Data: []byte(words(3500, fruit))}
		case 7: // half random, half repeated from the first half
			half := random(2048)
			m = brMsg{Binary: true, Data: append(bytes.Clone(half), half...)}
			if fruit {
				m.Data = append(m.Data, o.Fruit...)
			}
		}
		out = append(out, m)
	}
	return out
}

// brBig returns a 1 MiB binary message: random quarters (stored blocks) and
// repeated quarters (long back-references), with mark embedded when not empty.
func brBig(seed uint64, mark string) brMsg {
	r := rand.New(rand.NewPCG(seed, 0xb16))
	b := make([]byte, 1<<20)
	q := len(b) / 4
	for i := range b[:q] {
		b[i] = byte(r.Uint32())
	}
	for i := range b[q : 2*q] {
		b[q+i] = byte(i % 251)
	}
	copy(b[2*q:3*q], b[:q])
	for i := range b[3*q:] {
		b[3*q+i] = byte(r.Uint32() & 0x0f)
	}
	for off := 100; mark != "" && off+len(mark) < len(b); off += 1 << 17 {
		copy(b[off:], mark)
	}
	return brMsg{Binary: true, Data: b}
}

// brReplaceAll applies a literal rewrite to every message (what a replace hook with
// a literal match does), reporting which ones changed.
func brReplaceAll(msgs []brMsg, old, new string) (out []brMsg, changed []bool) {
	for _, m := range msgs {
		d := bytes.ReplaceAll(m.Data, []byte(old), []byte(new))
		out = append(out, brMsg{Binary: m.Binary, Data: d})
		changed = append(changed, !bytes.Equal(d, m.Data))
	}
	return out, changed
}

// brExchange is the WebSocket endpoint of the test site: it reads the page's
// messages, answering the i-th with its own i-th scripted message, sends the rest,
// then waits for the page's close.
type brExchange struct {
	Send   []brMsg // to the page
	Expect int     // messages to read from the page
	Result chan brServerResult
}

// brServerResult is what the endpoint saw.
type brServerResult struct {
	Extensions string // the Sec-WebSocket-Extensions the endpoint answered with
	Got        []brMsg
	Close      websocket.StatusCode // the page's close code, -1 when none came
	Err        error
}

func (x *brExchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := brServerResult{Close: -1}
	defer func() { x.Result <- res }()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		CompressionMode:      websocket.CompressionContextTakeover,
		CompressionThreshold: 16, // the tiny messages go uncompressed, the rest compressed
	})
	if err != nil {
		res.Err = fmt.Errorf("accept: %w", err)
		return
	}
	defer c.CloseNow()
	res.Extensions = w.Header().Get("Sec-WebSocket-Extensions")
	c.SetReadLimit(8 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), brTimeout)
	defer cancel()
	send := func(i int) error {
		typ := websocket.MessageText
		if x.Send[i].Binary {
			typ = websocket.MessageBinary
		}
		if err := c.Write(ctx, typ, x.Send[i].Data); err != nil {
			return fmt.Errorf("writing message %d: %w", i, err)
		}
		return nil
	}
	for i := range x.Expect {
		typ, data, err := c.Read(ctx)
		if err != nil {
			res.Err = fmt.Errorf("reading page message %d: %w", i, err)
			return
		}
		res.Got = append(res.Got, brMsg{Binary: typ == websocket.MessageBinary, Data: data})
		if i < len(x.Send) {
			if res.Err = send(i); res.Err != nil {
				return
			}
		}
	}
	for i := x.Expect; i < len(x.Send); i++ {
		if res.Err = send(i); res.Err != nil {
			return
		}
	}
	_, _, err = c.Read(ctx)
	if res.Close = websocket.CloseStatus(err); res.Close == -1 {
		res.Err = fmt.Errorf("waiting for the page's close frame: %w", err)
	}
}

// brWSPage opens wss://<its host>/ws, sends the messages of /script.json, collects
// "expect" messages, closes with 1000 and reports, in window.result, what it
// received (type, UTF-8 length and SHA-256 of each message), the negotiated
// extensions and the close it saw.
const brWSPage = `<!doctype html>
<meta charset="utf-8">
<title>wstap browser test: WebSocket</title>
<script>
"use strict";
const hex = buf => Array.from(new Uint8Array(buf), b => b.toString(16).padStart(2, "0")).join("");
const unb64 = s => { const bin = atob(s); const a = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i); return a; };
async function run() {
	const script = await (await fetch("/script.json")).json();
	const ws = new WebSocket("wss://" + location.host + "/ws");
	ws.binaryType = "arraybuffer";
	await new Promise((resolve, reject) => {
		ws.onopen = resolve;
		ws.onclose = ev => reject(new Error("closed before open: " + ev.code + " " + ev.reason));
	});
	const received = [];
	let closeInfo = null, gotAll, failed;
	const all = new Promise((resolve, reject) => { gotAll = resolve; failed = reject; });
	const closed = new Promise(resolve => {
		ws.onclose = ev => {
			closeInfo = {code: ev.code, reason: ev.reason, clean: ev.wasClean};
			resolve();
			failed(new Error("closed after " + received.length + " of " + script.expect + " messages: " + ev.code + " " + ev.reason));
		};
	});
	ws.onmessage = ev => { received.push(ev.data); if (received.length === script.expect) gotAll(); };
	const td = new TextDecoder("utf-8", {fatal: true});
	for (const m of script.send) {
		const bytes = unb64(m.d);
		ws.send(m.b ? bytes : td.decode(bytes));
	}
	if (script.expect === 0) gotAll();
	await all;
	ws.close(1000, "page done");
	await closed;
	const te = new TextEncoder();
	const out = [];
	for (const d of received) {
		const text = typeof d === "string";
		const bytes = text ? te.encode(d) : new Uint8Array(d);
		const r = {b: !text, n: bytes.length, h: hex(await crypto.subtle.digest("SHA-256", bytes))};
		if (text && bytes.length <= 100) r.s = d;
		out.push(r);
	}
	return {ok: true, received: out, extensions: ws.extensions, close: closeInfo};
}
run().then(r => { window.result = r; }, e => { window.result = {ok: false, error: String(e && e.stack || e)}; });
</script>
<p>WebSocket exchange</p>
`

// brPageResult is window.result of brWSPage.
type brPageResult struct {
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	Received []struct {
		Binary bool   `json:"b"`
		Len    int    `json:"n"`
		SHA256 string `json:"h"`
		Text   string `json:"s"`
	} `json:"received"`
	Extensions string `json:"extensions"`
	Close      struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
		Clean  bool   `json:"clean"`
	} `json:"close"`
}

// brWSSite starts the test site for an exchange: the page at /, its script at
// /script.json and the endpoint at /ws.
func brWSSite(t *testing.T, pageSends []brMsg, x *brExchange) *httptest.Server {
	t.Helper()
	type wire struct {
		B bool   `json:"b"`
		D string `json:"d"`
	}
	script := struct {
		Send   []wire `json:"send"`
		Expect int    `json:"expect"`
	}{Expect: len(x.Send)}
	for _, m := range pageSends {
		script.Send = append(script.Send, wire{m.Binary, base64.StdEncoding.EncodeToString(m.Data)})
	}
	scriptJSON, err := json.Marshal(script)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, brWSPage)
	})
	mux.HandleFunc("GET /script.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(scriptJSON)
	})
	mux.Handle("GET /ws", x)
	return brStartSite(t, mux)
}

// brExchangeRun loads the exchange page and returns what both ends saw.
func brExchangeRun(t *testing.T, b *browsertest.Browser, tp *testProxy, site *httptest.Server, x *brExchange) (brPageResult, brServerResult) {
	t.Helper()
	brNavigate(t, b, tp, site.URL+"/")
	page := brPoll[brPageResult](t, b, "result")
	if !page.OK {
		t.Fatalf("page failed: %s", page.Error)
	}
	select {
	case srv := <-x.Result:
		return page, srv
	case <-b.Ctx.Done():
		t.Fatal("the WebSocket endpoint did not finish")
	}
	panic("unreachable")
}

// brCheckPageGot compares what the page reported receiving with want.
func brCheckPageGot(t *testing.T, page brPageResult, want []brMsg) {
	t.Helper()
	if len(page.Received) != len(want) {
		t.Errorf("server → page: page received %d messages, want %d", len(page.Received), len(want))
	}
	bad := 0
	for i := range min(len(page.Received), len(want)) {
		got, w := page.Received[i], want[i]
		sum := sha256.Sum256(w.Data)
		if got.Binary != w.Binary || got.Len != len(w.Data) || got.SHA256 != hex.EncodeToString(sum[:]) {
			if bad++; bad <= 5 {
				t.Errorf("server → page message %d: page got binary=%v, %d bytes, sha256 %.12s… (%q); want %v", i, got.Binary, got.Len, got.SHA256, got.Text, w)
			}
		}
	}
	if bad > 5 {
		t.Errorf("server → page: %d messages differ in all", bad)
	}
}

// brCheckServerGot compares what the endpoint received with want.
func brCheckServerGot(t *testing.T, srv brServerResult, want []brMsg) {
	t.Helper()
	if srv.Err != nil {
		t.Errorf("WebSocket endpoint: %v", srv.Err)
	}
	if len(srv.Got) != len(want) {
		t.Errorf("page → server: server received %d messages, want %d", len(srv.Got), len(want))
	}
	bad := 0
	for i := range min(len(srv.Got), len(want)) {
		if srv.Got[i].Binary != want[i].Binary || !bytes.Equal(srv.Got[i].Data, want[i].Data) {
			if bad++; bad <= 5 {
				t.Errorf("page → server message %d: server got %v, want %v", i, srv.Got[i], want[i])
			}
		}
	}
	if bad > 5 {
		t.Errorf("page → server: %d messages differ in all", bad)
	}
}

// brCheckLog checks the JSONL log of the test's one WebSocket connection: its open
// event (URL, extensions with context takeover), every data message per direction
// (opcode, length, payload, modified flag) and the page's close. It returns the
// message events per direction.
func brCheckLog(t *testing.T, tp *testProxy, wsURL string, c2s, s2c []brMsg, c2sModified, s2cModified []bool) (byDir map[string][]map[string]any) {
	t.Helper()
	closes := tp.WaitEvents(t, "close", 10*time.Second, func(evs []map[string]any) bool { return len(evs) > 0 })
	opens := tp.Events(t, "open")
	if len(opens) != 1 {
		t.Fatalf("want 1 open event, got %d: %v", len(opens), opens)
	}
	open := opens[0]
	ext, _ := open["extensions"].(string)
	if open["url"] != wsURL || !strings.Contains(ext, "permessage-deflate") || strings.Contains(ext, "no_context_takeover") {
		t.Errorf("open event: url %v, extensions %q; want url %s and permessage-deflate with context takeover", open["url"], ext, wsURL)
	}
	conn := open["conn"]
	if c := closes[0]; c["conn"] != conn || brNum(c, "code") != 1000 || c["by"] != "client" {
		t.Errorf("close event %v, want code 1000 by client", c)
	}
	byDir = map[string][]map[string]any{}
	for _, ev := range tp.Events(t, "message") {
		if ev["conn"] != conn {
			t.Errorf("message event of an unknown connection: %v", ev)
			continue
		}
		if op := ev["opcode"]; op == "text" || op == "binary" {
			byDir[ev["dir"].(string)] = append(byDir[ev["dir"].(string)], ev)
		}
	}
	check := func(dir string, want []brMsg, modified []bool) {
		evs := byDir[dir]
		if len(evs) != len(want) {
			t.Errorf("JSONL: %d %s data messages, want %d", len(evs), dir, len(want))
		}
		bad := 0
		lastSeq := int64(-1)
		for i := range min(len(evs), len(want)) {
			ev, w := evs[i], want[i]
			op := "text"
			if w.Binary {
				op = "binary"
			}
			payload, err := brEvPayload(ev)
			if seq := brNum(ev, "seq"); seq <= lastSeq {
				t.Errorf("JSONL %s message %d: seq %d after %d", dir, i, seq, lastSeq)
			} else {
				lastSeq = seq
			}
			if ev["opcode"] != op || brNum(ev, "len") != int64(len(w.Data)) || err != nil || !bytes.Equal(payload, w.Data) ||
				ev["modified"] != modified[i] || ev["dropped"] != false || ev["injected"] != false || ev["hooked"] != true {
				if bad++; bad <= 5 {
					t.Errorf("JSONL %s message %d: opcode %v len %v modified %v dropped %v injected %v hooked %v (payload err %v, equal %v); want %s, %d bytes, modified %v",
						dir, i, ev["opcode"], ev["len"], ev["modified"], ev["dropped"], ev["injected"], ev["hooked"], err, bytes.Equal(payload, w.Data), op, len(w.Data), modified[i])
				}
			}
		}
	}
	check("c2s", c2s, c2sModified)
	check("s2c", s2c, s2cModified)
	return byDir
}

func brNum(ev map[string]any, k string) int64 {
	f, ok := ev[k].(float64)
	if !ok {
		return -1
	}
	return int64(f)
}

// brEvPayload decodes a message event's payload by its encoding.
func brEvPayload(ev map[string]any) ([]byte, error) {
	s, _ := ev["payload"].(string)
	switch ev["encoding"] {
	case "text":
		return []byte(s), nil
	case "base64":
		return base64.StdEncoding.DecodeString(s)
	}
	return nil, fmt.Errorf("payload encoding %v", ev["encoding"])
}

// brLogErrors fails the test when the proxy logged anything at error level.
func brLogErrors(t *testing.T, tp *testProxy) {
	t.Helper()
	for line := range strings.Lines(tp.Logs.String()) {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("proxy logged an error: %s", strings.TrimSpace(line))
		}
	}
}

// --- the plain page -----------------------------------------------------------

// brPlain is the plain-page site: a large script served gzip-encoded in chunks, a
// noise PNG, and an SSE stream that sends each event only after the page
// acknowledged the previous one (so a proxy that buffers the stream fails the test
// instead of merely delaying it).
type brPlain struct {
	script     []byte // big.js
	scriptFNV  uint32 // FNV-1a of the strings big.js pushes
	lines      int
	chars      int
	png        []byte
	pixSHA     string // SHA-256 of the image's RGBA pixels
	imgW, imgH int

	events      []string // SSE data, one per event
	acks        sync.Map // "0".."N-1", "done" → chan struct{}
	sseRequests atomic.Int32
	sseErr      atomic.Pointer[error]
	gzipped     atomic.Bool
}

const brPlainPage = `<!doctype html>
<meta charset="utf-8">
<title>wstap browser test: plain page</title>
<script src="/big.js"></script>
<img id="img" src="/img.png" alt="noise">
<script>
"use strict";
const hex = buf => Array.from(new Uint8Array(buf), b => b.toString(16).padStart(2, "0")).join("");
const img = document.getElementById("img");
const imageDone = new Promise((resolve, reject) => {
	const measure = async () => {
		const c = document.createElement("canvas");
		c.width = img.naturalWidth; c.height = img.naturalHeight;
		const g = c.getContext("2d", {willReadFrequently: true});
		g.drawImage(img, 0, 0);
		const px = g.getImageData(0, 0, c.width, c.height).data;
		resolve({w: img.naturalWidth, h: img.naturalHeight, sha: hex(await crypto.subtle.digest("SHA-256", px))});
	};
	if (img.complete && img.naturalWidth > 0) measure();
	else { img.onload = measure; img.onerror = () => reject(new Error("image did not load")); }
});
let sseErrors = 0;
const sseDone = new Promise((resolve, reject) => {
	const es = new EventSource("/events");
	const got = [];
	const ack = n => fetch("/ack?n=" + n, {method: "POST"}).then(r => { if (!r.ok) reject(new Error("ack " + n + ": " + r.status)); }, reject);
	es.addEventListener("tick", ev => { got.push({id: ev.lastEventId, data: ev.data}); ack(ev.lastEventId); });
	es.addEventListener("done", () => { es.close(); ack("done"); resolve(got); });
	es.onerror = () => { sseErrors++; if (es.readyState === EventSource.CLOSED) reject(new Error("SSE stream failed")); };
});
Promise.all([imageDone, sseDone]).then(
	([image, sse]) => { window.pageResult = {ok: true, big: window.bigResult || null, image, sse, sseErrors}; },
	e => { window.pageResult = {ok: false, error: String(e && e.stack || e), sseErrors}; });
</script>
`

// brPlainResult is window.pageResult of brPlainPage.
type brPlainResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Big   *struct {
		Lines int    `json:"lines"`
		Chars int    `json:"chars"`
		FNV   uint32 `json:"fnv"`
	} `json:"big"`
	Image struct {
		W   int    `json:"w"`
		H   int    `json:"h"`
		SHA string `json:"sha"`
	} `json:"image"`
	SSE []struct {
		ID   string `json:"id"`
		Data string `json:"data"`
	} `json:"sse"`
	SSEErrors int `json:"sseErrors"`
}

// newBrPlain builds the site's content: a ~2 MiB script, a ~1 MiB PNG and the
// SSE events.
func newBrPlain(t *testing.T) *brPlain {
	t.Helper()
	p := &brPlain{imgW: 640, imgH: 480}
	r := rand.New(rand.NewPCG(7, 11))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
	h := fnv.New32a()
	var js bytes.Buffer
	js.WriteString("\"use strict\";\nvar B = [];\n")
	line := make([]byte, 56)
	for js.Len() < 2<<20 {
		for i := range line {
			line[i] = alphabet[r.IntN(len(alphabet))]
		}
		h.Write(line)
		p.lines++
		p.chars += len(line)
		fmt.Fprintf(&js, "B.push(%q);\n", line)
	}
	js.WriteString(`(function () {
	var h = 0x811c9dc5, n = 0;
	for (var i = 0; i < B.length; i++) {
		var s = B[i];
		for (var j = 0; j < s.length; j++) { h ^= s.charCodeAt(j); h = Math.imul(h, 0x01000193) >>> 0; }
		n += s.length;
	}
	window.bigResult = {lines: B.length, chars: n, fnv: h >>> 0};
})();
`)
	p.script, p.scriptFNV = js.Bytes(), h.Sum32()

	img := image.NewNRGBA(image.Rect(0, 0, p.imgW, p.imgH))
	for y := range p.imgH {
		for x := range p.imgW {
			v := r.Uint32()
			img.SetNRGBA(x, y, color.NRGBA{R: byte(v), G: byte(v >> 8), B: byte(x ^ y), A: 255})
		}
	}
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	p.png = pngBuf.Bytes()
	sum := sha256.Sum256(img.Pix) // opaque, so NRGBA bytes are the canvas's RGBA bytes
	p.pixSHA = hex.EncodeToString(sum[:])

	for i := range 12 {
		data := fmt.Sprintf("event %d: %s", i, strings.Repeat("é☕", i))
		if i%4 == 3 {
			data += "\nsecond line " + strconv.Itoa(i) // sent as two data: lines
		}
		p.events = append(p.events, data)
		p.acks.Store(strconv.Itoa(i), make(chan struct{}))
	}
	p.acks.Store("done", make(chan struct{}))
	return p
}

func (p *brPlain) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, brPlainPage)
	})
	mux.HandleFunc("GET /big.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		var dst io.Writer = w
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			p.gzipped.Store(true)
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			defer zw.Close()
			dst = zw
		}
		// No Content-Length: chunked, in pieces flushed as they are written.
		for rest := p.script; len(rest) > 0; {
			n := min(len(rest), 64<<10)
			if _, err := dst.Write(rest[:n]); err != nil {
				return
			}
			if zw, ok := dst.(*gzip.Writer); ok {
				zw.Flush()
			}
			w.(http.Flusher).Flush()
			rest = rest[n:]
		}
	})
	mux.HandleFunc("GET /img.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(p.png)))
		w.Write(p.png)
	})
	mux.HandleFunc("POST /ack", func(w http.ResponseWriter, r *http.Request) {
		v, ok := p.acks.Load(r.URL.Query().Get("n"))
		if !ok {
			http.Error(w, "unknown event", http.StatusNotFound)
			return
		}
		ch := v.(chan struct{})
		select {
		case <-ch:
			http.Error(w, "acknowledged twice", http.StatusConflict)
			return
		default:
			close(ch)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /events", p.serveEvents)
	return mux
}

// serveEvents streams the SSE events, each after the previous one's ack.
func (p *brPlain) serveEvents(w http.ResponseWriter, r *http.Request) {
	if p.sseRequests.Add(1) > 1 {
		http.Error(w, "one stream only", http.StatusConflict)
		return
	}
	fail := func(err error) { p.sseErr.Store(&err) }
	wait := func(n string) bool {
		v, _ := p.acks.Load(n)
		select {
		case <-v.(chan struct{}):
			return true
		case <-r.Context().Done():
			fail(fmt.Errorf("stream closed while waiting for the page's ack of event %s", n))
		case <-time.After(20 * time.Second):
			fail(fmt.Errorf("no ack of SSE event %s within 20 s: the event did not reach the page", n))
		}
		return false
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl := w.(http.Flusher)
	io.WriteString(w, ": wstap browser test\nretry: 600000\n\n")
	for i, data := range p.events {
		fmt.Fprintf(w, "id: %d\nevent: tick\n", i)
		for line := range strings.SplitSeq(data, "\n") {
			fmt.Fprintf(w, "data: %s\n", line)
		}
		io.WriteString(w, "\n")
		fl.Flush()
		if !wait(strconv.Itoa(i)) {
			return
		}
	}
	io.WriteString(w, "event: done\ndata: bye\n\n")
	fl.Flush()
	wait("done")
}

// brSSEError returns the SSE handler's failure, if any.
func (p *brPlain) brSSEError() error {
	if e := p.sseErr.Load(); e != nil {
		return *e
	}
	return nil
}
