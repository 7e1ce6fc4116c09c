// Package logtap is the "log" plugin: a tap that logs each message as it looks at its
// place in the chain (for instance between two codecs), unlike the --log event log,
// which records the final result.
//
//	--hook base64 --hook log:label=after-base64 --hook aes:...
package logtap

import (
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "log",
		Description: "log each message as it is at this point of the chain",
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

// New builds a log tap from its options; it logs to stderr.
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
	p := m.Payload[:min(len(m.Payload), h.max)]
	payload := strconv.QuoteToASCII(string(p))
	if !utf8.Valid(p) {
		payload = "hex:" + hex.EncodeToString(p)
	}
	h.log.InfoContext(ctx, h.label, "conn", m.Conn.ID, "dir", m.Dir.String(), "seq", m.Seq,
		"opcode", m.Opcode.String(), "len", len(m.Payload), "payload", payload)
	return plugins.Verdict{}, nil
}

var _ plugins.Hook = (*Hook)(nil)
