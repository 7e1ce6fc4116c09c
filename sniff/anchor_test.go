package sniff

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wstap/wstap/internal/pcaptest"
	"github.com/wstap/wstap/plugins"
)

// Streams whose start is captured late (issue #24): a SYN, or the first data
// segment, that comes after later segments of its direction.

func TestReassemblerLateStart(t *testing.T) {
	type seg struct {
		seq  uint32
		data string
		syn  bool
	}
	for _, tc := range []struct {
		name    string
		segs    []seg
		startAt uint32 // when not 0: the peer's SYN-ACK acknowledges this, after segs
		want    string // delivered before any flush
	}{
		{"SYN after the data", []seg{{seq: 106, data: "world"}, {seq: 100, data: "hello "}, {seq: 99, syn: true}}, 0, "hello world"},
		{"SYN between the data", []seg{{seq: 106, data: "world"}, {seq: 99, syn: true}, {seq: 100, data: "hello "}}, 0, "hello world"},
		{"the peer's SYN-ACK", []seg{{seq: 106, data: "world"}, {seq: 100, data: "hello "}}, 100, "hello world"},
		{"retransmission before the SYN", []seg{{seq: 100, data: "hel"}, {seq: 100, data: "hello "}, {seq: 99, syn: true}, {seq: 106, data: "world"}}, 0, "hello world"},
		{"no start yet", []seg{{seq: 106, data: "world"}, {seq: 100, data: "hello "}}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r reassembler
			var out tape
			base := time.Unix(1000, 0)
			for i, s := range tc.segs {
				r.add(&segment{seq: s.seq, payload: []byte(s.data), syn: s.syn}, base.Add(time.Duration(i)*time.Millisecond), &out)
			}
			if tc.startAt != 0 {
				r.startAt(tc.startAt, &out)
			}
			if got := out.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			// Without a start, the window's end anchors at the earliest segment.
			r.anchorFirst()
			r.drain(time.Time{}, &out)
			if got := out.String(); got != "hello world" || r.q != nil {
				t.Errorf("after the window: %q, %d bytes waiting", got, r.pendingBytes())
			}
		})
	}
}

// TestCaptureShuffledStart reorders the first packets of ws-plain.pcap so that a
// later segment of each direction comes before its first one, and the SYN and
// SYN-ACK after them (or never): every message is still recovered, in order.
// Then it shuffles the packets of the whole capture within small windows.
func TestCaptureShuffledStart(t *testing.T) {
	lt, pkts := pcaptest.Read(t, "testdata/ws-plain.pcap")
	// Packets 0-2 are the TCP handshake; 3 is the upgrade request and 5 the 101,
	// 4 and 6 bare ACKs; from 7 on, WebSocket frames from the client (odd) and
	// the server (even).
	const syn, synAck, request, response = 0, 1, 3, 5
	reorder := func(order ...int) []pcaptest.Packet {
		var out []pcaptest.Packet
		for _, i := range order {
			out = append(out, pkts[i])
		}
		return append(out, pkts[slices.Max(order)+1:]...)
	}
	cases := []struct {
		name string
		pkts []pcaptest.Packet
	}{
		{"late SYN and SYN-ACK", reorder(7, request, syn, 8, response, synAck, 2, 4, 6)},
		{"no SYN, the SYN-ACK says where the client starts", reorder(7, request, 8, response, synAck, 2, 4, 6)},
		{"no handshake: the window ends", reorder(7, request, 8, response, 2, 4, 6)},
	}
	for seed := range uint64(6) {
		// Windows of 5 to 7 packets from the request on, each shuffled so that a
		// later segment of the client comes before the request; then the SYN and
		// SYN-ACK moved after the request. The request is kept before its
		// response: a response read before the request it answers is a
		// reordering across directions, beyond this test.
		rng := rand.New(rand.NewPCG(seed, 24))
		w := 5 + int(seed)%3
		var order []int
		for try := 0; ; try++ {
			if try == 100 {
				t.Fatalf("seed %d: no shuffle of the kind wanted", seed)
			}
			order = append(order[:0], syn, synAck, 2)
			for from := request; from < len(pkts); from += w {
				win := make([]int, min(w, len(pkts)-from))
				for k := range win {
					win[k] = from + k
				}
				rng.Shuffle(len(win), func(a, b int) { win[a], win[b] = win[b], win[a] })
				order = append(order, win...)
			}
			for _, p := range []int{syn, synAck} {
				order = slices.Delete(order, slices.Index(order, p), slices.Index(order, p)+1)
				at := slices.Index(order, request) + 1 + rng.IntN(4)
				order = slices.Insert(order, at, p)
			}
			if slices.Index(order, 7) < slices.Index(order, request) && slices.Index(order, request) < slices.Index(order, response) {
				break
			}
		}
		cases = append(cases, struct {
			name string
			pkts []pcaptest.Packet
		}{name: fmt.Sprintf("seed %d: shuffled in windows of %d", seed, w), pkts: reorder(order...)})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "shuffled.pcap")
			pcaptest.Write(t, file, lt, tc.pkts)
			rec, st := sniffFile(t, file, Config{})
			opens := rec.kinds("open")
			if len(opens) != 1 || opens[0].pc.URL.String() != "ws://127.0.0.1:9101/chat" {
				t.Fatalf("open events %v, want one of ws://127.0.0.1:9101/chat:\n%s", opens, rec.dump())
			}
			byDir := map[plugins.Direction][]event{}
			for _, e := range rec.kinds("message") {
				byDir[e.dir] = append(byDir[e.dir], e)
			}
			for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
				want, got := plainScript(dir), byDir[dir]
				if len(got) != len(want) {
					t.Fatalf("%s: %d messages, want %d:\n%s", dir, len(got), len(want), rec.dump())
				}
				for i, w := range want {
					g := got[i]
					ok := g.op == w.op && g.seq == uint64(i)
					if w.payload != "" || w.op.IsControl() {
						ok = ok && string(g.payload) == w.payload
					} else {
						ok = ok && len(g.payload) == w.size
					}
					if !ok {
						t.Errorf("%s message %d: got %s, want %s of %d bytes %q", dir, i, g, w.op, w.size, w.payload)
					}
				}
			}
			// Who closed first depends on the shuffle: both sent 4001.
			if closes := rec.kinds("close"); len(closes) != 1 || closes[0].code != 4001 {
				t.Errorf("close events %v", closes)
			}
			if st.Gaps != 0 || st.Resyncs != 0 || st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
