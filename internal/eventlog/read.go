package eventlog

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Event is one line of a JSONL event log, decoded: the fields of every kind of
// event, those of other kinds left empty. [Read] yields them; the UI, the HAR export
// and the repeater work from them.
type Event struct {
	Event string    `json:"event"`
	Time  time.Time `json:"time"`
	Conn  string    `json:"conn"`

	// open
	URL         string    `json:"url"`
	Client      string    `json:"client"`
	Server      string    `json:"server"`
	Subprotocol string    `json:"subprotocol"`
	Extensions  string    `json:"extensions"`
	Mode        string    `json:"mode"`
	Request     *Request  `json:"request"`
	Response    *Response `json:"response"`

	// message, undecodable, gap, resync, error
	Dir             string `json:"dir"`
	Seq             uint64 `json:"seq"`
	Opcode          string `json:"opcode"`
	Len             int64  `json:"len"`
	Payload         Bytes  `json:"payload"`
	Truncated       bool   `json:"truncated"`
	Frames          int    `json:"frames"`
	Compressed      bool   `json:"compressed"`
	Decoded         Bytes  `json:"decoded"`
	Original        Bytes  `json:"original"`
	OriginalLen     int64  `json:"original_len"`
	OriginalDecoded Bytes  `json:"original_decoded"`
	DecodeError     string `json:"decode_error"`
	Modified        bool   `json:"modified"`
	Dropped         bool   `json:"dropped"`
	Injected        bool   `json:"injected"`
	Hooked          bool   `json:"hooked"`
	WouldModify     bool   `json:"would_modify"`
	WouldPayload    Bytes  `json:"would_payload"`
	WouldDecoded    Bytes  `json:"would_decoded"`
	WouldDrop       bool   `json:"would_drop"`
	WouldInject     int    `json:"would_inject"`
	Held            bool   `json:"held"`         // held at a breakpoint when it arrived
	Order           string `json:"order"`        // held: out or strict
	Released        bool   `json:"released"`     // the end of a hold
	HeldSeq         uint64 `json:"held_seq"`     // released: the seq of the held message
	Edited          bool   `json:"edited"`       // released: someone changed it
	TimedOut        bool   `json:"timed_out"`    // released: forwarded unchanged after the timeout
	OutOfOrder      bool   `json:"out_of_order"` // released: later messages went before it
	ConnClosed      bool   `json:"conn_closed"`  // dropped: its connection ended while it was held or queued
	Bytes           int64  `json:"bytes"`        // gap, controls
	Lost            bool   `json:"lost"`         // gap
	Skipped         int64  `json:"skipped"`      // resync
	Reason          string `json:"reason"`       // undecodable, close
	Error           string `json:"error"`        // error

	// close
	Code uint16 `json:"code"`
	By   string `json:"by"`

	// lost
	Lines int64 `json:"lines"`

	// controls
	Count    int64     `json:"count"`
	First    time.Time `json:"first"`
	SeqFirst uint64    `json:"seq_first"`
	SeqLast  uint64    `json:"seq_last"`
}

// Request is the upgrade request of an "open" event.
type Request struct {
	Method  string      `json:"method"`
	Target  string      `json:"target"`
	Proto   string      `json:"proto"`
	Headers http.Header `json:"headers"`
}

// Response is the server's answer of an "open" event.
type Response struct {
	Status  int         `json:"status"`
	Reason  string      `json:"reason"`
	Proto   string      `json:"proto"`
	Headers http.Header `json:"headers"`
}

// Bytes is a payload field of the log. The log writes a payload as text or as
// base64, saying which in a sibling field ("encoding", "decoded_encoding", …);
// Read resolves that, so Bytes holds the payload's bytes. Nil means absent.
type Bytes []byte

// ErrBadEvent reports a line of an event log that cannot be read.
var ErrBadEvent = errors.New("eventlog: bad event line")

// Read decodes the JSONL event log in r, calling fn for each event in order, until
// the end of r or an error from fn, which it returns. A line that is not an event
// is an error naming its line number (wrapping ErrBadEvent).
func Read(r io.Reader, fn func(*Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		ev, err := ParseEvent(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("eventlog: read: %w", err)
	}
	return nil
}

// payloadFields pairs each payload field with the field that names its encoding.
var payloadFields = []struct{ field, encoding string }{
	{"payload", "encoding"},
	{"decoded", "decoded_encoding"},
	{"original", "original_encoding"},
	{"original_decoded", "original_decoded_encoding"},
	{"would_payload", "would_encoding"},
	{"would_decoded", "would_decoded_encoding"},
}

// ParseEvent decodes one line of an event log.
func ParseEvent(line []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if ev.Event == "" {
		return nil, fmt.Errorf(`%w: no "event" field`, ErrBadEvent)
	}
	if ev.Event != "message" && ev.Event != "undecodable" {
		return &ev, nil
	}
	// The payloads were decoded as text; those sent as base64 need a second look.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	for _, pf := range payloadFields {
		var enc string
		if e, ok := raw[pf.encoding]; ok {
			if err := json.Unmarshal(e, &enc); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBadEvent, pf.encoding, err)
			}
		}
		if enc != "base64" {
			continue
		}
		var s string
		if err := json.Unmarshal(raw[pf.field], &s); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadEvent, pf.field, err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not base64: %v", ErrBadEvent, pf.field, err)
		}
		*ev.payload(pf.field) = b
	}
	return &ev, nil
}

func (e *Event) payload(field string) *Bytes {
	switch field {
	case "decoded":
		return &e.Decoded
	case "original":
		return &e.Original
	case "original_decoded":
		return &e.OriginalDecoded
	case "would_payload":
		return &e.WouldPayload
	case "would_decoded":
		return &e.WouldDecoded
	}
	return &e.Payload
}

// UnmarshalJSON reads a payload field as text; [ParseEvent] replaces the ones the
// log wrote as base64.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s *string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	if s == nil {
		*b = nil
		return nil
	}
	*b = append(Bytes{}, *s...)
	return nil
}

// HTTPRequest rebuilds the upgrade request of an "open" (or "refused") event, as the server
// received it, ready to send again (a repeater's starting point): the URL is the
// event's ws:// or wss:// URL, the header every header it logged, Host apart as
// net/http wants it. It returns an error for an event without a logged request.
func (e *Event) HTTPRequest() (*http.Request, error) {
	if (e.Event != "open" && e.Event != "refused") || e.Request == nil {
		return nil, fmt.Errorf("eventlog: conn %s: the log holds no upgrade request", e.Conn)
	}
	u, err := url.Parse(e.URL)
	if err != nil {
		return nil, fmt.Errorf("eventlog: conn %s: url: %w", e.Conn, err)
	}
	h := e.Request.Headers.Clone()
	if h == nil {
		h = http.Header{}
	}
	host := h.Get("Host")
	delete(h, "Host")
	if host == "" {
		host = u.Host
	}
	req := &http.Request{Method: e.Request.Method, URL: u, Header: h, Host: host, Proto: e.Request.Proto, ProtoMajor: 1, ProtoMinor: 1}
	if t, err := url.ParseRequestURI(e.Request.Target); err == nil && e.Request.Target != "" {
		req.URL.Path, req.URL.RawPath, req.URL.RawQuery = t.Path, t.RawPath, t.RawQuery
	}
	return req, nil
}
