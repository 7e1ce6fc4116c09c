package history

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

func conn(id, rawURL string) *plugins.Conn {
	u, _ := url.Parse(rawURL)
	return &plugins.Conn{ID: id, URL: u, Mode: plugins.Proxy, Method: "GET", Target: u.RequestURI(), Proto: "HTTP/1.1",
		Request: http.Header{"Cookie": {"sid=1"}, "Host": {u.Host}}, Status: 101, Reason: "Switching Protocols",
		Response: http.Header{"Upgrade": {"websocket"}}}
}

func msg(c *plugins.Conn, dir plugins.Direction, seq uint64, op wsframe.Opcode, payload string) *plugins.Record {
	return &plugins.Record{Conn: c, Dir: dir, Seq: seq, Opcode: op, Time: time.Unix(1000, int64(seq)), Payload: []byte(payload),
		Len: int64(len(payload)), Frames: 1, Hooked: true}
}

func ids(rows []Row) string {
	var b []string
	for _, r := range rows {
		b = append(b, fmt.Sprint(r.ID))
	}
	return strings.Join(b, ",")
}

// TestQueries: filters by direction, type, flags, URL and payload (literal, case
// folded, or a pattern, over the payload and the decoded payload); control frames
// only when asked; paging; and results that grow with the rows added later.
func TestQueries(t *testing.T) {
	s := New(0, "")
	a := conn("c1", "ws://chat.example/room?id=1")
	b := conn("c2", "wss://api.other.test/feed")
	s.Opened(a, time.Unix(1000, 0))
	s.Opened(b, time.Unix(1001, 0))
	s.Message(msg(a, plugins.ClientToServer, 0, wsframe.OpText, "hello Mallory")) // 0
	s.Message(msg(a, plugins.ServerToClient, 0, wsframe.OpText, "hi"))            // 1
	s.Message(msg(a, plugins.ClientToServer, 1, wsframe.OpPing, "p"))             // 2
	bin := msg(b, plugins.ServerToClient, 0, wsframe.OpBinary, "\x00\x01")        // 3
	bin.Decoded = []byte(`{"user":"mallory"}`)
	s.Message(bin)
	mod := msg(a, plugins.ClientToServer, 2, wsframe.OpText, "transfer 9999") // 4
	mod.Modified, mod.Original = true, []byte("transfer 5")
	s.Message(mod)
	s.Gap(b, plugins.ServerToClient, time.Unix(1002, 0), 100, true) // 5
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"everything but control frames", Query{}, "0,1,3,4,5"},
		{"with control frames", Query{Control: true}, "0,1,2,3,4,5"},
		{"one connection", Query{Conn: "c2"}, "3,5"},
		{"a direction", Query{Dir: plugins.ClientToServer}, "0,4"},
		{"types", Query{Types: []string{"binary", "gap"}}, "3,5"},
		{"flags", Query{Flags: Modified}, "4"},
		{"url glob", Query{URL: "ws://chat.example/*"}, "0,1,4"},
		{"host glob", Query{URL: "*.other.test"}, "3,5"},
		{"literal, any case, payload or decoded", Query{Text: "MALLORY"}, "0,3"},
		{"pattern", Query{Regexp: regexp.MustCompile(`transfer \d{4}`)}, "4"},
		{"nothing", Query{Text: "absent"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, rows := s.Messages(tc.q, 0, 100)
			if got := ids(rows); got != tc.want || total != len(rows) {
				t.Errorf("rows %s (total %d), want %s", got, total, tc.want)
			}
		})
	}
	total, rows := s.Messages(Query{}, 1, 2)
	if total != 5 || ids(rows) != "1,3" {
		t.Errorf("page: total %d rows %s", total, ids(rows))
	}
	// The cached result of a query grows with the rows added since.
	s.Message(msg(a, plugins.ClientToServer, 3, wsframe.OpText, "mallory again")) // 6
	if _, rows := s.Messages(Query{Text: "mallory"}, 0, 100); ids(rows) != "0,3,6" {
		t.Errorf("after a new row: %s", ids(rows))
	}
	if r := rows[1]; r.Preview != `{"user":"mallory"}` || r.Conn != "c2" || r.Dir != "s2c" || r.Opcode != "binary" ||
		strings.Join(r.Flags, " ") != "decoded hooked" {
		t.Errorf("row view %+v", r)
	}
	d, ok := s.Get(4)
	if !ok || d.Parts["original"].Base64 != base64.StdEncoding.EncodeToString([]byte("transfer 5")) ||
		d.Parts["payload"].Base64 != base64.StdEncoding.EncodeToString([]byte("transfer 9999")) || !d.Parts["payload"].UTF8 {
		t.Errorf("detail %+v", d)
	}
}

// TestPreviewIsText: a payload that would drive a terminal or a browser is shown
// as plain text, its control characters replaced; binary as hex.
func TestPreviewIsText(t *testing.T) {
	s := New(0, "")
	c := conn("c1", "ws://x/")
	s.Message(msg(c, plugins.ServerToClient, 0, wsframe.OpText, "<img src=x onerror=alert(1)>\x1b[31m\u009b1m"))
	s.Message(msg(c, plugins.ServerToClient, 1, wsframe.OpBinary, "\x00\xff"))
	_, rows := s.Messages(Query{}, 0, 10)
	if rows[0].Preview != "<img src=x onerror=alert(1)>·[31m·1m" || rows[0].PreviewHex {
		t.Errorf("text preview %q", rows[0].Preview)
	}
	if rows[1].Preview != "00ff" || !rows[1].PreviewHex {
		t.Errorf("binary preview %q", rows[1].Preview)
	}
}

// TestEviction: past its bound the store drops the oldest payloads, keeps the rows,
// and reads the payloads back from the event log written alongside.
func TestEviction(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "events.jsonl")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	j := eventlog.NewJSONL(f, eventlog.Block)
	s := New(1000, logPath)
	obs := plugins.Observers{j, s}
	c := conn("c1", "ws://x/")
	obs.Opened(c, time.Unix(1000, 0))
	for i := range 50 {
		r := msg(c, plugins.ClientToServer, uint64(i), wsframe.OpText, fmt.Sprintf("%03d:%s", i, strings.Repeat("x", 96)))
		r.Decoded = []byte(fmt.Sprintf("decoded %d", i))
		obs.Message(r)
	}
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Used > 1000 || st.Evicted < 40 || st.Rows != 50 {
		t.Fatalf("stats %+v", st)
	}
	_, rows := s.Messages(Query{}, 0, 100)
	if len(rows) != 50 || !strings.Contains(strings.Join(rows[0].Flags, " "), "evicted") {
		t.Fatalf("rows %d, first %+v", len(rows), rows[0])
	}
	for _, id := range []int{0, 7, 49} {
		d, ok := s.Get(id)
		p, _ := base64.StdEncoding.DecodeString(d.Parts["payload"].Base64)
		dec, _ := base64.StdEncoding.DecodeString(d.Parts["decoded"].Base64)
		if !ok || !bytes.HasPrefix(p, fmt.Appendf(nil, "%03d:", id)) || string(dec) != fmt.Sprintf("decoded %d", id) {
			t.Errorf("row %d: %q / %q (evicted %v, from the log %v)", id, p, dec, d.Evicted, d.FromLog)
		}
		if id < 40 && (!d.Evicted || !d.FromLog) {
			t.Errorf("row %d: evicted %v, from the log %v", id, d.Evicted, d.FromLog)
		}
	}
	// A search sees only what is in memory.
	if total, _ := s.Messages(Query{Text: "000:"}, 0, 1); total != 0 {
		t.Errorf("an evicted payload matched a search")
	}
	j.Close()
	f.Close()
}

// TestReplay: the history handed back to a JSONL writer gives the log the live
// observers wrote (the export path).
func TestReplay(t *testing.T) {
	var live, replayed bytes.Buffer
	lj := eventlog.NewJSONL(&live, eventlog.Block)
	s := New(0, "")
	obs := plugins.Observers{lj, s}
	c := conn("c1", "ws://x/")
	t0 := time.Unix(1000, 0)
	obs.Opened(c, t0)
	obs.Message(msg(c, plugins.ClientToServer, 0, wsframe.OpText, "hi"))
	m := msg(c, plugins.ServerToClient, 0, wsframe.OpBinary, "\x00\x01")
	m.Compressed, m.Frames = true, 3
	obs.Message(m)
	obs.Controls(c, plugins.ClientToServer, plugins.ControlSummary{Opcode: wsframe.OpPing, Count: 7, Bytes: 14, First: t0, Last: t0, FirstSeq: 1, LastSeq: 7})
	obs.Closed(c, plugins.CloseEvent{Time: t0.Add(time.Second), Code: 1000, By: "client"})
	lj.Close()
	rj := eventlog.NewJSONL(&replayed, eventlog.Block)
	s.Replay(nil, rj)
	rj.Close()
	if live.String() != replayed.String() {
		t.Errorf("replayed log differs:\n%s\nwant\n%s", replayed.String(), live.String())
	}
	var none bytes.Buffer
	nj := eventlog.NewJSONL(&none, eventlog.Block)
	s.Replay([]string{"c9"}, nj)
	nj.Close()
	if none.Len() != 0 {
		t.Errorf("a replay of another connection wrote %q", none.String())
	}
}

// TestConns: the connection list and a connection's handshake.
func TestConns(t *testing.T) {
	s := New(0, "")
	a := conn("c1", "ws://chat.example/")
	b := conn("c2", "ws://other.test/")
	s.Opened(a, time.Unix(1000, 0))
	s.Message(msg(a, plugins.ClientToServer, 0, wsframe.OpText, "abc"))
	s.Closed(a, plugins.CloseEvent{Time: time.Unix(1002, 0), Code: 4001, Reason: "bye", By: "client"})
	b.Status, b.Reason = 403, "Forbidden"
	s.Refused(b, time.Unix(1003, 0))
	total, cs := s.Conns("", 0, 10)
	if total != 2 || cs[0].State != "closed" || cs[0].CloseCode != 4001 || cs[0].DurationMS != 2000 || cs[0].Messages != [2]int{1, 0} ||
		cs[0].Bytes != [2]int64{3, 0} || cs[1].State != "refused" || cs[1].Status != 403 {
		t.Fatalf("conns %+v", cs)
	}
	if total, _ := s.Conns("*other*", 0, 10); total != 1 {
		t.Errorf("url filter: %d", total)
	}
	d, ok := s.Conn("c1")
	if !ok || d.Handshake.Method != "GET" || d.Handshake.Status != 101 || len(d.Handshake.Request) != 2 ||
		d.Handshake.Request[0].Name != "Cookie" || d.Handshake.Request[0].Values[0] != "sid=1" {
		t.Errorf("handshake %+v", d.Handshake)
	}
}

// TestWait: Wait returns as soon as the store changes after the version it was
// given, and when its context ends.
func TestWait(t *testing.T) {
	s := New(0, "")
	c := conn("c1", "ws://a.example/")
	s.Opened(c, time.Unix(1000, 0))
	v := s.Version()
	got := make(chan uint64)
	go func() { got <- s.Wait(context.Background(), v) }()
	select {
	case w := <-got:
		t.Fatalf("Wait returned %d before any change", w)
	case <-time.After(50 * time.Millisecond):
	}
	s.Message(msg(c, plugins.ClientToServer, 0, wsframe.OpText, "x"))
	if w := <-got; w <= v {
		t.Errorf("Wait after a change: %d, want more than %d", w, v)
	}
	if w := s.Wait(context.Background(), v); w == v {
		t.Errorf("Wait for a version already past returned it")
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- s.Wait(ctx, s.Version()) }()
	cancel()
	<-got
}

// BenchmarkMessage is the cost of recording one message, what the proxy's UI
// queue spends per message.
func BenchmarkMessage(b *testing.B) {
	s := New(0, "")
	c := conn("c1", "ws://a.example/")
	s.Opened(c, time.Unix(1000, 0))
	r := msg(c, plugins.ClientToServer, 0, wsframe.OpText, `{"op":"say","text":"hello there"}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Seq = uint64(i)
		s.Message(r)
	}
}
