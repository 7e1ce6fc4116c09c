package capture

import (
	"bufio"
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// TestCompileAgainstTcpdump, when tcpdump is installed, compares Compile
// with libpcap on the crafted frames: it writes them to a pcap file (frame
// i at second i+1), lets tcpdump filter the file with each expression, and
// runs the same expression in x/net/bpf's VM. The expressions are the
// supported primitives and random and/or/not combinations of them (a fixed
// seed). It reads a file only; without tcpdump it skips.
func TestCompileAgainstTcpdump(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed: no comparison with libpcap")
	}
	var names []string
	for n := range allFrames {
		names = append(names, n)
	}
	slices.Sort(names)
	var raws [][]byte
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		b := allFrames[n].bytes(t)
		raws = append(raws, b)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i+1), 0), CaptureLength: len(b), Length: len(b)}
		if err := w.WritePacket(ci, b); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "frames.pcap")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	prims := []string{
		"tcp", "udp", "ip", "ip6", "icmp", "icmp6", "sctp", "arp",
		"port 80", "tcp port 80", "udp port 53", "src port 40000", "dst port 443", "port 5353",
		"src and dst port 5353", "src or dst port 53", "portrange 50-100", "udp portrange 5000-6000",
		"tcp portrange 443-40000", "port 80 or 443 or 53",
		"host 10.0.0.1", "dst host 10.0.0.2", "ip host 10.0.0.2", "ip src host 10.0.0.1", "arp host 10.0.0.2",
		"dst 192.168.1.9", "net 10.0.0.0/8", "ip net 10.0.0.0/8", "ip dst net 192.168.0.0/16", "net 0.0.0.0/0",
		"ip6 host 2001:db8::1", "ip6 host ::1", "src and dst host ::1", "host fe80::1 or ff02::fb",
		"ip6 dst net 2001:db8:1::/48", "src net 2001:db8::/48", "net ff00::/8",
		"not host 10.0.0.2 and 10.0.0.1", "tcp or udp and port 53",
	}
	exprs := slices.Clone(prims)
	r := rand.New(rand.NewSource(1))
	for range 300 {
		var sb strings.Builder
		for j := range 1 + r.Intn(4) {
			if j > 0 {
				sb.WriteString([]string{" and ", " or "}[r.Intn(2)])
			}
			if r.Intn(3) == 0 {
				sb.WriteString("not ")
			}
			if r.Intn(4) == 0 {
				sb.WriteString("(" + prims[r.Intn(len(prims))] + " or " + prims[r.Intn(len(prims))] + ")")
			} else {
				sb.WriteString(prims[r.Intn(len(prims))])
			}
		}
		exprs = append(exprs, sb.String())
	}

	mismatches := 0
	for _, e := range exprs {
		var stderr bytes.Buffer
		cmd := exec.Command(tcpdump, "-nn", "-tt", "-r", file, e)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil && !strings.Contains(stderr.String(), "rejects all packets") {
			t.Fatalf("tcpdump %q: %v: %s", e, err, stderr.Bytes())
		}
		want := map[int]bool{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			sec, _, _ := strings.Cut(sc.Text(), ".")
			i, err := strconv.Atoi(sec)
			if err != nil {
				t.Fatalf("tcpdump output %q", sc.Text())
			}
			want[i-1] = true
		}
		vm, err := bpf.NewVM(mustCompile(t, e))
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range raws {
			n, err := vm.Run(b)
			if err != nil {
				t.Fatal(err)
			}
			if (n > 0) != want[i] {
				mismatches++
				t.Errorf("%q on %s: matched=%v, tcpdump: %v", e, names[i], n > 0, want[i])
			}
		}
	}
	t.Logf("%d expressions on %d frames, %d mismatches with tcpdump", len(exprs), len(raws), mismatches)
}
