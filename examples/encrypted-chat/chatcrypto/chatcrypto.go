// Package chatcrypto is the wire format of the encrypted-chat example: every
// WebSocket message is a text message holding
//
//	base64(nonce(12) || AES-256-GCM ciphertext || tag(16))
//
// (standard base64 alphabet, padded) of a JSON object {"user":"...","text":"..."},
// with a fresh random nonce per message. The key is shared by the server and every
// client; the browser page gets it from the server. It is a practice target for
// wstap's codec hooks, not a design for real secrecy.
package chatcrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// DemoKey is the demo key, as hex, that the chat server, the example hooks and the
// tutorial use unless told otherwise. It is public: anything encrypted with it is
// readable by anyone.
const DemoKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// Sizes of the wire format.
const (
	KeySize   = 32 // AES-256
	NonceSize = 12
	TagSize   = 16
)

// Message is what a chat message means.
type Message struct {
	User string `json:"user"`
	Text string `json:"text"`
}

// ParseKey decodes a hex AES-256 key.
func ParseKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("chatcrypto: key is not hex: %w", err)
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("chatcrypto: key has %d bytes, want %d (64 hex digits)", len(k), KeySize)
	}
	return k, nil
}

// Box seals and opens chat payloads with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("chatcrypto: key has %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// NewHex returns a Box for a hex key.
func NewHex(key string) (*Box, error) {
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	return New(k)
}

// Seal encrypts plaintext with a fresh random nonce and returns the wire payload,
// base64(nonce || ciphertext || tag).
func (b *Box) Seal(plaintext []byte) []byte {
	raw := make([]byte, NonceSize, NonceSize+len(plaintext)+TagSize)
	rand.Read(raw) // never fails (crypto/rand panics instead)
	raw = b.aead.Seal(raw, raw, plaintext, nil)
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw)
	return out
}

// ErrNotBase64, ErrTooShort and ErrAuth say why [Box.Open] failed.
var (
	ErrNotBase64 = errors.New("chatcrypto: not base64")
	ErrTooShort  = errors.New("chatcrypto: too short for nonce and tag")
	ErrAuth      = errors.New("chatcrypto: message authentication failed (wrong key or altered ciphertext)")
)

// Open decodes and decrypts a wire payload and returns the plaintext.
func (b *Box) Open(wire []byte) ([]byte, error) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(wire)))
	n, err := base64.StdEncoding.Strict().Decode(raw, wire)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBase64, err)
	}
	raw = raw[:n]
	if len(raw) < NonceSize+TagSize {
		return nil, ErrTooShort
	}
	pt, err := b.aead.Open(nil, raw[:NonceSize], raw[NonceSize:], nil)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// SealMessage encodes m as JSON and seals it.
func (b *Box) SealMessage(m Message) []byte {
	js, err := json.Marshal(m)
	if err != nil {
		panic(err) // two strings always marshal
	}
	return b.Seal(js)
}

// OpenMessage opens a wire payload and parses the JSON message in it. A message
// without a user is an error.
func (b *Box) OpenMessage(wire []byte) (Message, error) {
	pt, err := b.Open(wire)
	if err != nil {
		return Message{}, err
	}
	var m Message
	if err := json.Unmarshal(pt, &m); err != nil {
		return Message{}, fmt.Errorf("chatcrypto: decrypted, but not a JSON chat message: %w", err)
	}
	if m.User == "" {
		return Message{}, errors.New(`chatcrypto: decrypted, but the message has no "user"`)
	}
	return m, nil
}
