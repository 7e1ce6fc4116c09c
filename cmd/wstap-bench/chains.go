package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wstap/wstap/internal/childproc"
)

// The chains section: 1 KiB text messages, each base64(nonce(12) || AES-256-GCM
// ciphertext || tag(16)) of a chat-like JSON object, echoed through wstap processes
// running different hook chains that decrypt them, rewrite chainMatch to chainWith
// in about half of them, and encrypt those again.

// chainKeyHex is the fixed AES-256 key of the chains section (the client encrypts
// with it; every chain decrypts with it).
const chainKeyHex = "5a1e7c0d9b3f24866fe1d2c3b4a59687f0e1d2c3b4a5968778695a4b3c2d1e0f"

const (
	chainMatch = "secret" // what the replace hooks rewrite...
	chainWith  = "public" // ...into (the same length, so a rewritten message stays 1 KiB)
	// chainPlain is the JSON plaintext size that makes the wire message exactly 1 KiB:
	// base64 of 12 + 740 + 16 = 768 bytes is 1024 characters.
	chainPlain = 740
	chainWire  = 1024
	// chainPool is how many distinct pre-encrypted messages the client cycles through.
	chainPool = 1024
)

//go:embed hooks/chain.go hooks/chain.py
var hookFiles embed.FS

// chainKinds are the chains measured, in order; "empty" is the baseline.
var chainKinds = []string{"empty", "compiled", "yaegi", "exec"}

// chainTarget is one wstap process with one chain.
type chainTarget struct {
	Name     string `json:"target"`
	Chain    string `json:"chain"` // the --hook arguments, for the report
	args     []string
	rewrites bool // the chain rewrites matching messages (all but empty)
	t        *target
}

// chainSet is the client's traffic: pre-encrypted messages and what their echoes
// must decrypt to.
type chainSet struct {
	aead    cipher.AEAD
	msgs    []chainMsg
	end     []byte // the last message of a run (shorter than 1 KiB, never rewritten)
	matches int    // how many of msgs contain chainMatch
}

type chainMsg struct {
	wire  []byte // what the client sends
	plain []byte // its plaintext
	want  []byte // the plaintext with chainMatch rewritten
	match bool
}

// chatWords fill the messages' text; none contains chainMatch or chainWith.
var chatWords = strings.Fields(`the a to and of in is it you that for on was with
	are this be at have from or one had by word but not what all were we when your can
	said there use an each which she do how their if will up other about out many then
	them these so some her would make like him into time has look two more write go see
	number no way could people my than first water been call who oil its now find long
	down day did get come made may part deploy meeting lunch tomorrow review ticket
	build release coffee server client launch budget design draft notes`)

// newChainSet makes chainPool messages from a fixed seed, about half of them with
// chainMatch in their text (once or twice), and encrypts them with chainKeyHex.
func newChainSet() (*chainSet, error) {
	key, _ := hex.DecodeString(chainKeyHex)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	cs := &chainSet{aead: aead}
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	rooms := []string{"general", "random", "dev", "ops", "support"}
	nonce := make([]byte, aead.NonceSize())
	for i := range chainPool {
		match := rng.IntN(2) == 0
		type user struct {
			ID   int    `json:"id"`
			Name string `json:"name"`
			Role string `json:"role"`
		}
		msg := struct {
			Type     string         `json:"type"`
			ID       string         `json:"id"`
			Room     string         `json:"room"`
			From     user           `json:"from"`
			TS       int64          `json:"ts"`
			Text     string         `json:"text"`
			Mentions []string       `json:"mentions"`
			Edited   bool           `json:"edited"`
			Reacts   map[string]int `json:"reactions"`
		}{
			Type: "message", ID: fmt.Sprintf("m-%08d", i), Room: rooms[rng.IntN(len(rooms))],
			From: user{ID: 1000 + rng.IntN(9000), Name: names[rng.IntN(len(names))], Role: "member"},
			TS:   1764100000000 + int64(i)*1337, Mentions: []string{names[rng.IntN(len(names))]},
			Reacts: map[string]int{"+1": rng.IntN(9), "eyes": rng.IntN(3)},
		}
		head, err := json.Marshal(msg)
		if err != nil {
			return nil, err
		}
		msg.Text = chatText(rng, chainPlain-len(head), match)
		plain, err := json.Marshal(msg)
		if err != nil {
			return nil, err
		}
		if len(plain) != chainPlain || bytes.Contains(plain, []byte(chainMatch)) != match || bytes.Contains(plain, []byte(chainWith)) {
			return nil, fmt.Errorf("chains: message %d: %d bytes of plaintext (want %d), match %v: %s", i, len(plain), chainPlain, match, plain)
		}
		for j := range nonce {
			nonce[j] = byte(rng.Uint32())
		}
		raw := aead.Seal(slices.Clone(nonce), nonce, plain, nil)
		m := chainMsg{wire: []byte(base64.StdEncoding.EncodeToString(raw)), plain: plain, match: match,
			want: bytes.ReplaceAll(plain, []byte(chainMatch), []byte(chainWith))}
		if len(m.wire) != chainWire {
			return nil, fmt.Errorf("chains: message %d is %d bytes on the wire, want %d", i, len(m.wire), chainWire)
		}
		if match {
			cs.matches++
		}
		cs.msgs = append(cs.msgs, m)
	}
	raw := aead.Seal(slices.Clone(nonce), nonce, []byte(`{"type":"end"}`), nil)
	cs.end = []byte(base64.StdEncoding.EncodeToString(raw))
	return cs, nil
}

// chatText returns n bytes of words (chainMatch among them once or twice when match).
func chatText(rng *rand.Rand, n int, match bool) string {
	var words []string
	size := -1
	for size < n {
		w := chatWords[rng.IntN(len(chatWords))]
		words = append(words, w)
		size += len(w) + 1
	}
	if match {
		for range 1 + rng.IntN(2) {
			words[rng.IntN(len(words))] = chainMatch
		}
	}
	s := strings.Join(words, " ")
	for len(s) < n {
		s += "."
	}
	s = s[:n]
	// The cut may have split a chainMatch at the end; put a whole one back in front.
	if match && !strings.Contains(s, chainMatch) {
		s = chainMatch + s[len(chainMatch):]
	}
	if !match && strings.Contains(s, chainMatch) {
		s = strings.ReplaceAll(s, chainMatch, "review")
	}
	return s
}

// verifier decrypts echoes with reused buffers.
type verifier struct {
	aead       cipher.AEAD
	raw, plain []byte
}

func (v *verifier) open(wire []byte) ([]byte, error) {
	n, err := base64.StdEncoding.Strict().Decode(v.raw[:cap(v.raw)], wire)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	ns := v.aead.NonceSize()
	if n < ns+v.aead.Overhead() {
		return nil, errors.New("too short for nonce and tag")
	}
	raw := v.raw[:n]
	pt, err := v.aead.Open(v.plain[:0], raw[:ns], raw[ns:], nil)
	if err != nil {
		return nil, fmt.Errorf("does not decrypt: %w", err)
	}
	v.plain = pt
	return pt, nil
}

// chainResult is one measurement of a chain.
type chainResult struct {
	count     int // messages echoed (and verified)
	rewritten int // of which the chain rewrote
	elapsed   time.Duration
	cpu       time.Duration // the wstap process's and its hook processes' CPU time
}

// pipelinedChain sends up to n of the set's messages (fewer if maxDur passes first)
// as text, cycling through them, while this goroutine reads and checks the echoes,
// with at most window in flight (see pipelined). Every echo is decrypted: one whose
// message contains chainMatch must come back rewritten (re-encrypted, with a fresh
// nonce) when the chain rewrites, and every other must come back byte for byte.
func pipelinedChain(c *websocket.Conn, cs *chainSet, rewrites bool, n, window int, maxDur time.Duration) (chainResult, error) {
	deadline := time.Now().Add(maxDur + 60*time.Second)
	c.SetReadDeadline(deadline)
	c.SetWriteDeadline(deadline)
	chunk := max(window/4, 1)
	credit := make(chan struct{}, window/chunk+1)
	stop := make(chan struct{})
	werr := make(chan error, 1)
	start := time.Now()
	go func() {
		var err error
		avail := window
		for i := 0; i < n && err == nil; i++ {
			if i&63 == 0 && time.Since(start) > maxDur {
				break
			}
			if avail == 0 {
				select {
				case <-credit:
					avail += chunk
				case <-stop:
					err = errStopped
					continue
				}
			}
			avail--
			err = c.WriteMessage(websocket.TextMessage, cs.msgs[i%len(cs.msgs)].wire)
		}
		if err == nil {
			err = c.WriteMessage(websocket.TextMessage, cs.end)
		}
		werr <- err
	}()
	fail := func(err error) (chainResult, error) {
		close(stop)
		c.Close()
		<-werr
		return chainResult{}, err
	}
	v := &verifier{aead: cs.aead, raw: make([]byte, chainWire), plain: make([]byte, 0, chainWire)}
	buf := make([]byte, chainWire+1)
	var r chainResult
	for {
		mt, rd, err := c.NextReader()
		if err != nil {
			return fail(fmt.Errorf("read echo %d: %w", r.count, err))
		}
		k, err := io.ReadFull(rd, buf)
		got := buf[:k]
		if err != io.ErrUnexpectedEOF || mt != websocket.TextMessage {
			return fail(fmt.Errorf("echo %d: opcode %d, %d+ bytes (%v), want a text message of %d", r.count, mt, k, err, chainWire))
		}
		if k != chainWire && bytes.Equal(got, cs.end) {
			break
		}
		m := &cs.msgs[r.count%len(cs.msgs)]
		pt, err := v.open(got)
		switch {
		case err != nil:
			return fail(fmt.Errorf("echo %d (%d bytes): %w", r.count, k, err))
		case rewrites && m.match && bytes.Equal(got, m.wire):
			return fail(fmt.Errorf("echo %d came back unchanged: the chain did not rewrite %q", r.count, chainMatch))
		case rewrites && m.match && !bytes.Equal(pt, m.want):
			return fail(fmt.Errorf("echo %d was rewritten wrongly: %s", r.count, firstDiff(pt, m.want)))
		case rewrites && m.match:
			r.rewritten++
		case !bytes.Equal(got, m.wire) && bytes.Equal(pt, m.plain):
			return fail(fmt.Errorf("echo %d came back re-encrypted, want it byte for byte (nothing in it to rewrite)", r.count))
		case !bytes.Equal(got, m.wire):
			return fail(fmt.Errorf("echo %d changed, want it byte for byte: %s", r.count, firstDiff(pt, m.plain)))
		}
		r.count++
		if r.count%chunk == 0 {
			credit <- struct{}{}
		}
	}
	r.elapsed = time.Since(start)
	if err := <-werr; err != nil {
		return chainResult{}, fmt.Errorf("write: %w", err)
	}
	return r, nil
}

// firstDiff says where got first differs from want, with some context.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(i-24, 0)
	return fmt.Sprintf("plaintext byte %d: %q, want %q", i, got[lo:min(i+40, len(got))], want[lo:min(i+40, len(want))])
}

// chainSeries holds one chain's per-round values.
type chainSeries struct {
	Msgs      []float64 `json:"msgs_per_s"`
	CPU       []float64 `json:"cpu"`
	CPUPerMsg []float64 `json:"cpu_us_per_msg"`
	Counts    []int     `json:"msgs"`
	Rewritten []int     `json:"rewritten"`
}

// chainSummary is the medians of one chain.
type chainSummary struct {
	Name      string  `json:"target"`
	Chain     string  `json:"chain"`
	Msgs      float64 `json:"msgs_per_s"`
	CPU       float64 `json:"cpu"`
	CPUPerMsg float64 `json:"cpu_us_per_msg"`
	Echoed    int     `json:"msgs_verified"` // over all rounds
	Rewritten int     `json:"msgs_rewritten"`
}

// chainBench is the chains section's state.
type chainBench struct {
	set     *chainSet
	targets []*chainTarget
	stats   map[string]*chainSeries
	notes   []string
	logBad  map[string][]string // warnings and errors the proxies logged
}

// chainHookArgs returns the --hook arguments of chain kind, with the hook files in dir.
func chainHookArgs(kind, dir, python string) []string {
	aesHook := "aes:mode=gcm,key=hex:" + chainKeyHex
	replace := "replace:match=" + chainMatch + ",with=" + chainWith
	switch kind {
	case "compiled":
		return []string{"--hook", "base64", "--hook", aesHook, "--hook", replace}
	case "yaegi":
		return []string{"--hook", filepath.Join(dir, "chain.go")}
	case "exec":
		return []string{"--hook", "exec:" + python + " " + filepath.Join(dir, "chain.py"), "--hook", replace}
	}
	return nil
}

// chainEnv is what the hook files read.
func chainEnv() []string {
	return []string{"WSTAP_BENCH_KEY=" + chainKeyHex, "WSTAP_BENCH_MATCH=" + chainMatch, "WSTAP_BENCH_WITH=" + chainWith}
}

// runChains measures the chains: one wstap process each, all echoing through the ws
// echo server, alternating round by round like the core section.
func (b *bench) runChains() error {
	cb := &chainBench{stats: map[string]*chainSeries{}, logBad: map[string][]string{}}
	b.chains = cb
	var err error
	if cb.set, err = newChainSet(); err != nil {
		return err
	}
	dir := filepath.Join(b.tmp, "hooks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"chain.go", "chain.py"} {
		data, err := hookFiles.ReadFile("hooks/" + f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return err
		}
	}
	chosen := strings.Split(b.cfg.Chains, ",")
	for _, k := range chosen {
		if !slices.Contains(chainKinds, k) {
			return fmt.Errorf("-chains: unknown chain %q (want some of %s)", k, strings.Join(chainKinds, ","))
		}
	}
	url := "ws" + strings.TrimPrefix(b.echo.ws.URL, "http") + "/"
	for _, kind := range chainKinds {
		if kind != "empty" && !slices.Contains(chosen, kind) { // empty is every ratio's baseline
			continue
		}
		if kind == "exec" {
			if err := exec.Command(b.cfg.Python, "-c", "import cryptography.hazmat.primitives.ciphers.aead").Run(); err != nil {
				cb.notes = append(cb.notes, fmt.Sprintf("exec: not measured (%s with the cryptography module is needed: apt-get install python3-cryptography): %v", b.cfg.Python, err))
				continue
			}
		}
		ct := &chainTarget{Name: kind, args: chainHookArgs(kind, dir, b.cfg.Python), rewrites: kind != "empty"}
		ct.Chain = chainDisplay(ct.args)
		p, err := childproc.StartWstapWith("wstap["+kind+"]", b.wstapBin, b.caDir, chainEnv(), ct.args...)
		if err != nil {
			return err
		}
		b.track(p)
		d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, WriteBufferSize: clientWriteBuffer, WriteBufferPool: clientPool,
			Proxy: proxyFunc(p.Addr)}
		ct.t = &target{Name: "chain " + kind, kind: "wstap", scheme: "ws", url: url, dialer: d, proc: p}
		cb.targets = append(cb.targets, ct)
		cb.stats[kind] = &chainSeries{}
	}

	b.progress("chains: warming up %d chains", len(cb.targets))
	for _, ct := range cb.targets {
		if _, err := b.chainOnce(ct, true); err != nil {
			return err
		}
	}
	start := time.Now()
	for r := range b.cfg.Rounds {
		b.progress("chains: round %d/%d (%s so far)", r+1, b.cfg.Rounds, time.Since(start).Round(time.Second))
		order := append(slices.Clone(cb.targets[r%len(cb.targets):]), cb.targets[:r%len(cb.targets)]...)
		for _, ct := range order {
			res, err := b.chainOnce(ct, false)
			if err != nil {
				return err
			}
			s := cb.stats[ct.Name]
			s.Msgs = append(s.Msgs, float64(res.count)/res.elapsed.Seconds())
			s.CPU = append(s.CPU, res.cpu.Seconds()/res.elapsed.Seconds())
			s.CPUPerMsg = append(s.CPUPerMsg, us(res.cpu)/float64(res.count))
			s.Counts = append(s.Counts, res.count)
			s.Rewritten = append(s.Rewritten, res.rewritten)
		}
	}
	for _, ct := range cb.targets {
		if bad := ct.t.proc.Problems(); len(bad) > 0 {
			cb.logBad[ct.Name] = bad
		}
		ct.t.proc.Stop()
	}
	return nil
}

// chainOnce runs one pipelined measurement through ct (a short one when warm).
func (b *bench) chainOnce(ct *chainTarget, warm bool) (chainResult, error) {
	n, dur := b.cfg.NChain, b.cfg.Duration
	if warm {
		n, dur = min(n, 5000), min(dur, 500*time.Millisecond)
	}
	t := ct.t
	c, err := t.dial()
	if err != nil {
		return chainResult{}, err
	}
	defer c.Close()
	cpu0 := t.proc.TreeCPU()
	r, err := pipelinedChain(c, b.chains.set, ct.rewrites, n, b.cfg.WindowChain, dur)
	r.cpu = t.proc.TreeCPU() - cpu0
	if err != nil {
		err = fmt.Errorf("%s (%s): %w", t.Name, ct.Chain, err)
		if perr := t.proc.Alive(); perr != nil {
			err = fmt.Errorf("%w; %w", err, perr)
		}
		return r, err
	}
	// Every echoed message that contains the word must have been rewritten.
	if want := b.chains.set.expectedRewrites(r.count); ct.rewrites && r.rewritten != want {
		return r, fmt.Errorf("%s: %d of %d echoes rewritten, want %d", t.Name, r.rewritten, r.count, want)
	}
	return r, nil
}

// expectedRewrites is how many of the first n messages contain chainMatch.
func (cs *chainSet) expectedRewrites(n int) int {
	k := n / len(cs.msgs) * cs.matches
	for _, m := range cs.msgs[:n%len(cs.msgs)] {
		if m.match {
			k++
		}
	}
	return k
}

// chainDisplay shows --hook arguments shortly (the key abbreviated, the temporary
// directory left out).
func chainDisplay(args []string) string {
	if len(args) == 0 {
		return "(no --hook)"
	}
	var parts []string
	for i := 1; i < len(args); i += 2 {
		a := strings.Replace(args[i], chainKeyHex, chainKeyHex[:8]+"…", 1)
		if f := strings.Fields(a); len(f) > 0 && strings.HasPrefix(a, "exec:") {
			a = strings.Join(f[:len(f)-1], " ") + " " + filepath.Base(f[len(f)-1])
		} else if strings.HasSuffix(a, ".go") {
			a = filepath.Base(a) + " (yaegi: base64+AES-GCM codec and replace hook, both in the file)"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " → ")
}

func (cb *chainBench) summaries() []chainSummary {
	var out []chainSummary
	for _, ct := range cb.targets {
		s := cb.stats[ct.Name]
		sum := chainSummary{Name: ct.Name, Chain: ct.Chain, Msgs: median(s.Msgs), CPU: median(s.CPU), CPUPerMsg: median(s.CPUPerMsg)}
		for i := range s.Counts {
			sum.Echoed += s.Counts[i]
			sum.Rewritten += s.Rewritten[i]
		}
		out = append(out, sum)
	}
	return out
}

// chainRatio is one chain's throughput over another's.
type chainRatio struct {
	Of   string  `json:"of"`
	To   string  `json:"to"`
	Msgs float64 `json:"msgs_per_s"`
}

func (cb *chainBench) ratios(sums []chainSummary) []chainRatio {
	by := map[string]chainSummary{}
	for _, s := range sums {
		by[s.Name] = s
	}
	var out []chainRatio
	for _, pair := range [][2]string{{"compiled", "empty"}, {"yaegi", "empty"}, {"exec", "empty"}, {"yaegi", "compiled"}, {"exec", "compiled"}} {
		a, okA := by[pair[0]]
		z, okZ := by[pair[1]]
		if okA && okZ && z.Msgs > 0 {
			out = append(out, chainRatio{Of: pair[0], To: pair[1], Msgs: a.Msgs / z.Msgs})
		}
	}
	return out
}

func (cb *chainBench) checks(sums []chainSummary) []check {
	var out []check
	for _, r := range cb.ratios(sums) {
		if r.Of == "compiled" && r.To == "empty" {
			out = append(out, check{"compiled chain 1 KiB msgs/s >= 0.50x empty chain", fmt.Sprintf("%.2fx", r.Msgs), r.Msgs >= 0.50})
		}
	}
	for _, ct := range cb.targets {
		bad := cb.logBad[ct.Name]
		got := "none"
		if len(bad) > 0 {
			got = fmt.Sprintf("%d, last: %s", len(bad), bad[len(bad)-1])
		}
		out = append(out, check{fmt.Sprintf("chain %s: no warnings or errors logged by wstap or its hooks", ct.Name), got, len(bad) == 0})
	}
	return out
}

func (b *bench) chainHeader() string {
	return fmt.Sprintf("wstap-bench chains: %d rounds (medians); %d B text messages x <=%d (window %d), each <=%s, ws; %s, GOMAXPROCS %d, %d CPUs",
		b.cfg.Rounds, chainWire, b.cfg.NChain, b.cfg.WindowChain, b.cfg.Duration, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
}

func (b *bench) printChains(out io.Writer) {
	cb := b.chains
	sums := cb.summaries()
	fmt.Fprintln(out, b.chainHeader())
	fmt.Fprintf(out, "messages: base64(nonce || AES-256-GCM(%d B of chat JSON) || tag); %d distinct, %d of them (%.1f%%) contain %q\n",
		chainPlain, len(cb.set.msgs), cb.set.matches, 100*float64(cb.set.matches)/float64(len(cb.set.msgs)), chainMatch)
	fmt.Fprintln(out)
	var base float64
	for _, s := range sums {
		if s.Name == "empty" {
			base = s.Msgs
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "chain\tmsgs/s\tx empty\tcpu\tcpu µs/msg\tverified\trewritten\t")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.2f\t%.1f\t%s\t%s\t\n", s.Name, commas(s.Msgs), s.Msgs/base, s.CPU, s.CPUPerMsg,
			fmtCount(s.Echoed), fmtCount(s.Rewritten))
	}
	tw.Flush()
	for _, s := range sums {
		fmt.Fprintf(out, "  %-8s %s\n", s.Name, s.Chain)
	}
	fmt.Fprintln(out, "cpu: wstap's and its hook processes' CPU time / wall time (1.00 = one core); cpu µs/msg: that CPU time per echoed message (two trips through the chain)")
	fmt.Fprintf(out, "verified: echoes the client decrypted and checked (over all rounds); rewritten: those that came back re-encrypted with %q -> %q, all that contained it\n",
		chainMatch, chainWith)

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ratio\tmsgs/s\t")
	for _, r := range cb.ratios(sums) {
		fmt.Fprintf(tw, "%s / %s\t%s\t\n", r.Of, r.To, fmtRatio(r.Msgs))
	}
	tw.Flush()

	fmt.Fprintln(out)
	printChecks(out, cb.checks(sums), cb.notes)
}

// fmtCount formats n with thousands separators.
func fmtCount(n int) string {
	if n < 100 {
		return fmt.Sprint(n)
	}
	return commas(float64(n))
}

func (b *bench) chainsJSON() map[string]any {
	cb := b.chains
	sums := cb.summaries()
	return map[string]any{
		"header":  b.chainHeader(),
		"medians": sums,
		"rounds":  cb.stats,
		"ratios":  cb.ratios(sums),
		"checks":  cb.checks(sums),
		"notes":   cb.notes,
	}
}
