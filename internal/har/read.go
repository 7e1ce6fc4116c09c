package har

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/wsframe"
)

// Log is a HAR file read back into events.
type Log struct {
	// Creator is log.creator's name and version ("wstap devel", "WebInspector 537.36").
	Creator string
	// Events are the connections' events: each connection's in its order (open or
	// refused, its messages and other events, its close), the connections
	// interleaved by time as in an event log.
	Events []*eventlog.Event

	Connections int // WebSocket entries read
	Messages    int
	// SkippedEntries counts the entries that are not WebSocket connections.
	SkippedEntries int
	// SkippedFrames counts Chrome's "error" frames: notes of DevTools, not messages.
	SkippedFrames int
}

// Read reads the HAR file in r (written by [Write] or saved by Chrome DevTools) and
// returns its WebSocket connections as events; see [ReadLog].
func Read(r io.Reader) ([]*eventlog.Event, error) {
	l, err := ReadLog(r)
	if err != nil {
		return nil, err
	}
	return l.Events, nil
}

// ReadLog reads the HAR file in r and returns its WebSocket connections as events,
// with what it counted and skipped. A file whose connections wstap wrote reads back
// into the events it was written from. The error names what is wrong: input that is
// not a HAR file wraps [ErrNotHAR], an entry that cannot be read wraps [ErrBadEntry]
// and names it (log.entries[3]._webSocketMessages[7]: …).
func ReadLog(r io.Reader) (*Log, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xEF\xBB\xBF")) {
		br.Discard(3) // some HAR writers start with a byte order mark
	}
	dec := json.NewDecoder(br)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotHAR, err)
	}
	rd := &reader{log: &Log{}, ids: map[string]bool{}}
	sawLog := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotHAR, err)
		}
		if key != "log" {
			if err := skipValue(dec); err != nil {
				return nil, fmt.Errorf("%w: %v: %v", ErrNotHAR, key, err)
			}
			continue
		}
		sawLog = true
		if err := rd.readLog(dec); err != nil {
			return nil, err
		}
	}
	if !sawLog {
		return nil, fmt.Errorf("%w: no log", ErrNotHAR)
	}
	rd.log.Events = merge(rd.conns)
	return rd.log, nil
}

// reader is the state of one ReadLog.
type reader struct {
	log     *Log
	conns   [][]*eventlog.Event // each connection's events, in the order of the entries
	ids     map[string]bool     // the connection ids given so far
	unnamed int                 // entries without _wstapConn so far
}

func (rd *reader) readLog(dec *json.Decoder) error {
	if err := expectDelim(dec, '{'); err != nil {
		return fmt.Errorf("%w: log: %v", ErrNotHAR, err)
	}
	sawEntries := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: log: %v", ErrNotHAR, err)
		}
		switch key {
		case "creator":
			var c creator
			if err := dec.Decode(&c); err != nil {
				return fmt.Errorf("%w: log.creator: %v", ErrNotHAR, err)
			}
			rd.log.Creator = strings.TrimSpace(c.Name + " " + c.Version)
		case "entries":
			sawEntries = true
			if err := expectDelim(dec, '['); err != nil {
				return fmt.Errorf("%w: log.entries: %v", ErrNotHAR, err)
			}
			for i := 0; dec.More(); i++ {
				var ent entry
				if err := dec.Decode(&ent); err != nil {
					return fmt.Errorf("%w: log.entries[%d]: %v", ErrBadEntry, i, err)
				}
				if err := rd.entry(i, &ent); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("%w: log.entries: %v", ErrNotHAR, err)
			}
		default:
			if err := skipValue(dec); err != nil {
				return fmt.Errorf("%w: log.%v: %v", ErrNotHAR, key, err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: log: %v", ErrNotHAR, err)
	}
	if !sawEntries {
		return fmt.Errorf("%w: no log.entries", ErrNotHAR)
	}
	return nil
}

// isWebSocket reports whether ent is a WebSocket connection.
func isWebSocket(ent *entry) bool {
	u := strings.ToLower(ent.Request.URL)
	return ent.Conn != nil || ent.ResourceType == "websocket" || ent.Messages != nil ||
		strings.HasPrefix(u, "ws://") || strings.HasPrefix(u, "wss://")
}

// entry turns the i-th entry of the file into the events of its connection.
func (rd *reader) entry(i int, ent *entry) error {
	if !isWebSocket(ent) {
		rd.log.SkippedEntries++
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: log.entries[%d]: %s", ErrBadEntry, i, fmt.Sprintf(format, args...))
	}
	started, err := parseTime(ent.StartedDateTime)
	if err != nil {
		return bad("startedDateTime: %v", err)
	}
	wstap := ent.Conn != nil
	open := &eventlog.Event{Event: "open", Time: started, Conn: rd.connID(ent), URL: ent.Request.URL, Mode: ent.Mode,
		Client: ent.Client, Server: ent.Server, Subprotocol: ent.Subprotocol, Extensions: ent.Extensions}
	if !ent.Request.Unseen {
		open.Request = &eventlog.Request{Method: ent.Request.Method, Proto: ent.Request.HTTPVersion, Headers: header(ent.Request.Headers)}
		if t := ent.Request.Target; t != nil {
			open.Request.Target = *t
		} else if u, err := url.Parse(ent.Request.URL); err == nil {
			open.Request.Target = u.RequestURI()
		}
	}
	status := ent.Response.Status
	if status != math.Trunc(status) || status < 0 || status > 999 {
		return bad("response.status %v is not an HTTP status", status)
	}
	if !ent.Response.Unseen && (wstap || status != 0 || len(ent.Response.Headers) > 0) {
		open.Response = &eventlog.Response{Status: int(status), Reason: ent.Response.StatusText, Proto: ent.Response.HTTPVersion,
			Headers: header(ent.Response.Headers)}
	}
	if !wstap {
		// What Chrome's format does not say in fields of its own.
		if ent.ServerIPAddress != "" {
			open.Server = ent.ServerIPAddress
			if _, err := strconv.ParseUint(ent.Connection, 10, 16); err == nil {
				open.Server = net.JoinHostPort(ent.ServerIPAddress, ent.Connection)
			}
		}
		if open.Response != nil {
			open.Subprotocol = open.Response.Headers.Get("Sec-WebSocket-Protocol")
			open.Extensions = strings.Join(open.Response.Headers.Values("Sec-WebSocket-Extensions"), ", ")
		}
	}
	events := []*eventlog.Event{open}
	next := map[string]uint64{} // the next seq of each direction
	others := ent.Events
	for k := range ent.Messages {
		for len(others) > 0 && others[0].At <= k {
			ev, err := otherFrom(open.Conn, &others[0])
			if err != nil {
				return bad("_wstapEvents: %v", err)
			}
			events, others = append(events, ev), others[1:]
		}
		ev, err := messageFrom(open.Conn, &ent.Messages[k], next)
		if err != nil {
			return bad("_webSocketMessages[%d]: %v", k, err)
		}
		if ev == nil {
			rd.log.SkippedFrames++
			continue
		}
		events = append(events, ev)
		rd.log.Messages++
	}
	for k := range others {
		ev, err := otherFrom(open.Conn, &others[k])
		if err != nil {
			return bad("_wstapEvents: %v", err)
		}
		events = append(events, ev)
	}
	if ent.Refused || (!wstap && status != 101 && len(events) == 1) {
		open.Event = "refused" // Chrome's: an upgrade answered with another status, and no message
	}
	if cl := ent.Close; cl != nil {
		t, err := parseTime(cl.Time)
		if err != nil {
			return bad("_wstapClose.time: %v", err)
		}
		events = append(events, &eventlog.Event{Event: "close", Time: t, Conn: open.Conn, Code: cl.Code, Reason: cl.Reason, By: cl.By})
	}
	rd.conns = append(rd.conns, events)
	rd.log.Connections++
	return nil
}

// connID returns the id of ent's connection: the one wstap wrote, or the next
// "h1", "h2", …; an id seen before gets a suffix ("c3-2"), so that the ids stay
// unique when HAR files were merged.
func (rd *reader) connID(ent *entry) string {
	var id string
	if ent.Conn != nil && *ent.Conn != "" {
		id = *ent.Conn
	} else {
		rd.unnamed++
		id = "h" + strconv.Itoa(rd.unnamed)
	}
	for n, base := 2, id; rd.ids[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	rd.ids[id] = true
	return id
}

// header turns HAR's header list into an http.Header, the names canonical.
func header(list []nameValue) http.Header {
	h := make(http.Header, len(list))
	for _, nv := range list {
		name := textproto.CanonicalMIMEHeaderKey(nv.Name)
		h[name] = append(h[name], nv.Value)
	}
	return h
}

// directions maps Chrome's message types to the log's directions.
var directions = map[string]string{"send": "c2s", "receive": "s2c"}

// messageFrom returns the "message" event of m, or nil for one of Chrome's "error"
// frames. next holds the sequence number each direction is at.
func messageFrom(conn string, m *message, next map[string]uint64) (*eventlog.Event, error) {
	if m.Type == "error" {
		return nil, nil
	}
	dir, ok := directions[m.Type]
	if !ok {
		return nil, fmt.Errorf("type %q is not send, receive or error", m.Type)
	}
	switch {
	case m.Time == nil:
		return nil, errors.New("no time")
	case m.Opcode == nil:
		return nil, errors.New("no opcode")
	case m.Data == nil:
		return nil, errors.New("no data")
	case *m.Opcode < 0 || *m.Opcode > 15:
		return nil, fmt.Errorf("opcode %d is not a WebSocket opcode", *m.Opcode)
	}
	op := wsframe.Opcode(*m.Opcode)
	e := &eventlog.Event{Event: "message", Time: secondsTime(*m.Time), Conn: conn, Dir: dir, Opcode: op.String()}
	var err error
	switch {
	case m.RawData != nil:
		if e.Payload, err = decodeField(*m.RawData, "base64"); err != nil {
			return nil, fmt.Errorf("_wstapData: %v", err)
		}
	case op == wsframe.OpText:
		e.Payload = eventlog.Bytes(*m.Data)
	default:
		if e.Payload, err = decodeField(*m.Data, "base64"); err != nil {
			return nil, fmt.Errorf("data of opcode %d: %v", op, err)
		}
	}
	e.Seq = next[dir]
	if m.Seq != nil {
		e.Seq = *m.Seq
	}
	next[dir] = e.Seq + 1
	e.Len = int64(len(e.Payload))
	if m.Len != nil {
		e.Len = *m.Len
	}
	e.Truncated, e.Frames, e.Compressed, e.Hooked = m.Truncated, m.Frames, m.Compressed, m.Hooked
	e.Modified, e.Dropped, e.Injected = m.Modified, m.Dropped, m.Injected
	e.OriginalLen, e.DecodeError = m.OriginalLen, m.DecodeError
	e.WouldModify, e.WouldDrop, e.WouldInject = m.WouldModify, m.WouldDrop, m.WouldInject
	e.Held, e.Order, e.Released = m.Held, m.Order, m.Released
	if m.HeldSeq != nil {
		e.HeldSeq = *m.HeldSeq
	}
	e.Edited, e.TimedOut, e.OutOfOrder, e.ConnClosed = m.Edited, m.TimedOut, m.OutOfOrder, m.ConnClosed
	for _, f := range []struct {
		name  string
		to    *eventlog.Bytes
		value *string
		enc   string
	}{
		{"_wstapDecoded", &e.Decoded, m.Decoded, m.DecodedEncoding},
		{"_wstapOriginal", &e.Original, m.Original, m.OriginalEncoding},
		{"_wstapOriginalDecoded", &e.OriginalDecoded, m.OriginalDecoded, m.OriginalDecodedEncoding},
		{"_wstapWouldPayload", &e.WouldPayload, m.WouldPayload, m.WouldPayloadEncoding},
		{"_wstapWouldDecoded", &e.WouldDecoded, m.WouldDecoded, m.WouldDecodedEncoding},
	} {
		if f.value == nil {
			continue
		}
		if *f.to, err = decodeField(*f.value, f.enc); err != nil {
			return nil, fmt.Errorf("%s: %v", f.name, err)
		}
	}
	return e, nil
}

// decodeField returns the bytes of a payload field written with encoding enc
// ("text", the default, or "base64").
func decodeField(s, enc string) (eventlog.Bytes, error) {
	switch enc {
	case "", "text":
		return eventlog.Bytes(s), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("not base64: %v", err)
		}
		return append(eventlog.Bytes{}, b...), nil
	}
	return nil, fmt.Errorf("encoding %q is not text or base64", enc)
}

func otherFrom(conn string, o *otherEvent) (*eventlog.Event, error) {
	t, err := parseTime(o.Time)
	if err != nil {
		return nil, fmt.Errorf("%s: time: %v", o.Event, err)
	}
	e := &eventlog.Event{Event: o.Event, Time: t, Conn: conn, Dir: o.Dir, Seq: o.Seq, Opcode: o.Opcode, Len: o.Len,
		Frames: o.Frames, Compressed: o.Compressed, Reason: o.Reason, Bytes: o.Bytes, Lost: o.Lost, Skipped: o.Skipped,
		Error: o.Error, Count: o.Count, SeqFirst: o.SeqFirst, SeqLast: o.SeqLast}
	if o.First != "" {
		if e.First, err = parseTime(o.First); err != nil {
			return nil, fmt.Errorf("%s: first: %v", o.Event, err)
		}
	}
	return e, nil
}

// parseTime reads an ISO 8601 time as HAR files write them (RFC 3339, with any
// number of fractional digits), in UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time", s)
	}
	return t.UTC(), nil
}

// secondsTime returns the time of a message's time field: seconds since the epoch,
// rounded to the microsecond the log keeps.
func secondsTime(s float64) time.Time {
	return time.UnixMicro(int64(math.Round(s * 1e6))).UTC()
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("found %v where %v should be", tok, d)
	}
	return nil
}

// skipValue reads past the next value of dec, a token at a time.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// merge interleaves the connections' events by time, keeping each connection's
// order: an event log's order, when each connection's events are in time order.
// Ties go to the connection of the earlier entry.
func merge(conns [][]*eventlog.Event) []*eventlog.Event {
	n := 0
	h := make(heads, 0, len(conns))
	for i, c := range conns {
		n += len(c)
		if len(c) > 0 {
			h = append(h, head{i, c})
		}
	}
	heap.Init(&h)
	out := make([]*eventlog.Event, 0, n)
	for len(h) > 0 {
		out = append(out, h[0].events[0])
		if h[0].events = h[0].events[1:]; len(h[0].events) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return out
}

// head is what is left of one connection's events in merge.
type head struct {
	conn   int
	events []*eventlog.Event
}

type heads []head

func (h heads) Len() int { return len(h) }
func (h heads) Less(i, j int) bool {
	ti, tj := h[i].events[0].Time, h[j].events[0].Time
	if !ti.Equal(tj) {
		return ti.Before(tj)
	}
	return h[i].conn < h[j].conn
}
func (h heads) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heads) Push(x any)   { *h = append(*h, x.(head)) }
func (h *heads) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
