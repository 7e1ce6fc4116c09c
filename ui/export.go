package ui

import (
	"fmt"
	"net/http"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
)

// exportName is the file name an export is saved as.
func exportName(ext string) string {
	return "wstap-" + time.Now().Format("20060102-150405") + "." + ext
}

// exportJSONL writes the history (or the connections asked for) as a wstap event
// log.
func (s *Server) exportJSONL(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, exportName("jsonl")))
	j := eventlog.NewJSONL(w, eventlog.Block)
	s.cfg.Store.Replay(conns(r), j)
	if err := j.Close(); err != nil {
		s.log.Warn("ui: export", "err", err)
	}
}

// exportHAR writes the history (or the connections asked for) as a HAR file.
func (s *Server) exportHAR(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, exportName("har")))
	if _, err := WriteHAR(w, s.cfg.Store, conns(r), s.cfg.Info.Version); err != nil {
		s.log.Warn("ui: export", "err", err)
	}
}
