package har_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/har"
)

// FuzzReadLog feeds ReadLog what `wstap open` may be given: any file. It must
// answer with the log or with an error that says which kind of wrong it is, and
// what it returns must go into the web UI's store the way `wstap open` puts it
// there, with nothing but a bad-event error for what the store cannot take.
func FuzzReadLog(f *testing.F) {
	chrome, err := os.ReadFile("testdata/chrome-devtools.har")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(chrome)
	jsonl, err := session()
	if err != nil {
		f.Fatal(err)
	}
	var written bytes.Buffer
	if _, err := har.WriteLog(&written, bytes.NewReader(jsonl), har.Options{}); err != nil {
		f.Fatal(err)
	}
	f.Add(written.Bytes())
	f.Add([]byte(`{"log":{"entries":[{"_resourceType":"websocket","request":{"method":"GET","url":"wss://h/x","headers":[]},` +
		`"response":{"status":101,"headers":[]},"_webSocketMessages":[{"type":"send","time":1.5,"opcode":1,"data":"hi"}]}]}}`))
	f.Add([]byte("\xEF\xBB\xBF{}"))
	f.Add([]byte(`{"log":[]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := har.ReadLog(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, har.ErrNotHAR) && !errors.Is(err, har.ErrBadEntry) {
				t.Fatalf("ReadLog: an error of no kind: %v", err)
			}
			return
		}
		if l.Messages < 0 || l.Connections < 0 || l.SkippedEntries < 0 || l.SkippedFrames < 0 {
			t.Fatalf("negative counts: %+v", l)
		}
		store := history.New(1<<20, "")
		feed := eventlog.NewFeeder(store)
		for _, e := range l.Events {
			if err := feed.Feed(e); err != nil && !errors.Is(err, eventlog.ErrBadEvent) {
				t.Fatalf("Feed: %v", err)
			}
		}
		feed.Close()
		total, rows := store.Messages(history.Query{}, 0, 100)
		if total < len(rows) {
			t.Fatalf("store: %d rows of %d", len(rows), total)
		}
		for _, r := range rows {
			if _, ok := store.Get(r.ID); !ok {
				t.Fatalf("store lists row %d and has no detail for it", r.ID)
			}
		}
	})
}
