package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/load"
	"github.com/wstap/wstap/proxy"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, " ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap proxy", stderr)
	var c config
	var hooks stringsFlag
	var configPath string
	var verbose bool
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&c.CADir, "ca-dir", "", "CA directory (default $"+certs.DirEnv+" or the user config dir)")
	fs.Var(&hooks, "hook", "hook `SPEC`: NAME[:key=value,...], a .go file or exec:COMMAND; repeat in chain order")
	fs.StringVar(&c.Log, "log", "", "write the JSONL event log to `FILE` (- for stdout)")
	fs.StringVar(&configPath, "config", "", "read settings from a YAML `FILE`; flags override it")
	fs.BoolVar(&c.UpstreamInsecure, "upstream-insecure", false, "do not verify upstream TLS certificates")
	fs.StringVar(&c.UpstreamProxy, "upstream-proxy", "", "send upstream traffic through the HTTP proxy at `URL`")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow listening on a non-loopback address")
	fs.StringVar(&c.MaxHookMessage, "max-hook-message", "16MiB", "largest message passed to hooks; larger ones stream through")
	fs.StringVar(&c.MaxMessage, "max-message", "1GiB", "largest message relayed; larger ones close the connection with 1009")
	fs.StringVar(&c.HookErrors, "hook-errors", "pass", "when a hook fails: pass (the message goes on unmodified) or close (1011)")
	fs.BoolVar(&c.Quiet, "quiet", false, "do not print connections and messages on the terminal")
	fs.BoolVar(&c.EveryControl, "every-control", false, "log every ping and pong (by default, past 5 a second per direction, they are counted)")
	fs.BoolVar(&verbose, "v", false, "verbose logs")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
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
		if err != nil {
			return fail("config: %v", err)
		}
		c = merge(fs, fileCfg, c)
	}
	if len(hooks) > 0 {
		c.Hooks = nil
		for _, h := range hooks {
			s, err := plugins.ParseSpec(h)
			if err != nil {
				fmt.Fprintf(stderr, "wstap: --hook: %v\n", err)
				return exitUsage
			}
			c.Hooks = append(c.Hooks, hookSpec{s})
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
	if pcfg.MaxHookMessage, err = parseSize("max-hook-message", c.MaxHookMessage); err != nil {
		return badValue("%v", err)
	}
	if pcfg.MaxMessage, err = parseSize("max-message", c.MaxMessage); err != nil {
		return badValue("%v", err)
	}
	if c.UpstreamProxy != "" {
		u, err := url.Parse(c.UpstreamProxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badValue("--upstream-proxy %q: want a URL such as http://host:3128", c.UpstreamProxy)
		}
		pcfg.UpstreamProxy = u
	}
	policy := plugins.FailOpen
	switch c.HookErrors {
	case "pass":
	case "close":
		policy = plugins.FailClose
	default:
		return badValue("--hook-errors %q: want pass or close", c.HookErrors)
	}
	chain, err := load.Chain(specsOf(c.Hooks), load.Options{Policy: policy, Logger: logger})
	if err != nil {
		return badValue("--hook: %v", err)
	}
	defer chain.Close()
	names := chain.Names()
	pcfg.Chain = chain
	if err := checkListen(c.Listen, c.AllowRemote); err != nil {
		return badValue("%v", err)
	}
	ca, err := loadCA(c.CADir, stderr)
	if err != nil {
		return fail("CA: %v", err)
	}
	pcfg.CA = ca

	var observers plugins.Observers
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
		term := eventlog.NewTerminal(stderr, eventlog.Live)
		defer term.Close()
		observers = append(observers, term)
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
	fmt.Fprintf(stderr, "  browser: set the HTTP and HTTPS proxy to %s\n", addr)
	fmt.Fprintf(stderr, "  CA:      %s; trust it in the browser: wstap ca export --out wstap-ca.pem\n", ca.CertPath())
	if len(names) > 0 {
		fmt.Fprintf(stderr, "  hooks:   %s\n", strings.Join(names, " → "))
	}
	if c.Log != "" {
		fmt.Fprintf(stderr, "  log:     %s\n", c.Log)
	}
	if err := p.Serve(ctx, ln); err != nil {
		return fail("%v", err)
	}
	return exitOK
}

// merge overlays the flags set on the command line (set) over the file's settings.
func merge(fs *flag.FlagSet, file, set config) config {
	out := file
	if out.Listen == "" {
		out.Listen = set.Listen
	}
	if out.MaxHookMessage == "" {
		out.MaxHookMessage = set.MaxHookMessage
	}
	if out.MaxMessage == "" {
		out.MaxMessage = set.MaxMessage
	}
	if out.HookErrors == "" {
		out.HookErrors = set.HookErrors
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			out.Listen = set.Listen
		case "ca-dir":
			out.CADir = set.CADir
		case "log":
			out.Log = set.Log
		case "upstream-insecure":
			out.UpstreamInsecure = set.UpstreamInsecure
		case "upstream-proxy":
			out.UpstreamProxy = set.UpstreamProxy
		case "allow-remote":
			out.AllowRemote = set.AllowRemote
		case "max-hook-message":
			out.MaxHookMessage = set.MaxHookMessage
		case "max-message":
			out.MaxMessage = set.MaxMessage
		case "hook-errors":
			out.HookErrors = set.HookErrors
		case "quiet":
			out.Quiet = set.Quiet
		case "every-control":
			out.EveryControl = set.EveryControl
		}
	})
	return out
}

// checkListen refuses a non-loopback address unless allowRemote.
func checkListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT such as 127.0.0.1:8080", addr)
	}
	if allowRemote {
		return nil
	}
	ips, err := net.LookupIP(host)
	if host == "" || err != nil || len(ips) == 0 {
		return fmt.Errorf("--listen %q: not a loopback address; add --allow-remote to accept other machines (anyone who reaches the port can use the proxy)", addr)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("--listen %q: %s is not a loopback address; add --allow-remote to accept other machines (anyone who reaches the port can use the proxy)", addr, ip)
		}
	}
	return nil
}

// specsOf returns the plugin specs of the config's hooks.
func specsOf(hooks []hookSpec) []plugins.Spec {
	specs := make([]plugins.Spec, len(hooks))
	for i, h := range hooks {
		specs[i] = h.Spec
	}
	return specs
}
