// Package hex is the "hex" codec: it decodes hex-encoded payloads for the hooks after
// it and encodes a changed payload again on the way out.
//
//	--hook hex --hook replace:match=foo,with=bar
//	--hook hex --hook 'aes:mode=cbc,key=hex:...'
//
// Decode accepts upper- and lowercase digits and fails on anything else (an odd
// length, spaces, other characters), so non-hex payloads pass on undecoded. Encode
// writes lowercase, or uppercase when the message it replaces was written in
// uppercase, so the app sees the case it uses.
package hex

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "hex",
		Description: "decode hex payloads, re-encode changed ones",
		New:         New,
	})
}

// Codec is the hex codec. It has no options.
type Codec struct{}

// New builds a hex codec; it takes no options.
func New(*plugins.Options) (plugins.Element, error) { return &Codec{}, nil }

// Name returns "hex".
func (*Codec) Name() string { return "hex" }

// Decode decodes m.Payload; anything but an even number of hex digits is an error.
func (*Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	out := make([]byte, hex.DecodedLen(len(m.Payload)))
	if _, err := hex.Decode(out, m.Payload); err != nil {
		return nil, fmt.Errorf("hex: %w", err)
	}
	return out, nil
}

// Encode encodes decoded in the case of m.Payload, the message it replaces.
func (*Codec) Encode(_ context.Context, m *plugins.Message, decoded []byte) ([]byte, error) {
	out := hex.AppendEncode(nil, decoded)
	if upper(m.Payload) {
		for i, b := range out {
			if 'a' <= b && b <= 'f' {
				out[i] = b - 'a' + 'A'
			}
		}
	}
	return out, nil
}

// upper reports whether p has uppercase hex letters and no lowercase ones.
func upper(p []byte) bool {
	up := false
	for _, b := range p {
		switch {
		case 'a' <= b && b <= 'f':
			return false
		case 'A' <= b && b <= 'F':
			up = true
		}
	}
	return up
}

var _ plugins.Codec = (*Codec)(nil)
