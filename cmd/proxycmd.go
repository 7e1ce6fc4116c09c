package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/intercept"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/load"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/ui"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, " ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// proxyHelp is the proxy's --help, before its flags.
const proxyHelp = `Usage: wstap [proxy] [flags]

Runs the intercepting proxy: set --listen as the browser's HTTP and HTTPS proxy and
trust wstap's CA (wstap ca export). Every WebSocket message is shown on stdout, one
line each. Hooks (--hook; wstap plugins lists them) decode, rewrite, drop or inject
messages: the filter and drop hooks change the traffic. To narrow only what the view
shows, use --show, e.g. --show 'dir=s2c,match=error'.
`

// runProxy runs the proxy. help is printed first on --help (the overview of every
// command, when the proxy is run as plain "wstap").
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer, help string) int {
	fs := newFlagSet("wstap proxy", help+proxyHelp, stdout)
	var c config
	var hooks, show, intercepts stringsFlag
	var configPath string
	var verbose bool
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&c.CADir, "ca-dir", "", "CA directory (default $"+certs.DirEnv+" or the user config dir)")
	fs.Var(&hooks, "hook", "hook `SPEC`: NAME[:key=value,...], a .go file or exec:COMMAND; repeat in chain order (\"intercept\" places the web UI's breakpoint, by default after every hook)")
	fs.Var(&intercepts, "intercept", "hold the messages matching `RULE` in the web UI (needs --ui): dir=, url=GLOB, opcode=, match=REGEXP, order=out|strict, joined by commas; repeat for any of several")
	fs.StringVar(&c.InterceptTimeout, "intercept-timeout", intercept.DefaultTimeout.String(), "forward a held message unchanged after `DURATION` when nobody decided")
	fs.Var(&show, "show", "show only the view's events matching `RULE`: dir=, opcode=, match=REGEXP, url=GLOB, conn=ID, joined by commas; repeat for any of several (the traffic is not changed)")
	fs.StringVar(&c.Log, "log", "", "write the JSONL event log to `FILE` (- for stdout; the view then goes to stderr)")
	fs.StringVar(&configPath, "config", "", "read settings from a YAML `FILE`; flags override it")
	fs.BoolVar(&c.UpstreamInsecure, "upstream-insecure", false, "do not verify upstream TLS certificates")
	fs.StringVar(&c.UpstreamProxy, "upstream-proxy", "", "send upstream traffic through the HTTP proxy at `URL`")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow listening on a non-loopback address")
	fs.StringVar(&c.MaxHookMessage, "max-hook-message", "16MiB", "largest message passed to hooks; larger ones stream through (at most --max-message)")
	fs.StringVar(&c.MaxMessage, "max-message", "1GiB", "largest message relayed; larger ones close the connection with 1009")
	fs.StringVar(&c.HookErrors, "hook-errors", "pass", "when a hook fails: pass (the message goes on unmodified) or close (1011)")
	fs.BoolVar(&c.Quiet, "quiet", false, "do not print connections and messages on the terminal")
	fs.BoolVar(&c.EveryControl, "every-control", false, "log every ping and pong (by default, past 5 a second per direction, they are counted)")
	fs.Var(uiAddrFlag{&c.UI}, "ui", uiFlagHelp)
	fs.StringVar(&c.UIHistory, "ui-history", defaultUIHistory, uiHistoryHelp)
	fs.BoolVar(&verbose, "v", false, "verbose logs: also one line per proxied HTTP request")
	if code := parseFlags(fs, joinUIArg(args), stderr); code >= 0 {
		return code
	}
	c.Show, c.Intercept = show, intercepts
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap: "+format+"\n", args...)
		return exitError
	}
	// badValue reports a setting the user must change (exit status 2).
	badValue := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "wstap: "+format+"\n", args...)
		return exitUsage
	}
	if configPath != "" {
		fileCfg, err := loadConfig(configPath)
		var ce *configError
		switch {
		case errors.As(err, &ce):
			return badValue("%v", err)
		case err != nil:
			return fail("--config: %v", err)
		}
		c = merge(fs, fileCfg, c)
	}
	hookWhere := "" // the hooks' errors name their file and line
	if len(hooks) > 0 {
		hookWhere = "--hook: "
		c.Hooks = nil
		for _, h := range hooks {
			s, err := plugins.ParseSpec(h)
			if err != nil {
				return badValue("--hook: %v", err)
			}
			c.Hooks = append(c.Hooks, s)
		}
	}

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	pcfg := proxy.Config{Logger: logger, UpstreamInsecure: c.UpstreamInsecure, ControlBurst: plugins.DefaultControlBurst}
	if c.EveryControl {
		pcfg.ControlBurst = 0
	}
	var err error
	if pcfg.MaxHookMessage, err = parseSize(c.where("max-hook-message"), c.MaxHookMessage); err != nil {
		return badValue("%v", err)
	}
	if pcfg.MaxMessage, err = parseSize(c.where("max-message"), c.MaxMessage); err != nil {
		return badValue("%v", err)
	}
	if pcfg.MaxHookMessage, err = hookLimit(pcfg.MaxHookMessage, pcfg.MaxMessage,
		c.origin["max-hook-message"] != "" || flagGiven(fs, "max-hook-message"),
		c.where("max-hook-message")+" "+c.MaxHookMessage, c.where("max-message")+" "+c.MaxMessage); err != nil {
		return badValue("%v", err)
	}
	if c.UpstreamProxy != "" {
		u, err := url.Parse(c.UpstreamProxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badValue("%s %q: want a URL such as http://host:3128", c.where("upstream-proxy"), c.UpstreamProxy)
		}
		pcfg.UpstreamProxy = u
	}
	policy := plugins.FailOpen
	switch c.HookErrors {
	case "pass":
	case "close":
		policy = plugins.FailClose
	default:
		return badValue("%s %q: want pass or close", c.where("hook-errors"), c.HookErrors)
	}
	rules, err := parseShowRules(c.Show)
	if err != nil {
		return badValue("%s %v", c.where("show"), err)
	}
	if len(rules) > 0 && c.Quiet {
		return badValue("--show narrows the terminal view, which --quiet turns off; drop one of them")
	}
	if err := checkAddr(c.where("listen"), c.Listen, c.AllowRemote, "anyone who reaches the port can use the proxy"); err != nil {
		return badValue("%v", err)
	}
	uiOpt := uiOptions{addr: uiAddress(c.UI), history: c.UIHistory, allowRemote: c.AllowRemote}
	uiLimit, err := uiOpt.check(c.where("ui"), c.where("ui-history"))
	if err != nil {
		return badValue("%v", err)
	}
	interceptTimeout, err := time.ParseDuration(c.InterceptTimeout)
	if err != nil || interceptTimeout <= 0 {
		return badValue("%s %q: want a duration above 0, such as 30s or 5m", c.where("intercept-timeout"), c.InterceptTimeout)
	}
	bp, err := newBreakpoint(c.where("intercept"), c.Intercept, interceptTimeout, c.Hooks, uiOpt.addr != "", logger)
	if err != nil {
		return badValue("%v", err)
	}
	chain, err := bp.chain(c.Hooks, load.Options{Policy: policy, Logger: logger})
	if err != nil {
		return badValue("%s%v", hookWhere, err)
	}
	defer chain.Close()
	names := chain.Names()
	pcfg.Chain = chain
	ca, err := loadCA(c.CADir, stderr)
	if err != nil {
		return fail("CA: %v", err)
	}
	pcfg.CA = ca

	var observers plugins.Observers
	var uiCfg ui.Config
	var jsonl *eventlog.JSONL
	switch c.Log {
	case "":
	case "-":
		jsonl = eventlog.NewJSONL(stdout, eventlog.Live)
	default:
		f, last, err := eventlog.OpenFile(c.Log) // appends; ids continue after the file's
		if err != nil {
			return fail("--log: %v", err)
		}
		defer f.Close()
		pcfg.LastConnID = last
		jsonl = eventlog.NewJSONL(f, eventlog.Live)
	}
	if jsonl != nil {
		observers = append(observers, jsonl)
		defer func() {
			if err := jsonl.Close(); err != nil {
				fmt.Fprintf(stderr, "wstap: event log: %v\n", err)
			}
		}()
	}
	if !c.Quiet {
		// The view is the command's output, on stdout as tcpdump's; --log - takes
		// stdout for the JSON lines, and then the view goes to stderr.
		viewOut := stdout
		if c.Log == "-" {
			viewOut = stderr
		}
		term := eventlog.NewTerminal(viewOut, eventlog.Live)
		defer term.Close()
		observers = append(observers, newShowView(term, rules))
	}
	var store *history.Store
	if uiOpt.addr != "" {
		// The UI is fed through a bounded queue: the relay never waits for it. When
		// the queue is full, messages are left out of the history and counted.
		store = newStore(uiLimit, c.Log)
		async := plugins.NewAsync(store, uiQueueEvents, uiQueueBytes)
		defer async.Close()
		observers = append(observers, async)
		uiCfg = ui.Config{Store: store, Lost: async.Dropped, Logger: uiLogger(logger),
			Info: ui.Info{Version: version(), Mode: "proxy"}, Intercept: bp.ctl, Breakpoint: bp.where}
	}
	pcfg.Observer = observers

	p, err := proxy.New(pcfg)
	if err != nil {
		return fail("%v", err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fail("cannot listen on %s: the address is in use (another wstap?); pick another with --listen, or --listen 127.0.0.1:0 for any free port", c.Listen)
		}
		return fail("cannot listen on %s: %v", c.Listen, err)
	}
	addr := ln.Addr().String()
	fmt.Fprintf(stderr, "wstap %s: proxy listening on %s\n", version(), addr)
	fmt.Fprintf(stderr, "  browser: set the HTTP and HTTPS proxy to %s\n", browserAddrs(c.Listen, addr))
	fmt.Fprintf(stderr, "  CA:      %s; trust it in the browser: wstap ca export --out wstap-ca.pem\n", ca.CertPath())
	if len(names) > 0 {
		fmt.Fprintf(stderr, "  hooks:   %s\n", strings.Join(names, " → "))
	}
	if c.Log != "" {
		fmt.Fprintf(stderr, "  log:     %s\n", c.Log)
	}
	if uiCfg.Store != nil {
		uiCfg.Info.Proxy = addr
		url, wait, err := startUI(ctx, uiOpt, uiCfg)
		if err != nil {
			ln.Close()
			return fail("%v", err)
		}
		defer wait()
		fmt.Fprintf(stderr, "  web UI:  %s\n", url)
		if rules := bp.ctl.Settings().Rules; len(rules) > 0 {
			fmt.Fprintf(stderr, "  intercept: %d rule(s), %s; held messages wait in the web UI (forwarded unchanged after %s)\n",
				len(rules), bp.where, bp.ctl.Settings().Timeout)
		}
	}
	if err := p.Serve(ctx, ln); err != nil {
		return fail("%v", err)
	}
	return exitOK
}

// checkAddr checks a listening address (where names it for errors) and refuses a
// non-loopback one unless allowRemote; risk says what --allow-remote exposes.
func checkAddr(where, addr string, allowRemote bool, risk string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want HOST:PORT such as 127.0.0.1:8080", where, addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%s %q: the port must be 0-65535 (0 picks a free one)", where, addr)
	}
	if allowRemote {
		return nil
	}
	ips, err := net.LookupIP(host)
	if host == "" || err != nil || len(ips) == 0 {
		return fmt.Errorf("%s %q: not a loopback address; add --allow-remote to accept other machines (%s)", where, addr, risk)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s %q: %s is not a loopback address; add --allow-remote to accept other machines (%s)", where, addr, ip, risk)
		}
	}
	return nil
}

// browserAddrs says which addresses a browser can set as its proxy, for a
// listener asked for on listen and bound to bound: bound itself, or for an
// unspecified address (0.0.0.0, ::), which no browser can connect to, the
// loopback address and this machine's other addresses (IPv4 only for 0.0.0.0).
func browserAddrs(listen, bound string) string {
	host, port, err := net.SplitHostPort(bound)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsUnspecified() {
		return bound
	}
	reqHost, _, _ := net.SplitHostPort(listen)
	v4only := net.ParseIP(reqHost).To4() != nil
	var v4, v6 []string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() || ipn.IP.IsUnspecified() {
				continue
			}
			switch hp := net.JoinHostPort(ipn.IP.String(), port); {
			case ipn.IP.To4() != nil:
				v4 = append(v4, hp)
			case !v4only:
				v6 = append(v6, hp)
			}
		}
	}
	s := net.JoinHostPort("127.0.0.1", port) + " on this machine"
	if others := append(v4, v6...); len(others) > 0 {
		s += ", or from other machines to " + strings.Join(others, " or ")
	}
	return s
}
