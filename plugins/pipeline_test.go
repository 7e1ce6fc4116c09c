package plugins_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// wireMsg is an assembled one-frame text message with payload p.
func wireMsg(p string) *wsframe.Message {
	return &wsframe.Message{Opcode: wsframe.OpText, Payload: []byte(p), Wire: []byte(p),
		Frames: []wsframe.Header{{Fin: true, Opcode: wsframe.OpText, Length: uint64(len(p))}}}
}

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestPipelineRecord checks the record of each verdict: what was received and what
// was forwarded, decoded and raw, and the codec that declined a message.
func TestPipelineRecord(t *testing.T) {
	var logs bytes.Buffer
	chain, err := plugins.NewChain(plugins.FailOpen, slog.New(slog.NewTextHandler(&logs, nil)),
		&b64{}, replaceAll("mallory", "trent"), dropIf("secret"))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		payload, decoded, original, originalDecoded, declined string
		hasDecoded, modified, dropped                         bool
		would                                                 string // sniff: "modify:<payload>" or "drop"
	}
	tests := []struct {
		name string
		mode plugins.Mode
		wire string
		want want
	}{
		{"modified", plugins.Proxy, b64s("msg 0 from mallory"), want{payload: b64s("msg 0 from trent"), decoded: "msg 0 from trent", hasDecoded: true,
			original: b64s("msg 0 from mallory"), originalDecoded: "msg 0 from mallory", modified: true}},
		{"unchanged", plugins.Proxy, b64s("hello"), want{payload: b64s("hello"), decoded: "hello", hasDecoded: true}},
		{"dropped", plugins.Proxy, b64s("a secret"), want{payload: b64s("a secret"), decoded: "a secret", hasDecoded: true, dropped: true}},
		{"changed, then dropped", plugins.Proxy, b64s("mallory's secret"), want{payload: b64s("mallory's secret"), decoded: "trent's secret",
			hasDecoded: true, originalDecoded: "mallory's secret", dropped: true}},
		// The codec cannot decode it: replace, written for the plaintext, must not
		// touch it (issue: "not base64 at all: mallory!" reached the server as trent).
		{"declined by the codec", plugins.Proxy, "not base64 at all: mallory!", want{payload: "not base64 at all: mallory!", declined: "b64"}},
		{"sniff: would modify", plugins.Sniff, b64s("from mallory"), want{payload: b64s("from mallory"), decoded: "from mallory", hasDecoded: true,
			would: "modify:" + b64s("from trent")}},
		{"sniff: would drop", plugins.Sniff, b64s("secret"), want{payload: b64s("secret"), decoded: "secret", hasDecoded: true, would: "drop"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &plugins.Pipeline{Chain: chain}
			st := p.Stream(&plugins.Conn{ID: "c1", Mode: tc.mode}, plugins.ClientToServer)
			rec, fx, err := st.Message(context.Background(), wireMsg(tc.wire), time.Now())
			if err != nil || fx.Inject != nil || fx.Hold != nil {
				t.Fatalf("Message: %v, %v", fx, err)
			}
			w := tc.want
			if string(rec.Payload) != w.payload || rec.Len != int64(len(w.payload)) {
				t.Errorf("Payload %q (len %d), want %q", rec.Payload, rec.Len, w.payload)
			}
			if string(rec.Decoded) != w.decoded || (rec.Decoded != nil) != w.hasDecoded {
				t.Errorf("Decoded %q, want %q", rec.Decoded, w.decoded)
			}
			if string(rec.Original) != w.original || (w.original != "" && rec.OriginalLen != int64(len(w.original))) {
				t.Errorf("Original %q (len %d), want %q", rec.Original, rec.OriginalLen, w.original)
			}
			if string(rec.OriginalDecoded) != w.originalDecoded {
				t.Errorf("OriginalDecoded %q, want %q", rec.OriginalDecoded, w.originalDecoded)
			}
			if rec.DecodeError != w.declined || rec.Modified != w.modified || rec.Dropped != w.dropped {
				t.Errorf("DecodeError %q Modified %v Dropped %v, want %q %v %v", rec.DecodeError, rec.Modified, rec.Dropped, w.declined, w.modified, w.dropped)
			}
			var would string
			switch {
			case rec.WouldModify:
				would = "modify:" + string(rec.WouldPayload)
			case rec.WouldDrop:
				would = "drop"
			}
			if would != w.would {
				t.Errorf("would %q, want %q", would, w.would)
			}
		})
	}
	// A dry run is what sniff mode is for: no error lines.
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs.String())
	}
}

func dropIf(word string) plugins.Hook {
	return plugins.HookFunc{HookName: "drop", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		if bytes.Contains(m.Payload, []byte(word)) {
			return plugins.Verdict{Action: plugins.Drop}, nil
		}
		return plugins.Verdict{}, nil
	}}
}

// TestPipelineHookLimit: a message above MaxHookMessage skips the chain and is
// recorded with a preview that ends on a whole character.
func TestPipelineHookLimit(t *testing.T) {
	var seen []string
	chain, _ := plugins.NewChain(plugins.FailOpen, nil, record("h", &seen, plugins.Verdict{}))
	p := &plugins.Pipeline{Chain: chain, MaxHookMessage: 5000}
	st := p.Stream(&plugins.Conn{ID: "c1", Mode: plugins.Proxy}, plugins.ServerToClient)
	big := strings.Repeat("é", 3000) // 6000 bytes; the 4 KiB cut falls inside a character? 4096 is even: cut after a whole é
	big = "x" + big                  // now the cut at 4096 falls in the middle of one
	rec, _, _ := st.Message(context.Background(), wireMsg(big), time.Now())
	if rec.Hooked || !rec.Truncated || rec.Len != int64(len(big)) || len(seen) != 0 {
		t.Fatalf("record %+v, hooks saw %d", rec, len(seen))
	}
	if len(rec.Payload) != plugins.PreviewBytes-1 || !strings.HasPrefix(big, string(rec.Payload)) {
		t.Fatalf("preview of %d bytes, want %d bytes cut back to a whole character", len(rec.Payload), plugins.PreviewBytes-1)
	}
	rec, _, _ = st.Message(context.Background(), wireMsg("small"), time.Now())
	if !rec.Hooked || rec.Seq != 1 || len(seen) != 1 {
		t.Fatalf("small message: %+v, hooks saw %d", rec, len(seen))
	}
}

// TestChainEncode: plaintext goes out through every codec, innermost first, as for a
// rewritten message, with no original to copy a layout from; scopes apply.
func TestChainEncode(t *testing.T) {
	chain, err := plugins.NewChain(plugins.FailOpen, nil, &b64{}, rot{}, replaceAll("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	conn := &plugins.Conn{ID: "c1", Mode: plugins.Proxy}
	wire, err := chain.Encode(context.Background(), conn, plugins.ClientToServer, wsframe.OpText, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if want := b64s("olleh"); string(wire) != want {
		t.Fatalf("Encode = %q, want %q", wire, want)
	}
	// And the chain decodes it back.
	res, err := chain.Run(context.Background(), msg(string(wire)))
	if err != nil || string(res.Decoded) != "hello" {
		t.Fatalf("decoded back to %q, %v", res.Decoded, err)
	}

	var none plugins.Chain
	if out, err := none.Encode(context.Background(), conn, plugins.ClientToServer, wsframe.OpText, []byte("x")); err != nil || string(out) != "x" {
		t.Fatalf("empty chain: %q, %v", out, err)
	}
	failing, _ := plugins.NewChain(plugins.FailOpen, nil, &failEncode{})
	if _, err := failing.Encode(context.Background(), conn, plugins.ClientToServer, wsframe.OpText, []byte("x")); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("failing codec: %v", err)
	}
}

// blockingObserver blocks in Message until released, counting what it got.
type blockingObserver struct {
	plugins.NopObserver
	release chan struct{}
	mu      sync.Mutex
	got     []string
	opened  int
}

func (o *blockingObserver) Opened(*plugins.Conn, time.Time) {
	o.mu.Lock()
	o.opened++
	o.mu.Unlock()
}

func (o *blockingObserver) Message(r *plugins.Record) {
	<-o.release
	o.mu.Lock()
	o.got = append(o.got, string(r.Payload))
	o.mu.Unlock()
}

// TestAsyncNeverBlocks: an observer stuck in its callback does not hold up the
// caller; the queue stays bounded, drops are counted, and what was queued arrives
// intact (the records were copied) once the observer moves again.
func TestAsyncNeverBlocks(t *testing.T) {
	o := &blockingObserver{release: make(chan struct{})}
	a := plugins.NewAsync(o, 100, 1<<20)
	conn := &plugins.Conn{ID: "c1"}
	a.Opened(conn, time.Now())
	payload := []byte("message 0000")
	rec := &plugins.Record{Conn: conn, Payload: payload}
	const n = 10000
	for i := range n {
		copy(payload[8:], []byte{byte('0' + i/1000%10), byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
		a.Message(rec) // would hang here if Async waited for the observer
	}
	close(o.release)
	a.Close()
	if o.opened != 1 {
		t.Fatalf("opened %d times", o.opened)
	}
	delivered := int64(len(o.got))
	// At most the batch the observer was stuck in plus a full queue behind it.
	if delivered+a.Dropped() != n || delivered > 2*100 || delivered == 0 {
		t.Fatalf("delivered %d, dropped %d, of %d (queue of 100)", delivered, a.Dropped(), n)
	}
	if o.got[0] != "message 0000" {
		t.Fatalf("first delivered %q: the record was not copied", o.got[0])
	}
	a.Close() // twice is fine
	a.Message(rec)
	if int64(len(o.got)) != delivered {
		t.Fatal("a message after Close was delivered")
	}
}

// controlCounter records what a stream reports about control frames.
type controlCounter struct {
	plugins.NopObserver
	shown   int
	counted []plugins.ControlSummary
}

func (c *controlCounter) Message(r *plugins.Record) { c.shown++ }
func (c *controlCounter) Controls(_ *plugins.Conn, _ plugins.Direction, s plugins.ControlSummary) {
	c.counted = append(c.counted, s)
}

// TestControlBurst: past the burst, pings and pongs are counted and the count is
// reported when the second is over, before the next message, and at the close;
// every frame is accounted for, and close frames are never counted.
func TestControlBurst(t *testing.T) {
	ping := &wsframe.Message{Opcode: wsframe.OpPing, Payload: []byte("abcd")}
	pong := &wsframe.Message{Opcode: wsframe.OpPong, Payload: []byte("ab")}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	obs := &controlCounter{}
	p := &plugins.Pipeline{Observer: obs, ControlBurst: 5}
	st := p.Stream(&plugins.Conn{ID: "c1"}, plugins.ClientToServer)
	emit := func(m *wsframe.Message, at time.Time) {
		rec, _, _ := st.Control(m, at)
		st.Emit(rec)
	}
	for i := range 1000 { // within one second
		emit(ping, t0.Add(time.Duration(i)*time.Microsecond))
		emit(pong, t0.Add(time.Duration(i)*time.Microsecond))
	}
	if obs.shown != 5 || len(obs.counted) != 0 {
		t.Fatalf("within the first second: %d shown, %d summaries; want 5, none yet", obs.shown, len(obs.counted))
	}
	emit(ping, t0.Add(1500*time.Millisecond)) // a new second: the counts of the first come out
	if len(obs.counted) != 2 || obs.shown != 6 {
		t.Fatalf("after the second: %d summaries, %d shown", len(obs.counted), obs.shown)
	}
	pings, pongs := obs.counted[0], obs.counted[1]
	if pings.Opcode != wsframe.OpPing || pongs.Opcode != wsframe.OpPong || pings.Count+pongs.Count != 2000-5 ||
		pings.Bytes != 4*pings.Count || pongs.Bytes != 2*pongs.Count || pongs.LastSeq != 1999 || !pings.Last.After(pings.First) {
		t.Fatalf("summaries %+v", obs.counted)
	}
	rec, _, _ := st.Message(context.Background(), wireMsg("data"), t0.Add(1600*time.Millisecond))
	st.Emit(rec)
	for range 10 {
		emit(ping, t0.Add(1700*time.Millisecond))
	}
	closeRec, ev, ok := st.Control(&wsframe.Message{Opcode: wsframe.OpClose, Payload: wsframe.AppendClose(nil, 1000, "")}, t0.Add(1800*time.Millisecond))
	if !ok || closeRec == nil || ev.Code != 1000 {
		t.Fatalf("a close frame was counted: %v %v", closeRec, ok)
	}
	st.Emit(closeRec)
	if len(obs.counted) != 3 || obs.counted[2].Count != 6 {
		t.Fatalf("the pings before the close were not reported before it: %+v", obs.counted)
	}

	every := &controlCounter{}
	all := (&plugins.Pipeline{Observer: every}).Stream(&plugins.Conn{ID: "c2"}, plugins.ServerToClient)
	for range 100 {
		rec, _, _ := all.Control(ping, t0)
		all.Emit(rec)
	}
	if every.shown != 100 || len(every.counted) != 0 {
		t.Fatalf("ControlBurst 0: %d shown, %d summaries; want every one", every.shown, len(every.counted))
	}
}
