package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/har"
	"github.com/wstap/wstap/ui"
)

const openHelp = `Usage: wstap open [flags] FILE

Shows saved traffic in the web UI, read-only, until Ctrl-C. FILE is one of:
  a JSONL event log   written by --log (proxy or sniff)
  a HAR file          wstap's export, or Chrome DevTools' "Save all as HAR"
  a pcap or pcapng    read as "wstap sniff -r FILE --ui" reads it (for sniff's
                      flags, such as --ws-port or --filter, run that instead)
The kind is told from the content, not the name.
`

// fileKind is what kind of saved traffic a file holds.
type fileKind int

const (
	kindJSONL fileKind = iota + 1
	kindHAR
	kindCapture // pcap or pcapng
)

// captureMagics are the first bytes of pcap (both byte orders, micro- and
// nanosecond) and pcapng files.
var captureMagics = [][]byte{
	{0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0xc3, 0xd4},
	{0x4d, 0x3c, 0xb2, 0xa1}, {0xa1, 0xb2, 0x3c, 0x4d},
	{0x0a, 0x0d, 0x0d, 0x0a},
}

// errUnknownKind is the error of a file that is neither an event log, a HAR file
// nor a capture.
var errUnknownKind = errors.New("not a wstap event log, a HAR file or a pcap/pcapng capture")

// detectKind tells what br holds from its first bytes, without consuming them: a
// capture's magic number, or a JSON object whose first key is "log" (HAR) or
// anything else (an event log's first line).
func detectKind(br *bufio.Reader) (fileKind, error) {
	head, _ := br.Peek(4096)
	if len(head) == 0 {
		return 0, errors.New("the file is empty")
	}
	for _, m := range captureMagics {
		if bytes.HasPrefix(head, m) {
			return kindCapture, nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(head, []byte("\xEF\xBB\xBF"))))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, errUnknownKind
	}
	key, err := dec.Token()
	if err != nil {
		return 0, errUnknownKind
	}
	if key == "log" {
		return kindHAR, nil
	}
	return kindJSONL, nil
}

func runOpen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap open", openHelp, stdout)
	uiOpt := uiOptions{addr: defaultUIAddr}
	uiOpt.register(fs, "serve the web UI on `ADDR`, 127.0.0.1:0 for any free port (default "+defaultUIAddr+")")
	var verbose bool
	fs.BoolVar(&verbose, "v", false, "verbose logs")
	pos, code := parseArgs(fs, joinUIArg(args), stderr, 1, "FILE to open")
	if code >= 0 {
		return code
	}
	path := pos[0]
	usageErr := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap open: "+format+"\n", args...)
		return exitUsage
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap open: "+format+"\n", args...)
		return exitError
	}
	if uiOpt.addr == "" {
		uiOpt.addr = defaultUIAddr // --ui=false: open is nothing but the UI
	}
	limit, err := uiOpt.check("--ui", "--ui-history")
	if err != nil {
		return usageErr("%v", err)
	}

	f, err := os.Open(path)
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	kind, err := detectKind(br)
	if err != nil {
		return fail("%s: %v", path, err)
	}
	if kind == kindCapture {
		f.Close()
		// A capture is what sniff reads: the same decoder, the same history.
		sargs := []string{"-r", path, "--ui=" + uiOpt.addr, "--ui-history", uiOpt.history}
		if uiOpt.allowRemote {
			sargs = append(sargs, "--allow-remote")
		}
		if verbose {
			sargs = append(sargs, "-v")
		}
		return runSniff(ctx, sargs, stdout, stderr)
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var store *history.Store
	switch kind {
	case kindJSONL:
		// Payloads evicted past --ui-history are read back from the file itself.
		store = history.New(limit, path)
		if err := eventlog.Replay(br, store); err != nil {
			// What came before the bad line is shown; the rest is not guessed at.
			fmt.Fprintf(stderr, "wstap open: %s: %v; showing the events before it\n", path, err)
		}
	case kindHAR:
		store = history.New(limit, "")
		log, err := har.ReadLog(br)
		if err != nil {
			return fail("%s: %v", path, err)
		}
		feed := eventlog.NewFeeder(store)
		for _, e := range log.Events {
			if err := feed.Feed(e); err != nil {
				return fail("%s: %v", path, err)
			}
		}
		feed.Close()
		if n := log.SkippedEntries; n > 0 {
			fmt.Fprintf(stderr, "wstap open: %s: %d entries that are not WebSocket connections left out\n", path, n)
		}
	}
	st := store.Stats()
	fmt.Fprintf(stderr, "wstap open: %s: %d connections, %d messages and events\n", path, st.Conns, st.Rows)
	if st.Evicted > 0 && !st.LogReadBack {
		fmt.Fprintf(stderr, "wstap open: the payloads of the %d oldest messages are past --ui-history %s and not kept; raise it to see them\n", st.Evicted, uiOpt.history)
	}
	url, wait, err := startUI(ctx, uiOpt, ui.Config{Store: store, Logger: uiLogger(logger),
		Info: ui.Info{Version: version(), Mode: "open", Source: path, ReadOnly: true}})
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stderr, "wstap open: web UI at %s; Ctrl-C stops\n", url)
	wait()
	return exitOK
}
