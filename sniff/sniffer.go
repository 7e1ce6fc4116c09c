package sniff

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"io"
	"log/slog"
	"net/netip"
	"slices"
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

	// LastConnID, when not 0, makes connection ids continue after "c<LastConnID>"
	// (an event log being appended to holds the ones before).
	LastConnID uint64

	// ControlBurst, when positive, is how many pings and pongs a second (of
	// capture time) each direction reports one by one; the rest are counted (see
	// plugins.Pipeline.ControlBurst). 0 reports every one.
	ControlBurst int

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
	Refused                       int64 // upgrade requests answered with something other than 101

	// NoHandshake counts TCP connections that were not followed (neither an
	// upgrade in the capture nor Config.WSPorts made them WebSocket) but whose
	// bytes look like WebSocket frames: the capture likely began after their
	// handshake. NoHandshakePorts are their server ports, the most common first.
	NoHandshake      int64
	NoHandshakePorts []uint16
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
	conns    map[uint64]*conn // by the hash of their key, chained through hnext
	nconns   int
	seed     maphash.Seed
	wsConns  connList            // WebSocket connections, least recently active first
	others   connList            // every other connection
	waiting  map[sideRef]int     // directions holding waiting segments: their bytes as counted in buffered
	hunting  map[*wsDir]struct{} // directions resynchronising after a gap
	buffered int                 // waiting bytes of all connections
	queued   int                 // bytes of the events waiting for their turn (see conn.release)
	// noHandshake counts, by server port, the connections not followed whose
	// bytes look like WebSocket frames.
	noHandshake map[uint16]int64
	log         *slog.Logger

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
	s := &Sniffer{cfg: cfg, obs: plugins.Observers(cfg.Observers), dec: newPacketDecoder(), conns: map[uint64]*conn{},
		seed: maphash.MakeSeed(), waiting: map[sideRef]int{}, noHandshake: map[uint16]int64{}, hunting: map[*wsDir]struct{}{}, wsPorts: map[uint16]bool{}, log: cfg.Logger}
	s.ids.After(cfg.LastConnID)
	s.pipeline = &plugins.Pipeline{Chain: cfg.Chain, Observer: s.obs, MaxHookMessage: cfg.MaxHookMessage,
		ControlBurst: cfg.ControlBurst, Logger: cfg.Logger}
	for _, p := range cfg.WSPorts {
		s.wsPorts[p] = true
	}
	return s
}

// Stats returns the counters so far. Connections count in NoHandshake once they
// are forgotten (idle, or at the end: [Sniffer.Flush]).
func (s *Sniffer) Stats() Stats {
	st := s.stats
	st.NoHandshakePorts = nil
	for p := range s.noHandshake {
		st.NoHandshakePorts = append(st.NoHandshakePorts, p)
	}
	slices.SortFunc(st.NoHandshakePorts, func(a, b uint16) int {
		if n, m := s.noHandshake[a], s.noHandshake[b]; n != m {
			return cmp.Compare(m, n)
		}
		return cmp.Compare(a, b)
	})
	return st
}

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
	for w := range s.waiting {
		switch r := &w.c.r[w.i]; {
		case r.oldest().After(cutoff):
		case r.unanchored():
			s.startWaiting(w.c)
			fallthrough
		default:
			s.flushSideBefore(w.c, w.i, cutoff)
		}
	}
	for d := range s.hunting {
		if s.now.Sub(d.huntSince) >= s.cfg.ReorderTimeout {
			d.idle()
		}
	}
	idle := s.now.Add(-s.cfg.IdleTimeout).UnixNano()
	for c := s.others.head; c != nil && c.last <= idle; c = s.others.head {
		s.endConn(c, "capture")
		s.removeConn(c)
	}
}

// connKey identifies a TCP connection: its two endpoints, the smaller first, each
// as its IPv6 (or IPv4-mapped) address and its port. It is 36 bytes where two
// netip.AddrPort take 64: every connection in the table keeps one.
type connKey [36]byte

// keyOf returns the key of the connection a segment from src to dst belongs to,
// and the index of the sender's side (0 when it is the key's first endpoint).
func keyOf(src, dst netip.AddrPort) (connKey, int) {
	i := 0
	if src.Compare(dst) > 0 {
		src, dst, i = dst, src, 1
	}
	var k connKey
	a, b := src.Addr().As16(), dst.Addr().As16()
	copy(k[0:16], a[:])
	copy(k[16:32], b[:])
	binary.BigEndian.PutUint16(k[32:], src.Port())
	binary.BigEndian.PutUint16(k[34:], dst.Port())
	return k, i
}

// addr returns the endpoint of side i. Addresses were unmapped when decoded, so
// an IPv4-mapped one is IPv4.
func (k *connKey) addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(k[16*i:16*i+16])).Unmap(), k.port(i))
}

// port returns the port of side i.
func (k *connKey) port(i int) uint16 { return binary.BigEndian.Uint16(k[32+2*i:]) }

// sideRef names one direction of a connection.
type sideRef struct {
	c *conn
	i int
}

// lookup returns the connection with key k, which hashes to h, or nil.
func (s *Sniffer) lookup(h uint64, k *connKey) *conn {
	c := s.conns[h]
	for c != nil && c.key != *k {
		c = c.hnext
	}
	return c
}

// tcp follows one segment.
func (s *Sniffer) tcp(seg *segment) {
	key, i := keyOf(seg.src, seg.dst)
	h := maphash.Bytes(s.seed, key[:])
	c := s.lookup(h, &key)
	if c != nil && c.state == stClosed && seg.syn && !seg.ack {
		s.removeConn(c) // the 4-tuple is used again
		c = nil
	}
	if c == nil {
		if seg.rst || (!seg.syn && len(seg.payload) == 0 && seg.missing == 0 && !seg.fin) {
			return // nothing to follow
		}
		c = s.newConn(h, &key)
	}
	c.last = s.now.UnixNano()
	s.listOf(c).touch(c)
	switch c.state {
	case stClosed:
		return
	case stIgnore:
		if seg.rst {
			s.endConn(c, "")
		}
		if c.frames != 0 && len(seg.payload) > 0 {
			c.noteFrames(i, seg.payload)
		}
		return
	}
	if seg.syn && c.client < 0 {
		if seg.ack {
			c.client = int8(1 - i)
		} else {
			c.client = int8(i)
		}
	}
	if seg.rst {
		s.endConn(c, c.sideName(i))
		return
	}
	if seg.syn && seg.ack {
		// The SYN-ACK acknowledges the peer's SYN: the peer's stream starts there,
		// even when its SYN is late or missing.
		c.r[1-i].startAt(seg.ackNum, c.sink(1-i))
		s.account(c, 1-i)
	}
	c.r[i].add(seg, s.pktTime, c.sink(i))
	if c.r[0].unanchored() || c.r[1].unanchored() {
		// Waiting for a direction's start: a late SYN (or first segment) may still
		// come, within the window.
		if c.early++; c.early >= anchorWindow {
			s.startWaiting(c)
		}
	}
	s.account(c, i)
	if c.state == stWS {
		c.release(false) // the segment may have ended a wait
	}
	if c.r[0].is(rDone) && c.r[1].is(rDone) {
		s.endConn(c, c.finName())
		return
	}
	if c.r[i].pendingBytes() > s.cfg.MaxBuffered {
		s.flushSide(c, i)
	}
	if s.buffered > s.cfg.MaxBufferedTotal {
		for w := range s.waiting {
			s.flushSide(w.c, w.i)
			if s.buffered <= s.cfg.MaxBufferedTotal/2 {
				break
			}
		}
	}
}

// anchorWindow is how many packets of a connection may come while one of its
// directions holds segments but has not seen its start (its SYN, or the peer's
// SYN-ACK); then that direction starts at the earliest segment it holds. The
// reorder timeout and the buffer limits end the wait too.
const anchorWindow = 8

// startWaiting starts the directions of c still waiting for their start at
// their earliest segments, and delivers what they hold in the order it was
// captured across both directions: a request before its response.
func (s *Sniffer) startWaiting(c *conn) {
	c.early = 0
	for j := range c.r {
		c.r[j].anchorFirst()
	}
	var t [2]time.Time // when the bytes delivered so far were all there
	for {
		next, nextT := -1, time.Time{}
		for j := range c.r {
			if at, ok := c.r[j].ready(); ok {
				if tj := later(t[j], at); next < 0 || tj.Before(nextT) {
					next, nextT = j, tj
				}
			}
		}
		if next < 0 {
			break
		}
		t[next] = nextT
		c.r[next].drainOne(nextT, c.sink(next))
	}
	for j := range c.r {
		c.r[j].checkFin(c.sink(j))
		s.account(c, j)
	}
}

// account keeps the total of waiting bytes and the set of directions holding some
// in step with side i of c.
func (s *Sniffer) account(c *conn, i int) {
	n := c.r[i].pendingBytes()
	bit := cWaiting << i
	if n == 0 && c.flags&bit == 0 {
		return
	}
	w := sideRef{c, i}
	s.buffered += n - s.waiting[w]
	if n > 0 {
		s.waiting[w] = n
		c.flags |= bit
	} else {
		delete(s.waiting, w)
		c.flags &^= bit
	}
}

// flushSide gives up on the bytes missing before side i's waiting segments.
func (s *Sniffer) flushSide(c *conn, i int) {
	s.flushSideBefore(c, i, time.Time{})
}

// flushSideBefore gives up on the holes in side i's stream noticed before cutoff
// (all when cutoff is zero).
func (s *Sniffer) flushSideBefore(c *conn, i int, cutoff time.Time) {
	bit := cFlushing << i
	if c.flags&bit != 0 {
		return
	}
	c.flags |= bit
	c.r[i].flushBefore(cutoff, c.sink(i))
	c.flags &^= bit
	s.account(c, i)
}

func (s *Sniffer) newConn(h uint64, key *connKey) *conn {
	if s.nconns >= s.cfg.MaxConns {
		victim := s.others.head
		if victim == nil {
			victim = s.wsConns.head
		}
		if victim != nil {
			s.endConn(victim, "capture")
			s.removeConn(victim)
		}
	}
	c := &conn{s: s, key: *key, client: -1, hnext: s.conns[h]}
	s.conns[h] = c
	s.nconns++
	s.others.push(c)
	s.stats.TCPConns++
	return c
}

func (s *Sniffer) removeConn(c *conn) {
	if c.frames != 0 {
		if port, ok := c.framesPort(); ok {
			s.stats.NoHandshake++
			s.noHandshake[port]++
		}
	}
	h := maphash.Bytes(s.seed, c.key[:])
	switch p := s.conns[h]; {
	case p == c && c.hnext == nil:
		delete(s.conns, h)
		s.nconns--
	case p == c:
		s.conns[h] = c.hnext
		s.nconns--
	default:
		for ; p != nil && p.hnext != c; p = p.hnext {
		}
		if p != nil {
			p.hnext = c.hnext
			s.nconns--
		}
	}
	c.hnext = nil
	for i := range c.r {
		c.r[i].q = nil
		s.account(c, i)
	}
	s.listOf(c).remove(c)
}

// listOf returns the list c is in.
func (s *Sniffer) listOf(c *conn) *connList {
	if c.state == stWS {
		return &s.wsConns
	}
	return &s.others
}

// endConn ends a connection: out-of-order bytes still waiting are delivered after a
// gap, and a WebSocket connection gets its close event. by names who ended the TCP
// connection when no close frame was seen.
func (s *Sniffer) endConn(c *conn, by string) {
	if c.state == stClosed {
		return
	}
	s.startWaiting(c)
	for i := range c.r {
		s.flushSide(c, i)
	}
	if c.state == stWS {
		f := c.f
		for i := range f.sides {
			if d := f.sides[i].ws; d != nil {
				d.end()
			}
		}
		c.release(true)
		ev := f.closeEv
		if !f.closeSeen {
			ev = plugins.CloseEvent{Time: s.pktTime, Code: wsframe.CloseAbnormal, By: by}
		}
		var streams []*plugins.Stream
		for i := range f.sides {
			if d := f.sides[i].ws; d != nil {
				streams = append(streams, d.st)
			}
		}
		s.pipeline.Close(s.ctxOrBackground(), f.pc, ev, streams...)
		s.wsConns.remove(c)
		s.others.push(c)
	}
	c.state = stClosed
	c.f = nil
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
	c.prev, c.next = l.tail, nil
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
	c.prev, c.next = nil, nil
}

// touch moves c to the end of its list (most recently active).
func (l *connList) touch(c *conn) {
	if l.tail == c {
		return
	}
	l.remove(c)
	l.push(c)
}
