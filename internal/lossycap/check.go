package lossycap

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Report is something a sniffer or decoder reported in one direction: a message,
// or an undecodable one (Undecodable, no payload).
type Report struct {
	Op          wsframe.Opcode
	Payload     []byte
	Undecodable bool
	// Uncertain: reported as a message the bytes could not prove.
	Uncertain bool
}

// Tally counts, message by message, what was reported against what was sent.
type Tally struct {
	Sent     int // messages sent, data and control
	Clear    int // of them, those clear of every gap
	Expected int // the clear ones a sniffer can show (see [Message.Expected])

	Recovered int // expected messages reported intact, as plain messages
	Missing   int // expected messages not reported, not even as uncertain
	Uncertain int // reports marked uncertain (UncertainSent of them were sent)
	Corrupted int // plain messages reported that were not sent at that place

	UncertainSent int

	Undecodable int // undecodable reports
	Extra       int // sent messages that touch a gap, or need earlier ones, reported intact anyway

	Gaps, Resyncs int

	// Examples describes the first corrupted reports.
	Examples []string
}

// Add adds u's counts to t.
func (t *Tally) Add(u Tally) {
	t.Sent += u.Sent
	t.Clear += u.Clear
	t.Expected += u.Expected
	t.Recovered += u.Recovered
	t.Missing += u.Missing
	t.Uncertain += u.Uncertain
	t.UncertainSent += u.UncertainSent
	t.Corrupted += u.Corrupted
	t.Undecodable += u.Undecodable
	t.Extra += u.Extra
	t.Gaps += u.Gaps
	t.Resyncs += u.Resyncs
	for _, e := range u.Examples {
		if len(t.Examples) < maxExamples {
			t.Examples = append(t.Examples, e)
		}
	}
}

// Rate returns the share of expected messages recovered.
func (t Tally) Rate() float64 {
	if t.Expected == 0 {
		return 1
	}
	return float64(t.Recovered) / float64(t.Expected)
}

func (t Tally) String() string {
	return fmt.Sprintf("sent %d, clear %d, expected %d: recovered %d (%.4f%%), missing %d, uncertain %d (%d sent), corrupted %d; undecodable %d, extra %d; gaps %d, resyncs %d",
		t.Sent, t.Clear, t.Expected, t.Recovered, 100*t.Rate(), t.Missing, t.Uncertain, t.UncertainSent, t.Corrupted, t.Undecodable, t.Extra, t.Gaps, t.Resyncs)
}

const maxExamples = 8

// lookahead bounds how far past the previous match a report is matched: further,
// it is taken for corrupted rather than for the end of a run of missing messages.
const lookahead = 1024

// tiny is the largest payload matched only between the matches of its neighbours:
// short payloads repeat by chance.
const tiny = 2

// CheckDir compares the reports of one direction with the messages sent. A report
// matches a sent message with the same opcode and payload (wire payload when
// wire, for a decoder that does not inflate): the first one after the previous
// match. Reports of tiny payloads are matched afterwards, only between the
// messages their neighbours matched, so that a corrupted report that happens to
// equal a short message sent further on is not taken for it. Uncertain reports are
// matched the same way; a sent message reported uncertain is not missing.
func CheckDir(sent []*Message, got []Report, wire bool) Tally {
	var t Tally
	expected := func(m *Message) bool { return m.Clear && (wire || m.Alone || !m.AfterGap) }
	for _, m := range sent {
		t.Sent++
		if m.Clear {
			t.Clear++
		}
		if expected(m) {
			t.Expected++
		}
	}
	payload := func(m *Message) []byte {
		if wire {
			return m.Wire
		}
		return m.Payload
	}
	same := func(m *Message, r Report) bool { return m.Op == r.Op && bytes.Equal(payload(m), r.Payload) }
	at := make([]int, len(got)) // the sent message each report matched; -1: none, -2: undecodable
	matched := make([]bool, len(sent))
	uncertain := make([]bool, len(sent)) // reported uncertain
	corrupt := func(i, after int) {
		if got[i].Uncertain {
			return
		}
		t.Corrupted++
		if r := got[i]; len(t.Examples) < maxExamples {
			t.Examples = append(t.Examples, fmt.Sprintf("%s of %d bytes % x… after %d of %d sent", r.Op, len(r.Payload), r.Payload[:min(len(r.Payload), 16)], after, len(sent)))
		}
	}
	next := 0
	for i, r := range got {
		at[i] = -1
		if r.Uncertain {
			t.Uncertain++
		}
		switch {
		case r.Undecodable:
			t.Undecodable++
			at[i] = -2
			continue
		case len(r.Payload) <= tiny:
			continue // below
		}
		for k := next; k < len(sent) && k < next+lookahead; k++ {
			if same(sent[k], r) {
				at[i], matched[k], next = k, true, k+1
				break
			}
		}
		if at[i] < 0 {
			corrupt(i, next)
		}
	}
	// Tiny reports: between the matches of the reports around them.
	lo := 0
	for i, r := range got {
		if at[i] >= 0 {
			lo = at[i] + 1
			continue
		}
		if at[i] == -2 || len(r.Payload) > tiny {
			continue
		}
		hi := len(sent)
		for j := i + 1; j < len(got); j++ {
			if at[j] >= 0 && len(got[j].Payload) > tiny {
				hi = at[j]
				break
			}
		}
		for k := lo; k < hi; k++ {
			if !matched[k] && same(sent[k], r) {
				at[i], matched[k], lo = k, true, k+1
				break
			}
		}
		if at[i] < 0 {
			corrupt(i, lo)
		}
	}
	for i, r := range got {
		if r.Uncertain && at[i] >= 0 {
			uncertain[at[i]] = true
			t.UncertainSent++
		}
	}
	for k, m := range sent {
		switch {
		case uncertain[k]:
		case matched[k] && expected(m):
			t.Recovered++
		case matched[k]:
			t.Extra++
		case expected(m):
			t.Missing++
		}
	}
	return t
}

// Recorder is a plugins.Observer that keeps what a sniffer reports, per
// connection (by client address) and direction. It is safe for concurrent use.
type Recorder struct {
	plugins.NopObserver // for the events it does not keep

	mu      sync.Mutex
	reports map[string]*[2][]Report
	gaps    map[string]*[2]int
	resyncs map[string]*[2]int
	other   []string
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{reports: map[string]*[2][]Report{}, gaps: map[string]*[2]int{}, resyncs: map[string]*[2]int{}}
}

func dirIdx(d plugins.Direction) int {
	if d == plugins.ServerToClient {
		return 1
	}
	return 0
}

func (r *Recorder) dir(c *plugins.Conn, d plugins.Direction) *[]Report {
	key := c.Client.String()
	p := r.reports[key]
	if p == nil {
		p = &[2][]Report{}
		r.reports[key] = p
	}
	return &p[dirIdx(d)]
}

func count(m map[string]*[2]int, c *plugins.Conn, d plugins.Direction) {
	key := c.Client.String()
	p := m[key]
	if p == nil {
		p = &[2]int{}
		m[key] = p
	}
	p[dirIdx(d)]++
}

// Message implements plugins.Observer.
func (r *Recorder) Message(rec *plugins.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.dir(rec.Conn, rec.Dir)
	*l = append(*l, Report{Op: rec.Opcode, Payload: bytes.Clone(rec.Payload)})
}

// Gap implements plugins.Observer.
func (r *Recorder) Gap(c *plugins.Conn, dir plugins.Direction, t time.Time, n int64, lost bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	count(r.gaps, c, dir)
}

// Resync implements plugins.Observer.
func (r *Recorder) Resync(c *plugins.Conn, dir plugins.Direction, t time.Time, skipped int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	count(r.resyncs, c, dir)
}

// Undecodable implements plugins.Observer.
func (r *Recorder) Undecodable(rec *plugins.Record, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.dir(rec.Conn, rec.Dir)
	*l = append(*l, Report{Op: rec.Opcode, Undecodable: true})
}

// StreamError implements plugins.Observer.
func (r *Recorder) StreamError(c *plugins.Conn, dir plugins.Direction, t time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.other = append(r.other, fmt.Sprintf("%s %s: %v", c.Client, dir, err))
}

// Errors returns the stream errors reported.
func (r *Recorder) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.other
}

// Check tallies what the recorder saw against the capture.
func (c *Capture) Check(r *Recorder) Tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t Tally
	for _, cn := range c.Conns {
		key := cn.Client.String()
		var got [2][]Report
		if p := r.reports[key]; p != nil {
			got = *p
		}
		for d := range 2 {
			u := CheckDir(cn.Dirs[d].Msgs, got[d], false)
			if p := r.gaps[key]; p != nil {
				u.Gaps = p[d]
			}
			if p := r.resyncs[key]; p != nil {
				u.Resyncs = p[d]
			}
			for i, e := range u.Examples {
				u.Examples[i] = fmt.Sprintf("%s %s: %s", key, []string{"c2s", "s2c"}[d], e)
			}
			t.Add(u)
		}
	}
	return t
}

// Describe summarises the capture: connections, their deflate and cut, segments
// and drops.
func (c *Capture) Describe() string {
	var b strings.Builder
	segs, dropped := 0, 0
	for _, cn := range c.Conns {
		fmt.Fprintf(&b, "%s deflate=%s cut=%s; ", cn.Client, cn.Deflate, cn.Cut)
		for d := range cn.Dirs {
			for _, x := range cn.Dirs[d].Dropped {
				segs++
				if x {
					dropped++
				}
			}
		}
	}
	fmt.Fprintf(&b, "%d segments, %d dropped", segs, dropped)
	return b.String()
}

// Decode feeds direction d of the connection to a lenient wsframe.Decoder, each
// segment in a call of its own and a Gap for each one lost, and tallies what it
// reported against what was sent (wire payloads: it does not inflate). Messages
// the Decoder holds back after a search count as uncertain.
func (cn *Conn) Decode(d int) Tally {
	dir := &cn.Dirs[d]
	rules := wsframe.Rules{Sender: wsframe.Client, Lenient: true}
	if d == 1 {
		rules.Sender = wsframe.Server
	}
	if cn.Deflate != NoDeflate {
		rules.Extensions = wsframe.RSV1
	}
	h := &decodeHandler{}
	dec := wsframe.NewDecoder(rules, wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true}), h)
	gaps := 0
	for k, s := range dir.Segments {
		switch {
		case s[0] < dir.WS:
		case dir.Dropped[k]:
			dec.Gap(s[1] - s[0])
			if k+1 < len(dir.Segments) && !dir.Dropped[k+1] {
				gaps++
			}
		default:
			dec.Feed(bytes.Clone(dir.Stream[s[0]:s[1]])) // Feed unmasks in place
		}
	}
	dec.End()
	t := CheckDir(dir.Msgs, h.got, true)
	t.Gaps, t.Resyncs = gaps, h.resyncs
	for _, err := range h.errs {
		if len(t.Examples) < maxExamples {
			t.Examples = append(t.Examples, "error: "+err.Error())
		}
	}
	return t
}

// decodeHandler collects what a Decoder reports.
type decodeHandler struct {
	got     []Report
	resyncs int
	errs    []error
}

func (h *decodeHandler) Message(m *wsframe.Message) {
	h.got = append(h.got, Report{Op: m.Opcode, Payload: bytes.Clone(m.Payload)})
}

func (h *decodeHandler) Uncertain(m *wsframe.Message) {
	h.got = append(h.got, Report{Op: m.Opcode, Payload: bytes.Clone(m.Payload), Uncertain: true})
}

func (h *decodeHandler) Resync(int64) { h.resyncs++ }

func (h *decodeHandler) Error(err error) { h.errs = append(h.errs, err) }

// Decode tallies every direction of every connection with [Conn.Decode].
func (c *Capture) Decode() Tally {
	var t Tally
	for _, cn := range c.Conns {
		for d := range cn.Dirs {
			t.Add(cn.Decode(d))
		}
	}
	return t
}

var _ plugins.Observer = (*Recorder)(nil)
