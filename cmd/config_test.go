package cmd_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrors: a mistake in the config file is a usage error (exit status 2,
// as the same mistake in a flag), in one line that names the file, the line and the
// setting or hook, says what was expected, and names no Go type.
func TestConfigErrors(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv(caEnv, filepath.Join(tmp, "ca"))
	cases := []struct {
		name, yaml string
		want       []string // after the file's name
	}{
		{"hook option missing", "listen: 127.0.0.1:0\nhooks:\n  - log\n  - replace: {dir: c2s}\n",
			[]string{":4: hook 2: ", "replace", "match", "required"}},
		{"unknown plugin", "hooks:\n  - nope\n", []string{":2: hook 1: ", `"nope"`, "replace"}},
		{"hook grammar", "hooks:\n  - 'replace:match=a,'\n", []string{":2: hook 1: ", "trailing comma"}},
		{"hooks not a list", "listen: 127.0.0.1:0\nhooks: replace\n", []string{":2: hooks: want a list", `"replace"`}},
		{"hook options not a mapping", "hooks:\n  - replace: [a, b]\n", []string{":2: hook 1: options of replace: want key: value pairs", "a list"}},
		{"hook option not one value", "hooks:\n  - replace: {match: [a], with: b}\n", []string{":2: hook 1: option match of replace: want one value"}},
		{"two plugins in one hook", "hooks:\n  - replace: {match: a, with: b}\n    log:\n", []string{":2: hook 1: ", "its own \"- \""}},
		{"exec without a command", "hooks:\n  - exec:\n", []string{":2: hook 1: exec: want a command line"}},
		{"bool setting", "quiet: maybe\n", []string{":1: quiet: want true or false", `"maybe"`}},
		{"string setting given a list", "listen: [127.0.0.1:0]\n", []string{":1: listen: want an address", "a list"}},
		{"not a mapping", "- listen\n", []string{":1: want one setting per line"}},
		{"yaml syntax", "listen: 127.0.0.1:0\nhooks: [\n", []string{"(YAML syntax)"}},
		{"setting twice", "quiet: true\nquiet: false\n", []string{":2: quiet is set twice"}},
		{"bad size", "listen: 127.0.0.1:0\nmax_message: 12XB\n", []string{":2: max_message", "12XB", "positive size"}},
		{"bad hook_errors", "listen: 127.0.0.1:0\nhook_errors: maybe\n", []string{":2: hook_errors", "pass or close"}},
		{"bad listen", "listen: 127.0.0.1:99999\n", []string{":1: listen", "0-65535"}},
		{"limits contradict", "listen: 127.0.0.1:0\nmax_hook_message: 2GiB\nmax_message: 1MiB\n",
			[]string{":2: max_hook_message 2GiB is larger than ", ":3: max_message 1MiB"}},
		{"bad show", "listen: 127.0.0.1:0\nshow: [dir=up]\n", []string{":2: show", "dir=up", "c2s"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(tmp, fmt.Sprintf("wstap%d.yaml", i)), tc.yaml)
			code, stdout, stderr := runCmd(t, "--config", path)
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2; stderr:\n%s", code, stdout, stderr)
			}
			oneLine(t, "stderr", stderr)
			if !strings.HasPrefix(stderr, "wstap: "+path) {
				t.Errorf("the error does not start with the file's name:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("the error lacks %q:\n%s", w, stderr)
				}
			}
			for _, leak := range []string{"cmd.", "!!", "[]", "--hook", "yaml: "} {
				if strings.Contains(stderr, leak) {
					t.Errorf("the error says %q, which means nothing to a user:\n%s", leak, stderr)
				}
			}
		})
	}

	// A flag given on the command line is named as the flag, even with a file.
	path := writeFile(t, filepath.Join(tmp, "ok.yaml"), "listen: 127.0.0.1:0\nhooks:\n  - log\n")
	code, _, stderr := runCmd(t, "--config", path, "--max-message", "12XB")
	if code != 2 || !strings.HasPrefix(stderr, `wstap: --max-message "12XB"`) {
		t.Errorf("exit %d; want 2 naming the flag:\n%s", code, stderr)
	}
	code, _, stderr = runCmd(t, "--config", path, "--hook", "replace:dir=c2s")
	if code != 2 || !strings.HasPrefix(stderr, "wstap: --hook: ") || strings.Contains(stderr, path) {
		t.Errorf("exit %d; want 2 naming --hook, which replaced the file's hooks:\n%s", code, stderr)
	}
}
