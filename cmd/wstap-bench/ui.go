package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/internal/childproc"
	"github.com/wstap/wstap/plugins"
)

// The ui section measures the web UI (`wstap --ui`, `wstap open`) with a real
// browser, headless Debian Chromium driven with chromedp, in three parts:
//
//   - throughput: the core section's pipelined 64 B echo workload through wstap
//     and through `wstap --ui 127.0.0.1:0` with a Chromium tab open on the UI's
//     live history (the page at the URL wstap printed, its list following the
//     traffic), alternating like the core section's targets, -rounds rounds. The
//     ratio of the medians, and the UI's "lost" count from /api/info: messages
//     left out of the history because its queue was full (the proxy never waits
//     for the UI). After each run through the UI, the time until the page shows
//     every row, the last one in view (the list follows). A third target, a second
//     `wstap --ui` with no page open, tells the history's cost from the page's.
//   - rows: a generated event log of -ui-rows messages (uilog.go) opened with
//     `wstap open FILE --ui 127.0.0.1:0`, a fresh process each of -ui-open-rounds
//     rounds (reading a million rows takes a while):
//     the time to read it, wstap's RSS once it has, then over the API (HTTP round
//     trip, and the server's took_ms) a filter, a literal search, a regular
//     expression and a search that matches nothing, each asked for the first
//     time (the history caches query results); then in Chromium the page opened
//     on it, a search typed in its search box, then (each after its "clear"
//     button) a URL glob typed in its filter box and a regular expression in the
//     search box with "regex" ticked, each timed from the Enter key to the list
//     showing the new total. The totals must equal what the generator counted.
//   - clicks: a WebSocket through `wstap --ui` whose client sends -ui-rate JSON
//     messages a second (60-200 B, paced) to the echo server for -ui-load, so the
//     proxy relays that rate in each direction. Meanwhile, in Chromium on the live
//     page: for the first 5 s (a sixth of -ui-load at most) the list follows the
//     end, and the bench looks every 100 ms at how many of the rows in view are
//     loaded (a row shows "…" until its block of rows arrives). Then, as a person
//     does to read messages that stream by this fast, it scrolls the list up with
//     the mouse wheel (the list stops following; the page stays live, its total
//     and rows refreshed) and clicks rows about twice a second, a different one
//     each time, picked at random among the loaded rows in view and clicked with
//     CDP mouse events (scrolling up again when it clicked them all), timed from
//     the click to the detail pane showing that message's payload.
//
// How the click is timed (clickJS): the page gets a click listener on window,
// which runs after the list's own handler has selected the row (bubbling ends at
// window). It keeps the event's timeStamp: for input that Chromium delivers, the
// time the browser process received it, so the time the click waits for a busy
// main thread is counted. A MutationObserver on the detail pane notices the
// message's payload (.msg-detail[data-id=ID] .part[data-part=payload] pre, not
// empty), and the time is taken in the next requestAnimationFrame callback, the
// frame that paints it: latency = that performance.now() - the event's
// timeStamp, both on the page's clock. A click that selects nothing (the row was
// still loading: the list shows "…" until its block arrives) is counted as a
// miss and clicked again; a detail that does not show within 5 s is a timeout,
// counted at 5 s. The typed search is timed the same way (searchJS), from the
// Enter keydown's timeStamp to the frame after #result shows the new total.

// uiParts are the ui section's parts, in order.
var uiParts = []string{"throughput", "rows", "clicks"}

// clickTimeout bounds the wait for one click's detail.
const clickTimeout = 5 * time.Second

// uiBench is the ui section's state and results.
type uiBench struct {
	Throughput *uiThroughput `json:"throughput,omitempty"`
	Rows       *uiRows       `json:"rows,omitempty"`
	Clicks     *uiClicks     `json:"clicks,omitempty"`
	Notes      []string      `json:"notes"`

	mu       sync.Mutex
	procs    []*uiProc
	browsers []*chrome
}

// stop ends every process and browser the section started and left running.
func (u *uiBench) stop() {
	if u == nil {
		return
	}
	u.mu.Lock()
	procs, browsers := u.procs, u.browsers
	u.procs, u.browsers = nil, nil
	u.mu.Unlock()
	for _, c := range browsers {
		c.stop()
	}
	for _, p := range procs {
		p.stop()
	}
}

func (u *uiBench) addProc(p *uiProc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.procs = append(u.procs, p)
}

func (b *bench) startBrowser(name string) (*chrome, error) {
	c, err := startChrome(b.cfg.Chromium, filepath.Join(b.tmp, "chromium-"+name), 30*time.Minute)
	if err != nil {
		return nil, err
	}
	b.ui.mu.Lock()
	b.ui.browsers = append(b.ui.browsers, c)
	b.ui.mu.Unlock()
	return c, nil
}

// startUIProxy runs `wstap proxy --ui 127.0.0.1:0` (like childproc.StartWstap, plus --ui).
func (b *bench) startUIProxy() (*uiProc, error) {
	p, err := startUIProc("wstap --ui", b.wstapBin, []string{"WSTAP_CA_DIR=" + b.caDir}, time.Minute,
		"proxy", "--listen", "127.0.0.1:0", "--quiet", "--upstream-insecure", "--ui", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.ui.addProc(p)
	return p, nil
}

// runUI runs the ui section's parts (-ui-parts).
func (b *bench) runUI() error {
	b.ui = &uiBench{}
	for _, p := range strings.Split(b.cfg.UIParts, ",") {
		if !slices.Contains(uiParts, p) {
			return fmt.Errorf("-ui-parts: unknown part %q (want some of %s)", p, strings.Join(uiParts, ","))
		}
	}
	if fi, err := os.Stat(b.cfg.Chromium); err != nil || fi.IsDir() {
		return fmt.Errorf("the ui section needs Chromium at %s (Debian: apt-get install chromium; or -chromium PATH)", b.cfg.Chromium)
	}
	if want(b.cfg.UIParts, "throughput") {
		if err := b.uiThroughput(); err != nil {
			return fmt.Errorf("ui throughput: %w", err)
		}
	}
	if want(b.cfg.UIParts, "rows") {
		if err := b.uiRows(); err != nil {
			return fmt.Errorf("ui rows: %w", err)
		}
	}
	if want(b.cfg.UIParts, "clicks") {
		if err := b.uiClicks(); err != nil {
			return fmt.Errorf("ui clicks: %w", err)
		}
	}
	b.ui.stop()
	return nil
}

// --- throughput -------------------------------------------------------------------

// uiThroughput is the throughput part: per-round values and their medians.
type uiThroughput struct {
	Plain      []float64 `json:"msgs_per_s_wstap"`
	WithUI     []float64 `json:"msgs_per_s_wstap_ui"`
	CPUPlain   []float64 `json:"cpu_wstap"`
	CPUUI      []float64 `json:"cpu_wstap_ui"`
	CPUChrome  []float64 `json:"cpu_chromium"` // during the runs through the UI
	NoPage     []float64 `json:"msgs_per_s_wstap_ui_no_page"`
	CPUNoPage  []float64 `json:"cpu_wstap_ui_no_page"`
	LostNoPage []int64   `json:"lost_no_page"`
	Messages   []int64   `json:"messages_ui"`        // messages wstap --ui relayed per run (both directions)
	Recorded   []int64   `json:"recorded"`           // rows its history gained
	Lost       []int64   `json:"lost"`               // /api/info lost gained
	CatchUpMS  []float64 `json:"page_catch_up_ms"`   // from the run's end to the page showing its last row
	WarmLost   int64     `json:"lost_while_warming"` // lost during the warm-up runs (not in Lost)

	MedPlain  float64 `json:"median_msgs_per_s_wstap"`
	MedUI     float64 `json:"median_msgs_per_s_wstap_ui"`
	MedNoPage float64 `json:"median_msgs_per_s_wstap_ui_no_page"`
	Ratio     float64 `json:"ratio"`
	LostTotal int64   `json:"lost_total"`
	MsgsTotal int64   `json:"messages_total"`
}

func (b *bench) uiThroughput() error {
	th := &uiThroughput{}
	b.ui.Throughput = th
	plain, err := childproc.StartWstap(b.wstapBin, b.caDir)
	if err != nil {
		return err
	}
	b.track(plain)
	defer plain.Stop()
	up, err := b.startUIProxy()
	if err != nil {
		return err
	}
	defer up.stop()
	url := "ws" + strings.TrimPrefix(b.echo.ws.URL, "http") + "/"
	mk := func(name string, proc *childproc.Child, addr string) *target {
		d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, WriteBufferSize: clientWriteBuffer, WriteBufferPool: clientPool,
			Proxy: proxyFunc(addr)}
		return &target{Name: name, kind: "wstap", scheme: "ws", url: url, dialer: d, proc: proc}
	}
	tPlain := mk("wstap ws", plain, plain.Addr)
	tUI := mk("wstap --ui ws", up.child, up.addr)
	bare, err := b.startUIProxy()
	if err != nil {
		return err
	}
	defer bare.stop()
	tBare := mk("wstap --ui (no page) ws", bare.child, bare.addr)

	br, err := b.startBrowser("throughput")
	if err != nil {
		return err
	}
	defer br.stop()
	if err := br.open(up.url, time.Minute); err != nil {
		return err
	}
	run := func(t *target, warm bool) (result, error) {
		n, dur := b.cfg.N64, b.cfg.Duration
		if warm {
			n, dur = min(n, 5000), min(dur, 500*time.Millisecond)
		}
		r, err := measure(t, func(c *websocket.Conn) (result, error) { return pipelined(c, 64, n, b.cfg.Window64, dur) })
		if err != nil {
			for _, p := range []*uiProc{up, bare} {
				if perr := p.alive(); perr != nil {
					err = fmt.Errorf("%w; %w", err, perr)
				}
			}
		}
		return r, err
	}
	b.progress("ui throughput: warming up (the page follows %s)", up.base)
	targets := []*target{tPlain, tUI, tBare}
	for _, t := range targets {
		if _, err := run(t, true); err != nil {
			return err
		}
	}
	if _, err := b.uiCatchUp(up, br); err != nil {
		return err
	}
	in, err := up.info()
	if err != nil {
		return err
	}
	th.WarmLost = in.Lost
	start := time.Now()
	for r := range b.cfg.Rounds {
		b.progress("ui throughput: round %d/%d (%s so far)", r+1, b.cfg.Rounds, time.Since(start).Round(time.Second))
		order := append(slices.Clone(targets[r%len(targets):]), targets[:r%len(targets)]...)
		for _, t := range order {
			switch t {
			case tPlain:
				res, err := run(t, false)
				if err != nil {
					return err
				}
				th.Plain = append(th.Plain, float64(res.count)/res.elapsed.Seconds())
				th.CPUPlain = append(th.CPUPlain, res.cpu.Seconds()/res.elapsed.Seconds())
				continue
			case tBare:
				before, err := bare.info()
				if err != nil {
					return err
				}
				res, err := run(t, false)
				if err != nil {
					return err
				}
				time.Sleep(100 * time.Millisecond) // the queue drains
				after, err := bare.info()
				if err != nil {
					return err
				}
				th.NoPage = append(th.NoPage, float64(res.count)/res.elapsed.Seconds())
				th.CPUNoPage = append(th.CPUNoPage, res.cpu.Seconds()/res.elapsed.Seconds())
				th.LostNoPage = append(th.LostNoPage, after.Lost-before.Lost)
				continue
			}
			before, err := up.info()
			if err != nil {
				return err
			}
			cpu0 := br.cpu()
			res, err := run(t, false)
			if err != nil {
				return err
			}
			cpuChrome := br.cpu() - cpu0
			catchUp, err := b.uiCatchUp(up, br)
			if err != nil {
				return err
			}
			after, err := up.info()
			if err != nil {
				return err
			}
			th.WithUI = append(th.WithUI, float64(res.count)/res.elapsed.Seconds())
			th.CPUUI = append(th.CPUUI, res.cpu.Seconds()/res.elapsed.Seconds())
			th.CPUChrome = append(th.CPUChrome, cpuChrome.Seconds()/res.elapsed.Seconds())
			// Each echo is two messages through the proxy, and so is the "end"
			// marker (the client then closes without a close frame).
			th.Messages = append(th.Messages, 2*int64(res.count)+2)
			th.Recorded = append(th.Recorded, int64(after.History.Rows-before.History.Rows))
			th.Lost = append(th.Lost, after.Lost-before.Lost)
			th.CatchUpMS = append(th.CatchUpMS, float64(catchUp)/float64(time.Millisecond))
		}
	}
	th.MedPlain, th.MedUI, th.MedNoPage = median(th.Plain), median(th.WithUI), median(th.NoPage)
	th.Ratio = th.MedUI / th.MedPlain
	for i := range th.Lost {
		th.LostTotal += th.Lost[i]
		th.MsgsTotal += th.Messages[i]
		if th.Recorded[i]+th.Lost[i] != th.Messages[i] {
			b.ui.Notes = append(b.ui.Notes, fmt.Sprintf("throughput round %d: %d rows recorded and %d lost of %d messages through wstap --ui",
				i+1, th.Recorded[i], th.Lost[i], th.Messages[i]))
		}
	}
	b.ui.noteProblems("throughput", up, br)
	return nil
}

// uiCatchUp waits (at most a minute) until the page shows the history's last row
// (the list follows its end) and its total, and returns how long that took.
func (b *bench) uiCatchUp(up *uiProc, br *chrome) (time.Duration, error) {
	start := time.Now()
	// The connection's close reaches the history after the client saw its end.
	time.Sleep(50 * time.Millisecond)
	var last uiPage
	for i := 0; ; i++ {
		head, _, err := up.messages("limit=0")
		if err != nil {
			return 0, err
		}
		if last, _, err = up.messages(fmt.Sprintf("offset=%d&limit=1", max(head.Total-1, 0))); err != nil {
			return 0, err
		}
		// Rows still queued between the proxy and the history change the total.
		if i > 0 && last.Total == head.Total {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(last.Items) == 0 {
		return 0, nil
	}
	js := fmt.Sprintf(`document.querySelector("#result b")?.textContent === %q && !!document.querySelector('#msgs .row[data-id="%d"]')`,
		fmtCount(last.Total), last.Items[0].ID)
	if err := br.wait(fmt.Sprintf("the page to show row %d of %d", last.Items[0].ID, last.Total), js, time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// noteProblems notes what a part's wstap logged at WARN or ERROR and the page's
// exceptions and console errors.
func (u *uiBench) noteProblems(part string, p *uiProc, c *chrome) {
	if p != nil {
		if bad := p.problems(); len(bad) > 0 {
			u.Notes = append(u.Notes, fmt.Sprintf("%s: %s logged %d warnings or errors, the last: %s", part, p.name, len(bad), bad[len(bad)-1]))
		}
	}
	if c != nil {
		if bad := c.problems(); len(bad) > 0 {
			u.Notes = append(u.Notes, fmt.Sprintf("%s: the page logged %d errors, the first: %s", part, len(bad), bad[0]))
		}
	}
}

// --- a million rows ---------------------------------------------------------------

// uiQueryTimes is one query's times over the rounds.
type uiQueryTimes struct {
	uiQuery
	RTTMS   []float64 `json:"rtt_ms"`
	TookMS  []float64 `json:"took_ms"`
	Got     []int     `json:"total"`
	MedRTT  float64   `json:"median_rtt_ms"`
	MedTook float64   `json:"median_took_ms"`
}

// uiRows is the rows part.
type uiRows struct {
	Log       *uiLogStats     `json:"log"`
	LoadS     []float64       `json:"load_s"`    // wstap open: start to the URL printed (reading the file)
	RSS       []int64         `json:"rss_bytes"` // VmRSS once loaded
	HWM       []int64         `json:"peak_rss_bytes"`
	RSSAfter  []int64         `json:"rss_after_bytes"` // after the queries and the page
	Queries   []*uiQueryTimes `json:"queries"`
	PageMS    []float64       `json:"page_open_ms"`    // navigate to the page showing the total
	TypedMS   []float64       `json:"typed_search_ms"` // Enter to the new total shown
	TypedDOM  []float64       `json:"typed_search_dom_ms"`
	TypedTook []float64       `json:"typed_search_took_ms"` // the server's took_ms as the page shows it
	TypedGot  []string        `json:"typed_search_shown"`
	FilterMS  []float64       `json:"typed_filter_ms"` // Enter in the URL filter to the new total shown
	FilterGot []string        `json:"typed_filter_shown"`
	RegexpMS  []float64       `json:"typed_regexp_ms"` // Enter in the search box, regex ticked, to the new total shown
	RegexpGot []string        `json:"typed_regexp_shown"`

	MedLoad   float64  `json:"median_load_s"`
	MedRSS    float64  `json:"median_rss_bytes"`
	MedHWM    float64  `json:"median_peak_rss_bytes"`
	MedPage   float64  `json:"median_page_open_ms"`
	MedTyped  float64  `json:"median_typed_search_ms"`
	MedFilter float64  `json:"median_typed_filter_ms"`
	MedRegexp float64  `json:"median_typed_regexp_ms"`
	Wrong     []string `json:"wrong_totals"`
}

// searchJS times what is typed in an input of the filter bar (its id, then the
// expected total): it resolves (60 s at most) with the Enter keydown's timeStamp
// (t0), performance.now() when #result first showed the expected total in bold
// (dom) and in the animation frame after it (painted), and #result's text.
// Chromium's event timeStamp and performance.now() share the page's clock.
const searchJS = `window.__wbSearch = new Promise(resolve => {
	const q = document.getElementById(%q), res = document.getElementById("result");
	const s = {t0: -1, dom: -1, painted: -1, text: ""};
	q.addEventListener("keydown", ev => { if (ev.key === "Enter" && s.t0 < 0) s.t0 = ev.timeStamp; }, {capture: true});
	const check = () => {
		const b = res.querySelector("b");
		if (s.t0 < 0 || s.dom >= 0 || !b || b.textContent !== %q) return;
		s.dom = performance.now();
		s.text = res.textContent;
		requestAnimationFrame(() => { s.painted = performance.now(); resolve(s); });
	};
	new MutationObserver(check).observe(res, {childList: true, subtree: true, characterData: true});
	setTimeout(() => resolve(s), 60000);
}), true`

type searchTiming struct {
	T0      float64 `json:"t0"`
	DOM     float64 `json:"dom"`
	Painted float64 `json:"painted"`
	Text    string  `json:"text"`
}

func (b *bench) uiRows() error {
	ur := &uiRows{}
	b.ui.Rows = ur
	if err := b.ensureWstap(); err != nil {
		return err
	}
	// About 365 bytes a message: make sure the disk has room for it, twice over.
	need := uint64(b.cfg.UIRows) * 800
	var fs syscall.Statfs_t
	if err := syscall.Statfs(b.tmp, &fs); err == nil && fs.Bavail*uint64(fs.Bsize) < need {
		return fmt.Errorf("%s has %d MB free; the event log of %d messages needs about %d MB", b.tmp,
			fs.Bavail*uint64(fs.Bsize)/1e6, b.cfg.UIRows, need/2/1e6)
	}
	path := filepath.Join(b.tmp, "ui-rows.jsonl")
	b.progress("ui rows: writing an event log of %s messages", fmtCount(b.cfg.UIRows))
	st, err := writeUILog(path, b.cfg.UIRows)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	ur.Log = st
	b.progress("ui rows: %s (%.0f MB) in %s", filepath.Base(path), float64(st.Bytes)/1e6, st.Took.Round(time.Millisecond))
	for _, q := range st.Queries {
		ur.Queries = append(ur.Queries, &uiQueryTimes{uiQuery: q})
	}
	br, err := b.startBrowser("rows")
	if err != nil {
		return err
	}
	defer br.stop()
	start := time.Now()
	for r := range b.cfg.UIOpenRounds {
		b.progress("ui rows: round %d/%d (%s so far): wstap open", r+1, b.cfg.UIOpenRounds, time.Since(start).Round(time.Second))
		if err := b.uiRowsRound(ur, st, path, br); err != nil {
			return err
		}
	}
	ur.MedLoad = median(ur.LoadS)
	ur.MedRSS = medianInt(ur.RSS)
	ur.MedHWM = medianInt(ur.HWM)
	ur.MedPage = median(ur.PageMS)
	ur.MedTyped = median(ur.TypedMS)
	ur.MedFilter = median(ur.FilterMS)
	ur.MedRegexp = median(ur.RegexpMS)
	for _, q := range ur.Queries {
		q.MedRTT, q.MedTook = median(q.RTTMS), median(q.TookMS)
	}
	b.ui.noteProblems("rows", nil, br)
	return nil
}

func (b *bench) uiRowsRound(ur *uiRows, st *uiLogStats, path string, br *chrome) error {
	p, err := startUIProc("wstap open", b.wstapBin, nil, 10*time.Minute, "open", path, "--ui", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.ui.addProc(p)
	defer p.stop()
	ur.LoadS = append(ur.LoadS, p.ready.Seconds())
	rss, hwm, err := p.child.Mem()
	if err != nil {
		return err
	}
	ur.RSS = append(ur.RSS, rss)
	ur.HWM = append(ur.HWM, hwm)
	in, err := p.info() // and the HTTP connection the queries reuse
	if err != nil {
		return err
	}
	if in.History.Rows != st.Messages {
		return fmt.Errorf("wstap open read %d rows of %s, want %d", in.History.Rows, path, st.Messages)
	}
	for _, q := range ur.Queries {
		pg, rtt, err := p.messages(q.Params + "&limit=100")
		if err != nil {
			return err
		}
		q.RTTMS = append(q.RTTMS, float64(rtt)/float64(time.Millisecond))
		q.TookMS = append(q.TookMS, float64(pg.TookMS))
		q.Got = append(q.Got, pg.Total)
		if pg.Total != q.Want {
			ur.Wrong = append(ur.Wrong, fmt.Sprintf("%s: %d rows, the generator counted %d", q.Name, pg.Total, q.Want))
		}
	}

	// The page: open it on the million rows, then type a search.
	t0 := time.Now()
	if err := chromedp.Do(br.ctx, chromedp.Navigate(p.url)); err != nil {
		return fmt.Errorf("chromium: opening the UI: %w", err)
	}
	if err := br.wait("the page to show every row", fmt.Sprintf(`document.querySelector("#result b")?.textContent === %q`, fmtCount(st.Messages)), 2*time.Minute); err != nil {
		return err
	}
	ur.PageMS = append(ur.PageMS, float64(time.Since(t0))/float64(time.Millisecond))
	s, err := b.uiType(br, "q", uiTyped, st.Typed.Want)
	if err != nil {
		return err
	}
	ur.TypedMS = append(ur.TypedMS, s.Painted-s.T0)
	ur.TypedDOM = append(ur.TypedDOM, s.DOM-s.T0)
	ur.TypedGot = append(ur.TypedGot, s.Text)
	var took float64
	if _, err := fmt.Sscanf(s.Text[strings.LastIndex(s.Text, "took"):], "took %g ms", &took); err == nil {
		ur.TypedTook = append(ur.TypedTook, took)
	}
	// Then the filter: clear the search (the "clear" button), and once the page
	// shows every row again, type a URL glob in the filter box.
	if err := chromedp.Do(br.ctx, chromedp.Click(chromedp.CSS("#clear"))); err != nil {
		return fmt.Errorf("chromium: clicking clear: %w", err)
	}
	if err := br.wait("the page to show every row again", fmt.Sprintf(`document.querySelector("#result b")?.textContent === %q`, fmtCount(st.Messages)), 2*time.Minute); err != nil {
		return err
	}
	f, err := b.uiType(br, "url", uiURLGlob, st.TypedURL.Want)
	if err != nil {
		return err
	}
	ur.FilterMS = append(ur.FilterMS, f.Painted-f.T0)
	ur.FilterGot = append(ur.FilterGot, f.Text)
	// And a regular expression: clear, tick "regex", type it in the search box.
	if err := chromedp.Do(br.ctx, chromedp.Click(chromedp.CSS("#clear"))); err != nil {
		return fmt.Errorf("chromium: clicking clear: %w", err)
	}
	if err := br.wait("the page to show every row again", fmt.Sprintf(`document.querySelector("#result b")?.textContent === %q`, fmtCount(st.Messages)), 2*time.Minute); err != nil {
		return err
	}
	if err := chromedp.Do(br.ctx, chromedp.Click(chromedp.CSS("#re"))); err != nil {
		return fmt.Errorf("chromium: ticking regex: %w", err)
	}
	rs, err := b.uiType(br, "q", uiTypedRe, st.TypedRe.Want)
	if err != nil {
		return err
	}
	ur.RegexpMS = append(ur.RegexpMS, rs.Painted-rs.T0)
	ur.RegexpGot = append(ur.RegexpGot, rs.Text)
	if rss, _, err := p.child.Mem(); err == nil {
		ur.RSSAfter = append(ur.RSSAfter, rss)
	}
	// Leave the page before wstap stops, so it does not try to reconnect.
	return chromedp.Do(br.ctx, chromedp.Navigate("about:blank"))
}

// uiType types text and Enter in the filter bar's input id, as a user does, and
// times it (searchJS) until #result shows want rows.
func (b *bench) uiType(br *chrome, id, text string, want int) (searchTiming, error) {
	if _, err := eval[bool](br, fmt.Sprintf(searchJS, id, fmtCount(want))); err != nil {
		return searchTiming{}, err
	}
	if err := chromedp.Do(br.ctx, chromedp.SendKeys(chromedp.CSS("#"+id), text+"\r")); err != nil {
		return searchTiming{}, fmt.Errorf("chromium: typing in #%s: %w", id, err)
	}
	s, err := eval[searchTiming](br, `window.__wbSearch`)
	if err != nil {
		return s, err
	}
	if s.T0 < 0 || s.Painted < 0 {
		return s, fmt.Errorf("the page did not show %s rows within 60 s of the Enter key in #%s (it says %q)", fmtCount(want), id, s.Text)
	}
	return s, nil
}

func sumInt(v []int64) int64 {
	var n int64
	for _, x := range v {
		n += x
	}
	return n
}

func medianInt(v []int64) float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return median(f)
}

// --- clicks under load ---------------------------------------------------------

// uiClicks is the clicks part.
type uiClicks struct {
	Rate      int       `json:"target_msgs_per_s"` // each direction
	LoadS     float64   `json:"load_s"`
	Sent      int       `json:"sent"`
	Echoed    int       `json:"echoed"`
	SentRate  float64   `json:"sent_per_s"`
	EchoRate  float64   `json:"echoed_per_s"`
	MaxBehind int       `json:"max_behind_schedule"` // messages the sender was late by, at worst
	Lost      int64     `json:"lost"`
	Recorded  int       `json:"recorded"`
	CPUWstap  float64   `json:"cpu_wstap"`
	CPUChrome float64   `json:"cpu_chromium"`
	LatencyMS []float64 `json:"latency_ms"` // click to the frame that paints the payload
	DOMMS     []float64 `json:"latency_dom_ms"`
	Misses    int       `json:"misses"` // clicks that selected nothing (the row was still loading)
	NoRow     int       `json:"no_row"` // looks at the list that found no loaded, unclicked row in view (then it scrolled up)
	Scrolls   int       `json:"scrolls"`
	// While the list followed the end (the first FollowS seconds): looks at the
	// list, those that found a loaded row in view, and the rows in view and
	// loaded over all looks.
	FollowS           float64 `json:"follow_s"`
	FollowLooks       int     `json:"follow_looks"`
	FollowLooksLoaded int     `json:"follow_looks_with_a_loaded_row"`
	FollowRows        int     `json:"follow_rows_in_view"`
	FollowLoaded      int     `json:"follow_rows_loaded"`
	Timeouts          int     `json:"timeouts"` // details not shown within 5 s (counted at 5 s)
	WrongDetail       int     `json:"wrong_detail"`
	P50               float64 `json:"p50_ms"`
	P95               float64 `json:"p95_ms"`
	Max               float64 `json:"max_ms"`
}

// clickJS instruments the page for the clicks (see the comment at the top of the
// file): __wbClicks.arm() before a click, __wbClicks.wait(ms) after it resolves
// with the timings; __wbClicks.pick() returns a random row in view that was not
// clicked before, with a point inside it.
const clickJS = `window.__wbClicks = (() => {
	const detail = document.getElementById("detail");
	const msg = () => new URLSearchParams(location.hash.slice(1)).get("msg") || "";
	const w = {clicked: new Set(), pending: null};
	const check = () => {
		const p = w.pending;
		if (!p || !p.id || p.dom !== undefined || p.miss) return;
		const pre = detail.querySelector('.msg-detail[data-id="' + p.id + '"] .part[data-part="payload"] pre');
		if (!pre || !pre.textContent) return;
		p.dom = performance.now();
		p.text = pre.textContent.slice(0, 300);
		requestAnimationFrame(() => { p.painted = performance.now(); p.resolve(); });
	};
	new MutationObserver(check).observe(detail, {childList: true, subtree: true, characterData: true});
	// Bubbling ends at window: the list's handler has selected the row by now.
	window.addEventListener("click", ev => {
		const p = w.pending;
		if (!p || p.t0 !== undefined) return;
		p.t0 = ev.timeStamp;
		const row = ev.target instanceof Element ? ev.target.closest("#msgs .row") : null;
		p.rowId = row ? row.dataset.id || "" : "";
		const id = msg();
		if (!id || id === p.before) { p.miss = true; p.resolve(); return; }
		p.id = id;
		w.clicked.add(id);
		check();
	});
	w.arm = () => { const p = {before: msg()}; p.done = new Promise(r => p.resolve = r); w.pending = p; return true; };
	w.wait = ms => {
		const p = w.pending;
		return Promise.race([p.done, new Promise(r => setTimeout(r, ms))]).then(() => {
			w.pending = null;
			return {t0: p.t0 ?? -1, dom: p.dom ?? -1, painted: p.painted ?? -1, id: p.id || "", row: p.rowId || "",
				miss: !!p.miss, text: p.text || ""};
		});
	};
	w.pick = () => {
		const box = document.getElementById("msgs").getBoundingClientRect();
		const rows = [];
		for (const r of document.querySelectorAll("#msgs .row")) {
			const id = r.dataset.id;
			if (!id || w.clicked.has(id)) continue;
			const b = r.getBoundingClientRect();
			if (b.height < 4 || b.top < box.top + 1 || b.bottom > box.bottom - 16) continue;
			rows.push({id, x: b.left + Math.min(b.width, box.width) * (0.3 + 0.4 * Math.random()), y: b.top + b.height / 2});
		}
		return rows.length ? rows[Math.floor(Math.random() * rows.length)] : null;
	};
	return w;
})(), true`

// viewJS counts the rows in the list's view and those loaded.
const viewJS = `(() => {
	const box = document.getElementById("msgs").getBoundingClientRect();
	let n = 0, k = 0;
	for (const r of document.querySelectorAll("#msgs .row")) {
		const b = r.getBoundingClientRect();
		if (b.bottom <= box.top || b.top >= box.bottom) continue;
		n++;
		if (r.dataset.id) k++;
	}
	return [n, k];
})()`

type clickPick struct {
	ID string  `json:"id"`
	X  float64 `json:"x"`
	Y  float64 `json:"y"`
}

type clickTiming struct {
	T0      float64 `json:"t0"`
	DOM     float64 `json:"dom"`
	Painted float64 `json:"painted"`
	ID      string  `json:"id"`
	Row     string  `json:"row"`
	Miss    bool    `json:"miss"`
	Text    string  `json:"text"`
}

func (b *bench) uiClicks() error {
	uc := &uiClicks{Rate: b.cfg.UIRate, LoadS: b.cfg.UILoad.Seconds()}
	b.ui.Clicks = uc
	if err := b.ensureWstap(); err != nil {
		return err
	}
	up, err := b.startUIProxy()
	if err != nil {
		return err
	}
	defer up.stop()
	br, err := b.startBrowser("clicks")
	if err != nil {
		return err
	}
	defer br.stop()
	if err := br.open(up.url, time.Minute); err != nil {
		return err
	}
	if _, err := eval[bool](br, clickJS); err != nil {
		return err
	}
	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, Proxy: proxyFunc(up.addr)}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(b.echo.ws.URL, "http")+"/", nil)
	if err != nil {
		return fmt.Errorf("dial the echo server through %s: %w", up.name, err)
	}
	defer c.Close()

	// The reader counts the echoes.
	var echoed atomic.Int64
	var lastEcho atomic.Int64 // UnixNano
	rdone := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				rdone <- err
				return
			}
			echoed.Add(1)
			lastEcho.Store(time.Now().UnixNano())
		}
	}()
	// The sender keeps to the schedule: by time t it has sent rate*t messages
	// (it catches up in a burst when a write was slow).
	b.progress("ui clicks: %d messages/s through %s for %s while clicking rows", b.cfg.UIRate, up.name, b.cfg.UILoad)
	cpuW0, cpuC0 := up.child.CPUTime(), br.cpu()
	start := time.Now()
	var sent, maxBehind atomic.Int64
	var sendEnd time.Duration
	sdone := make(chan error, 1)
	go func() {
		g := newUIMsgGen(11)
		var err error
		for err == nil {
			el := time.Since(start)
			if el >= b.cfg.UILoad {
				break
			}
			due := int64(float64(b.cfg.UIRate) * el.Seconds())
			if behind := due - sent.Load(); behind > maxBehind.Load() {
				maxBehind.Store(behind)
			}
			for n := sent.Load(); n < due && err == nil; n++ {
				k := int(n % 3) // chat, market, orders
				dir := plugins.ClientToServer
				if n%2 == 1 {
					dir = plugins.ServerToClient // only shapes the JSON: every message goes client → server
				}
				err = c.WriteMessage(websocket.TextMessage, g.text(k, dir, int(n)))
				sent.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
		sendEnd = time.Since(start)
		sdone <- err
	}()

	// While the list follows the end, look at it every 100 ms: how many of the
	// rows in view are loaded (a row shows "…" until its block arrives).
	if err := br.wait("the first rows", `document.querySelectorAll("#msgs .row").length > 0`, 30*time.Second); err != nil {
		return err
	}
	followFor := min(5*time.Second, b.cfg.UILoad/6)
	for t := time.Now(); time.Since(t) < followFor; time.Sleep(100 * time.Millisecond) {
		v, err := eval[[2]int](br, viewJS)
		if err != nil {
			return err
		}
		uc.FollowLooks++
		uc.FollowRows += v[0]
		uc.FollowLoaded += v[1]
		if v[1] > 0 {
			uc.FollowLooksLoaded++
		}
	}
	uc.FollowS = followFor.Seconds()
	// Then do what a person does to read messages that stream by this fast:
	// scroll the list up a little (it stops following; the page stays live),
	// and click rows, ~2 a second, scrolling up again when every row in view
	// has been clicked.
	wheel := func(dy float64) error {
		b.ui.mu.Lock()
		uc.Scrolls++
		b.ui.mu.Unlock()
		// A mouse-wheel gesture over the list (positive dy scrolls up).
		return chromedp.Do(br.ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, input.SynthesizeScrollGesture, input.SynthesizeScrollGestureParams{
				X: 800, Y: 300, YDistance: dy, Speed: 6000, GestureSourceType: input.GestureSourceTypeMouse})
			return err
		}))
	}
	if err := wheel(1500); err != nil {
		return fmt.Errorf("chromium: scrolling the list: %w", err)
	}
	if err := br.wait("the list to stop following (the \"latest\" button)", `!document.querySelector("#to-end").hidden`, 30*time.Second); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	next := time.Now()
	for time.Since(start) < b.cfg.UILoad {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		pick, err := eval[*clickPick](br, `__wbClicks.pick()`)
		if err != nil {
			return err
		}
		if pick == nil { // every row in view clicked, or none loaded yet
			uc.NoRow++
			if err := wheel(400); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if _, err := eval[bool](br, `__wbClicks.arm()`); err != nil {
			return err
		}
		clicked := time.Now()
		if err := chromedp.Do(br.ctx, chromedp.MouseClickXY(pick.X, pick.Y)); err != nil {
			return fmt.Errorf("chromium: click: %w", err)
		}
		ct, err := eval[clickTiming](br, fmt.Sprintf(`__wbClicks.wait(%d)`, clickTimeout.Milliseconds()))
		if err != nil {
			return err
		}
		switch {
		case ct.Miss:
			uc.Misses++
			next = time.Now().Add(100 * time.Millisecond) // click again, soon
			continue
		case ct.Painted < 0 || ct.T0 < 0:
			uc.Timeouts++
			uc.LatencyMS = append(uc.LatencyMS, float64(clickTimeout)/float64(time.Millisecond))
			uc.DOMMS = append(uc.DOMMS, float64(clickTimeout)/float64(time.Millisecond))
		default:
			if !strings.Contains(ct.Text, `"seq"`) {
				uc.WrongDetail++
			}
			uc.LatencyMS = append(uc.LatencyMS, ct.Painted-ct.T0)
			uc.DOMMS = append(uc.DOMMS, ct.DOM-ct.T0)
		}
		// About two clicks a second: the next one 350-650 ms after this one, and
		// not before its detail showed.
		next = clicked.Add(time.Duration(350+rng.IntN(300)) * time.Millisecond)
	}
	if err := <-sdone; err != nil {
		return fmt.Errorf("send: %w", err)
	}
	// Every echo back, or 10 s.
	for deadline := time.Now().Add(10 * time.Second); echoed.Load() < sent.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	uc.CPUWstap = (up.child.CPUTime() - cpuW0).Seconds() / time.Since(start).Seconds()
	uc.CPUChrome = (br.cpu() - cpuC0).Seconds() / time.Since(start).Seconds()
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	c.Close()
	<-rdone
	uc.Sent, uc.Echoed = int(sent.Load()), int(echoed.Load())
	uc.SentRate = float64(uc.Sent) / sendEnd.Seconds()
	if le := lastEcho.Load(); le > 0 {
		uc.EchoRate = float64(uc.Echoed) / time.Unix(0, le).Sub(start).Seconds()
	}
	uc.MaxBehind = int(maxBehind.Load())
	if err := up.alive(); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	in, err := up.info()
	if err != nil {
		return err
	}
	uc.Lost, uc.Recorded = in.Lost, in.History.Rows
	s := slices.Clone(uc.LatencyMS)
	slices.Sort(s)
	uc.P50, uc.P95 = pctl(s, 50), pctl(s, 95)
	if len(s) > 0 {
		uc.Max = s[len(s)-1]
	}
	if len(s) == 0 {
		return fmt.Errorf("no click was measured in %s", b.cfg.UILoad)
	}
	b.ui.noteProblems("clicks", up, br)
	return nil
}

// pctl returns the p-th percentile (0-100) of sorted values, as percentile does.
func pctl(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p/100*float64(len(sorted)-1))]
}

// --- report ------------------------------------------------------------------

// uiChecks are the goals of the ui section.
func (u *uiBench) checks() []check {
	var out []check
	if th := u.Throughput; th != nil && len(th.Plain) > 0 {
		out = append(out, check{"wstap --ui with a live Chromium tab: 64 B msgs/s >= 0.90x wstap", fmt.Sprintf("%.2fx", th.Ratio), th.Ratio >= 0.90})
	}
	if ur := u.Rows; ur != nil && len(ur.LoadS) > 0 {
		for _, q := range ur.Queries {
			worst := slices.Max(q.RTTMS)
			out = append(out, check{fmt.Sprintf("%s rows, API %s (%s), first time: round trip < 1 s", fmtCount(ur.Log.Messages), q.Name, q.Note),
				fmt.Sprintf("median %.0f ms (server %.0f ms), worst %.0f ms", q.MedRTT, q.MedTook, worst), worst < 1000})
		}
		worst := slices.Max(ur.TypedMS)
		out = append(out, check{fmt.Sprintf("%s rows, Chromium: Enter in the search box to the new total shown < 1 s", fmtCount(ur.Log.Messages)),
			fmt.Sprintf("median %.0f ms, worst %.0f ms", ur.MedTyped, worst), worst < 1000})
		worst = slices.Max(ur.FilterMS)
		out = append(out, check{fmt.Sprintf("%s rows, Chromium: Enter in the URL filter to the new total shown < 1 s", fmtCount(ur.Log.Messages)),
			fmt.Sprintf("median %.0f ms, worst %.0f ms", ur.MedFilter, worst), worst < 1000})
		worst = slices.Max(ur.RegexpMS)
		out = append(out, check{fmt.Sprintf("%s rows, Chromium: Enter in the search box (regex) to the new total shown < 1 s", fmtCount(ur.Log.Messages)),
			fmt.Sprintf("median %.0f ms, worst %.0f ms", ur.MedRegexp, worst), worst < 1000})
		got := "yes"
		if len(ur.Wrong) > 0 {
			got = strings.Join(ur.Wrong, "; ")
		}
		out = append(out, check{"every API total equals the generator's count", got, len(ur.Wrong) == 0})
	}
	if uc := u.Clicks; uc != nil && len(uc.LatencyMS) > 0 {
		out = append(out, check{fmt.Sprintf("click to detail under %d msgs/s: p95 < 200 ms (%d clicks)", uc.Rate, len(uc.LatencyMS)),
			fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, max %.0f ms", uc.P50, uc.P95, uc.Max), uc.P95 < 200})
		r := min(uc.SentRate, uc.EchoRate) / float64(uc.Rate)
		out = append(out, check{fmt.Sprintf("the proxy sustained %d msgs/s each way (>= 0.99x)", uc.Rate),
			fmt.Sprintf("%.3fx (sent %s/s, echoed %s/s)", r, commas(uc.SentRate), commas(uc.EchoRate)), r >= 0.99})
	}
	return out
}

func (b *bench) uiHeader() string {
	return fmt.Sprintf("wstap-bench ui: %d rounds (medians); Chromium %s headless; %s, GOMAXPROCS %d, %d CPUs (shared: expect noise)",
		b.cfg.Rounds, chromiumVersion(b.cfg.Chromium), runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
}

func chromiumVersion(bin string) string {
	out, err := execOutput(bin, "--version")
	if err != nil {
		return "(version unknown)"
	}
	f := strings.Fields(out)
	for _, w := range f {
		if len(w) > 0 && w[0] >= '0' && w[0] <= '9' {
			return w
		}
	}
	return strings.TrimSpace(out)
}

func (b *bench) printUI(out io.Writer) {
	u := b.ui
	fmt.Fprintln(out, b.uiHeader())
	if th := u.Throughput; th != nil && len(th.Plain) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintf(out, "throughput: 64 B pipelined echoes (<=%d, window %d, <=%s), ws, alternating; the page follows the live list\n",
			b.cfg.N64, b.cfg.Window64, b.cfg.Duration)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\t64B msgs/s\tx wstap\tcpu wstap\tcpu chromium\t")
		fmt.Fprintf(tw, "wstap\t%s\t%.3f\t%.2f\t-\t\n", commas(th.MedPlain), 1.0, median(th.CPUPlain))
		fmt.Fprintf(tw, "wstap --ui + page\t%s\t%.3f\t%.2f\t%.2f\t\n", commas(th.MedUI), th.Ratio, median(th.CPUUI), median(th.CPUChrome))
		fmt.Fprintf(tw, "wstap --ui, no page\t%s\t%.3f\t%.2f\t-\t\n", commas(th.MedNoPage), th.MedNoPage/th.MedPlain, median(th.CPUNoPage))
		tw.Flush()
		var rec int64
		for _, r := range th.Recorded {
			rec += r
		}
		fmt.Fprintf(out, "lost (/api/info): %s of %s messages through wstap --ui (%.2f%%) left out of the history; %s recorded; %s lost while warming up\n",
			fmtCount(int(th.LostTotal)), fmtCount(int(th.MsgsTotal)), 100*float64(th.LostTotal)/float64(max(th.MsgsTotal, 1)),
			fmtCount(int(rec)), fmtCount(int(th.WarmLost)))
		fmt.Fprintf(out, "the page showed each run's last row %.0f ms (median) after the run ended; wstap --ui with no page lost %s\n",
			median(th.CatchUpMS), fmtCount(int(sumInt(th.LostNoPage))))
	}
	if ur := u.Rows; ur != nil && len(ur.LoadS) > 0 {
		fmt.Fprintln(out)
		lg := ur.Log
		fmt.Fprintf(out, "rows: wstap open of %s messages (%d connections, %s binary; %.0f MB of JSONL), a fresh process each of %d rounds\n",
			fmtCount(lg.Messages), lg.Conns, fmtCount(lg.Binary), float64(lg.Bytes)/1e6, len(ur.LoadS))
		fmt.Fprintf(out, "read in %.1f s; RSS %.0f MiB once read (peak %.0f MiB)\n", ur.MedLoad, ur.MedRSS/(1<<20), ur.MedHWM/(1<<20))
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "first time\trows\tround trip ms\tserver ms\t")
		for _, q := range ur.Queries {
			fmt.Fprintf(tw, "%s: %s\t%s\t%.0f\t%.0f\t\n", q.Name, q.Note, fmtCount(q.Want), q.MedRTT, q.MedTook)
		}
		fmt.Fprintf(tw, "Chromium: %s, Enter to total shown\t%s\t%.0f\t-\t\n", lg.Typed.Note, fmtCount(lg.Typed.Want), ur.MedTyped)
		fmt.Fprintf(tw, "Chromium: %s, Enter to total shown\t%s\t%.0f\t-\t\n", lg.TypedURL.Note, fmtCount(lg.TypedURL.Want), ur.MedFilter)
		fmt.Fprintf(tw, "Chromium: %s, Enter to total shown\t%s\t%.0f\t-\t\n", lg.TypedRe.Note, fmtCount(lg.TypedRe.Want), ur.MedRegexp)
		tw.Flush()
		if len(ur.TypedGot) > 0 {
			fmt.Fprintf(out, "after the typed search the page said %q\n", ur.TypedGot[len(ur.TypedGot)-1])
		}
		if len(ur.FilterGot) > 0 {
			fmt.Fprintf(out, "after the typed URL filter the page said %q\n", ur.FilterGot[len(ur.FilterGot)-1])
		}
		fmt.Fprintf(out, "the page opened on them (navigate to %s rows shown) in %.0f ms\n", fmtCount(lg.Messages), ur.MedPage)
	}
	if uc := u.Clicks; uc != nil && len(uc.LatencyMS) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintf(out, "clicks: %d JSON msgs/s (60-200 B) client -> echo server through wstap --ui for %s (so %d/s each way), a row clicked about every 0.5 s\n",
			uc.Rate, b.cfg.UILoad, uc.Rate)
		fmt.Fprintf(out, "while the list followed the end (first %.0f s): a loaded row was in view in %d of %d looks (%.0f%% of the rows in view loaded; the others showed \"…\")\n",
			uc.FollowS, uc.FollowLooksLoaded, uc.FollowLooks, 100*float64(uc.FollowLoaded)/float64(max(uc.FollowRows, 1)))
		fmt.Fprintf(out, "then scrolled up (the list stops following, the page stays live) and clicked rows in view; %d wheel scrolls\n", uc.Scrolls)
		fmt.Fprintf(out, "click to payload shown: p50 %.0f ms, p95 %.0f ms, max %.0f ms over %d clicks (DOM updated: p50 %.0f ms); %d misses (row still loading), %d timeouts\n",
			uc.P50, uc.P95, uc.Max, len(uc.LatencyMS), pctl(sortedFloats(uc.DOMMS), 50), uc.Misses, uc.Timeouts)
		fmt.Fprintf(out, "sent %s (%s/s), echoed %s (%s/s), at worst %s messages behind schedule; lost %s, history %s rows; cpu wstap %.2f, chromium %.2f\n",
			fmtCount(uc.Sent), commas(uc.SentRate), fmtCount(uc.Echoed), commas(uc.EchoRate), fmtCount(uc.MaxBehind),
			fmtCount(int(uc.Lost)), fmtCount(uc.Recorded), uc.CPUWstap, uc.CPUChrome)
		if uc.WrongDetail > 0 {
			fmt.Fprintf(out, "%d details did not show the clicked message's JSON\n", uc.WrongDetail)
		}
	}
	fmt.Fprintln(out)
	printChecks(out, u.checks(), u.Notes)
}

func sortedFloats(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func (b *bench) uiJSON() map[string]any {
	return map[string]any{
		"header":     b.uiHeader(),
		"throughput": b.ui.Throughput,
		"rows":       b.ui.Rows,
		"clicks":     b.ui.Clicks,
		"checks":     b.ui.checks(),
		"notes":      b.ui.Notes,
	}
}
