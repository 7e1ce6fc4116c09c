// Package replace is the "replace" plugin: it rewrites the messages that match a
// regular expression (or a literal) by a replacement, on the payload as the codecs
// before it decoded it.
//
//	--hook 'replace:dir=c2s,match="""user"":""a""",with="""user"":""admin"""'
//	--hook 'replace:match=(\d+),with=[$1]'
//	--hook 'replace:hex=true,match=deadbeef,with=00000000,literal=true'
package replace

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"regexp"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "replace",
		Description: "rewrite messages matching a regular expression or literal",
		Options: []plugins.OptionDoc{
			{Name: "match", Usage: "what to find: a Go regular expression (RE2), or bytes with literal=true"},
			{Name: "with", Usage: "the replacement; $1 or ${name} insert regexp groups (not with literal=true)"},
			{Name: "dir", Usage: "c2s, s2c or both", Default: "both"},
			{Name: "literal", Usage: "treat match and with as plain bytes", Default: "false"},
			{Name: "hex", Usage: "match and with are hex-encoded bytes (for binary payloads)", Default: "false"},
			{Name: "opcode", Usage: "text, binary or any", Default: "any"},
		},
		New: New,
	})
}

// Hook is a configured replace plugin.
type Hook struct {
	dir     plugins.Direction // 0: both
	opcode  wsframe.Opcode    // 0: any
	re      *regexp.Regexp    // nil with literal
	literal []byte
	with    []byte
}

// New builds a replace hook from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	h := &Hook{}
	var err error
	if h.dir, err = o.Direction("dir"); err != nil {
		return nil, err
	}
	switch op := o.String("opcode", "any"); op {
	case "any":
	case "text":
		h.opcode = wsframe.OpText
	case "binary":
		h.opcode = wsframe.OpBinary
	default:
		return nil, o.Errorf("opcode", "%q, want text, binary or any", op)
	}
	match, err := o.Required("match")
	if err != nil {
		return nil, err
	}
	with := o.String("with", "")
	literal, err := o.Bool("literal", false)
	if err != nil {
		return nil, err
	}
	isHex, err := o.Bool("hex", false)
	if err != nil {
		return nil, err
	}
	if isHex {
		m, err := hex.DecodeString(match)
		if err != nil {
			return nil, o.Errorf("match", "not hex: %v", err)
		}
		w, err := hex.DecodeString(with)
		if err != nil {
			return nil, o.Errorf("with", "not hex: %v", err)
		}
		match, with = string(m), string(w)
		if !literal {
			match = regexp.QuoteMeta(match)
		}
	}
	h.with = []byte(with)
	if literal {
		h.literal = []byte(match)
		return h, nil
	}
	if h.re, err = regexp.Compile(match); err != nil {
		return nil, o.Errorf("match", "%v", err)
	}
	return h, nil
}

// Name returns "replace".
func (h *Hook) Name() string { return "replace" }

// OnMessage replaces every match in the payload.
func (h *Hook) OnMessage(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if (h.dir != 0 && m.Dir != h.dir) || (h.opcode != 0 && m.Opcode != h.opcode) {
		return plugins.Verdict{}, nil
	}
	var out []byte
	if h.re != nil {
		if !h.re.Match(m.Payload) {
			return plugins.Verdict{}, nil
		}
		out = h.re.ReplaceAll(m.Payload, h.with)
	} else {
		if !bytes.Contains(m.Payload, h.literal) {
			return plugins.Verdict{}, nil
		}
		out = bytes.ReplaceAll(m.Payload, h.literal, h.with)
	}
	if bytes.Equal(out, m.Payload) {
		return plugins.Verdict{}, nil
	}
	return plugins.Verdict{Action: plugins.Modify, Payload: out}, nil
}

// String describes the hook for the startup summary.
func (h *Hook) String() string {
	if h.re != nil {
		return fmt.Sprintf("replace /%s/ with %q", h.re, h.with)
	}
	return fmt.Sprintf("replace %q with %q", h.literal, h.with)
}

var _ plugins.Hook = (*Hook)(nil)
