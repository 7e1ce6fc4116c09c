// Package json is the "json" codec: it reformats JSON payloads for the hooks after it
// (pretty-printed by default, so line-based regular expressions and the log tap read
// well), and compacts a changed payload again on the way out.
//
//	--hook json --hook 'replace:match=(?m)^  "admin": false,with=  "admin": true'
//	--hook json:style=compact --hook log
//
// Decode fails on anything that is not one valid JSON value, so other payloads pass
// on undecoded. Strings and numbers keep their exact bytes; only whitespace between
// tokens changes. Encode, called only when a later hook changed the payload, writes
// it compact (json.Compact) whatever the app's original spacing, and fails when the
// hook left invalid JSON: the message then goes on unmodified. To send deliberately
// broken JSON, rewrite the payload with a hook placed before this codec.
package json

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "json",
		Description: "reformat JSON payloads for the hooks after it, compact changed ones",
		Options: []plugins.OptionDoc{
			{Name: "style", Usage: "pretty (indented by two spaces) or compact", Default: "pretty"},
		},
		New: New,
	})
}

// Codec is a configured json codec.
type Codec struct {
	pretty bool
}

// New builds a json codec from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	switch s := o.String("style", "pretty"); s {
	case "pretty":
		return &Codec{pretty: true}, nil
	case "compact":
		return &Codec{}, nil
	default:
		return nil, o.Errorf("style", "%q, want pretty or compact", s)
	}
}

// Name returns "json".
func (c *Codec) Name() string { return "json" }

// Decode reformats m.Payload; invalid JSON is an error.
func (c *Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	if !json.Valid(m.Payload) {
		return nil, errors.New("json: not a valid JSON value")
	}
	var buf bytes.Buffer
	buf.Grow(len(m.Payload) + len(m.Payload)/2)
	var err error
	if c.pretty {
		err = json.Indent(&buf, bytes.TrimSpace(m.Payload), "", "  ")
	} else {
		err = json.Compact(&buf, m.Payload)
	}
	if err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	return buf.Bytes(), nil
}

// Encode compacts decoded; invalid JSON is an error.
func (c *Codec) Encode(_ context.Context, _ *plugins.Message, decoded []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(decoded))
	if err := json.Compact(&buf, decoded); err != nil {
		return nil, fmt.Errorf("json: the changed payload is not valid JSON: %w", err)
	}
	return buf.Bytes(), nil
}

var _ plugins.Codec = (*Codec)(nil)
