package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/plugins"
)

// maxPage is the most rows one request returns.
const maxPage = 5000

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	http.Error(w, "wstap ui: "+fmt.Sprintf(format, args...), http.StatusBadRequest)
}

// page reads offset and limit (default 100, at most maxPage).
func page(r *http.Request) (offset, limit int, err error) {
	limit = 100
	if v := r.URL.Query().Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, fmt.Errorf("offset %q: want a number >= 0", v)
		}
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return 0, 0, fmt.Errorf("limit %q: want a number >= 0", v)
		}
	}
	return offset, min(limit, maxPage), nil
}

// infoView is /api/info.
type infoView struct {
	Info
	History history.Stats `json:"history"`
	Lost    int64         `json:"lost"`
	// Intercept and Inject say whether the write side of the API works (a live
	// proxy) or answers 409 (sniff, open).
	Intercept bool `json:"intercept"`
	Inject    bool `json:"inject"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	v := infoView{Info: s.cfg.Info, History: s.cfg.Store.Stats(), Intercept: s.cfg.Intercept != nil, Inject: s.cfg.Intercept != nil}
	if s.cfg.Lost != nil {
		v.Lost = s.cfg.Lost()
	}
	writeJSON(w, v)
}

func (s *Server) connections(w http.ResponseWriter, r *http.Request) {
	offset, limit, err := page(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	total, conns := s.cfg.Store.Conns(r.URL.Query().Get("url"), offset, limit)
	if conns == nil {
		conns = []history.ConnView{}
	}
	writeJSON(w, map[string]any{"total": total, "offset": offset, "items": conns})
}

func (s *Server) connection(w http.ResponseWriter, r *http.Request) {
	d, ok := s.cfg.Store.Conn(r.PathValue("id"))
	if !ok {
		http.Error(w, "wstap ui: no such connection", http.StatusNotFound)
		return
	}
	writeJSON(w, d)
}

// query reads a history query from the URL: conn, dir (c2s, s2c), type (a list of
// opcodes and kinds), control (1: include control frames), flags (a list that must
// all be set), url (a glob), q (a literal, case-insensitive), re (a regular
// expression; (?i) for case-insensitive).
func query(r *http.Request) (history.Query, error) {
	v := r.URL.Query()
	q := history.Query{Conn: v.Get("conn"), URL: v.Get("url"), Text: v.Get("q")}
	switch d := v.Get("dir"); d {
	case "", "both":
	case "c2s":
		q.Dir = plugins.ClientToServer
	case "s2c":
		q.Dir = plugins.ServerToClient
	default:
		return q, fmt.Errorf("dir %q: want c2s or s2c", d)
	}
	for t := range strings.SplitSeq(v.Get("type"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			q.Types = append(q.Types, t)
		}
	}
	q.Control = v.Get("control") == "1" || v.Get("control") == "true"
	for f := range strings.SplitSeq(v.Get("flags"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		flag, ok := history.FlagByName(f)
		if !ok {
			return q, fmt.Errorf("flag %q: unknown", f)
		}
		q.Flags |= flag
	}
	if re := v.Get("re"); re != "" {
		var err error
		if q.Regexp, err = regexp.Compile(re); err != nil {
			return q, fmt.Errorf("re: %v", err)
		}
	}
	return q, nil
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	offset, limit, err := page(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	at := -1
	if v := r.URL.Query().Get("at"); v != "" {
		if at, err = strconv.Atoi(v); err != nil || at < 0 {
			badRequest(w, "at %q: want a message id", v)
			return
		}
	}
	start := time.Now()
	total, rows := s.cfg.Store.Messages(q, offset, limit)
	resp := map[string]any{"total": total, "offset": offset, "items": rows, "took_ms": time.Since(start).Milliseconds()}
	if at >= 0 {
		// Where the list shows message at (or the next one the query selects).
		resp["index"] = s.cfg.Store.Index(q, at)
	}
	writeJSON(w, resp)
}

func (s *Server) message(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		badRequest(w, "message id %q: want a number", r.PathValue("id"))
		return
	}
	d, ok := s.cfg.Store.Get(id)
	if !ok {
		http.Error(w, "wstap ui: no such message", http.StatusNotFound)
		return
	}
	writeJSON(w, d)
}

// eventInterval is the shortest time between two updates of the event stream:
// however fast the traffic, the page gets at most this many a second, each saying
// how far the history has grown (the page then asks for what it shows).
const eventInterval = 200 * time.Millisecond

// events is the event stream (Server-Sent Events): a "state" event with the
// history's size whenever it changed, and, with a breakpoint, an "intercept" event
// when its held messages or settings changed, each coalesced to one every
// eventInterval. A page that falls behind never slows the proxy: it only ever gets
// the latest state.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" && !s.sameOrigin(r, true) {
		http.Error(w, "wstap ui: cross-origin event stream refused", http.StatusForbidden)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "wstap ui: streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	ic := s.cfg.Intercept
	var seen, iseen uint64
	first := true
	for {
		v, iv := seen, iseen
		if !first {
			v, iv = s.wait(ctx, seen, iseen)
		}
		if ctx.Err() != nil {
			return
		}
		if first || v != seen {
			st := s.cfg.Store.Stats()
			state := map[string]any{"version": st.Version, "connections": st.Conns, "rows": st.Rows, "evicted": st.Evicted,
				"used": st.Used, "limit": st.Limit}
			if s.cfg.Lost != nil {
				state["lost"] = s.cfg.Lost()
			}
			if !sendEvent(w, "state", state) {
				return
			}
		}
		if ic != nil && (first || iv != iseen) {
			iv, _ = ic.Changes()
			ev := map[string]any{"version": iv, "enabled": ic.Settings().Enabled, "held": len(ic.Held())}
			if !sendEvent(w, "intercept", ev) {
				return
			}
		}
		first, seen, iseen = false, v, iv
		fl.Flush()
		select {
		case <-ctx.Done():
			return
		case <-time.After(eventInterval):
		}
	}
}

// sendEvent writes one server-sent event; false when the client went away.
func sendEvent(w http.ResponseWriter, name string, v any) bool {
	b, _ := json.Marshal(v)
	_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
	return err == nil
}

// wait waits until the history's version differs from seen or the breakpoint's
// from iseen (when there is a breakpoint), or ctx ends, and returns both.
func (s *Server) wait(ctx context.Context, seen, iseen uint64) (uint64, uint64) {
	ic := s.cfg.Intercept
	if ic == nil {
		return s.cfg.Store.Wait(ctx, seen), iseen
	}
	iv, changed := ic.Changes()
	if iv != iseen {
		return s.cfg.Store.Stats().Version, iv
	}
	// The store's Wait ends with its context: end it when the breakpoint changes.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-wctx.Done():
		}
	}()
	v := s.cfg.Store.Wait(wctx, seen)
	iv, _ = ic.Changes()
	return v, iv
}

// conns reads the connections an export is about: conns=c1,c2 (all when absent).
func conns(r *http.Request) []string {
	var out []string
	for c := range strings.SplitSeq(r.URL.Query().Get("conns"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}
