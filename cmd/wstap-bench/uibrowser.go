package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wstap/wstap/internal/browsertest"
	"github.com/wstap/wstap/internal/childproc"
)

// chrome is a headless Chromium with one tab of 1280×800, launched by
// internal/browsertest (the browser the UI's tests drive, with the same flags).
type chrome struct {
	*browsertest.Browser
	ctx  context.Context  // the tab; bounded by the browser's life
	proc *childproc.Child // Cmd.Process only: the browser's CPU time with its helpers'
}

// startChrome starts Chromium bin, with HOME and the XDG directories in home, for
// at most life.
func startChrome(bin, home string, life time.Duration) (*chrome, error) {
	b, err := browsertest.Launch(browsertest.Options{Exec: bin, Home: home, Width: 1280, Height: 800, Timeout: life})
	if err != nil {
		return nil, err
	}
	c := &chrome{Browser: b, ctx: b.Ctx}
	if err := chromedp.Do(c.ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		c.stop()
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	if b.Process != nil {
		c.proc = &childproc.Child{Name: "chromium", Cmd: &exec.Cmd{Process: b.Process}}
		fmt.Fprintf(os.Stderr, "chromium (pid %d) started\n", b.Process.Pid)
	}
	return c, nil
}

// stop closes the browser, with every process it started.
func (c *chrome) stop() {
	if c == nil {
		return
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "wstap-bench:", err)
	}
}

// cpu is the CPU time Chromium and its helper processes (renderer, GPU, network
// service) have used so far.
func (c *chrome) cpu() time.Duration {
	if c == nil || c.proc == nil {
		return 0
	}
	return c.proc.TreeCPU()
}

// problems returns the page's exceptions, console errors and warnings, and
// dialogs so far (browsertest keeps every console message), the first 50.
func (c *chrome) problems() []string {
	var out []string
	for line := range strings.Lines(c.Console.String()) {
		if len(out) == 50 {
			break
		}
		for _, p := range []string{"console.error:", "console.warning:", "exception:", "dialog ("} {
			if strings.HasPrefix(line, p) {
				out = append(out, strings.TrimSuffix(line, "\n"))
				break
			}
		}
	}
	return out
}

// open loads the UI at url (with its token) and waits until the page is logged
// in and follows the event stream.
func (c *chrome) open(url string, timeout time.Duration) error {
	if err := chromedp.Do(c.ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("chromium: opening the UI: %w", err)
	}
	return c.wait("the page to say live", `document.querySelector("#live-text")?.textContent === "live"`, timeout)
}

// wait polls the JavaScript expression js until it is truthy, at most timeout.
func (c *chrome) wait(what, js string, timeout time.Duration) error {
	_, err := chromedp.Run(c.ctx, chromedp.Poll[any](js,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		return fmt.Errorf("chromium: waiting for %s: %w%s", what, err, c.problemNote())
	}
	return nil
}

func (c *chrome) problemNote() string {
	if p := c.problems(); len(p) > 0 {
		return " (the page: " + strings.Join(p, "; ") + ")"
	}
	return ""
}

// eval evaluates the JavaScript expression js in the page (awaiting it when it
// is a promise).
func eval[T any](c *chrome, js string) (T, error) {
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		err = fmt.Errorf("chromium: evaluating %.60q…: %w%s", js, err, c.problemNote())
	}
	return v, err
}

// execOutput runs bin with args and returns its standard output.
func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).Output()
	return string(out), err
}
