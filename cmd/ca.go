package cmd

import (
	"fmt"
	"io"
	"os"

	"github.com/wstap/wstap/certs"
)

// loadCA opens the CA in dir (the default directory when empty), creating it on first
// use, and says so on stderr.
func loadCA(dir string, stderr io.Writer) (*certs.CA, error) {
	if dir == "" {
		var err error
		if dir, err = certs.DefaultDir(); err != nil {
			return nil, err
		}
	}
	ca, created, err := certs.LoadOrCreate(dir)
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(stderr, "wstap: created a new CA in %s\n", dir)
	}
	for _, w := range ca.Warnings {
		fmt.Fprintf(stderr, "wstap: warning: %v\n", w)
	}
	return ca, nil
}

func runCA(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "export" && args[0] != "path") {
		fmt.Fprintf(stderr, "wstap ca: want 'export' or 'path'; run 'wstap help'\n")
		return exitUsage
	}
	sub := args[0]
	fs := newFlagSet("wstap ca "+sub, stderr)
	caDir := fs.String("ca-dir", "", "CA directory (default $"+certs.DirEnv+" or the user config dir)")
	der := false
	out := ""
	if sub == "export" {
		fs.BoolVar(&der, "der", false, "write DER instead of PEM")
		fs.StringVar(&out, "out", "", "write to FILE instead of stdout")
	}
	if code := parseFlags(fs, args[1:], stderr); code >= 0 {
		return code
	}
	ca, err := loadCA(*caDir, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "wstap ca: %v\n", err)
		return exitError
	}
	if sub == "path" {
		fmt.Fprintln(stdout, ca.CertPath())
		return exitOK
	}
	data := ca.PEM()
	if der {
		data = ca.DER()
	}
	if out == "" {
		stdout.Write(data)
		return exitOK
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		fmt.Fprintf(stderr, "wstap ca export: %v\n", err)
		return exitError
	}
	return exitOK
}
