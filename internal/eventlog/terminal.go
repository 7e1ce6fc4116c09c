package eventlog

import (
	"io"
	"strconv"
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
// (the preview then shows the decoded form), ! a codec could not decode it (the
// hooks after it skipped it), L larger than the hook limit (the hooks did not see
// it); in sniff mode, m would be modified and d would be dropped by the hooks (a
// dry run). A message held at a breakpoint (the web UI's intercept) has H when it
// arrives, and a second line when its hold ends, with R (released) and E edited,
// T timed out (forwarded unchanged), O out of order (later messages went first),
// or D C: dropped because its connection ended (C). Text from the traffic (payloads, URLs,
// subprotocols, close reasons) is shown with control characters replaced, so it
// cannot drive the terminal.
//
// It is safe for concurrent use. Lines are written on a goroutine of its own; in
// [Live] mode a terminal slower than the traffic never holds the caller up (lines
// past a bound are dropped, and a line says how many). Call Close to flush.
type Terminal struct {
	spool
}

// NewTerminal returns a terminal view writing to w.
func NewTerminal(w io.Writer, mode Mode) *Terminal {
	t := &Terminal{}
	t.start(w, mode, 1<<20, 0, func(b []byte, n int64) []byte {
		b = append(b, "… "...)
		b = strconv.AppendInt(b, n, 10)
		return append(b, " lines not shown: the terminal is slower than the traffic"...)
	})
	return t
}

func start(b []byte, ts time.Time, id string) []byte {
	b = ts.AppendFormat(b, "15:04:05.000")
	b = append(b, ' ')
	b = appendSafe(b, id)
	return append(b, ' ')
}

// Opened prints the connection's URL and negotiated extensions.
func (t *Terminal) Opened(c *plugins.Conn, ts time.Time) {
	t.line(func(b []byte) []byte {
		b = start(b, ts, c.ID)
		b = append(b, "open  "...)
		b = appendSafe(b, urlString(c))
		if c.Subprotocol != "" {
			b = append(b, " protocol="...)
			b = appendSafe(b, c.Subprotocol)
		}
		if c.Extensions != "" {
			b = append(b, " ("...)
			b = appendSafe(b, c.Extensions)
			b = append(b, ')')
		}
		return b
	})
}

// Refused prints the URL and the server's answer to an upgrade that did not
// become a WebSocket.
func (t *Terminal) Refused(c *plugins.Conn, ts time.Time) {
	t.line(func(b []byte) []byte {
		b = start(b, ts, c.ID)
		b = append(b, "refused "...)
		b = appendSafe(b, urlString(c))
		b = append(b, ": "...)
		b = strconv.AppendInt(b, int64(c.Status), 10)
		if c.Reason != "" {
			b = append(b, ' ')
			b = appendSafe(b, c.Reason)
		}
		return b
	})
}

// Message prints direction, opcode, length, flags and a preview.
func (t *Terminal) Message(r *plugins.Record) {
	t.event(r.Conn, r.Dir, r.Time, func(b []byte) []byte {
		b = appendOpLen(b, r.Opcode, r.Len)
		flags := len(b)
		for _, f := range []struct {
			on bool
			c  byte
		}{{r.Modified, 'M'}, {r.Dropped, 'D'}, {r.Injected, 'I'}, {r.Compressed, 'Z'}, {r.Decoded != nil, '+'},
			{r.DecodeError != "", '!'}, {r.WouldModify, 'm'}, {r.WouldDrop, 'd'},
			{!r.Hooked && r.Opcode.IsData() && !r.Injected && !r.ConnClosed, 'L'},
			{r.Held, 'H'}, {r.Released, 'R'}, {r.Edited, 'E'}, {r.TimedOut, 'T'}, {r.OutOfOrder, 'O'}, {r.ConnClosed, 'C'}} {
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
	t.line(func(b []byte) []byte {
		b = start(b, ts, c.ID)
		if dir == plugins.ClientToServer {
			b = append(b, "→ "...)
		} else {
			b = append(b, "← "...)
		}
		return fill(b)
	})
}

// Closed prints the close code, reason and who closed.
func (t *Terminal) Closed(c *plugins.Conn, ev plugins.CloseEvent) {
	t.line(func(b []byte) []byte {
		b = start(b, ev.Time, c.ID)
		b = append(b, "close "...)
		b = strconv.AppendUint(b, uint64(ev.Code), 10)
		if ev.Reason != "" {
			b = append(b, ' ')
			b = strconv.AppendQuote(b, ev.Reason)
		}
		b = append(b, " by "...)
		return append(b, ev.By...)
	})
}

// appendSafe appends text from the traffic with every character that is not
// printable (C0 and C1 controls, which a terminal would obey) replaced by ·.
func appendSafe(b []byte, s string) []byte {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			r = '·'
		}
		b = utf8.AppendRune(b, r)
	}
	return b
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
