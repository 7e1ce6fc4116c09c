// Package chatcodec is a compiled-in wstap plugin, "chat": a codec for the
// encrypted-chat example that decrypts its messages (base64 of AES-256-GCM
// nonce||ciphertext||tag) for the hooks after it and encrypts changed ones again.
//
// A custom build registers it by importing this package for its init function:
//
//	package main
//
//	import (
//		"github.com/wstap/wstap/cmd"
//		_ "github.com/wstap/wstap/examples/custom-build/chatcodec"
//	)
//
//	func main() { cmd.Main() }
//
// and uses it like a built-in plugin:
//
//	go build -o wstap-chat ./examples/custom-build
//	./wstap-chat --hook chat                 # the demo key
//	./wstap-chat --hook chat:key=HEX         # another key, 64 hex digits
package chatcodec

import (
	"context"

	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "chat",
		Description: "decrypt and re-encrypt the encrypted-chat example's messages",
		Options: []plugins.OptionDoc{
			{Name: "key", Usage: "the chat's AES-256 key, 64 hex digits; the default is the chat's public demo key", Default: chatcrypto.DemoKey},
		},
		New: New,
	})
}

// Codec is a configured chat codec. It is safe for concurrent use.
type Codec struct {
	box *chatcrypto.Box
}

// New builds the codec from its options (key).
func New(o *plugins.Options) (plugins.Element, error) {
	box, err := chatcrypto.NewHex(o.String("key", chatcrypto.DemoKey))
	if err != nil {
		return nil, o.Errorf("key", "%v", err)
	}
	return &Codec{box: box}, nil
}

// Name returns "chat".
func (c *Codec) Name() string { return "chat" }

// Decode returns the JSON inside a chat message; an error means the payload is not
// one (not base64, or not encrypted with the key), and it goes on undecoded.
func (c *Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	return c.box.Open(m.Payload)
}

// Encode encrypts changed JSON again, with a fresh random nonce.
func (c *Codec) Encode(_ context.Context, _ *plugins.Message, decoded []byte) ([]byte, error) {
	return c.box.Seal(decoded), nil
}

var _ plugins.Codec = (*Codec)(nil)
