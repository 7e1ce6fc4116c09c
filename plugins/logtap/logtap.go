// Package logtap is the "log" plugin: a tap that logs each message as it is at its
// place in the chain, for instance between two codecs, to see what one layer
// decoded before the next:
//
//	--hook base64 --hook log:label=after-base64 --hook aes:...
//
// The lines go to wstap's log (standard error, with the other messages of wstap),
// one per message:
//
//	level=INFO msg=after-base64 conn=c1 dir=c2s seq=0 opcode=text len=11 payload="hello world"
//	level=INFO msg=after-base64 conn=c1 dir=s2c seq=0 opcode=binary len=4 hex=00ff10ab
//	level=INFO msg=after-base64 conn=c1 dir=c2s seq=1 opcode=text len=1000 shown=256 payload="aaaa…"
//
// The payload is shown as text when it is valid UTF-8 (quoted once, by the log
// handler, when it needs to be) and as hex otherwise, and cut at max bytes (shown
// then says how many).
//
// The tap does not write to the event log (--log): that records one line per
// message with its final result, after every hook and codec (what was sent, what
// the innermost codec decoded, whether a hook changed or dropped it), in the same
// schema in every mode. A tap shows a message at one point of the chain, which may
// be neither the wire bytes nor the final result, and a chain may hold several taps:
// their lines in the event log would be records of no message.
package logtap

import (
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "log",
		Description: "log each message as it is at this point of the chain to wstap's log (stderr); the event log (--log) records only the final result",
		Options: []plugins.OptionDoc{
			{Name: "dir", Usage: "c2s, s2c or both", Default: "both"},
			{Name: "label", Usage: "a name for this tap in the log", Default: "log"},
			{Name: "max", Usage: "payload bytes to show", Default: "256"},
		},
		New: New,
	})
}

// Hook is a configured log tap.
type Hook struct {
	dir   plugins.Direction
	label string
	max   int
	log   *slog.Logger
}

// New builds a log tap from its options. It logs to stderr until [Hook.SetLogger]
// gives it wstap's logger.
func New(o *plugins.Options) (plugins.Element, error) {
	h := &Hook{label: o.String("label", "log"), log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	var err error
	if h.dir, err = o.Direction("dir"); err != nil {
		return nil, err
	}
	if h.max, err = o.Int("max", 256); err != nil {
		return nil, err
	}
	if h.max < 0 {
		return nil, o.Errorf("max", "must not be negative")
	}
	return h, nil
}

// SetLogger sends the tap's output to l instead of stderr (nil keeps stderr).
func (h *Hook) SetLogger(l *slog.Logger) {
	if l != nil {
		h.log = l
	}
}

// Name returns "log".
func (h *Hook) Name() string { return "log" }

// OnMessage logs m and passes it on.
func (h *Hook) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if h.dir != 0 && m.Dir != h.dir {
		return plugins.Verdict{}, nil
	}
	if !h.log.Enabled(ctx, slog.LevelInfo) {
		return plugins.Verdict{}, nil
	}
	connID := ""
	if m.Conn != nil {
		connID = m.Conn.ID
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs,
		slog.String("conn", connID),
		slog.String("dir", m.Dir.String()),
		slog.Uint64("seq", m.Seq),
		slog.String("opcode", m.Opcode.String()),
		slog.Int("len", len(m.Payload)))
	shown, cut := show(m.Payload, h.max)
	if cut {
		attrs = append(attrs, slog.Int("shown", len(shown)))
	}
	if utf8.Valid(shown) {
		attrs = append(attrs, slog.String("payload", string(shown)))
	} else {
		attrs = append(attrs, slog.String("hex", hex.EncodeToString(shown)))
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, h.label, attrs...)
	return plugins.Verdict{}, nil
}

// show returns the first max bytes of p, and whether that cut p short. A cut does
// not split a UTF-8 sequence: a text payload cut short is still text.
func show(p []byte, max int) (shown []byte, cut bool) {
	if len(p) <= max {
		return p, false
	}
	shown = p[:max]
	// Drop a rune the cut left incomplete (at most UTFMax-1 bytes).
	for i := len(shown) - 1; i >= 0 && i >= len(shown)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(shown[i]) {
			if !utf8.FullRune(shown[i:]) {
				shown = shown[:i]
			}
			break
		}
	}
	return shown, true
}

var _ plugins.Hook = (*Hook)(nil)
