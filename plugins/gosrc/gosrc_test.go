package gosrc_test

import (
	"bytes"
	"context"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/gosrc"
	"github.com/wstap/wstap/wsframe"
)

func TestLoadHook(t *testing.T) {
	elems, err := gosrc.Load("testdata/upper.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != 1 {
		t.Fatalf("%d elements, want 1", len(elems))
	}
	hook, ok := elems[0].(plugins.Hook)
	if !ok || hook.Name() != "upper" {
		t.Fatalf("element %T is not the upper hook", elems[0])
	}
	chain, err := plugins.NewChain(plugins.FailOpen, nil, elems...)
	if err != nil {
		t.Fatal(err)
	}
	// Interpreted hooks serve concurrent connections.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			m := &plugins.Message{Conn: &plugins.Conn{ID: "c"}, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("hello " + string(rune('a'+i)))}
			res, err := chain.Run(context.Background(), m)
			if err != nil || res.Action != plugins.Modify || string(res.Payload) != "HELLO "+string(rune('A'+i)) {
				t.Errorf("result %+v, %v", res, err)
			}
		})
	}
	wg.Wait()
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/syntax.go", []string{"testdata/syntax.go:6:"}},
		{"testdata/rangeint.go", []string{"testdata/rangeint.go:17:", "ranging over an integer"}},
		{"testdata/rangefunc.go", []string{"testdata/rangefunc.go:22:", "ranging over a function"}},
		// yaegi panics with "nil type" on this one (go/types cannot tell it is an
		// integer): the error still says where to look.
		{"testdata/rangeconst.go", []string{"cannot run this file (nil type)", "testdata/rangeconst.go:18:", "ranging over an integer"}},
		{"testdata/noctor.go", []string{"none of NewHook, NewCodec and NewLifecycle"}},
		{"testdata/badsig.go", []string{"NewHook has type", "want func() (plugins.Hook, error)"}},
		{"testdata/ctorerr.go", []string{"NewHook: no key configured"}},
		{"testdata/ctorpanic.go", []string{"NewHook: panic: ", "(at testdata/ctorpanic.go:", "in main.NewHook)"}},
		{"testdata/missing.go", []string{"no such file"}},
		// Methods wstap would call on a compiled-in plugin but cannot reach here.
		{"testdata/unwired.go", []string{"testdata/unwired.go:19:1:", "type counter has OnOpen and Close", "func NewLifecycle() (plugins.Lifecycle, error)", "plugins.Lifecycle{OnOpen: v.OnOpen, Close: v.Close}"}},
		{"testdata/halfwired.go", []string{"testdata/halfwired.go:22:1:", "type counter has OnClose", "set OnClose in the plugins.Lifecycle that NewLifecycle returns"}},
		{"testdata/codecashook.go", []string{"testdata/codecashook.go:21:1:", "type rev has Decode and Encode", "func NewCodec() (plugins.Codec, error)"}},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.file, "testdata/"), func(t *testing.T) {
			logged := captureLog(t)
			_, err := gosrc.Load(tc.file)
			if err == nil {
				t.Fatalf("loaded without error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// yaegi logs "nil type" with the standard logger before some of
			// its panics: the error says it all, the terminal must not.
			if logged.Len() > 0 {
				t.Errorf("loading wrote to the standard logger: %q", logged)
			}
		})
	}
	if _, err := gosrc.Load("testdata/noctor.go"); !errors.Is(err, gosrc.ErrNoConstructor) {
		t.Errorf("noctor: %v, want ErrNoConstructor", err)
	}
}

// captureLog sends the standard logger's output to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	var buf bytes.Buffer
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(&buf)
	t.Cleanup(func() { log.SetOutput(prev); log.SetFlags(flags) })
	return &buf
}

// recorder is a Controller that records what hooks inject.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Inject(_ context.Context, in plugins.Injection) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, string(in.Payload))
	return nil
}

func (r *recorder) Close(wsframe.CloseCode, string) {}

// TestLifecycle checks that the funcs of a file's NewLifecycle are called as the
// optional interfaces of compiled-in plugins are: OnHandshake may change or refuse
// the upgrade, OnOpen and OnClose see each connection, Close ends the chain.
func TestLifecycle(t *testing.T) {
	tests := []struct {
		file  string
		names []string
	}{
		{"testdata/lifecycle.go", []string{"tracker"}},           // method values of the hook
		{"testdata/lifecycleonly.go", []string{"lifecycleonly"}}, // func literals, no hook
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			elems, err := gosrc.Load(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			chain, err := plugins.NewChain(plugins.FailOpen, nil, elems...)
			if err != nil {
				t.Fatal(err)
			}
			if got := chain.Names(); !slices.Equal(got, tc.names) {
				t.Errorf("chain %q, want %q", got, tc.names)
			}
			ctx := context.Background()

			h := &plugins.Handshake{Request: http.Header{}}
			if err := chain.Handshake(ctx, h); err != nil {
				t.Errorf("Handshake: %v", err)
			}
			if got := h.Request.Get("X-Tracker"); got != "seen" {
				t.Errorf("after OnHandshake, X-Tracker is %q, want seen", got)
			}
			refused := &plugins.Handshake{Request: http.Header{"X-Refuse": {"1"}}}
			if err := chain.Handshake(ctx, refused); err == nil || !strings.Contains(err.Error(), "refused by") {
				t.Errorf("Handshake with X-Refuse: %v, want the script's refusal", err)
			}

			rec := &recorder{}
			conn := &plugins.Conn{ID: "c7", Controller: rec}
			chain.Opened(ctx, conn)
			res, err := chain.Run(ctx, &plugins.Message{Conn: conn, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("hi")})
			if err != nil || res.Action != plugins.Pass {
				t.Errorf("Run: %+v, %v; want pass", res, err)
			}
			chain.Closed(ctx, conn, 1000, "bye")
			if want := []string{"opened c7", "closed c7 1000 bye"}; !slices.Equal(rec.got, want) {
				t.Errorf("injected %q, want %q", rec.got, want)
			}
			if err := chain.Close(); err == nil || !strings.Contains(err.Error(), "closed after 1 connections") {
				t.Errorf("Close: %v, want the script's Close error", err)
			}
		})
	}
}

// yaegiPanicLine is what yaegi prints when a panic leaves an interpreted function.
var yaegiPanicLine = regexp.MustCompile(`(?m)^.*: panic: main\.\w+\(\.\.\.\)$`)

// TestPanickingHook runs a hook that panics on every message through a chain: each
// connection gets one short ERROR line that says where in the file; yaegi's own
// panic lines never reach standard error (the script's log output still does); the
// interpreter's trace and the stack appear only at debug level.
func TestPanickingHook(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			stderr := captureStderr(t)
			elems, err := gosrc.Load("testdata/panics.go")
			if err != nil {
				t.Fatal(err)
			}
			var logBuf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: level}))
			chain, err := plugins.NewChain(plugins.FailOpen, logger, elems...)
			if err != nil {
				t.Fatal(err)
			}
			conns := []*plugins.Conn{{ID: "c1"}, {ID: "c2"}}
			for _, c := range conns {
				for i := range 5 {
					m := &plugins.Message{Conn: c, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("m" + string(rune('0'+i)))}
					if res, err := chain.Run(context.Background(), m); err != nil || res.Action != plugins.Pass {
						t.Fatalf("Run: %+v, %v; want the message passed on", res, err)
					}
				}
			}
			out := stderr()
			if l := yaegiPanicLine.FindString(out); l != "" {
				t.Errorf("yaegi's panic line reached standard error: %q", l)
			}
			if n := strings.Count(out, "boom saw m"); n != 10 {
				t.Errorf("standard error has %d of the script's 10 log lines:\n%s", n, out)
			}

			var errorLines []string
			for _, l := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
				if strings.Contains(l, "level=ERROR") {
					errorLines = append(errorLines, l)
				}
			}
			if len(errorLines) != len(conns) {
				t.Fatalf("%d ERROR lines, want one per connection (%d):\n%s", len(errorLines), len(conns), logBuf.String())
			}
			for i, l := range errorLines {
				for _, w := range []string{"plugin=boom", "conn=" + conns[i].ID, "panic: ", "testdata/panics.go:17:", "in main.at"} {
					if !strings.Contains(l, w) {
						t.Errorf("ERROR line %q does not contain %q", l, w)
					}
				}
				if len(l) > 400 {
					t.Errorf("ERROR line of %d bytes, want a short one: %q", len(l), l)
				}
			}
			debugged := strings.Contains(logBuf.String(), "level=DEBUG")
			trace := strings.Contains(logBuf.String(), "panic: main.at(...)") && strings.Contains(logBuf.String(), "goroutine ")
			if want := level == slog.LevelDebug; debugged != want || trace != want {
				t.Errorf("at level %s: debug lines %v, interpreter trace and stack %v; want %v:\n%s", level, debugged, trace, want, logBuf.String())
			}
		})
	}
}

// captureStderr points os.Stderr at a file for the test; the function it returns
// reads what was written.
func captureStderr(t *testing.T) func() string {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	prev := os.Stderr
	os.Stderr = f
	t.Cleanup(func() { os.Stderr = prev; f.Close() })
	return func() string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}
