package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/plugins/load"
)

// readmeBlocks returns the fenced code blocks of README.md with the given info string.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var blocks []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// shellWords splits a command line the way sh does for the quoting README uses:
// '...' verbatim, "..." with \" and \\ escapes, words separated by blanks.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated ' in %q", line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i, inWord = i+1+j, true
		case c == '"':
			inWord = true
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				}
				cur.WriteByte(line[i])
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestReadmeCommands runs every `go run ./cmd/wstap` proxy command of README.md (on
// a free port, with a context that is already cancelled): each must be accepted.
func TestReadmeCommands(t *testing.T) {
	t.Setenv("WSTAP_CA_DIR", filepath.Join(t.TempDir(), "ca"))
	ran := 0
	for _, block := range readmeBlocks(t, "sh") {
		for _, line := range strings.Split(block, "\n") {
			line, comment, _ := strings.Cut(line, "#")
			line, pipe, piped := strings.Cut(line, " | ")
			args := slices.DeleteFunc(shellWords(t, line), func(w string) bool {
				return strings.HasPrefix(w, "2>") || strings.HasPrefix(w, ">") // redirections
			})
			if len(args) < 3 || args[0] != "go" || args[1] != "run" || args[2] != "./cmd/wstap" {
				continue
			}
			args = args[3:]
			ui := false
			for i, a := range args {
				if a == "--ui" { // any free port, not the default one, which may be taken
					args[i], ui = "--ui=127.0.0.1:0", true
				}
			}
			if len(args) > 1 && args[0] == "sniff" && args[1] == "-r" && ui {
				// The UI stays up after the file is read, until Ctrl-C.
				args[2] = filepath.Join("..", args[2])
				ctx, cancel := context.WithCancel(context.Background())
				var stderr wstest.SyncBuffer
				done := make(chan int, 1)
				go func() { done <- Run(ctx, args, &bytes.Buffer{}, &stderr) }()
				wstest.Poll(30*time.Second, func() bool { return strings.Contains(stderr.String(), "stays up until Ctrl-C") })
				cancel()
				if code := <-done; code != 0 || !strings.Contains(stderr.String(), "web UI at http://127.0.0.1:") {
					t.Errorf("README command %q exits %d:\n%s", line, code, stderr.String())
				}
				ran++
				continue
			}
			if len(args) > 1 && args[0] == "sniff" && args[1] == "-r" {
				// A capture shipped in the repository: read it for real (README paths
				// are relative to the repository root; tests run in cmd/).
				args[2] = filepath.Join("..", args[2])
				if piped {
					// "… | grep -c WORD   # N": the view on stdout has N lines with WORD.
					grep := shellWords(t, pipe)
					want, err := strconv.Atoi(strings.TrimSpace(comment))
					if len(grep) != 3 || grep[0] != "grep" || grep[1] != "-c" || err != nil {
						t.Fatalf("README command %q: want '| grep -c WORD   # COUNT'", line+" | "+pipe)
					}
					var stdout, stderr bytes.Buffer
					code := Run(context.Background(), args, &stdout, &stderr)
					n := 0
					for _, l := range strings.Split(stdout.String(), "\n") {
						if strings.Contains(l, grep[2]) {
							n++
						}
					}
					if code != 0 || n != want {
						t.Errorf("README command %q: exit %d, %d lines of stdout with %q, the README says %d:\n%s", line, code, n, grep[2], want, stderr.String())
					}
					ran++
					continue
				}
				var stderr bytes.Buffer
				if code := Run(context.Background(), append(args, "--log", filepath.Join(t.TempDir(), "events.jsonl")), &bytes.Buffer{}, &stderr); code != 0 {
					t.Errorf("README command %q exits %d:\n%s", line, code, stderr.String())
				}
				ran++
				continue
			}
			if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
				continue // ca export, live sniffing: covered by the CLI and capture tests
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var stderr bytes.Buffer
			extra := []string{"--listen", "127.0.0.1:0"}
			if !slices.Contains(args, "--show") {
				extra = append(extra, "--quiet")
			}
			if code := Run(ctx, append(args, extra...), &bytes.Buffer{}, &stderr); code != 0 {
				t.Errorf("README command %q exits %d:\n%s", line, code, stderr.String())
			}
			ran++
		}
	}
	if ran < 5 {
		t.Fatalf("found only %d README proxy commands", ran)
	}
}

// TestReadmeConfig loads the README's YAML example and builds its chain.
func TestReadmeConfig(t *testing.T) {
	blocks := readmeBlocks(t, "yaml")
	if len(blocks) == 0 {
		t.Fatal("README has no yaml example")
	}
	for _, b := range blocks {
		path := filepath.Join(t.TempDir(), "wstap.yaml")
		if err := os.WriteFile(path, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(path)
		if err != nil {
			t.Fatalf("README config: %v\n%s", err, b)
		}
		chain, err := load.Chain(c.Hooks, load.Options{})
		if err != nil {
			t.Fatalf("README config hooks: %v", err)
		}
		names := chain.Names()
		chain.Close()
		if len(names) != len(c.Hooks) || c.Listen == "" {
			t.Fatalf("README config parsed as %+v (hooks %v)", c, names)
		}
	}
}

// TestReadmeEventLog checks the README's event log against the schema the binary
// tests hold the binary to: the example lines parse as events with the documented
// fields, and every field of the schema is documented.
func TestReadmeEventLog(t *testing.T) {
	blocks := readmeBlocks(t, "json")
	if len(blocks) == 0 {
		t.Fatal("README has no json example")
	}
	for _, b := range blocks {
		for _, line := range strings.Split(strings.TrimSpace(b), "\n") {
			ev, err := eventlog.ParseEvent([]byte(line))
			if err != nil {
				t.Fatalf("README event %s: %v", line, err)
			}
			var fields map[string]any
			if err := json.Unmarshal([]byte(line), &fields); err != nil {
				t.Fatal(err)
			}
			for k := range fields {
				if !slices.Contains(SchemaKeys[ev.Event], k) && !slices.Contains(OptionalKeys[ev.Event], k) {
					t.Errorf("README %s event has the field %q, which the schema does not know", ev.Event, k)
				}
			}
			for _, k := range SchemaKeys[ev.Event] {
				if _, ok := fields[k]; !ok {
					t.Errorf("README %s event lacks the field %q", ev.Event, k)
				}
			}
			if ev.Event == "open" {
				if _, err := ev.HTTPRequest(); err != nil {
					t.Errorf("README open event: %v", err)
				}
			}
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for kind, keys := range OptionalKeys {
		for _, k := range append(slices.Clone(SchemaKeys[kind]), keys...) {
			if !bytes.Contains(readme, []byte("`"+k+"`")) {
				t.Errorf("README does not document the %s field `%s`", kind, k)
			}
		}
	}
}

// readmeSection returns the part of README.md from the heading title to the next
// heading of the same or a higher level.
func readmeSection(t *testing.T, readme, title string) string {
	t.Helper()
	i := strings.Index(readme, "\n"+title+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	level := title[:strings.IndexByte(title, ' ')+1] // "## "
	rest := readme[i+len(title)+2:]
	for j := 0; j < len(rest); {
		k := strings.Index(rest[j:], "\n#")
		if k < 0 {
			break
		}
		j += k + 1
		h := rest[j:]
		if n := strings.IndexByte(h, ' '); n > 0 && n+1 <= len(level) && strings.Trim(h[:n], "#") == "" {
			return rest[:j]
		}
	}
	return rest
}

// TestReadmeFlags: every flag of the proxy and of sniff, as their --help lists them,
// has a row in its command's flag table in README.md.
func TestReadmeFlags(t *testing.T) {
	readme := readText(t, "../README.md")
	for _, c := range []struct {
		args    []string
		section string
	}{
		{[]string{"proxy", "--help"}, "### Flags"},
		{[]string{"sniff", "--help"}, "## Sniffing captures: `wstap sniff`"},
	} {
		var help bytes.Buffer
		if code := Run(context.Background(), c.args, &help, &bytes.Buffer{}); code != 0 {
			t.Fatalf("wstap %q: exit %d", c.args, code)
		}
		section := readmeSection(t, readme, c.section)
		flags := regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(help.String(), -1)
		if len(flags) < 10 {
			t.Fatalf("wstap %q lists %d flags:\n%s", c.args, len(flags), help.String())
		}
		for _, f := range flags {
			dash := "--"
			if len(f[1]) == 1 {
				dash = "-"
			}
			if !strings.Contains(section, "\n| `"+dash+f[1]+"`") && !strings.Contains(section, "\n| `"+dash+f[1]+" ") {
				t.Errorf("README's %s table has no row for %s%s", c.section, dash, f[1])
			}
		}
	}
}

// TestDocsLinks: the documents name only Markdown files that exist (relative to
// themselves or to the repository root).
func TestDocsLinks(t *testing.T) {
	mdName := regexp.MustCompile(`[\w./-]+\.md\b`)
	for _, doc := range []string{"../README.md", "../docs/plugins.md", "../sniff/testdata/README.md"} {
		for _, name := range mdName.FindAllString(readText(t, doc), -1) {
			if !fileExists(filepath.Join(filepath.Dir(doc), name)) && !fileExists(filepath.Join("..", name)) {
				t.Errorf("%s refers to %s, which the repository does not have", doc, name)
			}
		}
	}
}

// readText returns the content of the file at path.
func readText(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestTutorialFilesIgnored: the files that following README.md and the plugins
// tutorial creates in the repository root (binaries, logs, the exported CA, a
// capture) are ignored by git, so they are not left untracked.
func TestTutorialFilesIgnored(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	if !fileExists("../.git") {
		t.Skip("not a git checkout")
	}
	created := regexp.MustCompile(`(?:-o|--out|--log|-w|>) ([a-z0-9][\w.-]*)`) // not placeholders such as FILE
	var files []string
	for _, doc := range []string{"../README.md", "../docs/plugins.md"} {
		for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readText(t, doc), -1) {
			for _, line := range strings.Split(block[1], "\n") {
				if strings.HasPrefix(line, "tshark ") { // -o is an option there
					continue
				}
				for _, m := range created.FindAllStringSubmatch(line, -1) {
					if !slices.Contains(files, m[1]) {
						files = append(files, m[1])
					}
				}
			}
		}
	}
	for _, want := range []string{"wstap", "wstap-chat", "events.jsonl", "events.har", "wstap-ca.pem"} {
		if !slices.Contains(files, want) {
			t.Fatalf("found %v in the documents, not %s: the pattern is out of date", files, want)
		}
	}
	for _, f := range files {
		c := exec.Command(git, "check-ignore", "-q", "--no-index", f)
		c.Dir = ".."
		if err := c.Run(); err != nil {
			t.Errorf("%s (created by the documents' commands) is not ignored by .gitignore: %v", f, err)
		}
	}
}
