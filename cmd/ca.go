package cmd

import (
	"encoding/pem"
	"errors"
	"flag"
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
	warn(stderr, ca.Warnings)
	return ca, nil
}

// warn prints warnings on stderr, one line each.
func warn(stderr io.Writer, warnings []error) {
	for _, w := range warnings {
		fmt.Fprintf(stderr, "wstap: warning: %v\n", w)
	}
}

// caHelp is the help of wstap ca, before the flags of its subcommands.
const caHelp = `Usage:
  wstap ca export [--der] [--out FILE] [--ca-dir DIR]
          print wstap's CA certificate (PEM, or DER with --der), to import it into a
          browser as an authority; it never creates a CA
  wstap ca path [--ca-dir DIR]
          print where the CA certificate is, creating the CA if there is none
`

// caOptions are the flags of wstap ca's subcommands.
type caOptions struct {
	dir, out string
	der      bool
}

// caFlags returns the flag set of wstap ca sub, whose --help prints help.
func caFlags(sub, help string, o *caOptions, stdout io.Writer) *flag.FlagSet {
	fs := newFlagSet("wstap ca "+sub, help, stdout)
	fs.StringVar(&o.dir, "ca-dir", "", "CA directory (default $"+certs.DirEnv+" or the user config dir)")
	if sub == "export" {
		fs.BoolVar(&o.der, "der", false, "write DER instead of PEM")
		fs.StringVar(&o.out, "out", "", "write to `FILE` instead of stdout")
	}
	return fs
}

func runCA(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, caHelp)
		for _, sub := range []string{"export", "path"} {
			printFlags(caFlags(sub, "", &caOptions{}, io.Discard), stdout, "\nFlags of wstap ca "+sub+":\n")
		}
		return exitOK
	}
	if len(args) == 0 || (args[0] != "export" && args[0] != "path") {
		fmt.Fprintf(stderr, "wstap ca: want 'export' or 'path'; run 'wstap ca --help'\n")
		return exitUsage
	}
	sub := args[0]
	var o caOptions
	help := "Usage: wstap ca path [--ca-dir DIR]\n\nPrints where the CA certificate is, creating the CA if there is none.\n"
	if sub == "export" {
		help = "Usage: wstap ca export [--der] [--out FILE] [--ca-dir DIR]\n\n" +
			"Prints wstap's CA certificate, to import it into a browser as an authority.\n" +
			"It never creates a CA: wstap (the proxy) or wstap ca path does.\n"
	}
	fs := caFlags(sub, help, &o, stdout)
	if code := parseFlags(fs, args[1:], stderr); code >= 0 {
		return code
	}
	if sub == "path" {
		ca, err := loadCA(o.dir, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "wstap ca path: %v\n", err)
			return exitError
		}
		fmt.Fprintln(stdout, ca.CertPath())
		return exitOK
	}
	return caExport(o, stdout, stderr)
}

// caExport writes the CA certificate. It reads only the certificate: a key that
// others can read gets a warning (the certificate is public), and a directory
// without a CA is an error, never a new CA (a mistyped --ca-dir would export a
// CA that nothing uses).
func caExport(o caOptions, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap ca export: "+format+"\n", args...)
		return exitError
	}
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = certs.DefaultDir(); err != nil {
			return fail("%v", err)
		}
	}
	cert, warnings, err := certs.LoadCert(dir)
	if errors.Is(err, certs.ErrNoCA) {
		create := "wstap ca path"
		if o.dir != "" {
			create += " --ca-dir " + o.dir
		}
		return fail("no CA in %s; check the directory, or create one there with '%s' (wstap also creates it on its first run)", dir, create)
	}
	if err != nil {
		return fail("%v", err)
	}
	warn(stderr, warnings)
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if o.der {
		data = cert.Raw
	}
	if o.out == "" {
		if _, err := stdout.Write(data); err != nil {
			return fail("%v", err)
		}
		return exitOK
	}
	if err := os.WriteFile(o.out, data, 0o644); err != nil {
		return fail("%v", err)
	}
	return exitOK
}
