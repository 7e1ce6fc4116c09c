package ui

import (
	"io"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/internal/har"
)

// WriteHAR writes the history (the connections ids selects; all when empty) as a
// HAR file in Chrome DevTools' format. The history is replayed as an event log
// through a pipe, so that the HAR writer sees exactly what `wstap har` sees for the
// same traffic logged with --log.
func WriteHAR(w io.Writer, st *history.Store, ids []string, version string) (har.Written, error) {
	pr, pw := io.Pipe()
	go func() {
		j := eventlog.NewJSONL(pw, eventlog.Block)
		st.Replay(ids, j)
		pw.CloseWithError(j.Close())
	}()
	n, err := har.WriteLog(w, pr, har.Options{Version: version})
	// Unblock the replay if the writer stopped early (the client went away).
	pr.CloseWithError(io.ErrClosedPipe)
	return n, err
}
