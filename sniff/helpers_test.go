package sniff

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// event is one thing a recorder saw, with copies of the payloads.
type event struct {
	kind       string // open, message, close, gap, resync, undecodable, error
	conn       string
	dir        plugins.Direction
	seq        uint64
	op         wsframe.Opcode
	payload    []byte
	len        int64
	frames     int
	compressed bool
	truncated  bool
	decoded    []byte
	code       wsframe.CloseCode
	reason     string // close reason, or why undecodable, or the error
	by         string
	bytes      int64 // gap: lost bytes; resync: skipped bytes
	lost       bool
	pc         *plugins.Conn
	time       time.Time
}

func (e event) String() string {
	switch e.kind {
	case "message":
		p := string(e.payload)
		if len(p) > 40 {
			p = p[:40] + "…"
		}
		return fmt.Sprintf("%s %s %s #%d %s len=%d frames=%d z=%v %q", e.kind, e.conn, e.dir, e.seq, e.op, e.len, e.frames, e.compressed, p)
	case "open":
		return fmt.Sprintf("open %s %v %s ext=%q proto=%q", e.conn, e.pc.URL, e.pc.Client, e.pc.Extensions, e.pc.Subprotocol)
	case "close":
		return fmt.Sprintf("close %s %d %q by %s", e.conn, e.code, e.reason, e.by)
	case "gap":
		return fmt.Sprintf("gap %s %s bytes=%d lost=%v", e.conn, e.dir, e.bytes, e.lost)
	case "resync":
		return fmt.Sprintf("resync %s %s skipped=%d", e.conn, e.dir, e.bytes)
	}
	return fmt.Sprintf("%s %s %s %s len=%d %s", e.kind, e.conn, e.dir, e.op, e.len, e.reason)
}

// recorder is an Observer and CaptureObserver that keeps every event.
type recorder struct{ events []event }

func (r *recorder) Opened(c *plugins.Conn, t time.Time) {
	r.events = append(r.events, event{kind: "open", conn: c.ID, pc: c, time: t})
}

func (r *recorder) Refused(c *plugins.Conn, t time.Time) {
	r.events = append(r.events, event{kind: "refused", conn: c.ID, pc: c, code: wsframe.CloseCode(c.Status), time: t})
}

func (r *recorder) Message(rec *plugins.Record) {
	r.events = append(r.events, event{kind: "message", conn: rec.Conn.ID, dir: rec.Dir, seq: rec.Seq, op: rec.Opcode,
		payload: append([]byte{}, rec.Payload...), len: rec.Len, frames: rec.Frames, compressed: rec.Compressed,
		truncated: rec.Truncated, decoded: append([]byte(nil), rec.Decoded...), time: rec.Time})
}

func (r *recorder) Closed(c *plugins.Conn, ev plugins.CloseEvent) {
	r.events = append(r.events, event{kind: "close", conn: c.ID, code: ev.Code, reason: ev.Reason, by: ev.By, time: ev.Time})
}

func (r *recorder) Gap(c *plugins.Conn, dir plugins.Direction, t time.Time, bytes int64, lost bool) {
	r.events = append(r.events, event{kind: "gap", conn: c.ID, dir: dir, bytes: bytes, lost: lost, time: t})
}

func (r *recorder) Resync(c *plugins.Conn, dir plugins.Direction, t time.Time, skipped int64) {
	r.events = append(r.events, event{kind: "resync", conn: c.ID, dir: dir, bytes: skipped, time: t})
}

func (r *recorder) Undecodable(rec *plugins.Record, reason string) {
	r.events = append(r.events, event{kind: "undecodable", conn: rec.Conn.ID, dir: rec.Dir, seq: rec.Seq, op: rec.Opcode,
		len: rec.Len, frames: rec.Frames, compressed: rec.Compressed, reason: reason, time: rec.Time})
}

func (r *recorder) StreamError(c *plugins.Conn, dir plugins.Direction, t time.Time, err error) {
	r.events = append(r.events, event{kind: "error", conn: c.ID, dir: dir, reason: err.Error(), time: t})
}

func (r *recorder) Controls(c *plugins.Conn, dir plugins.Direction, cs plugins.ControlSummary) {
	r.events = append(r.events, event{kind: "controls", conn: c.ID, dir: dir, op: cs.Opcode, len: cs.Count, time: cs.Last})
}

// kinds returns the events of the given kinds.
func (r *recorder) kinds(kinds ...string) []event {
	var out []event
	for _, e := range r.events {
		for _, k := range kinds {
			if e.kind == k {
				out = append(out, e)
			}
		}
	}
	return out
}

func (r *recorder) dump() string {
	var b strings.Builder
	for _, e := range r.events {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

var _ plugins.Observer = (*recorder)(nil)

// sniffFile runs a Sniffer with cfg over a capture file and returns what it saw.
func sniffFile(t *testing.T, path string, cfg Config) (*recorder, Stats) {
	t.Helper()
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rec := &recorder{}
	cfg.Observers = append(cfg.Observers, rec)
	s := New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx, src); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rec, s.Stats()
}

// ciFor returns the capture info of a whole packet.
func ciFor(data []byte) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{CaptureLength: len(data), Length: len(data)}
}
