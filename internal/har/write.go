package har

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/wsframe"
)

// Options says what [Write] writes.
type Options struct {
	// Conns, when not empty, are the ids of the connections to write; the events
	// of the others are passed over (and not counted as skipped). To export some
	// messages only, filter the events given to Write.
	Conns []string
	// Version is log.creator.version (the creator is "wstap"); "devel" when empty.
	Version string
}

// Written counts what [Write] wrote.
type Written struct {
	Connections int // entries: open and refused connections
	Messages    int
	// Skipped counts the events no entry holds: "lost" events, the events of a
	// connection whose "open" was not among the events, and events after its
	// "close".
	Skipped int
}

// Write writes events (an event log's, in its order: [eventlog.Read] yields them, and
// [slices.Values] turns a slice into a sequence) to w as a HAR file; see the package
// documentation for what goes where. It returns what it wrote and the first error
// of w; an event it cannot write (an unknown opcode or direction) is an error too.
func Write(w io.Writer, events iter.Seq[*eventlog.Event], opts Options) (Written, error) {
	hw := &writer{bw: bufio.NewWriterSize(w, 64<<10), live: map[string]*conn{}}
	if len(opts.Conns) > 0 {
		hw.want = make(map[string]bool, len(opts.Conns))
		for _, id := range opts.Conns {
			hw.want[id] = true
		}
	}
	version := opts.Version
	if version == "" {
		version = "devel"
	}
	head, err := json.Marshal(harLog{Version: "1.2", Creator: creator{Name: "wstap", Version: version}})
	if err != nil {
		return hw.n, err
	}
	hw.bw.WriteString(`{"log":`)
	hw.bw.Write(head[:len(head)-1]) // without its closing brace
	hw.bw.WriteString(`,"entries":[`)
	for e := range events {
		if hw.add(e); hw.err != nil {
			break
		}
	}
	for _, c := range hw.queue {
		if hw.err != nil {
			break
		}
		hw.entry(c)
	}
	if hw.err != nil {
		return hw.n, hw.err
	}
	hw.bw.WriteString("]}}\n")
	return hw.n, hw.bw.Flush()
}

// WriteLog writes the HAR of the JSONL event log read from log, as [Write] does. An
// error reading the log is returned after the HAR of the events before it has been
// written.
func WriteLog(w io.Writer, log io.Reader, opts Options) (Written, error) {
	var readErr error
	stop := errors.New("stop")
	events := func(yield func(*eventlog.Event) bool) {
		readErr = eventlog.Read(log, func(e *eventlog.Event) error {
			if !yield(e) {
				return stop
			}
			return nil
		})
	}
	n, err := Write(w, events, opts)
	if err != nil {
		return n, err
	}
	if readErr != nil && readErr != stop {
		return n, fmt.Errorf("har: reading the event log: %w", readErr)
	}
	return n, nil
}

// conn is a connection whose entry is not written yet.
type conn struct {
	open   *eventlog.Event
	msgs   []*eventlog.Event
	others []otherEvent
	close  *eventlog.Event
	last   time.Time // of its last event
	done   bool      // closed, refused, or its id opened again
}

// writer is the state of one Write.
type writer struct {
	bw    *bufio.Writer
	want  map[string]bool  // nil: every connection
	live  map[string]*conn // by id, until written
	queue []*conn          // not written yet, in the order of their "open"
	n     Written
	err   error
}

// add files e under its connection, and writes the entries that are complete.
func (w *writer) add(e *eventlog.Event) {
	if w.want != nil && !w.want[e.Conn] {
		return
	}
	c := w.live[e.Conn]
	if c != nil && c.done && e.Event != "open" && e.Event != "refused" {
		c = nil // after its close
	}
	switch e.Event {
	case "open", "refused":
		if c != nil {
			c.done = true // the id opened again: the earlier one ends here
		}
		c = &conn{open: e, last: e.Time, done: e.Event == "refused"}
		w.live[e.Conn] = c
		w.queue = append(w.queue, c)
	case "lost":
		w.n.Skipped++
		return
	default:
		if c == nil {
			w.n.Skipped++
			return
		}
		c.last = e.Time
		switch e.Event {
		case "message":
			if w.err = checkMessage(e); w.err != nil {
				return
			}
			c.msgs = append(c.msgs, e)
		case "close":
			c.close, c.done = e, true
		default:
			c.others = append(c.others, other(e, len(c.msgs)))
		}
	}
	for len(w.queue) > 0 && w.queue[0].done && w.err == nil {
		c := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		w.entry(c)
	}
}

// entry writes the entry of c, and forgets c.
func (w *writer) entry(c *conn) {
	if w.live[c.open.Conn] == c {
		delete(w.live, c.open.Conn)
	}
	ent := newEntry(c)
	b, err := json.Marshal(ent)
	if err != nil {
		w.err = fmt.Errorf("har: conn %s: %w", c.open.Conn, err)
		return
	}
	if w.n.Connections > 0 {
		w.bw.WriteByte(',')
	}
	w.n.Connections++
	w.bw.Write(b[:len(b)-1])
	w.bw.WriteString(`,"_webSocketMessages":[`)
	for i, e := range c.msgs {
		b, err := json.Marshal(newMessage(e))
		if err != nil {
			w.err = fmt.Errorf("har: conn %s: %s message %d: %w", e.Conn, e.Dir, e.Seq, err)
			return
		}
		if i > 0 {
			w.bw.WriteByte(',')
		}
		if _, err := w.bw.Write(b); err != nil {
			w.err = err
			return
		}
		w.n.Messages++
	}
	if _, err := w.bw.WriteString("]}"); err != nil {
		w.err = err
	}
}

// newEntry builds c's entry, without its messages.
func newEntry(c *conn) *entry {
	e := c.open
	end := c.last
	if c.close != nil {
		end = c.close.Time
	}
	ms := 0.0
	if e.Event != "refused" && end.After(e.Time) {
		ms = float64(end.Sub(e.Time).Microseconds()) / 1000
	}
	id := e.Conn
	ent := &entry{
		StartedDateTime: formatTime(e.Time),
		Time:            ms,
		Request:         newRequest(e),
		Response:        newResponse(e),
		Timings:         timings{Blocked: -1, DNS: -1, Connect: -1, SSL: -1, Receive: ms},
		ResourceType:    "websocket",
		Conn:            &id,
		Mode:            e.Mode,
		Client:          e.Client,
		Server:          e.Server,
		Subprotocol:     e.Subprotocol,
		Extensions:      e.Extensions,
		Refused:         e.Event == "refused",
		Events:          c.others,
	}
	if host, port, err := net.SplitHostPort(e.Server); err == nil {
		ent.ServerIPAddress, ent.Connection = host, port
	} else {
		ent.ServerIPAddress = e.Server
	}
	if cl := c.close; cl != nil {
		ent.Close = &closeInfo{Time: formatTime(cl.Time), Code: cl.Code, Reason: cl.Reason, By: cl.By}
	}
	return ent
}

func newRequest(e *eventlog.Event) request {
	r := request{Method: "GET", URL: e.URL, Headers: []nameValue{}, QueryString: query(e.URL), Cookies: []cookie{}, HeadersSize: -1}
	if e.Request == nil {
		r.Unseen = true
		return r
	}
	target := e.Request.Target
	r.Method, r.HTTPVersion, r.Target = e.Request.Method, e.Request.Proto, &target
	r.Headers = headers(e.Request.Headers)
	for _, v := range e.Request.Headers["Cookie"] {
		if cs, err := http.ParseCookie(v); err == nil {
			for _, c := range cs {
				r.Cookies = append(r.Cookies, cookie{Name: c.Name, Value: c.Value})
			}
		}
	}
	return r
}

func newResponse(e *eventlog.Event) response {
	r := response{Headers: []nameValue{}, Cookies: []cookie{}, Content: content{MimeType: "x-unknown"}, HeadersSize: -1}
	if e.Response == nil {
		r.Unseen, r.BodySize = true, -1
		return r
	}
	h := e.Response.Headers
	r.Status, r.StatusText, r.HTTPVersion = float64(e.Response.Status), e.Response.Reason, e.Response.Proto
	r.Headers = headers(h)
	r.RedirectURL = h.Get("Location")
	if ct := h.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			r.Content.MimeType = mt
		}
	}
	if e.Event == "refused" {
		r.BodySize = -1 // whatever body it had was not logged
	}
	for _, v := range h["Set-Cookie"] {
		c, err := http.ParseSetCookie(v)
		if err != nil {
			continue
		}
		hc := cookie{Name: c.Name, Value: c.Value, Path: c.Path, Domain: c.Domain, HTTPOnly: c.HttpOnly, Secure: c.Secure}
		if !c.Expires.IsZero() {
			s := formatTime(c.Expires)
			hc.Expires = &s
		}
		r.Cookies = append(r.Cookies, hc)
	}
	return r
}

// headers lists h as HAR does, the names sorted and each value in its order.
func headers(h http.Header) []nameValue {
	list := []nameValue{}
	for _, name := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[name] {
			list = append(list, nameValue{Name: name, Value: v})
		}
	}
	return list
}

// query lists the query parameters of rawURL in their order, decoded; a parameter
// that does not decode is listed as it is.
func query(rawURL string) []nameValue {
	list := []nameValue{}
	u, err := url.Parse(rawURL)
	if err != nil || u.RawQuery == "" {
		return list
	}
	for part := range strings.SplitSeq(u.RawQuery, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if v, err := url.QueryUnescape(value); err == nil {
			value = v
		}
		list = append(list, nameValue{Name: name, Value: value})
	}
	return list
}

// opcodes maps the log's opcode names to their numbers.
var opcodes = func() map[string]int {
	m := make(map[string]int, 16)
	for op := range 16 {
		m[wsframe.Opcode(op).String()] = op
	}
	return m
}()

// messageTypes maps the log's directions to Chrome's message types.
var messageTypes = map[string]string{"c2s": "send", "s2c": "receive"}

// checkMessage returns an error when a message event cannot be written.
func checkMessage(e *eventlog.Event) error {
	if _, ok := messageTypes[e.Dir]; !ok {
		return fmt.Errorf("har: conn %s: message %d: direction %q is not c2s or s2c", e.Conn, e.Seq, e.Dir)
	}
	if _, ok := opcodes[e.Opcode]; !ok {
		return fmt.Errorf("har: conn %s: %s message %d: unknown opcode %q", e.Conn, e.Dir, e.Seq, e.Opcode)
	}
	return nil
}

// newMessage builds the message of e, which [checkMessage] accepted.
func newMessage(e *eventlog.Event) *message {
	op := opcodes[e.Opcode]
	t := float64(e.Time.UnixMicro()) / 1e6
	seq := e.Seq
	m := &message{Type: messageTypes[e.Dir], Time: &t, Opcode: &op, Seq: &seq}
	data, raw := chromeData(e.Payload, op)
	m.Data, m.RawData = &data, raw
	if int64(len(e.Payload)) != e.Len {
		n := e.Len
		m.Len = &n
	}
	m.Truncated, m.Frames, m.Compressed, m.Hooked = e.Truncated, e.Frames, e.Compressed, e.Hooked
	m.Modified, m.Dropped, m.Injected = e.Modified, e.Dropped, e.Injected
	text := op != int(wsframe.OpBinary)
	m.Decoded, m.DecodedEncoding = payload(e.Decoded, true)
	m.Original, m.OriginalEncoding = payload(e.Original, text)
	m.OriginalLen = e.OriginalLen
	m.OriginalDecoded, m.OriginalDecodedEncoding = payload(e.OriginalDecoded, true)
	m.DecodeError = e.DecodeError
	m.WouldModify, m.WouldDrop, m.WouldInject = e.WouldModify, e.WouldDrop, e.WouldInject
	m.WouldPayload, m.WouldPayloadEncoding = payload(e.WouldPayload, text)
	m.WouldDecoded, m.WouldDecodedEncoding = payload(e.WouldDecoded, true)
	if e.Held {
		m.Held, m.Order = true, e.Order
	}
	if e.Released {
		held := e.HeldSeq
		m.Released, m.HeldSeq = true, &held
	}
	m.Edited, m.TimedOut, m.OutOfOrder, m.ConnClosed = e.Edited, e.TimedOut, e.OutOfOrder, e.ConnClosed
	return m
}

// chromeData returns a payload as Chrome writes it, text for opcode 1 and base64
// for the others, and, for a text message that is not UTF-8, its exact bytes in
// base64 (data then has a U+FFFD for each bad byte).
func chromeData(p []byte, op int) (data string, raw *string) {
	if op != int(wsframe.OpText) {
		return base64.StdEncoding.EncodeToString(p), nil
	}
	if utf8.Valid(p) {
		return string(p), nil
	}
	b := base64.StdEncoding.EncodeToString(p)
	return string([]rune(string(p))), &b // each bad byte a U+FFFD
}

// payload returns a payload field and its encoding as the event log writes them:
// text when asText and p is UTF-8, base64 otherwise; nil for an absent field.
func payload(p []byte, asText bool) (*string, string) {
	if p == nil {
		return nil, ""
	}
	if asText && utf8.Valid(p) {
		s := string(p)
		return &s, "text"
	}
	s := base64.StdEncoding.EncodeToString(p)
	return &s, "base64"
}

func other(e *eventlog.Event, at int) otherEvent {
	o := otherEvent{At: at, Event: e.Event, Time: formatTime(e.Time), Dir: e.Dir, Seq: e.Seq, Opcode: e.Opcode, Len: e.Len,
		Frames: e.Frames, Compressed: e.Compressed, Reason: e.Reason, Bytes: e.Bytes, Lost: e.Lost, Skipped: e.Skipped,
		Error: e.Error, Count: e.Count, SeqFirst: e.SeqFirst, SeqLast: e.SeqLast}
	if !e.First.IsZero() {
		o.First = formatTime(e.First)
	}
	return o
}
