package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/internal/browsertest"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
)

// TestUILog: the ui section's event log reads back as the messages it says it
// wrote (JSON text of 60 to 200 bytes, about a tenth binary), and the history,
// fed with it as `wstap open` feeds it, selects for each query the rows the
// generator counted.
func TestUILog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ui.jsonl")
	const n = 20000
	st, err := writeUILog(path, n)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	store := history.New(0, path)
	if err := eventlog.Replay(bufio.NewReader(f), store); err != nil {
		t.Fatal(err)
	}
	if s := store.Stats(); s.Rows != n || s.Conns != 4 {
		t.Fatalf("the history holds %d rows of %d connections, want %d of 4", s.Rows, s.Conns, n)
	}
	if st.Binary < n/20 || st.Binary > n/7 {
		t.Errorf("%d of %d messages binary, want about a tenth", st.Binary, n)
	}
	f.Seek(0, 0)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	texts := 0
	for sc.Scan() {
		e, err := eventlog.ParseEvent(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != "message" || e.Opcode != "text" {
			continue
		}
		texts++
		if len(e.Payload) < 60 || len(e.Payload) > 200 || !json.Valid(e.Payload) {
			t.Fatalf("text payload of %d bytes: %s", len(e.Payload), e.Payload)
		}
	}
	if texts != n-st.Binary {
		t.Errorf("%d text messages, want %d", texts, n-st.Binary)
	}
	queries := map[string]history.Query{
		"filter":    {Dir: plugins.ClientToServer, Types: []string{"text"}},
		"literal":   {Text: uiLiteral},
		"regexp":    {Regexp: regexp.MustCompile(uiRegexp)},
		"nothing":   {Text: uiNothing},
		"typed":     {Text: uiTyped},
		"typed url": {URL: uiURLGlob},
		"typed re":  {Regexp: regexp.MustCompile(uiTypedRe)},
	}
	for _, q := range append(st.Queries, st.Typed, st.TypedURL, st.TypedRe) {
		total, _ := store.Messages(queries[q.Name], 0, 0)
		if total != q.Want {
			t.Errorf("%s (%s): the history selects %d rows, the generator counted %d", q.Name, q.Params, total, q.Want)
		}
		if q.Name != "nothing" && (q.Want < n/200 || q.Want > n/2) {
			t.Errorf("%s selects %d of %d rows: the figure would say little", q.Name, q.Want, n)
		}
	}
}

// TestUISection runs the ui section end to end with tiny parameters (a real wstap,
// built from this module, and Chromium) and checks that it produces every figure.
// Without Chromium it skips, or fails when CI is set.
func TestUISection(t *testing.T) {
	browsertest.Require(t, false)
	b := &bench{cfg: config{
		Rounds: 1, N64: 3000, Window64: 200, Duration: 300 * time.Millisecond,
		UIParts: strings.Join(uiParts, ","), UIRows: 20000, UIOpenRounds: 1, UIRate: 500, UILoad: 4 * time.Second,
		Chromium: browsertest.Chromium,
	}}
	b.tmp = t.TempDir()
	t.Cleanup(b.cleanup)
	var err error
	if b.echo, err = startEcho(); err != nil {
		t.Fatal(err)
	}
	if err := b.ensureWstap(); err != nil {
		t.Fatal(err)
	}
	if err := b.runUI(); err != nil {
		t.Fatal(err)
	}
	u := b.ui

	th := u.Throughput
	if th == nil || len(th.Plain) != 1 || len(th.WithUI) != 1 || len(th.NoPage) != 1 || th.MedPlain <= 0 || th.MedUI <= 0 || th.Ratio <= 0 {
		t.Fatalf("throughput: %+v", th)
	}
	if th.Recorded[0]+th.Lost[0] != th.Messages[0] {
		t.Errorf("throughput: %d rows recorded and %d lost of %d messages through wstap --ui", th.Recorded[0], th.Lost[0], th.Messages[0])
	}
	if len(th.CatchUpMS) != 1 || len(th.CPUChrome) != 1 || th.CPUChrome[0] <= 0 {
		t.Errorf("throughput: catch-up %v, Chromium CPU %v", th.CatchUpMS, th.CPUChrome)
	}

	ur := u.Rows
	if ur == nil || len(ur.LoadS) != 1 || ur.RSS[0] <= 0 || ur.HWM[0] < ur.RSS[0] || len(ur.PageMS) != 1 || len(ur.TypedMS) != 1 || ur.TypedMS[0] <= 0 {
		t.Fatalf("rows: %+v", ur)
	}
	if len(ur.Queries) != 4 {
		t.Fatalf("rows: %d queries, want filter, literal, regexp, nothing", len(ur.Queries))
	}
	for _, q := range ur.Queries {
		if len(q.RTTMS) != 1 || q.RTTMS[0] <= 0 || q.Got[0] != q.Want {
			t.Errorf("rows: %s: round trip %v ms, %v rows (want %d)", q.Name, q.RTTMS, q.Got, q.Want)
		}
	}
	if len(ur.Wrong) > 0 {
		t.Errorf("rows: %s", ur.Wrong)
	}
	if !strings.HasPrefix(ur.TypedGot[0], fmtCount(ur.Log.Typed.Want)+" rows") {
		t.Errorf("rows: after the typed search the page says %q, want %s rows", ur.TypedGot[0], fmtCount(ur.Log.Typed.Want))
	}
	if len(ur.FilterGot) != 1 || !strings.HasPrefix(ur.FilterGot[0], fmtCount(ur.Log.TypedURL.Want)+" rows of "+fmtCount(ur.Log.Messages)) {
		t.Errorf("rows: after the typed URL filter the page says %q, want %s rows of %s", ur.FilterGot, fmtCount(ur.Log.TypedURL.Want), fmtCount(ur.Log.Messages))
	}
	if len(ur.RegexpGot) != 1 || !strings.HasPrefix(ur.RegexpGot[0], fmtCount(ur.Log.TypedRe.Want)+" rows of "+fmtCount(ur.Log.Messages)) {
		t.Errorf("rows: after the typed regexp the page says %q, want %s rows of %s", ur.RegexpGot, fmtCount(ur.Log.TypedRe.Want), fmtCount(ur.Log.Messages))
	}

	uc := u.Clicks
	if uc == nil || len(uc.LatencyMS) == 0 || uc.P50 <= 0 || uc.P95 < uc.P50 || uc.Max < uc.P95 || uc.Sent == 0 || uc.EchoRate <= 0 || uc.FollowLooks == 0 {
		t.Fatalf("clicks: %+v", uc)
	}
	if uc.Timeouts > 0 || uc.WrongDetail > 0 {
		t.Errorf("clicks: %d timeouts, %d details that did not show the clicked message", uc.Timeouts, uc.WrongDetail)
	}

	// The report names every figure, and the JSON has them all.
	if got := len(u.checks()); got != 11 {
		t.Errorf("%d checks, want 11 (ratio, 4 queries, typed search, filter and regexp, totals, click p95, rate)", got)
	}
	var out bytes.Buffer
	b.printUI(&out)
	for _, want := range []string{"wstap --ui + page", "wstap --ui, no page", "lost (/api/info):", "read in", "RSS",
		"filter:", "literal:", "regexp:", "nothing:", "typed in the search box", "typed in the URL filter", "click to payload shown: p50", "p95", "sent "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	doc, err := json.Marshal(b.uiJSON())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"ratio"`, `"lost_total"`, `"median_rss_bytes"`, `"median_rtt_ms"`, `"median_took_ms"`,
		`"median_typed_search_ms"`, `"median_typed_filter_ms"`, `"median_typed_regexp_ms"`, `"p50_ms"`, `"p95_ms"`, `"max_ms"`, `"echoed_per_s"`, `"checks"`} {
		if !bytes.Contains(doc, []byte(key)) {
			t.Errorf("the JSON lacks %s", key)
		}
	}
	t.Logf("\n%s", out.String())
}
