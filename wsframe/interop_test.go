// Interop tests: wsframe against real WebSocket implementations over loopback TCP.
//
// They prove that the codec speaks the same RFC 6455 and RFC 7692 as two independent Go
// libraries (gorilla/websocket and coder/websocket) in both roles and both directions:
// the Reader and Assembler decode exactly the bytes those peers put on the wire
// (every length encoding, fragmented messages, masked and unmasked frames, control
// frames, close codes and reasons), and the peers accept exactly what the Writer
// produces (masking, explicit fragmentation, pings, closes with reasons cut to fit).
// Re-encoding what the peers sent with Writer.WriteFrames gives their exact bytes
// back, so a relay can forward frames unchanged. With
// permessage-deflate they prove that the negotiation helpers agree with the peers'
// handshakes, that Inflater reads gorilla's no-context-takeover messages and coder's
// context-takeover messages (several frames per message), and that Deflater's output
// is accepted by both, with context takeover really in use. Finally, CPython's zlib,
// one decompressor for a whole sequence of messages as a browser keeps it, checks that
// Deflater honours every window size from 8 to 15 bits, with and without context
// takeover.
package wsframe_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wstap/wstap/internal/wstest"
	"github.com/wstap/wstap/wsframe"
)

// iopSetups lists the four ways of pairing wsframe with a peer library.
func iopSetups(bufSize int, compress bool) []iopSetup {
	var out []iopSetup
	for _, peer := range []string{"gorilla", "coder"} {
		for _, side := range []wsframe.Side{wsframe.Server, wsframe.Client} {
			out = append(out, iopSetup{peer: peer, peerSide: side, compress: compress, bufSize: bufSize})
		}
	}
	return out
}

// Peer-side steps. They run in the peer's goroutine and report by returning errors.

func iopPeerSendAll(ctx context.Context, p iopPeerConn, script []iopMsg) error {
	for _, m := range script {
		if err := p.Send(ctx, m); err != nil {
			return fmt.Errorf("send %s: %w", m.name, err)
		}
	}
	return nil
}

func iopPeerExpectAll(ctx context.Context, p iopPeerConn, script []iopMsg) error {
	for _, want := range script {
		op, got, err := p.Read(ctx)
		if err != nil {
			return fmt.Errorf("read %s: %w", want.name, err)
		}
		if op != want.op {
			return fmt.Errorf("%s: got a %s message, want %s", want.name, op, want.op)
		}
		if d := iopDiff(got, want.payload); d != "" {
			return fmt.Errorf("%s: payload %s", want.name, d)
		}
	}
	return nil
}

// iopPeerExpectClose reads on until the peer library reports the close frame wsframe
// sent; the library answers it by itself.
func iopPeerExpectClose(ctx context.Context, p iopPeerConn, code int, reason string) error {
	op, got, err := p.Read(ctx)
	if err == nil {
		return fmt.Errorf("got a %s message of %d bytes, want the close frame", op, len(got))
	}
	c, r, ok := iopCloseOf(err)
	if !ok {
		return fmt.Errorf("want a close error, got %w", err)
	}
	if c != code || r != reason {
		return fmt.Errorf("close code %d reason %q, want %d %q", c, r, code, reason)
	}
	return nil
}

// iopCheckOne compares a message wsframe read with what the peer sent.
func iopCheckOne(t *testing.T, m *wsframe.Message, want iopMsg, from wsframe.Side) {
	t.Helper()
	if m.Opcode != want.op {
		t.Errorf("%s: opcode %s, want %s", want.name, m.Opcode, want.op)
	}
	if d := iopDiff(m.Payload, want.payload); d != "" {
		t.Errorf("%s: payload %s", want.name, d)
	}
	iopCheckFrames(t, want.name, m, from)
	// A compressed message that got small fits in one frame whatever the writer did.
	if len(want.chunks) > 1 && (!m.Compressed || len(m.Wire) > 2048) && len(m.Frames) < 2 {
		t.Errorf("%s: written through the streaming writer in %d pieces, arrived in %d frame(s); want several", want.name, len(want.chunks), len(m.Frames))
	}
}

const (
	iopCloseCode   = 4001
	iopCloseReason = "bye"
)

// iopAnswerPingAndClose is the wsframe side of a peer-initiated end: it reads the
// peer's ping and answers with a pong, reads its close frame (4001 "bye") and echoes
// it, then expects the peer to close the connection.
func iopAnswerPingAndClose(t *testing.T, l *iopLink, a *wsframe.Assembler, wantPing []byte) {
	t.Helper()
	ping := l.read(a, "ping")
	if ping.Opcode != wsframe.OpPing || !bytes.Equal(ping.Payload, wantPing) {
		t.Fatalf("got %s %q, want ping %q", ping.Opcode, ping.Payload, wantPing)
	}
	if ping.Frames[0].Masked != (l.side == wsframe.Server) {
		t.Errorf("ping from the %s: masked=%v", l.side, ping.Frames[0].Masked)
	}
	l.write(wsframe.OpPong, 0, ping.Payload, nil)
	l.flush()
	cl := l.read(a, "close")
	if cl.Opcode != wsframe.OpClose {
		t.Fatalf("got %s %q, want close", cl.Opcode, cl.Payload)
	}
	code, reason, err := wsframe.ParseClose(cl.Payload)
	if err != nil || code != iopCloseCode || reason != iopCloseReason {
		t.Errorf("ParseClose(%q) = %d, %q, %v; want %d %q", cl.Payload, code, reason, err, iopCloseCode, iopCloseReason)
	}
	l.write(wsframe.OpClose, 0, wsframe.AppendClose(nil, code, reason), nil)
	l.flush()
	l.expectEOF()
}

// iopPingAndClose is the wsframe side of a wsframe-initiated end: it sends a ping and
// a close frame (4001 "bye"), then expects the pong, the peer's close echo and the end
// of the connection.
func iopPingAndClose(t *testing.T, l *iopLink, a *wsframe.Assembler, ping []byte) {
	t.Helper()
	l.write(wsframe.OpPing, 0, ping, nil)
	l.write(wsframe.OpClose, 0, wsframe.AppendClose(nil, iopCloseCode, iopCloseReason), nil)
	l.flush()
	if l.w.Buffered() != 0 {
		t.Errorf("Buffered() = %d after Flush", l.w.Buffered())
	}
	pong := l.read(a, "pong")
	if pong.Opcode != wsframe.OpPong || !bytes.Equal(pong.Payload, ping) {
		t.Fatalf("got %s %q, want pong %q", pong.Opcode, pong.Payload, ping)
	}
	cl := l.read(a, "close echo")
	if cl.Opcode != wsframe.OpClose {
		t.Fatalf("got %s %q, want the close echo", cl.Opcode, cl.Payload)
	}
	if code, _, err := wsframe.ParseClose(cl.Payload); err != nil || code != iopCloseCode {
		t.Errorf("close echo %q: code %d, %v; want %d", cl.Payload, code, err, iopCloseCode)
	}
	l.expectEOF()
}

// TestInteropReadFromPeers: gorilla and coder, as server and as client, send text
// (multi-byte UTF-8), binary messages at every length boundary up to 1 MiB, fragmented
// messages, a ping and a close (4001 "bye"); wsframe's Reader and Assembler must return
// every byte, opcode and frame header as sent, answer the ping and echo the close.
func TestInteropReadFromPeers(t *testing.T) {
	for _, s := range iopSetups(512, false) {
		t.Run(s.name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			script := iopScript()
			wantPing := iopPingPayload[s.peer]
			var wantPongs [][]byte
			if s.peer == "gorilla" {
				// A ping between two frames of a fragmented message (RFC 6455 §5.4).
				m := iopMsg{name: "binary-with-ping-inside", op: wsframe.OpBinary, payload: iopRandom(3000, 3000),
					chunks: iopPieces(3000, 300), midPing: []byte("between fragments"), midPingAfter: 4}
				script = append(script, m)
				wantPongs = append(wantPongs, m.midPing)
			}
			wantPongs = append(wantPongs, wantPing)
			l := iopConnect(t, s, func(ctx context.Context, p iopPeerConn) error {
				if err := iopPeerSendAll(ctx, p, script); err != nil {
					return err
				}
				if err := p.Ping(ctx); err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				if err := p.Close(ctx, iopCloseCode, iopCloseReason); err != nil {
					return fmt.Errorf("close: %w", err)
				}
				if pongs := p.Pongs(); fmt.Sprintf("%q", pongs) != fmt.Sprintf("%q", wantPongs) {
					return fmt.Errorf("pongs received: %q, want %q", pongs, wantPongs)
				}
				return nil
			})
			defer l.close()

			a := wsframe.NewAssembler(wsframe.AssemblerConfig{})
			for _, want := range script {
				if want.midPing != nil {
					ping := l.read(a, want.name+" ping")
					if ping.Opcode != wsframe.OpPing || !bytes.Equal(ping.Payload, want.midPing) {
						t.Fatalf("%s: got %s %q, want ping %q", want.name, ping.Opcode, ping.Payload, want.midPing)
					}
					if !a.InMessage() {
						t.Errorf("%s: the ping did not arrive between fragments", want.name)
					}
					l.write(wsframe.OpPong, 0, ping.Payload, nil)
					l.flush()
				}
				iopCheckOne(t, l.read(a, want.name), want, s.peerSide)
			}
			iopAnswerPingAndClose(t, l, a, wantPing)
			if err := l.wait(); err != nil {
				t.Errorf("%s: %v", s.peer, err)
			}
		})
	}
}

// TestInteropForwardByteIdentical: every message and control frame that gorilla and
// coder send (clients with their own random masking keys, servers unmasked), written
// back out with Writer.WriteFrames from the Message's Frames and Wire, reproduces the
// exact bytes the peer put on the wire: the relay path changes nothing. With
// permessage-deflate too, where Wire is the compressed stream (coder with context
// takeover, gorilla without).
func TestInteropForwardByteIdentical(t *testing.T) {
	for _, s := range append(iopSetups(512, false), iopSetups(512, true)...) {
		name := s.name()
		if s.compress {
			name += "-deflate"
		}
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			var wire, again bytes.Buffer
			s.record = &wire
			script := iopScript()
			l := iopConnect(t, s, func(ctx context.Context, p iopPeerConn) error {
				if err := iopPeerSendAll(ctx, p, script); err != nil {
					return err
				}
				if err := p.Ping(ctx); err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				return p.Close(ctx, iopCloseCode, iopCloseReason)
			})
			defer l.close()

			var cfg wsframe.AssemblerConfig
			if s.compress {
				if !l.deflate {
					t.Fatal("permessage-deflate not negotiated")
				}
				cfg.Inflater = wsframe.NewInflater(l.params.Sender(s.peerSide))
			}
			a := wsframe.NewAssembler(cfg)
			fw := wsframe.NewWriter(&again, s.peerSide, 0)
			compressed := 0
			forward := func(m *wsframe.Message) {
				t.Helper()
				if err := fw.WriteFrames(m.Frames, m.Wire); err != nil {
					t.Fatalf("WriteFrames: %v", err)
				}
			}
			frames := 0
			for _, want := range script {
				m := l.read(a, want.name)
				if !bytes.Equal(m.Payload, want.payload) {
					t.Errorf("%s: payload %s", want.name, iopDiff(m.Payload, want.payload))
				}
				frames += len(m.Frames)
				if m.Compressed {
					compressed++
				}
				forward(m)
			}
			if s.compress && compressed < len(script)/2 {
				t.Errorf("only %d of %d messages came compressed", compressed, len(script))
			}
			ping := l.read(a, "ping")
			forward(ping)
			l.write(wsframe.OpPong, 0, ping.Payload, nil)
			l.flush()
			cl := l.read(a, "close")
			forward(cl)
			l.write(wsframe.OpClose, 0, cl.Payload, nil)
			l.flush()
			l.expectEOF()
			if err := fw.Flush(); err != nil {
				t.Fatal(err)
			}
			if d := iopDiff(again.Bytes(), wire.Bytes()); d != "" {
				t.Errorf("re-encoded %d data frames and 2 control frames: %s", frames, d)
			}
			if err := l.wait(); err != nil {
				t.Errorf("%s: %v", s.peer, err)
			}
		})
	}
}

// TestInteropWriteToPeers: wsframe's Writer, as client (masked) and as server, sends
// the same messages, some split into frames of explicit sizes (empty frames and
// frame boundaries inside UTF-8 sequences included), then a ping and a close; gorilla
// and coder must read every message byte for byte, see the ping payload, report close
// 4001 "bye", and answer with a pong and a close echo that wsframe reads back.
func TestInteropWriteToPeers(t *testing.T) {
	for _, s := range iopSetups(0, false) {
		t.Run(s.name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			script := iopScript()
			// The largest control payload: the last one-byte length (RFC 6455 §5.5).
			ping := []byte("wsframe ping ✓ " + s.name() + " ")
			for i := 0; len(ping) < wsframe.MaxControlPayload; i++ {
				ping = append(ping, 'a'+byte(i%26))
			}
			l := iopConnect(t, s, func(ctx context.Context, p iopPeerConn) error {
				if err := iopPeerExpectAll(ctx, p, script); err != nil {
					return err
				}
				if err := iopPeerExpectClose(ctx, p, iopCloseCode, iopCloseReason); err != nil {
					return err
				}
				if pings := p.Pings(); len(pings) != 1 || !bytes.Equal(pings[0], ping) {
					return fmt.Errorf("pings received: %q, want %q", pings, ping)
				}
				return nil
			})
			defer l.close()

			for _, m := range script {
				l.write(m.op, 0, m.payload, m.frames)
			}
			iopPingAndClose(t, l, wsframe.NewAssembler(wsframe.AssemblerConfig{}), ping)
			if err := l.wait(); err != nil {
				t.Errorf("%s: %v", s.peer, err)
			}
		})
	}
}

// TestInteropCloseFromWsframe: close frames that wsframe's AppendClose builds, sent by
// wsframe's Writer in both roles, are what gorilla and coder report: a reason too long
// for a control frame is cut at a rune boundary to at most 123 bytes (a cut inside a
// rune would make the peers fail the connection with 1007), and CloseNoStatus is the
// empty payload the peers report as 1005. wsframe then parses the peer's echo.
func TestInteropCloseFromWsframe(t *testing.T) {
	long := "bye " + strings.Repeat("日本", 30) // 184 bytes
	cases := []struct {
		name       string
		code       wsframe.CloseCode
		reason     string
		wantReason string // what the peer must report
	}{
		{"4001-long-reason", iopCloseCode, long, long[:4+39*3]},
		{"1000-no-reason", wsframe.CloseNormal, "", ""},
		{"1005-empty", wsframe.CloseNoStatus, "", ""},
	}
	for _, s := range iopSetups(0, false) {
		for _, c := range cases {
			t.Run(s.name()+"/"+c.name, func(t *testing.T) {
				defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
				payload := wsframe.AppendClose(nil, c.code, c.reason)
				if len(payload) > wsframe.MaxControlPayload {
					t.Fatalf("AppendClose made a %d-byte payload", len(payload))
				}
				l := iopConnect(t, s, func(ctx context.Context, p iopPeerConn) error {
					return iopPeerExpectClose(ctx, p, int(c.code), c.wantReason)
				})
				defer l.close()

				l.write(wsframe.OpClose, 0, payload, nil)
				l.flush()
				echo := l.read(wsframe.NewAssembler(wsframe.AssemblerConfig{}), "close echo")
				code, reason, err := wsframe.ParseClose(echo.Payload)
				if echo.Opcode != wsframe.OpClose || err != nil || code != c.code {
					t.Errorf("echo %s %q: ParseClose = %d, %q, %v; want code %d", echo.Opcode, echo.Payload, code, reason, err, c.code)
				}
				if s.peer == "coder" && reason != c.wantReason { // gorilla echoes the code alone
					t.Errorf("coder echoed reason %q, want %q", reason, c.wantReason)
				}
				l.expectEOF()
				if err := l.wait(); err != nil {
					t.Errorf("%s: %v", s.peer, err)
				}
			})
		}
	}
}

// iopDeflateScript is iopScript plus messages that compress well, and one that wsframe
// sends uncompressed in the middle of compressed ones.
func iopDeflateScript() []iopMsg {
	script := iopScript()
	return append(script,
		iopMsg{name: "text-logs-100KiB", op: wsframe.OpText, payload: iopLogs(100 << 10), frames: []int{}},
		iopMsg{name: "text-plain-in-between", op: wsframe.OpText, payload: []byte("sent without compression: " + strings.Repeat("ab", 300)), plain: true},
		iopMsg{name: "binary-json", op: wsframe.OpBinary, payload: iopJSONDoc(3)},
	)
}

// iopLogs returns about n bytes of log lines: very compressible, not periodic.
func iopLogs(n int) []byte {
	var logs strings.Builder
	for i := 0; logs.Len() < n; i++ {
		fmt.Fprintf(&logs, "2024-05-%02d 12:%02d:%02d INFO request id=%d path=/api/v1/items/%d status=200\n", i%28+1, i%60, (i*7)%60, i, i*13)
	}
	return []byte(logs.String())
}

// iopCompressAndWrite compresses every message of script with d (but the plain ones)
// and writes it with RSV1 on its first frame; messages with explicit frames are split
// into three frames, an empty one in the middle. It returns the payloads it sent.
func iopCompressAndWrite(t *testing.T, l *iopLink, d *wsframe.Deflater, script []iopMsg) [][]byte {
	t.Helper()
	sent := make([][]byte, len(script))
	for i, m := range script {
		if m.plain {
			l.write(m.op, 0, m.payload, m.frames)
			sent[i] = m.payload
			continue
		}
		c, err := d.Deflate(nil, m.payload)
		if err != nil {
			t.Fatalf("%s: Deflate: %v", m.name, err)
		}
		var frames []int
		if m.frames != nil {
			frames = []int{len(c) / 3, 0, len(c) - len(c)/3}
		}
		l.write(m.op, wsframe.RSV1, c, frames)
		sent[i] = c
	}
	return sent
}

// iopNeedsWindow checks that a compressed message refers back into earlier messages:
// an inflater without their window must fail on it, or at least not produce plain.
func iopNeedsWindow(t *testing.T, what string, compressed, plain []byte) {
	t.Helper()
	out, err := wsframe.NewInflater(wsframe.Compression{}).Inflate(nil, compressed, 1<<20)
	if err == nil && bytes.Equal(out, plain) {
		t.Errorf("%s: inflates without the window of earlier messages: no context takeover", what)
	}
}

// TestInteropDeflateGorilla: permessage-deflate with gorilla (EnableCompression, which
// only speaks no_context_takeover), with gorilla as server and as client. The
// extension is negotiated by hand and checked with NegotiateDeflate; wsframe inflates
// every message gorilla compresses (fragmented ones included), then compresses the
// same messages with Deflater and sends them with RSV1, some split into frames and one
// left uncompressed; gorilla must read the plaintext.
func TestInteropDeflateGorilla(t *testing.T) {
	for _, side := range []wsframe.Side{wsframe.Server, wsframe.Client} {
		s := iopSetup{peer: "gorilla", peerSide: side, compress: true, bufSize: 512}
		t.Run(s.name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			script := iopDeflateScript()
			l := iopConnect(t, s, func(ctx context.Context, p iopPeerConn) error {
				if err := iopPeerSendAll(ctx, p, script); err != nil {
					return err
				}
				if err := iopPeerExpectAll(ctx, p, script); err != nil {
					return err
				}
				return iopPeerExpectClose(ctx, p, iopCloseCode, iopCloseReason)
			})
			defer l.close()

			want := wsframe.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
			if !l.deflate || l.params != want {
				t.Fatalf("negotiated %v %+v, want %+v", l.deflate, l.params, want)
			}
			a := wsframe.NewAssembler(wsframe.AssemblerConfig{Inflater: wsframe.NewInflater(l.params.Sender(s.peerSide))})
			for _, m := range script {
				msg := l.read(a, m.name)
				if !msg.Compressed {
					t.Errorf("%s: gorilla sent it uncompressed", m.name)
				}
				iopCheckOne(t, msg, m, s.peerSide)
				if m.name == "text-logs-100KiB" && len(msg.Wire)*4 > len(m.payload) {
					t.Errorf("%s: %d bytes on the wire for %d: not compressed much", m.name, len(msg.Wire), len(m.payload))
				}
			}

			d, err := wsframe.NewDeflater(l.params.Sender(l.side))
			if err != nil {
				t.Fatal(err)
			}
			iopCompressAndWrite(t, l, d, script)
			iopPingAndClose(t, l, a, []byte("after compressed messages"))
			if err := l.wait(); err != nil {
				t.Errorf("gorilla: %v", err)
			}
		})
	}
}

// iopWords is the vocabulary of the JSON test documents.
var iopWords = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo
	lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee
	zulu amber basalt cobalt dune ember fjord glacier harbor islet jasper kelp lagoon meadow
	nectar orchid prairie quartz ravine summit tundra umber valley willow yarrow zephyr`)

// iopJSONDoc returns a JSON document of about 2 KiB: compressible, with varied words
// and numbers, but not trivially repetitive.
func iopJSONDoc(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 42))
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < 2000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"%s %s","tags":["%s","%s"],"score":%.3f,"active":%v}`,
			rng.IntN(100000), iopWords[rng.IntN(len(iopWords))], iopWords[rng.IntN(len(iopWords))],
			iopWords[rng.IntN(len(iopWords))], iopWords[rng.IntN(len(iopWords))], rng.Float64()*100, rng.IntN(2) == 0)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// TestInteropDeflateCoderTakeover: permessage-deflate with context takeover against
// coder/websocket (CompressionContextTakeover) as server and as client, in both
// directions on one connection. The same ~2 KiB JSON document goes 52 times each way,
// with a small uncompressed message in the middle and a 100 KiB one (which slides the
// 32 KiB window past every earlier copy) near the end. Every message must arrive
// intact, and every repeated copy must depend on the window of earlier messages: an
// inflater without it must fail on it. What wsframe sends must take under 20% of the
// first copy's wire size per repeated copy; coder's compress/flate at BestSpeed only
// manages 6-60% (it matches against one flush block back), so its copies must stay
// under 60% with at least one under 20%. coder sends half of its copies through its
// streaming writer, as several frames with RSV1 on the first only; wsframe splits half
// of its copies into three frames.
func TestInteropDeflateCoderTakeover(t *testing.T) {
	const copies = 52 // 50 repeated copies each way besides the first and the one after the big message
	for _, side := range []wsframe.Side{wsframe.Server, wsframe.Client} {
		s := iopSetup{peer: "coder", peerSide: side, compress: true}
		t.Run(s.name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			doc := iopJSONDoc(1)
			const bigName = "logs-100KiB"
			var script []iopMsg
			for i := range copies {
				m := iopMsg{name: "doc-" + strconv.Itoa(i), op: wsframe.OpText, payload: doc}
				if i%2 == 0 {
					// coder's streaming writer sends a frame per flate output chunk.
					m.chunks = []int{len(doc)}
				} else {
					m.frames = []int{} // wsframe: split in three frames
				}
				script = append(script, m)
				switch i {
				case copies / 2:
					// Below coder's 128-byte threshold, so it goes uncompressed; wsframe
					// sends it uncompressed too. Neither may disturb the window.
					script = append(script, iopMsg{name: "small-plain", op: wsframe.OpText, payload: []byte(`{"ping":"pong"}`), plain: true})
				case copies - 10:
					// Over 32 KiB: the window slides past every earlier copy.
					logs := iopLogs(100 << 10)
					script = append(script, iopMsg{name: bigName, op: wsframe.OpText, payload: logs, chunks: []int{len(logs)}, frames: []int{}})
				}
			}
			// Copies that must be small: all but the first, and the first after the
			// big message, which has nothing to refer back to in the window.
			isRepeat := func(i int) bool {
				m := script[i]
				return i > 0 && !m.plain && m.name != bigName && script[i-1].name != bigName
			}
			l := iopConnect(t, s, func(ctx context.Context, p iopPeerConn) error {
				if err := iopPeerSendAll(ctx, p, script); err != nil {
					return err
				}
				if err := iopPeerExpectAll(ctx, p, script); err != nil {
					return err
				}
				return iopPeerExpectClose(ctx, p, iopCloseCode, iopCloseReason)
			})
			defer l.close()

			if !l.deflate || l.params != (wsframe.DeflateParams{}) {
				t.Fatalf("negotiated %v %+v, want context takeover both ways", l.deflate, l.params)
			}
			in := l.params.Sender(s.peerSide)
			if !in.ContextTakeover {
				t.Fatalf("Sender(%s) = %+v, want context takeover", s.peerSide, in)
			}
			a := wsframe.NewAssembler(wsframe.AssemblerConfig{Inflater: wsframe.NewInflater(in)})
			// coder compresses with compress/flate at BestSpeed, whose matcher only
			// looks back one flush block: repeated copies come out at 10-60% of the
			// first, not consistently under 20% (compress/flate alone gives the same
			// sizes). What proves the shared window is that a fresh inflater cannot
			// decode a repeated copy at all, while wsframe's Inflater decodes every one.
			first, smallest, largest, total, repeats := 0, 0, 0, 0, 0
			for i, m := range script {
				msg := l.read(a, m.name)
				iopCheckOne(t, msg, m, s.peerSide)
				if msg.Compressed == m.plain {
					t.Errorf("%s: Compressed=%v", m.name, msg.Compressed)
				}
				switch {
				case i == 0:
					first = len(msg.Wire)
					if len(msg.Frames) < 2 {
						t.Errorf("%s: coder's compressed stream arrived in %d frame(s), want several", m.name, len(msg.Frames))
					}
					if first >= len(doc) {
						t.Errorf("%s: %d wire bytes for a %d-byte document", m.name, first, len(doc))
					}
				case isRepeat(i):
					n := len(msg.Wire)
					if repeats == 0 || n < smallest {
						smallest = n
					}
					largest = max(largest, n)
					total += n
					repeats++
					if n*100 >= first*60 {
						t.Errorf("%s: repeated copy took %d wire bytes, first took %d: no context takeover?", m.name, n, first)
					}
					iopNeedsWindow(t, m.name, msg.Wire, doc)
				}
			}
			t.Logf("coder → wsframe: first copy %d wire bytes, %d repeats of %d..%d bytes (mean %d)", first, repeats, smallest, largest, total/max(repeats, 1))
			if repeats < copies-2 || smallest*5 >= first {
				t.Errorf("%d repeated copies, smallest %d wire bytes against %d for the first: want %d, one under 20%%", repeats, smallest, first, copies-2)
			}

			out := l.params.Sender(l.side)
			if !out.ContextTakeover {
				t.Fatalf("Sender(%s) = %+v, want context takeover", l.side, out)
			}
			d, err := wsframe.NewDeflater(out)
			if err != nil {
				t.Fatal(err)
			}
			sent := iopCompressAndWrite(t, l, d, script)
			repeats, largest = 0, 0
			for i, m := range script {
				if !isRepeat(i) {
					continue
				}
				repeats++
				largest = max(largest, len(sent[i]))
				if len(sent[i])*5 >= len(sent[0]) {
					t.Errorf("%s: wsframe sent %d compressed bytes, first copy %d: no context takeover?", m.name, len(sent[i]), len(sent[0]))
				}
				iopNeedsWindow(t, m.name, sent[i], doc)
			}
			t.Logf("wsframe → coder: first copy %d wire bytes, %d repeats of at most %d bytes", len(sent[0]), repeats, largest)
			if repeats < copies-2 {
				t.Errorf("only %d repeated copies sent", repeats)
			}
			iopPingAndClose(t, l, a, []byte("takeover done"))
			if err := l.wait(); err != nil {
				t.Errorf("coder: %v", err)
			}
		})
	}
}

// iopZlibScript inflates length-prefixed raw DEFLATE messages from stdin with ONE
// zlib decompressobj(-bits), which keeps its window across messages as a browser's
// inflater does, appending 00 00 ff ff to each (RFC 7692 §7.2.2). It asks for at most
// `step` output bytes per inflate call, so that zlib takes back-references from its
// own window rather than from the current output buffer: a distance beyond 2**bits
// (+ step) then fails with "invalid distance too far back". It prints
// "index length sha256" per message, or "index error ..." and stops.
const iopZlibScript = `
import hashlib, struct, sys, zlib
bits, step = int(sys.argv[1]), int(sys.argv[2])
d = zlib.decompressobj(-bits)
data = sys.stdin.buffer.read()
i = idx = 0
out = sys.stdout
while i < len(data):
    (n,) = struct.unpack_from(">I", data, i)
    msg = data[i + 4:i + 4 + n] + b"\x00\x00\xff\xff"
    i += 4 + n
    plain = bytearray()
    pos, tail = 0, b""
    try:
        while True:
            if not tail:
                tail = msg[pos:pos + 1024]
                pos += len(tail)
            chunk = d.decompress(tail, step)
            plain += chunk
            tail = d.unconsumed_tail
            if pos >= len(msg) and not tail and len(chunk) < step:
                break
    except zlib.error as e:
        out.write("%d error %s\n" % (idx, e))
        break
    if d.eof or d.unused_data:
        out.write("%d error final block or trailing data\n" % idx)
        break
    out.write("%d %d %s\n" % (idx, len(plain), hashlib.sha256(plain).hexdigest()))
    idx += 1
`

// iopPython returns the path of python3 (see wstest.Command).
func iopPython(t *testing.T) string {
	t.Helper()
	return wstest.Command(t, "/usr/bin/python3", "python3")
}

// iopZlib runs iopZlibScript over the compressed messages and returns its output
// lines, one per message that inflated, the last one an error line if one failed.
func iopZlib(t *testing.T, py string, bits int, msgs [][]byte) []string {
	t.Helper()
	var in bytes.Buffer
	for _, m := range msgs {
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(m))))
		in.Write(m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", iopZlibScript, strconv.Itoa(bits), "64")
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python zlib: %v\n%s", err, stderr.Bytes())
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// iopHistory returns ~30 varied messages: tiny, empty, repetitive, random, over 64
// KiB, repeated ones (which context takeover turns into back-references) and periodic
// ones whose repeats sit right around every window size.
func iopHistory() [][]byte {
	var h [][]byte
	add := func(b []byte) { h = append(h, b) }
	var logs strings.Builder
	for i := 0; logs.Len() < 100<<10; i++ {
		fmt.Fprintf(&logs, "level=info ts=%d msg=\"served\" route=/v2/%s/%d bytes=%d\n", 1700000000+i*37, iopWords[i%len(iopWords)], i%97, i*31%5000)
	}
	r100 := iopRandom(100, 100)
	add([]byte{})
	add([]byte("a"))
	add([]byte("hi"))
	add([]byte(`{"op":"ping"}`))
	add(iopRandom(10, 10))
	add(r100)
	add(r100) // index 6: a back-reference into message 5 with context takeover
	add(bytes.Repeat([]byte("abc"), 1000))
	add(iopJSONDoc(5))
	add(iopJSONDoc(5))
	add(iopRandom(300, 300))
	add([]byte(logs.String()))
	add(iopRandom(70<<10, 70<<10))
	add([]byte(strings.Repeat("Grüße aus Köln — 東京 🚀 ", 200)))
	add(make([]byte, 200<<10))
	add([]byte("a"))
	add(r100)
	for _, period := range []int{200, 255, 256, 257, 511, 512, 1000, 1024, 4096, 16384, 32768} {
		block := iopRandom(uint64(period)*3, period)
		add(bytes.Repeat(block, 3))
	}
	add(iopJSONDoc(5))
	return h
}

// TestInteropPythonZlibWindows: for every window size of RFC 7692 (8 to 15 bits), with
// and without context takeover, Deflater compresses a history of varied messages and
// CPython's zlib, one decompressor with that window for the whole history, must
// inflate every message exactly. A control run shows that the harness catches a
// back-reference beyond the window.
func TestInteropPythonZlibWindows(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	py := iopPython(t)
	history := iopHistory()
	want := make([]string, len(history))
	for i, m := range history {
		sum := sha256.Sum256(m)
		want[i] = fmt.Sprintf("%d %d %s", i, len(m), hex.EncodeToString(sum[:]))
	}

	for bits := 8; bits <= 15; bits++ {
		for _, takeover := range []bool{false, true} {
			c := wsframe.Compression{ContextTakeover: takeover, WindowBits: bits}
			t.Run(fmt.Sprintf("bits=%d/takeover=%v", bits, takeover), func(t *testing.T) {
				d, err := wsframe.NewDeflater(c)
				if err != nil {
					t.Fatal(err)
				}
				compressed := make([][]byte, len(history))
				for i, m := range history {
					if compressed[i], err = d.Deflate(nil, m); err != nil {
						t.Fatalf("message %d: Deflate: %v", i, err)
					}
				}
				if takeover && len(compressed[6])*2 >= len(compressed[5]) {
					t.Errorf("a repeated 100-byte message took %d bytes, its first copy %d: no back-reference across messages", len(compressed[6]), len(compressed[5]))
				}

				got := iopZlib(t, py, bits, compressed)
				for i := range history {
					switch {
					case i >= len(got):
						t.Fatalf("zlib stopped before message %d", i)
					case got[i] != want[i]:
						t.Fatalf("message %d (%d bytes, %d compressed): zlib says %q, want %q", i, len(history[i]), len(compressed[i]), got[i], want[i])
					}
				}

				// wsframe's own Inflater must agree.
				f := wsframe.NewInflater(c)
				for i, m := range compressed {
					out, err := f.Inflate(nil, m, 1<<30)
					if err != nil || !bytes.Equal(out, history[i]) {
						t.Fatalf("message %d: Inflate: %s, %v", i, iopDiff(out, history[i]), err)
					}
				}
			})
		}
	}

	t.Run("control-window-too-small", func(t *testing.T) {
		// A 15-bit window compressor repeats a 1000-byte block at distance 1000; an
		// 8-bit window inflater must reject that.
		d, err := wsframe.NewDeflater(wsframe.Compression{WindowBits: 15})
		if err != nil {
			t.Fatal(err)
		}
		block := iopRandom(1000, 1000)
		m, err := d.Deflate(nil, bytes.Repeat(block, 2))
		if err != nil {
			t.Fatal(err)
		}
		got := iopZlib(t, py, 8, [][]byte{m})
		if len(got) != 1 || !strings.Contains(got[0], "error") {
			t.Fatalf("zlib with an 8-bit window accepted a 1000-byte back-reference: %q", got)
		}
	})
}
