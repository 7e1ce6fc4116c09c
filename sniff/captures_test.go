package sniff

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// The real captures of testdata/README.md, checked against the scripts that
// produced them.

// scriptMsg is one message the ws-plain script sends.
type scriptMsg struct {
	op      wsframe.Opcode
	size    int    // payload length, for data messages
	payload string // exact payload, for control frames and after-ping
}

// plainScript returns the messages of one direction of the ws-plain script (the
// echo server answers each with the same opcode; a ping with a pong; the close
// with its own close).
func plainScript(dir plugins.Direction) []scriptMsg {
	var out []scriptMsg
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536} {
		out = append(out, scriptMsg{op: wsframe.OpText, size: n}, scriptMsg{op: wsframe.OpBinary, size: n})
	}
	out = append(out, scriptMsg{op: wsframe.OpBinary, size: 280000})
	if dir == plugins.ClientToServer {
		out = append(out, scriptMsg{op: wsframe.OpPing, payload: "ping-42"}, scriptMsg{op: wsframe.OpText, payload: "after-ping"},
			scriptMsg{op: wsframe.OpClose, payload: "\x0f\xa1bye"}) // 4001 "bye"
	} else {
		out = append(out, scriptMsg{op: wsframe.OpPong, payload: "ping-42"}, scriptMsg{op: wsframe.OpText, payload: "after-ping"},
			scriptMsg{op: wsframe.OpClose, payload: "\x0f\xa1"}) // 4001, no reason
	}
	return out
}

func TestCapturePlainScript(t *testing.T) {
	for _, tc := range []struct {
		file       string
		port       int
		compressed bool
		ext        string
	}{
		{"ws-plain.pcap", 9101, false, ""},
		{"ws-deflate-gorilla.pcapng", 9102, true, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rec, st := sniffFile(t, "testdata/"+tc.file, Config{})
			opens := rec.kinds("open")
			if len(opens) != 1 {
				t.Fatalf("%d connections, want 1:\n%s", len(opens), rec.dump())
			}
			pc := opens[0].pc
			if got, want := pc.URL.String(), fmt.Sprintf("ws://127.0.0.1:%d/chat", tc.port); got != want {
				t.Errorf("URL %s, want %s", got, want)
			}
			if s, ok := pc.Server.(*net.TCPAddr); !ok || s.Port != tc.port || pc.Mode != plugins.Sniff || pc.Extensions != tc.ext || pc.Status != 101 {
				t.Errorf("conn: server %v mode %v extensions %q status %d", pc.Server, pc.Mode, pc.Extensions, pc.Status)
			}
			byDir := map[plugins.Direction][]event{}
			for _, e := range rec.kinds("message") {
				byDir[e.dir] = append(byDir[e.dir], e)
			}
			for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
				want := plainScript(dir)
				got := byDir[dir]
				if len(got) != len(want) {
					t.Fatalf("%s: %d messages, want %d:\n%s", dir, len(got), len(want), rec.dump())
				}
				for i, w := range want {
					g := got[i]
					ok := g.op == w.op && g.seq == uint64(i)
					if w.payload != "" || w.op.IsControl() {
						ok = ok && string(g.payload) == w.payload
					} else {
						ok = ok && len(g.payload) == w.size && g.len == int64(w.size)
					}
					if w.op.IsData() {
						ok = ok && g.compressed == tc.compressed
					}
					if !ok {
						t.Errorf("%s message %d: got %s, want %s of %d bytes %q", dir, i, g, w.op, w.size, w.payload)
					}
					if w.op == wsframe.OpText && !utf8.Valid(g.payload) {
						t.Errorf("%s message %d: text is not UTF-8", dir, i)
					}
					if w.op == wsframe.OpText && w.size >= 125 && utf8.RuneCount(g.payload) == len(g.payload) {
						t.Errorf("%s message %d: no multi-byte characters", dir, i)
					}
				}
			}
			// The server echoes every data message; the fragmented one comes in
			// several frames and goes back in one (gorilla without compression).
			c2s, s2c := byDir[plugins.ClientToServer], byDir[plugins.ServerToClient]
			for i := range c2s {
				if c2s[i].op.IsData() && !bytes.Equal(c2s[i].payload, s2c[i].payload) {
					t.Errorf("message %d: the echo differs", i)
				}
			}
			if big := c2s[14]; big.len != 280000 || big.frames < 2 {
				t.Errorf("the 280,000-byte message came in %d frames", big.frames)
			}
			if big := s2c[14]; !tc.compressed && big.frames != 1 {
				t.Errorf("the echo of the 280,000-byte message came in %d frames, want 1", big.frames)
			}
			closes := rec.kinds("close")
			if len(closes) != 1 || closes[0].code != 4001 || closes[0].reason != "bye" || closes[0].by != "client" {
				t.Errorf("close events %v", closes)
			}
			if bad := rec.kinds("gap", "resync", "undecodable", "error"); len(bad) > 0 {
				t.Errorf("unexpected events %v", bad)
			}
			if st.Connections != 1 || st.Messages != 36 || st.Gaps != 0 || st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// ctxMessage is message N of the ws-deflate-ctx generator.
func ctxMessage(n int) string {
	return fmt.Sprintf(`{"seq":%d,"user":"alice","text":"the quick brown fox %d jumps","note":"%s"}`, n, n%7, strings.Repeat("z", n%50))
}

func TestCaptureDeflateContextTakeover(t *testing.T) {
	rec, st := sniffFile(t, "testdata/ws-deflate-ctx.pcap", Config{})
	opens := rec.kinds("open")
	if len(opens) != 1 || opens[0].pc.Extensions != "permessage-deflate" || opens[0].pc.URL.String() != "ws://127.0.0.1:9103/chat" {
		t.Fatalf("open events %v", opens)
	}
	n := map[plugins.Direction]int{}
	for _, e := range rec.kinds("message") {
		if e.op == wsframe.OpClose {
			if code, reason, _ := wsframe.ParseClose(e.payload); code != wsframe.CloseNormal {
				t.Errorf("%s close %d %q", e.dir, code, reason)
			}
			continue
		}
		want := ctxMessage(n[e.dir])
		if e.op != wsframe.OpText || string(e.payload) != want || !e.compressed || e.frames != 3 {
			t.Errorf("%s message %d: got %s, want %q in 3 compressed frames", e.dir, n[e.dir], e, want)
		}
		n[e.dir]++
	}
	if n[plugins.ClientToServer] != 60 || n[plugins.ServerToClient] != 60 {
		t.Errorf("decoded %v messages, want 60 each way", n)
	}
	if bad := rec.kinds("gap", "resync", "undecodable", "error"); len(bad) > 0 {
		t.Errorf("unexpected events %v", bad)
	}
	if st.Undecodable != 0 || st.Messages != 122 {
		t.Errorf("stats %+v", st)
	}
}

// rewrite copies a capture, keeping the packets keep accepts (by index).
func rewrite(t *testing.T, path string, keep func(i int, data []byte) bool) *bytes.Buffer {
	t.Helper()
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out bytes.Buffer
	w := pcapgo.NewWriterNanos(&out)
	header := false
	for i := 0; ; i++ {
		data, ci, lt, err := src.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !header {
			if err := w.WriteFileHeader(262144, lt); err != nil {
				t.Fatal(err)
			}
			header = true
		}
		if keep(i, data) {
			if err := w.WritePacket(ci, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &out
}

// tcpPayloadLen returns the TCP payload length of an Ethernet/IPv4 packet of
// the loopback captures, and its source port.
func tcpInfo(t *testing.T, data []byte) (payload int, srcPort uint16) {
	t.Helper()
	d := newPacketDecoder()
	var seg segment
	ci := ciFor(data)
	if !d.decode(data, &ci, layers.LinkTypeEthernet, &seg) {
		return 0, 0
	}
	return len(seg.payload), seg.src.Port()
}

// TestCaptureDeflateContextTakeoverMidStream cuts the handshake and the first
// messages off the context-takeover capture: with --ws-port the connection is
// followed, but its compressed messages cannot be inflated, and are reported
// undecodable, never shown.
func TestCaptureDeflateContextTakeoverMidStream(t *testing.T) {
	file := rewrite(t, "testdata/ws-deflate-ctx.pcap", func(i int, _ []byte) bool { return i >= 20 })
	src, err := NewFileSource(file)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := New(Config{Observers: []plugins.Observer{rec}, WSPorts: []uint16{9103}})
	if err := s.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if len(rec.kinds("open")) != 1 {
		t.Fatalf("open events %v", rec.kinds("open"))
	}
	for _, e := range rec.kinds("message") {
		if e.op.IsData() {
			t.Errorf("a message under context takeover was shown without its history: %s", e)
		}
	}
	und := rec.kinds("undecodable")
	if len(und) < 90 {
		t.Errorf("%d undecodable messages, want most of the 120 - the cut ones:\n%s", len(und), rec.dump())
	}
	for _, e := range und {
		if e.op != wsframe.OpText || !e.compressed || e.frames != 3 || !strings.Contains(e.reason, "handshake") {
			t.Errorf("undecodable event %s", e)
		}
	}
	if st := s.Stats(); st.Undecodable != int64(len(und)) {
		t.Errorf("stats %+v", st)
	}
}

// TestCaptureDeflateContextTakeoverGap drops one client packet from the middle of
// the context-takeover capture: the messages before it are decoded; after it the
// window is unknown, so each later client message is either inflated on its own
// (exactly, when it refers to nothing earlier) or reported undecodable, never
// garbage; the server's direction is untouched. (coder's short messages here all
// inflate on their own; TestSyntheticDeflateGap has messages that cannot.)
func TestCaptureDeflateContextTakeoverGap(t *testing.T) {
	dropped := -1
	file := rewrite(t, "testdata/ws-deflate-ctx.pcap", func(i int, data []byte) bool {
		if n, port := tcpInfo(t, data); dropped < 0 && i > 60 && n > 0 && port != 9103 {
			dropped = i
			return false
		}
		return true
	})
	src, err := NewFileSource(file)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := New(Config{Observers: []plugins.Observer{rec}})
	if err := s.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	gaps := rec.kinds("gap")
	if len(gaps) != 1 || gaps[0].dir != plugins.ClientToServer {
		t.Fatalf("gap events %v", gaps)
	}
	n := map[plugins.Direction]int{}
	afterGap := false
	shown, undecodable := 0, 0
	for _, e := range rec.events {
		switch {
		case e.kind == "gap":
			afterGap = true
		case e.kind == "undecodable":
			if !afterGap || e.dir != plugins.ClientToServer || !strings.Contains(e.reason, "missing") {
				t.Errorf("undecodable %s", e)
			}
			undecodable++
		case e.kind == "message" && e.op == wsframe.OpText:
			if e.dir == plugins.ServerToClient {
				if want := ctxMessage(n[e.dir]); string(e.payload) != want {
					t.Errorf("s2c message %d: %q, want %q", n[e.dir], e.payload, want)
				}
				n[e.dir]++
				continue
			}
			// A client message: it must be one of the generator's, in order.
			for n[e.dir] < 60 && string(e.payload) != ctxMessage(n[e.dir]) {
				n[e.dir]++
			}
			if n[e.dir] == 60 {
				t.Errorf("c2s message %q is none of the generator's (garbage)", e.payload)
			}
			if afterGap {
				shown++
			}
		}
	}
	if n[plugins.ServerToClient] != 60 {
		t.Errorf("%d server messages, want 60", n[plugins.ServerToClient])
	}
	t.Logf("dropped packet %d; after the gap: %d client messages inflated on their own, %d undecodable", dropped, shown, undecodable)
}
