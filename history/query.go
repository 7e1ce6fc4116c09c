package history

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wstap/wstap/internal/glob"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Query selects rows. The zero value selects every data message and capture event
// of every connection (control frames are left out unless Control is set).
type Query struct {
	Conn    string            // a connection id; "" for all
	Dir     plugins.Direction // 0 for both
	Types   []string          // opcodes (text, binary, ping, pong, close) and kinds (gap, resync, undecodable, error, controls); none: all
	Control bool              // include ping, pong and close frames, and counted pings (Types, when set, decides alone)
	Flags   Flags             // rows that have all of them
	URL     string            // a glob on the connection's URL or host (* matches anything, / too)
	Text    string            // a literal the payload or the decoded payload contains (case-insensitive)
	Regexp  *regexp.Regexp    // a pattern the payload or the decoded payload matches
}

// key identifies q for the cache of query results.
func (q Query) key() string {
	re := ""
	if q.Regexp != nil {
		re = q.Regexp.String()
	}
	return strings.Join([]string{q.Conn, strconv.Itoa(int(q.Dir)), strings.Join(q.Types, ","), strconv.FormatBool(q.Control),
		strconv.Itoa(int(q.Flags)), q.URL, q.Text, re}, "\x00")
}

// matcher is a Query compiled against the store's connections.
type matcher struct {
	q       Query
	types   map[string]bool
	conn    int32 // -1: any
	connOK  []bool
	lower   []byte
	folding bool
	reLits  [][]byte // requiredLiterals of q.Regexp
}

func (s *Store) compile(q Query) *matcher {
	m := &matcher{q: q, conn: -1, reLits: requiredLiterals(q.Regexp)}
	if len(q.Types) > 0 {
		m.types = map[string]bool{}
		for _, t := range q.Types {
			m.types[t] = true
		}
	}
	if q.Text != "" {
		m.lower = bytes.ToLower([]byte(q.Text))
		m.folding = !isASCII(m.lower)
	}
	return m
}

// connMatches reports whether connection c passes the query's connection filters.
// Called with the store's lock held.
func (m *matcher) connMatches(c *Conn) bool {
	if m.q.Conn != "" && c.pc.ID != m.q.Conn {
		return false
	}
	if m.q.URL != "" && !glob.URL(m.q.URL, c.pc.URL) {
		return false
	}
	return true
}

// rowMatches reports whether r passes. Called with the store's lock held.
func (m *matcher) rowMatches(s *Store, r *row) bool {
	if int(r.conn) >= len(m.connOK) {
		for i := len(m.connOK); i < len(s.conns); i++ {
			m.connOK = append(m.connOK, m.connMatches(s.conns[i]))
		}
	}
	if !m.connOK[r.conn] {
		return false
	}
	if m.q.Dir != 0 && r.dir != m.q.Dir {
		return false
	}
	control := r.kind == KindControls || r.kind == KindMessage && r.opcode.IsControl()
	if control && !m.q.Control && m.types == nil { // types=ping asks for pings
		return false
	}
	if m.types != nil {
		name := r.kind.String()
		if r.kind == KindMessage {
			name = r.opcode.String()
		}
		if !m.types[name] {
			return false
		}
	}
	if r.flags&m.q.Flags != m.q.Flags {
		return false
	}
	if m.q.Text == "" && m.q.Regexp == nil {
		return true
	}
	for _, p := range []Part{Payload, DecodedPart} {
		b := r.part(p)
		if b == nil {
			continue
		}
		if m.q.Text != "" && !m.contains(b) {
			continue
		}
		if m.q.Regexp != nil && (m.reLits != nil && !containsAny(b, m.reLits) || !m.q.Regexp.Match(b)) {
			continue
		}
		return true
	}
	return false
}

// contains reports whether b holds the query's literal, ignoring case.
func (m *matcher) contains(b []byte) bool {
	if !m.folding && isASCII(b) {
		return indexFoldASCII(b, m.lower) >= 0
	}
	return bytes.Contains(bytes.ToLower(b), m.lower)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// indexFoldASCII finds lowerNeedle (lower-case ASCII) in b, ignoring ASCII case.
func indexFoldASCII(b, lowerNeedle []byte) int {
	n := len(lowerNeedle)
	if n == 0 {
		return 0
	}
	first, upper := lowerNeedle[0], lowerNeedle[0]
	if 'a' <= first && first <= 'z' {
		upper = first - 'a' + 'A'
	}
	for i := 0; i+n <= len(b); i++ {
		if c := b[i]; c != first && c != upper {
			j := bytes.IndexAny(b[i+1:len(b)-n+1], string([]byte{first, upper}))
			if j < 0 {
				return -1
			}
			i += j
			continue
		}
		ok := true
		for k := 1; k < n; k++ {
			c := b[i+k]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lowerNeedle[k] {
				ok = false
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}

// Glob reports whether s matches pattern, in which * matches any run of
// characters (slashes too) and ? one character; other characters match
// themselves, case-insensitively (package internal/glob, which the intercept rules
// share).
func Glob(pattern, s string) bool { return glob.Match(pattern, s) }

// queryCache remembers the rows of recent queries, so that paging through the
// results of a search does not scan the history again; a result is extended with
// the rows added since.
type queryCache struct {
	mu      sync.Mutex
	entries []*cached // most recent last
}

type cached struct {
	mu      sync.Mutex
	key     string
	m       *matcher
	ids     []int32
	scanned int // rows looked at
}

const cachedQueries = 8

func (c *queryCache) get(key string, mk func() *matcher) *cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.key == key {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
			return e
		}
	}
	e := &cached{key: key, m: mk()}
	if len(c.entries) == cachedQueries {
		c.entries = c.entries[1:]
	}
	c.entries = append(c.entries, e)
	return e
}

// scanChunk is how many rows a query looks at under one hold of the lock.
const scanChunk = 32 << 10

// matching returns the ids of the rows q selects, scanning only the rows added
// since the last time.
func (s *Store) matching(q Query) []int32 {
	e := s.cache.get(q.key(), func() *matcher { return s.compile(q) })
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		s.mu.RLock()
		end := min(len(s.rows), e.scanned+scanChunk)
		for i := e.scanned; i < end; i++ {
			if e.m.rowMatches(s, &s.rows[i]) {
				e.ids = append(e.ids, int32(i))
			}
		}
		e.scanned = end
		done := end == len(s.rows)
		s.mu.RUnlock()
		if done {
			return e.ids[:len(e.ids):len(e.ids)]
		}
	}
}

// Row is a row as the API shows it in a list.
type Row struct {
	ID         int       `json:"id"`
	Kind       string    `json:"kind"`
	Conn       string    `json:"conn"`
	Dir        string    `json:"dir,omitempty"`
	Opcode     string    `json:"opcode,omitempty"`
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Len        int64     `json:"len"`
	Frames     int32     `json:"frames,omitempty"`
	Flags      []string  `json:"flags"`
	Preview    string    `json:"preview"`
	PreviewHex bool      `json:"preview_hex,omitempty"`
	Text       string    `json:"text,omitempty"` // decode error, undecodable reason, protocol error
	// Order is how a held message was held: out or strict; HeldSeq, for the
	// record of a hold's end (released), the seq of the held message.
	Order   string  `json:"order,omitempty"`
	HeldSeq *uint64 `json:"held_seq,omitempty"`
}

// previewRunes is how many characters of payload a row's preview shows.
const previewRunes = 200

// view returns r as the API shows it. Called with the store's lock held.
func (s *Store) view(id int) Row {
	r := &s.rows[id]
	v := Row{ID: id, Kind: r.kind.String(), Conn: s.conns[r.conn].pc.ID, Seq: r.seq, Time: time.Unix(0, r.time).UTC(),
		Len: r.n, Frames: r.frames, Flags: r.flags.Names(), Text: r.text}
	if r.dir != 0 {
		v.Dir = r.dir.String()
	}
	if r.flags&Held != 0 {
		v.Order = plugins.StepOut.String()
		if r.flags&Strict != 0 {
			v.Order = plugins.Strict.String()
		}
	}
	if r.flags&Released != 0 {
		if seq, ok := s.heldSeq[int32(id)]; ok {
			v.HeldSeq = &seq
		}
	}
	if r.kind == KindMessage || r.kind == KindUndecodable || r.kind == KindControls {
		v.Opcode = r.opcode.String()
	}
	p := r.part(DecodedPart)
	if p == nil {
		p = r.part(Payload)
	}
	if r.kind == KindMessage && r.opcode == wsframe.OpClose {
		if code, reason, err := wsframe.ParseClose(r.part(Payload)); err == nil {
			v.Preview = strconv.Itoa(int(code))
			if reason != "" {
				v.Preview += " " + safeText(reason, previewRunes)
			}
			return v
		}
	}
	v.Preview, v.PreviewHex = preview(p, r.opcode != wsframe.OpBinary || r.flags&Decoded != 0)
	return v
}

// preview shows p as text (control characters as ·) when it is UTF-8 and likely
// text, and as hex otherwise, cut to previewRunes.
func preview(p []byte, text bool) (string, bool) {
	if utf8.Valid(p) && (text || printable(p)) {
		return safeText(string(p), previewRunes), false
	}
	n := min(len(p), previewRunes/2)
	var b strings.Builder
	const digits = "0123456789abcdef"
	for _, c := range p[:n] {
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&0xf])
	}
	if n < len(p) {
		b.WriteString("…")
	}
	return b.String(), true
}

// safeText cuts s to n characters and replaces those that are not printable
// (controls, which would drive a terminal) with ·.
func safeText(s string, n int) string {
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) && r != ' ' {
			r = '·'
		}
		b.WriteRune(r)
		i++
	}
	return b.String()
}

func printable(p []byte) bool {
	for _, r := range string(p) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// Messages returns the rows q selects, from offset on, at most limit of them, and
// how many it selects in all.
func (s *Store) Messages(q Query, offset, limit int) (total int, rows []Row) {
	ids := s.matching(q)
	total = len(ids)
	offset = max(0, min(offset, total))
	end := min(total, offset+max(0, limit))
	s.mu.RLock()
	defer s.mu.RUnlock()
	rows = make([]Row, 0, end-offset)
	for _, id := range ids[offset:end] {
		rows = append(rows, s.view(int(id)))
	}
	return total, rows
}

// Index returns the position, among the rows q selects, of the first row whose
// id is id or later (how many q selects when none is): where a list filtered by q
// shows row id, or the row after it.
func (s *Store) Index(q Query, id int) int {
	ids := s.matching(q)
	i, _ := slices.BinarySearch(ids, int32(id))
	return i
}

// ConnView is a connection as the API shows it.
type ConnView struct {
	ID          string     `json:"id"`
	URL         string     `json:"url"`
	State       string     `json:"state"` // open, closed or refused
	Status      int        `json:"status,omitempty"`
	CloseCode   int        `json:"close_code,omitempty"`
	CloseReason string     `json:"close_reason,omitempty"`
	CloseBy     string     `json:"close_by,omitempty"`
	Opened      time.Time  `json:"opened"`
	Closed      *time.Time `json:"closed,omitempty"`
	DurationMS  int64      `json:"duration_ms"`
	Messages    [2]int     `json:"messages"` // c2s, s2c
	Bytes       [2]int64   `json:"bytes"`
	Subprotocol string     `json:"subprotocol"`
	Extensions  string     `json:"extensions"`
	Mode        string     `json:"mode"`
	Client      string     `json:"client"`
	Server      string     `json:"server"`
}

func (c *Conn) view(now time.Time) ConnView {
	pc := c.pc
	v := ConnView{ID: pc.ID, Opened: c.Opened.UTC(), Messages: c.Msgs, Bytes: c.Bytes, Subprotocol: pc.Subprotocol,
		Extensions: pc.Extensions, Mode: pc.Mode.String(), Status: pc.Status, State: "open"}
	if pc.URL != nil {
		v.URL = pc.URL.String()
	}
	if pc.Client != nil {
		v.Client = pc.Client.String()
	}
	if pc.Server != nil {
		v.Server = pc.Server.String()
	}
	end := now
	switch {
	case c.Refused:
		v.State, end = "refused", c.Closed
	case !c.Closed.IsZero():
		v.State, end = "closed", c.Closed
		v.CloseCode, v.CloseReason, v.CloseBy = int(c.Close.Code), c.Close.Reason, c.Close.By
	}
	if v.State != "open" {
		t := c.Closed.UTC()
		v.Closed = &t
	}
	v.DurationMS = max(0, end.Sub(c.Opened).Milliseconds())
	return v
}

// Conns returns the connections whose URL or host matches the glob (all when
// empty), oldest first, from offset on, at most limit, and how many match.
func (s *Store) Conns(urlGlob string, offset, limit int) (total int, conns []ConnView) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := &matcher{q: Query{URL: urlGlob}}
	var all []*Conn
	for _, c := range s.conns {
		if m.connMatches(c) {
			all = append(all, c)
		}
	}
	total = len(all)
	offset = max(0, min(offset, total))
	end := min(total, offset+max(0, limit))
	now := time.Now()
	for _, c := range all[offset:end] {
		conns = append(conns, c.view(now))
	}
	return total, conns
}

// Header is a header as the API shows it: name and values, in a stable order.
type Header struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// Handshake is the upgrade exchange of a connection.
type Handshake struct {
	Method    string   `json:"method,omitempty"`
	Target    string   `json:"target,omitempty"`
	Proto     string   `json:"proto,omitempty"`
	Request   []Header `json:"request_headers"`
	Status    int      `json:"status,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	RespProto string   `json:"response_proto,omitempty"`
	Response  []Header `json:"response_headers"`
}

// ConnDetail is a connection with its handshake.
type ConnDetail struct {
	ConnView
	Handshake Handshake `json:"handshake"`
}

// Conn returns the connection with id and its handshake.
func (s *Store) Conn(id string) (ConnDetail, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.byID[id]
	if c == nil {
		return ConnDetail{}, false
	}
	pc := c.pc
	d := ConnDetail{ConnView: c.view(time.Now()), Handshake: Handshake{Method: pc.Method, Target: pc.Target, Proto: pc.Proto,
		Status: pc.Status, Reason: pc.Reason, RespProto: pc.ResponseProto, Request: headers(pc.Request), Response: headers(pc.Response)}}
	return d, true
}

func headers(h map[string][]string) []Header {
	out := []Header{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, Header{Name: name, Values: h[name]})
	}
	return out
}
