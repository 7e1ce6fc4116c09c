// Package history keeps what the web UI shows: every connection and message that
// went through the proxy or a capture, in memory, with their payloads up to a
// bound. It is a plugins.Observer: the proxy feeds it through plugins.NewAsync (the
// relay never waits for it), the sniffer directly (a capture waits rather than
// loses messages).
//
// Rows are never removed: past the bound, the oldest payloads are evicted (the row
// stays, marked evicted) and, when an event log is being written, read back from it
// on demand. Queries (a filter, a search, a page of rows) scan the rows in chunks,
// releasing the lock between them, so that a search over a million messages does
// not hold up the messages arriving meanwhile.
package history

import (
	"context"
	"sync"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// DefaultLimit is the default bound on the payload bytes a Store keeps.
const DefaultLimit = 256 << 20

// Kind is what a row of the history is.
type Kind uint8

// Kinds of rows: a message (data or control), and the events only a capture has.
const (
	KindMessage     Kind = iota + 1
	KindUndecodable      // a message seen but not shown (see plugins.Observer)
	KindGap              // bytes missing from a capture
	KindResync           // the decoder found frames again
	KindError            // a protocol error in a capture
	KindControls         // pings or pongs counted, not kept one by one
)

var kindNames = [...]string{KindMessage: "message", KindUndecodable: "undecodable", KindGap: "gap", KindResync: "resync",
	KindError: "error", KindControls: "controls"}

// String returns the kind's name, as the API writes it.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind"
}

// Flags are the yes/no facts of a row.
type Flags uint32

// Flags of a message row.
const (
	Modified Flags = 1 << iota
	Dropped
	Injected
	Compressed
	Decoded // a codec decoded it
	Truncated
	Hooked
	Evicted // the payload is no longer in memory
	WouldModify
	WouldDrop
	DecodeFailed // a codec declined it (Row.DecodeError)
	Lost         // gap: a message was in progress and is lost
	Held         // held at a breakpoint when it arrived (not forwarded then)
	Strict       // held with order=strict: its direction waited behind it
	Released     // the end of a hold: what was forwarded (or dropped); Row.HeldSeq names the held one
	Edited       // released: someone changed it
	TimedOut     // released: nobody decided in time, forwarded unchanged
	OutOfOrder   // released: later messages of its direction went out before it
	ConnClosed   // dropped because its connection ended while it was held or waited behind one
)

var flagNames = []struct {
	f    Flags
	name string
}{{Modified, "modified"}, {Dropped, "dropped"}, {Injected, "injected"}, {Compressed, "compressed"}, {Decoded, "decoded"},
	{Truncated, "truncated"}, {Hooked, "hooked"}, {Evicted, "evicted"}, {WouldModify, "would_modify"}, {WouldDrop, "would_drop"},
	{DecodeFailed, "decode_error"}, {Lost, "lost"}, {Held, "held"}, {Strict, "strict"}, {Released, "released"},
	{Edited, "edited"}, {TimedOut, "timed_out"}, {OutOfOrder, "out_of_order"}, {ConnClosed, "conn_closed"}}

// Names returns the names of the flags set, as the API writes them.
func (f Flags) Names() []string {
	out := []string{}
	for _, n := range flagNames {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// FlagByName returns the flag called name.
func FlagByName(name string) (Flags, bool) {
	for _, n := range flagNames {
		if n.name == name {
			return n.f, true
		}
	}
	return 0, false
}

// Part is one of the payloads a message row keeps.
type Part uint8

// The payloads of a message: what went on (Payload), its plaintext (Decoded),
// what came in when the chain changed it (Original, OriginalDecoded), and in sniff
// mode what the rules would have sent (WouldPayload).
const (
	Payload Part = iota
	DecodedPart
	Original
	OriginalDecoded
	WouldPayload
	numParts
)

// row is one line of the history. Rows are appended and never move; a row's
// payloads are dropped (data nil, Evicted set) when the store runs over its bound.
type row struct {
	kind   Kind
	dir    plugins.Direction
	opcode wsframe.Opcode
	flags  Flags
	conn   int32 // index in Store.conns
	frames int32
	seq    uint64
	time   int64 // Unix nanoseconds
	n      int64 // Len of the message; gap bytes; resync skipped; counted frames
	origN  int64 // OriginalLen
	data   []byte
	lens   [numParts]int32 // -1: absent
	text   string          // decode error, undecodable reason, error text
}

// part returns payload p of r, or nil when absent or evicted.
func (r *row) part(p Part) []byte {
	if r.data == nil || r.lens[p] < 0 {
		return nil
	}
	off := 0
	for i := range p {
		off += max(int(r.lens[i]), 0)
	}
	return r.data[off : off+int(r.lens[p]) : off+int(r.lens[p])]
}

// Conn is a connection of the history, as the store keeps it.
type Conn struct {
	Index   int
	pc      *plugins.Conn
	Opened  time.Time
	Closed  time.Time // zero while open
	Close   plugins.CloseEvent
	Refused bool
	Msgs    [2]int   // messages by direction (c2s, s2c)
	Bytes   [2]int64 // their payload bytes
	first   int      // first row of the connection, -1 before any
}

// PluginConn returns the connection as the front end described it.
func (c *Conn) PluginConn() *plugins.Conn { return c.pc }

// Store is the history. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	conns  []*Conn
	byID   map[string]*Conn
	rows   []row
	limit  int64
	used   int64 // payload bytes held
	oldest int   // rows before it have no payload left
	evict  int64 // rows evicted

	logPath string
	logIdx  *logIndex

	version uint64
	changed chan struct{} // closed on the next change; nil while nobody waits

	cache queryCache

	// heldSeq is the HeldSeq of each released row (few rows have one).
	heldSeq map[int32]uint64
}

// New returns a store that keeps at most limit payload bytes (DefaultLimit when
// limit <= 0). logPath, when not empty, is the event log being written alongside:
// evicted payloads are read back from it.
func New(limit int64, logPath string) *Store {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Store{byID: map[string]*Conn{}, limit: limit, logPath: logPath}
}

// changedLocked records a change and wakes the waiters. Called with s.mu held.
func (s *Store) changedLocked() {
	s.version++
	if s.changed != nil { // a channel only when someone waits: most changes have none
		close(s.changed)
		s.changed = nil
	}
}

// Version returns a number that grows with every change.
func (s *Store) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Wait blocks until the store's version is past since, or ctx is done, and returns
// the version.
func (s *Store) Wait(ctx context.Context, since uint64) uint64 {
	for {
		s.mu.Lock()
		v := s.version
		if v != since {
			s.mu.Unlock()
			return v
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return v
		}
	}
}

// Stats says how much the store holds.
type Stats struct {
	Conns, Rows int
	Used, Limit int64 // payload bytes
	Evicted     int64 // rows whose payload was evicted
	Version     uint64
	LogReadBack bool // evicted payloads can be read back from the event log
}

// Stats returns what the store holds.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Conns: len(s.conns), Rows: len(s.rows), Used: s.used, Limit: s.limit, Evicted: s.evict,
		Version: s.version, LogReadBack: s.logPath != ""}
}

// conn returns the stored connection of c, adding it when it is new. Called with
// s.mu held.
func (s *Store) conn(c *plugins.Conn, t time.Time) *Conn {
	if sc := s.byID[c.ID]; sc != nil {
		return sc
	}
	sc := &Conn{Index: len(s.conns), pc: c, Opened: t, first: -1}
	s.conns = append(s.conns, sc)
	s.byID[c.ID] = sc
	return sc
}

// add appends a row for connection c, keeping its payloads (copied); link, when not
// nil, is called with the row's id under the lock, to keep more about it.
func (s *Store) add(c *plugins.Conn, r row, parts [numParts][]byte, link func(id int32)) {
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	var data []byte
	if size > 0 || parts[Payload] != nil {
		data = make([]byte, 0, size)
	}
	for i, p := range parts {
		if p == nil {
			r.lens[i] = -1
			continue
		}
		r.lens[i] = int32(len(p))
		data = append(data, p...)
	}
	r.data = data
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.conn(c, time.Unix(0, r.time))
	r.conn = int32(sc.Index)
	if sc.first < 0 {
		sc.first = len(s.rows)
	}
	if r.kind == KindMessage && r.dir >= plugins.ClientToServer && r.dir <= plugins.ServerToClient {
		sc.Msgs[r.dir-1]++
		sc.Bytes[r.dir-1] += r.n
	}
	s.rows = append(s.rows, r)
	if link != nil {
		link(int32(len(s.rows) - 1))
	}
	s.used += int64(len(data))
	s.evictLocked()
	s.changedLocked()
}

// evictLocked drops the oldest payloads until the store is within its bound.
// Called with s.mu held.
func (s *Store) evictLocked() {
	for s.used > s.limit && s.oldest < len(s.rows) {
		r := &s.rows[s.oldest]
		if r.data != nil {
			s.used -= int64(len(r.data))
			r.data = nil
			r.flags |= Evicted
			s.evict++
		}
		s.oldest++
	}
}

// Opened records a new connection (plugins.Observer).
func (s *Store) Opened(c *plugins.Conn, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn(c, t)
	s.changedLocked()
}

// Refused records an upgrade that did not become a WebSocket (plugins.Observer).
func (s *Store) Refused(c *plugins.Conn, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.conn(c, t)
	sc.Refused, sc.Closed = true, t
	s.changedLocked()
}

// Closed records the end of a connection (plugins.Observer).
func (s *Store) Closed(c *plugins.Conn, ev plugins.CloseEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.conn(c, ev.Time)
	sc.Closed, sc.Close = ev.Time, ev
	s.changedLocked()
}

// Message records a message (plugins.Observer).
func (s *Store) Message(r *plugins.Record) {
	var f Flags
	for _, b := range []struct {
		on bool
		f  Flags
	}{{r.Modified, Modified}, {r.Dropped, Dropped}, {r.Injected, Injected}, {r.Compressed, Compressed},
		{r.Decoded != nil, Decoded}, {r.Truncated, Truncated}, {r.Hooked, Hooked}, {r.WouldModify, WouldModify},
		{r.WouldDrop, WouldDrop}, {r.DecodeError != "", DecodeFailed}, {r.Held, Held}, {r.Held && r.HoldOrder == plugins.Strict, Strict},
		{r.Released, Released}, {r.Edited, Edited}, {r.TimedOut, TimedOut}, {r.OutOfOrder, OutOfOrder}, {r.ConnClosed, ConnClosed}} {
		if b.on {
			f |= b.f
		}
	}
	parts := [numParts][]byte{r.Payload, r.Decoded, r.Original, r.OriginalDecoded, r.WouldPayload}
	if r.Payload == nil {
		parts[Payload] = []byte{}
	}
	var link func(int32)
	if r.Released {
		link = func(id int32) {
			if s.heldSeq == nil {
				s.heldSeq = map[int32]uint64{}
			}
			s.heldSeq[id] = r.HeldSeq
		}
	}
	s.add(r.Conn, row{kind: KindMessage, dir: r.Dir, opcode: r.Opcode, flags: f, frames: int32(r.Frames), seq: r.Seq,
		time: r.Time.UnixNano(), n: r.Len, origN: r.OriginalLen, text: r.DecodeError}, parts, link)
}

// Undecodable records a message that cannot be shown (plugins.Observer).
func (s *Store) Undecodable(r *plugins.Record, reason string) {
	f := Flags(0)
	if r.Compressed {
		f |= Compressed
	}
	s.add(r.Conn, row{kind: KindUndecodable, dir: r.Dir, opcode: r.Opcode, flags: f, frames: int32(r.Frames), seq: r.Seq,
		time: r.Time.UnixNano(), n: r.Len, text: reason}, [numParts][]byte{}, nil)
}

// Gap records bytes missing from a capture (plugins.Observer).
func (s *Store) Gap(c *plugins.Conn, dir plugins.Direction, t time.Time, bytes int64, lost bool) {
	f := Flags(0)
	if lost {
		f = Lost
	}
	s.add(c, row{kind: KindGap, dir: dir, flags: f, time: t.UnixNano(), n: bytes}, [numParts][]byte{}, nil)
}

// Resync records that a capture's decoder found frames again (plugins.Observer).
func (s *Store) Resync(c *plugins.Conn, dir plugins.Direction, t time.Time, skipped int64) {
	s.add(c, row{kind: KindResync, dir: dir, time: t.UnixNano(), n: skipped}, [numParts][]byte{}, nil)
}

// StreamError records a protocol error in a capture (plugins.Observer).
func (s *Store) StreamError(c *plugins.Conn, dir plugins.Direction, t time.Time, err error) {
	s.add(c, row{kind: KindError, dir: dir, time: t.UnixNano(), text: err.Error()}, [numParts][]byte{}, nil)
}

// Controls records pings or pongs counted together (plugins.Observer).
func (s *Store) Controls(c *plugins.Conn, dir plugins.Direction, cs plugins.ControlSummary) {
	s.add(c, row{kind: KindControls, dir: dir, opcode: cs.Opcode, time: cs.Last.UnixNano(), n: cs.Count,
		seq: cs.FirstSeq, origN: cs.Bytes}, [numParts][]byte{}, nil)
}

var _ plugins.Observer = (*Store)(nil)
