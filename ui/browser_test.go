package ui_test

// The page in a real browser (Debian's Chromium, driven with chromedp), checked
// the way a person uses it: a WebSocket app talks through a wstap proxy whose
// history the UI serves, and the test watches the page, clicks, types and reads
// what it shows. Screenshots of each view go to the test's artifact directory
// (go test -artifacts -outputdir DIR keeps them). Without Chromium these tests
// skip, or fail when CI is set.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/internal/browsertest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/ui"
	"github.com/wstap/wstap/wsframe"
)

// The payloads the client sends on /chat, in order.
var (
	loginJSON = `{"op":"login","user":"alice","id":12345678901234567890,"roles":["admin","ops"],"ok":true}`
	appleText = "hello apple pie"
	binary    = []byte{0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0xfe, 0xff, 0x1b, '[', '3', '1', 'm', 'W', 'S', 0x0d, 0x0a, 0x09}
	// HTML that would run script if the page inserted it as HTML, terminal escape
	// sequences (colour, window title, clear screen) and a bidi override.
	hostile = "<img src=x onerror=alert(1)>\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \x1b[2J\u202eevil"
)

const cookie = "session=s3cr3t-42; theme=dark"

// TestBrowserUI: a wrong token gets the login box; the right one leaves the
// address bar; the page shows a proxied connection and its messages live; the
// handshake shows the Cookie the client sent; a filter, a search and a regular
// expression narrow the list and survive a reload; the JSON, hex and text views
// show the right bytes, a codec's output beside the wire bytes, and a modified
// message what came in and what went on; hostile payloads are text and run
// nothing; the keyboard moves the selection; control frames show on request; the
// export links name the connections shown; pausing holds the view; a close shows
// live.
func TestBrowserUI(t *testing.T) {
	browsertest.Require(t, false)
	env := startEnv(t)
	p := openBrowser(t, 3*time.Minute)

	// A wrong token: the page says so, asks for the right one, and shows nothing.
	p.run("opening the UI with a wrong token", chromedp.Navigate(env.Base+"/#token=0123456789abcdef"))
	p.waitFor("the login box", `!document.querySelector("#login").hidden && document.querySelector("#login-why").textContent.includes("wrong")`)
	if h := p.hash(); h != "" {
		t.Errorf("the wrong token stays in the address bar: %q", h)
	}
	p.shot("00-wrong-token")

	// Login: the token is traded for the cookie and leaves the address bar. (The
	// right URL pasted into the same tab changes only the fragment: the page
	// starts again with it.)
	if _, err := chromedp.Run(p.b.Ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil,
		chromedp.Navigate(env.UI.URL(strings.TrimPrefix(env.Base, "http://"))))); err != nil {
		t.Fatalf("opening the UI with the right token: %v", err)
	}
	p.waitFor("the page to log in and show the status", `document.querySelector("#live-text")?.textContent === "live"`)
	if href := eval[string](p, `location.href`); strings.Contains(href, "token") || strings.Contains(href, env.UI.Token()) {
		t.Errorf("the token is still in the address bar: %s", href)
	}
	if cookies := eval[string](p, `document.cookie`); strings.Contains(cookies, env.UI.Token()) {
		t.Errorf("the page's script can read the token cookie: %q", cookies)
	}
	p.waitFor("an empty list", `document.querySelector("#msgs-empty")?.textContent.includes("No messages yet")`)
	// This UI has no breakpoint (as sniff and open): no intercept switch, view or composer.
	if shown := eval[[]string](p, `["#views", "#ic-switch", "#tab-compose"].filter(s => !document.querySelector(s).hidden)`); len(shown) != 0 {
		t.Errorf("a UI without a breakpoint shows %q", shown)
	}
	p.shot("00-empty")

	// The connection and its messages appear live.
	chat := env.dial(t, chatPath, cookie)
	p.waitFor("the connection in the list", `[...document.querySelectorAll(".conn .c-url")].some(e => e.textContent.includes("/chat?room=lobby"))`)
	chat.send(t, false, []byte(loginJSON))
	chat.send(t, false, []byte(appleText))
	chat.send(t, true, binary)
	chat.send(t, false, []byte(hostile))
	chat.send(t, false, []byte("needle one"))
	for i := range 30 {
		chat.send(t, false, fmt.Appendf(nil, "filler message %d with some words to fill the preview column of the list", i))
	}
	chat.send(t, false, []byte("needle two"))
	if err := chat.c.WriteControl(9, []byte("are you there"), time.Now().Add(time.Second)); err != nil { // a ping
		t.Fatal(err)
	}
	const perDir = 36
	p.waitTotal(2 * perDir)
	p.waitFor("the last message at the bottom of the list (following)",
		`[...document.querySelectorAll("#msgs .row .c-prev")].some(e => e.textContent.includes("needle two"))`)
	conn := eval[string](p, `document.querySelector(".conn:not(.all)").dataset.id`)
	p.waitFor("the connection's counts", `document.querySelector(".conn:not(.all) .c-up").textContent.startsWith("→ 37 msgs")`) // the ping too
	p.shot("01-live")

	// The handshake as the server received it, with the client's Cookie.
	p.click(`.conn[data-id="` + conn + `"]`)
	p.waitFor("the handshake", `document.querySelector(".handshake .h-line[data-name=cookie] .h-value")?.textContent === `+js(cookie))
	if first := eval[string](p, `document.querySelector(".handshake pre.req .h-first").textContent`); first != "GET /chat?room=lobby HTTP/1.1" {
		t.Errorf("request line %q", first)
	}
	if first := eval[string](p, `document.querySelector(".handshake pre.resp .h-first").textContent`); first != "HTTP/1.1 101 Switching Protocols" {
		t.Errorf("status line %q", first)
	}
	for _, h := range []string{"origin", "sec-websocket-key", "sec-websocket-protocol", "host"} {
		if !eval[bool](p, `!!document.querySelector('.handshake pre.req .h-line[data-name="`+h+`"]')`) {
			t.Errorf("the request headers lack %s", h)
		}
	}
	if !eval[bool](p, `!!document.querySelector(".handshake pre.resp .h-line[data-name=x-app]")`) {
		t.Error("the response headers lack the app's X-App")
	}
	if !strings.Contains(p.hash(), "conn="+conn) {
		t.Errorf("the address bar does not keep the selected connection: %s", p.hash())
	}
	p.shot("02-handshake")

	// A filter, then a search, narrow the list; the address bar keeps them.
	p.click(`#dir button[data-dir="c2s"]`)
	p.waitTotal(perDir)
	p.waitFor("only c2s rows", `[...document.querySelectorAll("#msgs .row")].every(r => r.classList.contains("c2s"))`)
	p.typeIn("#q", "NEEDLE")
	p.waitTotal(2)
	if got := eval[[]string](p, `[...document.querySelectorAll("#msgs .row .c-prev")].map(e => e.textContent)`); strings.Join(got, "|") != "needle one|needle two" {
		t.Errorf("search rows %q, want the two needles", got)
	}
	if h := p.hash(); !strings.Contains(h, "dir=c2s") || !strings.Contains(h, "q=NEEDLE") {
		t.Errorf("the address bar does not keep the filter: %s", h)
	}
	p.shot("03-filter")
	p.run("reloading", chromedp.Reload())
	p.waitTotal(2)
	if q := eval[string](p, `document.querySelector("#q").value`); q != "NEEDLE" {
		t.Errorf("after a reload the search box says %q", q)
	}
	if !eval[bool](p, `document.querySelector('#dir button[data-dir="c2s"]').classList.contains("on")`) {
		t.Error("after a reload the direction filter is gone")
	}
	// A regular expression.
	p.click("#re")
	p.typeIn("#q", `^needle (one|three)$`)
	p.waitTotal(1)
	p.typeIn("#q", `needle (`)
	p.waitFor("the regexp error", `document.querySelector("#result.bad")?.textContent === "invalid regular expression" &&
		document.querySelector("#msgs-empty").textContent.includes("missing closing )")`)
	p.shot("03b-regexp-error")
	p.click("#clear")
	p.click(`.conn.all`)
	p.waitTotal(2 * perDir)

	// The JSON view: pretty, every literal as written (the 20-digit id is not
	// rounded to a float).
	p.openRow(`c2s`, `"op":"login"`)
	p.waitFor("the JSON view", `document.querySelector('.part[data-part="payload"]')?.dataset.mode === "json"`)
	pretty := eval[string](p, `document.querySelector('.part[data-part="payload"] pre.json').textContent`)
	wantPretty := "{\n  \"op\": \"login\",\n  \"user\": \"alice\",\n  \"id\": 12345678901234567890,\n  \"roles\": [\n    \"admin\",\n    \"ops\"\n  ],\n  \"ok\": true\n}"
	if pretty != wantPretty {
		t.Errorf("JSON view:\n%s\nwant:\n%s", pretty, wantPretty)
	}
	p.shot("04-json")

	// The hex view of the binary message: offsets, bytes and ASCII.
	p.click("#types summary")
	p.click(`#types input[value="binary"]`)
	p.openRow(`c2s`, ``)
	if h := p.hash(); !strings.Contains(h, "type=binary") {
		t.Errorf("the address bar does not keep the type filter: %s", h)
	}
	p.waitFor("the hex view", `document.querySelector('.part[data-part="payload"]')?.dataset.mode === "hex"`)
	hex := eval[[]string](p, `[".hx-off", ".hx-bytes", ".hx-ascii"].map(c => document.querySelector('.part[data-part="payload"] ' + c).textContent)`)
	if want := []string{"00000000\n00000010", "00 01 02 03 7f 80 fe ff  1b 5b 33 31 6d 57 53 0d\n0a 09", ".........[31mWS.\n.."}; strings.Join(hex, "|") != strings.Join(want, "|") {
		t.Errorf("hex view %q, want %q", hex, want)
	}
	p.shot("05-hex")
	// The same bytes as text: every control character visible.
	p.click(`.part[data-part="payload"] button[data-mode="text"]`)
	if text := eval[string](p, `document.querySelector('.part[data-part="payload"] pre.text').textContent`); text != `\0\x01\x02\x03\x7f`+"\ufffd\ufffd\ufffd"+`\x1b[31mWS\r`+"\n\t" {
		t.Errorf("binary as text %q", text)
	}
	p.click("#types summary")
	p.click(`#types input[value="binary"]`)
	p.click("#conns-pane .pane-head") // closes the menu

	// Hostile payloads are text: no element is created, no script runs, escape
	// sequences are shown (ESC as \x1b, BEL as \x07, the bidi override as \u202e).
	p.openRow(`c2s`, `<img src=x`)
	p.waitFor("the text view", `document.querySelector('.part[data-part="payload"]')?.dataset.mode === "text"`)
	text := eval[string](p, `document.querySelector('.part[data-part="payload"] pre.text').textContent`)
	if want := `<img src=x onerror=alert(1)>\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \x1b[2J\u202eevil`; text != want {
		t.Errorf("hostile payload shown as %q, want %q", text, want)
	}
	if n := eval[int](p, `document.querySelectorAll("img").length`); n != 0 {
		t.Errorf("the page has %d img elements", n)
	}
	if prev := eval[string](p, `document.querySelector("#msgs .row.sel .c-prev").textContent`); !strings.HasPrefix(prev, "<img src=x onerror=alert(1)>") {
		t.Errorf("the list shows the hostile payload as %q", prev)
	}
	p.shot("06-hostile")

	// A modified message: what the client sent, and what the app got.
	p.openRow(`c2s`, `hello banana pie`)
	p.waitFor("received and forwarded", `document.querySelector('.part[data-part="original"] pre')?.textContent === `+js(appleText))
	if fwd := eval[string](p, `document.querySelector('.part[data-part="payload"] pre').textContent`); fwd != "hello banana pie" {
		t.Errorf("forwarded %q", fwd)
	}
	if !eval[bool](p, `!!document.querySelector("#msgs .row.sel .badge.f-modified")`) {
		t.Error("the modified message has no badge in the list")
	}
	if eval[bool](p, `!!document.querySelector("#resend")`) {
		t.Error("a UI without a breakpoint offers Resend")
	}
	p.shot("07-modified")

	// Up and down move the selection, and the detail follows; the selected row
	// stays in view when the filter changes.
	p.click("#clear")
	p.waitTotal(2 * perDir)
	p.waitFor("the selected row in view", `document.querySelector("#msgs .row.sel .badge.f-modified")`)
	sel := eval[string](p, `document.querySelector("#msgs .row.sel").dataset.id`)
	p.run("pressing down", chromedp.KeyEvent(kb.ArrowDown))
	p.waitFor("the next row selected", `document.querySelector("#msgs .row.sel")?.dataset.id !== `+js(sel)+
		` && document.querySelector(".msg-detail")?.dataset.id === document.querySelector("#msgs .row.sel").dataset.id`)
	p.run("pressing up", chromedp.KeyEvent(kb.ArrowUp))
	p.waitFor("the row selected again", `document.querySelector(".msg-detail")?.dataset.id === `+js(sel))

	// Control frames: hidden until asked for.
	p.click("#control")
	p.waitTotal(2*perDir + 2) // the ping and the app's pong
	p.run("pressing End", chromedp.KeyEvent(kb.End))
	p.waitFor("the ping row", `[...document.querySelectorAll("#msgs .row .c-type")].some(e => e.textContent === "ping")`)
	p.click("#control")

	// A codec's view: the wire payload (base64) and the decoded JSON side by side.
	feed := env.dial(t, feedPath, cookie)
	feed.send(t, false, []byte("eyJidXkiOiJXU1QiLCJxdHkiOjN9")) // {"buy":"WST","qty":3}
	p.waitTotal(2*perDir + 2)
	p.openRow(`s2c`, `"echo":"{\"buy\"`)
	p.waitFor("the decoded part", `document.querySelector('.part[data-part="decoded"]')?.dataset.mode === "json"`)
	wire := eval[string](p, `document.querySelector('.part[data-part="payload"] pre').textContent`)
	if !strings.HasPrefix(wire, "eyJ") {
		t.Errorf("the wire payload shows %q, want base64", wire)
	}
	p.shot("08-decoded")
	p.click("#clear")

	// Exports of the connections shown.
	p.typeIn("#url", "*/feed*")
	p.waitTotal(2)
	href := eval[string](p, `document.querySelector("#jsonl-shown").getAttribute("href")`)
	feedID := eval[string](p, `document.querySelector(".conn:not(.all)").dataset.id`)
	if href != "/api/export.jsonl?conns="+feedID {
		t.Errorf("export of the connections shown: %q, want conns=%s", href, feedID)
	}
	lines := eval[int](p, `fetch(document.querySelector("#jsonl-shown").href).then(r => r.text()).then(t => t.trim().split("\n").length)`+
		`.catch(() => -1)`, chromedp.EvalAwaitPromise)
	if lines < 3 {
		t.Errorf("the JSONL export of the connections shown has %d lines, want the open event and 2 messages", lines)
	}
	p.click("#export summary")
	p.shot("09-export")
	p.click("#clear")

	// Paused, the view stays as it is and says what it is missing; resumed, it
	// catches up.
	p.waitTotal(2*perDir + 2)
	p.click("#live")
	p.waitFor("the paused state", `document.querySelector("#live-text").textContent === "paused"`)
	feed.send(t, false, []byte("eyJidXkiOiJXU1QiLCJxdHkiOjR9"))
	p.waitFor("the paused state to count the new rows", `document.querySelector("#live-text").textContent === "paused · 2 new rows"`)
	if got := p.total(); got != fmtNum(2*perDir+2) {
		t.Errorf("paused, the list grew to %s rows", got)
	}
	p.shot("10-paused")
	p.click("#live")
	p.waitTotal(2*perDir + 4)

	// Live state: the connection closes, and the list says so.
	chat.close(t)
	p.waitFor("the closed state", `document.querySelector('.conn[data-id=`+js(conn)+`] .c-state')?.textContent === "closed 1000 by client"`)
	p.shot("11-closed")

	if n := p.b.Dialogs(); n != 0 {
		t.Errorf("the page opened %d JavaScript dialogs", n)
	}
	if c := p.b.Console.String(); strings.Contains(c, "exception") {
		t.Errorf("the page threw:\n%s", c)
	}
}

// hash is the address bar's fragment.
func (p *page) hash() string {
	return eval[string](p, `decodeURIComponent(location.hash)`)
}

// openRow finds the row of direction dir whose payload contains text (by
// searching, as a person would), clicks it and waits for its detail; then clears
// the search.
func (p *page) openRow(dir, text string) {
	p.t.Helper()
	p.click(`#dir button[data-dir="` + dir + `"]`)
	p.typeIn("#q", text)
	p.waitFor("one row for "+text, `document.querySelector("#result b")?.textContent === "1" && document.querySelector("#msgs .row[data-id]:not([data-id=''])")`)
	id := eval[string](p, `document.querySelector("#msgs .row").dataset.id`)
	p.click(`#msgs .row[data-id="` + id + `"]`)
	p.waitFor("the detail of row "+id, `document.querySelector(".msg-detail")?.dataset.id === `+js(id))
}

// TestBrowserMillionRows: a history of a million messages scrolls as a
// virtualized list (a few dozen rows in the DOM wherever it is), jumps to its
// start, middle and end, and a search over it answers.
func TestBrowserMillionRows(t *testing.T) {
	browsertest.Require(t, false)
	n := 1_000_000
	if testing.Short() {
		n = 200_000
	}
	st := history.New(0, "")
	conn := &plugins.Conn{ID: "c1", Mode: plugins.Sniff}
	conn.URL, _ = conn.URL.Parse("ws://big.example/stream")
	start := time.Now()
	st.Opened(conn, start)
	payload := make([]byte, 0, 64)
	for i := range n {
		payload = fmt.Appendf(payload[:0], `{"i":%d,"v":"%s"}`, i, map[bool]string{true: "needle", false: "hay"}[i%(n/4) == 7])
		st.Message(&plugins.Record{Conn: conn, Dir: plugins.Direction(1 + i%2), Seq: uint64(i / 2), Opcode: wsframe.OpText,
			Time: start.Add(time.Duration(i) * time.Microsecond), Payload: payload, Len: int64(len(payload)), Frames: 1})
	}
	t.Logf("%d messages stored in %v", n, time.Since(start).Round(time.Millisecond))
	srv, base := startUI(t, st, ui.Info{Version: "test", Mode: "sniff"}, nil)
	p := openBrowser(t, 3*time.Minute)

	p.run("opening the UI", chromedp.Navigate(srv.URL(strings.TrimPrefix(base, "http://"))))
	p.waitTotal(n)
	p.waitFor("the last row", fmt.Sprintf(`document.querySelector('#msgs .row[data-id="%d"]')`, n-1))
	rows := func() int { return eval[int](p, `document.querySelectorAll("#msgs .row").length`) }
	if r := rows(); r > 80 {
		t.Errorf("%d rows in the DOM at the end of a million", r)
	}
	p.shot("20-million-end")

	// Jump to the middle (drag the scroll bar): the rows there load.
	t0 := time.Now()
	eval[any](p, `(() => { const l = document.querySelector("#msgs"); l.scrollTop = (l.scrollHeight - l.clientHeight) / 2; })()`)
	p.waitFor("rows from the middle", `[...document.querySelectorAll("#msgs .row")].some(r => Math.abs(+r.dataset.id - `+fmt.Sprint(n/2)+`) < 100)`)
	t.Logf("middle rows shown %v after the jump", time.Since(t0).Round(time.Millisecond))
	if r := rows(); r > 80 {
		t.Errorf("%d rows in the DOM in the middle of a million", r)
	}
	p.shot("21-million-middle")

	// Scroll for a while, a screen a frame: frames stay short (the median, as
	// the machine is shared) and the DOM small.
	frames := eval[[]float64](p, `new Promise(done => {
		const l = document.querySelector("#msgs");
		let last = performance.now(), n = 0;
		const gaps = [];
		const step = now => {
			gaps.push(now - last); last = now;
			l.scrollTop += 400;
			if (++n < 120) requestAnimationFrame(step); else done(gaps.slice(1).sort((a, b) => a - b));
		};
		requestAnimationFrame(step);
	})`, chromedp.EvalAwaitPromise)
	med, p95, worst := frames[len(frames)/2], frames[len(frames)*95/100], frames[len(frames)-1]
	t.Logf("frames while scrolling: median %.0f ms, p95 %.0f ms, longest %.0f ms", med, p95, worst)
	if med > 100 {
		t.Errorf("scrolling a million rows: median frame %.0f ms", med)
	}
	if r := rows(); r > 80 {
		t.Errorf("%d rows in the DOM after scrolling", r)
	}

	// Home: the first rows; a search over the million.
	p.run("pressing Home", chromedp.Focus(chromedp.CSS("#msgs")), chromedp.KeyEvent(kb.Home))
	p.waitFor("the first row selected", `document.querySelector(".msg-detail")?.dataset.id === "0"`)
	t0 = time.Now()
	p.typeIn("#q", "needle")
	p.waitTotal(4)
	p.waitFor("the rows found", `[...document.querySelectorAll("#msgs .row")].filter(r => r.dataset.id).length === 4`)
	t.Logf("search over %d rows: %v in the page, the API says %s", n, time.Since(t0).Round(time.Millisecond),
		eval[string](p, `document.querySelector("#result .muted").textContent`))
	if got := eval[string](p, `[...document.querySelectorAll("#msgs .row .c-num")].map(e => e.textContent).join(",")`); got != fmt.Sprintf("7,%d,%d,%d", n/4+7, n/2+7, 3*n/4+7) {
		t.Errorf("search found rows %s", got)
	}

	p.shot("22-million-search")
}

// TestBrowserRowKinds: what only a capture has (gaps, resyncs, protocol errors,
// undecodable messages, counted pings), the flags of a dry run, truncated and
// evicted payloads, refused and abnormally closed connections: each readable in
// the list and the detail, in the light and the dark scheme.
func TestBrowserRowKinds(t *testing.T) {
	browsertest.Require(t, false)
	st := history.New(4096, "") // a small bound: the first payloads are evicted
	t0 := time.Now().Add(-time.Minute)
	mk := func(id, u string) *plugins.Conn {
		c := &plugins.Conn{ID: id, Mode: plugins.Sniff, Method: "GET", Proto: "HTTP/1.1", Status: 101, Reason: "Switching Protocols"}
		c.URL, _ = c.URL.Parse(u)
		c.Target = c.URL.RequestURI()
		c.Request = map[string][]string{"Host": {c.URL.Host}, "Cookie": {"sid=<b>x</b>"}}
		c.Response = map[string][]string{"Upgrade": {"websocket"}}
		return c
	}
	live, refused, gone := mk("c1", "wss://app.example/live"), mk("c2", "wss://app.example/admin"), mk("c3", "ws://old.example/feed")
	refused.Status, refused.Reason = 403, "Forbidden"
	st.Opened(gone, t0)
	st.Closed(gone, plugins.CloseEvent{Time: t0.Add(90 * time.Second), Code: 1006, Reason: "peer went away", By: "proxy"})
	st.Refused(refused, t0.Add(time.Second))
	st.Opened(live, t0.Add(2*time.Second))
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	rec := func(dir plugins.Direction, seq uint64, op wsframe.Opcode, payload string, f func(*plugins.Record)) {
		r := &plugins.Record{Conn: live, Dir: dir, Seq: seq, Opcode: op, Time: at(int(seq) + 3), Payload: []byte(payload),
			Len: int64(len(payload)), Frames: 1}
		if f != nil {
			f(r)
		}
		st.Message(r)
	}
	rec(1, 0, wsframe.OpText, strings.Repeat("evicted later ", 200), nil) // 0: evicted by the big one below
	rec(2, 1, wsframe.OpText, `{"price":1}`, func(r *plugins.Record) {
		r.WouldModify, r.WouldPayload = true, []byte(`{"price":0}`)
	})
	rec(1, 2, wsframe.OpText, `{"cmd":"delete"}`, func(r *plugins.Record) { r.WouldDrop = true })
	rec(2, 3, wsframe.OpBinary, "\x89PNG\r\n", func(r *plugins.Record) { r.Truncated, r.Len = true, 1<<20 })
	rec(1, 4, wsframe.OpText, "not base64!", func(r *plugins.Record) { r.DecodeError = "base64: illegal base64 data at input byte 3" })
	rec(2, 5, wsframe.OpText, "aGk=", func(r *plugins.Record) { r.Decoded, r.Compressed = []byte("hi"), true })
	st.Gap(live, plugins.ServerToClient, at(10), 1234, true)
	st.Resync(live, plugins.ServerToClient, at(11), 77)
	st.StreamError(live, plugins.ClientToServer, at(12), fmt.Errorf("wsframe: reserved bits set"))
	st.Undecodable(&plugins.Record{Conn: live, Dir: 2, Seq: 9, Opcode: wsframe.OpText, Time: at(13), Len: 300, Compressed: true},
		"compressed with a window the capture did not see")
	st.Controls(live, plugins.ClientToServer, plugins.ControlSummary{Opcode: wsframe.OpPing, Count: 3, Bytes: 12, First: at(14), Last: at(15)})
	rec(1, 10, wsframe.OpBinary, strings.Repeat("\x00", 4000), nil) // evicts row 0

	srv, base := startUI(t, st, ui.Info{Version: "test", Mode: "sniff", Source: "capture.pcap"}, func() int64 { return 5 })
	p := openBrowser(t, 2*time.Minute)
	p.run("opening the UI", chromedp.Navigate(srv.URL(strings.TrimPrefix(base, "http://"))))
	p.waitTotal(11)
	p.waitFor("the lost count", `document.querySelector("#lost").textContent === "5 messages not recorded: the history could not keep up"`)
	for _, want := range []string{
		"gap: 1,234 bytes missing from the capture; a message was lost",
		"resync: frames found again after 77 skipped bytes",
		"protocol error: wsframe: reserved bits set",
		"undecodable: compressed with a window the capture did not see",
	} {
		if !eval[bool](p, `[...document.querySelectorAll("#msgs .row .c-prev")].some(e => e.textContent === `+js(want)+`)`) {
			t.Errorf("no row says %q", want)
		}
	}
	for id, want := range map[string]string{"c2": "refused 403", "c3": "closed 1006 by proxy"} {
		if got := eval[string](p, `document.querySelector('.conn[data-id="`+id+`"] .c-state').textContent`); got != want {
			t.Errorf("connection %s: %q, want %q", id, got, want)
		}
	}
	badges := eval[string](p, `[...document.querySelectorAll("#msgs .row .badge")].map(b => b.textContent).join(" ")`)
	for _, want := range []string{"evict", "w-mod", "w-drop", "trunc", "dec!", "dec", "z", "lost"} {
		if !strings.Contains(" "+badges+" ", " "+want+" ") {
			t.Errorf("badges %q lack %q", badges, want)
		}
	}
	p.shot("30-kinds")
	p.click("#control")
	p.waitTotal(12)
	p.run("pressing End", chromedp.Focus(chromedp.CSS("#msgs")), chromedp.KeyEvent(kb.End))
	p.waitFor("the counted pings", `[...document.querySelectorAll("#msgs .row .c-prev")].some(e => e.textContent === "3 ping frames, counted together")`)

	// A dry run's detail: what the rules would have sent.
	p.click(`#msgs .row[data-id="1"]`)
	p.waitFor("the would-send part", `document.querySelector('.part[data-part="would_payload"] pre')?.textContent === '{\n  "price": 0\n}'`)
	p.shot("31-would-modify")
	// An evicted payload says so.
	p.run("pressing Home", chromedp.KeyEvent(kb.Home))
	p.waitFor("the eviction note", `document.querySelector(".md-note.warn")?.textContent.includes("evicted from memory")`)
	p.shot("32-evicted")
	// A refused connection's handshake.
	p.click(`.conn[data-id="c2"]`)
	p.waitFor("the 403", `document.querySelector(".handshake pre.resp .h-first")?.textContent === "HTTP/1.1 403 Forbidden"`)
	if v := eval[string](p, `document.querySelector(".handshake .h-line[data-name=cookie] .h-value").textContent`); v != "sid=<b>x</b>" {
		t.Errorf("cookie shown as %q", v)
	}
	if n := eval[int](p, `document.querySelectorAll(".handshake b").length`); n != 0 {
		t.Errorf("a header value became %d b elements", n)
	}
	p.shot("33-refused")

	// The panes resize: drag the bar between the connections and the messages.
	before := eval[float64](p, `document.querySelector("#conns-pane").getBoundingClientRect().width`)
	box := eval[[]float64](p, `(() => { const r = document.querySelector("#split-v").getBoundingClientRect(); return [r.x + r.width / 2, r.y + 200]; })()`)
	p.run("dragging the splitter", chromedp.DragAndDropXY(box[0], box[1], box[0]+120, box[1]))
	if after := eval[float64](p, `document.querySelector("#conns-pane").getBoundingClientRect().width`); after < before+100 {
		t.Errorf("the connections pane is %.0f px wide after dragging its edge 120 px right (was %.0f)", after, before)
	}

	// The dark scheme.
	p.colorScheme("dark")
	p.click(`.conn.all`)
	p.waitTotal(12)
	p.click(`#msgs .row[data-id="5"]`)
	p.waitFor("the decoded message", `document.querySelector(".msg-detail")?.dataset.id === "5"`)
	p.shot("34-dark")
}
