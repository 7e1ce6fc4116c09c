package eventlog

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// previewLen is the number of characters of payload the terminal view shows.
const previewLen = 96

// Terminal writes one line per event for a person watching traffic live:
//
//	20:15:01.130 c1 → text     12 hi websocket
//	20:15:01.131 c1 ← binary    4 hex 00ff10ab
//
// Arrows: → client to server, ← server to client. Flags after the length: M
// modified, D dropped, I injected, Z compressed on the wire, + decoded by a codec
// (the preview then shows the decoded form). It is safe for concurrent use.
type Terminal struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewTerminal returns a terminal view writing to w.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

func (t *Terminal) write(b []byte) {
	t.w.Write(b) // a broken terminal must not stop the traffic
}

func (t *Terminal) start(ts time.Time, id string) []byte {
	b := ts.AppendFormat(t.buf[:0], "15:04:05.000")
	b = append(b, ' ')
	b = append(b, id...)
	return append(b, ' ')
}

// Opened prints the connection's URL and negotiated extensions.
func (t *Terminal) Opened(c *plugins.Conn, ts time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.start(ts, c.ID)
	b = append(b, "open  "...)
	b = append(b, urlString(c)...)
	if c.Subprotocol != "" {
		b = append(b, " protocol="...)
		b = append(b, c.Subprotocol...)
	}
	if c.Extensions != "" {
		b = append(b, " ("...)
		b = append(b, c.Extensions...)
		b = append(b, ')')
	}
	b = append(b, '\n')
	t.write(b)
	t.buf = b
}

// Message prints direction, opcode, length, flags and a preview.
func (t *Terminal) Message(r *plugins.Record) {
	t.event(r.Conn, r.Dir, r.Time, func(b []byte) []byte {
		b = appendOpLen(b, r.Opcode, r.Len)
		flags := len(b)
		for _, f := range []struct {
			on bool
			c  byte
		}{{r.Modified, 'M'}, {r.Dropped, 'D'}, {r.Injected, 'I'}, {r.Compressed, 'Z'}, {r.Decoded != nil, '+'}} {
			if f.on {
				b = append(b, f.c)
			}
		}
		if len(b) > flags {
			b = append(b, ' ')
		}
		p := r.Payload
		if r.Decoded != nil {
			p = r.Decoded
		}
		return appendPreview(b, p, r.Opcode)
	})
}

// appendOpLen appends the opcode and the length in columns, and a space.
func appendOpLen(b []byte, op wsframe.Opcode, n int64) []byte {
	name := op.String()
	b = append(b, name...)
	for i := len(name); i < 7; i++ {
		b = append(b, ' ')
	}
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	for i := len(d); i < 7; i++ {
		b = append(b, ' ')
	}
	b = append(b, d...)
	return append(b, ' ')
}

// event prints one line: time, connection, direction arrow and what fill appends.
func (t *Terminal) event(c *plugins.Conn, dir plugins.Direction, ts time.Time, fill func([]byte) []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.start(ts, c.ID)
	if dir == plugins.ClientToServer {
		b = append(b, "→ "...)
	} else {
		b = append(b, "← "...)
	}
	b = fill(b)
	b = append(b, '\n')
	t.write(b)
	t.buf = b
}

// Closed prints the close code, reason and who closed.
func (t *Terminal) Closed(c *plugins.Conn, ev plugins.CloseEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.start(ev.Time, c.ID)
	b = append(b, "close "...)
	b = strconv.AppendUint(b, uint64(ev.Code), 10)
	if ev.Reason != "" {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, ev.Reason)
	}
	b = append(b, " by "...)
	b = append(b, ev.By...)
	b = append(b, '\n')
	t.write(b)
	t.buf = b
}

// appendPreview shows text as text (control characters as ·) and other payloads as
// hex, cut to previewLen characters.
func appendPreview(b, p []byte, op wsframe.Opcode) []byte {
	if op == wsframe.OpClose {
		code, reason, err := wsframe.ParseClose(p)
		if err == nil {
			b = strconv.AppendUint(b, uint64(code), 10)
			if reason != "" {
				b = append(b, ' ')
				b = strconv.AppendQuote(b, reason)
			}
			return b
		}
	}
	if utf8.Valid(p) && (op == wsframe.OpText || printable(p)) {
		n := 0
		for _, r := range string(p) {
			if n == previewLen {
				return append(b, "…"...)
			}
			if !unicode.IsPrint(r) {
				r = '·'
			}
			b = utf8.AppendRune(b, r)
			n++
		}
		return b
	}
	b = append(b, "hex "...)
	for i, c := range p {
		if 2*i >= previewLen-4 {
			return append(b, "…"...)
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
	}
	return b
}

// printable reports whether p looks like text worth showing as such.
func printable(p []byte) bool {
	for _, r := range string(p) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

var _ plugins.Observer = (*Terminal)(nil)
