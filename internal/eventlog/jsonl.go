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
	"bufio"
	"encoding/base64"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// bufferSize is the JSONL writer's buffer, and minRoom the free space below which it
// is flushed before a line is formatted: lines are formatted straight into the
// buffer, so a line that does not fit would be formatted into a new allocation
// (every 64 KiB message did with a 64 KiB buffer), and big writes cost fewer
// syscalls.
const (
	bufferSize = 1 << 20
	minRoom    = 256 << 10
)

// flushInterval bounds how long an event waits in the buffer before it reaches the
// file, so `tail -f` on the log stays live.
const flushInterval = 100 * time.Millisecond

// JSONL writes events as JSON lines. It is safe for concurrent use. Call Close to
// flush and stop its flusher.
type JSONL struct {
	mu   sync.Mutex
	w    *bufio.Writer
	err  error
	sec  int64  // the second timeCache was formatted for
	tsec []byte // "2006-01-02T15:04:05" of sec

	dirty chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

// NewJSONL returns a JSONL writer to w.
func NewJSONL(w io.Writer) *JSONL {
	j := &JSONL{w: bufio.NewWriterSize(w, bufferSize), dirty: make(chan struct{}, 1), done: make(chan struct{})}
	j.wg.Go(j.flusher)
	return j
}

// flusher flushes the buffer shortly after events arrive.
func (j *JSONL) flusher() {
	t := time.NewTimer(flushInterval)
	t.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-j.dirty:
			t.Reset(flushInterval)
			select {
			case <-t.C:
			case <-j.done:
				t.Stop()
				return
			}
			j.Flush()
		}
	}
}

// Flush writes buffered events to the underlying writer.
func (j *JSONL) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = j.w.Flush()
	}
	return j.err
}

// Close flushes and stops the flusher. It does not close the underlying writer.
func (j *JSONL) Close() error {
	close(j.done)
	j.wg.Wait()
	return j.Flush()
}

// Err returns the first write error, if any.
func (j *JSONL) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// line appends one event with fill and queues a flush.
func (j *JSONL) line(fill func(b []byte) []byte) {
	j.mu.Lock()
	if j.err == nil && j.w.Available() < minRoom {
		j.err = j.w.Flush()
	}
	if j.err == nil {
		b := fill(j.w.AvailableBuffer())
		b = append(b, '\n')
		_, j.err = j.w.Write(b)
	}
	j.mu.Unlock()
	select {
	case j.dirty <- struct{}{}:
	default:
	}
}

// Opened writes an "open" event.
func (j *JSONL) Opened(c *plugins.Conn, t time.Time) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "open", t, c)
		b = appendField(b, "url", urlString(c))
		b = appendField(b, "client", addrString(c.Client))
		b = appendField(b, "server", addrString(c.Server))
		b = appendField(b, "subprotocol", c.Subprotocol)
		b = appendField(b, "extensions", c.Extensions)
		b = appendField(b, "mode", c.Mode.String())
		return append(b, '}')
	})
}

// Message writes a "message" event.
func (j *JSONL) Message(r *plugins.Record) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "message", r.Time, r.Conn)
		b = append(b, `,"dir":"`...)
		b = append(b, r.Dir.String()...)
		b = append(b, `","seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
		b = append(b, `,"opcode":"`...)
		b = append(b, r.Opcode.String()...)
		b = append(b, `","len":`...)
		b = strconv.AppendInt(b, r.Len, 10)
		b = appendPayload(b, "payload", "encoding", r.Payload, r.Opcode != wsframe.OpBinary)
		if r.Truncated {
			b = append(b, `,"truncated":true`...)
		}
		b = append(b, `,"frames":`...)
		b = strconv.AppendInt(b, int64(r.Frames), 10)
		b = appendBool(b, "compressed", r.Compressed)
		if r.Decoded != nil {
			b = appendPayload(b, "decoded", "decoded_encoding", r.Decoded, true)
		}
		b = appendBool(b, "modified", r.Modified)
		b = appendBool(b, "dropped", r.Dropped)
		b = appendBool(b, "injected", r.Injected)
		b = appendBool(b, "hooked", r.Hooked)
		return append(b, '}')
	})
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

// appendTime appends t in UTC as RFC 3339 with microseconds, formatting the part
// up to the seconds once per second. Called with j.mu held.
func (j *JSONL) appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
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
	enc := "text"
	if asText && utf8.Valid(p) {
		// A string view of p without a copy: appendString only reads it.
		b = appendString(b, unsafe.String(unsafe.SliceData(p), len(p)))
	} else {
		enc = "base64"
		b = append(b, '"')
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

// needsEscape marks the ASCII bytes that cannot appear raw in a JSON string.
var needsEscape = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendString appends s as a JSON string, copying runs that need no escaping in one
// append. Invalid UTF-8 becomes U+FFFD (payloads are checked before and go out as
// base64 instead).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !needsEscape[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
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
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // valid JSON, but breaks JavaScript consumers
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

var _ plugins.Observer = (*JSONL)(nil)
