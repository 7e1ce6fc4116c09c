package sniff

import (
	"fmt"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// keepInflated is the largest inflate buffer a direction keeps between messages.
const keepInflated = 1 << 20

// wsDir decodes one direction of a WebSocket connection: wsframe's push Decoder in
// lenient mode (a passive observer reports what it sees rather than rejecting
// it), which also resynchronises after gaps and errors; then permessage-deflate,
// the hook chain and the observers. It is the Decoder's handler.
//
// The Assembler gets no Inflater: inflating happens here, so that a message that
// cannot be inflated is reported undecodable instead of being treated as a framing
// error (which would make the Decoder resynchronise), and so that a direction
// whose window became unknown under context takeover stops using it.
type wsDir struct {
	c   *conn
	sd  *side
	dir plugins.Direction
	dec *wsframe.Decoder
	st  *plugins.Stream // set when the connection opens

	inf       *wsframe.Inflater // nil without permessage-deflate in this direction
	takeover  bool
	noDeflate string // why compressed messages cannot be inflated when inf is nil
	// broken says why the context-takeover window is unknown (bytes were lost, or
	// a message failed to inflate): later messages are inflated on their own,
	// which succeeds exactly when they do not refer back to earlier ones.
	broken string
	alone  *wsframe.Inflater
	out    []byte // inflated payload

	checkStart bool      // the first bytes may start mid-frame unless the stream began at its SYN
	hunting    bool      // listed in the sniffer's hunting set
	huntSince  time.Time // when the decoder started resynchronising (see Sniffer.tick)
}

func newWSDir(c *conn, i int, sender wsframe.Side, comp *wsframe.Compression, rsv1 bool, noDeflate string) *wsDir {
	d := &wsDir{c: c, sd: &c.f.sides[i], dir: plugins.ClientToServer, noDeflate: noDeflate}
	if sender == wsframe.Server {
		d.dir = plugins.ServerToClient
	}
	if comp != nil {
		d.inf = wsframe.NewInflater(*comp)
		d.takeover = comp.ContextTakeover
	}
	rules := wsframe.Rules{Sender: d.dir.Sender(), Lenient: true}
	if rsv1 || comp != nil {
		rules.Extensions = wsframe.RSV1 // permessage-deflate, or unknown (no handshake)
	}
	a := wsframe.NewAssembler(wsframe.AssemblerConfig{Limits: c.s.cfg.Limits, Lenient: true})
	d.dec = wsframe.NewDecoder(rules, a, d)
	return d
}

// startMidStream makes the direction look for the first frame: the stream's first
// bytes may be anywhere in a frame. Nothing is reported when they are not.
func (d *wsDir) startMidStream() {
	d.checkStart = false
	d.dec.StartMidStream()
	d.watchHunt()
}

// watchHunt keeps the sniffer's set of resynchronising directions, whose search
// is decided when no bytes come for a while.
func (d *wsDir) watchHunt() {
	if r := d.dec.Resyncing(); r != d.hunting {
		s := d.c.s
		if d.hunting = r; r {
			s.hunting[d] = struct{}{}
			d.huntSince = s.now
		} else {
			delete(s.hunting, d)
		}
	}
}

// feed decodes the next bytes of the stream, all there at t.
func (d *wsDir) feed(p []byte, t time.Time) {
	if d.checkStart {
		d.checkStart = false
		if !d.c.r[d.sd.idx].is(rFromSYN) {
			d.dec.StartMidStream()
		}
	}
	d.dec.Feed(p)
	d.watchHunt()
}

// idle decides a pending resynchronisation when no bytes came for a while.
func (d *wsDir) idle() {
	d.dec.Idle()
	d.watchHunt()
}

// end decides a pending resynchronisation at the end of the stream.
func (d *wsDir) end() {
	d.dec.End()
	d.hunting = false
	delete(d.c.s.hunting, d)
}

// Resync reports a resynchronisation the decoder completed (wsframe.DecodeHandler).
func (d *wsDir) Resync(skipped int64) {
	s := d.c.s
	s.stats.Resyncs++
	s.obs.Resync(d.c.f.pc, d.dir, s.pktTime, skipped)
}

// Error reports a protocol error, after which the decoder resynchronises, or a
// message over the limits, which it skips (wsframe.DecodeHandler).
func (d *wsDir) Error(err error) {
	s := d.c.s
	s.stats.Errors++
	s.obs.StreamError(d.c.f.pc, d.dir, s.pktTime, err)
}

// gap handles n bytes lost from the stream: the message in progress is lost, and
// under context takeover the inflate window is no longer known.
func (d *wsDir) gap(n int64, t time.Time) {
	d.checkStart = false
	lost := d.dec.Gap(n)
	d.watchHunt()
	d.huntSince = d.c.s.now // a new search, even when one was under way
	if d.takeover && d.broken == "" {
		d.broken = "bytes of this direction are missing from the capture, and under context takeover a message may refer back to them"
	}
	s := d.c.s
	s.stats.Gaps++
	s.stats.LostBytes += n
	if lost {
		s.stats.LostMessages++
	}
	s.obs.Gap(d.c.f.pc, d.dir, s.pktTime, n, lost)
}

// Message handles a message the decoder completed (wsframe.DecodeHandler).
func (d *wsDir) Message(m *wsframe.Message) {
	c, s := d.c, d.c.s
	if m.Opcode.IsControl() {
		rec, ev, isClose := d.st.Control(m, s.pktTime)
		if isClose && !c.f.closeSeen {
			c.f.closeSeen, c.f.closeEv = true, ev
		}
		s.stats.Messages++
		s.stats.MessageBytes += int64(len(m.Payload))
		d.st.Emit(rec) // nil for a ping counted with others
		return
	}
	if m.Compressed {
		out, why := d.inflate(m.Wire)
		if why != "" {
			s.stats.Undecodable++
			d.st.Undecodable(m, s.pktTime, why)
			return
		}
		m.Payload = out
	}
	rec, _, err := d.st.Message(s.ctxOrBackground(), m, s.pktTime)
	if err != nil {
		s.log.Error("sniff: hook chain", "conn", c.f.pc.ID, "err", err)
	}
	s.stats.Messages++
	s.stats.MessageBytes += rec.Len
	d.st.Emit(rec)
	if cap(d.out) > keepInflated {
		d.out = nil
	}
}

// inflate returns the payload of a compressed message, or why it cannot be shown.
func (d *wsDir) inflate(wire []byte) ([]byte, string) {
	if d.inf == nil {
		return nil, d.noDeflate
	}
	limit := d.c.s.cfg.Limits.MaxMessageSize
	if limit <= 0 {
		limit = wsframe.DefaultMaxMessageSize
	}
	if d.broken == "" {
		out, err := d.inf.Inflate(d.out[:0], wire, limit)
		d.out = out[:0]
		if err == nil {
			return out, ""
		}
		if !d.takeover {
			return nil, "cannot inflate: " + err.Error()
		}
		d.broken = fmt.Sprintf("a message failed to inflate under context takeover (%v): the capture does not hold the history it refers to", err)
		return nil, d.broken
	}
	if d.alone == nil {
		d.alone = wsframe.NewInflater(wsframe.Compression{})
	}
	out, err := d.alone.Inflate(d.out[:0], wire, limit)
	d.out = out[:0]
	if err == nil {
		return out, ""
	}
	return nil, d.broken
}
