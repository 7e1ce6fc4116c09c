package ui_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/ui"
	"github.com/wstap/wstap/wsframe"
)

// TestSecurityEdges: the token, Host and Origin rules at their edges (the common
// cases are in TestAPISecurity): names that merely contain "localhost" or the
// UI's origin, IPv6 loopback, a Referer standing in for Origin, a GET that tries
// to log in; a refusal never sets a cookie, and nothing answers CORS.
func TestSecurityEdges(t *testing.T) {
	srv, base := startUI(t, history.New(0, ""), ui.Info{Mode: "proxy"}, nil)
	tok := srv.Token()
	port := base[strings.LastIndexByte(base, ':')+1:]
	host := func(h string) func(*http.Request) {
		return func(r *http.Request) { bearer(tok)(r); r.Host = h }
	}
	login := func(hdr ...string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("X-Wstap-Token", tok)
			for i := 0; i < len(hdr); i += 2 {
				r.Header.Set(hdr[i], hdr[i+1])
			}
		}
	}
	for _, tc := range []struct {
		name, method, path string
		edit               func(*http.Request)
		want               int
	}{
		{"IPv6 loopback", "GET", "/api/info", host("[::1]:" + port), http.StatusOK},
		{"localhost in capitals", "GET", "/api/info", host("LocalHost:" + port), http.StatusOK},
		{"a name ending in localhost", "GET", "/api/info", host("evil-localhost:" + port), http.StatusMisdirectedRequest},
		{"a name starting with localhost", "GET", "/api/info", host("localhost.evil.example:" + port), http.StatusMisdirectedRequest},
		{"a name like an address", "GET", "/api/info", host("127.0.0.1.evil.example:" + port), http.StatusMisdirectedRequest},
		{"token without Bearer", "GET", "/api/info", func(r *http.Request) { r.Header.Set("Authorization", tok) }, http.StatusUnauthorized},
		{"login token as a bearer only", "POST", "/api/login", func(r *http.Request) { bearer(tok)(r); r.Header.Set("Origin", base) }, http.StatusUnauthorized},
		{"login, foreign Referer", "POST", "/api/login", login("Referer", "http://evil.example/page"), http.StatusForbidden},
		{"login, own Referer", "POST", "/api/login", login("Referer", base+"/"), http.StatusNoContent},
		{"login, look-alike Origin", "POST", "/api/login", login("Origin", base+".evil.example"), http.StatusForbidden},
		{"login, look-alike Referer", "POST", "/api/login", login("Referer", base+".evil.example/"), http.StatusForbidden},
		{"login, Origin null", "POST", "/api/login", login("Origin", "null"), http.StatusForbidden},
		{"login, https Origin", "POST", "/api/login", login("Origin", "https"+strings.TrimPrefix(base, "http")), http.StatusForbidden},
		{"login by GET", "GET", "/api/login", login(), http.StatusMethodNotAllowed},
		{"events, foreign Referer", "GET", "/api/events", func(r *http.Request) {
			bearer(tok)(r)
			r.Header.Set("Origin", "http://evil.example")
			r.Header.Set("Referer", base+"/")
		}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := request(t, tc.method, base, tc.path, tc.edit)
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
			if c := resp.Header.Get("Set-Cookie"); c != "" && resp.StatusCode >= 400 {
				t.Errorf("a refused request got a cookie: %s", c)
			}
			if c := resp.Cookies(); resp.StatusCode == http.StatusNoContent && (len(c) != 1 || c[0].Path != "/" || c[0].Domain != "") {
				t.Errorf("login cookies %+v: want one, for the UI's own host (no Domain) and every path", c)
			}
			checkStrictHeaders(t, resp)
		})
	}
}

// checkStrictHeaders checks the headers every answer carries: a CSP that allows
// nothing but the UI's own scripts, styles and connections (no inline script,
// no framing), no sniffing, no framing, no referrer, no caching.
func checkStrictHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
		t.Errorf("Content-Security-Policy %q is not strict", csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the UI answers CORS")
	}
}

// TestPageFiles: the page's files are served (every module the page imports,
// as JavaScript, which a module script needs under nosniff), with no token
// needed; and the page's sources never treat anything as HTML (no innerHTML and
// its kin, no inline script or handler the CSP would block anyway).
func TestPageFiles(t *testing.T) {
	st := history.New(0, "")
	_, base := startUI(t, st, ui.Info{Mode: "proxy"}, nil)

	resp, page := request(t, "GET", base, "/", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkStrictHeaders(t, resp)
	if regexp.MustCompile(`(?i)<script(?:\s+type="module")?>|\son[a-z]+=|javascript:|style=`).MatchString(page) {
		t.Error("index.html has inline script, an event handler attribute or an inline style")
	}

	files, err := filepath.Glob("static/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("static files: %v %v", files, err)
	}
	importRe := regexp.MustCompile(`(?m)^import .* from "\./([a-z]+\.js)";`)
	imported := map[string]bool{"app.js": true}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range importRe.FindAllStringSubmatch(string(b), -1) {
			imported[m[1]] = true
		}
		if filepath.Ext(f) != ".js" {
			continue
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment", "DOMParser"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s: the page must insert traffic as text only", f, bad)
			}
		}
	}
	for name := range imported {
		if _, err := os.Stat(filepath.Join("static", name)); err != nil {
			t.Errorf("a module imports %s, which does not exist", name)
		}
	}
	for _, f := range files {
		name := filepath.Base(f)
		if name == "index.html" {
			continue
		}
		resp, body := request(t, "GET", base, "/"+name, nil)
		want := map[string]string{".js": "text/javascript", ".css": "text/css"}[filepath.Ext(name)]
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || body == "" {
			t.Errorf("GET /%s: %d %q", name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := request(t, "GET", base, "/nothing.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing.js: %d", resp.StatusCode)
	}
}

// TestMessagesAt: at=ID says where the filtered list shows message ID, or the
// next row the filter selects (how the page keeps the selection in view when the
// filter changes).
func TestMessagesAt(t *testing.T) {
	st := history.New(0, "")
	c := &plugins.Conn{ID: "c1", URL: &url.URL{Scheme: "ws", Host: "a.example", Path: "/"}, Mode: plugins.Proxy}
	st.Opened(c, time.Unix(1, 0))
	for i := range 6 { // c2s: rows 0, 2, 4
		st.Message(&plugins.Record{Conn: c, Dir: plugins.Direction(1 + i%2), Seq: uint64(i), Opcode: wsframe.OpText,
			Time: time.Unix(2, 0), Payload: []byte("m"), Len: 1, Frames: 1})
	}
	srv, base := startUI(t, st, ui.Info{Mode: "proxy"}, nil)
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"dir=c2s&limit=0&at=2", `"index":1`},
		{"dir=c2s&limit=0&at=3", `"index":2`},
		{"dir=c2s&limit=0&at=99", `"index":3`},
		{"limit=0&at=3", `"index":3`},
	} {
		resp, body := request(t, "GET", base, "/api/messages?"+tc.query, bearer(srv.Token()))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %s", tc.query, resp.StatusCode, body, tc.want)
		}
	}
	if resp, body := request(t, "GET", base, "/api/messages?at=x", bearer(srv.Token())); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("at=x: %d %s, want 400", resp.StatusCode, body)
	}
	if _, body := request(t, "GET", base, "/api/messages", bearer(srv.Token())); strings.Contains(body, `"index"`) {
		t.Errorf("an answer without at has an index: %s", body)
	}
}
