package sniff

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/wstap/wstap/internal/handshake"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Defaults of [Config].
const (
	DefaultMaxHookMessage   = plugins.DefaultMaxHookMessage
	DefaultMaxBuffered      = 4 << 20
	DefaultMaxBufferedTotal = 256 << 20
	DefaultReorderTimeout   = 3 * time.Second
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultMaxConns         = 1 << 18
)

// Config configures a [Sniffer]. The zero value is usable: no hooks, no observers,
// default limits.
type Config struct {
	// Chain runs on every data message. The Sniffer marks its connections
	// plugins.Sniff, which makes the chain read-only: Modify, Drop and Inject
	// verdicts are reported as errors of the hook. Nil means no hooks.
	Chain *plugins.Chain

	// Observers see every connection and message, after the chain, in capture
	// order, and the events only a capture has (gaps, resynchronisations,
	// undecodable messages, errors).
	Observers []plugins.Observer

	// WSPorts are TCP ports whose traffic is WebSocket without a handshake in the
	// capture (the side on that port is the server). A connection on such a port
	// that starts with an HTTP request is still followed through its handshake.
	WSPorts []uint16

	// Limits bound the messages the decoder assembles; larger ones are skipped and
	// reported. The zero value means wsframe's defaults.
	Limits wsframe.Limits

	// MaxHookMessage is the largest message passed to the chain and logged whole;
	// larger ones are logged with a truncated payload. 0 means
	// DefaultMaxHookMessage.
	MaxHookMessage int64

	// MaxBuffered bounds the out-of-order bytes held for one direction of a
	// connection, and MaxBufferedTotal those of all connections: past them the
	// missing bytes are given up as a gap. 0 means the defaults.
	MaxBuffered, MaxBufferedTotal int

	// ReorderTimeout is how long, in capture time, out-of-order bytes wait for the
	// bytes before them. 0 means DefaultReorderTimeout.
	ReorderTimeout time.Duration

	// IdleTimeout is how long, in capture time, a connection that is not
	// WebSocket (or has ended) is remembered after its last packet. WebSocket
	// connections are kept until they end, or until MaxConns forces the least
	// recently active out. 0 means the defaults.
	IdleTimeout time.Duration
	MaxConns    int

	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// Stats counts what a Sniffer has seen.
type Stats struct {
	Packets    int64 // packets read
	Bytes      int64 // their captured bytes
	TCPPackets int64 // TCP segments over IPv4 or IPv6
	// Connections counts WebSocket connections; TCPConns every TCP connection
	// followed.
	Connections, TCPConns int64
	// Messages and MessageBytes count the messages shown (data and control) and
	// their payload bytes after inflating.
	Messages, MessageBytes int64
	// Gaps counts holes in the streams, LostBytes their total size, LostMessages
	// the messages in progress that a gap cut.
	Gaps, LostBytes, LostMessages int64
	Resyncs                       int64 // times the decoder skipped bytes to find a frame header again
	Undecodable                   int64 // messages seen but not shown (compressed and not inflatable)
	Errors                        int64 // protocol errors and messages above the size limit
}

// Sniffer follows the TCP connections in a stream of packets, finds the WebSocket
// connections among them and reports their messages. A Sniffer is used by one
// goroutine: call [Sniffer.Run] with a [Source], or push packets yourself with
// [Sniffer.Packet] and end with [Sniffer.Flush].
type Sniffer struct {
	cfg      Config
	obs      plugins.Observers
	pipeline *plugins.Pipeline
	wsPorts  map[uint16]bool
	dec      *packetDecoder
	conns    map[connKey]*conn
	wsConns  connList // WebSocket connections, least recently active first
	others   connList // every other connection
	waiting  map[*side]struct{}
	hunting  map[*wsDir]struct{} // directions resynchronising after a gap
	buffered int                 // out-of-order bytes of all connections
	log      *slog.Logger

	ctx      context.Context // of the current Packet or Flush call
	pktTime  time.Time       // capture time of the packet being processed
	now      time.Time       // latest capture time seen
	lastTick time.Time
	ids      handshake.IDs

	seg   segment
	stats Stats
}

// New returns a Sniffer configured by cfg.
func New(cfg Config) *Sniffer {
	if cfg.MaxHookMessage <= 0 {
		cfg.MaxHookMessage = DefaultMaxHookMessage
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = DefaultMaxBuffered
	}
	if cfg.MaxBufferedTotal <= 0 {
		cfg.MaxBufferedTotal = DefaultMaxBufferedTotal
	}
	if cfg.ReorderTimeout <= 0 {
		cfg.ReorderTimeout = DefaultReorderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sniffer{cfg: cfg, obs: plugins.Observers(cfg.Observers), dec: newPacketDecoder(), conns: map[connKey]*conn{},
		waiting: map[*side]struct{}{}, hunting: map[*wsDir]struct{}{}, wsPorts: map[uint16]bool{}, log: cfg.Logger}
	s.pipeline = &plugins.Pipeline{Chain: cfg.Chain, Observer: s.obs, MaxHookMessage: cfg.MaxHookMessage}
	for _, p := range cfg.WSPorts {
		s.wsPorts[p] = true
	}
	return s
}

// Stats returns the counters so far.
func (s *Sniffer) Stats() Stats { return s.stats }

// Run reads packets from src until it reports io.EOF or ctx is done, then ends
// every connection still open ([Sniffer.Flush]). When ctx is done it closes src to
// interrupt a blocked read and returns ctx.Err(); a read error other than io.EOF
// is returned after the flush (a file cut short in the middle of a packet wraps
// io.ErrUnexpectedEOF: what came before it has been reported).
func (s *Sniffer) Run(ctx context.Context, src Source) error {
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer stop()
	var err error
	for i := 0; ; i++ {
		if i&1023 == 0 && ctx.Err() != nil {
			break
		}
		data, ci, lt, rerr := src.ReadPacket()
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) && ctx.Err() == nil {
				err = rerr
			}
			break
		}
		s.Packet(ctx, data, ci, lt)
	}
	s.Flush(ctx)
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// Packet processes one packet of link type lt. data may be modified in place and is
// not kept after the call.
func (s *Sniffer) Packet(ctx context.Context, data []byte, ci gopacket.CaptureInfo, lt layers.LinkType) {
	s.ctx = ctx
	s.stats.Packets++
	s.stats.Bytes += int64(len(data))
	s.pktTime = ci.Timestamp
	if ci.Timestamp.After(s.now) {
		s.now = ci.Timestamp
	}
	if s.dec.decode(data, &ci, lt, &s.seg) {
		s.stats.TCPPackets++
		s.tcp(&s.seg)
	}
	if s.now.Sub(s.lastTick) >= time.Second {
		s.tick()
	}
	s.ctx = nil
}

// Flush ends every connection as the end of the capture: out-of-order bytes still
// waiting are delivered after a gap, and WebSocket connections get their close
// event (code 1006 by "capture" when no close frame was seen).
func (s *Sniffer) Flush(ctx context.Context) {
	s.ctx = ctx
	s.pktTime = s.now
	for _, l := range []*connList{&s.wsConns, &s.others} {
		for c := l.head; c != nil; {
			next := c.next
			s.endConn(c, "capture")
			s.removeConn(c)
			c = next
		}
	}
	s.ctx = nil
}

// tick runs once per second of capture time: it gives up on out-of-order bytes
// that waited too long and forgets idle connections.
func (s *Sniffer) tick() {
	s.lastTick = s.now
	cutoff := s.now.Add(-s.cfg.ReorderTimeout)
	s.dec.frags.discard(cutoff)
	for sd := range s.waiting {
		if !sd.r.oldest().After(cutoff) {
			s.flushSideBefore(sd, cutoff)
		}
	}
	for d := range s.hunting {
		if s.now.Sub(d.huntSince) >= s.cfg.ReorderTimeout {
			d.idle()
		}
	}
	for c := s.others.head; c != nil && s.now.Sub(c.last) >= s.cfg.IdleTimeout; c = s.others.head {
		s.endConn(c, "capture")
		s.removeConn(c)
	}
}

// connKey identifies a TCP connection: its two endpoints, the smaller first.
type connKey struct{ a, b netip.AddrPort }

// keyOf returns the key of the connection a segment from src to dst belongs to,
// and the index of the sender's side (0 when it is key.a).
func keyOf(src, dst netip.AddrPort) (connKey, int) {
	if src.Compare(dst) <= 0 {
		return connKey{src, dst}, 0
	}
	return connKey{dst, src}, 1
}

// tcp follows one segment.
func (s *Sniffer) tcp(seg *segment) {
	key, i := keyOf(seg.src, seg.dst)
	c := s.conns[key]
	if c != nil && c.state == stClosed && seg.syn && !seg.ack {
		s.removeConn(c) // the 4-tuple is used again
		c = nil
	}
	if c == nil {
		if seg.rst || (!seg.syn && len(seg.payload) == 0 && seg.missing == 0 && !seg.fin) {
			return // nothing to follow
		}
		c = s.newConn(key)
	}
	c.last = s.now
	c.list.touch(c)
	switch c.state {
	case stClosed:
		return
	case stIgnore:
		if seg.rst {
			s.endConn(c, "")
		}
		return
	}
	if seg.syn && c.client < 0 {
		if seg.ack {
			c.client = 1 - i
		} else {
			c.client = i
		}
	}
	if seg.rst {
		s.endConn(c, c.sideName(i))
		return
	}
	sd := &c.sides[i]
	sd.r.add(seg, s.now, sd)
	s.account(sd)
	if c.sides[0].finished && c.sides[1].finished {
		s.endConn(c, c.finBy)
		return
	}
	if sd.r.pendingBytes > s.cfg.MaxBuffered {
		s.flushSide(sd)
	}
	if s.buffered > s.cfg.MaxBufferedTotal {
		for w := range s.waiting {
			s.flushSide(w)
			if s.buffered <= s.cfg.MaxBufferedTotal/2 {
				break
			}
		}
	}
}

// account keeps the total of out-of-order bytes and the set of sides holding some
// in step with sd.
func (s *Sniffer) account(sd *side) {
	s.buffered += sd.r.pendingBytes - sd.accounted
	sd.accounted = sd.r.pendingBytes
	switch {
	case sd.accounted > 0 && !sd.waiting:
		sd.waiting = true
		s.waiting[sd] = struct{}{}
	case sd.accounted == 0 && sd.waiting:
		sd.waiting = false
		delete(s.waiting, sd)
	}
}

// flushSide gives up on the bytes missing before sd's out-of-order segments.
func (s *Sniffer) flushSide(sd *side) {
	s.flushSideBefore(sd, time.Time{})
}

// flushSideBefore gives up on the holes in sd's stream noticed before cutoff (all
// when cutoff is zero).
func (s *Sniffer) flushSideBefore(sd *side, cutoff time.Time) {
	if sd.flushing {
		return
	}
	sd.flushing = true
	sd.r.flushBefore(cutoff, sd)
	sd.flushing = false
	s.account(sd)
}

func (s *Sniffer) newConn(key connKey) *conn {
	if len(s.conns) >= s.cfg.MaxConns {
		victim := s.others.head
		if victim == nil {
			victim = s.wsConns.head
		}
		if victim != nil {
			s.endConn(victim, "capture")
			s.removeConn(victim)
		}
	}
	c := &conn{s: s, key: key, client: -1}
	for i := range c.sides {
		c.sides[i] = side{c: c, idx: i}
	}
	s.conns[key] = c
	s.others.push(c)
	s.stats.TCPConns++
	return c
}

func (s *Sniffer) removeConn(c *conn) {
	if s.conns[c.key] == c {
		delete(s.conns, c.key)
	}
	for i := range c.sides {
		sd := &c.sides[i]
		if sd.waiting {
			sd.r.pending, sd.r.pendingBytes = nil, 0
			s.account(sd)
		}
	}
	if c.list != nil {
		c.list.remove(c)
	}
}

// endConn ends a connection: out-of-order bytes still waiting are delivered after a
// gap, and a WebSocket connection gets its close event. by names who ended the TCP
// connection when no close frame was seen.
func (s *Sniffer) endConn(c *conn, by string) {
	if c.state == stClosed {
		return
	}
	c.ending = true
	for i := range c.sides {
		s.flushSide(&c.sides[i])
	}
	if c.state == stWS {
		for i := range c.sides {
			if d := c.sides[i].ws; d != nil {
				d.end()
			}
		}
		ev := c.closeEv
		if !c.closeSeen {
			ev = plugins.CloseEvent{Time: s.pktTime, Code: wsframe.CloseAbnormal, By: by}
		}
		s.pipeline.Close(s.ctxOrBackground(), c.pc, ev)
	}
	c.state = stClosed
	for i := range c.sides {
		sd := &c.sides[i]
		sd.ws, sd.buf, sd.held = nil, nil, nil
	}
	c.queue = nil
	if c.list == &s.wsConns {
		s.wsConns.remove(c)
		s.others.push(c)
	}
}

func (s *Sniffer) ctxOrBackground() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return context.Background()
}

// connList is a list of connections, least recently active first.
type connList struct{ head, tail *conn }

func (l *connList) push(c *conn) {
	c.list, c.prev, c.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *connList) remove(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.list, c.prev, c.next = nil, nil, nil
}

// touch moves c to the end of its list (most recently active).
func (l *connList) touch(c *conn) {
	if l.tail == c {
		return
	}
	l.remove(c)
	l.push(c)
}
