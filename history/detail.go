package history

import (
	"encoding/base64"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
)

// PartView is one payload of a message in the API: its bytes in base64 (the page
// shows them as text, JSON or hex), and whether they are valid UTF-8.
type PartView struct {
	Len    int    `json:"len"`
	Base64 string `json:"base64"`
	UTF8   bool   `json:"utf8"`
}

// Detail is a row with its payloads.
type Detail struct {
	Row
	OriginalLen int64               `json:"original_len,omitempty"`
	Parts       map[string]PartView `json:"parts"` // payload, decoded, original, original_decoded, would_payload
	// Evicted is true when the payloads were evicted from memory; FromLog when
	// they were read back from the event log.
	Evicted bool `json:"evicted,omitempty"`
	FromLog bool `json:"from_log,omitempty"`
}

var partNames = [numParts]string{Payload: "payload", DecodedPart: "decoded", Original: "original",
	OriginalDecoded: "original_decoded", WouldPayload: "would_payload"}

// Get returns row id with its payloads; false when there is no such row. An
// evicted row's payloads are read back from the event log when the store has one.
func (s *Store) Get(id int) (Detail, bool) {
	s.mu.RLock()
	if id < 0 || id >= len(s.rows) {
		s.mu.RUnlock()
		return Detail{}, false
	}
	r := s.rows[id] // a copy: the row may be evicted once the lock is released
	d := Detail{Row: s.view(id), OriginalLen: r.origN, Parts: map[string]PartView{}}
	conn := s.conns[r.conn].pc.ID
	s.mu.RUnlock()
	parts := make([][]byte, numParts)
	for p := range numParts {
		parts[p] = r.part(p)
	}
	if r.flags&Evicted != 0 {
		d.Evicted = true
		if r.kind == KindMessage && s.logPath != "" {
			if got, ok := s.readBack(conn, r.dir, r.seq); ok {
				parts, d.FromLog = got, true
			}
		}
	}
	for p, b := range parts {
		if b != nil {
			d.Parts[partNames[p]] = PartView{Len: len(b), Base64: base64.StdEncoding.EncodeToString(b), UTF8: utf8.Valid(b)}
		}
	}
	return d, true
}

// Replay hands the connections that conns selects (ids; all when empty) and their
// rows to o, as the front end did: Opened, then the rows in order, then Closed.
// It is how the history is exported (a JSONL writer or a HAR writer as o). Evicted
// payloads are read back from the event log when the store has one, and left out
// otherwise (the record says Truncated).
func (s *Store) Replay(conns []string, o plugins.Observer) {
	want := map[string]bool{}
	for _, id := range conns {
		want[id] = true
	}
	s.mu.RLock()
	var sel []*Conn
	for _, c := range s.conns {
		if len(want) == 0 || want[c.pc.ID] {
			sel = append(sel, c)
		}
	}
	n := len(s.rows)
	s.mu.RUnlock()
	for _, c := range sel {
		if c.Refused {
			o.Refused(c.pc, c.Opened)
		} else {
			o.Opened(c.pc, c.Opened)
		}
	}
	for start := 0; start < n; start += scanChunk {
		s.mu.RLock()
		end := min(n, start+scanChunk)
		batch := make([]row, 0, end-start)
		ids := make([]int32, 0, end-start)
		for i := start; i < end; i++ {
			r := s.rows[i]
			if id := s.conns[r.conn].pc.ID; len(want) == 0 || want[id] {
				batch = append(batch, r)
				ids = append(ids, int32(i))
			}
		}
		s.mu.RUnlock()
		for i := range batch {
			s.replayRow(ids[i], &batch[i], o)
		}
	}
	closed := make([]*Conn, 0, len(sel))
	for _, c := range sel {
		if !c.Refused && !c.Closed.IsZero() {
			closed = append(closed, c)
		}
	}
	sort.SliceStable(closed, func(i, j int) bool { return closed[i].Closed.Before(closed[j].Closed) })
	for _, c := range closed {
		o.Closed(c.pc, c.Close)
	}
}

// replayRow hands row id, r, to o.
func (s *Store) replayRow(id int32, r *row, o plugins.Observer) {
	s.mu.RLock()
	pc := s.conns[r.conn].pc
	heldSeq := s.heldSeq[id]
	s.mu.RUnlock()
	t := time.Unix(0, r.time)
	switch r.kind {
	case KindGap:
		o.Gap(pc, r.dir, t, r.n, r.flags&Lost != 0)
		return
	case KindResync:
		o.Resync(pc, r.dir, t, r.n)
		return
	case KindError:
		o.StreamError(pc, r.dir, t, errorText(r.text))
		return
	case KindControls:
		o.Controls(pc, r.dir, plugins.ControlSummary{Opcode: r.opcode, Count: r.n, Bytes: r.origN, First: t, Last: t,
			FirstSeq: r.seq, LastSeq: r.seq + uint64(max(r.n-1, 0))})
		return
	}
	rec := &plugins.Record{Conn: pc, Dir: r.dir, Seq: r.seq, Opcode: r.opcode, Time: t, Len: r.n, OriginalLen: r.origN,
		Frames: int(r.frames), DecodeError: "", Truncated: r.flags&Truncated != 0,
		Modified: r.flags&Modified != 0, Dropped: r.flags&Dropped != 0, Injected: r.flags&Injected != 0,
		Compressed: r.flags&Compressed != 0, Hooked: r.flags&Hooked != 0,
		WouldModify: r.flags&WouldModify != 0, WouldDrop: r.flags&WouldDrop != 0,
		Held: r.flags&Held != 0, Released: r.flags&Released != 0, Edited: r.flags&Edited != 0, TimedOut: r.flags&TimedOut != 0,
		OutOfOrder: r.flags&OutOfOrder != 0, ConnClosed: r.flags&ConnClosed != 0}
	if rec.Held {
		rec.HoldOrder = plugins.StepOut
		if r.flags&Strict != 0 {
			rec.HoldOrder = plugins.Strict
		}
	}
	if r.flags&DecodeFailed != 0 {
		rec.DecodeError = r.text
	}
	if rec.Released {
		rec.HeldSeq = heldSeq
	}
	if r.kind == KindUndecodable {
		o.Undecodable(rec, r.text)
		return
	}
	parts := make([][]byte, numParts)
	for p := range numParts {
		parts[p] = r.part(p)
	}
	if r.flags&Evicted != 0 {
		if got, ok := s.readBack(pc.ID, r.dir, r.seq); ok {
			parts = got
		} else {
			rec.Truncated = true
			parts[Payload] = []byte{}
		}
	}
	rec.Payload, rec.Decoded, rec.Original = parts[Payload], parts[DecodedPart], parts[Original]
	rec.OriginalDecoded, rec.WouldPayload = parts[OriginalDecoded], parts[WouldPayload]
	o.Message(rec)
}

// errorText is an error with a fixed message.
type errorText string

func (e errorText) Error() string { return string(e) }
