package har_test

// Chrome DevTools' HAR importer and the files this package writes: its rules written
// down in Go (TestChromeRules, which always runs), and the importer itself, the one
// in the DevTools that Chromium bundles, fed those files (TestChromeImporter, which
// needs /usr/bin/chromium).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wstap/wstap/internal/browsertest"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/har"
)

// chromeRules checks a decoded HAR file against what the importer of Chrome
// DevTools requires (front_end/models/har/HARFormat.ts and Importer.ts in
// devtools-frontend, commit 35f5a01d816a1535866303da2b6d037677ef30b2): HARBase throws
// unless its data is an object, safeNumber and safeDate throw on NaN, so an absent
// required number fails the whole import. Stricter than Chrome in one way: every
// WebSocket message must be one the importer keeps (time, opcode and data present,
// type send, receive or error), and numbers must be JSON numbers (Chrome would cast
// "12").
func chromeRules(v any) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	object := func(v any, where string) map[string]any {
		o, ok := v.(map[string]any)
		if !ok {
			fail("%s is not an object", where)
		}
		return o
	}
	number := func(o map[string]any, key, where string) {
		if _, ok := o[key].(float64); !ok {
			fail("%s.%s is not a number: %v", where, key, o[key])
		}
	}
	optionalNumber := func(o map[string]any, key, where string) {
		if x, ok := o[key]; ok {
			if _, ok := x.(float64); !ok {
				fail("%s.%s is not a number: %v", where, key, x)
			}
		}
	}
	date := func(o map[string]any, key, where string) {
		s, _ := o[key].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			fail("%s.%s is not a date: %v", where, key, o[key])
		}
	}
	objects := func(o map[string]any, key, where string) { // arrays of objects, when arrays
		if list, ok := o[key].([]any); ok {
			for i, x := range list {
				object(x, fmt.Sprintf("%s.%s[%d]", where, key, i))
			}
		}
	}
	root := object(v, "the file")
	if root == nil {
		return errs
	}
	log := object(root["log"], "log")
	if log == nil {
		return errs
	}
	object(log["creator"], "log.creator")
	if _, ok := log["version"].(string); !ok {
		fail("log.version is not a string")
	}
	entries, ok := log["entries"].([]any)
	if !ok {
		fail("log.entries is not an array")
	}
	for i, x := range entries {
		where := fmt.Sprintf("log.entries[%d]", i)
		e := object(x, where)
		if e == nil {
			continue
		}
		date(e, "startedDateTime", where)
		number(e, "time", where)
		if req := object(e["request"], where+".request"); req != nil {
			number(req, "headersSize", where+".request")
			number(req, "bodySize", where+".request")
			for _, k := range []string{"cookies", "headers", "queryString"} {
				objects(req, k, where+".request")
			}
		}
		if resp := object(e["response"], where+".response"); resp != nil {
			number(resp, "status", where+".response")
			number(resp, "headersSize", where+".response")
			number(resp, "bodySize", where+".response")
			for _, k := range []string{"cookies", "headers"} {
				objects(resp, k, where+".response")
			}
			if list, ok := resp["cookies"].([]any); ok {
				for k, c := range list {
					if c, ok := c.(map[string]any); ok && c["expires"] != nil {
						date(c, "expires", fmt.Sprintf("%s.response.cookies[%d]", where, k))
					}
				}
			}
			if c := object(resp["content"], where+".response.content"); c != nil {
				number(c, "size", where+".response.content")
			}
		}
		if tm := object(e["timings"], where+".timings"); tm != nil {
			for _, k := range []string{"send", "wait", "receive"} {
				number(tm, k, where+".timings")
			}
			for _, k := range []string{"blocked", "dns", "connect", "ssl"} {
				optionalNumber(tm, k, where+".timings")
			}
		}
		if e["_resourceType"] != "websocket" {
			continue
		}
		msgs, ok := e["_webSocketMessages"].([]any)
		if !ok {
			fail("%s._webSocketMessages is not an array", where)
		}
		for k, m := range msgs {
			mw := fmt.Sprintf("%s._webSocketMessages[%d]", where, k)
			o := object(m, mw)
			if o == nil {
				continue
			}
			number(o, "time", mw)
			number(o, "opcode", mw)
			if _, ok := o["data"].(string); !ok {
				fail("%s.data is not a string", mw)
			}
			if t := o["type"]; t != "send" && t != "receive" && t != "error" {
				fail("%s.type %v is not send, receive or error", mw, t)
			}
		}
	}
	return errs
}

// TestChromeRules: the files Write writes pass Chrome's importer's rules, and so
// does the HAR written after Chrome's (a check of the check).
func TestChromeRules(t *testing.T) {
	file, _ := writeHAR(t, readLog(t, sessionLog(t)), har.Options{})
	chrome, err := os.ReadFile("testdata/chrome-devtools.har")
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := writeHAR(t, nil, har.Options{})
	for name, f := range map[string][]byte{"written": file, "chrome": chrome, "empty": empty} {
		for _, e := range chromeRules(decodeHAR(t, f)) {
			t.Errorf("%s: %s", name, e)
		}
	}
	// And the check finds what the importer would fail on.
	broken := strings.NewReplacer(`"headersSize":-1,`, ``, `"data":`, `"_data":`, `"cache":{},`, ``).Replace(string(file))
	if errs := chromeRules(decodeHAR(t, []byte(broken))); len(errs) == 0 {
		t.Error("a file without headersSize or data passes")
	}
}

// chromeDevTools is a headless Chromium showing its bundled DevTools front end,
// whose modules (front_end/models/har/…) a script can import.
func chromeDevTools(t *testing.T) context.Context {
	t.Helper()
	browsertest.Require(t, false)
	b := browsertest.Start(t, browsertest.Options{})
	if err := chromedp.Do(b.Ctx, chromedp.Navigate("devtools://devtools/bundled/devtools_app.html")); err != nil {
		t.Fatalf("opening DevTools in Chromium: %v", err)
	}
	return b.Ctx
}

// importedRequest is what DevTools made of an entry.
type importedRequest struct {
	URL, ResourceType, StatusText, Method, Remote string
	Status                                        int
	Frames                                        []struct {
		Type   string
		OpCode int
		Text   string
		Time   float64
		Mask   bool
		Size   int // of the base64 data decoded with atob, for the frames that are not text; -1 when it does not decode
	}
}

// importHAR loads file into DevTools as the Network panel's "Import HAR file" does
// (checked in Chromium 156's panels/network/network.js: onLoadFromFile parses the
// text, builds a HARRoot and imports requestsFromHARLog of its log).
func importHAR(t *testing.T, ctx context.Context, file []byte) []importedRequest {
	t.Helper()
	text, err := json.Marshal(string(file))
	if err != nil {
		t.Fatal(err)
	}
	script := `(async (text) => {
		const src = await (await fetch('./panels/network/network.js')).text();
		if (!src.includes('HARFormat.HARRoot(JSON.parse(') || !src.includes('Importer.requestsFromHARLog(')) {
			throw new Error('the Network panel no longer imports HAR files with HARRoot and requestsFromHARLog');
		}
		const HAR = await import('./models/har/har.js');
		const root = new HAR.HARFormat.HARRoot(JSON.parse(text));
		return HAR.Importer.Importer.requestsFromHARLog(root.log).map(r => ({
			URL: r.url(), ResourceType: r.resourceType().name(), Status: r.statusCode, StatusText: r.statusText,
			Method: r.requestMethod, Remote: r.remoteAddress(),
			Frames: r.frames().map(f => {
				let size = -1;
				if (f.opCode !== 1) { try { size = atob(f.text).length; } catch (e) {} }
				return {Type: f.type, OpCode: f.opCode, Text: f.text, Time: f.time, Mask: f.mask, Size: size};
			}),
		}));
	})(` + string(text) + `)`
	reqs, err := chromedp.Run(ctx, chromedp.Evaluate[[]importedRequest](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("DevTools' importer: %v", err)
	}
	return reqs
}

// TestChromeImporter feeds the HAR of the test session to the HAR importer of the
// DevTools bundled with Chromium: every entry becomes a WebSocket request with its
// status, and every message a frame with the direction, opcode, data and time
// written, the data of binary and control frames valid base64.
func TestChromeImporter(t *testing.T) {
	ctx := chromeDevTools(t)
	evs := readLog(t, sessionLog(t))
	file, _ := writeHAR(t, evs, har.Options{})
	reqs := importHAR(t, ctx, file)

	// What each connection should be, from the events.
	type wantFrame struct {
		typ  string
		op   int
		text string
		time float64
		size int
	}
	var ids []string
	opens := map[string]*eventlog.Event{}
	frames := map[string][]wantFrame{}
	for _, e := range evs {
		switch e.Event {
		case "open", "refused":
			ids = append(ids, e.Conn)
			opens[e.Conn] = e
		case "message":
			f := wantFrame{typ: map[string]string{"c2s": "send", "s2c": "receive"}[e.Dir], text: string(e.Payload),
				time: float64(e.Time.UnixMicro()) / 1e6, size: -1}
			f.op = map[string]int{"text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}[e.Opcode]
			if f.op != 1 {
				f.text, f.size = base64.StdEncoding.EncodeToString(e.Payload), len(e.Payload)
			} else if s := string([]rune(f.text)); s != f.text {
				f.text = s // not UTF-8: a U+FFFD for each bad byte
			}
			frames[e.Conn] = append(frames[e.Conn], f)
		}
	}
	if len(reqs) != len(ids) {
		t.Fatalf("DevTools imported %d requests, want %d", len(reqs), len(ids))
	}
	for i, r := range reqs {
		open := opens[ids[i]]
		status := 0
		if open.Response != nil {
			status = open.Response.Status
		}
		if r.URL != open.URL || r.ResourceType != "websocket" || r.Status != status {
			t.Errorf("%s: imported as %s %s %d, want %s websocket %d", ids[i], r.URL, r.ResourceType, r.Status, open.URL, status)
		}
		want := frames[ids[i]]
		if len(r.Frames) != len(want) {
			t.Errorf("%s: %d frames imported, want %d", ids[i], len(r.Frames), len(want))
			continue
		}
		for k, f := range r.Frames {
			w := want[k]
			if f.Type != w.typ || f.OpCode != w.op || f.Text != w.text || f.Time != w.time || f.Size != w.size || f.Mask != (w.typ == "send") {
				t.Errorf("%s frame %d: imported %s op %d time %v size %d mask %v %q\nwant %s op %d time %v size %d %q",
					ids[i], k, f.Type, f.OpCode, f.Time, f.Size, f.Mask, short(f.Text), w.typ, w.op, w.time, w.size, short(w.text))
			}
		}
	}
	if r := reqs[1]; r.Remote != "10.0.0.2:8080" {
		t.Errorf("c2's remote address %q: connection should hold the port", r.Remote)
	}

	// The file written after Chrome's imports as Chrome's own would.
	chrome, err := os.ReadFile("testdata/chrome-devtools.har")
	if err != nil {
		t.Fatal(err)
	}
	reqs = importHAR(t, ctx, chrome)
	var got []string
	for _, r := range reqs {
		got = append(got, fmt.Sprintf("%s %s %d %d", r.ResourceType, r.URL, r.Status, len(r.Frames)))
	}
	want := "document https://echo.example.net/ 200 0|script https://echo.example.net/app.js 200 0|" +
		"websocket wss://echo.example.net/socket?v=2 101 5|websocket wss://echo.example.net/private 403 1"
	if strings.Join(got, "|") != want {
		t.Errorf("the Chrome file imports as\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}

	// A file Write wrote, read back and written again is the same file: nothing to
	// check in the browser twice. But one written from a HAR read from Chrome's is
	// new: it must import too.
	l, err := har.ReadLog(bytes.NewReader(chrome))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := writeHAR(t, l.Events, har.Options{})
	reqs = importHAR(t, ctx, again)
	if len(reqs) != 2 || len(reqs[0].Frames) != 5 || reqs[0].Frames[2].Size != 4 || reqs[1].Status != 403 {
		t.Errorf("Chrome's file, read and written again, imports as %+v", reqs)
	}
}
