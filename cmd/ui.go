package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/ui"
)

// defaultUIAddr is where --ui without an address serves the web UI.
const defaultUIAddr = "127.0.0.1:8081"

// uiAddrFlag is --ui: a flag that is given alone (--ui: the default address) or
// with an address (--ui=ADDR, or --ui ADDR, which joinUIArg rewrites). It stores
// the address in *p, "" when the UI is off.
type uiAddrFlag struct{ p *string }

func (f uiAddrFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f uiAddrFlag) Set(v string) error {
	*f.p = uiAddress(v)
	return nil
}

// IsBoolFlag lets --ui stand alone, as a boolean flag does.
func (f uiAddrFlag) IsBoolFlag() bool { return true }

// uiAddress turns the value of --ui (or of the config file's ui setting) into an
// address: the default for "true", none for "false".
func uiAddress(v string) string {
	switch v {
	case "true":
		return defaultUIAddr
	case "false":
		return ""
	}
	return v
}

// joinUIArg rewrites "--ui ADDR" as "--ui=ADDR" so that the address may follow the
// flag as another argument, as with any other flag: the flag package would read a
// boolean flag's next argument as the first positional one. An argument is taken
// as the address when it has a colon (127.0.0.1:9000, :9000, [::1]:9000).
func joinUIArg(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a == "--ui" || a == "-ui") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && strings.Contains(args[i+1], ":") {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

// The bound of the queue between the proxy and the UI's history: past it, messages
// are left out of the history (and counted), never waited for.
const (
	uiQueueEvents = 1 << 16
	uiQueueBytes  = 64 << 20
)

// uiOptions are the web UI's settings, shared by the proxy, sniff and open.
type uiOptions struct {
	addr        string // "" when the UI is off
	history     string // --ui-history, a size
	allowRemote bool
}

// uiFlagHelp is the help of --ui for a command whose UI is optional.
const uiFlagHelp = "serve the web UI on " + defaultUIAddr + " (--ui=ADDR or --ui ADDR for another address)"

// uiHistoryHelp is the help of --ui-history.
const uiHistoryHelp = "payload bytes the web UI keeps in memory; past them, the oldest payloads are evicted (and read back from --log when it is a file)"

// defaultUIHistory is --ui-history's default.
const defaultUIHistory = "256MiB"

// register adds --ui (with the help addrHelp), --ui-history and --allow-remote
// to fs, for sniff and open; the proxy has them in its config.
func (o *uiOptions) register(fs *flag.FlagSet, addrHelp string) {
	fs.Var(uiAddrFlag{&o.addr}, "ui", addrHelp)
	fs.StringVar(&o.history, "ui-history", defaultUIHistory, uiHistoryHelp)
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow the web UI on a non-loopback address (anyone who reaches it sees the traffic: the token is its only guard)")
}

// check checks the UI's settings (where names the address's setting) and returns
// the history's payload limit.
func (o *uiOptions) check(where, historyWhere string) (int64, error) {
	if o.addr == "" {
		return 0, nil
	}
	if err := checkAddr(where, o.addr, o.allowRemote, "anyone who reaches the port sees the traffic"); err != nil {
		return 0, err
	}
	return parseSize(historyWhere, o.history)
}

// startUI listens on o.addr and serves the UI of cfg until ctx ends. It returns
// the URL to open (with the token) and a function that waits for the server to
// stop.
func startUI(ctx context.Context, o uiOptions, cfg ui.Config) (url string, wait func(), err error) {
	srv, err := ui.New(cfg)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return "", nil, fmt.Errorf("--ui: cannot listen on %s: the address is in use (another wstap?); pick another, or --ui=127.0.0.1:0 for any free port", o.addr)
		}
		return "", nil, fmt.Errorf("--ui: cannot listen on %s: %w", o.addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil && cfg.Logger != nil {
			cfg.Logger.Error("web UI", "err", err)
		}
	}()
	return srv.URL(ln.Addr().String()), func() { <-done }, nil
}

// newStore returns the history for the UI: at most limit payload bytes, read back
// from the event log logPath (when it is a file) past them.
func newStore(limit int64, logPath string) *history.Store {
	if logPath == "-" {
		logPath = ""
	}
	return history.New(limit, logPath)
}

// uiLogger is the UI server's logger: the command's, quieter (the server's own
// errors, such as a browser going away, are debug lines).
func uiLogger(l *slog.Logger) *slog.Logger { return l.With("component", "ui") }
