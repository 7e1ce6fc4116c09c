package sniff

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/wstap/wstap/internal/pcaptest"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Message times (issue #23): each message carries the capture time of the packet
// that completed it, and the observers see them in capture order across both
// directions, also where the decoder held bytes while it looked for frames (a
// capture that starts mid-stream, a gap).

// wireMessage is a message of a capture and the capture time of the packet that
// carried its last byte.
type wireMessage struct {
	dir  plugins.Direction
	op   wsframe.Opcode
	size int
	t    time.Time
}

// captureMessages parses the frames of the one connection of an in-order capture
// without losses, after its HTTP handshake. serverPort tells the directions apart.
func captureMessages(t *testing.T, lt layers.LinkType, pkts []pcaptest.Packet, serverPort uint16) map[plugins.Direction][]wireMessage {
	t.Helper()
	type piece struct {
		end int
		t   time.Time
	}
	var streams [2][]byte
	var pieces [2][]piece
	d := newPacketDecoder()
	for _, p := range pkts {
		var seg segment
		ci := p.CI
		if !d.decode(bytes.Clone(p.Data), &ci, lt, &seg) || len(seg.payload) == 0 {
			continue
		}
		i := 0
		if seg.src.Port() == serverPort {
			i = 1
		}
		streams[i] = append(streams[i], seg.payload...)
		pieces[i] = append(pieces[i], piece{len(streams[i]), p.CI.Timestamp})
	}
	out := map[plugins.Direction][]wireMessage{}
	for i, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
		s := streams[i]
		off := bytes.Index(s, []byte("\r\n\r\n")) + 4
		if off < 4 {
			t.Fatalf("%s: no HTTP header", dir)
		}
		var msg wireMessage
		for off < len(s) {
			h, n, err := wsframe.ParseHeader(s[off:])
			if err != nil {
				t.Fatalf("%s: frame at %d: %v", dir, off, err)
			}
			off += n + int(h.Length)
			k, _ := slices.BinarySearchFunc(pieces[i], off, func(p piece, end int) int { return p.end - end })
			at := pieces[i][k].t
			switch {
			case h.Opcode.IsControl():
				out[dir] = append(out[dir], wireMessage{dir, h.Opcode, int(h.Length), at})
				continue
			case h.Opcode != wsframe.OpContinuation:
				msg = wireMessage{dir: dir, op: h.Opcode}
			}
			msg.size += int(h.Length)
			if h.Fin {
				msg.t = at
				out[dir] = append(out[dir], msg)
			}
		}
	}
	return out
}

func TestMessageTimes(t *testing.T) {
	lt, pkts := pcaptest.Read(t, "testdata/ws-plain.pcap")
	want := captureMessages(t, lt, pkts, 9101)
	// Packets 0-6 are the TCP and HTTP handshakes; packet 28 is the second
	// segment of the client's 65,535-byte text message.
	cases := []struct {
		name     string
		keep     func(i int) bool
		wsPort   bool
		resyncs  int // at least (a search at the start reports none when it skipped nothing)
		gapped   map[plugins.Direction]bool
		complete bool // every message is reported
	}{
		{name: "whole", keep: func(int) bool { return true }, complete: true},
		{name: "mid-stream", keep: func(i int) bool { return i >= 7 }, wsPort: true},
		{name: "gap", keep: func(i int) bool { return i != 28 }, resyncs: 1, gapped: map[plugins.Direction]bool{plugins.ClientToServer: true}},
		{name: "mid-stream and a gap", keep: func(i int) bool { return i >= 9 && i != 28 }, wsPort: true, resyncs: 1,
			gapped: map[plugins.Direction]bool{plugins.ClientToServer: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var kept []pcaptest.Packet
			for i, p := range pkts {
				if tc.keep(i) {
					kept = append(kept, p)
				}
			}
			file := filepath.Join(t.TempDir(), "cut.pcap")
			pcaptest.Write(t, file, lt, kept)
			cfg := Config{}
			if tc.wsPort {
				cfg.WSPorts = []uint16{9101}
			}
			rec, st := sniffFile(t, file, cfg)
			if st.Resyncs < int64(tc.resyncs) {
				t.Errorf("%d resyncs, want at least %d", st.Resyncs, tc.resyncs)
			}
			// In capture order across both directions.
			var last time.Time
			for _, e := range rec.events {
				if e.kind == "open" || e.kind == "close" {
					continue
				}
				if e.time.Before(last) {
					t.Errorf("%s at %s after an event at %s:\n%s", e, e.time.Format(".000000"), last.Format(".000000"), timedDump(rec))
					break
				}
				last = e.time
			}
			// Each message at the time of the packet that completed it: the
			// messages reported are those of the capture, less the ones the start
			// or a gap cut or that could not be trusted, in order.
			for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
				w := want[dir]
				k, got := 0, 0
				for _, e := range rec.kinds("message") {
					if e.dir != dir {
						continue
					}
					for k < len(w) && (w[k].op != e.op || w[k].size != len(e.payload)) {
						k++
					}
					if k == len(w) {
						t.Fatalf("%s: message %s is none of the capture's (or out of order)", dir, e)
					}
					if !e.time.Equal(w[k].t) {
						t.Errorf("%s %s at %s, but its last packet is at %s", dir, e, e.time.Format(".000000"), w[k].t.Format(".000000"))
					}
					k++
					got++
				}
				if tc.complete && got != len(w) {
					t.Errorf("%s: %d messages, want %d", dir, got, len(w))
				}
				least := len(w) - 4
				if tc.gapped[dir] {
					least -= 2
				}
				if got < least {
					t.Errorf("%s: %d messages of %d", dir, got, len(w))
				}
			}
		})
	}
}

// timedDump is the recorder's dump with the events' times.
func timedDump(r *recorder) string {
	var b bytes.Buffer
	for _, e := range r.events {
		b.WriteString(e.time.Format(".000000 "))
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}
