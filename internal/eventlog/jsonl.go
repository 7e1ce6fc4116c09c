// Package eventlog writes connection events in wstap's two human- and machine-facing
// forms: the JSONL event log (one JSON object per line, the same schema for the proxy
// and the sniffer) and the one-line-per-event terminal view. Both are
// plugins.Observers.
//
// The JSONL writer is on the sniffer's hot path (a million messages a second), so it
// appends each line by hand into the buffered writer instead of using encoding/json,
// escapes strings a run at a time, and formats the timestamp's date and time part
// once per second.
package eventlog

import (
	"encoding/base64"
	"encoding/binary"
	"io"
	"maps"
	"math/bits"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// flushInterval bounds how long an event waits in the buffer before it reaches the
// file, so `tail -f` on the log stays live.
const flushInterval = 100 * time.Millisecond

// JSONL writes events as JSON lines. It is safe for concurrent use. Call Close to
// flush and stop its goroutines.
//
// Lines are formatted into one buffer while a second goroutine writes the other,
// so on the sniffer's path the write syscalls overlap the parsing. In [Live] mode a
// destination slower than the events never holds the caller up: past a bound, lines
// are dropped and a "lost" event counts them.
type JSONL struct {
	spool
	sec  int64  // the second tsec was formatted for
	tsec []byte // "2006-01-02T15:04:05" of sec
}

// NewJSONL returns a JSONL writer to w.
func NewJSONL(w io.Writer, mode Mode) *JSONL {
	j := &JSONL{}
	j.start(w, mode, 0, flushInterval, j.lostLine)
	return j
}

// lostLine formats the notice of lines a Live writer dropped:
//
//	{"event":"lost","time":…,"lines":120}
//
// Called with j.mu held.
func (j *JSONL) lostLine(b []byte, lines int64) []byte {
	b = append(b, `{"event":"lost","time":"`...)
	b = j.appendTime(b, time.Now())
	b = append(b, `","lines":`...)
	b = strconv.AppendInt(b, lines, 10)
	return append(b, '}')
}

// Opened writes an "open" event, with the handshake when it is known:
//
//	"request":{"method":"GET","target":"/chat","proto":"HTTP/1.1","headers":{"Host":["x"],…}},
//	"response":{"status":101,"reason":"Switching Protocols","proto":"HTTP/1.1","headers":{…}}
func (j *JSONL) Opened(c *plugins.Conn, t time.Time) { j.connection("open", c, t) }

// Refused writes a "refused" event: the fields of "open", the response with its
// status (not 101), and no messages follow.
func (j *JSONL) Refused(c *plugins.Conn, t time.Time) { j.connection("refused", c, t) }

// connection writes an "open" or "refused" event.
func (j *JSONL) connection(event string, c *plugins.Conn, t time.Time) {
	j.line(func(b []byte) []byte {
		b = j.head(b, event, t, c)
		b = appendField(b, "url", urlString(c))
		b = appendField(b, "client", addrString(c.Client))
		b = appendField(b, "server", addrString(c.Server))
		b = appendField(b, "subprotocol", c.Subprotocol)
		b = appendField(b, "extensions", c.Extensions)
		b = appendField(b, "mode", c.Mode.String())
		if c.Method != "" {
			b = append(b, `,"request":{"method":`...)
			b = appendString(b, c.Method)
			b = appendField(b, "target", c.Target)
			b = appendField(b, "proto", c.Proto)
			b = appendHeader(b, c.Request)
			b = append(b, '}')
		}
		if c.Status != 0 {
			b = append(b, `,"response":{"status":`...)
			b = strconv.AppendInt(b, int64(c.Status), 10)
			b = appendField(b, "reason", c.Reason)
			b = appendField(b, "proto", c.ResponseProto)
			b = appendHeader(b, c.Response)
			b = append(b, '}')
		}
		return append(b, '}')
	})
}

// appendHeader appends ,"headers":{"Name":["value",…],…} with the names sorted.
func appendHeader(b []byte, h http.Header) []byte {
	b = append(b, `,"headers":{`...)
	for i, name := range slices.Sorted(maps.Keys(h)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':', '[')
		for k, v := range h[name] {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// Message writes a "message" event.
func (j *JSONL) Message(r *plugins.Record) {
	j.line(func(b []byte) []byte {
		text := r.Opcode != wsframe.OpBinary
		b = j.head(b, "message", r.Time, r.Conn)
		b = append(b, `,"dir":"`...)
		b = append(b, r.Dir.String()...)
		b = append(b, `","seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
		b = append(b, `,"opcode":"`...)
		b = append(b, r.Opcode.String()...)
		b = append(b, `","len":`...)
		b = strconv.AppendInt(b, r.Len, 10)
		b = appendPayload(b, "payload", "encoding", r.Payload, text)
		if r.Truncated {
			b = append(b, `,"truncated":true`...)
		}
		b = append(b, `,"frames":`...)
		b = strconv.AppendInt(b, int64(r.Frames), 10)
		b = appendBool(b, "compressed", r.Compressed)
		if r.Decoded != nil {
			b = appendPayload(b, "decoded", "decoded_encoding", r.Decoded, true)
		}
		if r.Original != nil {
			b = append(b, `,"original_len":`...)
			b = strconv.AppendInt(b, r.OriginalLen, 10)
			b = appendPayload(b, "original", "original_encoding", r.Original, text)
		}
		if r.OriginalDecoded != nil {
			b = appendPayload(b, "original_decoded", "original_decoded_encoding", r.OriginalDecoded, true)
		}
		if r.DecodeError != "" {
			b = appendField(b, "decode_error", r.DecodeError)
		}
		b = appendBool(b, "modified", r.Modified)
		b = appendBool(b, "dropped", r.Dropped)
		b = appendBool(b, "injected", r.Injected)
		b = appendBool(b, "hooked", r.Hooked)
		if r.WouldModify {
			b = append(b, `,"would_modify":true`...)
			b = appendPayload(b, "would_payload", "would_encoding", r.WouldPayload, text)
			if r.WouldDecoded != nil {
				b = appendPayload(b, "would_decoded", "would_decoded_encoding", r.WouldDecoded, true)
			}
		}
		if r.WouldDrop {
			b = append(b, `,"would_drop":true`...)
		}
		if r.WouldInject > 0 {
			b = append(b, `,"would_inject":`...)
			b = strconv.AppendInt(b, int64(r.WouldInject), 10)
		}
		return appendHold(b, r)
	})
}

// appendHold appends the fields of a message held at a breakpoint, which are left
// out when they do not apply (every line without them reads as before):
//
//	,"held":true,"order":"strict"                       held when it arrived, not forwarded
//	,"released":true,"held_seq":7,"edited":true,…      the end of the hold of message 7
//
// and closes the object.
func appendHold(b []byte, r *plugins.Record) []byte {
	if r.Held {
		b = append(b, `,"held":true,"order":`...)
		b = appendString(b, r.HoldOrder.String())
	}
	if r.Released {
		b = append(b, `,"released":true,"held_seq":`...)
		b = strconv.AppendUint(b, r.HeldSeq, 10)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{r.Edited, `,"edited":true`}, {r.TimedOut, `,"timed_out":true`}, {r.OutOfOrder, `,"out_of_order":true`},
		{r.ConnClosed, `,"conn_closed":true`}} {
		if f.on {
			b = append(b, f.name...)
		}
	}
	return append(b, '}')
}

// Closed writes a "close" event.
func (j *JSONL) Closed(c *plugins.Conn, ev plugins.CloseEvent) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "close", ev.Time, c)
		b = append(b, `,"code":`...)
		b = strconv.AppendUint(b, uint64(ev.Code), 10)
		b = appendField(b, "reason", ev.Reason)
		b = appendField(b, "by", ev.By)
		return append(b, '}')
	})
}

// head starts an event: {"event":…,"time":…,"conn":…
func (j *JSONL) head(b []byte, event string, t time.Time, c *plugins.Conn) []byte {
	b = append(b, `{"event":"`...)
	b = append(b, event...)
	b = append(b, `","time":"`...)
	b = j.appendTime(b, t)
	b = append(b, '"')
	return appendField(b, "conn", c.ID)
}

// The times RFC 3339 can write: a capture's timestamps are whatever its file says.
var (
	minTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// appendTime appends t in UTC as RFC 3339 with microseconds (clamped to years 0
// to 9999, which RFC 3339 can write), formatting the part up to the seconds once
// per second. Called with j.mu held (from a fill function).
func (j *JSONL) appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if t.Before(minTime) {
		t = minTime
	} else if t.After(maxTime) {
		t = maxTime
	}
	if s := t.Unix(); s != j.sec || j.tsec == nil {
		j.sec = s
		j.tsec = t.AppendFormat(j.tsec[:0], "2006-01-02T15:04:05")
	}
	b = append(b, j.tsec...)
	us := t.Nanosecond() / 1000
	b = append(b, '.', byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10),
		byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10), 'Z')
	return b
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

func appendBool(b []byte, name string, v bool) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendBool(b, v)
}

// appendPayload writes p as UTF-8 text when asText and p is valid UTF-8, and as
// base64 otherwise, with the encoding named in encField.
func appendPayload(b []byte, field, encField string, p []byte, asText bool) []byte {
	b = append(b, ',', '"')
	b = append(b, field...)
	b = append(b, '"', ':')
	n := len(b)
	enc, ok := "text", false
	if asText {
		// A string view of p without a copy: the escaper only reads it.
		b, ok = appendText(b, unsafe.String(unsafe.SliceData(p), len(p)))
	}
	if !ok {
		enc = "base64"
		b = append(b[:n], '"')
		b = base64.StdEncoding.AppendEncode(b, p)
		b = append(b, '"')
	}
	b = append(b, ',', '"')
	b = append(b, encField...)
	b = append(b, `":"`...)
	b = append(b, enc...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// Word-at-a-time constants: a byte of ones, and each byte's high bit.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// attention returns, for the 8 bytes of w (little-endian), a word whose lowest set
// bit is the high bit of the first byte the escaper must look at: a control byte, '"',
// '\\', or 0xE2 (the lead byte of U+2028 and U+2029). It is zero when all 8 bytes
// can be copied as they are. Bits above the lowest may be wrong (borrows propagate
// upwards), so only the lowest is used.
func attention(w uint64) uint64 {
	q := w ^ ('"' * ones)
	bs := w ^ ('\\' * ones)
	e2 := w ^ (0xE2 * ones)
	return ((w-0x20*ones)&^w | (q-ones)&^q | (bs-ones)&^bs | (e2-ones)&^e2) & highs
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD (payloads
// go out as base64 instead).
func appendString(b []byte, s string) []byte {
	n := len(b)
	b, ok := appendText(b, s)
	if !ok {
		b, _ = appendText(b[:n], strings.ToValidUTF8(s, "\uFFFD"))
	}
	return b
}

// appendText appends s as a JSON string and reports whether s is valid UTF-8; when it
// is not, b holds a partial string for the caller to discard. U+2028 and U+2029 are
// escaped: they are valid JSON but end lines in JavaScript.
//
// Runs that need no escaping are found 8 bytes at a time and copied in one append;
// when escapes turn out to be dense (JSON inside JSON: a quote every few bytes) a
// byte at a time is faster, and the rest of s is scanned that way. The first
// non-ASCII byte validates the rest of s once, so ASCII text is read only once.
func appendText(b []byte, s string) ([]byte, bool) {
	b = append(b, '"')
	start, escapes := 0, 0
	high := uint64(highs)                           // non-ASCII bytes need attention until the rest is validated
	p := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	i := 0
	for i+8 <= len(p) {
		w := binary.LittleEndian.Uint64(p[i:])
		m := attention(w) | w&high
		if m == 0 {
			i += 8
			continue
		}
		i += bits.TrailingZeros64(m) / 8
		var ok bool
		if b, i, start, high, ok = escape(b, s, i, start, high); !ok {
			return b, false
		}
		if escapes++; escapes > 4 && escapes*16 > i {
			break // dense: a byte at a time from here
		}
	}
	for i < len(s) {
		if c := s[i]; !stopValid[c] && (c < utf8.RuneSelf || high == 0) {
			i++
			continue
		}
		var ok bool
		if b, i, start, high, ok = escape(b, s, i, start, high); !ok {
			return b, false
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}

// escape handles the byte at s[i] that appendText stopped at: it appends the run
// before it and its escape, if it needs one, and returns where to go on. A
// non-ASCII byte while high is set validates the rest of s (ok is false when it is
// not UTF-8) and clears high.
func escape(b []byte, s string, i, start int, high uint64) (_ []byte, _, _ int, _ uint64, ok bool) {
	switch c := s[i]; {
	case c >= utf8.RuneSelf && high != 0:
		if !utf8.ValidString(s[i:]) {
			return b, i, start, high, false
		}
		high = 0 // and look at this byte again
	case c == '"' || c == '\\':
		// The byte itself starts the next run.
		b = append(b, s[start:i]...)
		b = append(b, '\\')
		start = i
		i++
	case c < 0x20:
		b = append(b, s[start:i]...)
		switch c {
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	case c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9):
		b = append(b, s[start:i]...)
		b = append(b, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xF])
		i += 3
		start = i
	default:
		i++
	}
	return b, i, start, high, true
}

// stopValid marks the ASCII bytes appendText must look at, and 0xE2 (the lead byte
// of U+2028 and U+2029).
var stopValid = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'], t[0xE2] = true, true, true
	return t
}()

var _ plugins.Observer = (*JSONL)(nil)
