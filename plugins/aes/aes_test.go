package aes_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/aes"
	_ "github.com/wstap/wstap/plugins/base64"
	_ "github.com/wstap/wstap/plugins/replace"
	"github.com/wstap/wstap/wsframe"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// newPlugin builds a plugin from a --hook spec.
func newPlugin(t testing.TB, spec string) (any, error) {
	t.Helper()
	s, err := plugins.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	return plugins.New(s.Name, s.Options)
}

func newCodec(t testing.TB, spec string) plugins.Codec {
	t.Helper()
	p, err := newPlugin(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	return p.(plugins.Codec)
}

func msg(p []byte) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1", Mode: plugins.Proxy}, Dir: plugins.ClientToServer, Opcode: wsframe.OpBinary, Payload: p}
}

// NIST SP 800-38D (the GCM specification's test vectors, gcm-spec.pdf), test cases 1
// to 6: AES-128, 96-bit IVs (1-4), a 64-bit IV (5) and a 480-bit IV (6).
func TestGCMVectors(t *testing.T) {
	const (
		k0   = "00000000000000000000000000000000"
		k1   = "feffe9928665731c6d6a8f9467308308"
		pt64 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
			"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
		pt60 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
			"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
		aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
	)
	tests := []struct {
		name                      string
		key, iv, pt, aad, ct, tag string
	}{
		{name: "case 1", key: k0, iv: "000000000000000000000000", tag: "58e2fccefa7e3061367f1d57a4e7455a"},
		{name: "case 2", key: k0, iv: "000000000000000000000000", pt: "00000000000000000000000000000000",
			ct: "0388dace60b6a392f328c2b971b2fe78", tag: "ab6e47d42cec13bdf53a67b21257bddf"},
		{name: "case 3", key: k1, iv: "cafebabefacedbaddecaf888", pt: pt64,
			ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
				"21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
			tag: "4d5c2af327cd64a62cf35abd2ba6fab4"},
		{name: "case 4", key: k1, iv: "cafebabefacedbaddecaf888", pt: pt60, aad: aad,
			ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
				"21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
			tag: "5bc94fbc3221a5db94fae95ae7121a47"},
		{name: "case 5 (64-bit IV)", key: k1, iv: "cafebabefacedbad", pt: pt60, aad: aad,
			ct: "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423" +
				"73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
			tag: "3612d2e79e3b0785561be14aaca2fccb"},
		{name: "case 6 (480-bit IV)", key: k1, pt: pt60, aad: aad,
			iv: "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728" +
				"c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
			ct: "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7" +
				"01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
			tag: "619cc5aefffe0bfa462af43c1699d050"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iv, pt, sealed := unhex(t, tc.iv), unhex(t, tc.pt), unhex(t, tc.ct+tc.tag)
			aadOpt := ""
			if tc.aad != "" {
				aadOpt = ",aad=hex:" + tc.aad
			}

			// A fixed IV: the payload is ciphertext||tag, and Encode reproduces it.
			fixed := newCodec(t, "aes:key=hex:"+tc.key+",iv=hex:"+tc.iv+aadOpt)
			got, err := fixed.Decode(context.Background(), msg(sealed))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("fixed iv: Decode = %x, %v; want %x", got, err, pt)
			}
			enc, err := fixed.Encode(context.Background(), msg(sealed), pt)
			if err != nil || !bytes.Equal(enc, sealed) {
				t.Fatalf("fixed iv: Encode = %x, %v; want %x", enc, err, sealed)
			}

			// iv=prefix (the default): the payload is nonce||ciphertext||tag.
			prefix := newCodec(t, "aes:key=hex:"+tc.key+",ivlen="+strconv.Itoa(len(iv))+aadOpt)
			got, err = prefix.Decode(context.Background(), msg(cat(iv, sealed)))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("prefix: Decode = %x, %v; want %x", got, err, pt)
			}

			// The aad is authenticated: leaving it out (or adding one) fails.
			other := newCodec(t, "aes:key=hex:"+tc.key+",iv=hex:"+tc.iv+",aad=text:x")
			if tc.aad == "" {
				if _, err := other.Decode(context.Background(), msg(sealed)); err == nil {
					t.Fatal("Decode with an aad the sender did not use succeeded")
				}
			} else if _, err := newCodec(t, "aes:key=hex:"+tc.key+",iv=hex:"+tc.iv).Decode(context.Background(), msg(sealed)); err == nil {
				t.Fatal("Decode without the aad succeeded")
			}
		})
	}
}

// NIST SP 800-38A appendix F: F.2.1 CBC-AES128.Encrypt and F.5.1 CTR-AES128.Encrypt.
func TestSP80038AVectors(t *testing.T) {
	const key = "2b7e151628aed2a6abf7158809cf4f3c"
	pt := unhex(t, "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"+
		"30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710")
	tests := []struct {
		mode, iv, ct string
	}{
		{mode: "cbc", iv: "000102030405060708090a0b0c0d0e0f",
			ct: "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2" +
				"73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7"},
		{mode: "ctr", iv: "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
			ct: "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff" +
				"5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			iv, ct := unhex(t, tc.iv), unhex(t, tc.ct)
			wire := ct
			if tc.mode == "cbc" {
				// The vector has no padding; the codec adds a PKCS#7 block of sixteen
				// 0x10 bytes, which CBC encrypts as E(pad XOR last ciphertext block).
				b, err := aes.NewCipher(unhex(t, key))
				if err != nil {
					t.Fatal(err)
				}
				last := bytes.Repeat([]byte{16}, 16)
				for i := range last {
					last[i] ^= ct[len(ct)-16+i]
				}
				b.Encrypt(last, last)
				wire = cat(ct, last)

				// The bare vector ends in a block whose "padding" is not PKCS#7.
				c := newCodec(t, "aes:mode=cbc,key=hex:"+key+",iv=hex:"+tc.iv)
				if _, err := c.Decode(context.Background(), msg(ct)); err == nil || !strings.Contains(err.Error(), "padding") {
					t.Fatalf("Decode of unpadded vector: %v, want a padding error", err)
				}
			}
			for _, spec := range []string{
				"aes:mode=" + tc.mode + ",key=hex:" + key + ",iv=hex:" + tc.iv,
				// Padded base64 contains "=", so the value is quoted; unpadded works too.
				"aes:mode=" + tc.mode + ",key='base64:" + base64.StdEncoding.EncodeToString(unhex(t, key)) + "',iv='base64:" + base64.StdEncoding.EncodeToString(iv) + "'",
				"aes:mode=" + tc.mode + ",key=base64:" + base64.RawStdEncoding.EncodeToString(unhex(t, key)) + ",iv=base64:" + base64.RawURLEncoding.EncodeToString(iv),
			} {
				c := newCodec(t, spec)
				got, err := c.Decode(context.Background(), msg(wire))
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s: Decode = %x, %v; want %x", spec, got, err, pt)
				}
				enc, err := c.Encode(context.Background(), msg(wire), pt)
				if err != nil || !bytes.Equal(enc, wire) {
					t.Fatalf("%s: Encode = %x, %v; want %x", spec, enc, err, wire)
				}
			}
			prefix := newCodec(t, "aes:mode="+tc.mode+",key=hex:"+key)
			got, err := prefix.Decode(context.Background(), msg(cat(iv, wire)))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("prefix: Decode = %x, %v; want %x", got, err, pt)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	keys := map[int]string{
		16: "text:0123456789abcdef",
		24: "hex:000102030405060708090a0b0c0d0e0f1011121314151617",
		32: "'base64:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "'",
	}
	specs := []string{"mode=gcm", "mode=gcm,aad=text:v1", "mode=gcm,ivlen=16", "mode=gcm,iv=hex:0102030405060708090a0b0c",
		"mode=cbc", "mode=cbc,iv=hex:00112233445566778899aabbccddeeff", "mode=ctr", "mode=ctr,iv=hex:00112233445566778899aabbccddeeff"}
	for _, size := range []int{16, 24, 32} {
		for _, opts := range specs {
			spec := "aes:key=" + keys[size] + "," + opts
			t.Run(spec, func(t *testing.T) {
				c := newCodec(t, spec)
				for _, n := range []int{0, 1, 15, 16, 17, 100} {
					pt := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), 4)[:n]
					a, err := c.Encode(context.Background(), msg(nil), pt)
					if err != nil {
						t.Fatal(err)
					}
					got, err := c.Decode(context.Background(), msg(a))
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("len %d: Decode(Encode) = %q, %v", n, got, err)
					}
					b, _ := c.Encode(context.Background(), msg(nil), pt)
					fixedIV := strings.Contains(opts, "iv=")
					if fixedIV != bytes.Equal(a, b) {
						t.Fatalf("len %d: two encodings equal = %v, want %v (fresh IV per message only with iv=prefix)", n, bytes.Equal(a, b), fixedIV)
					}
				}
			})
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	const key = "hex:000102030405060708090a0b0c0d0e0f"
	const other = "hex:0f0e0d0c0b0a09080706050403020100"
	encode := func(spec string, pt string) []byte {
		b, err := newCodec(t, spec).Encode(context.Background(), msg(nil), []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gcm := encode("aes:key="+key, "hello, world")
	cbc := encode("aes:mode=cbc,key="+key, "hello, world")
	tampered := bytes.Clone(gcm)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name, spec string
		payload    []byte
		wantErr    string
	}{
		{"gcm wrong key", "aes:key=" + other, gcm, "authentication failed"},
		{"gcm tampered tag", "aes:key=" + key, tampered, "authentication failed"},
		{"gcm wrong nonce length", "aes:key=" + key + ",ivlen=16", gcm, "authentication failed"},
		{"gcm plain text", "aes:key=" + key, []byte(`{"type":"chat","text":"not encrypted at all"}`), "authentication failed"},
		{"gcm empty", "aes:key=" + key, nil, "shorter than the 12-byte nonce"},
		{"gcm nonce only", "aes:key=" + key, gcm[:12], "shorter than the 16-byte tag"},
		{"gcm short", "aes:key=" + key, gcm[:27], "shorter than the 16-byte tag"},
		{"gcm fixed iv short", "aes:key=" + key + ",iv=hex:000000000000000000000000", []byte("abc"), "shorter than the 16-byte tag"},
		{"cbc wrong key", "aes:mode=cbc,key=" + other, cbc, "padding"},
		{"cbc short", "aes:mode=cbc,key=" + key, cbc[:10], "shorter than the 16-byte IV"},
		{"cbc IV only", "aes:mode=cbc,key=" + key, cbc[:16], "not a positive multiple of 16"},
		{"cbc ragged", "aes:mode=cbc,key=" + key, cbc[:len(cbc)-1], "not a positive multiple of 16"},
		{"ctr short", "aes:mode=ctr,key=" + key, []byte("0123456789abcde"), "shorter than the 16-byte IV"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newCodec(t, tc.spec).Decode(context.Background(), msg(tc.payload))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Decode = %q, %v; want an error containing %q", got, err, tc.wantErr)
			}
		})
	}
}

// TestCBCPadding checks that every kind of bad PKCS#7 padding is rejected.
func TestCBCPadding(t *testing.T) {
	key := unhex(t, "000102030405060708090a0b0c0d0e0f")
	iv := make([]byte, 16)
	b, _ := aes.NewCipher(key)
	c := newCodec(t, "aes:mode=cbc,key=hex:000102030405060708090a0b0c0d0e0f,iv=hex:00000000000000000000000000000000")
	tests := []struct {
		name  string
		plain string // one block, hex
		ok    bool
	}{
		{"one byte of padding", "41414141414141414141414141414101", true},
		{"full block of padding", "10101010101010101010101010101010", true},
		{"four bytes", "41414141414141414141414104040404", true},
		{"zero", "41414141414141414141414141414100", false},
		{"too large", "41414141414141414141414141414111", false},
		{"inconsistent", "41414141414141414141414104030404", false},
		{"larger than the rest", "414141414141414141414141414141ff", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			block := unhex(t, tc.plain)
			ct := make([]byte, 16)
			cipher.NewCBCEncrypter(b, iv).CryptBlocks(ct, block)
			got, err := c.Decode(context.Background(), msg(ct))
			if tc.ok {
				n := int(block[15])
				if err != nil || !bytes.Equal(got, block[:16-n]) {
					t.Fatalf("Decode = %x, %v; want %x", got, err, block[:16-n])
				}
			} else if err == nil {
				t.Fatalf("Decode = %x, want a padding error", got)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	const key = "key=hex:000102030405060708090a0b0c0d0e0f"
	tests := []struct {
		spec    string
		wantErr string // "" means valid
	}{
		{spec: "aes:" + key},
		{spec: "aes:key=text:0123456789abcdef0123456789abcdef"},
		{spec: "aes:" + key + ",mode=ctr,iv=prefix"},
		{spec: "aes:" + key + ",ivlen=,aad="}, // empty means the default
		{spec: "aes", wantErr: "option key: required"},
		{spec: "aes:key=hex:0001", wantErr: "option key: 2 bytes, want 16, 24 or 32"},
		{spec: "aes:key=text:short", wantErr: "option key: 5 bytes"},
		{spec: "aes:key=000102030405060708090a0b0c0d0e0f", wantErr: "option key: want hex:..., base64:... or text:..."},
		{spec: "aes:key=hex:zz", wantErr: "option key: not hex"},
		{spec: "aes:key=base64:!!", wantErr: "option key: not base64"},
		{spec: "aes:" + key + ",mode=ecb", wantErr: "option mode"},
		{spec: "aes:" + key + ",iv=random", wantErr: "option iv"},
		{spec: "aes:" + key + ",iv=text:0123456789ab", wantErr: "option iv"},
		{spec: "aes:" + key + ",mode=cbc,iv=hex:0001", wantErr: "option iv: 2 bytes, want 16"},
		{spec: "aes:" + key + ",mode=cbc,ivlen=12", wantErr: "option ivlen: only for mode=gcm"},
		{spec: "aes:" + key + ",ivlen=0", wantErr: "option ivlen"},
		{spec: "aes:" + key + ",ivlen=x", wantErr: "option ivlen"},
		{spec: "aes:" + key + ",ivlen=16,iv=hex:000000000000000000000000", wantErr: "option ivlen: 16, but the fixed iv has 12 bytes"},
		{spec: "aes:" + key + ",mode=ctr,aad=text:x", wantErr: "option aad: only for mode=gcm"},
		{spec: "aes:" + key + ",aad=x", wantErr: "option aad"},
		{spec: "aes:" + key + ",nonce=x", wantErr: "unknown option nonce"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			p, err := newPlugin(t, tc.spec)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if name := p.(plugins.Codec).Name(); name != "aes" {
					t.Fatalf("Name() = %q", name)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), "aes") {
				t.Fatalf("error %v does not name the plugin", err)
			}
		})
	}
}

// TestChain runs base64 → aes (GCM, nonce prefix) → replace, the layering of an app
// that sends base64(nonce||ciphertext||tag).
func TestChain(t *testing.T) {
	key := unhex(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	// seal and open are what the app on the other side does, independently of the codec.
	seal := func(nonce, pt string) []byte {
		n := []byte(nonce)
		return []byte(base64.StdEncoding.EncodeToString(gcm.Seal(n, n, []byte(pt), nil)))
	}
	open := func(wire []byte) (nonce, pt string) {
		raw, err := base64.StdEncoding.DecodeString(string(wire))
		if err != nil {
			t.Fatalf("not base64: %q", wire)
		}
		out, err := gcm.Open(nil, raw[:12], raw[12:], nil)
		if err != nil {
			t.Fatalf("does not decrypt with the key: %v", err)
		}
		return string(raw[:12]), string(out)
	}

	b64 := newCodec(t, "base64")
	aesCodec := newCodec(t, "aes:mode=gcm,key=hex:"+hex.EncodeToString(key))
	p, err := plugins.New("replace", map[string]string{"match": `"role":"user"`, "with": `"role":"admin"`})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := plugins.NewChain(plugins.FailOpen, nil, b64, aesCodec, p)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		wire         []byte
		wantAction   plugins.Action
		wantDecoded  string // "" means no codec decoded it
		wantPlain    string // the plaintext the server gets, for Modify
		wantDeclined string // the codec that could not decode it
	}{
		{name: "rewritten", wire: seal("nonce-123456", `{"name":"eve","role":"user"}`),
			wantAction: plugins.Modify, wantDecoded: `{"name":"eve","role":"admin"}`, wantPlain: `{"name":"eve","role":"admin"}`},
		{name: "decoded, unchanged", wire: seal("nonce-abcdef", `{"name":"eve","role":"guest"}`),
			wantAction: plugins.Pass, wantDecoded: `{"name":"eve","role":"guest"}`},
		// A codec that cannot decode a message gates the hooks after it: replace was
		// written for the plaintext, so it must not rewrite what only looks like it.
		{name: "not base64", wire: []byte(`{"role":"user"}`), wantAction: plugins.Pass, wantDeclined: "base64"},
		{name: "base64 but not encrypted", wire: []byte(base64.StdEncoding.EncodeToString([]byte(`{"role":"user"}`))),
			wantAction: plugins.Pass, wantDecoded: `{"role":"user"}`, wantDeclined: "aes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(bytes.Clone(tc.wire))
			m.Opcode = wsframe.OpText
			res, err := chain.Run(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Payload, tc.wire) {
				t.Fatalf("Run changed m.Payload to %q", m.Payload)
			}
			if string(res.Decoded) != tc.wantDecoded {
				t.Fatalf("Decoded = %q, want %q", res.Decoded, tc.wantDecoded)
			}
			if res.Action != tc.wantAction {
				t.Fatalf("Action = %v, want %v", res.Action, tc.wantAction)
			}
			if res.DecodeError != tc.wantDeclined {
				t.Fatalf("DecodeError = %q, want %q", res.DecodeError, tc.wantDeclined)
			}
			switch tc.name {
			case "rewritten":
				nonce, pt := open(res.Payload)
				if pt != tc.wantPlain {
					t.Fatalf("the server decrypts %q, want %q", pt, tc.wantPlain)
				}
				if nonce == "nonce-123456" {
					t.Fatal("the re-encrypted message reuses the original nonce")
				}
			case "decoded, unchanged":
				if res.Payload != nil {
					t.Fatalf("Payload = %q for an unchanged message: its original bytes must go out", res.Payload)
				}
			case "not base64", "base64 but not encrypted":
				if res.Payload != nil {
					t.Fatalf("Payload = %q for a message no hook may change", res.Payload)
				}
			}
		})
	}
}
