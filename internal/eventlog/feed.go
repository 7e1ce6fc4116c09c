package eventlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Feeder turns decoded events back into the [plugins.Observer] calls that produced
// them: the inverse of the [JSONL] writer. It puts a saved event log (`wstap open
// FILE.jsonl`) or the events of a HAR file into an observer such as the UI's
// history, and a JSONL writer fed by it writes again, byte for byte, the log the
// events were read from (the one exception: "lost" notes, which are counted, see
// [Feeder.Lost]).
//
// It keeps the *plugins.Conn of each connection id, so that every event of a
// connection reaches the observer with the same Conn, as from a front end. The
// Conns are read-only (no Controller): Inject fails and Close does nothing. A
// Feeder is used by one goroutine.
type Feeder struct {
	o       plugins.Observer
	conns   map[string]*plugins.Conn
	rec     plugins.Record // reused: observers must not keep a Record
	lost    int64
	skipped int64
}

// NewFeeder returns a Feeder that calls o.
func NewFeeder(o plugins.Observer) *Feeder {
	return &Feeder{o: o, conns: map[string]*plugins.Conn{}}
}

// Lost returns how many lines the logs fed so far said they had lost: the sum of
// the "lines" of their "lost" events, which no observer method reports (a writer
// given the events does not write them again).
func (f *Feeder) Lost() int64 { return f.lost }

// Skipped returns how many events of an unknown kind were skipped: a newer wstap
// may write kinds of events this one does not know, and they do not make the rest
// of the log unreadable.
func (f *Feeder) Skipped() int64 { return f.skipped }

// Close forgets the connections. Nothing is pending, so it makes no observer
// call: a connection whose "close" the log does not hold stays open, as it was
// when the log ended (no close event is invented).
func (f *Feeder) Close() { clear(f.conns) }

// badEvent returns an error wrapping [ErrBadEvent] about event e.
func badEvent(e *Event, format string, args ...any) error {
	return fmt.Errorf("%w: %s event of conn %q: %s", ErrBadEvent, e.Event, e.Conn, fmt.Sprintf(format, args...))
}

// Feed makes the observer call of one event: "open" → Opened, "refused" →
// Refused, "message" → Message, "close" → Closed, "undecodable", "gap", "resync",
// "error" and "controls" → Undecodable, Gap, Resync, StreamError and Controls.
// "lost" makes no call but is counted ([Feeder.Lost]), and so is an event of an
// unknown kind ([Feeder.Skipped]).
//
// The first event of a connection id not opened before (a log that begins after
// the connection's "open") gets a Conn with that ID only; no "open" is invented.
// An "open" or "refused" replaces the Conn of its id.
//
// An event that cannot be mapped (no conn id, a direction other than c2s or s2c,
// an opcode other than text, binary, close, ping and pong, a mode other than
// proxy, sniff or mode-N, a held message's order other than out, strict or
// order-N, a url that does not parse or is not ws:// or wss://, a
// negative length or count, a time outside the years 0 to 9999 in UTC) is an
// error wrapping [ErrBadEvent], and no call is made.
func (f *Feeder) Feed(e *Event) error {
	switch e.Event {
	case "lost":
		if e.Lines < 0 {
			return badEvent(e, "lines %d", e.Lines)
		}
		f.lost += e.Lines
		return nil
	case "open", "refused", "message", "close", "undecodable", "gap", "resync", "error", "controls":
	default:
		f.skipped++
		return nil
	}
	if e.Conn == "" {
		return badEvent(e, "no conn id")
	}
	if err := checkTime(e, "time", e.Time); err != nil {
		return err
	}
	switch e.Event {
	case "open", "refused":
		c, err := connOf(e)
		if err != nil {
			return err
		}
		if e.Event == "refused" {
			delete(f.conns, e.Conn) // an id names one connection: nothing follows
			f.o.Refused(c, e.Time)
			return nil
		}
		f.conns[e.Conn] = c
		f.o.Opened(c, e.Time)
	case "message", "undecodable":
		if err := f.record(e); err != nil {
			return err
		}
		if e.Event == "message" {
			f.o.Message(&f.rec)
		} else {
			f.o.Undecodable(&f.rec, e.Reason)
		}
		f.rec = plugins.Record{}
	case "close":
		c := f.conn(e.Conn)
		delete(f.conns, e.Conn)
		f.o.Closed(c, plugins.CloseEvent{Time: e.Time, Code: wsframe.CloseCode(e.Code), Reason: e.Reason, By: e.By})
	default: // gap, resync, error, controls
		dir, err := direction(e)
		if err != nil {
			return err
		}
		switch e.Event {
		case "gap":
			if e.Bytes < 0 {
				return badEvent(e, "bytes %d", e.Bytes)
			}
			f.o.Gap(f.conn(e.Conn), dir, e.Time, e.Bytes, e.Lost)
		case "resync":
			if e.Skipped < 0 {
				return badEvent(e, "skipped %d", e.Skipped)
			}
			f.o.Resync(f.conn(e.Conn), dir, e.Time, e.Skipped)
		case "error":
			f.o.StreamError(f.conn(e.Conn), dir, e.Time, errors.New(e.Error))
		case "controls":
			op, ok := opcodes[e.Opcode]
			if !ok || (op != wsframe.OpPing && op != wsframe.OpPong) {
				return badEvent(e, "opcode %q is not ping or pong", e.Opcode)
			}
			if err := checkTime(e, "first", e.First); err != nil {
				return err
			}
			if e.Count < 0 || e.Bytes < 0 {
				return badEvent(e, "count %d, bytes %d", e.Count, e.Bytes)
			}
			f.o.Controls(f.conn(e.Conn), dir, plugins.ControlSummary{Opcode: op, Count: e.Count, Bytes: e.Bytes,
				First: e.First, Last: e.Time, FirstSeq: e.SeqFirst, LastSeq: e.SeqLast})
		}
	}
	return nil
}

// checkTime rejects a time the log cannot hold: RFC 3339 has four-digit years, and
// the writer writes times in UTC, so a time given with an offset that takes it
// past 9999 (or before year 0) in UTC would be written as a line no reader reads.
func checkTime(e *Event, field string, t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return badEvent(e, "%s %s is out of the years 0 to 9999 in UTC", field, t.Format(time.RFC3339Nano))
	}
	return nil
}

// conn returns the Conn of id, creating one with the ID only on first sight.
func (f *Feeder) conn(id string) *plugins.Conn {
	c := f.conns[id]
	if c == nil {
		c = &plugins.Conn{ID: id}
		f.conns[id] = c
	}
	return c
}

// record fills f.rec from a "message" or "undecodable" event.
func (f *Feeder) record(e *Event) error {
	dir, err := direction(e)
	if err != nil {
		return err
	}
	op, ok := opcodes[e.Opcode]
	if !ok {
		return badEvent(e, "opcode %q is not text, binary, close, ping or pong", e.Opcode)
	}
	if e.Len < 0 || e.OriginalLen < 0 || e.Frames < 0 || e.WouldInject < 0 {
		return badEvent(e, "negative length or count (len %d, original_len %d, frames %d, would_inject %d)",
			e.Len, e.OriginalLen, e.Frames, e.WouldInject)
	}
	f.rec = plugins.Record{Conn: f.conn(e.Conn), Dir: dir, Seq: e.Seq, Opcode: op, Time: e.Time, Len: e.Len,
		Frames: e.Frames, Compressed: e.Compressed}
	if e.Event == "undecodable" {
		return nil // no payload: Len is the compressed length
	}
	// The optional payloads are nil when absent, as the writer leaves them out
	// when nil.
	r := &f.rec
	r.Payload, r.Truncated, r.Decoded = e.Payload, e.Truncated, e.Decoded
	r.Original, r.OriginalLen, r.OriginalDecoded, r.DecodeError = e.Original, e.OriginalLen, e.OriginalDecoded, e.DecodeError
	r.Modified, r.Dropped, r.Injected, r.Hooked = e.Modified, e.Dropped, e.Injected, e.Hooked
	r.WouldModify, r.WouldPayload, r.WouldDecoded = e.WouldModify, e.WouldPayload, e.WouldDecoded
	r.WouldDrop, r.WouldInject = e.WouldDrop, e.WouldInject
	if e.Held {
		o, ok := orders[e.Order]
		if !ok {
			return badEvent(e, "order %q is not out or strict", e.Order)
		}
		r.Held, r.HoldOrder = true, o
	}
	r.Released, r.HeldSeq = e.Released, e.HeldSeq
	r.Edited, r.TimedOut, r.OutOfOrder, r.ConnClosed = e.Edited, e.TimedOut, e.OutOfOrder, e.ConnClosed
	return nil
}

// orders are the orders of held messages, by the names the log writes, with
// "order-N" for an order this wstap has no name for (as the writer writes it).
var orders = func() map[string]plugins.Order {
	m := map[string]plugins.Order{}
	for o := range plugins.Order(255) {
		m[o.String()] = o
	}
	m["order-255"] = 255
	return m
}()

// opcodes are the opcodes of the log's messages, by the names it writes.
var opcodes = map[string]wsframe.Opcode{
	"text": wsframe.OpText, "binary": wsframe.OpBinary, "close": wsframe.OpClose,
	"ping": wsframe.OpPing, "pong": wsframe.OpPong,
}

// direction reads the "dir" of e.
func direction(e *Event) (plugins.Direction, error) {
	switch e.Dir {
	case "c2s":
		return plugins.ClientToServer, nil
	case "s2c":
		return plugins.ServerToClient, nil
	}
	return 0, badEvent(e, "dir %q is not c2s or s2c", e.Dir)
}

// connOf rebuilds the Conn of an "open" or "refused" event.
func connOf(e *Event) (*plugins.Conn, error) {
	c := &plugins.Conn{ID: e.Conn, Subprotocol: e.Subprotocol, Extensions: e.Extensions,
		Client: parseAddr(e.Client), Server: parseAddr(e.Server)}
	if e.URL != "" {
		u, err := url.Parse(e.URL)
		if err != nil {
			return nil, badEvent(e, "url: %v", err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return nil, badEvent(e, "url %q is not ws:// or wss://", e.URL)
		}
		c.URL = u
	}
	switch m := e.Mode; {
	case m == "proxy":
		c.Mode = plugins.Proxy
	case m == "sniff":
		c.Mode = plugins.Sniff
	case m == "":
		// Unknown (a HAR file of another tool): the zero Mode.
	case strings.HasPrefix(m, "mode-"):
		// What the writer writes for a Mode it has no name for.
		n, err := strconv.ParseUint(m[len("mode-"):], 10, 8)
		if err != nil || strconv.FormatUint(n, 10) != m[len("mode-"):] {
			return nil, badEvent(e, "mode %q", m)
		}
		c.Mode = plugins.Mode(n)
	default:
		return nil, badEvent(e, "mode %q is not proxy or sniff", m)
	}
	if rq := e.Request; rq != nil {
		c.Method, c.Target, c.Proto, c.Request = rq.Method, rq.Target, rq.Proto, rq.Headers
		if c.Request == nil {
			c.Request = http.Header{}
		}
	}
	if rs := e.Response; rs != nil {
		if rs.Status < 0 || rs.Status > 999 {
			return nil, badEvent(e, "response status %d", rs.Status)
		}
		c.Status, c.Reason, c.ResponseProto, c.Response = rs.Status, rs.Reason, rs.Proto, rs.Headers
		if c.Response == nil {
			c.Response = http.Header{}
		}
	}
	return c, nil
}

// parseAddr reads an address of an "open" event: a *net.TCPAddr for "ip:port" (as
// both front ends write them), nil for "", and for anything else (an address of
// another kind) an address that keeps the text, so that it is written the same.
func parseAddr(s string) net.Addr {
	if s == "" {
		return nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if a := net.TCPAddrFromAddrPort(ap); a.String() == s {
			return a
		}
	}
	return textAddr(s)
}

// textAddr is an address of a log that is not "ip:port".
type textAddr string

// Network returns "tcp": WebSocket runs over TCP, whatever the address looks like.
func (textAddr) Network() string { return "tcp" }

// String returns the address as the log wrote it.
func (a textAddr) String() string { return string(a) }

// Replay reads the JSONL event log in r and feeds every event to o ([Feeder.Feed]),
// in order, until the end of r or the first error: a line that is not an event or
// an event that cannot be mapped, named by its line number (wrapping
// [ErrBadEvent]). The calls made before an error stay made. Events of unknown
// kinds and "lost" notes make no call.
func Replay(r io.Reader, o plugins.Observer) error {
	f := NewFeeder(o)
	defer f.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		e, err := ParseEvent(line)
		if err == nil {
			err = f.Feed(e)
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("eventlog: read: %w", err)
	}
	return nil
}
