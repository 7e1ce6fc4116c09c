package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/wstap/wstap/internal/pcaptest"
)

const plainCapture = "../sniff/testdata/ws-plain.pcap"

// sniffCmd runs wstap with args, bounded in time.
func sniffCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	code = Run(ctx, args, &o, &e)
	if ctx.Err() != nil {
		t.Errorf("wstap %q still running after 20 s", args)
	}
	return code, o.String(), e.String()
}

// jsonLines decodes a JSONL log.
func jsonLines(t *testing.T, data string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %v\n%.200s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func TestSniffLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "events.jsonl")
	code, stdout, stderr := sniffCmd(t, "sniff", "-r", plainCapture, "--log", logPath)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout: %q", stdout)
	}
	if !strings.Contains(stderr, "wstap sniff: 85 packets, 1 connection, 36 messages (1.1 MB), 0 gaps, 0 errors") {
		t.Errorf("no summary line in stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "after-ping") {
		t.Errorf("with --log FILE the terminal shows only the summary:\n%s", stderr)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(t, string(data))
	if len(lines) != 38 {
		t.Fatalf("%d events, want open + 36 messages + close", len(lines))
	}
	open := lines[0]
	for k, v := range map[string]any{"event": "open", "conn": "c1", "url": "ws://127.0.0.1:9101/chat", "server": "127.0.0.1:9101",
		"subprotocol": "", "extensions": "", "mode": "sniff"} {
		if open[k] != v {
			t.Errorf("open %s = %v, want %v", k, open[k], v)
		}
	}
	if c, _ := open["client"].(string); !strings.HasPrefix(c, "127.0.0.1:") {
		t.Errorf("open client %v", open["client"])
	}
	seqs := map[string]float64{}
	for i, m := range lines[1:37] {
		if m["event"] != "message" || m["conn"] != "c1" {
			t.Fatalf("line %d: %v", i+1, m)
		}
		dir := m["dir"].(string)
		if m["seq"] != seqs[dir] {
			t.Errorf("line %d: seq %v, want %v", i+1, m["seq"], seqs[dir])
		}
		seqs[dir]++
		p := m["payload"].(string)
		if m["encoding"] == "base64" {
			b, err := base64.StdEncoding.DecodeString(p)
			if err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			p = string(b)
		}
		if float64(len(p)) != m["len"] {
			t.Errorf("line %d: payload of %d bytes, len %v", i+1, len(p), m["len"])
		}
		if m["compressed"] != false || m["modified"] != false || m["dropped"] != false || m["injected"] != false {
			t.Errorf("line %d: flags %v", i+1, m)
		}
		if m["opcode"] == "text" && m["encoding"] != "text" {
			t.Errorf("line %d: a valid text message as %v", i+1, m["encoding"])
		}
	}
	byText := map[string]map[string]any{}
	for _, m := range lines[1:37] {
		if m["encoding"] == "text" {
			byText[m["dir"].(string)+" "+m["opcode"].(string)+" "+m["payload"].(string)] = m
		}
	}
	for _, k := range []string{"c2s text after-ping", "s2c text after-ping", "c2s ping ping-42", "s2c pong ping-42"} {
		if byText[k] == nil {
			t.Errorf("no message %q", k)
		}
	}
	closeEv := lines[37]
	if closeEv["event"] != "close" || closeEv["code"] != 4001.0 || closeEv["reason"] != "bye" || closeEv["by"] != "client" {
		t.Errorf("close event %v", closeEv)
	}
}

func TestSniffTerminalAndStdoutLog(t *testing.T) {
	code, stdout, stderr := sniffCmd(t, "sniff", "-r", plainCapture, "--log", "-", "--view")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if n := len(jsonLines(t, stdout)); n != 38 {
		t.Errorf("%d events on stdout, want 38", n)
	}
	for _, want := range []string{"c1 open  ws://127.0.0.1:9101/chat", "c1 → text        10 after-ping", "c1 ← pong         7 ping-42",
		"c1 close 4001 \"bye\" by client", "36 messages"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("terminal view lacks %q:\n%s", want, stderr)
		}
	}
}

// TestSniffGapEvents drops a packet in the middle of the capture: the JSONL log
// has a gap event naming the direction and the lost message, then a resync, and
// the messages after it.
func TestSniffGapEvents(t *testing.T) {
	dir := t.TempDir()
	lt, pkts := pcaptest.Read(t, plainCapture)
	// Packet 28 is the second of the two segments of the 65535-byte client text
	// message.
	cut := filepath.Join(dir, "cut.pcap")
	pcaptest.Write(t, cut, lt, slices.Delete(pkts, 28, 29))
	logPath := filepath.Join(dir, "events.jsonl")
	code, _, stderr := sniffCmd(t, "sniff", "-r", cut, "--log", logPath)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "1 gap") {
		t.Errorf("summary without the gap:\n%s", stderr)
	}
	data, _ := os.ReadFile(logPath)
	var gap, resync map[string]any
	after := 0
	for _, m := range jsonLines(t, string(data)) {
		switch m["event"] {
		case "gap":
			gap = m
		case "resync":
			resync = m
		case "message":
			if gap != nil && m["dir"] == gap["dir"] {
				after++
			}
		}
	}
	if gap == nil || resync == nil {
		t.Fatalf("no gap or resync event:\n%s", data)
	}
	if gap["conn"] != "c1" || gap["lost"] != true || gap["bytes"].(float64) <= 0 || resync["dir"] != gap["dir"] {
		t.Errorf("gap %v resync %v", gap, resync)
	}
	if after == 0 {
		t.Errorf("no messages after the gap")
	}
}

// TestSniffHooksDryRun: on a capture the rules run as a dry run: the log keeps what
// was captured and says what the rules would have sent, with no error.
func TestSniffHooksDryRun(t *testing.T) {
	code, stdout, stderr := sniffCmd(t, "sniff", "-r", plainCapture, "--log", "-", "--hook", "replace:match=after,with=before")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var would int
	for _, m := range jsonLines(t, stdout) {
		if m["event"] != "message" || m["payload"] != "after-ping" {
			continue
		}
		if m["would_modify"] != true || m["would_payload"] != "before-ping" || m["modified"] != false {
			t.Errorf("dry run not recorded: %v", m)
		}
		would++
	}
	if would == 0 {
		t.Errorf("no message would have been rewritten:\n%s", stdout)
	}
	if strings.Contains(stderr, "ERROR") {
		t.Errorf("a dry run is not an error:\n%s", stderr)
	}
}

func TestSniffErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pcap")
	if err := os.WriteFile(garbage, []byte("this is not a capture file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(plainCapture)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.pcap")
	if err := os.WriteFile(short, whole[:len(whole)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no source", []string{"sniff"}, exitUsage, []string{"-r FILE", "-i IFACE"}},
		{"both sources", []string{"sniff", "-r", plainCapture, "-i", "lo"}, exitUsage, []string{"-r and -i"}},
		{"bad port", []string{"sniff", "-r", plainCapture, "--ws-port", "http"}, exitUsage, []string{"ws-port", "http"}},
		{"bad hook", []string{"sniff", "-r", plainCapture, "--hook", "nope"}, exitUsage, []string{"--hook", "nope"}},
		{"missing file", []string{"sniff", "-r", filepath.Join(dir, "missing.pcap")}, exitError, []string{"missing.pcap", "no such file"}},
		{"not a capture", []string{"sniff", "-r", garbage}, exitError, []string{"garbage.pcap", "not a pcap or pcapng file"}},
		{"cut short", []string{"sniff", "-r", short, "--quiet"}, exitError, []string{"cut short", "connection"}},
	}
	cases = append(cases, []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no such interface", []string{"sniff", "-i", "nosuch0"}, exitError, []string{"-i nosuch0", "nosuch0"}},
		{"bad filter", []string{"sniff", "-r", plainCapture, "--filter", "tcp prt 9101"}, exitUsage, []string{"--filter", "prt", "wstap sniff --help"}},
		{"byte offset in the filter", []string{"sniff", "-r", plainCapture, "--filter", "tcp[13]&2!=0"}, exitUsage, []string{"--filter", "tcp[13]", "not supported"}},
		{"bad filter on a live capture", []string{"sniff", "-i", "lo", "--filter", "tcp & udp"}, exitUsage, []string{"--filter", "bitwise", `"and" or "&&"`}},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := sniffCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestSniffProgressTerminal reads a capture larger than progressMin with stderr
// on a pseudo-terminal, as at a shell: the progress bar is drawn there, then the
// summary. Nothing but a terminal gets the bar: not a pipe, not /dev/null (a
// character device too), not a buffer.
func TestSniffProgressTerminal(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.pcap")
	repeatCapture(t, plainCapture, big, 5)
	st, err := os.Stat(big)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() <= progressMin {
		t.Fatalf("capture of %d bytes, want more than %d", st.Size(), progressMin)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&screen, ptmx) // until the terminal's last file is closed
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := Run(ctx, []string{"sniff", "-r", big, "--quiet"}, io.Discard, tty)
	tty.Close()
	<-read
	out := screen.String()
	bar, sum := strings.LastIndex(out, "reading "+big), strings.Index(out, "5 connections, 180 messages")
	if code != 0 || bar < 0 || sum < bar {
		t.Errorf("exit %d; the terminal shows:\n%q", code, out)
	}

	ptmx2, tty2, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx2.Close()
	defer tty2.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for _, w := range []struct {
		name string
		w    io.Writer
		tty  bool
	}{{"terminal", tty2, true}, {"pipe", pw, false}, {"/dev/null", null, false}, {"buffer", &bytes.Buffer{}, false}} {
		if got := isTerminal(w.w); got != w.tty {
			t.Errorf("isTerminal(%s) = %v", w.name, got)
		}
	}
}

// repeatCapture writes copies of an Ethernet capture of one connection, each a
// second after the last and from its own client port: copies connections.
func repeatCapture(t *testing.T, in, out string, copies int) {
	t.Helper()
	lt, pkts := pcaptest.Read(t, in)
	var outPkts []pcaptest.Packet
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	for c := range copies {
		for _, pk := range pkts {
			p := gopacket.NewPacket(pk.Data, lt, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if ip == nil || tcp == nil {
				t.Fatalf("not TCP over IPv4: %v", p)
			}
			client := layers.TCPPort(40000 + c)
			if tcp.SrcPort == 9101 {
				tcp.DstPort = client
			} else {
				tcp.SrcPort = client
			}
			tcp.SetNetworkLayerForChecksum(ip)
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializePacket(buf, opts, p); err != nil {
				t.Fatal(err)
			}
			ci := pk.CI
			ci.Timestamp = ci.Timestamp.Add(time.Duration(c) * time.Second)
			outPkts = append(outPkts, pcaptest.Packet{CI: ci, Data: buf.Bytes()})
		}
	}
	pcaptest.Write(t, out, lt, outPkts)
}

func TestSniffFilterFile(t *testing.T) {
	code, _, stderr := sniffCmd(t, "sniff", "-r", plainCapture, "--quiet", "--filter", "tcp port 9101")
	if code != 0 || !strings.Contains(stderr, "36 messages") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	code, _, stderr = sniffCmd(t, "sniff", "-r", plainCapture, "--quiet", "--filter", "tcp port 9102")
	if code != 0 || !strings.Contains(stderr, "0 packets, 0 connections") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
}
