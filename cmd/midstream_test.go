package cmd_test

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/wstap/wstap/internal/pcaptest"
	"github.com/wstap/wstap/wsframe"
)

// A capture that starts after the WebSocket handshake (issue #23): without
// --ws-port it says which port looks like WebSocket; with it, each message has
// the time of the packet that completed it, in capture order across directions.

// capturedMessage is a message of a capture: its opcode, length, and the capture
// time of the packet that completes it.
type capturedMessage struct {
	op  string
	len int
	t   time.Time
}

// midStreamCapture writes ws-plain.pcap without its first 7 packets (the TCP and
// HTTP handshakes), and returns the messages of each direction ("c2s", "s2c"),
// in order.
func midStreamCapture(t *testing.T, file string) map[string][]capturedMessage {
	t.Helper()
	lt, pkts := pcaptest.Read(t, "../sniff/testdata/ws-plain.pcap")
	pcaptest.Write(t, file, lt, pkts[7:])
	// The streams after the handshake, and where each packet's bytes end.
	type piece struct {
		end int
		t   time.Time
	}
	streams, pieces := map[string][]byte{}, map[string][]piece{}
	for _, pk := range pkts[7:] {
		tcp, _ := gopacket.NewPacket(pk.Data, lt, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || len(tcp.Payload) == 0 {
			continue
		}
		dir := "c2s"
		if tcp.SrcPort == 9101 {
			dir = "s2c"
		}
		streams[dir] = append(streams[dir], tcp.Payload...)
		pieces[dir] = append(pieces[dir], piece{len(streams[dir]), pk.CI.Timestamp})
	}
	want := map[string][]capturedMessage{}
	for dir, s := range streams {
		k := 0
		var msg capturedMessage
		for off := 0; off < len(s); {
			h, n, err := wsframe.ParseHeader(s[off:])
			if err != nil {
				t.Fatalf("%s: frame at %d: %v", dir, off, err)
			}
			off += n + int(h.Length)
			for pieces[dir][k].end < off {
				k++
			}
			if h.Opcode.IsControl() {
				want[dir] = append(want[dir], capturedMessage{h.Opcode.String(), int(h.Length), pieces[dir][k].t})
				continue
			}
			if h.Opcode != wsframe.OpContinuation {
				msg = capturedMessage{op: h.Opcode.String()}
			}
			msg.len += int(h.Length)
			if h.Fin {
				msg.t = pieces[dir][k].t
				want[dir] = append(want[dir], msg)
			}
		}
	}
	return want
}

func TestSniffMidStream(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mid.pcap")
	want := midStreamCapture(t, file)

	code, _, stderr := runBinary(t, childEnv(), "sniff", "-r", file, "--quiet")
	hint := "wstap sniff: 1 TCP connection (port 9101) looks like WebSocket frames without a handshake in the capture; try --ws-port 9101"
	if code != 0 || !strings.Contains(stderr, "0 connections") || !strings.Contains(stderr, hint+"\n") {
		t.Errorf("exit %d; stderr lacks the hint %q:\n%s", code, hint, stderr)
	}

	code, stdout, stderr := runBinary(t, childEnv(), "sniff", "-r", file, "--ws-port", "9101", "--log", "-")
	if code != 0 || strings.Contains(stderr, "--ws-port 9101\n") {
		t.Fatalf("exit %d, or a hint when --ws-port was given:\n%s", code, stderr)
	}
	var last time.Time
	dirs := ""
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %v\n%.200s", err, sc.Text())
		}
		if m["event"] != "message" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m["time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(last) {
			t.Errorf("%s message %v at %s after a message at %s: not in capture order", m["dir"], m["seq"], at.Format(".000000"), last.Format(".000000"))
		}
		last = at
		// The messages the resynchronisation skipped at the start are missing:
		// the others come in order.
		dir := m["dir"].(string)
		dirs += dir[:1]
		w := want[dir]
		for len(w) > 0 && (w[0].op != m["opcode"] || float64(w[0].len) != m["len"]) {
			w = w[1:]
		}
		if len(w) == 0 {
			t.Fatalf("%s message %v: none of the capture's, or out of order", dir, m)
		}
		if !w[0].t.Equal(at) {
			t.Errorf("%s message %v (%s of %d bytes) at %s, but its last packet is at %s", dir, m["seq"], w[0].op, w[0].len,
				at.Format(".000000"), w[0].t.Format(".000000"))
		}
		want[dir] = w[1:]
	}
	// Both directions interleave (the echo server answers each message).
	if !strings.Contains(dirs, "cscs") {
		t.Errorf("messages by direction in the log: %s", dirs)
	}
}
