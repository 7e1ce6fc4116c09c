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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// Version is the wstap version; release builds set it with
// -ldflags "-X github.com/wstap/wstap/cmd.Version=v1.2.3".
var Version = "devel"

const usage = `wstap: a WebSocket-first intercepting proxy and passive sniffer.

Usage:
  wstap version     print the version
  wstap help        print this help

Flags of each command: wstap COMMAND --help.
`

// Main runs the command line in os.Args and exits with its status.
func Main() {
	os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs the command line args (without the program name), writing to stdout and
// stderr, and returns the exit status: 0 on success, 2 for a usage error, 1 for
// any other failure.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version":
		return runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "wstap: unknown command %q; run 'wstap help' for the list\n", args[0])
	return 2
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wstap version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wstap version: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "devel" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(stdout, "wstap %s\n", v)
	return 0
}
