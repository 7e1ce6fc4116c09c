package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
	"github.com/wstap/wstap/wsframe"
)

// TestRelayLargeCompressed sends compressed messages far larger, once inflated, than
// the hook limit between two coder/websocket peers that compress with context
// takeover (as browsers do): a repetitive JSON document and a compression bomb
// (zeros). They are streamed, inflated only a chunk at a time on their way: each
// arrives intact, the log records a preview, the inflated length and that the hooks
// did not see it, and the messages after it still inflate at the peer, whose
// window the large message extended. Then again after a rewrite, once the proxy
// compresses the direction itself: the large message then goes out uncompressed.
func TestRelayLargeCompressed(t *testing.T) {
	const hookLimit = 256 << 10
	for _, dir := range []plugins.Direction{plugins.ClientToServer, plugins.ServerToClient} {
		for _, owned := range []bool{false, true} {
			name := dir.String() + " as relayed"
			if owned {
				name = dir.String() + " after a rewrite"
			}
			t.Run(name, func(t *testing.T) { largeCompressedCase(t, dir, owned, hookLimit) })
		}
	}
}

func largeCompressedCase(t *testing.T, dir plugins.Direction, owned bool, hookLimit int64) {
	var mu sync.Mutex
	var hooked []int
	hook := plugins.HookFunc{HookName: "wsr-rewrite", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		mu.Lock()
		hooked = append(hooked, len(m.Payload))
		mu.Unlock()
		if p := string(m.Payload); strings.HasPrefix(p, "MODIFY|") {
			return plugins.Verdict{Action: plugins.Modify, Payload: []byte("MODIFIED|" + p[7:])}, nil
		}
		return plugins.Verdict{}, nil
	}}
	tp := startProxy(t, proxy.Config{MaxHookMessage: hookLimit}, plugins.FailOpen, hook)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cc, sconn, rl := wsrCoderTakeoverPair(ctx, t, tp, "/large")
	from, to := cc, sconn
	if dir == plugins.ServerToClient {
		from, to = sconn, cc
	}
	to.SetReadLimit(64 << 20)
	recv := func(what string) string {
		t.Helper()
		_, b, err := to.Read(ctx)
		if err != nil {
			t.Fatalf("%s: %v\nproxy logs:\n%s", what, err, tp.Logs)
		}
		return string(b)
	}
	send := func(msg string) {
		t.Helper()
		if err := from.Write(ctx, coder.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}

	var want []string
	for i := range 10 {
		want = append(want, wsrDeflateMsg(dir.String(), i))
	}
	if owned {
		want = append(want, "MODIFY|"+wsrDeflateMsg(dir.String(), 10))
	}
	var doc strings.Builder
	for doc.Len() < 3<<20 {
		doc.WriteString(wsrDeflateMsg(dir.String(), doc.Len()%97))
	}
	bomb := strings.Repeat("\x00", 16<<20)
	bigs := []string{doc.String(), bomb}
	want = append(want, bigs[0], bigs[1])
	for i := range 10 {
		want = append(want, wsrDeflateMsg(dir.String(), 100+i))
	}
	go func() {
		for _, m := range want {
			if err := from.Write(ctx, coder.MessageText, []byte(m)); err != nil {
				return
			}
		}
	}()
	for i, w := range want {
		got := recv(fmt.Sprintf("message %d", i))
		if strings.HasPrefix(w, "MODIFY|") {
			w = "MODIFIED|" + w[7:]
		}
		if got != w {
			t.Fatalf("message %d: got %d bytes (%.40q), want %d (%.40q)", i, len(got), got, len(w), w)
		}
	}
	send("last")
	if got := recv("the last message"); got != "last" {
		t.Fatalf("last message: %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range hooked {
		if n > int(hookLimit) {
			t.Fatalf("the hook saw a message of %d bytes, above the limit of %d", n, hookLimit)
		}
	}

	// The log: the large messages were not hooked, are previewed, and carry their
	// inflated length.
	evs := tp.WaitEvents(t, "message", wsrWait, func(evs []map[string]any) bool {
		n := 0
		for _, ev := range evs {
			if ev["payload"] == "last" {
				n++
			}
		}
		return n == 1
	})
	var large []map[string]any
	for _, ev := range evs {
		if ev["dir"] == dir.String() && wsrNum(ev, "len") > hookLimit {
			large = append(large, ev)
		}
	}
	if len(large) != 2 {
		t.Fatalf("%d large message events, want 2", len(large))
	}
	for i, ev := range large {
		p := wsrEvPayload(t, ev)
		if wsrNum(ev, "len") != int64(len(bigs[i])) || ev["hooked"] != false || ev["truncated"] != true || ev["compressed"] != true ||
			len(p) == 0 || !strings.HasPrefix(bigs[i], string(p)) {
			t.Errorf("large message %d logged as len %v hooked %v truncated %v compressed %v, preview of %d bytes",
				i, ev["len"], ev["hooked"], ev["truncated"], ev["compressed"], len(p))
		}
	}

	// On the wire: relayed as they came (compressed), or, once the proxy compresses
	// the direction itself, uncompressed.
	recvd, sent := rl.streams(t)
	stream, sender := recvd, wsframe.Client
	if dir == plugins.ServerToClient {
		stream, sender = sent, wsframe.Server
	}
	if dir == plugins.ClientToServer {
		msgs, _, _ := wsrWireMessages(t, stream, sender)
		compressed := wireCompressed(t, stream, sender, len(bigs[0]))
		if len(msgs) < len(want) || compressed == owned {
			t.Errorf("the server's wire: %d messages; the large document compressed: %v (want %v)", len(msgs), compressed, !owned)
		}
	}
}

// wireCompressed reports whether the message of n payload bytes (once inflated) in
// the recorded stream was compressed on the wire.
func wireCompressed(t *testing.T, stream []byte, sender wsframe.Side, n int) bool {
	t.Helper()
	r := wsframe.NewReader(bytes.NewReader(stream), wsframe.Rules{Sender: sender, Extensions: wsframe.RSV1}, 0)
	a := wsframe.NewAssembler(wsframe.AssemblerConfig{Lenient: true, Inflater: wsframe.NewInflater(wsframe.Compression{ContextTakeover: true})})
	for {
		m, err := a.ReadMessage(r)
		if err != nil {
			t.Fatalf("no message of %d bytes on the wire: %v", n, err)
		}
		if m.Opcode.IsData() && len(m.Payload) == n {
			return m.Compressed
		}
	}
}
