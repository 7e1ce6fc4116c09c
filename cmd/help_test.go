package cmd_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wstap/wstap/cmd"
)

// TestHelp: every command has --help (and wstap help COMMAND), printed on stdout
// with exit status 0; wstap's own help lists every command.
func TestHelp(t *testing.T) {
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	commands := []string{"wstap [proxy]", "wstap sniff", "wstap open", "wstap har", "wstap ca export", "wstap ca path", "wstap plugins", "wstap version", "wstap help"}
	proxyFlags := []string{"-listen", "-hook", "-show", "-log", "-allow-remote", "-ui", "-ui-history", "-v"}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, append(commands, proxyFlags...)},
		{[]string{"-h"}, append(commands, proxyFlags...)},
		{[]string{"help"}, append(commands, proxyFlags...)},
		{[]string{"-v", "--help"}, commands},
		{[]string{"help", "help"}, commands},
		{[]string{"proxy", "--help"}, append([]string{"Usage: wstap [proxy]", "--show"}, proxyFlags...)},
		{[]string{"help", "proxy"}, proxyFlags},
		{[]string{"sniff", "--help"}, []string{"Usage: wstap sniff", "-r FILE", "-ws-port", "-show", "portrange", "src or dst", "tcp[13]", "names are not resolved"}},
		{[]string{"help", "sniff"}, []string{"Usage: wstap sniff", "-filter"}},
		{[]string{"open", "--help"}, []string{"Usage: wstap open", "JSONL event log", "HAR", "pcapng", "-ui", "-ui-history", "-allow-remote"}},
		{[]string{"help", "open"}, []string{"Usage: wstap open"}},
		{[]string{"har", "--help"}, []string{"Usage: wstap har", "Chrome DevTools", "-out", "-conn"}},
		{[]string{"ca", "--help"}, []string{"wstap ca export", "wstap ca path", "Flags of wstap ca export", "-der", "-out", "-ca-dir", "never creates"}},
		{[]string{"ca", "-h"}, []string{"wstap ca export", "wstap ca path"}},
		{[]string{"help", "ca"}, []string{"wstap ca export", "wstap ca path"}},
		{[]string{"ca", "export", "--help"}, []string{"Usage: wstap ca export", "-der", "-out", "-ca-dir"}},
		{[]string{"help", "ca", "export"}, []string{"Usage: wstap ca export"}},
		{[]string{"ca", "path", "--help"}, []string{"Usage: wstap ca path", "-ca-dir"}},
		{[]string{"plugins", "--help"}, []string{"Usage: wstap plugins", "--hook", "--show"}},
		{[]string{"help", "plugins"}, []string{"Usage: wstap plugins"}},
		{[]string{"version", "--help"}, []string{"Usage: wstap version"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != 0 || stderr != "" {
				t.Errorf("wstap %q: exit %d, stderr %q; want 0 and the help on stdout", tc.args, code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("wstap %q does not mention %q:\n%s", tc.args, w, stdout)
				}
			}
		})
	}
	if _, err := os.Stat(os.Getenv(caEnv)); err == nil {
		t.Errorf("asking for help created the CA directory")
	}

	// Through the binary as a user types it: the overview on stdout, exit 0.
	code, stdout, stderr := runBinary(t, childEnv(), "--help")
	if code != 0 || stderr != "" || !strings.Contains(stdout, "wstap sniff") || !strings.Contains(stdout, "-listen") {
		t.Errorf("wstap --help: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = runBinary(t, childEnv(), "--version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "wstap ") {
		t.Errorf("wstap --version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestUsageExits: usage errors exit with 2 and a one-line error on stderr, whatever
// the command, including help for a command that does not exist.
func TestUsageExits(t *testing.T) {
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	for _, args := range [][]string{
		{"help", "bogus"},
		{"ca", "export", "extra"},
		{"plugins", "extra"},
		{"version", "--colour"},
		{"sniff", "-r"},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 2 || stdout != "" {
			t.Errorf("wstap %q: exit %d, stdout %q; want 2 and nothing on stdout", args, code, stdout)
		}
		oneLine(t, fmt.Sprintf("stderr of wstap %q", args), stderr)
	}
}

// TestDefaultHookLimitFollows: the default --max-hook-message (16 MiB) is lowered
// to a smaller --max-message instead of contradicting it; only a hook limit the
// user chose is an error (TestCLIErrors).
func TestDefaultHookLimitFollows(t *testing.T) {
	t.Setenv(caEnv, filepath.Join(t.TempDir(), "ca"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // accepted settings return at once
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:0", "--quiet", "--max-message", "1MiB"},
		{"sniff", "-r", "../sniff/testdata/ws-plain.pcap", "--quiet", "--max-message", "1MiB"},
	} {
		var stdout, stderr strings.Builder
		if code := cmd.Run(ctx, args, &stdout, &stderr); code != 0 {
			t.Errorf("wstap %q: exit %d:\n%s", args, code, stderr.String())
		}
	}
}
