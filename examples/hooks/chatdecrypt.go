//go:build ignore

// chatdecrypt is a codec for the encrypted-chat example, loaded as Go source at run
// time (no recompiling wstap):
//
//	wstap --hook ./examples/hooks/chatdecrypt.go
//
// Each chat message is base64(nonce(12) || AES-256-GCM ciphertext || tag(16)) of a
// JSON object. Decode unwraps and decrypts it, so the hooks after it and the event
// log see the JSON; Encode, called only when a later hook changed the JSON,
// encrypts it again with a fresh random nonce. The key is the chat's demo key, or
// the 64 hex digits in the environment variable CHAT_KEY.
//
// wstap interprets this file with yaegi: it may import the standard library and
// github.com/wstap/wstap/plugins (and wsframe). It is a main package exposing a
// constructor: NewCodec here, NewHook for a message hook (a file may have both).
// The build tag keeps `go build ./...` and `go vet ./...` away from it.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/wstap/wstap/plugins"
)

// demoKey is the encrypted-chat example's public demo key.
const demoKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

type chatCodec struct {
	aead cipher.AEAD
}

// NewCodec is the constructor wstap looks up by name.
func NewCodec() (plugins.Codec, error) {
	keyHex := os.Getenv("CHAT_KEY")
	if keyHex == "" {
		keyHex = demoKey
	}
	key, err := hex.DecodeString(keyHex)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("CHAT_KEY: want 64 hex digits (an AES-256 key)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &chatCodec{aead: aead}, nil
}

func (c *chatCodec) Name() string { return "chatdecrypt" }

// Decode returns the JSON inside a chat message; an error means "not a chat
// message" and the message goes on undecoded.
func (c *chatCodec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(string(m.Payload))
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	ns := c.aead.NonceSize()
	if len(raw) < ns+c.aead.Overhead() {
		return nil, errors.New("too short for nonce and tag")
	}
	plain, err := c.aead.Open(nil, raw[:ns], raw[ns:], nil)
	if err != nil {
		return nil, errors.New("does not decrypt with the chat key")
	}
	return plain, nil
}

// Encode encrypts changed JSON again, with a fresh nonce.
func (c *chatCodec) Encode(_ context.Context, m *plugins.Message, decoded []byte) ([]byte, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	raw := c.aead.Seal(nonce, nonce, decoded, nil)
	return []byte(base64.StdEncoding.EncodeToString(raw)), nil
}
