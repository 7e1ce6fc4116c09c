// Package xor is the "xor" codec: it XORs each payload with a fixed key, repeated
// over the payload from its first byte, for apps that "encrypt" that way. XOR is its
// own inverse, so Decode and Encode are the same operation.
//
//	--hook 'xor:key=hex:5a' --hook replace:match=foo,with=bar
//	--hook base64 --hook 'xor:key=text:secret'
//
// Decode never fails: any payload XORs to something. Put the codec after a layer
// that recognises the format (base64, a tag) or a hook that looks at the result when
// not every message is XORed.
package xor

import (
	"context"
	"crypto/subtle"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "xor",
		Description: "XOR payloads with a repeating key",
		Options: []plugins.OptionDoc{
			{Name: "key", Usage: "the key, at least one byte: hex:..., base64:... or text:..."},
		},
		New: New,
	})
}

// Codec is a configured xor codec.
type Codec struct {
	key []byte
}

// New builds an xor codec from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	key, ok, err := o.Bytes("key")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, o.Errorf("key", "required")
	case len(key) == 0:
		return nil, o.Errorf("key", "empty")
	}
	return &Codec{key: key}, nil
}

// Name returns "xor".
func (c *Codec) Name() string { return "xor" }

// Decode XORs m.Payload with the key.
func (c *Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	return c.xor(m.Payload), nil
}

// Encode XORs decoded with the key.
func (c *Codec) Encode(_ context.Context, _ *plugins.Message, decoded []byte) ([]byte, error) {
	return c.xor(decoded), nil
}

func (c *Codec) xor(p []byte) []byte {
	out := make([]byte, len(p))
	for i := 0; i < len(p); i += len(c.key) {
		subtle.XORBytes(out[i:], p[i:], c.key)
	}
	return out
}

var _ plugins.Codec = (*Codec)(nil)
