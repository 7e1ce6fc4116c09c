package hooks_test

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	_ "github.com/wstap/wstap/examples/custom-build/chatcodec"
	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/exechook"
	"github.com/wstap/wstap/plugins/gosrc"
	"github.com/wstap/wstap/wsframe"
)

// otherKey is a non-default key, to check that each style can be told another key.
const otherKey = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100"

// python is the interpreter the exec example is documented with.
const python = "/usr/bin/python3"

// needPython skips (or, under CI, fails) when /usr/bin/python3 with the
// cryptography package (Debian: python3-cryptography) is missing.
func needPython(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import cryptography.hazmat.primitives.ciphers.aead").CombinedOutput()
	if err == nil {
		return
	}
	msg := "the Python example needs " + python + " with the cryptography package (Debian: apt-get install python3-cryptography): " + err.Error() + "\n" + string(out)
	wstest.Unavailable(t, "%s", msg)
}

// loadCodec builds the chat codec in one of the three styles, with key ("" for the
// default).
func loadCodec(t *testing.T, style, key string) plugins.Codec {
	t.Helper()
	switch style {
	case "gosrc":
		t.Setenv("CHAT_KEY", key)
		elems, err := gosrc.Load("chatdecrypt.go")
		if err != nil {
			t.Fatal(err)
		}
		if len(elems) != 1 {
			t.Fatalf("chatdecrypt.go gave %d plugins, want 1 codec", len(elems))
		}
		c, ok := elems[0].(plugins.Codec)
		if !ok {
			t.Fatalf("chatdecrypt.go gave a %T, want a plugins.Codec", elems[0])
		}
		return c
	case "exec":
		needPython(t)
		t.Setenv("CHAT_KEY", key)
		p, err := exechook.Start(python+" chatdecrypt.py", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.(interface{ Close() error }).Close() })
		c, ok := p.(plugins.Codec)
		if !ok {
			t.Fatalf("chatdecrypt.py started as a %T, want a codec (its hello must say \"codec\":true)", p)
		}
		return c
	case "compiled":
		opts := map[string]string{}
		if key != "" {
			opts["key"] = key
		}
		p, err := plugins.New("chat", opts)
		if err != nil {
			t.Fatal(err)
		}
		return p.(plugins.Codec)
	}
	t.Fatalf("unknown style %q", style)
	return nil
}

// TestChatCodecs checks the three example codecs against the chat's own crypto:
// they decrypt what the chat sends, their re-encryptions open in the chat with a
// fresh nonce each time, and they refuse what is not theirs.
func TestChatCodecs(t *testing.T) {
	for _, style := range []string{"gosrc", "exec", "compiled"} {
		for _, key := range []string{"", otherKey} {
			name := style + "/demo-key"
			if key != "" {
				name = style + "/other-key"
			}
			t.Run(name, func(t *testing.T) {
				c := loadCodec(t, style, key)
				wantName := map[string]string{"gosrc": "chatdecrypt", "exec": "chatdecrypt", "compiled": "chat"}[style]
				if c.Name() != wantName {
					t.Errorf("Name() = %q, want %q", c.Name(), wantName)
				}
				k := key
				if k == "" {
					k = chatcrypto.DemoKey
				}
				box, err := chatcrypto.NewHex(k)
				if err != nil {
					t.Fatal(err)
				}
				msg := func(p []byte) *plugins.Message {
					return &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: p}
				}

				wire := box.SealMessage(chatcrypto.Message{User: "alice", Text: "hello ✓"})
				got, err := c.Decode(context.Background(), msg(wire))
				if err != nil {
					if style == "gosrc" && key != "" {
						t.Fatalf("Decode(chat message sealed with CHAT_KEY): %v (the script must see the process environment: yaegi gives scripts an empty one unless gosrc.Load passes interp.Options{Env: os.Environ()})", err)
					}
					t.Fatalf("Decode(chat message): %v", err)
				}
				if want := `{"user":"alice","text":"hello ✓"}`; string(got) != want {
					t.Errorf("Decode = %q, want %q", got, want)
				}

				changed := []byte(`{"user":"alice","text":"goodbye"}`)
				enc1, err := c.Encode(context.Background(), msg(wire), changed)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				enc2, err := c.Encode(context.Background(), msg(wire), changed)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				if bytes.Equal(enc1, enc2) {
					t.Errorf("two encodings of one plaintext are equal (%q): the nonce must be fresh", enc1)
				}
				for _, enc := range [][]byte{enc1, enc2} {
					m, err := box.OpenMessage(enc)
					if err != nil {
						t.Fatalf("the chat cannot open the re-encrypted message %q: %v", enc, err)
					}
					if m.User != "alice" || m.Text != "goodbye" {
						t.Errorf("re-encrypted message opens as %+v", m)
					}
				}

				wrongKey := chatcrypto.DemoKey
				if key == "" {
					wrongKey = otherKey
				}
				wrongBox, _ := chatcrypto.NewHex(wrongKey)
				for _, bad := range []string{
					"plain text, not base64!",
					"aGVsbG8=", // base64, but too short
					string(wrongBox.SealMessage(chatcrypto.Message{User: "mallory", Text: "x"})),
					"",
				} {
					if out, err := c.Decode(context.Background(), msg([]byte(bad))); err == nil {
						t.Errorf("Decode(%q) = %q, want an error", bad, out)
					}
				}
			})
		}
	}
}

// TestChatCodecBadKey checks that a malformed key is refused when the codec is
// built, naming what is wrong.
func TestChatCodecBadKey(t *testing.T) {
	t.Run("gosrc", func(t *testing.T) {
		t.Setenv("CHAT_KEY", "abcd")
		_, err := gosrc.Load("chatdecrypt.go")
		if err == nil || !strings.Contains(err.Error(), "CHAT_KEY") {
			t.Errorf("Load with CHAT_KEY=abcd: %v, want an error naming CHAT_KEY (the script must see the process environment: yaegi gives scripts an empty one unless gosrc.Load passes interp.Options{Env: os.Environ()})", err)
		}
	})
	t.Run("compiled", func(t *testing.T) {
		_, err := plugins.New("chat", map[string]string{"key": "abcd"})
		if err == nil || !strings.Contains(err.Error(), "option key") {
			t.Errorf(`plugins.New("chat", key=abcd): %v, want an error naming the option`, err)
		}
	})
	t.Run("exec", func(t *testing.T) {
		needPython(t)
		t.Setenv("CHAT_KEY", "abcd")
		p, err := exechook.Start(python+" chatdecrypt.py", nil)
		if err == nil {
			p.(interface{ Close() error }).Close()
			t.Fatal("exechook.Start with CHAT_KEY=abcd succeeded, want an error")
		}
	})
}

// TestOriginGuard checks the Go-source example with lifecycle funcs only: it refuses
// upgrades from origins not in ALLOW_ORIGINS and passes every message.
func TestOriginGuard(t *testing.T) {
	t.Run("no origins", func(t *testing.T) {
		t.Setenv("ALLOW_ORIGINS", "")
		if _, err := gosrc.Load("origin.go"); err == nil || !strings.Contains(err.Error(), "ALLOW_ORIGINS") {
			t.Errorf("Load without ALLOW_ORIGINS: %v, want an error naming it", err)
		}
	})
	t.Setenv("ALLOW_ORIGINS", "https://chat.example, http://localhost:8000")
	elems, err := gosrc.Load("origin.go")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := plugins.NewChain(plugins.FailClose, nil, elems...)
	if err != nil {
		t.Fatal(err)
	}
	if names := chain.Names(); len(names) != 1 || names[0] != "origin" {
		t.Errorf("chain %q, want [origin]", names)
	}
	tests := []struct {
		origin string
		refuse bool
	}{
		{"https://chat.example", false},
		{"http://localhost:8000", false},
		{"", false}, // not a browser
		{"https://evil.example", true},
		{"https://chat.example.evil.example", true},
	}
	for _, tc := range tests {
		h := &plugins.Handshake{Request: http.Header{}}
		if tc.origin != "" {
			h.Request.Set("Origin", tc.origin)
		}
		err := chain.Handshake(context.Background(), h)
		if refused := err != nil; refused != tc.refuse {
			t.Errorf("Origin %q: Handshake %v, want refused %v", tc.origin, err, tc.refuse)
		}
	}
	conn := &plugins.Conn{ID: "c1"}
	chain.Opened(context.Background(), conn) // logs "origin: c1 opened, 1 open"
	m := &plugins.Message{Conn: conn, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("hi")}
	if res, err := chain.Run(context.Background(), m); err != nil || res.Action != plugins.Pass {
		t.Errorf("Run: %+v, %v; want pass", res, err)
	}
	chain.Closed(context.Background(), conn, 1000, "")
}
