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
	"syscall"

	_ "github.com/wstap/wstap/plugins/all" // the built-in plugins
)

// Version is the wstap version; release builds set it with
// -ldflags "-X github.com/wstap/wstap/cmd.Version=v1.2.3".
var Version = "devel"

const usage = `wstap: a WebSocket-first intercepting proxy and passive sniffer.

Usage:
  wstap [proxy] [flags]   run the proxy (the default; wstap proxy --help for flags)
  wstap sniff (-r FILE.pcap[ng] | -i IFACE) [--filter EXPR] [--ws-port N]... [--hook SPEC]... [--log FILE|-]
                          show the WebSocket messages in captured traffic (wstap sniff --help)
  wstap ca export [--der] [--out FILE]
                          print wstap's CA certificate, to trust it in a browser
  wstap ca path           print where the CA certificate is
  wstap plugins           list the built-in plugins and their options
  wstap version           print the version
`

// Main runs the command line in os.Args until it finishes or the process gets
// SIGINT or SIGTERM, and exits with its status.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line is wrong
)

// Run runs the command line args (without the program name) until it finishes or ctx
// is cancelled, writing to stdout and stderr, and returns the exit status: 0 on
// success, 2 for a usage error, 1 for any other failure.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, rest := "proxy", args
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "proxy":
		return runProxy(ctx, rest, stdout, stderr)
	case "sniff":
		return runSniff(ctx, rest, stdout, stderr)
	case "ca":
		return runCA(rest, stdout, stderr)
	case "plugins":
		return runPlugins(rest, stdout, stderr)
	case "version":
		return runVersion(rest, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "wstap: unknown command %q; run 'wstap help' for the list\n", cmd)
	return exitUsage
}

// newFlagSet returns a flag set that reports errors in one line and usage on -h.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage of %s:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns a non-negative exit status when the caller
// should stop (help shown, or a bad flag).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	// Errors go out in one line; the full usage only on -h.
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v; run '%s --help' for the flags\n", fs.Name(), err, fs.Name())
		return exitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage
	}
	return -1
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap version", stderr)
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
