//go:build ignore

// chain is wstap-bench's hook chain written as one Go source file, which wstap loads
// with the yaegi interpreter (-sections chains, target "yaegi"):
//
//	wstap --hook ./chain.go
//
// It does the same work as the compiled-in chain
//
//	--hook base64 --hook aes:mode=gcm,key=hex:KEY --hook replace:match=WORD,with=OTHER
//
// in two elements: a codec (NewCodec) that decodes base64(nonce(12) || AES-256-GCM
// ciphertext || tag(16)) and encodes a changed plaintext again with a fresh nonce, and
// a message hook (NewHook) that replaces every match of a regular expression in the
// decoded plaintext. The bench passes the key and the words in the environment:
// WSTAP_BENCH_KEY (64 hex digits), WSTAP_BENCH_MATCH and WSTAP_BENCH_WITH.
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
	"regexp"

	"github.com/wstap/wstap/plugins"
)

type benchCodec struct {
	aead cipher.AEAD
	enc  *base64.Encoding
}

// NewCodec builds the base64 + AES-GCM codec.
func NewCodec() (plugins.Codec, error) {
	key, err := hex.DecodeString(os.Getenv("WSTAP_BENCH_KEY"))
	if err != nil || len(key) != 32 {
		return nil, errors.New("WSTAP_BENCH_KEY: want 64 hex digits (an AES-256 key)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &benchCodec{aead: aead, enc: base64.StdEncoding.Strict()}, nil
}

func (c *benchCodec) Name() string { return "benchcodec" }

// Decode returns the plaintext; an error means the message goes on undecoded.
func (c *benchCodec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	raw := make([]byte, c.enc.DecodedLen(len(m.Payload)))
	n, err := c.enc.Decode(raw, m.Payload)
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	raw = raw[:n]
	ns := c.aead.NonceSize()
	if len(raw) < ns+c.aead.Overhead() {
		return nil, errors.New("too short for nonce and tag")
	}
	plain, err := c.aead.Open(nil, raw[:ns], raw[ns:], nil)
	if err != nil {
		return nil, errors.New("does not decrypt with the key")
	}
	return plain, nil
}

// Encode encrypts a changed plaintext again, with a fresh nonce.
func (c *benchCodec) Encode(_ context.Context, m *plugins.Message, decoded []byte) ([]byte, error) {
	ns := c.aead.NonceSize()
	raw := make([]byte, ns, ns+len(decoded)+c.aead.Overhead())
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	raw = c.aead.Seal(raw, raw[:ns], decoded, nil)
	out := make([]byte, c.enc.EncodedLen(len(raw)))
	c.enc.Encode(out, raw)
	return out, nil
}

type benchReplace struct {
	re   *regexp.Regexp
	with []byte
}

// NewHook builds the replace hook.
func NewHook() (plugins.Hook, error) {
	match := os.Getenv("WSTAP_BENCH_MATCH")
	if match == "" {
		return nil, errors.New("WSTAP_BENCH_MATCH is empty")
	}
	re, err := regexp.Compile(match)
	if err != nil {
		return nil, err
	}
	return &benchReplace{re: re, with: []byte(os.Getenv("WSTAP_BENCH_WITH"))}, nil
}

func (h *benchReplace) Name() string { return "benchreplace" }

// OnMessage replaces every match in the decoded payload.
func (h *benchReplace) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if !h.re.Match(m.Payload) {
		return plugins.Verdict{}, nil
	}
	return plugins.Verdict{Action: plugins.Modify, Payload: h.re.ReplaceAll(m.Payload, h.with)}, nil
}
