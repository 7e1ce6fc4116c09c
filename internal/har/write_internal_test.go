package har

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
)

// TestWriteStreams: an entry leaves memory once it is written, and it is written as
// soon as its connection and every one opened before it are done; a connection still
// open holds up only those opened after it.
func TestWriteStreams(t *testing.T) {
	var out bytes.Buffer
	w := &writer{bw: bufio.NewWriterSize(&out, 16), live: map[string]*conn{}}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(event, id string) *eventlog.Event {
		e := &eventlog.Event{Event: event, Time: t0, Conn: id}
		if event == "message" {
			e.Dir, e.Opcode, e.Payload, e.Len = "c2s", "text", eventlog.Bytes("m-"+id), 3
		}
		return e
	}
	steps := []struct {
		e          *eventlog.Event
		live, held int    // connections in memory, entries waiting
		written    string // the conn ids written so far
	}{
		{ev("open", "c1"), 1, 1, ""},
		{ev("open", "c2"), 2, 2, ""},
		{ev("message", "c2"), 2, 2, ""},
		{ev("refused", "c3"), 3, 3, ""},
		{ev("close", "c2"), 3, 3, ""}, // done, but c1 is still open
		{ev("message", "c1"), 3, 3, ""},
		{ev("close", "c1"), 0, 0, "c1 c2 c3"},
		{ev("open", "c4"), 1, 1, "c1 c2 c3"},
		{ev("close", "c4"), 0, 0, "c1 c2 c3 c4"},
	}
	for i, s := range steps {
		w.add(s.e)
		w.bw.Flush()
		var written []string
		for _, part := range strings.Split(out.String(), `"_wstapConn":"`)[1:] {
			written = append(written, part[:2])
		}
		if w.err != nil || len(w.live) != s.live || len(w.queue) != s.held || strings.Join(written, " ") != s.written {
			t.Fatalf("after step %d (%s %s): %d live, %d waiting, written %v, error %v; want %d, %d, %q",
				i, s.e.Event, s.e.Conn, len(w.live), len(w.queue), written, w.err, s.live, s.held, s.written)
		}
	}
}
