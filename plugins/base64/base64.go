// Package base64 is the "base64" codec: it decodes base64 payloads for the hooks after
// it and encodes a changed payload again on the way out. Put it before a codec that
// expects bytes, such as aes, when the app sends its ciphertext as base64 text.
//
//	--hook base64 --hook replace:match=foo,with=bar
//	--hook base64:variant=rawurl --hook 'aes:key=hex:...'
//
// Decoding is strict: a payload that is not canonical base64 of the chosen variant
// (wrong alphabet, wrong or missing padding, non-zero trailing bits) is an error, so
// it passes on undecoded. Line breaks (\r, \n) inside the payload are ignored, as
// encoding/base64 does; a re-encoded payload has none. Short plain words can still be
// valid base64 ("test" is), so put a stricter layer after base64 when that matters.
package base64

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "base64",
		Description: "decode base64 payloads, re-encode changed ones",
		Options: []plugins.OptionDoc{
			{Name: "variant", Usage: "std (RFC 4648 §4, padded), url (§5, padded), rawstd or rawurl (unpadded)", Default: "std"},
		},
		New: New,
	})
}

// Codec is a configured base64 codec.
type Codec struct {
	enc *base64.Encoding
}

// New builds a base64 codec from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	var enc *base64.Encoding
	switch v := o.String("variant", "std"); v {
	case "std":
		enc = base64.StdEncoding
	case "url":
		enc = base64.URLEncoding
	case "rawstd":
		enc = base64.RawStdEncoding
	case "rawurl":
		enc = base64.RawURLEncoding
	default:
		return nil, o.Errorf("variant", "%q, want std, url, rawstd or rawurl", v)
	}
	return &Codec{enc: enc.Strict()}, nil
}

// Name returns "base64".
func (c *Codec) Name() string { return "base64" }

// Decode decodes m.Payload; invalid base64 is an error.
func (c *Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	out := make([]byte, c.enc.DecodedLen(len(m.Payload)))
	n, err := c.enc.Decode(out, m.Payload)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	return out[:n], nil
}

// Encode encodes decoded.
func (c *Codec) Encode(_ context.Context, _ *plugins.Message, decoded []byte) ([]byte, error) {
	return c.enc.AppendEncode(nil, decoded), nil
}

var _ plugins.Codec = (*Codec)(nil)
