package ui_test

// The write side of the page in a real browser, end to end: the encrypted-chat
// example's own page (WebCrypto: base64 of AES-256-GCM JSON) runs in a tab whose
// traffic goes through a wstap proxy with --hook base64 --hook aes and the
// breakpoint after them, talking to a coder/websocket server that negotiates
// permessage-deflate with context takeover; in another tab, the UI. The test
// does what a person does there — sets a rule, switches intercept on, edits the
// decrypted message in the editor, forwards, drops, composes and resends — and
// checks what the chat server decrypts and what the chat page shows.

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/intercept"
	"github.com/wstap/wstap/internal/browsertest"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/aes"
	"github.com/wstap/wstap/ui"
)

// chatApp serves the encrypted-chat example's page and scheme from a
// coder/websocket server with context takeover: it decrypts every message it
// gets (Got; Rejected when one does not decrypt) and sends it back encrypted
// with a fresh nonce, as the example's server does, and sends what the test puts
// in Push.
type chatApp struct {
	URL      string // the page: http://127.0.0.1:PORT/
	Box      *chatcrypto.Box
	Got      chan chatcrypto.Message
	Rejected chan string
	Push     chan chatcrypto.Message
}

func startChatApp(t *testing.T) *chatApp {
	t.Helper()
	box, err := chatcrypto.NewHex(chatcrypto.DemoKey)
	if err != nil {
		t.Fatal(err)
	}
	static := filepath.Join("..", "examples", "encrypted-chat", "static")
	page := template.Must(template.ParseFiles(filepath.Join(static, "index.html")))
	a := &chatApp{Box: box, Got: make(chan chatcrypto.Message, 64), Rejected: make(chan string, 64), Push: make(chan chatcrypto.Message, 64)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, struct{ Key string }{chatcrypto.DemoKey})
	})
	mux.HandleFunc("GET /chatcrypto.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(static, "chatcrypto.js"))
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover,
			CompressionThreshold: 1})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			for {
				select {
				case m := <-a.Push:
					if c.Write(ctx, websocket.MessageText, box.SealMessage(m)) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			m, err := box.OpenMessage(data)
			if err != nil {
				a.Rejected <- fmt.Sprintf("%v: %q", err, data)
				continue
			}
			a.Got <- m
			if c.Write(ctx, websocket.MessageText, box.SealMessage(m)) != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a.URL = srv.URL + "/"
	return a
}

// next is the next message the chat server decrypted.
func (a *chatApp) next(t *testing.T, what string) chatcrypto.Message {
	t.Helper()
	select {
	case m := <-a.Got:
		return m
	case r := <-a.Rejected:
		t.Fatalf("%s: the chat server could not decrypt a message: %s", what, r)
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: the chat server got nothing", what)
	}
	return chatcrypto.Message{}
}

// expect fails unless the next message the chat server decrypted is user: text.
func (a *chatApp) expect(t *testing.T, user, text string) {
	t.Helper()
	if m := a.next(t, text); m.User != user || m.Text != text {
		t.Fatalf("the chat server decrypted %s: %q, want %s: %q", m.User, m.Text, user, text)
	}
}

// nothing fails if the chat server got a message.
func (a *chatApp) nothing(t *testing.T, what string) {
	t.Helper()
	select {
	case m := <-a.Got:
		t.Fatalf("%s: the chat server got %s: %q", what, m.User, m.Text)
	case r := <-a.Rejected:
		t.Fatalf("%s: the chat server got a message it could not decrypt: %s", what, r)
	default:
	}
}

// say sends text from the chat page, as its user types it and clicks Send.
func (p *page) say(text string) {
	p.t.Helper()
	p.fill("#text", text)
	p.click("#form button")
	p.waitFor("the chat page to send "+text, `document.querySelector("#text").value === ""`)
}

// waitLine waits until the chat page shows the line (a message it decrypted).
func (p *page) waitLine(line string) {
	p.t.Helper()
	p.waitFor("the chat page to show "+line, `[...document.querySelectorAll("#log p")].some(e => e.textContent === `+js(line)+`)`)
}

// TestBrowserIntercept: through the real UI, a rule and the intercept switch
// hold the chat page's message; the editor shows it decrypted (JSON, validated
// as typed); the edited plaintext reaches the chat server encrypted again, and
// comes back to the page; a hold that times out, one released after a later
// message (sent out of order) and a dropped one do what they say, and the
// history says so in words; a message composed in the UI reaches the server, and
// another the page; Resend sends a message again. All of it on a connection with
// permessage-deflate context takeover: every later message in both directions
// still arrives intact, and nothing the server or page got failed to decrypt.
func TestBrowserIntercept(t *testing.T) {
	browsertest.Require(t, false)
	app := startChatApp(t)

	st := history.New(0, "")
	async := plugins.NewAsync(st, 1<<14, 64<<20)
	ctl := intercept.New(intercept.Config{})
	t.Cleanup(func() { ctl.Close() })
	var elems []plugins.Element
	for _, spec := range []struct {
		name string
		opts map[string]string
	}{{"base64", nil}, {"aes", map[string]string{"key": "hex:" + chatcrypto.DemoKey}}} {
		e, err := plugins.New(spec.name, spec.opts)
		if err != nil {
			t.Fatal(err)
		}
		elems = append(elems, e)
	}
	proxyAddr := startProxy(t, &wstest.SyncBuffer{}, async, append(elems, ctl)...)
	srv, base := startUIWith(t, ui.Config{Store: st, Info: ui.Info{Version: "test", Mode: "proxy", Proxy: proxyAddr},
		Lost: async.Dropped, Intercept: ctl, Breakpoint: "after base64 → aes"})

	p := openBrowser(t, 4*time.Minute)
	p.run("opening the UI", chromedp.Navigate(srv.URL(strings.TrimPrefix(base, "http://"))))
	p.waitFor("the page to be live", `document.querySelector("#live-text")?.textContent === "live"`)

	// The editor's conversions, in the page's own modules: JSON is sent compact
	// with every literal as written (a number beyond float64, a string with
	// escaped quotes and inner spaces), hex ignores spaces, new lines and colons.
	got := eval[string](p, `(async () => {
		const {PayloadEditor} = await import("/editor.js");
		const e = new PayloadEditor({modes: ["text", "json", "hex", "base64"]});
		const out = [];
		e.set(new TextEncoder().encode('{ "n" : [1e400, 12345678901234567890, 2.50], "s": "a \\" b  c" }'));
		out.push(e.mode, JSON.stringify(e.payload()), String(e.edited()));
		e.area.value = e.area.value.replace("2.50", "2.5"); e.changed();
		out.push(String(e.edited()));
		e.switchTo("hex"); e.area.value = "7b 22\n41:42 22 7d"; e.changed();
		out.push(JSON.stringify(e.payload()));
		e.area.value = "7b 2"; e.changed();
		out.push(e.read().error);
		e.switchTo("base64"); // refused: the hex is not valid
		out.push(e.mode);
		e.area.value = "7b7d"; e.changed(); e.switchTo("base64");
		out.push(e.area.value);
		e.area.value = "eyJ4Ijow fQ=="; e.changed();
		out.push(JSON.stringify(e.payload()));
		return out.join("|");
	})()`, chromedp.EvalAwaitPromise)
	if want := `json|{"text":"{\"n\":[1e400,12345678901234567890,2.50],\"s\":\"a \\\" b  c\"}"}|false|true|` +
		`{"hex":"7b224142227d"}|hex: an odd number of digits|hex|e30=|{"base64":"eyJ4IjowfQ=="}`; got != want {
		t.Errorf("the editor's conversions:\n%s\nwant\n%s", got, want)
	}

	// The breakpoint: a rule, typed and applied with Enter, and the switch.
	p.click(`#views button[data-view="intercept"]`)
	p.waitFor("the intercept view", `!document.querySelector("#ic-view").hidden && document.querySelector("#ic-where").textContent === "· after base64 → aes"`)
	p.typeIn(".rule-row input", "dir=up")
	p.waitFor("the bad rule refused", `document.querySelector(".rule-row.bad .rule-msg")?.textContent.includes("want c2s, s2c or both") &&
		document.querySelector("#ic-rules-msg").textContent.startsWith("Not applied")`)
	p.shot("40-intercept-bad-rule")
	p.typeIn(".rule-row input", "dir=c2s,match=transfer")
	p.waitFor("the rule applied", `document.querySelector(".rule-row.ok") && !document.querySelector("#ic-rules").classList.contains("dirty")`)
	p.click("#ic-switch")
	p.waitFor("intercept on", `document.querySelector("#ic-enabled").checked && document.querySelector("#ic-rules-msg").textContent.startsWith("Holding")`)
	if s := ctl.Settings(); !s.Enabled || len(s.Rules) != 1 || s.Rules[0].String() != "dir=c2s,match=transfer" {
		t.Fatalf("the breakpoint's settings after the page set them: %+v", s)
	}

	// The chat page, through the proxy.
	chat := p.proxiedTab(proxyAddr)
	chat.run("opening the chat page", chromedp.Navigate(app.URL))
	chat.waitFor("the chat to connect", `document.querySelector("#log p.sys")?.textContent.startsWith("connected to ws://")`)
	conns := func() []history.ConnView { _, c := st.Conns("", 0, 10); return c }
	for deadline := time.Now().Add(10 * time.Second); len(conns()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the chat's connection never reached the history: did the page go through the proxy?")
		}
	}
	conn := conns()[0]
	if !strings.Contains(conn.Extensions, "permessage-deflate") || strings.Contains(conn.Extensions, "no_context_takeover") {
		t.Fatalf("the chat's connection negotiated %q, want permessage-deflate with context takeover", conn.Extensions)
	}

	// A message that passes, then one the rule holds.
	chat.say("hello")
	app.expect(t, "alice", "hello")
	chat.waitLine("alice: hello")
	chat.say("transfer 5 to bob")
	p.waitFor("the held message in the queue", `document.querySelectorAll("#ic-queue .ic-item").length === 1 &&
		document.querySelector("#ic-count").textContent === "1"`)
	app.nothing(t, "while the message is held")
	held := `{
  "user": "alice",
  "text": "transfer 5 to bob"
}`
	p.waitFor("the editor with the decrypted message as JSON", `document.querySelector(".ic-ed .editor")?.dataset.mode === "json" &&
		document.querySelector(".ic-ed .editor-area").value === `+js(held))
	if l1 := eval[string](p, `document.querySelector("#ic-queue .ic-item .ic-l1").textContent`); !strings.Contains(l1, "→"+conn.ID+"text") {
		t.Errorf("the queue's entry says %q, want the direction, connection and opcode", l1)
	}
	if note := eval[string](p, `document.querySelector(".ic-ed .md-note").textContent`); !strings.Contains(note, "Decoded by base64 → aes") {
		t.Errorf("the editor's note says %q", note)
	}
	p.shot("41-intercept-queue")
	// The same bytes in hex, 16 a line.
	p.click(`.ic-ed .seg button[data-mode="hex"]`)
	var lines []string
	for b := []byte(`{"user":"alice","text":"transfer 5 to bob"}`); len(b) > 0; b = b[min(16, len(b)):] {
		lines = append(lines, strings.TrimSpace(fmt.Sprintf("% x", b[:min(16, len(b))])))
	}
	p.waitFor("the hex view", `document.querySelector(".ic-ed .editor-area").value === `+js(strings.Join(lines, "\n")))
	p.click(`.ic-ed .seg button[data-mode="json"]`)
	p.waitFor("the JSON view again", `document.querySelector(".ic-ed .editor-area").value === `+js(held))

	// JSON is validated as it is typed; an edit of the plaintext is forwarded.
	p.fill(".ic-ed .editor-area", `{"user":"alice","text":`)
	p.waitFor("the JSON error", `document.querySelector(".ic-ed .editor-status.bad")?.textContent.startsWith("invalid JSON") &&
		document.querySelector("#ic-forward-edited").disabled`)
	p.shot("42-intercept-invalid-json")
	p.fill(".ic-ed .editor-area", `{"user": "alice", "text": "transfer 5000 to mallory"}`)
	p.waitFor("the edit accepted", `!document.querySelector("#ic-forward-edited").disabled &&
		document.querySelector(".ic-ed .editor-status").textContent.includes("edited")`)
	p.shot("43-intercept-edited")
	p.click("#ic-forward-edited")
	app.expect(t, "alice", "transfer 5000 to mallory")
	chat.waitLine("alice: transfer 5000 to mallory")
	p.waitFor("the queue empty, and what became of the message", `document.querySelectorAll("#ic-queue .ic-item").length === 0 &&
		document.querySelector("#ic-log .ic-out")?.textContent === "forwarded edited"`)

	// Unheld after the timeout: forwarded unchanged, and the page says so.
	p.fill("#ic-timeout", "3s")
	p.click("#ic-apply")
	p.waitFor("the timeout applied", `document.querySelector("#ic-rules-msg").textContent.includes("unchanged after 3s")`)
	// (With HTML in it, which the page shows as text.)
	const hostileHold = "transfer 2 times out <img src=x onerror=alert(1)>"
	chat.say(hostileHold)
	p.waitFor("the second held message, as text", `document.querySelectorAll("#ic-queue .ic-item").length === 1 &&
		document.querySelector("#ic-queue .ic-l2").textContent.includes("<img src=x onerror=alert(1)>") &&
		document.querySelector(".ic-ed .editor-area").value.includes("<img src=x onerror=alert(1)>")`)
	if n := eval[int](p, `document.querySelectorAll("img").length`); n != 0 {
		t.Errorf("the UI has %d img elements", n)
	}
	app.expect(t, "alice", hostileHold)
	p.waitFor("the time-out in the recent list", `document.querySelector("#ic-log .ic-out")?.textContent === "timed out, sent unchanged"`)
	p.fill("#ic-timeout", "5m")
	p.click("#ic-apply")
	p.waitFor("the timeout applied", `document.querySelector("#ic-rules-msg").textContent.includes("unchanged after 5m0s")`)

	// Held, then a later message goes first: forwarded out of order.
	chat.say("transfer 3 goes last")
	p.waitFor("the third held message", `document.querySelectorAll("#ic-queue .ic-item").length === 1`)
	chat.say("overtaking")
	app.expect(t, "alice", "overtaking")
	p.click("#ic-forward")
	app.expect(t, "alice", "transfer 3 goes last")
	p.waitFor("out of order in the recent list", `document.querySelector("#ic-log .ic-out")?.textContent === "forwarded, sent out of order"`)

	// Two held, then Forward all: both go, oldest first.
	chat.say("transfer 5 first of two")
	chat.say("transfer 6 second of two")
	p.waitFor("two held messages", `document.querySelectorAll("#ic-queue .ic-item").length === 2 &&
		document.querySelector("#ic-count").textContent === "2"`)
	// Leaving the page releases nothing: reloaded, it shows the same queue (the
	// address bar kept the view).
	p.run("reloading the UI", chromedp.Reload())
	p.waitFor("the same two held messages", `!document.querySelector("#ic-view").hidden &&
		document.querySelectorAll("#ic-queue .ic-item").length === 2`)
	app.nothing(t, "after the UI reloaded")
	p.click(`#ic-queue .ic-item:nth-child(2)`)
	p.waitFor("the second one in the editor", `document.querySelector(".ic-ed .editor-area").value.includes("transfer 6 second of two")`)
	p.shot("44-intercept-two-held")
	p.darkShot("44b-intercept-two-held-dark")
	app.nothing(t, "while two messages are held")
	p.click("#ic-forward-all")
	app.expect(t, "alice", "transfer 5 first of two")
	app.expect(t, "alice", "transfer 6 second of two")
	p.waitFor("the queue empty", `document.querySelectorAll("#ic-queue .ic-item").length === 0`)

	// Raw: the wire bytes edited, past the codecs (here a ciphertext made with
	// the app's key, which the codecs would have wrapped again).
	chat.say("transfer 7 replaced raw")
	p.waitFor("the held message", `document.querySelectorAll("#ic-queue .ic-item").length === 1`)
	p.click("#ic-raw")
	p.waitFor("the wire payload in the editor", `document.querySelector(".ic-ed .part-head h4").textContent === "Wire payload (raw)" &&
		/^[A-Za-z0-9+/]+=*$/.test(document.querySelector(".ic-ed .editor-area").value)`)
	p.fill(".ic-ed .editor-area", string(app.Box.SealMessage(chatcrypto.Message{User: "mallory", Text: "a raw ciphertext"})))
	p.click("#ic-forward-edited")
	app.expect(t, "mallory", "a raw ciphertext")
	p.waitFor("the queue empty", `document.querySelectorAll("#ic-queue .ic-item").length === 0`)

	// Dropped: the server never gets it.
	chat.say("transfer 4 is dropped")
	p.waitFor("the fourth held message", `document.querySelectorAll("#ic-queue .ic-item").length === 1`)
	p.click("#ic-drop")
	p.waitFor("the drop in the recent list", `document.querySelector("#ic-log .ic-out")?.textContent === "dropped"`)
	chat.say("after the drop")
	app.expect(t, "alice", "after the drop")
	p.shot("45-intercept-released")

	// The history says what became of each held message, in words.
	p.click(`#views button[data-view="history"]`)
	p.click(`.conn[data-id="` + conn.ID + `"]`)
	// The held rows (the messages as they arrived), then the releases, each
	// through the flags filter.
	flag := func(f string) {
		p.click("#flags summary")
		p.click(`#flags input[value="` + f + `"]`)
		p.click("#conns-pane .pane-head") // closes the menu
	}
	labels := func(n int) []string {
		p.waitFor(fmt.Sprintf("%d rows", n), fmt.Sprintf(`document.querySelector("#result b")?.textContent === "%d" &&
			document.querySelectorAll("#msgs .row .hold").length === %d`, n, n))
		return eval[[]string](p, `[...document.querySelectorAll("#msgs .row .hold")].map(e => e.textContent)`)
	}
	flag("held")
	if got := strings.Join(labels(7), "|"); got != strings.Repeat("held|", 6)+"held" {
		t.Errorf("the held rows' labels: %s", got)
	}
	flag("held")
	flag("released")
	released := labels(7)
	// The second of the two forwarded together went out after the first, in its
	// order: not out of order.
	if want := []string{"forwarded edited", "timed out, sent unchanged", "forwarded, sent out of order", "forwarded", "forwarded",
		"forwarded edited", "dropped"}; strings.Join(released, "|") != strings.Join(want, "|") {
		t.Errorf("the releases' labels %q, want %q", released, want)
	}
	p.click(`#msgs .row .hold.s-forwarded`)
	p.waitFor("the edited release's detail", `document.querySelector('.part[data-part="original_decoded"]') &&
		document.querySelector(".msg-detail .md-note .hold")?.textContent === "forwarded edited"`)
	p.shot("46-history-holds")
	flag("released")

	// Compose: a new message to the server, then one to the page, in plaintext.
	p.click("#tab-compose")
	p.waitFor("the composer", `document.querySelector(".compose")?.dataset.conn === `+js(conn.ID))
	p.fill(".compose .editor-area", `{"user":"mallory","text":"injected into the server"}`)
	p.shot("47-compose")
	p.click("#compose-send")
	p.waitFor("sent", `document.querySelector(".compose .ic-result.ok")`)
	app.expect(t, "mallory", "injected into the server")
	chat.waitLine("mallory: injected into the server") // the server's echo
	p.click(`.compose button[data-dir="s2c"]`)
	p.fill(".compose .editor-area", `{"user":"wstap","text":"injected into the page"}`)
	p.click("#compose-send")
	p.waitFor("sent to the page", `document.querySelector(".compose .ic-result.ok")?.textContent.startsWith("Sent to the client")`)
	chat.waitLine("wstap: injected into the page")
	app.nothing(t, "after an injection into the page")
	// Typed as text, shown as hex, sent as a binary message.
	p.click(`.compose button[data-dir="c2s"]`)
	p.fill(".compose .editor-area", `{"user":"mallory","text":"binary, from hex"}`)
	p.click(`.compose .seg button[data-mode="hex"]`)
	p.waitFor("the hex, and a binary message", `document.querySelector(".compose .editor").dataset.mode === "hex" &&
		document.querySelector(".compose .editor-area").value.startsWith("7b 22 75 73 65 72 22") &&
		document.querySelector(".compose select").value === "binary"`)
	p.click("#compose-send")
	app.expect(t, "mallory", "binary, from hex")
	chat.waitLine("mallory: binary, from hex")
	if n, rows := st.Messages(history.Query{Conn: conn.ID, Types: []string{"binary"}, Flags: history.Injected}, 0, 10); n != 1 ||
		rows[0].Dir != "c2s" {
		t.Errorf("the history has %d injected binary messages (%+v), want the one sent as hex", n, rows)
	}

	// Resend a message of the history: the same plaintext, encrypted afresh.
	p.click("#tab-message")
	p.typeIn("#q", "overtaking")
	p.click(`#dir button[data-dir="c2s"]`)
	p.waitFor("one row", `document.querySelector("#result b")?.textContent === "1" && document.querySelector("#msgs .row[data-id]:not([data-id=''])")`)
	p.click(`#msgs .row[data-id]:not([data-id=''])`)
	p.waitFor("the resend button", `document.querySelector("#resend")`)
	p.click("#resend")
	p.waitFor("the resend composer", `document.querySelector(".compose .editor-area")?.value === '{\n  "user": "alice",\n  "text": "overtaking"\n}' &&
		document.querySelector("#compose-send").textContent === "Send again"`)
	p.shot("48-resend")
	p.click("#compose-send")
	p.waitFor("resent", `document.querySelector(".compose .ic-result.ok")`)
	app.expect(t, "alice", "overtaking")
	chat.waitLine("alice: overtaking")

	// Every later message, both ways, still arrives intact (wstap compresses
	// both directions itself now; the receivers keep their windows).
	for i := range 4 {
		text := fmt.Sprintf("later message %d: %s", i, strings.Repeat("the same words again and again, ", 8))
		chat.say(text)
		app.expect(t, "alice", text)
		chat.waitLine("alice: " + text)
		app.Push <- chatcrypto.Message{User: "server", Text: fmt.Sprintf("push %d %s", i, strings.Repeat("x", 300))}
		chat.waitLine(fmt.Sprintf("server: push %d %s", i, strings.Repeat("x", 300)))
	}
	if errs := chatErrors(chat); errs != 0 {
		t.Errorf("the chat page could not decrypt %d messages", errs)
	}
	if closed := eval[bool](chat, `[...document.querySelectorAll("#log p.sys")].some(e => e.textContent.startsWith("disconnected"))`); closed {
		t.Error("the chat's connection closed")
	}
	app.nothing(t, "at the end")
	chat.shot("49-chat-page")

	// A message held when its connection ends is dropped, and the page says so.
	p.click(`#views button[data-view="intercept"]`)
	chat.say("transfer 9 never arrives")
	p.waitFor("the last held message", `document.querySelectorAll("#ic-queue .ic-item").length === 1`)
	if err := chromedp.Cancel(chat.b.Ctx); err != nil { // the chat's tab closes
		t.Fatalf("closing the chat's tab: %v", err)
	}
	p.waitFor("the drop in the recent list", `document.querySelector("#ic-log .ic-out")?.textContent === "dropped: connection closed" &&
		document.querySelectorAll("#ic-queue .ic-item").length === 0`)
	app.nothing(t, "after the connection ended")
	p.shot("50-intercept-conn-closed")
	p.click(`#views button[data-view="history"]`)
	p.click(`#dir button[data-dir=""]`)
	p.typeIn("#q", "transfer 9")
	p.waitFor("the held message and its drop", `document.querySelector("#result b")?.textContent === "2" &&
		[...document.querySelectorAll("#msgs .row .hold")].map(e => e.textContent).join("|") === "held|dropped: connection closed"`)
	// What the page sent: the flags filter knows.
	p.typeIn("#q", "")
	p.click("#flags summary")
	p.click(`#flags input[value="injected"]`)
	p.click("#conns-pane .pane-head") // closes the menu
	p.waitFor("the four messages sent from the page", `document.querySelector("#result b")?.textContent === "4" &&
		document.querySelectorAll("#msgs .row .badge.f-injected").length === 4`)
	p.shot("51-history-injected")

	if n := p.b.Dialogs(); n != 0 {
		t.Errorf("a page opened %d JavaScript dialogs", n)
	}
	if c := p.b.Console.String(); strings.Contains(c, "exception") {
		t.Errorf("a page threw:\n%s", c)
	}
}

// chatErrors counts the messages the chat page could not decrypt.
func chatErrors(chat *page) int {
	return eval[int](chat, `document.querySelectorAll("#log p.err").length`)
}
