package ui

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/history"
	"github.com/wstap/wstap/intercept"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// The write side of the API (docs/ui.md, "Intercept and inject API"): the
// breakpoint's settings and held messages, and new messages on live connections.
// Every handler here is behind the token check, and ServeHTTP refuses a POST or
// PUT from a foreign origin before it gets here. Nothing here runs on a relay
// goroutine: a release or an injection takes the leg's lock like any writer, and
// the long poll waits on the controller's change channel only.

// maxBody bounds a request body: a payload of this API (an edited or injected
// message) is at most this big, base64 included.
const maxBody = 64 << 20

// errorBody is the JSON of an error of the write API.
type errorBody struct {
	Error string `json:"error"`
	Rule  *int   `json:"rule,omitempty"` // PUT /api/intercept: the index of the bad rule
}

// fail answers with status and a JSON error.
func fail(w http.ResponseWriter, status int, format string, args ...any) {
	failBody(w, status, errorBody{Error: "wstap ui: " + fmt.Sprintf(format, args...)})
}

func failBody(w http.ResponseWriter, status int, b errorBody) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(b)
}

// readJSON decodes r's body, which must be JSON (Content-Type application/json),
// into v, refusing unknown fields; an empty body is an empty object. It answers
// the request itself and returns false when the body is not acceptable.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, "the body must be JSON, sent with Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	switch err := dec.Decode(v); {
	case errors.Is(err, io.EOF):
		return true
	case err != nil:
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", maxBody)
			return false
		}
		fail(w, http.StatusBadRequest, "body: %v", err)
		return false
	}
	if dec.More() {
		fail(w, http.StatusBadRequest, "body: one JSON object expected, more follows")
		return false
	}
	return true
}

// payloadFields are the fields that carry a payload in a request body: exactly one
// of Text, Base64 and Hex, and Raw (send it as the wire payload, past the codecs).
type payloadFields struct {
	Text   *string `json:"text"`
	Base64 *string `json:"base64"`
	Hex    *string `json:"hex"`
	Raw    *bool   `json:"raw"`
}

// bytes returns the payload; given is false when the body has none.
func (p *payloadFields) bytes() (b []byte, given bool, err error) {
	n := 0
	for _, f := range []*string{p.Text, p.Base64, p.Hex} {
		if f != nil {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, false, nil
	case n > 1:
		return nil, true, errors.New("give the payload once: text, base64 or hex")
	case p.Text != nil:
		return []byte(*p.Text), true, nil
	case p.Base64 != nil:
		s := strings.TrimRight(strings.Join(strings.Fields(*p.Base64), ""), "=")
		b, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			return nil, true, fmt.Errorf("base64: %w", err)
		}
		return b, true, nil
	}
	s := strings.NewReplacer(" ", "", "\n", "", "\r", "", "\t", "", ":", "").Replace(*p.Hex)
	b, err = hex.DecodeString(s)
	if err != nil {
		return nil, true, fmt.Errorf("hex: %w", err)
	}
	return b, true, nil
}

// controller returns the breakpoint's controller, or answers 409 when the UI has
// none (sniff, open: read-only).
func (s *Server) controller(w http.ResponseWriter) (*intercept.Controller, bool) {
	if s.cfg.Intercept == nil {
		fail(w, http.StatusConflict, "this UI is read-only (%s): intercept and inject need the proxy (wstap --ui)", s.cfg.Info.Mode)
		return nil, false
	}
	return s.cfg.Intercept, true
}

// settingsView is GET /api/intercept.
type settingsView struct {
	Enabled    bool     `json:"enabled"`
	Rules      []string `json:"rules"`
	Timeout    string   `json:"timeout"`
	TimeoutMS  int64    `json:"timeout_ms"`
	Breakpoint string   `json:"breakpoint,omitempty"`
	Held       int      `json:"held"`
	Version    uint64   `json:"version"`
}

func (s *Server) settingsView(c *intercept.Controller) settingsView {
	v, _ := c.Changes()
	st := c.Settings()
	rules := make([]string, len(st.Rules))
	for i, r := range st.Rules {
		rules[i] = r.String()
	}
	return settingsView{Enabled: st.Enabled, Rules: rules, Timeout: st.Timeout.String(), TimeoutMS: st.Timeout.Milliseconds(),
		Breakpoint: s.cfg.Breakpoint, Held: len(c.Held()), Version: v}
}

func (s *Server) getIntercept(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	writeJSON(w, s.settingsView(c))
}

func (s *Server) putIntercept(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	var body struct {
		Enabled *bool     `json:"enabled"`
		Rules   *[]string `json:"rules"`
		Timeout *string   `json:"timeout"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	st := c.Settings()
	if body.Enabled != nil {
		st.Enabled = *body.Enabled
	}
	if body.Rules != nil {
		rules := make([]intercept.Rule, 0, len(*body.Rules))
		for i, text := range *body.Rules {
			rule, err := intercept.ParseRule(text)
			if err != nil {
				failBody(w, http.StatusBadRequest, errorBody{Error: err.Error(), Rule: &i})
				return
			}
			rules = append(rules, rule)
		}
		st.Rules = rules
	}
	if body.Timeout != nil {
		d, err := time.ParseDuration(*body.Timeout)
		if err != nil || d <= 0 {
			fail(w, http.StatusBadRequest, "timeout %q: want a duration above 0 such as 90s, 5m or 1h", *body.Timeout)
			return
		}
		st.Timeout = d
	}
	c.SetSettings(st)
	writeJSON(w, s.settingsView(c))
}

func (s *Server) checkRule(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.controller(w); !ok {
		return
	}
	var body struct {
		Rule string `json:"rule"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	rule, err := intercept.ParseRule(body.Rule)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, map[string]any{"ok": true, "rule": rule.String()})
}

// heldView is a held message in GET /api/intercept/held.
type heldView struct {
	ID       uint64           `json:"id"`
	Conn     string           `json:"conn"`
	URL      string           `json:"url"`
	Dir      string           `json:"dir"`
	Opcode   string           `json:"opcode"`
	Seq      uint64           `json:"seq"`
	Order    string           `json:"order"`
	Rule     string           `json:"rule"`
	HeldAt   time.Time        `json:"held_at"`
	Deadline time.Time        `json:"deadline"`
	Codecs   []string         `json:"codecs"`
	Payload  history.PartView `json:"payload"`
	Wire     history.PartView `json:"wire"`
}

func part(b []byte) history.PartView {
	return history.PartView{Len: len(b), Base64: base64.StdEncoding.EncodeToString(b), UTF8: utf8.Valid(b)}
}

func newHeldView(m intercept.Message) heldView {
	h := m.Held
	v := heldView{ID: m.ID, Dir: h.Dir.String(), Opcode: h.Opcode.String(), Seq: h.Seq, Order: h.Order.String(), Rule: m.Rule,
		HeldAt: m.Since.UTC(), Deadline: m.Deadline.UTC(), Codecs: h.Codecs, Payload: part(h.Payload), Wire: part(h.Wire)}
	if v.Codecs == nil {
		v.Codecs = []string{}
	}
	if h.Conn != nil {
		v.Conn = h.Conn.ID
		if h.Conn.URL != nil {
			v.URL = h.Conn.URL.String()
		}
	}
	return v
}

// Long-poll bounds of GET /api/intercept/held.
const (
	defaultHeldWait = 25 * time.Second
	maxHeldWait     = 60 * time.Second
)

func (s *Server) heldList(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	q := r.URL.Query()
	if since := q.Get("since"); since != "" {
		want, err := strconv.ParseUint(since, 10, 64)
		if err != nil {
			fail(w, http.StatusBadRequest, "since %q: want a version from an earlier answer", since)
			return
		}
		wait := defaultHeldWait
		if v := q.Get("wait"); v != "" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0 {
				fail(w, http.StatusBadRequest, "wait %q: want seconds, at most %d", v, int(maxHeldWait/time.Second))
				return
			}
			wait = min(time.Duration(n*float64(time.Second)), maxHeldWait)
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			v, changed := c.Changes()
			if v != want {
				break
			}
			select {
			case <-changed:
				continue
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
			break
		}
	}
	v, _ := c.Changes()
	held := c.Held()
	items := make([]heldView, len(held))
	for i, m := range held {
		items[i] = newHeldView(m)
	}
	writeJSON(w, map[string]any{"version": v, "enabled": c.Settings().Enabled, "items": items})
}

// heldID reads the held message's id from the path.
func heldID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		fail(w, http.StatusBadRequest, "held message id %q: want a number", r.PathValue("id"))
		return 0, false
	}
	return id, true
}

// releaseError answers an error of a decision about a held message.
func releaseError(w http.ResponseWriter, id uint64, err error) {
	var perr *plugins.Error
	switch {
	case errors.Is(err, intercept.ErrNoMessage):
		fail(w, http.StatusNotFound, "message %d is not held (forwarded, dropped or timed out meanwhile, or its connection ended)", id)
	case errors.As(err, &perr) && perr.Op == "Encode":
		fail(w, http.StatusUnprocessableEntity, "the codecs cannot encode the edit; the message is still held: %v", err)
	default:
		fail(w, http.StatusConflict, "%v", err)
	}
}

func (s *Server) forwardHeld(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	id, ok := heldID(w, r)
	if !ok {
		return
	}
	var body payloadFields
	if !readJSON(w, r, &body) {
		return
	}
	p, given, err := body.bytes()
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	d := plugins.Decision{Payload: p}
	if body.Raw != nil && *body.Raw {
		if !given {
			fail(w, http.StatusBadRequest, "raw: give the wire payload (text, base64 or hex)")
			return
		}
		d.Raw = true
	}
	if given && d.Payload == nil {
		d.Payload = []byte{}
	}
	if m, ok := c.Get(id); ok && d.Raw && m.Held.Opcode == wsframe.OpText && !utf8.Valid(d.Payload) {
		fail(w, http.StatusBadRequest, "the message is text and the raw payload is not valid UTF-8 (its receiver would close the connection)")
		return
	}
	if err := c.Release(r.Context(), id, d); err != nil {
		releaseError(w, id, err)
		return
	}
	writeJSON(w, map[string]any{"ok": true})
}

func (s *Server) dropHeld(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	id, ok := heldID(w, r)
	if !ok {
		return
	}
	var body struct{}
	if !readJSON(w, r, &body) {
		return
	}
	if err := c.Release(r.Context(), id, plugins.Decision{Drop: true}); err != nil {
		releaseError(w, id, err)
		return
	}
	writeJSON(w, map[string]any{"ok": true})
}

func (s *Server) forwardAll(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	var body struct{}
	if !readJSON(w, r, &body) {
		return
	}
	n, err := c.ReleaseAll(r.Context())
	if err != nil {
		fail(w, http.StatusConflict, "%d forwarded, then: %v", n, err)
		return
	}
	writeJSON(w, map[string]any{"forwarded": n})
}

// send injects in on connection conn, raw or through the codecs, and answers.
func (s *Server) send(w http.ResponseWriter, r *http.Request, c *intercept.Controller, conn string, in plugins.Injection) {
	if !in.Encode && in.Opcode == wsframe.OpText && !utf8.Valid(in.Payload) {
		fail(w, http.StatusBadRequest, "a text message must be valid UTF-8 (its receiver would close the connection): send it as binary")
		return
	}
	if _, live := c.Conn(conn); !live {
		if _, known := s.cfg.Store.Conn(conn); known {
			fail(w, http.StatusConflict, "connection %s is closed", conn)
		} else {
			fail(w, http.StatusNotFound, "no connection %s", conn)
		}
		return
	}
	if in.Payload == nil {
		in.Payload = []byte{}
	}
	err := c.Inject(r.Context(), conn, in)
	var perr *plugins.Error
	switch {
	case err == nil:
		writeJSON(w, map[string]any{"ok": true})
	case errors.Is(err, intercept.ErrNoConn):
		fail(w, http.StatusConflict, "connection %s is closed", conn)
	case errors.As(err, &perr) && perr.Op == "Encode":
		fail(w, http.StatusUnprocessableEntity, "the codecs cannot encode the message: %v", err)
	default:
		fail(w, http.StatusConflict, "%v", err)
	}
}

func (s *Server) inject(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	var body struct {
		payloadFields
		Dir    string `json:"dir"`
		Opcode string `json:"opcode"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	in := plugins.Injection{Encode: body.Raw == nil || !*body.Raw}
	switch body.Dir {
	case "c2s":
		in.Dir = plugins.ClientToServer
	case "s2c":
		in.Dir = plugins.ServerToClient
	default:
		fail(w, http.StatusBadRequest, "dir %q: want c2s (to the server) or s2c (to the client)", body.Dir)
		return
	}
	p, given, err := body.bytes()
	switch {
	case err != nil:
		fail(w, http.StatusBadRequest, "%v", err)
		return
	case !given:
		fail(w, http.StatusBadRequest, "no payload: give text, base64 or hex")
		return
	}
	in.Payload = p
	switch body.Opcode {
	case "":
		in.Opcode = wsframe.OpBinary
		if body.Text != nil {
			in.Opcode = wsframe.OpText
		}
	case "text":
		in.Opcode = wsframe.OpText
	case "binary":
		in.Opcode = wsframe.OpBinary
	default:
		fail(w, http.StatusBadRequest, "opcode %q: want text or binary", body.Opcode)
		return
	}
	s.send(w, r, c, r.PathValue("id"), in)
}

func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	c, ok := s.controller(w)
	if !ok {
		return
	}
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		fail(w, http.StatusBadRequest, "message id %q: want a number", r.PathValue("id"))
		return
	}
	var body payloadFields
	if !readJSON(w, r, &body) {
		return
	}
	d, ok := s.cfg.Store.Get(id)
	if !ok {
		fail(w, http.StatusNotFound, "no message %d", id)
		return
	}
	if d.Kind != history.KindMessage.String() || (d.Opcode != "text" && d.Opcode != "binary") {
		fail(w, http.StatusBadRequest, "message %d is a %s %s, not a text or binary message", id, d.Kind, d.Opcode)
		return
	}
	in := plugins.Injection{Opcode: wsframe.OpBinary}
	if d.Opcode == "text" {
		in.Opcode = wsframe.OpText
	}
	if d.Dir == "s2c" {
		in.Dir = plugins.ServerToClient
	} else {
		in.Dir = plugins.ClientToServer
	}
	decoded, hasDecoded := d.Parts["decoded"]
	p, given, err := body.bytes()
	switch {
	case err != nil:
		fail(w, http.StatusBadRequest, "%v", err)
		return
	case given:
		in.Payload = p
		in.Encode = hasDecoded
		if body.Raw != nil {
			in.Encode = !*body.Raw
		}
	default:
		if body.Raw != nil {
			fail(w, http.StatusBadRequest, "raw without a payload: give text, base64 or hex, or neither to send the same again")
			return
		}
		src, ok := decoded, hasDecoded
		if !ok {
			src, ok = d.Parts["payload"]
		}
		if !ok || (d.Evicted && !d.FromLog) || slices.Contains(d.Flags, "truncated") {
			fail(w, http.StatusConflict, "the payload of message %d is not kept (evicted or truncated): send it with text, base64 or hex", id)
			return
		}
		in.Payload, _ = base64.StdEncoding.DecodeString(src.Base64)
		in.Encode = hasDecoded
	}
	s.send(w, r, c, d.Conn, in)
}
