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
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// bufferSize is the capacity of each of the JSONL writer's two buffers, and minRoom
// the free space below which the current one is handed to the writing goroutine
// before a line is formatted: lines are formatted straight into the buffer, so a
// line that does not fit would be formatted into a new allocation, and big writes
// cost fewer syscalls. maxKept bounds the buffer kept after a huge line grew it.
const (
	bufferSize = 1 << 20
	minRoom    = 256 << 10
	maxKept    = 4 * bufferSize
)

// flushInterval bounds how long an event waits in the buffer before it reaches the
// file, so `tail -f` on the log stays live.
const flushInterval = 100 * time.Millisecond

// JSONL writes events as JSON lines. It is safe for concurrent use. Call Close to
// flush and stop its goroutines.
//
// Lines are formatted into one buffer while a second goroutine writes the other,
// so on the sniffer's path the write syscalls overlap the parsing.
type JSONL struct {
	mu   sync.Mutex
	buf  []byte // lines not yet handed to the writer
	err  error  // first write error
	shut bool   // Close was called: lines are dropped
	sec  int64  // the second tsec was formatted for
	tsec []byte // "2006-01-02T15:04:05" of sec

	full  chan []byte  // buffers to write, to writeLoop
	free  chan written // written buffers, back from writeLoop
	dirty chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

// written is a buffer back from writeLoop, with the error writing it.
type written struct {
	buf []byte
	err error
}

// NewJSONL returns a JSONL writer to w.
func NewJSONL(w io.Writer) *JSONL {
	j := &JSONL{
		buf:   make([]byte, 0, bufferSize),
		full:  make(chan []byte),
		free:  make(chan written, 1),
		dirty: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	j.free <- written{buf: make([]byte, 0, bufferSize)}
	j.wg.Go(func() { j.writeLoop(w) })
	j.wg.Go(j.flusher)
	return j
}

// writeLoop writes the buffers handed to it, in order, until full is closed. After
// an error it writes nothing more.
func (j *JSONL) writeLoop(w io.Writer) {
	var err error
	for b := range j.full {
		if err == nil {
			_, err = w.Write(b)
		}
		j.free <- written{buf: b[:0], err: err}
	}
}

// handOff gives the current buffer to writeLoop and takes the other one, waiting
// until it is written. With wait, it also waits for the buffer just handed off, so
// everything formatted so far has reached w. Called with j.mu held.
func (j *JSONL) handOff(wait bool) {
	if j.err != nil || j.shut {
		return
	}
	if len(j.buf) > 0 {
		next := <-j.free
		j.full <- j.buf
		j.buf, j.err = next.buf, next.err
		if cap(j.buf) > maxKept {
			j.buf = make([]byte, 0, bufferSize)
		}
	}
	if wait && j.err == nil {
		last := <-j.free
		j.err = last.err
		if cap(last.buf) > maxKept {
			last.buf = make([]byte, 0, bufferSize)
		}
		j.free <- written{buf: last.buf}
	}
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
			j.mu.Lock()
			j.handOff(false)
			j.mu.Unlock()
		}
	}
}

// Flush writes buffered events to the underlying writer and returns the first write
// error, if any.
func (j *JSONL) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.handOff(true)
	return j.err
}

// Close flushes and stops the goroutines. It does not close the underlying writer.
func (j *JSONL) Close() error {
	close(j.done)
	j.mu.Lock()
	j.handOff(true)
	j.shut = true
	close(j.full)
	err := j.err
	j.mu.Unlock()
	j.wg.Wait()
	return err
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
	if cap(j.buf)-len(j.buf) < minRoom {
		j.handOff(false)
	}
	if j.err == nil && !j.shut {
		j.buf = append(fill(j.buf), '\n')
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
