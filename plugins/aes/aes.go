// Package aes is the "aes" codec: it decrypts AES-encrypted payloads for the hooks
// after it and encrypts a changed payload again on the way out. It knows the layouts
// apps commonly use: GCM (default), CBC with PKCS#7 padding and CTR, with the nonce or
// IV either sent in front of the ciphertext (iv=prefix, the default) or fixed.
//
//	--hook 'aes:key=hex:000102030405060708090a0b0c0d0e0f'                 # nonce(12)||ciphertext||tag(16)
//	--hook base64 --hook 'aes:mode=cbc,key=text:0123456789abcdef'         # base64(iv(16)||ciphertext)
//	--hook "aes:mode=ctr,key='base64:AAECAwQFBgcICQoLDA0ODw==',iv=hex:f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
//	--hook 'aes:key=hex:...,ivlen=16,aad=text:v1'                         # GCM with a 16-byte nonce
//
// Byte values (key, a fixed iv, aad) are written hex:..., base64:... or text:....
// Base64 may use either alphabet and may leave out its "=" padding; with the padding,
// quote the value, as every value containing "=" or ",": key='base64:AAEC...Dw=='.
//
// Decode fails (and the message goes on undecoded) when the payload is too short,
// when a GCM tag does not verify (wrong key, other format) or when CBC padding is not
// valid PKCS#7. CTR has no integrity check: with a wrong key it decodes to garbage.
//
// Encode, called when a later hook (or an intercept edit) changed the plaintext, and
// for a new message with no original (an injection, docs/plugins.md), uses a fresh
// random nonce or IV (crypto/rand) in front of the ciphertext with iv=prefix. With a fixed
// iv it reuses that IV, as the app does; for GCM and CTR this repeats a nonce under
// the same key, which is exactly the app's own weakness, not a new one.
package aes

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "aes",
		Description: "decrypt and re-encrypt AES-GCM, AES-CBC (PKCS#7) or AES-CTR payloads",
		Options: []plugins.OptionDoc{
			{Name: "key", Usage: "the AES key, 16, 24 or 32 bytes: hex:..., base64:... or text:... (quote padded base64: key='base64:...==')"},
			{Name: "mode", Usage: "gcm, cbc or ctr", Default: "gcm"},
			{Name: "iv", Usage: "prefix (the nonce/IV precedes the ciphertext), or a fixed IV as hex:... or base64:...", Default: "prefix"},
			{Name: "ivlen", Usage: "GCM nonce length in bytes, for iv=prefix", Default: "12"},
			{Name: "aad", Usage: "GCM additional authenticated data: hex:..., base64:... or text:...", Default: "none"},
		},
		New: New,
	})
}

// Mode is an AES mode of operation.
type Mode uint8

// Modes.
const (
	GCM Mode = iota + 1
	CBC
	CTR
)

// String returns "gcm", "cbc" or "ctr".
func (m Mode) String() string {
	switch m {
	case GCM:
		return "gcm"
	case CBC:
		return "cbc"
	case CTR:
		return "ctr"
	}
	return fmt.Sprintf("mode-%d", uint8(m))
}

// Codec is a configured aes codec. It is safe for concurrent use.
type Codec struct {
	mode  Mode
	block cipher.Block
	aead  cipher.AEAD // GCM only
	iv    []byte      // fixed IV or nonce; nil with iv=prefix
	ivLen int         // length of the IV or nonce
	aad   []byte
}

// New builds an aes codec from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	c := &Codec{}
	switch m := o.String("mode", "gcm"); m {
	case "gcm":
		c.mode = GCM
	case "cbc":
		c.mode = CBC
	case "ctr":
		c.mode = CTR
	default:
		return nil, o.Errorf("mode", "%q, want gcm, cbc or ctr", m)
	}

	keySpec, err := o.Required("key")
	if err != nil {
		return nil, err
	}
	key, err := plugins.ParseBytes(keySpec)
	if err != nil {
		return nil, o.Errorf("key", "%v", err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, o.Errorf("key", "%d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", n)
	}
	if c.block, err = aes.NewCipher(key); err != nil {
		return nil, o.Errorf("key", "%v", err)
	}

	if iv := o.String("iv", "prefix"); iv != "prefix" {
		if !strings.HasPrefix(iv, "hex:") && !strings.HasPrefix(iv, "base64:") {
			return nil, o.Errorf("iv", "%q, want prefix, hex:... or base64:...", iv)
		}
		if c.iv, err = plugins.ParseBytes(iv); err != nil {
			return nil, o.Errorf("iv", "%v", err)
		}
		if len(c.iv) == 0 {
			return nil, o.Errorf("iv", "empty")
		}
	}

	// An empty ivlen or aad means the default, like an absent one.
	ivLen, ivLenSet := 0, false
	if v := o.String("ivlen", ""); v != "" {
		if ivLen, err = strconv.Atoi(v); err != nil {
			return nil, o.Errorf("ivlen", "%q is not an integer", v)
		}
		ivLenSet = true
	}
	switch {
	case ivLenSet && c.mode != GCM:
		return nil, o.Errorf("ivlen", "only for mode=gcm (the %s IV is always %d bytes)", c.mode, aes.BlockSize)
	case ivLenSet && (ivLen < 1 || ivLen > 128):
		return nil, o.Errorf("ivlen", "%d, want 1 to 128 (12 is standard)", ivLen)
	case ivLenSet && c.iv != nil && ivLen != len(c.iv):
		return nil, o.Errorf("ivlen", "%d, but the fixed iv has %d bytes", ivLen, len(c.iv))
	}

	switch c.mode {
	case GCM:
		c.ivLen = 12
		if c.iv != nil {
			c.ivLen = len(c.iv)
		} else if ivLenSet {
			c.ivLen = ivLen
		}
		if c.ivLen == 12 {
			c.aead, err = cipher.NewGCM(c.block)
		} else {
			c.aead, err = cipher.NewGCMWithNonceSize(c.block, c.ivLen)
		}
		if err != nil {
			return nil, o.Errorf("ivlen", "%v", err)
		}
	default:
		c.ivLen = aes.BlockSize
		if c.iv != nil && len(c.iv) != aes.BlockSize {
			return nil, o.Errorf("iv", "%d bytes, want %d for mode=%s", len(c.iv), aes.BlockSize, c.mode)
		}
	}

	if aad := o.String("aad", ""); aad != "" {
		if c.mode != GCM {
			return nil, o.Errorf("aad", "only for mode=gcm")
		}
		if c.aad, err = plugins.ParseBytes(aad); err != nil {
			return nil, o.Errorf("aad", "%v", err)
		}
	}
	return c, nil
}

// Name returns "aes".
func (c *Codec) Name() string { return "aes" }

// Mode returns the codec's mode of operation.
func (c *Codec) Mode() Mode { return c.mode }

// Decode decrypts m.Payload.
func (c *Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	iv, ct := c.iv, m.Payload
	if iv == nil {
		if len(ct) < c.ivLen {
			return nil, fmt.Errorf("aes: %d bytes, shorter than the %d-byte %s", len(ct), c.ivLen, c.ivName())
		}
		iv, ct = ct[:c.ivLen], ct[c.ivLen:]
	}
	switch c.mode {
	case GCM:
		if len(ct) < c.aead.Overhead() {
			return nil, fmt.Errorf("aes: gcm: %d bytes of ciphertext, shorter than the %d-byte tag", len(ct), c.aead.Overhead())
		}
		pt, err := c.aead.Open(nil, iv, ct, c.aad)
		if err != nil {
			return nil, fmt.Errorf("aes: gcm: %w (wrong key, nonce layout or aad, or not encrypted)", err)
		}
		return pt, nil
	case CBC:
		if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
			return nil, fmt.Errorf("aes: cbc: %d bytes of ciphertext, not a positive multiple of %d", len(ct), aes.BlockSize)
		}
		pt := make([]byte, len(ct))
		cipher.NewCBCDecrypter(c.block, iv).CryptBlocks(pt, ct)
		n := int(pt[len(pt)-1])
		if n == 0 || n > aes.BlockSize || !bytes.Equal(pt[len(pt)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
			return nil, errors.New("aes: cbc: bad PKCS#7 padding (wrong key or IV, or not encrypted)")
		}
		return pt[:len(pt)-n], nil
	default: // CTR
		pt := make([]byte, len(ct))
		cipher.NewCTR(c.block, iv).XORKeyStream(pt, ct)
		return pt, nil
	}
}

// Encode encrypts decoded, with a fresh random nonce or IV in front of the
// ciphertext (iv=prefix) or with the fixed IV.
func (c *Codec) Encode(_ context.Context, _ *plugins.Message, decoded []byte) ([]byte, error) {
	var out, iv []byte
	if c.iv != nil {
		iv = c.iv
	} else {
		out = make([]byte, c.ivLen, c.ivLen+len(decoded)+2*aes.BlockSize)
		if _, err := rand.Read(out); err != nil {
			return nil, fmt.Errorf("aes: %s: %w", c.ivName(), err)
		}
		iv = out
	}
	switch c.mode {
	case GCM:
		return c.aead.Seal(out, iv, decoded, c.aad), nil
	case CBC:
		n := aes.BlockSize - len(decoded)%aes.BlockSize
		padded := make([]byte, len(decoded)+n)
		copy(padded, decoded)
		for i := len(decoded); i < len(padded); i++ {
			padded[i] = byte(n)
		}
		cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(padded, padded)
		return append(out, padded...), nil
	default: // CTR
		ct := append(out, make([]byte, len(decoded))...)
		cipher.NewCTR(c.block, iv).XORKeyStream(ct[len(out):], decoded)
		return ct, nil
	}
}

func (c *Codec) ivName() string {
	if c.mode == GCM {
		return "nonce"
	}
	return "IV"
}

var _ plugins.Codec = (*Codec)(nil)
