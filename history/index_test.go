package history_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// TestIndex: where a filtered list shows a row, or the row after it when the
// filter leaves it out; past the last, the list's length.
func TestIndex(t *testing.T) {
	st := history.New(0, "")
	c := &plugins.Conn{ID: "c1", URL: &url.URL{Scheme: "ws", Host: "a.example", Path: "/"}, Mode: plugins.Proxy}
	st.Opened(c, time.Unix(1, 0))
	for i, dir := range []plugins.Direction{1, 2, 2, 1, 2, 1} { // rows 0..5; c2s: 0, 3, 5
		st.Message(&plugins.Record{Conn: c, Dir: dir, Seq: uint64(i), Opcode: wsframe.OpText, Time: time.Unix(2, 0),
			Payload: []byte("m"), Len: 1, Frames: 1})
	}
	c2s := history.Query{Dir: plugins.ClientToServer}
	for _, tc := range []struct {
		q        history.Query
		id, want int
	}{
		{history.Query{}, 0, 0},
		{history.Query{}, 4, 4},
		{history.Query{}, 9, 6},
		{c2s, 0, 0},
		{c2s, 3, 1},
		{c2s, 4, 2}, // not selected: the next one that is
		{c2s, 5, 2},
		{c2s, 6, 3},
	} {
		if got := st.Index(tc.q, tc.id); got != tc.want {
			t.Errorf("Index(dir %v, %d) = %d, want %d", tc.q.Dir, tc.id, got, tc.want)
		}
	}
}
