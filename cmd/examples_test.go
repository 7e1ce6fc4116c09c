package cmd_test

// End-to-end tests of the plugin tutorial (docs/plugins.md): the encrypted-chat
// example, wstap and the example hooks in their three styles, all as real processes
// on loopback, started from the repository root as the tutorial's commands are.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
	"github.com/wstap/wstap/internal/tcpdumptest"
	"github.com/wstap/wstap/internal/wstest"
)

// exOtherKey is a key other than the demo key, to check that each hook style can be
// told the key.
const exOtherKey = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100"

// exRaw is a message that is no chat message (not base64): every codec must pass it
// on untouched, with one warning per connection.
const exRaw = "plain text, not base64!"

// exReplace is the tutorial's rewrite, listed after the decrypting codec.
const exReplace = "replace:dir=c2s,match=hello,with=goodbye"

// exStyle is one way to bring the chat codec.
type exStyle struct {
	name   string
	bin    string // "wstap" or "wstap-chat" (the custom build)
	hook   string // --hook for the demo key
	plugin string // the codec's name in logs
	// keyed returns the --hook value and extra environment for another key.
	keyed func(key string) (hook string, env []string)
}

var exStyles = []exStyle{
	{
		name: "gosrc", bin: "wstap", hook: "./examples/hooks/chatdecrypt.go", plugin: "chatdecrypt",
		keyed: func(key string) (string, []string) {
			return "./examples/hooks/chatdecrypt.go", []string{"CHAT_KEY=" + key}
		},
	},
	{
		name: "exec", bin: "wstap", hook: "exec:/usr/bin/python3 examples/hooks/chatdecrypt.py", plugin: "chatdecrypt",
		keyed: func(key string) (string, []string) {
			return "exec:/usr/bin/python3 examples/hooks/chatdecrypt.py", []string{"CHAT_KEY=" + key}
		},
	},
	{
		name: "compiled", bin: "wstap-chat", hook: "chat", plugin: "chat",
		keyed: func(key string) (string, []string) { return "chat:key=" + key, nil },
	},
}

// exEnv holds what every scenario shares: the binaries and the environment.
type exEnv struct {
	root string // the repository root, where the tutorial's commands run
	bins string // directory of wstap, wstap-chat and encrypted-chat
	tmp  string
	env  []string
}

// exSetup builds wstap, the custom build and the chat (one go build) and prepares
// an environment whose CA directory and home are temporary.
func exSetup(t *testing.T) *exEnv {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	e := &exEnv{root: root, tmp: t.TempDir()}
	e.bins = filepath.Join(e.tmp, "bin")
	goCmd := "go"
	if p, err := exec.LookPath("go"); err == nil {
		goCmd = p
	} else if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		goCmd = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, goCmd, "build", "-o", e.bins+"/", "./cmd/wstap", "./examples/custom-build", "./examples/encrypted-chat")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(e.bins, "custom-build"), filepath.Join(e.bins, "wstap-chat")); err != nil {
		t.Fatal(err)
	}
	t.Logf("built wstap, wstap-chat and encrypted-chat in %v", time.Since(start).Round(time.Millisecond))
	home := filepath.Join(e.tmp, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "WSTAP_CA_DIR", "HOME", "XDG_CONFIG_HOME", "CHAT_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy":
			continue
		}
		e.env = append(e.env, kv)
	}
	e.env = append(e.env, "WSTAP_CA_DIR="+filepath.Join(e.tmp, "ca"), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	return e
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// start starts bin (a name in e.bins) with args in the repository root.
func (e *exEnv) start(t *testing.T, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := startProc(t, filepath.Join(e.bins, bin), e.root, append(slices.Clip(e.env), env...), args...)
	p.name = bin
	return p
}

var (
	exChatRE  = regexp.MustCompile(`chat listening on https?://(\S+)/ `)
	exProxyRE = regexp.MustCompile(`proxy listening on (\S+)\n`)
)

// exScenario is one run of the tutorial: the chat server, wstap with hooks, and one
// client through wstap.
type exScenario struct {
	bin      string   // wstap or wstap-chat
	env      []string // extra environment of wstap
	hooks    []string
	flags    []string // more wstap flags
	chatArgs []string // more chat server flags (-key, -tls)
	client   []string // client flags after -client URL -proxy URL
	scheme   string   // ws (default) or wss
}

// exResult is what a scenario's processes printed and logged.
type exResult struct {
	chat, client, wstap string // chat server stdout, client stdout, wstap stderr
	view                string // wstap stdout: the terminal view
	clientCode          int
	events              []map[string]any
}

func (e *exEnv) run(t *testing.T, s exScenario) exResult {
	t.Helper()
	chat := e.start(t, nil, "encrypted-chat", append([]string{"-listen", "127.0.0.1:0"}, s.chatArgs...)...)
	chatAddr := chat.wait(t, chat.stdout, exChatRE)

	logFile := filepath.Join(t.TempDir(), "events.jsonl")
	args := []string{"--listen", "127.0.0.1:0", "--log", logFile}
	for _, h := range s.hooks {
		args = append(args, "--hook", h)
	}
	args = append(args, s.flags...)
	w := e.start(t, s.env, s.bin, args...)
	proxyAddr := w.wait(t, w.stderr, exProxyRE)

	scheme := s.scheme
	if scheme == "" {
		scheme = "ws"
	}
	cargs := append([]string{"-client", scheme + "://" + chatAddr + "/ws", "-proxy", "http://" + proxyAddr, "-timeout", "10s"}, s.client...)
	c := e.start(t, nil, "encrypted-chat", cargs...)
	var r exResult
	r.clientCode = c.finish(t)
	r.client = c.stdout.String() + c.stderr.String()

	if code := w.interrupt(t); code != 0 {
		t.Errorf("%s exited with %d after SIGINT, want 0; stderr:\n%s", s.bin, code, w.stderr)
	}
	chat.interrupt(t)
	r.chat, r.wstap, r.view = chat.stdout.String()+chat.stderr.String(), w.stderr.String(), w.stdout.String()

	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event log line %d is not JSON: %v\n%s", i+1, err, line)
		}
		r.events = append(r.events, ev)
	}
	if t.Failed() || r.clientCode != 0 {
		t.Logf("client:\n%s\nchat server:\n%s\nwstap stderr:\n%s\nwstap stdout:\n%s\nevent log:\n%s", r.client, r.chat, r.wstap, r.view, data)
	}
	if r.clientCode != 0 {
		t.Fatalf("the chat client exited with %d", r.clientCode)
	}
	return r
}

// textMessages returns the text message events in direction dir.
func (r exResult) textMessages(dir string) []map[string]any {
	var out []map[string]any
	for _, ev := range r.events {
		if ev["event"] == "message" && ev["dir"] == dir && ev["opcode"] == "text" {
			out = append(out, ev)
		}
	}
	return out
}

func exStr(ev map[string]any, k string) string { s, _ := ev[k].(string); return s }

// checkDecoded checks a message event that the chat codec decoded: the log shows
// the plaintext JSON as text, and the wire payload is a chat message that opens
// (with key) to that same JSON.
func checkDecoded(t *testing.T, ev map[string]any, key, wantJSON string, modified bool) {
	t.Helper()
	if exStr(ev, "decoded") != wantJSON || exStr(ev, "decoded_encoding") != "text" {
		t.Errorf("event %v: decoded %q (%s), want %q as text", ev, exStr(ev, "decoded"), exStr(ev, "decoded_encoding"), wantJSON)
	}
	if ev["modified"] != modified {
		t.Errorf("event %v: modified %v, want %v", ev, ev["modified"], modified)
	}
	box, err := chatcrypto.NewHex(key)
	if err != nil {
		t.Fatal(err)
	}
	// The logged payload is what went on the wire (re-encrypted when modified).
	if pt, err := box.Open([]byte(exStr(ev, "payload"))); err != nil {
		t.Errorf("event %v: the logged payload does not open as a chat message: %v", ev, err)
	} else if string(pt) != wantJSON {
		t.Errorf("event %v: the logged payload opens to %q, want %q", ev, pt, wantJSON)
	}
}

// needPython3 skips (or, under CI, fails) when /usr/bin/python3 with the
// cryptography package is missing.
func needPython3(t *testing.T) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import cryptography.hazmat.primitives.ciphers.aead").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("the exec example needs /usr/bin/python3 with the cryptography package (Debian: apt-get install python3-cryptography): %v\n%s", err, out)
	wstest.Unavailable(t, "%s", msg)
}

// TestExamplesChat runs the tutorial of docs/plugins.md with each hook style.
func TestExamplesChat(t *testing.T) {
	e := exSetup(t)
	const hello = `{"user":"alice","text":"hello world"}`
	const goodbye = `{"user":"alice","text":"goodbye world"}`

	for _, st := range exStyles {
		t.Run(st.name, func(t *testing.T) {
			if st.name == "exec" {
				needPython3(t)
			}

			// The codec decrypts both directions; a message that is no chat message
			// passes through unchanged, with one warning for the connection.
			t.Run("decode", func(t *testing.T) {
				r := e.run(t, exScenario{bin: st.bin, hooks: []string{st.hook},
					client: []string{"-user", "alice", "-raw", exRaw, "-raw", exRaw, "-send", "hello world"}})
				if !strings.Contains(r.client, "got user=alice text=hello world\n") {
					t.Errorf("the client did not get its message back:\n%s", r.client)
				}
				if !strings.Contains(r.chat, "received user=alice text=hello world\n") {
					t.Errorf("the chat server did not receive the message:\n%s", r.chat)
				}
				// The raw text reached the server unchanged, twice.
				if n := strings.Count(r.chat, `: "`+exRaw+`"`+"\n"); n != 2 {
					t.Errorf("the chat server rejected the raw text %d times, want 2 (it must arrive unchanged):\n%s", n, r.chat)
				}
				c2s, s2c := r.textMessages("c2s"), r.textMessages("s2c")
				if len(c2s) != 3 || len(s2c) != 1 {
					t.Fatalf("%d c2s and %d s2c text messages in the log, want 3 and 1", len(c2s), len(s2c))
				}
				for _, ev := range c2s[:2] {
					if exStr(ev, "payload") != exRaw || exStr(ev, "encoding") != "text" || ev["decoded"] != nil || ev["modified"] != false {
						t.Errorf("raw message event %v: want the raw text, not decoded, not modified", ev)
					}
				}
				checkDecoded(t, c2s[2], chatcrypto.DemoKey, hello, false)
				checkDecoded(t, s2c[0], chatcrypto.DemoKey, hello, false)

				var warnings []string
				for _, line := range strings.Split(r.wstap, "\n") {
					if strings.Contains(line, "cannot decode") {
						warnings = append(warnings, line)
					}
				}
				if len(warnings) != 1 {
					t.Errorf("%d 'cannot decode' warnings in wstap's stderr, want 1 for the connection:\n%s", len(warnings), strings.Join(warnings, "\n"))
				} else if !strings.Contains(warnings[0], "plugin="+st.plugin) || !strings.Contains(warnings[0], "conn=c1") {
					t.Errorf("the warning does not name the plugin %s and the connection c1: %s", st.plugin, warnings[0])
				}
				// The terminal shows the plaintext, flagged '+' (decoded).
				if !strings.Contains(r.view, "+ "+hello+"\n") {
					t.Errorf("wstap's terminal view (stdout) does not show the decoded message %s:\n%s", hello, r.view)
				}
				if !strings.Contains(r.wstap, "hooks:   "+st.plugin+"\n") {
					t.Errorf("wstap's startup block does not list the hook %s:\n%s", st.plugin, r.wstap)
				}
			})

			// replace after the codec rewrites the plaintext; the codec encrypts the
			// result again, and the chat server accepts it.
			t.Run("replace", func(t *testing.T) {
				r := e.run(t, exScenario{bin: st.bin, hooks: []string{st.hook, exReplace},
					client: []string{"-user", "alice", "-send", "hello world"}})
				if !strings.Contains(r.chat, "received user=alice text=goodbye world\n") {
					t.Errorf("the chat server did not receive the rewritten message:\n%s", r.chat)
				}
				if strings.Contains(r.chat, "rejected") {
					t.Errorf("the chat server rejected a message: the rewrite was not validly re-encrypted:\n%s", r.chat)
				}
				if !strings.Contains(r.client, "got user=alice text=goodbye world\n") {
					t.Errorf("the client did not get the rewritten broadcast:\n%s", r.client)
				}
				c2s, s2c := r.textMessages("c2s"), r.textMessages("s2c")
				if len(c2s) != 1 || len(s2c) != 1 {
					t.Fatalf("%d c2s and %d s2c text messages in the log, want 1 and 1", len(c2s), len(s2c))
				}
				checkDecoded(t, c2s[0], chatcrypto.DemoKey, goodbye, true)
				checkDecoded(t, s2c[0], chatcrypto.DemoKey, goodbye, false)
				if !strings.Contains(r.view, "M+ "+goodbye+"\n") {
					t.Errorf("wstap's terminal view (stdout) does not show the rewritten message flagged M+:\n%s", r.view)
				}
			})

			// Another key: the chat's -key, and the hook's CHAT_KEY or key option.
			t.Run("other-key", func(t *testing.T) {
				hook, env := st.keyed(exOtherKey)
				r := e.run(t, exScenario{bin: st.bin, env: env, hooks: []string{hook, exReplace},
					chatArgs: []string{"-key", exOtherKey},
					client:   []string{"-key", exOtherKey, "-user", "alice", "-send", "hello world"}})
				if !strings.Contains(r.chat, "received user=alice text=goodbye world\n") {
					t.Errorf("the chat server did not receive the rewritten message:\n%s", r.chat)
					if len(env) > 0 && st.name == "gosrc" {
						t.Errorf("(%s: does the Go source hook see the process environment? yaegi gives scripts an empty one unless gosrc.Load passes interp.Options{Env: os.Environ()})", env[0])
					}
				}
				c2s := r.textMessages("c2s")
				if len(c2s) != 1 {
					t.Fatalf("%d c2s text messages in the log, want 1", len(c2s))
				}
				checkDecoded(t, c2s[0], exOtherKey, goodbye, true)
			})
		})
	}

	// The custom build lists its plugin with the built-in ones.
	t.Run("plugins-list", func(t *testing.T) {
		p := e.start(t, nil, "wstap-chat", "plugins")
		if code := p.finish(t); code != 0 {
			t.Fatalf("wstap-chat plugins: exit %d\n%s", code, p.stderr)
		}
		out := p.stdout.String()
		for _, want := range []string{"\nchat ", "  key=", chatcrypto.DemoKey, "\nreplace "} {
			if !strings.Contains("\n"+out, want) {
				t.Errorf("wstap-chat plugins lacks %q:\n%s", want, out)
			}
		}
	})

	// wss://: the chat serves TLS with a self-signed certificate; wstap verifies
	// nothing upstream (--upstream-insecure) and the client trusts wstap's CA.
	t.Run("wss", func(t *testing.T) {
		ca := filepath.Join(t.TempDir(), "wstap-ca.pem")
		exp := e.start(t, nil, "wstap-chat", "ca", "export", "--out", ca)
		if code := exp.finish(t); code != 0 {
			t.Fatalf("wstap-chat ca export: exit %d\n%s", code, exp.stderr)
		}
		r := e.run(t, exScenario{bin: "wstap-chat", hooks: []string{"chat", exReplace}, flags: []string{"--upstream-insecure"},
			chatArgs: []string{"-tls"}, scheme: "wss",
			client: []string{"-ca", ca, "-user", "alice", "-send", "hello world"}})
		if !strings.Contains(r.chat, "received user=alice text=goodbye world\n") {
			t.Errorf("the chat server did not receive the rewritten message:\n%s", r.chat)
		}
		c2s := r.textMessages("c2s")
		if len(c2s) != 1 {
			t.Fatalf("%d c2s text messages in the log, want 1", len(c2s))
		}
		checkDecoded(t, c2s[0], chatcrypto.DemoKey, goodbye, true)
		for _, ev := range r.events {
			if ev["event"] == "open" && !strings.HasPrefix(exStr(ev, "url"), "wss://") {
				t.Errorf("open event %v: want a wss:// URL", ev)
			}
		}
	})

	// The codec ordering rule with the built-in codecs, which happen to know this
	// format: base64 is the outer layer, so it comes first.
	t.Run("builtin-order", func(t *testing.T) {
		aes := "aes:key=hex:" + chatcrypto.DemoKey
		r := e.run(t, exScenario{bin: "wstap", hooks: []string{"base64", aes, exReplace},
			client: []string{"-user", "alice", "-send", "hello world"}})
		if !strings.Contains(r.chat, "received user=alice text=goodbye world\n") {
			t.Errorf("the chat server did not receive the rewritten message:\n%s", r.chat)
		}
		c2s := r.textMessages("c2s")
		if len(c2s) != 1 {
			t.Fatalf("%d c2s text messages in the log, want 1", len(c2s))
		}
		checkDecoded(t, c2s[0], chatcrypto.DemoKey, goodbye, true)

		// The other way round aes sees base64 text, which does not decrypt: the
		// message goes on untouched, with a warning, and replace finds no "hello".
		r = e.run(t, exScenario{bin: "wstap", hooks: []string{aes, "base64", exReplace},
			client: []string{"-user", "alice", "-send", "hello world"}})
		if !strings.Contains(r.chat, "received user=alice text=hello world\n") {
			t.Errorf("the chat server did not receive the message unchanged:\n%s", r.chat)
		}
		if !strings.Contains(r.wstap, "cannot decode") || !strings.Contains(r.wstap, "plugin=aes") {
			t.Errorf("no 'cannot decode' warning of aes in wstap's stderr:\n%s", r.wstap)
		}
		for _, ev := range r.textMessages("c2s") {
			if ev["modified"] != false {
				t.Errorf("event %v: modified, want untouched", ev)
			}
		}
	})
}

// TestExamplesChatSniff records the chat's traffic with tcpdump (a client talking
// to the chat server directly, no proxy) and reads the capture back with wstap
// sniff and the chat codec in each hook style: the log shows the plaintext of
// every chat message in both directions, the raw message passes untouched, and a
// replace after the codec changes nothing (sniff hooks are read-only).
func TestExamplesChatSniff(t *testing.T) {
	e := exSetup(t)
	const hello = `{"user":"alice","text":"hello world"}`
	chat := e.start(t, nil, "encrypted-chat", "-listen", "127.0.0.1:0")
	chatAddr := chat.wait(t, chat.stdout, exChatRE)
	_, portStr, _ := strings.Cut(chatAddr, ":")
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("chat address %q: %v", chatAddr, err)
	}
	capture := filepath.Join(t.TempDir(), "chat.pcap")
	rec := tcpdumptest.Start(t, capture, port)
	c := e.start(t, nil, "encrypted-chat", "-client", "ws://"+chatAddr+"/ws", "-timeout", "10s",
		"-user", "alice", "-raw", exRaw, "-send", "hello world")
	if code := c.finish(t); code != 0 || !strings.Contains(c.stdout.String(), "got user=alice text=hello world\n") {
		t.Fatalf("chat client: exit %d\n%s%s", code, c.stdout, c.stderr)
	}
	chat.interrupt(t)
	rec.Stop(t)

	for _, st := range exStyles {
		t.Run(st.name, func(t *testing.T) {
			if st.name == "exec" {
				needPython3(t)
			}
			logFile := filepath.Join(t.TempDir(), "sniff.jsonl")
			w := e.start(t, nil, st.bin, "sniff", "-r", capture, "--log", logFile, "--quiet", "--hook", st.hook, "--hook", exReplace)
			if code := w.finish(t); code != 0 {
				t.Fatalf("%s sniff: exit %d\n%s", st.bin, code, w.stderr)
			}
			data, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			var texts []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if ev["event"] == "open" && ev["mode"] != "sniff" {
					t.Errorf("open event %v: want mode sniff", ev)
				}
				if ev["event"] == "message" && ev["opcode"] == "text" {
					texts = append(texts, ev)
				}
			}
			// The raw text, hello from the client, and hello broadcast back.
			if len(texts) != 3 || texts[0]["dir"] != "c2s" || texts[1]["dir"] != "c2s" || texts[2]["dir"] != "s2c" {
				t.Fatalf("text messages %v: want the raw one and hello from the client, then hello back", texts)
			}
			if exStr(texts[0], "payload") != exRaw || texts[0]["decoded"] != nil {
				t.Errorf("raw message event %v: want the raw text, not decoded", texts[0])
			}
			for _, ev := range texts[1:] {
				checkDecoded(t, ev, chatcrypto.DemoKey, hello, false)
			}
			if !strings.Contains(w.stderr.String(), "read-only") {
				t.Errorf("%s sniff does not say its hooks are read-only:\n%s", st.bin, w.stderr)
			}
		})
	}
}

// TestExamplesDocs checks that the hook specs in the tutorial's commands are the
// ones TestExamplesChat runs.
func TestExamplesDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	// The codec gate's example (gateReplace behind base64) runs in TestCodecGateAndRecord.
	tested := map[string]bool{exReplace: true, "base64": true, "aes:key=hex:" + chatcrypto.DemoKey: true, gateReplace: true}
	for _, st := range exStyles {
		tested[st.hook] = true
		h, _ := st.keyed(exOtherKey)
		tested[strings.ReplaceAll(h, exOtherKey, "$KEY")] = true
	}
	// The commands are the lines of the ```sh blocks.
	var cmds strings.Builder
	inSh := false
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh = true
		case strings.HasPrefix(line, "```"):
			inSh = false
		case inSh:
			cmds.WriteString(line + "\n")
		}
	}
	re := regexp.MustCompile(`--hook (?:'([^']*)'|([^\s'\\]+))`)
	found := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(cmds.String(), -1) {
		spec := m[1] + m[2]
		found[spec] = true
		if !tested[spec] {
			t.Errorf("docs/plugins.md shows --hook %q, which TestExamplesChat does not run", spec)
		}
	}
	for _, st := range exStyles {
		if !found[st.hook] {
			t.Errorf("docs/plugins.md does not show --hook %q", st.hook)
		}
	}
	if !found[exReplace] {
		t.Errorf("docs/plugins.md does not show --hook %q", exReplace)
	}
}
