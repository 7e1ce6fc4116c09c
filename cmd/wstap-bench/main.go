// Command wstap-bench measures how fast WebSocket traffic goes through wstap compared
// with no proxy, with a proxy that only copies bytes, and with mitmdump.
//
// Usage (from inside the wstap module, which it builds):
//
//	go run ./cmd/wstap-bench [-rounds 7] [-n64 300000] [-n64k 6000] [-rtts 2000]
//	                         [-duration 1s] [-conns 1000] [-sections core,chains]
//	                         [-chains empty,compiled,yaegi,exec] [-json]
//	go run ./cmd/wstap-bench -sections ui [-ui-rows 1000000] [-ui-open-rounds 3]
//	                         [-ui-rate 5000] [-ui-load 30s] [-ui-parts throughput,rows,clicks]
//
// It has three sections, run in this order: core (below), chains (the hook chains,
// at the end) and ui (the web UI in Chromium; see ui.go), which only runs when
// -sections names it. A full run with the defaults takes about three to four minutes
// on two cores, the chains section less than one of them, and the ui section about
// four more; for a quick look, -rounds 1 -conns 100. -sections picks the sections,
// -targets and -schemes what core measures, and -chains which chains the chains
// section measures.
//
// Everything runs on 127.0.0.1. A gorilla/websocket echo server (ws, and wss with a
// self-signed certificate) runs in the bench process, and so does the gorilla client.
// The client reaches the echo server through each target:
//
//   - direct: no proxy;
//   - tunnel: a minimal HTTP CONNECT proxy that copies bytes both ways (io.Copy, which
//     splices on Linux), with TLS end to end for wss. It parses nothing, so it is the
//     ceiling for any relay on this machine;
//   - wstap: ./cmd/wstap built and started with an empty hook chain; ws goes through a
//     CONNECT tunnel, wss is MITM'd (the client trusts wstap's CA, wstap does not
//     verify the echo server);
//   - mitmdump (Debian mitmproxy), when it is on PATH: ws and MITM'd wss likewise.
//
// Each proxy runs as its own process (the tunnel is this program run again), so the
// "cpu" columns are that process's CPU time divided by the wall time of the run
// (1.00 = one core busy), read from /proc/PID/stat.
//
// Workloads, all through one new connection per run:
//
//   - 64 B pipelined: a writer goroutine sends binary messages while the reader reads
//     the echoes, with at most -window64 messages in flight, until -n64 messages or
//     -duration has passed; reported as messages echoed per second;
//   - 64 KiB pipelined: the same with 64 KiB messages (-n64k, -window64k), reported
//     as MB/s (10^6 bytes of payload echoed per second, one direction);
//   - round trip: -rtts 64 B messages one at a time; p50 and p99 in µs, and "+p50",
//     the p50 minus direct's p50 measured in the same round (the latency the proxy
//     adds).
//
// The targets alternate within each round (each workload runs on every target in
// turn, the starting target rotating from round to round), and every figure is the
// median over -rounds rounds, so slow drifts of a shared machine hit all targets
// alike. Ratios compare each target with direct over the same scheme, wstap with the
// tunnel (the share of the achievable throughput wstap gets), and wstap with mitmdump.
// A relay can beat direct at 64 B: gorilla writes every message with its own system
// call, and a relay in between hands the server fewer, larger reads. For wstap the
// report also gives its read and write system calls per echoed message (from
// /proc/PID/io), which shows how well it batches frames into writes.
//
// Memory: a fresh wstap process gets -conns concurrent open connections (ws, then wss
// in another fresh process), each having exchanged one message; the report gives
// VmRSS before (after one warm-up connection) and with them open, the peak (VmHWM),
// and (RSS with - RSS before) / conns: the memory one open connection costs. The
// tunnel is measured the same way for reference.
//
// The last block checks the targets set for wstap: for ws with an empty chain, at
// least 0.70× the tunnel's 64 B messages/s and 64 KiB MB/s, an added p50 at most 2×
// the tunnel's (at least 1 µs is allowed, below which loopback noise dominates), at
// least 10× mitmdump's 64 B messages/s; and at most 100 KiB per open wss connection.
//
// The client sends 64 KiB messages as single frames (a 64 KiB gorilla write buffer),
// as browsers do; the echo server answers each message with one frame.
//
// # Chains
//
// The chains section measures what hooks cost: pipelined 1 KiB text messages (up to
// -nchain per run, at most -window-chain in flight, -duration at most), each
// base64(nonce(12) || AES-256-GCM(740 B of chat JSON) || tag(16)) under a fixed key,
// about half of them containing the word "secret". The client encrypts 1024 distinct
// messages before measuring and cycles through them. It goes through the ws echo
// server and one wstap process per chain, all started at once:
//
//   - empty: no --hook, the baseline of the ratios;
//   - compiled: the built-in plugins, --hook base64 --hook aes:mode=gcm,key=hex:KEY
//     --hook replace:match=secret,with=public;
//   - yaegi: the same work in one Go source file interpreted by yaegi, hooks/chain.go
//     (a base64+AES-GCM codec and a replace hook, both in the file);
//   - exec: a Python codec doing base64+AES-GCM, hooks/chain.py run as an exec hook
//     with -python (it needs the cryptography module; without it exec is left out
//     with a note), followed by the built-in replace.
//
// Each chain decodes every message both ways and rewrites "secret" to "public" in
// those going to the server, encrypting them again with a fresh nonce; the echoes of
// the others come back unchanged. The client decrypts every echo and fails the run
// unless each that contained the word came back rewritten (and correctly) and every
// other came back byte for byte; the report counts them. The chains alternate as in
// core, one run each per round, and the figures are medians over -rounds. "cpu" is
// wstap's CPU time plus that of the processes it started (the Python hook), over the
// wall time. The check: the compiled chain gets at least 0.50x the empty chain's
// messages/s; and no chain's wstap logged a warning or an error (a codec that could
// not decode, a failing hook).
//
// Figures from a shared or busy machine are noisy: compare runs made back to back, and
// look at the per-round values in -json output when the medians surprise.
package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wstap/wstap/certs"
	"github.com/wstap/wstap/internal/childproc"
)

type config struct {
	Rounds    int           `json:"rounds"`
	N64       int           `json:"n64"`
	N64K      int           `json:"n64k"`
	Window64  int           `json:"window64"`
	Window64K int           `json:"window64k"`
	RTTs      int           `json:"rtts"`
	Duration  time.Duration `json:"duration_ns"`
	Conns     int           `json:"conns"`
	Parallel  int           `json:"conns_parallel"`
	Hold      time.Duration `json:"-"`
	Wstap     string        `json:"-"`
	Mitmdump  string        `json:"-"`
	NoMitm    bool          `json:"-"`
	Targets   string        `json:"-"`
	Schemes   string        `json:"-"`
	JSON      bool          `json:"-"`
	// The chains section.
	Sections    string `json:"-"`
	Chains      string `json:"-"`
	NChain      int    `json:"nchain"`
	WindowChain int    `json:"window_chain"`
	Python      string `json:"-"`
	// The ui section (ui.go).
	UIParts      string        `json:"-"`
	UIRows       int           `json:"ui_rows"`
	UIOpenRounds int           `json:"ui_open_rounds"`
	UIRate       int           `json:"ui_rate"`
	UILoad       time.Duration `json:"ui_load_ns"`
	Chromium     string        `json:"-"`
}

func main() {
	var c config
	var tunnelChild bool
	flag.IntVar(&c.Rounds, "rounds", 7, "rounds; every figure is the median over them")
	flag.IntVar(&c.N64, "n64", 300000, "most 64 B messages per pipelined run")
	flag.IntVar(&c.N64K, "n64k", 6000, "most 64 KiB messages per pipelined run")
	flag.IntVar(&c.Window64, "window64", 1000, "most 64 B messages in flight")
	flag.IntVar(&c.Window64K, "window64k", 32, "most 64 KiB messages in flight")
	flag.IntVar(&c.RTTs, "rtts", 2000, "round trips per latency run")
	flag.DurationVar(&c.Duration, "duration", time.Second, "longest pipelined run (latency runs: 3×)")
	flag.IntVar(&c.Conns, "conns", 1000, "concurrent connections for the memory test (0 skips it)")
	flag.IntVar(&c.Parallel, "conns-parallel", 16, "connections opened at a time in the memory test")
	flag.DurationVar(&c.Hold, "conns-hold", 0, "keep the memory test's connections open this long after measuring (to inspect the proxy)")
	flag.StringVar(&c.Wstap, "wstap", "", "wstap binary to measure (default: go build ./cmd/wstap)")
	flag.StringVar(&c.Mitmdump, "mitmdump", "", "mitmdump binary (default: mitmdump on PATH)")
	flag.BoolVar(&c.NoMitm, "no-mitmdump", false, "leave mitmdump out")
	flag.StringVar(&c.Targets, "targets", "direct,tunnel,wstap,mitmdump", "targets to measure (comma-separated)")
	flag.StringVar(&c.Schemes, "schemes", "ws,wss", "schemes to measure (comma-separated)")
	flag.BoolVar(&c.JSON, "json", false, "print the results as JSON instead of tables")
	flag.StringVar(&c.Sections, "sections", "core,chains", "sections to run (comma-separated): core (direct, tunnel, wstap, mitmdump; memory), chains (hook chains through wstap), ui (the web UI in Chromium)")
	flag.StringVar(&c.Chains, "chains", strings.Join(chainKinds, ","), "hook chains to measure in the chains section (comma-separated; empty is always measured)")
	flag.IntVar(&c.NChain, "nchain", 300000, "most 1 KiB messages per pipelined run in the chains section")
	flag.IntVar(&c.WindowChain, "window-chain", 256, "most 1 KiB messages in flight in the chains section")
	flag.StringVar(&c.Python, "python", "/usr/bin/python3", "python for the chains section's exec hook (needs the cryptography module)")
	flag.StringVar(&c.UIParts, "ui-parts", strings.Join(uiParts, ","), "parts of the ui section to run (comma-separated)")
	flag.IntVar(&c.UIRows, "ui-rows", 1000000, "messages in the event log the ui section opens")
	flag.IntVar(&c.UIOpenRounds, "ui-open-rounds", 3, "rounds of the ui section's wstap open test (each reads the event log again)")
	flag.IntVar(&c.UIRate, "ui-rate", 5000, "messages/s the ui section's click test sends through wstap --ui")
	flag.DurationVar(&c.UILoad, "ui-load", 30*time.Second, "how long the ui section's click test lasts")
	flag.StringVar(&c.Chromium, "chromium", "/usr/bin/chromium", "Chromium for the ui section")
	flag.BoolVar(&tunnelChild, "internal-tunnel", false, "internal: run as the raw CONNECT tunnel")
	flag.Parse()
	if tunnelChild {
		os.Exit(serveTunnel())
	}
	if c.Rounds < 1 || c.N64 < 1 || c.N64K < 1 || c.RTTs < 1 || c.Window64 < 1 || c.Window64K < 1 || c.Parallel < 1 ||
		c.NChain < 1 || c.WindowChain < 1 || c.UIRows < 1 || c.UIOpenRounds < 1 || c.UIRate < 1 || c.UILoad <= 0 {
		fmt.Fprintln(os.Stderr, "wstap-bench: counts must be positive")
		os.Exit(2)
	}
	b := &bench{cfg: c}
	// Stop the proxies on ^C or SIGTERM (children also get SIGKILL if we die).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		b.cleanup()
		os.Exit(130)
	}()
	err := b.run()
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wstap-bench:", err)
		os.Exit(1)
	}
}

// bench is one run.
type bench struct {
	cfg      config
	tmp      string
	echo     *echoServers
	wstapBin string
	caDir    string
	caPool   *x509.CertPool
	mu       sync.Mutex
	procs    []*childproc.Child // the running proxies, for stopAll
	targets  []*target
	notes    []string
	stats    map[string]*series
	rss      []rssResult
	core     bool        // the core section ran
	chains   *chainBench // the chains section, when it ran
	ui       *uiBench    // the ui section, when it ran
}

// series holds one target's per-round values.
type series struct {
	Msgs64  []float64 `json:"msgs_per_s_64B"`
	CPU64   []float64 `json:"cpu_64B"`
	MB64K   []float64 `json:"mb_per_s_64KiB"`
	CPU64K  []float64 `json:"cpu_64KiB"`
	P50     []float64 `json:"p50_us"`
	P99     []float64 `json:"p99_us"`
	AddP50  []float64 `json:"added_p50_us"`
	Counts  []int     `json:"msgs_64B"`
	Counts2 []int     `json:"msgs_64KiB"`
	Sys64   []float64 `json:"proxy_syscalls_per_msg_64B"`
	Sys64K  []float64 `json:"proxy_syscalls_per_msg_64KiB"`
}

type rssResult struct {
	Target  string  `json:"target"`
	Conns   int     `json:"conns"`
	Idle    int64   `json:"rss_idle_bytes"`
	Open    int64   `json:"rss_open_bytes"`
	Peak    int64   `json:"rss_peak_bytes"`
	PerConn float64 `json:"bytes_per_conn"`
}

// track remembers a proxy process for stopAll.
func (b *bench) track(p *childproc.Child) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.procs = append(b.procs, p)
}

func (b *bench) stopAll() {
	b.mu.Lock()
	procs := b.procs
	b.procs = nil
	b.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
}

func (b *bench) cleanup() {
	b.ui.stop()
	b.stopAll()
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
	}
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wstap-bench: "+format+"\n", args...)
}

func want(list, name string) bool { return slices.Contains(strings.Split(list, ","), name) }

func (b *bench) run() error {
	for s := range strings.SplitSeq(b.cfg.Sections, ",") {
		if s != "core" && s != "chains" && s != "ui" {
			return fmt.Errorf("-sections: unknown section %q (want some of core, chains, ui)", s)
		}
	}
	var err error
	if b.tmp, err = os.MkdirTemp("", "wstap-bench-"); err != nil {
		return err
	}
	if b.echo, err = startEcho(); err != nil {
		return err
	}
	if want(b.cfg.Sections, "core") {
		b.core = true
		if err := b.runCore(); err != nil {
			return err
		}
	}
	if want(b.cfg.Sections, "chains") {
		if err := b.ensureWstap(); err != nil {
			return err
		}
		if err := b.runChains(); err != nil {
			return err
		}
	}
	if want(b.cfg.Sections, "ui") {
		if err := b.ensureWstap(); err != nil {
			return err
		}
		if err := b.runUI(); err != nil {
			return err
		}
	}
	if b.cfg.JSON {
		return b.printJSON(os.Stdout)
	}
	if b.core {
		b.print(os.Stdout)
	}
	if b.chains != nil {
		if b.core {
			fmt.Println()
		}
		b.printChains(os.Stdout)
	}
	if b.ui != nil {
		if b.core || b.chains != nil {
			fmt.Println()
		}
		b.printUI(os.Stdout)
	}
	return nil
}

// ensureWstap builds wstap (unless -wstap names it) and makes its CA, once.
func (b *bench) ensureWstap() error {
	if b.wstapBin != "" {
		return nil
	}
	var err error
	b.wstapBin = b.cfg.Wstap
	if b.wstapBin == "" {
		b.progress("building ./cmd/wstap")
		if b.wstapBin, err = childproc.BuildWstap(b.tmp); err != nil {
			return err
		}
	}
	b.caDir = filepath.Join(b.tmp, "ca")
	ca, err := certs.Create(b.caDir)
	if err != nil {
		return err
	}
	b.caPool = x509.NewCertPool()
	b.caPool.AddCert(ca.Cert)
	return nil
}

// runCore measures direct, the tunnel, wstap and mitmdump, and wstap's memory.
func (b *bench) runCore() error {
	var err error
	if !want(b.cfg.Targets, "direct") {
		b.cfg.Targets += ",direct" // the baseline of every ratio
	}
	if want(b.cfg.Targets, "wstap") || b.cfg.Conns > 0 {
		if err := b.ensureWstap(); err != nil {
			return err
		}
	}
	echoURL := map[string]string{
		"ws":  "ws" + strings.TrimPrefix(b.echo.ws.URL, "http") + "/",
		"wss": "wss" + strings.TrimPrefix(b.echo.wss.URL, "https") + "/",
	}
	proxies := map[string]*childproc.Child{}
	pools := map[string]*x509.CertPool{}
	for _, kind := range []string{"tunnel", "wstap", "mitmdump"} {
		if !want(b.cfg.Targets, kind) {
			continue
		}
		var p *childproc.Child
		switch kind {
		case "tunnel":
			p, err = startTunnel()
		case "wstap":
			p, err = childproc.StartWstap(b.wstapBin, b.caDir)
			pools[kind] = b.caPool
		case "mitmdump":
			bin := b.cfg.Mitmdump
			if bin == "" {
				bin, _ = exec.LookPath("mitmdump")
			}
			if b.cfg.NoMitm {
				b.notes = append(b.notes, "mitmdump: left out (-no-mitmdump)")
				continue
			}
			if bin == "" {
				b.notes = append(b.notes, "mitmdump: not measured (not on PATH; Debian: apt-get install mitmproxy)")
				continue
			}
			confdir := filepath.Join(b.tmp, "mitmproxy")
			if p, err = startMitmdump(bin, confdir); err == nil {
				pools[kind], err = loadPool(filepath.Join(confdir, "mitmproxy-ca-cert.pem"))
				b.notes = append(b.notes, "mitmdump: "+mitmVersion(bin)+", default options plus --ssl-insecure -q")
			}
		}
		if p != nil {
			b.track(p)
		}
		if err != nil {
			return err
		}
		proxies[kind] = p
	}
	for _, scheme := range []string{"ws", "wss"} {
		if !want(b.cfg.Schemes, scheme) {
			continue
		}
		for _, kind := range []string{"direct", "tunnel", "wstap", "mitmdump"} {
			if kind != "direct" && proxies[kind] == nil {
				continue
			}
			d := &websocket.Dialer{
				HandshakeTimeout: 30 * time.Second,
				WriteBufferSize:  clientWriteBuffer,
				WriteBufferPool:  clientPool,
			}
			t := &target{Name: kind + " " + scheme, kind: kind, scheme: scheme, url: echoURL[scheme], dialer: d, proc: proxies[kind]}
			if p := proxies[kind]; p != nil {
				d.Proxy = proxyFunc(p.Addr)
			}
			d.TLSClientConfig = tlsConfig(b.echo.pool)
			if pool := pools[kind]; pool != nil {
				d.TLSClientConfig = tlsConfig(pool)
			}
			b.targets = append(b.targets, t)
		}
	}
	// Every target must echo; mitmdump's wss is optional.
	var ok []*target
	for _, t := range b.targets {
		c, err := t.dial()
		if err == nil {
			err = exchange(c)
			c.Close()
		}
		if err != nil {
			if t.kind == "mitmdump" && t.scheme == "wss" {
				b.notes = append(b.notes, "mitmdump wss: left out: "+err.Error())
				continue
			}
			return err
		}
		ok = append(ok, t)
	}
	b.targets = ok
	b.stats = map[string]*series{}
	for _, t := range b.targets {
		b.stats[t.Name] = &series{}
	}

	b.progress("warming up %d targets", len(b.targets))
	for _, t := range b.targets {
		if err := b.once(t, "64B", true); err != nil {
			return err
		}
		if err := b.once(t, "64KiB", true); err != nil {
			return err
		}
		if err := b.once(t, "rtt", true); err != nil {
			return err
		}
	}
	start := time.Now()
	for r := range b.cfg.Rounds {
		b.progress("round %d/%d (%s so far)", r+1, b.cfg.Rounds, time.Since(start).Round(time.Second))
		order := append(slices.Clone(b.targets[r%len(b.targets):]), b.targets[:r%len(b.targets)]...)
		for _, w := range []string{"64B", "64KiB", "rtt"} {
			for _, t := range order {
				if err := b.once(t, w, false); err != nil {
					return err
				}
			}
		}
		b.addedLatency(r)
	}
	// The memory test runs alone: stop the throughput proxies first.
	b.stopAll()
	if b.cfg.Conns > 0 {
		for _, scheme := range []string{"ws", "wss"} {
			if err := b.memory("wstap", scheme); err != nil {
				return err
			}
		}
		if err := b.memory("tunnel", "ws"); err != nil {
			return err
		}
	}
	return nil
}

// once runs one workload on t and records it unless warm.
func (b *bench) once(t *target, w string, warm bool) error {
	n64, n64k, rtts, dur := b.cfg.N64, b.cfg.N64K, b.cfg.RTTs, b.cfg.Duration
	if warm {
		n64, n64k, rtts, dur = min(n64, 5000), min(n64k, 100), min(rtts, 200), min(dur, 500*time.Millisecond)
	}
	s := b.stats[t.Name]
	switch w {
	case "64B":
		r, err := measure(t, func(c *websocket.Conn) (result, error) { return pipelined(c, 64, n64, b.cfg.Window64, dur) })
		if err != nil || warm {
			return err
		}
		s.Msgs64 = append(s.Msgs64, float64(r.count)/r.elapsed.Seconds())
		s.CPU64 = append(s.CPU64, r.cpu.Seconds()/r.elapsed.Seconds())
		s.Counts = append(s.Counts, r.count)
		s.Sys64 = append(s.Sys64, float64(r.syscalls)/float64(r.count))
	case "64KiB":
		r, err := measure(t, func(c *websocket.Conn) (result, error) { return pipelined(c, 64<<10, n64k, b.cfg.Window64K, dur) })
		if err != nil || warm {
			return err
		}
		s.MB64K = append(s.MB64K, float64(r.count)*(64<<10)/1e6/r.elapsed.Seconds())
		s.CPU64K = append(s.CPU64K, r.cpu.Seconds()/r.elapsed.Seconds())
		s.Counts2 = append(s.Counts2, r.count)
		s.Sys64K = append(s.Sys64K, float64(r.syscalls)/float64(r.count))
	case "rtt":
		r, err := measure(t, func(c *websocket.Conn) (result, error) { return latency(c, rtts, 3*dur) })
		if err != nil || warm {
			return err
		}
		sorted := sortedCopy(r.lat)
		s.P50 = append(s.P50, us(percentile(sorted, 50)))
		s.P99 = append(s.P99, us(percentile(sorted, 99)))
	}
	return nil
}

// addedLatency records, for round r, each target's p50 minus direct's (same scheme).
func (b *bench) addedLatency(r int) {
	for _, t := range b.targets {
		base := b.stats["direct "+t.scheme]
		s := b.stats[t.Name]
		s.AddP50 = append(s.AddP50, s.P50[r]-base.P50[r])
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// memory opens cfg.Conns connections through a fresh proxy of kind and records its RSS.
func (b *bench) memory(kind, scheme string) error {
	var p *childproc.Child
	var err error
	d := &websocket.Dialer{HandshakeTimeout: 60 * time.Second, WriteBufferPool: memPool}
	switch kind {
	case "wstap":
		p, err = childproc.StartWstap(b.wstapBin, b.caDir)
		d.TLSClientConfig = tlsConfig(b.caPool)
	case "tunnel":
		p, err = startTunnel()
		d.TLSClientConfig = tlsConfig(b.echo.pool)
	}
	if err != nil {
		return err
	}
	b.track(p)
	defer p.Stop()
	d.Proxy = proxyFunc(p.Addr)
	url := "ws" + strings.TrimPrefix(b.echo.ws.URL, "http") + "/"
	if scheme == "wss" {
		url = "wss" + strings.TrimPrefix(b.echo.wss.URL, "https") + "/"
	}
	t := &target{Name: kind + " " + scheme, kind: kind, scheme: scheme, url: url, dialer: d, proc: p}
	b.progress("memory: %d open connections through %s", b.cfg.Conns, t.Name)
	warm, err := openConns(t, 1, 1)
	if err != nil {
		return err
	}
	closeAll(warm)
	time.Sleep(500 * time.Millisecond)
	idle, _, err := p.Mem()
	if err != nil {
		return err
	}
	conns, err := openConns(t, b.cfg.Conns, b.cfg.Parallel)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	time.Sleep(500 * time.Millisecond)
	rss, hwm, err := p.Mem()
	if err != nil {
		return err
	}
	if err := p.Alive(); err != nil {
		return err
	}
	if b.cfg.Hold > 0 {
		b.progress("memory: holding %d connections through %s (pid %d) for %s", len(conns), t.Name, p.Cmd.Process.Pid, b.cfg.Hold)
		time.Sleep(b.cfg.Hold)
	}
	b.rss = append(b.rss, rssResult{Target: t.Name, Conns: len(conns), Idle: idle, Open: rss, Peak: hwm,
		PerConn: float64(rss-idle) / float64(len(conns))})
	return nil
}

// summary is the medians of one target.
type summary struct {
	Name    string  `json:"target"`
	Msgs64  float64 `json:"msgs_per_s_64B"`
	CPU64   float64 `json:"cpu_64B"`
	MB64K   float64 `json:"mb_per_s_64KiB"`
	CPU64K  float64 `json:"cpu_64KiB"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	AddP50  float64 `json:"added_p50_us"`
	proxied bool
}

func (b *bench) summaries() []summary {
	var out []summary
	for _, t := range b.targets {
		s := b.stats[t.Name]
		out = append(out, summary{Name: t.Name, Msgs64: median(s.Msgs64), CPU64: median(s.CPU64), MB64K: median(s.MB64K),
			CPU64K: median(s.CPU64K), P50: median(s.P50), P99: median(s.P99), AddP50: median(s.AddP50), proxied: t.proc != nil})
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is one comparison of two targets.
type ratio struct {
	Of       string  `json:"of"`
	To       string  `json:"to"`
	Msgs64   float64 `json:"msgs_64B"`
	MB64K    float64 `json:"mb_64KiB"`
	AddedP50 float64 `json:"added_p50,omitempty"` // of's added p50 / to's (proxies only)
}

func (b *bench) ratios(sums []summary) []ratio {
	by := map[string]summary{}
	for _, s := range sums {
		by[s.Name] = s
	}
	var out []ratio
	add := func(of, to string) {
		a, okA := by[of]
		z, okZ := by[to]
		if !okA || !okZ {
			return
		}
		r := ratio{Of: of, To: to, Msgs64: a.Msgs64 / z.Msgs64, MB64K: a.MB64K / z.MB64K}
		if z.proxied && z.AddP50 > 0 {
			r.AddedP50 = a.AddP50 / z.AddP50
		}
		out = append(out, r)
	}
	for _, scheme := range []string{"ws", "wss"} {
		for _, kind := range []string{"tunnel", "wstap", "mitmdump"} {
			add(kind+" "+scheme, "direct "+scheme)
		}
		add("wstap "+scheme, "tunnel "+scheme)
		add("wstap "+scheme, "mitmdump "+scheme)
	}
	return out
}

// check is one target of the benchmark: what is measured against which bound.
type check struct {
	What string `json:"what"`
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

// printChecks prints a section's checks, PASS or FAIL, and its notes.
func printChecks(out io.Writer, checks []check, notes []string) {
	for _, c := range checks {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(out, "[%s] %s: %s\n", mark, c.What, c.Got)
	}
	for _, n := range notes {
		fmt.Fprintln(out, "note:", n)
	}
}

func (b *bench) checks(sums []summary) []check {
	by := map[string]summary{}
	for _, s := range sums {
		by[s.Name] = s
	}
	var out []check
	w, okW := by["wstap ws"]
	tu, okT := by["tunnel ws"]
	if okW && okT {
		r := w.Msgs64 / tu.Msgs64
		out = append(out, check{"wstap ws 64 B msgs/s >= 0.70x tunnel ws", fmt.Sprintf("%.2fx", r), r >= 0.70})
		r = w.MB64K / tu.MB64K
		out = append(out, check{"wstap ws 64 KiB MB/s >= 0.70x tunnel ws", fmt.Sprintf("%.2fx", r), r >= 0.70})
		limit := 2 * max(tu.AddP50, 1)
		out = append(out, check{"wstap ws added p50 <= 2x tunnel ws's (min 1 µs)",
			fmt.Sprintf("%.1f µs vs tunnel %.1f µs (limit %.1f µs)", w.AddP50, tu.AddP50, limit), w.AddP50 <= limit})
	}
	if m, ok := by["mitmdump ws"]; okW && ok {
		r := w.Msgs64 / m.Msgs64
		out = append(out, check{"wstap ws 64 B msgs/s >= 10x mitmdump ws", fmt.Sprintf("%.1fx", r), r >= 10})
	}
	for _, r := range b.rss {
		if r.Target == "wstap wss" {
			out = append(out, check{fmt.Sprintf("wstap wss RSS per open connection <= 100 KiB (%d conns)", r.Conns),
				fmt.Sprintf("%.1f KiB", r.PerConn/1024), r.PerConn <= 100*1024})
		}
	}
	return out
}

func (b *bench) header() string {
	return fmt.Sprintf("wstap-bench: %d rounds (medians); 64 B x <=%d (window %d), 64 KiB x <=%d (window %d), each <=%s; %d round trips; %s, GOMAXPROCS %d, %d CPUs",
		b.cfg.Rounds, b.cfg.N64, b.cfg.Window64, b.cfg.N64K, b.cfg.Window64K, b.cfg.Duration, b.cfg.RTTs,
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
}

func (b *bench) print(out io.Writer) {
	sums := b.summaries()
	fmt.Fprintln(out, b.header())
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\t64B msgs/s\tx direct\tcpu\t64KiB MB/s\tx direct\tcpu\tp50 µs\tp99 µs\t+p50 µs\t")
	base := map[string]summary{}
	for _, s := range sums {
		if strings.HasPrefix(s.Name, "direct ") {
			base[strings.TrimPrefix(s.Name, "direct ")] = s
		}
	}
	for _, s := range sums {
		scheme := s.Name[strings.LastIndexByte(s.Name, ' ')+1:]
		d := base[scheme]
		cpu64, cpu64k, add := "-", "-", "-"
		if s.proxied {
			cpu64, cpu64k, add = fmt.Sprintf("%.2f", s.CPU64), fmt.Sprintf("%.2f", s.CPU64K), fmt.Sprintf("%.1f", s.AddP50)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\t%s\t%.3f\t%s\t%.1f\t%.1f\t%s\t\n", s.Name, commas(s.Msgs64), s.Msgs64/d.Msgs64, cpu64,
			commas(s.MB64K), s.MB64K/d.MB64K, cpu64k, s.P50, s.P99, add)
	}
	tw.Flush()
	fmt.Fprintln(out, "cpu: the proxy process's CPU time / wall time (1.00 = one core); +p50: p50 minus direct's in the same round")
	for _, t := range b.targets {
		if t.kind == "wstap" {
			s := b.stats[t.Name]
			fmt.Fprintf(out, "%s: %.2f read+write syscalls per 64 B echo, %.1f per 64 KiB echo (both directions; /proc/PID/io)\n",
				t.Name, median(s.Sys64), median(s.Sys64K))
		}
	}

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ratio\t64B msgs/s\t64KiB MB/s\tadded p50\t")
	for _, r := range b.ratios(sums) {
		add := "-"
		if r.AddedP50 != 0 {
			add = fmt.Sprintf("%.2fx", r.AddedP50)
		}
		fmt.Fprintf(tw, "%s / %s\t%s\t%s\t%s\t\n", r.Of, r.To, fmtRatio(r.Msgs64), fmtRatio(r.MB64K), add)
	}
	tw.Flush()

	if len(b.rss) > 0 {
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "memory\tconns\tRSS idle MiB\tRSS open MiB\tpeak MiB\tKiB/conn\t")
		for _, r := range b.rss {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.Target, r.Conns, mib(r.Idle), mib(r.Open), mib(r.Peak), r.PerConn/1024)
		}
		tw.Flush()
		fmt.Fprintln(out, "KiB/conn: (RSS open - RSS idle) / conns; each connection exchanged one 64 B message and stays open")
	}

	fmt.Fprintln(out)
	printChecks(out, b.checks(sums), b.notes)
}

func (b *bench) printJSON(out io.Writer) error {
	doc := map[string]any{"config": b.cfg}
	if b.core {
		sums := b.summaries()
		series := map[string]*series{}
		for _, t := range b.targets {
			series[t.Name] = b.stats[t.Name]
		}
		doc["header"] = b.header()
		doc["medians"] = sums
		doc["rounds"] = series
		doc["ratios"] = b.ratios(sums)
		doc["memory"] = b.rss
		doc["checks"] = b.checks(sums)
		doc["notes"] = b.notes
	}
	if b.chains != nil {
		doc["chains"] = b.chainsJSON()
	}
	if b.ui != nil {
		doc["ui"] = b.uiJSON()
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func fmtRatio(r float64) string {
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0fx", r)
	case r >= 0.1:
		return fmt.Sprintf("%.2fx", r)
	default:
		return fmt.Sprintf("%.4fx", r)
	}
}

// commas formats v with thousands separators, one decimal below 100.
func commas(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New(path + ": no certificate")
	}
	return pool, nil
}

func mitmVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "version unknown"
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(first)
}
