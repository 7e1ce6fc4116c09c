// Package cmd is wstap's command-line interface as an importable package, so a custom
// build with compiled-in plugins is a few lines:
//
//	package main
//
//	import (
//		"github.com/wstap/wstap/cmd"
//		_ "example.com/myplugins/decrypt"
//	)
//
//	func main() { cmd.Main() }
package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"

	_ "github.com/wstap/wstap/plugins/all" // the built-in plugins
)

// Version is the wstap version; release builds set it with
// -ldflags "-X github.com/wstap/wstap/cmd.Version=v1.2.3".
var Version = "devel"

// overview is the help of wstap as a whole: `wstap help`, `wstap --help`.
const overview = `wstap: a WebSocket-first intercepting proxy and passive sniffer.

Usage:
  wstap [proxy] [flags]   run the proxy (the default; its flags are below)
  wstap sniff (-r FILE.pcap[ng] | -i IFACE) [flags]
                          show the WebSocket messages in captured traffic
  wstap open FILE         show a saved event log, HAR file or capture in the web UI
  wstap har FILE.jsonl    write an event log's connections as a HAR file
  wstap ca export [--der] [--out FILE]
                          print wstap's CA certificate, to trust it in a browser
  wstap ca path           print where the CA certificate is
  wstap plugins           list the built-in plugins and their options
  wstap version           print the version (also: wstap --version)
  wstap help [COMMAND]    print this help, or a command's (also: wstap COMMAND --help)

The message view goes to stdout, one line per event (to stderr when --log - takes
stdout); the banner, warnings, logs and errors go to stderr.
Exit status: 0 success; 2 a usage error (a flag, a setting of the config file or a
hook spec to fix); 1 any other failure.

`

// Main runs the command line in os.Args until it finishes or the process gets
// SIGINT or SIGTERM, and exits with its status.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses: one rule for every command.
const (
	exitOK    = 0
	exitError = 1 // the command failed at run time (a file, the network, the CA)
	exitUsage = 2 // the command line, the config file or a hook spec is wrong
)

// Run runs the command line args (without the program name) until it finishes or ctx
// is cancelled, writing to stdout and stderr, and returns the exit status: 0 on
// success, 2 for a usage error, 1 for any other failure. Help goes to stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (len(args[0]) > 0 && args[0][0] == '-') {
		if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
			return runVersion(args[1:], stdout, stderr)
		}
		// Plain "wstap [flags]" is the proxy; its help is everyone's.
		return runProxy(ctx, args, stdout, stderr, overview)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "proxy":
		return runProxy(ctx, rest, stdout, stderr, "")
	case "sniff":
		return runSniff(ctx, rest, stdout, stderr)
	case "open":
		return runOpen(ctx, rest, stdout, stderr)
	case "har":
		return runHAR(ctx, rest, stdout, stderr)
	case "ca":
		return runCA(rest, stdout, stderr)
	case "plugins":
		return runPlugins(rest, stdout, stderr)
	case "version":
		return runVersion(rest, stdout, stderr)
	case "help":
		switch {
		case len(rest) == 0:
			return Run(ctx, []string{"--help"}, stdout, stderr)
		case rest[0] == "help":
			fmt.Fprint(stdout, overview)
			return exitOK
		}
		// "wstap help ca export" is "wstap ca export --help".
		return Run(ctx, append(slices.Clone(rest), "--help"), stdout, stderr)
	}
	fmt.Fprintf(stderr, "wstap: unknown command %q; run 'wstap help' for the list\n", cmd)
	return exitUsage
}

// newFlagSet returns a flag set for the command name whose --help prints help and
// then the flags, on stdout.
func newFlagSet(name, help string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(stdout, help)
		printFlags(fs, stdout, "\nFlags:\n")
	}
	return fs
}

// printFlags prints the flags of fs on w after title, or nothing when it has none.
func printFlags(fs *flag.FlagSet, w io.Writer, title string) {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(w, title)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// isHelp reports whether arg asks for help, as the flag package understands it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// parseFlags parses args, which must all be flags; it returns a non-negative exit
// status when the caller should stop (help shown, or a bad flag).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	_, code := parseArgs(fs, args, stderr, 0, "")
	return code
}

// parseArgs parses args, in which flags and n positional arguments (named what,
// for errors) may come in any order, and returns the positional ones; the exit
// status is non-negative when the caller should stop (help shown, or a mistake).
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer, n int, what string) ([]string, int) {
	// Errors go out in one line; the full usage only on -h, on stdout.
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	defer func() { fs.Usage = usage }()
	var pos []string
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			usage()
			return nil, exitOK
		case err != nil:
			fmt.Fprintf(stderr, "%s: %v; run '%s --help' for the flags\n", fs.Name(), err, fs.Name())
			return nil, exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		if len(pos) == n {
			fmt.Fprintf(stderr, "%s: unexpected argument %q; run '%s --help' for the usage\n", fs.Name(), fs.Arg(0), fs.Name())
			return nil, exitUsage
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < n {
		fmt.Fprintf(stderr, "%s: say which %s; run '%s --help' for the usage\n", fs.Name(), what, fs.Name())
		return nil, exitUsage
	}
	return pos, -1
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

const versionHelp = `Usage: wstap version

Prints wstap's version.
`

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap version", versionHelp, stdout)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	fmt.Fprintf(stdout, "wstap %s\n", version())
	return exitOK
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && Version == "devel" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}
