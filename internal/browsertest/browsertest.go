// Package browsertest runs Debian's Chromium for the project's browser tests
// (and the benchmark command's ui section), driven with chromedp: the rule for a
// missing browser (skip on a developer's machine, fail in CI), a headless
// Chromium whose processes all go away when the test ends or it is closed,
// optionally sending loopback traffic (and only that) through a proxy whose CA it
// trusts, the page's console kept for failure reports, polling a page's state,
// and screenshots.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/wstap/wstap/internal/wstest"
)

// Chromium is Debian's chromium launcher (`apt-get install chromium`).
const Chromium = "/usr/bin/chromium"

// Certutil is NSS's certutil (`apt-get install libnss3-tools`), which makes
// Chromium trust a CA the way a user would.
const Certutil = "/usr/bin/certutil"

// DefaultTimeout bounds a browser from its start to the test's last check.
const DefaultTimeout = 60 * time.Second

// Require skips the test when Chromium is missing (or certutil, when certutil is
// true), or fails it when CI is set: CI must never pass by running none of the
// browser tests.
func Require(t testing.TB, certutil bool) {
	t.Helper()
	tools := []struct{ path, pkg string }{{Chromium, "chromium"}}
	if certutil {
		tools = append(tools, struct{ path, pkg string }{Certutil, "libnss3-tools"})
	}
	for _, tool := range tools {
		if fi, err := os.Stat(tool.path); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			continue
		}
		wstest.Unavailable(t, "%s is missing: apt-get install %s (make test installs it)", tool.path, tool.pkg)
	}
}

// Options shape a browser.
type Options struct {
	// Proxy, when set (host:port), is where loopback traffic goes; nothing else
	// goes through it.
	Proxy string
	// CA, when set, is a PEM certificate Chromium trusts as a root, through an NSS
	// database in a temporary HOME (what Chromium on Linux reads for
	// user-installed roots). Needs certutil.
	CA []byte
	// Width and Height are the window's size; 800×600 when zero.
	Width, Height int
	// Timeout bounds the browser's life; DefaultTimeout when zero.
	Timeout time.Duration
	// Exec is the browser to run; Chromium when empty.
	Exec string
	// Home is the browser's HOME (its profile, NSS database and XDG directories);
	// Start uses the test's temporary directory, Launch needs it set.
	Home string
}

// Browser is a running headless Chromium with one tab.
type Browser struct {
	Ctx     context.Context    // the tab's chromedp context, bounded by Options.Timeout
	Output  *wstest.SyncBuffer // Chromium's stdout and stderr
	Console *wstest.SyncBuffer // the page's console messages, uncaught exceptions and dialogs
	// Dialogs counts the JavaScript dialogs (alert, confirm, prompt) pages opened;
	// each is dismissed.
	Dialogs func() int
	// Process is the browser's main process (its helpers are its descendants).
	Process *os.Process

	close func() error
}

// Start starts a headless Chromium as o says, and stops it, with every process it
// started, when the test ends (failing the test if it had to kill some).
//
// Trust: the CA goes into an NSS database, so Chromium verifies every leaf the CA
// signed (chain, SAN, key usage) as it would for a user who installed the CA.
// --ignore-certificate-errors-spki-list would instead skip verification for one
// pinned leaf key, and tell us nothing about the certificates themselves.
func Start(t testing.TB, o Options) *Browser {
	t.Helper()
	o.Home = t.TempDir()
	b, err := Launch(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("page console:\n%s", b.Console.String())
			t.Logf("Chromium output (last 4 KiB, D-Bus noise left out):\n%s", b.OutputTail(4096))
		}
	})
	return b
}

// Launch starts a headless Chromium as o says, outside a test (the benchmark
// command drives the same browser as the tests); o.Home must be set. Close stops
// it.
func Launch(o Options) (*Browser, error) {
	if o.Home == "" {
		return nil, errors.New("browsertest: Launch needs Options.Home")
	}
	home := o.Home
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	if o.CA != nil {
		if err := trust(home, o.CA); err != nil {
			return nil, err
		}
	}
	if o.Exec == "" {
		o.Exec = Chromium
	}
	if o.Width == 0 {
		o.Width, o.Height = 800, 600
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}

	profile := filepath.Join(home, "profile")
	marker := "WSTAP_BROWSER_TEST=" + home // finds this browser's processes: see procs
	b := &Browser{Output: &wstest.SyncBuffer{}, Console: &wstest.SyncBuffer{}}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(o.Exec),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"), // canvas pixels equal the PNG's
		chromedp.WindowSize(o.Width, o.Height),
		// The resolver rules keep Chromium's background requests (time, accounts,
		// update checks) off the network.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.Env(marker, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache")),
		chromedp.CombinedOutput(b.Output),
	}
	if o.Proxy != "" {
		// Loopback bypasses a proxy unless "<-loopback>" removes that implicit rule;
		// "*" bypasses everything else, so only loopback goes through the proxy.
		opts = append(opts, chromedp.ProxyServer(o.Proxy), chromedp.Flag("proxy-bypass-list", "*;<-loopback>"))
	}
	deadline, cancelDeadline := context.WithTimeout(context.Background(), o.Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(deadline, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(func(string, ...any) {}))
	b.Ctx = ctx
	dialogs := make(chan struct{}, 1024)
	b.Dialogs = func() int { return len(dialogs) }
	var once sync.Once
	var closeErr error
	b.close = func() error {
		once.Do(func() {
			before := procs(marker)
			// Close the browser gracefully, then make sure: cancelling the allocator
			// kills the process and waits for it.
			closeCtx, cancelClose := context.WithTimeout(ctx, 10*time.Second)
			chromedp.Cancel(closeCtx)
			cancelClose()
			cancelTab()
			cancelAlloc()
			cancelDeadline()
			if left := reap(marker, before); len(left) > 0 {
				closeErr = fmt.Errorf("Chromium processes %v still ran 5 s after the browser was closed; killed them", left)
			}
		})
		return closeErr
	}
	if err := chromedp.Do(ctx); err != nil { // start Chromium and open the tab
		b.close()
		return nil, fmt.Errorf("starting Chromium: %v\n%s", err, b.Output.String())
	}
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil {
		b.Process = c.Browser.Process()
	}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		b.close()
		return nil, err
	}
	// A dialog would block the page (and every chromedp action on it) until
	// answered: count it, log it, dismiss it.
	go func() {
		for ev, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			select {
			case dialogs <- struct{}{}:
			default:
			}
			fmt.Fprintf(b.Console, "dialog (%s): %s\n", ev.Type, ev.Message)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return b, nil
}

// Close stops the browser and every process it started (at once when the
// browser is already stopped); it returns an error when it had to kill some.
func (b *Browser) Close() error { return b.close() }

// OutputTail is the last n bytes of Chromium's output, D-Bus noise (there is no
// system bus here) left out.
func (b *Browser) OutputTail(n int) string {
	var out strings.Builder
	for line := range strings.Lines(b.Output.String()) {
		if !strings.Contains(line, "dbus") {
			out.WriteString(line)
		}
	}
	s := out.String()
	return s[max(0, len(s)-n):]
}

// trust creates an NSS database under home that trusts caPEM as a root.
func trust(home string, caPEM []byte) error {
	nssdb := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		return err
	}
	caFile := filepath.Join(home, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + nssdb, "--empty-password"},
		{"-A", "-d", "sql:" + nssdb, "-t", "C,,", "-n", "wstap test CA", "-i", caFile},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, Certutil, args...).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// onEvent keeps the page's console output for failure reports.
func (b *Browser) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range ev.Args {
			if a.Value != nil {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		fmt.Fprintf(b.Console, "console.%s: %s\n", ev.Type, strings.Join(args, " "))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d.Exception != nil {
			fmt.Fprintf(b.Console, "exception: %s\n", d.Exception.Description)
		} else {
			fmt.Fprintf(b.Console, "exception: %s\n", d.Text)
		}
	}
}

// Poll waits until the JavaScript expression expr is truthy in the page and
// decodes its value into a T.
func Poll[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Poll[T](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0)))
	if err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
	return v
}

// Screenshot saves the tab's viewport as a PNG at path.
func Screenshot(t testing.TB, b *Browser, path string) {
	t.Helper()
	png, err := chromedp.Run(b.Ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// proc identifies a process across pid reuse: pid and start time.
type proc struct {
	pid   int
	start string
}

// procs returns the live (not zombie) processes of the browser: those whose
// environment holds marker (the browser and its crash handlers) and all their
// descendants. Chromium's helpers (zygote, renderers, network service) cannot be
// found by their own environment or command line: Chromium rewrites that memory
// for their process titles, and they carry no --user-data-dir.
func procs(marker string) map[proc]bool {
	type info struct {
		p      proc
		ppid   int
		marked bool
	}
	var all []info
	children := map[int][]int{}
	byPid := map[int]info{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		p, state, ppid, ok := stat(pid)
		if !ok || state == "Z" {
			continue
		}
		in := info{p: p, ppid: ppid}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil {
			for kv := range bytes.SplitSeq(env, []byte{0}) {
				if string(kv) == marker {
					in.marked = true
					break
				}
			}
		}
		all = append(all, in)
		byPid[pid] = in
		children[ppid] = append(children[ppid], pid)
	}
	out := map[proc]bool{}
	var walk func(pid int)
	walk = func(pid int) {
		if in, ok := byPid[pid]; ok && !out[in.p] {
			out[in.p] = true
			for _, c := range children[pid] {
				walk(c)
			}
		}
	}
	for _, in := range all {
		if in.marked {
			walk(in.p.pid)
		}
	}
	return out
}

// stat reads a process's start time, state and parent from /proc/PID/stat.
func stat(pid int) (p proc, state string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return p, "", 0, false
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return p, "", 0, false
	}
	f := strings.Fields(string(b[i+1:])) // state ppid pgrp … starttime is the 20th
	if len(f) < 20 {
		return p, "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return proc{pid, f[19]}, f[0], ppid, true
}

// alive reports whether p still runs (same pid and start time, not a zombie).
func alive(p proc) bool {
	q, state, _, ok := stat(p.pid)
	return ok && q == p && state != "Z"
}

// reap waits until none of the browser's processes (ps, taken while it ran, and
// any still carrying marker) is left, killing by pid those that outlive a grace
// period, and returns those it had to kill: the browser must go away when it is
// closed.
func reap(marker string, ps map[proc]bool) (killed []int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		for p := range procs(marker) {
			ps[p] = true
		}
		var left []int
		for p := range ps {
			if alive(p) {
				left = append(left, p.pid)
			} else {
				delete(ps, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
