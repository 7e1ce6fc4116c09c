package sniff

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wstap/wstap/internal/pcaptest"
	"github.com/wstap/wstap/wsframe"
)

// A capture that starts after the handshake (issue #23): the connections whose
// bytes look like WebSocket frames are counted, so that the user hears about
// --ws-port.

// frames returns WebSocket frames of the given payload sizes, masked or not.
func frames(t *testing.T, masked bool, sizes ...int) []byte {
	t.Helper()
	var b bytes.Buffer
	side := wsframe.Server
	if masked {
		side = wsframe.Client
	}
	w := wsframe.NewWriter(&b, side, 0)
	for i, n := range sizes {
		h := wsframe.Header{Fin: true, Opcode: wsframe.OpBinary, Masked: masked, Mask: [4]byte{1, 2, 3, byte(i)}}
		if err := w.WriteFrame(h, bytes.Repeat([]byte{'x'}, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLooksLikeFrames(t *testing.T) {
	clientHello, _ := hex.DecodeString("16030100f8010000f40303")
	for _, tc := range []struct {
		name     string
		b        []byte
		ok, mask bool
	}{
		{"one frame from the server", frames(t, false, 10), true, false},
		{"frames from the client", frames(t, true, 0, 300, 5), true, true},
		{"two frames, then one cut", frames(t, false, 3, 4, 70000)[:200], true, false},
		{"one frame cut", frames(t, false, 70000)[:1400], false, false},
		{"a frame and bytes after it", append(frames(t, false, 10), 0xff), false, false},
		{"masked and not", append(frames(t, true, 5), frames(t, false, 5)...), false, false},
		{"TLS ClientHello", clientHello, false, false},
		{"SSH", []byte("SSH-2.0-OpenSSH_9.2p1\r\n"), false, false},
		{"HTTP/2", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), false, false},
		{"nothing", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, mask := looksLikeFrames(tc.b); ok != tc.ok || ok && mask != tc.mask {
				t.Errorf("looksLikeFrames = %v, masked %v; want %v, %v", ok, mask, tc.ok, tc.mask)
			}
		})
	}
	// Random payloads of random sizes rarely pass.
	rng := rand.New(rand.NewPCG(23, 6))
	pass := 0
	const tries = 20000
	for range tries {
		b := make([]byte, 1+rng.IntN(1460))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if ok, _ := looksLikeFrames(b); ok {
			pass++
		}
	}
	if pass > tries/200 {
		t.Errorf("%d of %d random payloads look like frames", pass, tries)
	}
	t.Logf("%d of %d random payloads look like frames", pass, tries)
}

// TestNoHandshakeStats cuts the handshake off ws-plain.pcap: without --ws-port
// its connection is not followed, but counted as looking like WebSocket, with its
// server port; with it, it is followed and not counted.
func TestNoHandshakeStats(t *testing.T) {
	lt, pkts := pcaptest.Read(t, "testdata/ws-plain.pcap")
	file := filepath.Join(t.TempDir(), "mid.pcap")
	pcaptest.Write(t, file, lt, pkts[7:])
	for _, tc := range []struct {
		name         string
		cfg          Config
		conns, count int64
		ports        []uint16
	}{
		{"without --ws-port", Config{}, 0, 1, []uint16{9101}},
		{"with --ws-port", Config{WSPorts: []uint16{9101}}, 1, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := sniffFile(t, file, tc.cfg)
			if st.Connections != tc.conns || st.NoHandshake != tc.count || !slices.Equal(st.NoHandshakePorts, tc.ports) {
				t.Errorf("%d connections, %d without a handshake on ports %v; want %d, %d on %v",
					st.Connections, st.NoHandshake, st.NoHandshakePorts, tc.conns, tc.count, tc.ports)
			}
		})
	}
	// The whole capture: followed from its handshake, nothing to hint at.
	if _, st := sniffFile(t, "testdata/ws-plain.pcap", Config{}); st.NoHandshake != 0 {
		t.Errorf("the whole capture: %d connections without a handshake", st.NoHandshake)
	}
}
