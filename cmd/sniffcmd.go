package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/net/bpf"
	"golang.org/x/term"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/load"
	"github.com/wstap/wstap/sniff"
	"github.com/wstap/wstap/sniff/capture"
	"github.com/wstap/wstap/ui"
	"github.com/wstap/wstap/wsframe"
)

// openCapture opens a live capture with the capture package. Closing the source
// (as sniff.Sniffer.Run does when its context ends) wakes a blocked read.
func openCapture(iface, filter string) (sniff.Source, error) {
	h, err := capture.Open(context.Background(), iface, filter, 0)
	if err != nil {
		return nil, err
	}
	return sniff.SourceFunc(func() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
		data, ci, err := h.ReadPacket()
		return data, ci, h.LinkType(), err
	}).WithClose(h.Close), nil
}

// filterPackets filters the packets of a capture file with the capture package's
// BPF program, run in golang.org/x/net/bpf's VM. The program reads Ethernet
// frames: packets of other link types are an error.
func filterPackets(src sniff.Source, filter string) (sniff.Source, error) {
	insns, err := capture.Compile(filter, 0)
	if err != nil {
		return nil, err
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", filter, err)
	}
	return sniff.SourceFunc(func() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
		for {
			data, ci, lt, err := src.ReadPacket()
			if err != nil {
				return data, ci, lt, err
			}
			if lt != layers.LinkTypeEthernet {
				return nil, ci, lt, fmt.Errorf("--filter works on Ethernet captures; this one is %s", lt)
			}
			if n, err := vm.Run(data); err == nil && n > 0 {
				return data, ci, lt, nil
			}
		}
	}).WithClose(src.Close), nil
}

// progressMin is the smallest capture file that gets a progress bar.
const progressMin = 4 << 20

// portsFlag is a repeatable TCP port flag.
type portsFlag []uint16

func (p *portsFlag) String() string {
	var s []string
	for _, v := range *p {
		s = append(s, strconv.Itoa(int(v)))
	}
	return strings.Join(s, " ")
}

func (p *portsFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("want a TCP port 1..65535, not %q", v)
	}
	*p = append(*p, uint16(n))
	return nil
}

// sniffHelp is sniff's --help, before its flags.
const sniffHelp = `Usage: wstap sniff (-r FILE.pcap[ng] | -i IFACE) [flags]

Finds the WebSocket connections in a capture file or on a live interface and shows
their messages on stdout, one line each (--log writes them as JSON lines; --show
narrows the view); the summary, warnings and logs go to stderr. A capture cannot be
changed: hooks run as a dry run, and the log says what they would change.

--filter takes a subset of tcpdump's syntax (pcap-filter(7)):
  host ADDR, net ADDR/LEN, port N, portrange LO-HI
              optionally after src, dst, "src or dst" or "src and dst", and after
              a protocol: ip, ip6 or arp for host and net, tcp, udp or sctp for
              port and portrange (tcp port 8000, src host 10.0.0.5)
  ip, ip6, tcp, udp, sctp, icmp, icmp6, arp
              alone: the protocol
  and (&&), or (||), not (!), ( )
              "and" and "or" have equal precedence, left to right: use parentheses
  port 80 or 443
              a bare value repeats the qualifiers before it
Addresses are literals (names are not resolved) and ports numbers; byte offsets
(tcp[13]), bit masks (&), len, ether and vlan are not supported. With -r, --filter
needs an Ethernet capture.
`

func runSniff(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap sniff", sniffHelp, stdout)
	var file, iface, filter, logPath, maxMessage, maxHook string
	var ports portsFlag
	var hooks, show stringsFlag
	var view, quiet, verbose, everyControl bool
	fs.StringVar(&file, "r", "", "read packets from a pcap or pcapng `FILE`")
	fs.StringVar(&iface, "i", "", "capture packets live on interface `IFACE`")
	fs.StringVar(&filter, "filter", "", "only packets matching the tcpdump filter `EXPR` (the subset above)")
	fs.Var(&ports, "ws-port", "treat TCP `PORT` as WebSocket even without a handshake in the capture; repeatable")
	fs.Var(&hooks, "hook", "hook `SPEC`: NAME[:key=value,...], a .go file or exec:COMMAND; repeat in chain order (a dry run: what they would change is logged)")
	fs.Var(&show, "show", "show only the view's events matching `RULE`: dir=, opcode=, match=REGEXP, url=GLOB, conn=ID, joined by commas; repeat for any of several (implies --view)")
	fs.StringVar(&logPath, "log", "", "write the JSONL event log to `FILE` (- for stdout; the view then goes to stderr)")
	fs.BoolVar(&view, "view", false, "print every event on stdout (the default without --log)")
	fs.BoolVar(&quiet, "quiet", false, "print no events, only the summary")
	fs.BoolVar(&everyControl, "every-control", false, "log every ping and pong (by default, past 5 a second of capture time per direction, they are counted)")
	fs.StringVar(&maxMessage, "max-message", "64MiB", "largest message decoded; larger ones are skipped and reported")
	fs.StringVar(&maxHook, "max-hook-message", "16MiB", "largest message passed to hooks and logged whole (at most --max-message)")
	var uiOpt uiOptions
	uiOpt.register(fs, uiFlagHelp+"; read-only. With -r, it stays up after the file is read, until Ctrl-C")
	fs.BoolVar(&verbose, "v", false, "verbose logs")
	if code := parseFlags(fs, joinUIArg(args), stderr); code >= 0 {
		return code
	}
	usageErr := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap sniff: "+format+"\n", args...)
		return exitUsage
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap sniff: "+format+"\n", args...)
		return exitError
	}
	switch {
	case file == "" && iface == "":
		return usageErr("say where packets come from: -r FILE.pcap[ng] or -i IFACE")
	case file != "" && iface != "":
		return usageErr("-r and -i exclude each other")
	}
	if filter != "" {
		// Compiled here too, so that a wrong expression is a usage error before
		// anything is opened.
		if _, err := capture.Compile(filter, 0); err != nil {
			return usageErr("--filter: %v; run 'wstap sniff --help' for the syntax", err)
		}
	}
	rules, err := parseShowRules(show)
	if err != nil {
		return usageErr("--show %v", err)
	}
	if len(rules) > 0 {
		if quiet {
			return usageErr("--show narrows the terminal view, which --quiet turns off; drop one of them")
		}
		view = true
	}
	uiLimit, err := uiOpt.check("--ui", "--ui-history")
	if err != nil {
		return usageErr("%v", err)
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := sniff.Config{WSPorts: ports, Logger: logger, ControlBurst: plugins.DefaultControlBurst}
	if everyControl {
		cfg.ControlBurst = 0
	}
	maxMsg, err := parseSize("--max-message", maxMessage)
	if err != nil {
		return usageErr("%v", err)
	}
	cfg.Limits = wsframe.Limits{MaxMessageSize: maxMsg}
	if cfg.MaxHookMessage, err = parseSize("--max-hook-message", maxHook); err != nil {
		return usageErr("%v", err)
	}
	if cfg.MaxHookMessage, err = hookLimit(cfg.MaxHookMessage, maxMsg, flagGiven(fs, "max-hook-message"),
		"--max-hook-message "+maxHook, "--max-message "+maxMessage); err != nil {
		return usageErr("%v", err)
	}
	var specs []plugins.Spec
	for _, h := range hooks {
		s, err := plugins.ParseSpec(h)
		if err != nil {
			return usageErr("--hook: %v", err)
		}
		specs = append(specs, s)
	}
	chain, err := load.Chain(specs, load.Options{Policy: plugins.FailOpen, Logger: logger})
	if err != nil {
		return usageErr("--hook: %v", err)
	}
	defer chain.Close()
	names := chain.Names()
	cfg.Chain = chain

	// The packet source.
	var src sniff.Source
	var fileSrc *sniff.FileSource
	if iface != "" {
		if src, err = openCapture(iface, filter); err != nil {
			return fail("-i %s: %v", iface, err)
		}
	} else {
		if fileSrc, err = sniff.OpenFile(file); err != nil {
			return fail("%s", strings.TrimPrefix(err.Error(), "sniff: "))
		}
		src = fileSrc
		if filter != "" {
			if src, err = filterPackets(fileSrc, filter); err != nil {
				fileSrc.Close()
				return fail("--filter: %v", err)
			}
		}
	}
	defer src.Close()

	// Where events go.
	var jsonl *eventlog.JSONL
	switch logPath {
	case "":
	case "-":
		jsonl = eventlog.NewJSONL(stdout, eventlog.Block)
	default:
		f, last, err := eventlog.OpenFile(logPath) // appends; ids continue after the file's
		if err != nil {
			return fail("--log: %v", err)
		}
		defer f.Close()
		cfg.LastConnID = last
		jsonl = eventlog.NewJSONL(f, eventlog.Block)
	}
	if jsonl != nil {
		cfg.Observers = append(cfg.Observers, jsonl)
	}
	// The view is on by default only when nothing else shows the events.
	showView := !quiet && (view || logPath == "" && uiOpt.addr == "")
	var term *eventlog.Terminal
	// The view is the command's output, on stdout as tcpdump's; --log - takes
	// stdout for the JSON lines, and then the view goes to stderr.
	viewOut := stdout
	if logPath == "-" {
		viewOut = stderr
	}
	if showView {
		term = eventlog.NewTerminal(viewOut, eventlog.Block)
		cfg.Observers = append(cfg.Observers, newShowView(term, rules))
	}
	if len(names) > 0 {
		fmt.Fprintf(stderr, "wstap sniff: hooks (read-only, a dry run): %s\n", strings.Join(names, " → "))
	}
	if uiOpt.addr != "" {
		// The capture feeds the history directly: a capture can wait, and then
		// no message is left out.
		store := newStore(uiLimit, logPath)
		cfg.Observers = append(cfg.Observers, store)
		source := file
		if iface != "" {
			source = iface
		}
		url, wait, err := startUI(ctx, uiOpt, ui.Config{Store: store, Logger: uiLogger(logger),
			Info: ui.Info{Version: version(), Mode: "sniff", Source: source, ReadOnly: true}})
		if err != nil {
			return fail("%v", err)
		}
		defer wait()
		fmt.Fprintf(stderr, "wstap sniff: web UI at %s\n", url)
	}

	// A progress bar for a large file when nothing else writes to the terminal.
	stopProgress := func() {}
	if fileSrc != nil && !(showView && isTerminal(viewOut)) && fileSrc.Size() > progressMin && isTerminal(stderr) {
		stopProgress = progress(stderr, fileSrc, file)
	}

	if iface != "" {
		// As tcpdump's "listening on": the capture is open, nothing is missed
		// from here on.
		what := "capturing on " + iface
		if filter != "" {
			what += " (" + filter + ")"
		}
		fmt.Fprintf(stderr, "wstap sniff: %s; Ctrl-C stops\n", what)
	}
	s := sniff.New(cfg)
	start := time.Now()
	runErr := s.Run(ctx, src)
	stopProgress()
	if term != nil {
		term.Close()
	}
	code := exitOK
	if jsonl != nil {
		if err := jsonl.Close(); err != nil {
			fmt.Fprintf(stderr, "wstap sniff: event log: %v\n", err)
			code = exitError
		}
	}
	st := s.Stats()
	fmt.Fprintln(stderr, summary(st, time.Since(start)))
	if hint := noHandshakeHint(st); hint != "" {
		fmt.Fprintln(stderr, hint)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		what := iface
		if file != "" {
			what = file
		}
		code = fail("%s: %s (what came before was reported)", what, strings.TrimPrefix(runErr.Error(), "sniff: "))
	}
	if uiOpt.addr != "" && file != "" && ctx.Err() == nil {
		fmt.Fprintln(stderr, "wstap sniff: the capture is read; the web UI stays up until Ctrl-C")
		<-ctx.Done()
	}
	return code
}

// summary is the line printed at the end.
func summary(st sniff.Stats, took time.Duration) string {
	plural := func(n int64, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + many
	}
	var b strings.Builder
	fmt.Fprintf(&b, "wstap sniff: %s, %s, %s (%s), %s, %s",
		plural(st.Packets, "packet", "packets"), plural(st.Connections, "connection", "connections"),
		plural(st.Messages, "message", "messages"), humanize.Bytes(uint64(st.MessageBytes)),
		plural(st.Gaps, "gap", "gaps"), plural(st.Errors, "error", "errors"))
	if st.Gaps > 0 {
		fmt.Fprintf(&b, "; %s lost, %s cut by gaps", humanize.Bytes(uint64(st.LostBytes)), plural(st.LostMessages, "message", "messages"))
	}
	if st.Resyncs > 0 {
		fmt.Fprintf(&b, "; %s", plural(st.Resyncs, "resync", "resyncs"))
	}
	if st.Undecodable > 0 {
		fmt.Fprintf(&b, "; %d undecodable", st.Undecodable)
	}
	fmt.Fprintf(&b, "; %s", took.Round(time.Millisecond))
	return b.String()
}

// noHandshakeHint is the line that says which TCP connections look like
// WebSocket without a handshake in the capture, and which --ws-port flags would
// follow them; "" when none do.
func noHandshakeHint(st sniff.Stats) string {
	if st.NoHandshake == 0 {
		return ""
	}
	ports, flags := make([]string, len(st.NoHandshakePorts)), make([]string, len(st.NoHandshakePorts))
	for i, p := range st.NoHandshakePorts {
		ports[i], flags[i] = strconv.Itoa(int(p)), "--ws-port "+strconv.Itoa(int(p))
	}
	what, look := strconv.FormatInt(st.NoHandshake, 10)+" TCP connections", "look"
	if st.NoHandshake == 1 {
		what, look = "1 TCP connection", "looks"
	}
	port := "port"
	if len(ports) > 1 {
		port = "ports"
	}
	return fmt.Sprintf("wstap sniff: %s (%s %s) %s like WebSocket frames without a handshake in the capture; try %s",
		what, port, strings.Join(ports, ", "), look, strings.Join(flags, " "))
}

// isTerminal reports whether w is a terminal (not merely a character device,
// as /dev/null is).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how far src has been read until the returned function is called.
func progress(w io.Writer, src *sniff.FileSource, name string) (stop func()) {
	bar := progressbar.NewOptions64(src.Size(), progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("reading "+name), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30), progressbar.OptionSetRenderBlankState(true))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				bar.Set64(src.Pos())
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		bar.Finish()
	}
}
