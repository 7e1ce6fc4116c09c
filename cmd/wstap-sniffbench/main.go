// Command wstap-sniffbench measures wstap's passive sniff mode against tshark and
// against a bare gopacket read+decode loop (the ceiling), on one synthetic capture
// generated in a temporary directory and deleted afterwards.
//
//	go run ./cmd/wstap-sniffbench [-messages N] [-conns N] [-dir DIR] [-keep]
//	                              [-no-tshark] [-tshark-fraction F] [-wstap BIN] [-pprof DIR]
//
// The capture: Ethernet/IPv4/TCP, a few WebSocket connections (TCP handshake, HTTP
// upgrade and 101 each) interleaved, N text messages (default 1,000,000) of 16 B to
// 64 KiB, client frames masked, Ethernet-size segments (1448 B); about 400 MB for
// the default N. It measures, one after the other:
//
//   - the gopacket ceiling: pcapgo reader + DecodingLayerParser (Ethernet, IPv4, TCP),
//     no reassembly, in this process;
//   - wstap sniff -r FILE --log OUT.jsonl --quiet (built from this module with go build);
//   - tshark -r FILE -d tcp.port==9200,http -Y websocket -T fields -e websocket.payload.text.
//
// For each: wall time, MB/s of capture file (MB = 10^6 bytes), peak RSS
// (/proc/PID/status VmHWM, polled every 5 ms). Then the text messages of wstap's JSONL, of tshark and of the
// generator are compared: count, a hash of all payloads in order, and the first and
// last -sample payloads one by one. Finally each target, named with its bound, as [PASS]/[FAIL]
// lines. Not meant for CI: it needs about 1 GB of disk and minutes of CPU.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func main() {
	os.Exit(run())
}

type options struct {
	messages, conns, sample int
	dir, wstap              string
	keep, noTshark          bool
	fraction                float64
	seed                    uint64
	pprofDir                string

	lossy                   bool
	lossyMixes, lossyK      string
	lossySeeds, lossyMixedN int
}

func run() int {
	var o options
	flag.IntVar(&o.messages, "messages", 1_000_000, "text messages in the capture")
	flag.IntVar(&o.conns, "conns", 4, "WebSocket connections, interleaved")
	flag.IntVar(&o.sample, "sample", 1000, "payloads compared one by one at each end of the sequence")
	flag.StringVar(&o.dir, "dir", "", "parent `DIR` of the temporary directory (default: the system's)")
	flag.StringVar(&o.wstap, "wstap", "", "wstap `BINARY` to measure (default: go build ./cmd/wstap of this module)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (capture and JSONL)")
	flag.BoolVar(&o.noTshark, "no-tshark", false, "skip tshark")
	flag.Float64Var(&o.fraction, "tshark-fraction", 1, "run tshark (and a second wstap run, for the comparison) on a prefix of this `FRACTION` of the capture")
	flag.Uint64Var(&o.seed, "seed", 1, "generator seed")
	flag.StringVar(&o.pprofDir, "pprof", "", "also run the sniffer in this process under pprof and write cpu.pprof and heap.pprof (allocations) to `DIR`")
	flag.BoolVar(&o.lossy, "lossy", false, "instead: count the messages recovered, missing, uncertain and corrupted in captures that lost every K-th segment (-messages defaults to 80000)")
	flag.StringVar(&o.lossyMixes, "mix", "issue,anywhere,mixed", "-lossy: the captures, among issue (JSON text, one message per send), anywhere (the same, segments cut anywhere) and mixed")
	flag.StringVar(&o.lossyK, "k", "10,20,40,100", "-lossy: the `K` values, separated by commas")
	flag.IntVar(&o.lossySeeds, "seeds", 5, "-lossy: captures a mix and K, with seeds from -seed on")
	flag.IntVar(&o.lossyMixedN, "mixed-messages", 4000, "-lossy: messages in a mixed capture (up to 64 KiB each)")
	flag.Parse()
	if o.lossy {
		return runLossy(o)
	}
	if o.messages < 1 || o.conns < 1 || o.fraction <= 0 || o.fraction > 1 {
		fmt.Fprintln(os.Stderr, "wstap-sniffbench: -messages and -conns must be positive, -tshark-fraction in (0, 1]")
		return 2
	}
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "wstap-sniffbench:", err)
		return 1
	}
	return 0
}

// runLossy runs the -lossy count.
func runLossy(o options) int {
	lo := lossyOptions{seed: o.seed, seeds: o.lossySeeds, messages: 80_000, mixedMessages: o.lossyMixedN, dir: o.dir}
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "messages" {
			lo.messages = o.messages
		}
	})
	var err error
	if lo.ks, err = parseInts(o.lossyK); err != nil {
		fmt.Fprintln(os.Stderr, "wstap-sniffbench: -k", err)
		return 2
	}
	for _, m := range strings.Split(o.lossyMixes, ",") {
		if lossyMixes[m] == nil {
			fmt.Fprintf(os.Stderr, "wstap-sniffbench: -mix %q: want issue, anywhere or mixed\n", m)
			return 2
		}
		lo.mixes = append(lo.mixes, m)
	}
	if lo.seeds < 1 || lo.messages < 1 || lo.mixedMessages < 1 {
		fmt.Fprintln(os.Stderr, "wstap-sniffbench: -seeds, -messages and -mixed-messages must be positive")
		return 2
	}
	if err := lossy(lo); err != nil {
		fmt.Fprintln(os.Stderr, "wstap-sniffbench:", err)
		return 1
	}
	return 0
}

func bench(o options) error {
	parent := o.dir
	if parent == "" {
		parent = os.TempDir()
	}
	// Disk: the capture (~440 B a message), the JSONL (~470 B a message), a prefix
	// copy for tshark, and the wstap binary.
	need := uint64(o.messages)*1000 + 100<<20
	var fs syscall.Statfs_t
	if err := syscall.Statfs(parent, &fs); err != nil {
		return fmt.Errorf("free disk of %s: %w", parent, err)
	}
	free := fs.Bavail * uint64(fs.Bsize)
	fmt.Printf("disk: %s free in %s, need about %s\n", mb(int64(free)), parent, mb(int64(need)))
	if free < need {
		return fmt.Errorf("not enough free disk in %s (use -dir or fewer -messages)", parent)
	}
	dir, err := os.MkdirTemp(parent, "wstap-sniffbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Printf("keeping %s\n", dir)
	} else {
		defer func() {
			os.RemoveAll(dir)
			fmt.Printf("removed %s\n", dir)
		}()
	}

	// The wstap binary.
	bin := o.wstap
	if bin == "" {
		bin = filepath.Join(dir, "wstap")
		t := time.Now()
		cmd := exec.Command("go", "build", "-o", bin, "github.com/wstap/wstap/cmd/wstap")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/wstap (run from inside the module): %w", err)
		}
		fmt.Printf("built wstap in %s\n", time.Since(t).Round(time.Millisecond))
	}

	// The capture.
	capPath := filepath.Join(dir, "bench.pcap")
	gs, err := generate(capPath, genOpts{messages: o.messages, conns: o.conns, seed: o.seed, sample: o.sample})
	if err != nil {
		return fmt.Errorf("generating the capture: %w", err)
	}
	fmt.Printf("capture: %s, %d packets, %d connections, %d text messages (%s of payload, largest %d B), 1448 B segments; written in %s\n",
		mb(gs.size), gs.packets, o.conns, gs.expected.count, mb(gs.payload), gs.maxMsg, gs.took.Round(time.Millisecond))
	if gs.size < 300e6 {
		fmt.Printf("note: the capture is smaller than the standard 300 MB one the targets are set for (use the default -messages)\n")
	}

	// (1) The ceiling, first: it also brings the file into the page cache.
	ceil, err := ceiling(capPath)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	fmt.Printf("\n[ceiling] pcapgo + DecodingLayerParser eth/ipv4/tcp: %s, %s, %d packets, %s of TCP payload\n",
		ceil.took.Round(time.Millisecond), rate(gs.size, ceil.took), ceil.packets, mb(ceil.payload))

	// (2) wstap.
	jsonlPath := filepath.Join(dir, "out.jsonl")
	ws, err := runWstap(bin, capPath, jsonlPath, o.sample)
	if err != nil {
		return err
	}
	fmt.Printf("[wstap]   %s: %s, %s, peak RSS %s, CPU %s\n", ws.cmdline, ws.took.Round(time.Millisecond), rate(gs.size, ws.took), mb(ws.maxRSS), ws.cpu.Round(time.Millisecond))
	fmt.Printf("          %s\n", ws.stderr)
	fmt.Printf("          JSONL %s: %d text messages, %d other lines\n", mb(ws.outSize), ws.msgs.count, ws.other)
	os.Remove(jsonlPath)

	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return err
		}
		if err := profileSniff(capPath, o.pprofDir); err != nil {
			return fmt.Errorf("pprof: %w", err)
		}
	}

	// (3) tshark.
	var ts *procResult
	var tsSize int64
	var wsPrefix *procResult
	var tsExpected *msgDigest
	if !o.noTshark {
		if _, err := exec.LookPath("tshark"); err != nil {
			fmt.Printf("[tshark]  not installed (apt-get install -y tshark); skipped\n")
		} else {
			tsPath, tsFile := capPath, gs.size
			if o.fraction < 1 {
				tsPath = filepath.Join(dir, "prefix.pcap")
				if tsFile, err = prefix(capPath, tsPath, int64(o.fraction*float64(gs.size))); err != nil {
					return fmt.Errorf("prefix file: %w", err)
				}
				fmt.Printf("[tshark]  on a prefix of the capture: %s (%.0f%%), not the whole file\n", mb(tsFile), 100*float64(tsFile)/float64(gs.size))
				if wsPrefix, err = runWstap(bin, tsPath, jsonlPath, o.sample); err != nil {
					return err
				}
				os.Remove(jsonlPath)
				fmt.Printf("[wstap]   same prefix: %s, %s, peak RSS %s; %d text messages\n", wsPrefix.took.Round(time.Millisecond), rate(tsFile, wsPrefix.took), mb(wsPrefix.maxRSS), wsPrefix.msgs.count)
			}
			tsSize = tsFile
			if ts, err = runTshark(tsPath, o.sample); err != nil {
				return err
			}
			fmt.Printf("[tshark]  %s: %s, %s, peak RSS %s, CPU %s\n", ts.cmdline, ts.took.Round(time.Millisecond), rate(tsSize, ts.took), mb(ts.maxRSS), ts.cpu.Round(time.Millisecond))
			fmt.Printf("          %d text messages (%d empty lines)\n", ts.msgs.count, ts.other)
			if o.fraction < 1 {
				tsExpected = wsPrefix.msgs
			} else {
				tsExpected = ws.msgs
			}
		}
	}

	// Comparisons.
	fmt.Printf("\nmessages:\n")
	fmt.Printf("  generator %8d  hash %s\n", gs.expected.count, gs.expected.sum())
	fmt.Printf("  wstap     %8d  hash %s  %s\n", ws.msgs.count, ws.msgs.sum(), compare(gs.expected, ws.msgs))
	if ts != nil {
		what := "wstap"
		if o.fraction < 1 {
			what = "wstap on the prefix"
			fmt.Printf("  wstap pfx %8d  hash %s\n", wsPrefix.msgs.count, wsPrefix.msgs.sum())
		}
		fmt.Printf("  tshark    %8d  hash %s  %s (vs %s)\n", ts.msgs.count, ts.msgs.sum(), compare(tsExpected, ts.msgs), what)
	}

	wsRate := float64(gs.size) / ws.took.Seconds()
	ceilRate := float64(gs.size) / ceil.took.Seconds()
	fmt.Printf("\nratios:\n")
	fmt.Printf("  wstap / ceiling MB/s: %.3f (%s vs %s)\n", wsRate/ceilRate, rate(gs.size, ws.took), rate(gs.size, ceil.took))
	var tsRate float64
	if ts != nil {
		tsRate = float64(tsSize) / ts.took.Seconds()
		fmt.Printf("  wstap / tshark  MB/s: %.1f× (%s vs %s)\n", wsRate/tsRate, rate(gs.size, ws.took), rate(tsSize, ts.took))
		fmt.Printf("  tshark / wstap peak RSS: %.1f× (%s vs %s)\n", float64(ts.maxRSS)/float64(ws.maxRSS), mb(ts.maxRSS), mb(ws.maxRSS))
	}

	fmt.Printf("\ntargets:\n")
	if ts != nil {
		verdict(wsRate >= 30*tsRate, "wstap ≥ 30× tshark's MB/s: %.1f×", wsRate/tsRate)
		same := ts.msgs.count == tsExpected.count && ts.msgs.sum() == tsExpected.sum()
		verdict(same, "messages equal to tshark's: %d vs %d, payload hashes %s", ts.msgs.count, tsExpected.count, map[bool]string{true: "equal", false: "differ"}[ts.msgs.sum() == tsExpected.sum()])
	} else {
		fmt.Printf("[SKIP] wstap ≥ 30× tshark's MB/s (no tshark run)\n[SKIP] messages equal to tshark's\n")
	}
	verdict(ws.msgs.count == gs.expected.count && ws.msgs.sum() == gs.expected.sum(), "wstap messages equal to the generator's: %d vs %d", ws.msgs.count, gs.expected.count)
	peak := ws.maxRSS
	if wsPrefix != nil {
		peak = max(peak, wsPrefix.maxRSS)
	}
	verdict(peak < 100e6, "wstap peak RSS < 100 MB: %s on %s", mb(ws.maxRSS), mb(gs.size))
	return nil
}

func verdict(ok bool, format string, args ...any) {
	tag := "[FAIL]"
	if ok {
		tag = "[PASS]"
	}
	fmt.Printf("%s %s\n", tag, fmt.Sprintf(format, args...))
}

// compare says whether got has the same messages as want: count, hash, and the
// sampled payloads at both ends.
func compare(want, got *msgDigest) string {
	if want.count == got.count && want.sum() == got.sum() {
		return "all payloads equal"
	}
	diff := func(a, b [][]byte, what string) string {
		for i := range min(len(a), len(b)) {
			if !bytes.Equal(a[i], b[i]) {
				return fmt.Sprintf("%s sample #%d differs: want %q, got %q", what, i, trunc(a[i]), trunc(b[i]))
			}
		}
		return ""
	}
	s := "DIFFERENT"
	if d := diff(want.first, got.first, "first"); d != "" {
		return s + "; " + d
	}
	if d := diff(want.lastInOrder(), got.lastInOrder(), "last"); d != "" {
		return s + "; " + d
	}
	return s + fmt.Sprintf("; first and last %d payloads equal", min(len(want.first), len(got.first)))
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + fmt.Sprintf("…(%d B)", len(b))
	}
	return string(b)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func rate(n int64, d time.Duration) string {
	return fmt.Sprintf("%.1f MB/s", float64(n)/1e6/d.Seconds())
}

// ceilingResult is what the bare loop saw.
type ceilingResult struct {
	took             time.Duration
	packets, payload int64
}

// ceiling reads and decodes the capture with a DecodingLayerParser, without reassembly.
func ceiling(path string) (*ceilingResult, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, err
	}
	var eth layers.Ethernet
	var ip4 layers.IPv4
	var tcp layers.TCP
	var pl gopacket.Payload
	p := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &tcp, &pl)
	p.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 4)
	res := &ceilingResult{}
	for {
		data, _, err := r.ZeroCopyReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := p.DecodeLayers(data, &decoded); err != nil {
			return nil, err
		}
		res.packets++
		res.payload += int64(len(tcp.Payload))
	}
	res.took = time.Since(start)
	return res, nil
}

// procResult is a measured process and the messages it reported.
type procResult struct {
	cmdline string
	took    time.Duration
	cpu     time.Duration
	maxRSS  int64 // bytes: VmHWM
	stderr  string
	msgs    *msgDigest
	other   int64 // JSONL lines that are no text message; tshark's empty lines
	outSize int64
}

// measure runs cmd to its end, feeding its stdout (if any) to consume.
func measure(cmd *exec.Cmd, consume func(io.Reader) error) (*procResult, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var out io.ReadCloser
	var err error
	if consume != nil {
		if out, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	}
	res := &procResult{cmdline: strings.Join(append([]string{filepath.Base(cmd.Path)}, cmd.Args[1:]...), " ")}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Peak RSS: VmHWM of the process, polled. (wait4's ru_maxrss is no good here:
	// Linux folds in the RSS of the memory the child shared with this process until
	// its exec, so it reports this process's own peak when that is larger.)
	hwm := make(chan int64, 1)
	stop := make(chan struct{})
	go func() {
		var peak int64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmHWM(cmd.Process.Pid); v > peak {
				peak = v
			}
			select {
			case <-stop:
				hwm <- peak
				return
			case <-t.C:
			}
		}
	}()
	var cerr error
	if consume != nil {
		cerr = consume(out)
		io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	res.took = time.Since(start)
	close(stop)
	res.maxRSS = <-hwm
	res.stderr = strings.TrimSpace(stderr.String())
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if werr != nil {
		return nil, fmt.Errorf("%s: %w\n%s", res.cmdline, werr, res.stderr)
	}
	return res, cerr
}

// runWstap runs wstap sniff on capture, then reads the text messages of its JSONL.
func runWstap(bin, capture, jsonl string, sample int) (*procResult, error) {
	res, err := measure(exec.Command(bin, "sniff", "-r", capture, "--log", jsonl, "--quiet"), nil)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(jsonl)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		res.outSize = fi.Size()
	}
	res.msgs = newDigest(sample)
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var ev struct {
		Event, Opcode, Payload, Encoding string
	}
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line[:min(len(line), 40)], []byte(`"event":"message"`)) {
			res.other++
			continue
		}
		ev.Event, ev.Opcode, ev.Payload, ev.Encoding = "", "", "", ""
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("JSONL: %w", err)
		}
		if ev.Opcode != "text" {
			res.other++
			continue
		}
		if ev.Encoding != "text" {
			return nil, fmt.Errorf("JSONL: a text message with encoding %q", ev.Encoding)
		}
		res.msgs.add([]byte(ev.Payload))
	}
	return res, sc.Err()
}

// runTshark runs tshark on capture and reads the text payloads it prints, one line
// a packet, several messages in one packet separated by commas.
func runTshark(capture string, sample int) (*procResult, error) {
	cmd := exec.Command("tshark", "-n", "-r", capture, "-d", fmt.Sprintf("tcp.port==%d,http", serverPort),
		"-Y", "websocket", "-T", "fields", "-e", "websocket.payload.text")
	var msgs *msgDigest
	var empty int64
	res, err := measure(cmd, func(r io.Reader) error {
		msgs = newDigest(sample)
		br := bufio.NewReaderSize(r, 1<<20)
		for {
			line, err := br.ReadBytes('\n')
			line = bytes.TrimSuffix(line, []byte("\n"))
			if len(line) > 0 {
				for m := range bytes.SplitSeq(line, []byte(",")) {
					msgs.add(m)
				}
			} else if err == nil {
				empty++
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil {
		return nil, err
	}
	res.msgs, res.other = msgs, empty
	return res, nil
}

// prefix copies the packets of src to dst until limit bytes, and returns dst's size.
func prefix(src, dst string, limit int64) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return 0, err
	}
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(snapLen, r.LinkType()); err != nil {
		return 0, err
	}
	n := int64(24)
	for n < limit {
		data, ci, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if err := w.WritePacket(ci, data); err != nil {
			return 0, err
		}
		n += 16 + int64(len(data))
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return n, out.Close()
}

// vmHWM returns the peak resident set size of process pid in bytes, or 0.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb * 1024
		}
	}
	return 0
}
