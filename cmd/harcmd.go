package cmd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/wstap/wstap/internal/har"
)

const harHelp = `Usage: wstap har [flags] FILE.jsonl > FILE.har

Writes the WebSocket connections of a JSONL event log (written by --log, proxy or
sniff; - reads stdin) as a HAR file in Chrome DevTools' format, on stdout or to
--out: DevTools' Network panel imports it, and wstap open shows it. What HAR has
no place for is kept in fields whose names start with _wstap.
`

func runHAR(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap har", harHelp, stdout)
	var out string
	var conns stringsFlag
	fs.StringVar(&out, "out", "", "write the HAR to `FILE` instead of stdout")
	fs.Var(&conns, "conn", "only the connection `ID` (as the log names it: c1, c2, …); repeatable")
	pos, code := parseArgs(fs, args, stderr, 1, "event log to read (FILE.jsonl, or - for stdin)")
	if code >= 0 {
		return code
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap har: "+format+"\n", args...)
		return exitError
	}
	path := pos[0]
	var in io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		br := bufio.NewReader(f)
		if kind, err := detectKind(br); err == nil && kind != kindJSONL {
			hint := "it is a HAR file already"
			if kind == kindCapture {
				hint = "it is a capture: run wstap sniff -r " + path + " --log events.jsonl, then wstap har events.jsonl"
			}
			return fail("%s is not an event log: %s", path, hint)
		}
		in = br
	}
	var w io.Writer = stdout
	var outFile *os.File
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return fail("%v", err)
		}
		outFile = f
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	n, err := har.WriteLog(bw, in, har.Options{Conns: conns, Version: version()})
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = ferr
	}
	if outFile != nil {
		if cerr := outFile.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		return fail("%s: %v", path, err)
	}
	fmt.Fprintf(stderr, "wstap har: %d connections, %d messages\n", n.Connections, n.Messages)
	if n.Skipped > 0 {
		fmt.Fprintf(stderr, "wstap har: %d events left out (lost lines, or events of a connection the log does not open)\n", n.Skipped)
	}
	return exitOK
}
