package proxy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// maxEarlyBytes bounds the client bytes goproxy hands over with Write before the
// stream itself (what its request parser had buffered: at most its buffer size).
const maxEarlyBytes = 64 << 10

// errUnexpectedPath reports that goproxy drove the relay in a way it was not built
// for (see session); tests pin the goproxy version that drives it as expected.
var errUnexpectedPath = errors.New("proxy: goproxy relayed the WebSocket through an unexpected path")

// session relays one WebSocket connection. It takes goproxy's place as the 101
// response body, which goproxy copies to and from the client with io.Copy:
//
//   - io.Copy(client, session) calls session.WriteTo(client): that goroutine reads the
//     server, runs the chain and writes to the client (server → client pump);
//   - io.Copy(session, clientReader) ends in session.ReadFrom(clientReader), after at
//     most one Write of bytes goproxy's parser had buffered: that goroutine reads the
//     client and writes to the server (client → server pump).
//
// So each direction is read, processed and written by one goroutine that goproxy
// already runs, and the session starts none of its own. Whichever pump ends first
// tears the connection down (end): close frames to whoever still listens, then a
// lingering close: each pump reads on until its peer's close frame, the end of its
// stream or a deadline, and the last pump to finish closes both sockets. Closing a
// socket that still holds unread bytes makes the kernel reset the connection, which
// can destroy the close frame just written to that peer.
type session struct {
	p        *Proxy
	conn     *plugins.Conn
	upstream io.ReadWriteCloser // the server, as the 101 response body

	params   wsframe.DeflateParams
	deflate  bool
	streams  [2]*plugins.Stream // the pipeline of each direction (index: Direction-1)
	toServer *leg               // c2s output
	toClient *leg               // s2c output, set when WriteTo starts

	early []byte // client bytes received with Write before ReadFrom

	gates [2]gate // each direction's messages waiting behind a strict hold (index: Direction-1)

	mu           sync.Mutex
	early2c      []pendingInjection    // s2c injections made before toClient was set
	holds        map[*heldMsg]struct{} // the messages held at a breakpoint
	tornDown     bool                  // finishTeardown began: nothing more is held or released
	releasing    sync.WaitGroup        // releases in progress, which finishTeardown waits for
	client       io.Writer             // the client connection, once WriteTo knows it
	done         bool                  // end has run
	pendingClose []byte                // the close frame for a client leg that did not exist yet at end
	lingerUntil  time.Time             // the read deadline of the lingering close

	ctx    context.Context
	cancel context.CancelFunc

	closeEv  atomic.Pointer[plugins.CloseEvent] // the first close frame seen
	ending   atomic.Bool                        // end has begun
	pumps    atomic.Int32                       // pumps not yet finished: goproxy runs two
	backstop *time.Timer                        // closes the sockets if a pump never comes
	finished chan struct{}                      // closed once the sockets are closed and the close logged
	teardown sync.Once
}

// closeTimeout bounds how long the teardown waits to deliver close frames, and
// how long it lingers for the peers' answers.
const closeTimeout = 2 * time.Second

// legState is where a leg's output stands. Data messages can start only in
// legIdle; a message too large for the hooks is streamed a frame at a time, and
// while it is (legStreaming) new data messages wait in the queue; while one of
// its frames is half written (legMidFrame) nothing else can be written, not even a
// close frame, which then waits for the frame's end. After a close frame
// (legClosed) nothing more may be written.
type legState uint8

const (
	legIdle legState = iota
	legStreaming
	legMidFrame
	legClosed
)

// leg is one output side: a frame writer shared by the pump that relays into it, by
// injections and by the teardown. mu is held only while writing, never while
// reading a source or calling observers, so a stalled peer on one side cannot block
// the other, and an observer may inject or close.
type leg struct {
	mu       sync.Mutex
	state    legState
	idle     sync.Cond // on mu: broadcast when the state leaves legStreaming or legMidFrame, and at the session's end
	w        *wsframe.Writer
	dst      io.Writer
	comp     wsframe.Compression // how the receiver expects this direction compressed
	takeover bool                // ... with context takeover: the sender's window spans messages
	owned    bool                // the proxy compresses this direction itself (see wsframe docs)
	deflater *wsframe.Deflater
	scratch  []byte
	// arrived numbers the data messages that reached this leg, in their order
	// (held and dropped ones too, not injections); sentUpTo is the highest number
	// written, so a released message knows whether a later one overtook it.
	arrived, sentUpTo uint64

	queue         []pendingInjection // legStreaming: injections waiting for the message's end
	deferredClose []byte             // legMidFrame: a close to send at the frame's end
	closeWritten  chan struct{}      // closed once deferredClose went out
}

// pendingInjection is an injection waiting for its leg, with the plaintext it was
// encoded from (nil when it was sent as given).
type pendingInjection struct {
	in    plugins.Injection
	plain []byte
}

// setState moves the leg to state st, waking the writers that wait for the end of a
// streamed message (waitIdle). Called with mu held.
func (l *leg) setState(st legState) {
	l.state = st
	if st == legIdle || st == legClosed {
		l.idle.Broadcast()
	}
}

// waitIdle waits until no streamed message is going out on the leg, for a writer
// other than the pump that streams (a released message). It returns an error when
// the leg is closed or ctx (the session's) ended. Called with mu held.
func (l *leg) waitIdle(ctx context.Context) error {
	for l.state == legStreaming || l.state == legMidFrame {
		if ctx.Err() != nil {
			return errEnded
		}
		l.idle.Wait()
	}
	if l.state == legClosed || ctx.Err() != nil {
		return errLegClosed
	}
	return nil
}

// errLegClosed is the error of a write to a leg whose close handshake has begun.
var errLegClosed = errors.New("proxy: the close handshake has begun")

// writeClose writes a close frame and marks the leg closed. Called with mu held.
func (l *leg) writeClose(payload []byte) {
	l.setState(legClosed)
	if l.w.WriteMessage(wsframe.OpClose, 0, payload, nil) == nil {
		l.w.Flush()
	}
}

// maxQueuedInjections bounds the injections waiting for a streamed message to end.
const maxQueuedInjections = 1024

// newLeg returns the output side writing to dst as sender; comp is how the receiver
// expects the direction compressed, deflate whether permessage-deflate was
// negotiated at all.
func newLeg(dst io.Writer, sender wsframe.Side, comp wsframe.Compression, deflate bool) *leg {
	l := &leg{w: wsframe.NewWriter(dst, sender, 0), dst: dst, comp: comp, takeover: deflate && comp.ContextTakeover}
	l.idle.L = &l.mu
	return l
}

// writeRelayed forwards a relayed data message: modified (payload is the new one,
// compressed when the original was, in frames of sizes when not nil), or unchanged
// (frames and wire are its bytes as they came; payload its inflated form, which goes
// out compressed by the proxy once it owns the direction's compression). A
// modified compressed message under context takeover makes the proxy own it.
// n is the message's number in arrived. Called with mu held.
func (l *leg) writeRelayed(n uint64, op wsframe.Opcode, payload []byte, modified, compressed bool, frames []wsframe.Header, wire []byte, sizes []int) error {
	l.sentUpTo = max(l.sentUpTo, n)
	switch {
	case modified:
		err := l.writeMessage(op, payload, compressed, sizes)
		l.owned = l.owned || (compressed && l.takeover)
		return err
	case compressed && l.owned:
		return l.writeMessage(op, payload, true, nil)
	}
	// Unchanged: the original frames, byte for byte.
	return l.w.WriteFrames(frames, wire)
}

// writeMessage writes a new or modified message, compressing it when the original
// was compressed. Frame sizes are kept when the wire length did not change.
func (l *leg) writeMessage(op wsframe.Opcode, payload []byte, compress bool, sizes []int) error {
	var rsv uint8
	if compress {
		if l.deflater == nil {
			// No back-references into earlier messages, and a window no larger than
			// the receiver negotiated: always decodable by the receiver.
			d, err := wsframe.NewDeflater(wsframe.Compression{WindowBits: l.comp.WindowBits})
			if err != nil {
				return err
			}
			l.deflater = d
		}
		var err error
		l.scratch, err = l.deflater.Deflate(l.scratch[:0], payload)
		if err != nil {
			return err
		}
		payload, rsv = l.scratch, wsframe.RSV1
	}
	err := l.w.WriteMessage(op, rsv, payload, sizes)
	if cap(l.scratch) > 1<<20 {
		l.scratch = nil
	}
	return err
}

// Write receives client bytes goproxy had buffered before it starts the stream copy.
func (s *session) Write(p []byte) (int, error) {
	if len(s.early)+len(p) > maxEarlyBytes {
		s.p.log.Error("relay", "conn", s.conn.ID, "err", errUnexpectedPath)
		s.end(wsframe.CloseInternalError, "proxy relay error", "proxy")
		return 0, errUnexpectedPath
	}
	s.early = append(s.early, p...)
	return len(p), nil
}

// Read is not used: goproxy copies from the session with WriteTo.
func (s *session) Read([]byte) (int, error) {
	s.p.log.Error("relay", "conn", s.conn.ID, "err", errUnexpectedPath)
	s.end(wsframe.CloseInternalError, "proxy relay error", "proxy")
	return 0, errUnexpectedPath
}

// ReadFrom runs the client → server pump.
func (s *session) ReadFrom(client io.Reader) (int64, error) {
	src := client
	if len(s.early) > 0 {
		src = io.MultiReader(bytes.NewReader(s.early), client)
	}
	s.pump(plugins.ClientToServer, src, s.toServer)
	return 0, nil
}

// WriteTo runs the server → client pump.
func (s *session) WriteTo(client io.Writer) (int64, error) {
	s.mu.Lock()
	s.client = client
	s.toClient = newLeg(client, wsframe.Server, s.params.Sender(wsframe.Server), s.deflate)
	done, pending, until := s.done, s.pendingClose, s.lingerUntil
	early := s.early2c
	s.early2c, s.pendingClose = nil, nil
	s.mu.Unlock()
	switch {
	case done:
		// The session ended before goproxy got here (the client → server pump
		// failed at once): the client still gets its close frame, and the pump
		// below only lingers.
		s.toClient.mu.Lock()
		if pending != nil {
			s.toClient.writeClose(pending)
		}
		s.toClient.mu.Unlock()
		setReadDeadline(client, until)
	case len(early) > 0:
		// Injections made before goproxy handed the client over (by an OpenHook,
		// say) go out first.
		s.toClient.mu.Lock()
		recs, err := s.writeInjections(s.toClient, early)
		s.toClient.mu.Unlock()
		s.emitInjections(recs)
		if err != nil {
			s.finish(plugins.ServerToClient, err)
		}
	}
	s.pump(plugins.ServerToClient, s.upstream, s.toClient)
	return 0, nil
}

// Close ends the session (goproxy calls it on the MITM path, before it closes the
// client connection) and waits until the close handshake is done.
func (s *session) Close() error {
	s.end(wsframe.CloseGoingAway, "", "proxy")
	<-s.finished
	return nil
}

// setReadDeadline sets the read deadline of c, when it has one.
func setReadDeadline(c any, t time.Time) {
	if d, ok := c.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(t)
	}
}

// pump relays one direction until its source ends or the session is torn down.
func (s *session) pump(dir plugins.Direction, src io.Reader, out *leg) {
	sender := dir.Sender()
	rules := wsframe.Rules{Sender: sender}
	cfg := wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: s.p.maxMessage}}
	comp := s.params.Sender(sender)
	var inf *wsframe.Inflater
	if s.deflate {
		rules.Extensions = wsframe.RSV1
		inf = wsframe.NewInflater(comp)
	}
	pp := &pumper{s: s, dir: dir, out: out, st: s.stream(dir), r: wsframe.NewReader(src, rules, 0), a: wsframe.NewAssembler(cfg),
		inf: inf, buf: make([]byte, chunkSize)}
	defer s.pumpDone()
	err := pp.run()
	s.finish(dir, err)
	pp.linger(err)
}

// pumpDone counts a pump out; the last one closes the sockets.
func (s *session) pumpDone() {
	if s.pumps.Add(-1) == 0 {
		s.finishTeardown()
	}
}

// finish maps the reason a pump stopped to what both sides are told.
func (s *session) finish(dir plugins.Direction, err error) {
	peer := dir.Sender().String()
	var pe *wsframe.ProtocolError
	var perr *plugins.Error
	switch {
	case s.ctx.Err() != nil:
		// Torn down by the other pump or by the proxy.
		s.end(wsframe.CloseGoingAway, "", "proxy")
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		if ev := s.closeEv.Load(); ev != nil {
			s.end(ev.Code, ev.Reason, ev.By) // the close handshake happened
			return
		}
		s.p.log.Info("peer went away without a close frame", "conn", s.conn.ID, "peer", peer, "err", err)
		s.end(wsframe.CloseGoingAway, peer+" went away", "proxy")
	case errors.As(err, &pe):
		s.p.log.Warn("protocol error; closing the connection", "conn", s.conn.ID, "peer", peer, "code", int(pe.Code), "err", err)
		s.end(pe.Code, err.Error(), "proxy") // AppendClose cuts the reason to fit the frame
	case errors.As(err, &perr):
		s.p.log.Error("hook failed; closing the connection (--hook-errors close)", "conn", s.conn.ID, "plugin", perr.Plugin, "err", perr.Err)
		s.end(wsframe.CloseInternalError, "hook "+perr.Plugin+" failed", "proxy")
	default:
		s.p.log.Warn("relay ended", "conn", s.conn.ID, "dir", dir.String(), "err", err)
		s.end(wsframe.CloseGoingAway, "", "proxy")
	}
}

// end tears the session down once: a close frame with code and reason to each side
// that has not sent or received one yet (1006 is never sent: it means no close
// frame), then the lingering close (see session). It does not wait for the
// lingering: later callers return at once, and the last pump to finish (or the
// backstop timer, if goproxy never runs one) closes the sockets and logs the close.
func (s *session) end(code wsframe.CloseCode, reason, by string) {
	// The first close wins the log: a close frame a peer sent earlier, or this
	// one, not the replies the peers send to it while the sockets close. It is
	// recorded before ending is set, so that whoever sees the session ending (a
	// pump that then finishes the teardown) finds it: Close runs on goproxy's
	// goroutine, and the pumps may finish while it is here.
	s.closeEv.CompareAndSwap(nil, &plugins.CloseEvent{Time: time.Now(), Code: code, Reason: reason, By: by})
	if !s.ending.CompareAndSwap(false, true) {
		return
	}
	s.cancel()
	wire := code
	if !wire.ValidOnWire() {
		wire = wsframe.CloseGoingAway
	}
	payload := wsframe.AppendClose(nil, wire, reason)
	until := time.Now().Add(closeTimeout)
	s.mu.Lock()
	s.done, s.lingerUntil = true, until
	toClient, client := s.toClient, s.client
	if toClient == nil {
		s.pendingClose = payload // for WriteTo
	}
	s.early2c = nil
	s.mu.Unlock()
	var waits []chan struct{}
	for _, l := range []*leg{s.toServer, toClient} {
		if l == nil {
			continue
		}
		// A write blocked on a stuck peer holds the lock; the deadline frees it.
		if c, ok := l.dst.(interface{ SetWriteDeadline(time.Time) error }); ok {
			c.SetWriteDeadline(until)
		}
		l.mu.Lock()
		l.idle.Broadcast() // a release waiting for a streamed message's end gives up
		switch l.state {
		case legClosed:
		case legMidFrame:
			// The streaming pump sends the close when the frame ends.
			l.deferredClose, l.closeWritten = payload, make(chan struct{})
			waits = append(waits, l.closeWritten)
		default:
			l.writeClose(payload)
		}
		l.mu.Unlock()
	}
	deadline := time.NewTimer(closeTimeout)
	for _, w := range waits {
		select {
		case <-w:
		case <-deadline.C:
		}
	}
	deadline.Stop()
	// The pumps now read on until each peer answers with its close frame or the
	// deadline passes.
	setReadDeadline(s.toServer.dst, until)
	setReadDeadline(client, until)
	s.mu.Lock()
	s.backstop = time.AfterFunc(closeTimeout+time.Second, s.finishTeardown)
	s.mu.Unlock()
}

// finishTeardown closes both sockets and logs the close, once.
func (s *session) finishTeardown() {
	s.teardown.Do(func() {
		s.mu.Lock()
		if s.backstop != nil {
			s.backstop.Stop()
		}
		s.mu.Unlock()
		s.closeSockets()
		s.dropHeld()
		s.p.pipeline.Close(context.Background(), s.conn, *s.closeEv.Load(), s.streams[:]...)
		s.p.sessions.Delete(s)
		close(s.finished)
	})
}

func (s *session) closeSockets() {
	s.upstream.Close()
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	if c, ok := client.(io.Closer); ok {
		c.Close()
	}
}

// stream returns the pipeline of direction d.
func (s *session) stream(d plugins.Direction) *plugins.Stream { return s.streams[d-1] }

// leg returns the output of direction d (nil for s2c before goproxy handed the
// client over).
func (s *session) leg(d plugins.Direction) *leg {
	if d == plugins.ClientToServer {
		return s.toServer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.toClient
}

// gate returns the strict-hold gate of direction d.
func (s *session) gate(d plugins.Direction) *gate { return &s.gates[d-1] }

// pumper is the state of one direction's pump.
type pumper struct {
	s         *session
	dir       plugins.Direction
	out       *leg
	st        *plugins.Stream
	r         *wsframe.Reader
	a         *wsframe.Assembler // no Inflater: compressed messages are inflated here, as they arrive
	inf       *wsframe.Inflater  // nil without permessage-deflate in this direction
	closeSeen bool               // the sender sent its close frame

	sizes []int
	now   time.Time // the clock, read once per batch of frames (zero: read it)
	buf   []byte    // a chunk of payload on its way (chunkSize)

	// A compressed message being assembled for the hooks: inflated as its frames
	// arrive into plain, so that a bomb is found out before it takes memory.
	compressing    bool
	plain          chunkBuf
	infDone        bool   // the Inflater reached the end of the message
	pendingInflate []byte // compressed bytes read but not inflated yet when streaming began

	// Streaming a message too large for the hooks.
	streaming    bool // between the message's first and last frame
	streamOp     wsframe.Opcode
	streamLen    int64 // payload bytes so far, inflated when compressed
	streamWire   int64 // compressed: the bytes on the wire so far
	streamFrames int
	streamTime   time.Time
	streamComp   bool       // compressed: inflated as it passes, for the checks and the window
	streamOwn    bool       // ... and the proxy compresses this direction: the plaintext goes out uncompressed
	text         utf8Stream // the UTF-8 check of a streamed text message
	preview      []byte
	inflated     []byte // a chunk of a streamed message's plaintext (chunkSize)
}

// chunkSize is the piece in which payloads are read, inflated and streamed.
const chunkSize = 32 << 10

func (pp *pumper) run() error {
	defer func() {
		if !pp.streaming {
			return
		}
		// The sender stopped mid-message. A half-written frame cannot be followed
		// by anything, not even a close frame: that side only sees the socket close.
		out := pp.out
		out.mu.Lock()
		switch out.state {
		case legMidFrame:
			out.setState(legClosed)
			if out.deferredClose != nil {
				out.deferredClose = nil
				close(out.closeWritten)
			}
		case legStreaming:
			out.setState(legIdle)
		}
		clear(out.queue)
		out.queue = out.queue[:0]
		out.mu.Unlock()
	}()
	for {
		if pp.s.ctx.Err() != nil {
			return errEnded // the session ended: what follows is lingering
		}
		h, err := pp.r.NextFrame()
		if err != nil {
			return err
		}
		if err := pp.frame(h); err != nil {
			return err
		}
		if !pp.r.Ready() {
			// Nothing more to process without blocking: send what is batched.
			pp.now = time.Time{}
			pp.out.mu.Lock()
			err := pp.out.w.Flush()
			pp.out.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
}

// linger reads what the sender still sends after the session ended, and throws it
// away, until its close frame (its side of the close handshake is then done), the
// end of its stream or the deadline that end set: closing a socket with unread
// bytes would reset the connection and could destroy the close frame just written to
// that peer. Frames that break the rules are skipped too (their length is known):
// the peer that broke them may still answer the close properly.
func (pp *pumper) linger(err error) {
	switch {
	case pp.closeSeen, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, os.ErrDeadlineExceeded):
		return
	}
	pp.r.SetRules(wsframe.Rules{Sender: pp.dir.Sender(), Extensions: wsframe.RSV1 | wsframe.RSV2 | wsframe.RSV3, Lenient: true})
	for {
		h, err := pp.r.NextFrame()
		var pe *wsframe.ProtocolError
		switch {
		case err == nil && h.Opcode == wsframe.OpClose:
			return
		case err == nil, errors.As(err, &pe):
		default:
			return // the stream ended, or the deadline passed
		}
	}
}

// frame handles one frame whose header was just read.
func (pp *pumper) frame(h wsframe.Header) error {
	maxHook := pp.s.p.maxHookMessage
	if h.Opcode == wsframe.OpClose {
		// The sender is done, even if this close frame turns out invalid: no answer
		// to ours will come from it.
		pp.closeSeen = true
	}
	switch {
	case pp.streaming && !h.Opcode.IsControl():
		if h.Opcode != wsframe.OpContinuation {
			return fmt.Errorf("%w (%s)", wsframe.ErrExpectedContinue, h.Opcode)
		}
		return pp.streamFrame(h, 0)
	case pp.inf != nil && (h.Opcode.IsData() && h.Compressed() && !pp.a.InMessage() || h.Opcode == wsframe.OpContinuation && pp.compressing):
		return pp.compressedFrame(h)
	case h.Opcode.IsData() && !pp.a.InMessage() && h.Length > uint64(maxHook):
		// A new uncompressed message too large for the hooks: stream it.
		if err := pp.startStream(h.Opcode, nil, nil); err != nil {
			return err
		}
		return pp.streamFrame(h, 0)
	case h.Opcode == wsframe.OpContinuation && pp.a.InMessage():
		// An uncompressed message growing past the hook limit: stream the rest.
		if frames, wire := pp.a.Partial(); int64(len(wire))+int64(h.Length) > maxHook {
			pp.a.Detach()
			if err := pp.startStream(frames[0].Opcode, frames, wire); err != nil {
				return err
			}
			return pp.streamFrame(h, 0)
		}
	}
	if err := pp.a.Begin(h); err != nil {
		return err
	}
	if err := pp.a.ReadPayload(pp.r); err != nil {
		return err
	}
	m, err := pp.a.End()
	if err != nil || m == nil {
		return err
	}
	if m.Opcode.IsControl() {
		return pp.control(m)
	}
	return pp.message(m)
}

// compressedFrame reads a frame of a compressed message a chunk at a time, keeping
// the compressed bytes for byte-identical forwarding and inflating them as they come.
// As soon as either grows past the hook limit the message is streamed instead: a
// compression bomb never costs more than the limit.
func (pp *pumper) compressedFrame(h wsframe.Header) error {
	if err := pp.a.Begin(h); err != nil {
		return err
	}
	if h.Opcode != wsframe.OpContinuation {
		pp.compressing, pp.infDone = true, false
		pp.inf.Begin(pp.s.p.maxMessage)
		pp.plain.reset()
	}
	maxHook := pp.s.p.maxHookMessage
	read := 0
	for pp.r.Remaining() > 0 {
		n, err := pp.r.Read(pp.buf)
		if n > 0 {
			chunk := pp.buf[:n]
			pp.a.Write(chunk)
			read += n
			rest, ierr := pp.inflate(chunk, h.Fin && pp.r.Remaining() == 0)
			if ierr != nil {
				return ierr
			}
			if _, wire := pp.a.Partial(); len(rest) > 0 || int64(pp.plain.n) > maxHook || int64(len(wire)) > maxHook {
				return pp.streamCompressed(h, read, rest)
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	if h.Fin && !pp.infDone {
		if _, err := pp.inflate(nil, true); err != nil {
			return err
		}
	}
	m, err := pp.a.End()
	if err != nil || m == nil {
		return err
	}
	pp.compressing = false
	m.Payload = pp.plain.bytes()
	defer pp.plain.reset()
	if m.Opcode == wsframe.OpText && !utf8.Valid(m.Payload) {
		return wsframe.ErrInvalidUTF8
	}
	return pp.message(m)
}

// inflate inflates src, a piece of the compressed message in progress, onto plain.
// It stops when plain holds more than the hook limit and returns the part of src not
// inflated yet.
func (pp *pumper) inflate(src []byte, final bool) (rest []byte, err error) {
	maxHook := pp.s.p.maxHookMessage
	for {
		dst := pp.plain.room()
		nDst, nSrc, err := pp.inf.InflateChunk(dst, src, final)
		pp.plain.grew(nDst)
		src = src[nSrc:]
		switch {
		case errors.Is(err, io.EOF):
			pp.infDone = true
			return nil, nil // the message is whole
		case err != nil:
			return nil, err
		case nDst < len(dst):
			return nil, nil // src is used up
		case int64(pp.plain.n) > maxHook:
			return src, nil
		}
	}
}

// clock returns the time of the current batch of frames.
func (pp *pumper) clock() time.Time {
	if pp.now.IsZero() {
		pp.now = time.Now()
	}
	return pp.now
}

// control relays a ping, pong or close frame unchanged and logs it.
func (pp *pumper) control(m *wsframe.Message) error {
	if pp.s.ctx.Err() != nil {
		// The session is ending: this is a peer answering the teardown's close
		// frame, which the other side must not get in place of that close.
		pp.closeSeen = pp.closeSeen || m.Opcode == wsframe.OpClose
		return errEnded
	}
	rec, ev, isClose := pp.st.Control(m, pp.clock())
	if isClose {
		pp.s.closeEv.CompareAndSwap(nil, &ev)
		pp.closeSeen = true
	}
	out := pp.out
	out.mu.Lock()
	var err error
	if out.state != legClosed {
		// Between the frames of a streamed message, not inside one: the pump
		// that would write a frame is this one.
		if isClose {
			out.setState(legClosed)
		}
		err = out.w.WriteFrames(m.Frames, m.Wire)
	}
	out.mu.Unlock()
	pp.st.Emit(rec)
	return err
}

// message runs a data message through the pipeline and forwards the verdict. While
// a message held with order=strict waits, the message waits behind it instead (see
// gate).
func (pp *pumper) message(m *wsframe.Message) error {
	s := pp.s
	if s.ctx.Err() != nil {
		return errEnded // the session is ending: nothing more is relayed
	}
	t := pp.clock()
	if queued, err := s.gate(pp.dir).offer(s.ctx, m, t); queued || err != nil {
		// A message held with order=strict waits: this one waits behind it.
		return err
	}
	rec, fx, err := pp.st.Message(s.ctx, m, t)
	if err != nil {
		return err
	}
	err = s.apply(pp.dir, rec, fx, m, &pp.sizes)
	s.p.reclaim.done(int64(len(m.Payload)) + int64(len(m.Wire)))
	return err
}

// apply carries out the chain's verdict on data message m of direction dir, whose
// record is rec: forwards it (changed or not), drops it, or holds it, emits the
// record, and sends the injections the hooks asked for. The pump calls it, and so
// does whoever releases a strict hold, for the messages that waited behind it
// (drain); scratch holds frame sizes between calls (nil: none kept).
func (s *session) apply(dir plugins.Direction, rec *plugins.Record, fx plugins.Effects, m *wsframe.Message, scratch *[]int) error {
	out, st := s.leg(dir), s.stream(dir)
	var err error
	out.mu.Lock()
	out.arrived++
	n := out.arrived
	if fx.Hold == nil && !rec.Dropped {
		// Only another goroutine (a drain) can find a streamed message going out.
		err = out.waitIdle(s.ctx)
	}
	hold := fx.Hold != nil
	switch {
	case err != nil, out.state == legClosed:
		// The close handshake has begun on this side: nothing more may be sent,
		// so nothing is held either (it could never be released).
		err, hold = nil, false
		rec.Held, rec.HoldOrder = false, 0
	case hold:
		// Held at a breakpoint: it leaves the stream, and the receiver never sees
		// its contribution to the sender's window where the sender put it. So, as
		// for a dropped one, the proxy compresses this direction itself from now
		// on, and every later message inflates at the receiver.
		out.owned = out.owned || (m.Compressed && out.takeover)
	case rec.Dropped:
		// The receiver never sees this message's contribution to the sender's
		// window: from now on the proxy compresses this direction itself.
		out.owned = out.owned || (m.Compressed && out.takeover)
	default:
		payload, sizes := m.Payload, []int(nil)
		if rec.Modified {
			payload, sizes = rec.Payload, frameSizes(m, len(rec.Payload), scratch)
		}
		err = out.writeRelayed(n, m.Opcode, payload, rec.Modified, m.Compressed, m.Frames, m.Wire, sizes)
	}
	out.mu.Unlock()
	var hm *heldMsg
	if hold {
		hm = s.newHeld(dir, fx.Hold, m, rec.Seq, n)
	}
	st.Emit(rec)
	if err != nil {
		return err
	}
	if hm != nil {
		s.hold(hm)
	}
	s.injectAll(fx.Inject, m.Opcode)
	return nil
}

// injectAll sends the injections hooks asked for with a message of opcode op (the
// opcode of those that name none).
func (s *session) injectAll(inject []plugins.Injection, op wsframe.Opcode) {
	for _, in := range inject {
		if in.Opcode == 0 {
			in.Opcode = op
		}
		if err := s.Inject(s.ctx, in); err != nil {
			// The hook's message is lost, not the connection.
			s.p.log.Warn("injection not sent", "conn", s.conn.ID, "dir", in.Dir.String(), "err", err)
		}
	}
}

// frameSizes returns the original fragment sizes when an uncompressed payload kept
// its length, so a rewrite does not change the framing; nil (one frame) otherwise.
// scratch, when not nil, is reused for the sizes.
func frameSizes(m *wsframe.Message, n int, scratch *[]int) []int {
	if m.Compressed || n != len(m.Wire) || len(m.Frames) == 1 {
		return nil
	}
	var sizes []int
	if scratch != nil {
		sizes = (*scratch)[:0]
	}
	for _, h := range m.Frames {
		sizes = append(sizes, int(h.Length))
	}
	if scratch != nil {
		*scratch = sizes
	}
	return sizes
}

// startStream begins forwarding an uncompressed message that bypasses the hooks,
// with the frames of it that were already assembled.
func (pp *pumper) startStream(op wsframe.Opcode, frames []wsframe.Header, wire []byte) error {
	pp.beginStream(op, len(frames), wire, false)
	out := pp.out
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.state == legClosed {
		return nil
	}
	out.state = legStreaming
	return out.w.WriteFrames(frames, wire)
}

// beginStream sets up the streaming of a message whose first frames (and plaintext
// so far) are known.
func (pp *pumper) beginStream(op wsframe.Opcode, frames int, plain []byte, compressed bool) {
	pp.streaming, pp.streamComp, pp.streamOwn = true, compressed, false
	pp.streamOp, pp.streamLen, pp.streamFrames = op, int64(len(plain)), frames
	pp.streamWire = 0
	pp.streamTime = pp.clock()
	pp.preview = append(pp.preview[:0], plain[:min(len(plain), plugins.PreviewBytes)]...)
	pp.text.reset()
	pp.text.write(plain) // unmasked, inflated
}

// streamCompressed turns the compressed message being assembled into a streamed one,
// in the middle of frame h, of which read payload bytes have been read; rest is the
// part of them not inflated yet. While the proxy does not compress this direction
// itself, the frames go out as they came; when it does (see wsframe docs: after a
// rewrite under context takeover), the message goes out uncompressed, in frames of
// the plaintext as it is inflated (an uncompressed message leaves the receiver's
// window alone, like an injection).
func (pp *pumper) streamCompressed(h wsframe.Header, read int, rest []byte) error {
	frames, wire := pp.a.Partial()
	pp.a.Detach()
	pp.compressing = false
	complete := len(wire) - read
	pp.beginStream(frames[0].Opcode, len(frames), nil, true)
	pp.streamWire = int64(len(wire))
	for _, ch := range pp.plain.chunks {
		pp.streamLen += int64(len(ch))
		pp.keep(ch)
	}
	out := pp.out
	out.mu.Lock()
	var err error
	if out.state != legClosed {
		pp.streamOwn = out.owned
		if pp.streamOwn {
			out.state = legStreaming
			op := pp.streamOp
			for _, ch := range pp.plain.chunks {
				if err == nil {
					err = out.w.WriteFragment(op, 0, ch, false)
					op = wsframe.OpContinuation
				}
			}
			if op != wsframe.OpContinuation && err == nil {
				err = out.w.WriteFragment(op, 0, nil, false) // nothing inflated yet
			}
		} else {
			out.state = legMidFrame
			if err = out.w.WriteFrames(frames[:len(frames)-1], wire[:complete]); err == nil {
				err = out.w.WriteHeader(h)
			}
			if err == nil && read > 0 {
				part := wire[complete:]
				if h.Masked {
					wsframe.Mask(h.Mask, 0, part) // back to the bytes on the wire (the buffer is ours now)
				}
				err = out.w.WriteRaw(part)
			}
		}
	}
	out.mu.Unlock()
	pp.plain.reset()
	if err != nil {
		return err
	}
	pp.pendingInflate = rest
	return pp.streamFrame(h, read)
}

// errEnded stops a pump that delivered the teardown's close frame.
var errEnded = errors.New("proxy: session ended")

// streamFrame forwards frame h of a streamed message as it arrives, from payload
// offset pos (0: the header is not written yet), holding no more of it than a
// buffer, and the output lock only while writing. A compressed message is inflated
// as it passes, for the UTF-8 check, the preview and the inflate window.
func (pp *pumper) streamFrame(h wsframe.Header, pos int) error {
	if pos == 0 {
		pp.streamFrames++
	}
	if pp.streamComp {
		// The inflated length is held to the limit by the Inflater; this holds the
		// bytes on the wire to it too (empty deflate blocks inflate to nothing).
		pp.streamWire += int64(h.Length) - int64(pos)
		if pp.streamWire > pp.s.p.maxMessage {
			return fmt.Errorf("%w of %d bytes", wsframe.ErrMessageTooBig, pp.s.p.maxMessage)
		}
	} else {
		pp.streamLen += int64(h.Length) - int64(pos)
		if pp.streamLen > pp.s.p.maxMessage {
			return fmt.Errorf("%w of %d bytes", wsframe.ErrMessageTooBig, pp.s.p.maxMessage)
		}
	}
	out := pp.out
	forward := !pp.streamOwn // the frames go out as they came
	if forward && pos == 0 {
		out.mu.Lock()
		var err error
		if out.state != legClosed {
			out.state = legMidFrame
			err = out.w.WriteHeader(h)
		}
		out.mu.Unlock()
		if err != nil {
			return err
		}
	}
	// failed is an error of the payload (it inflates past the limit, or is no
	// deflate data) met in the middle of a forwarded frame: nothing can follow half
	// a frame, not even a close frame, so the rest of the frame is forwarded
	// unlooked-at and the error is returned at its end.
	var failed error
	if rest := pp.pendingInflate; len(rest) > 0 {
		pp.pendingInflate = nil
		failed = pp.streamInflate(rest, h.Fin && pp.r.Remaining() == 0)
		if failed != nil && !forward {
			return failed
		}
	}
	for pp.r.Remaining() > 0 {
		n, rerr := pp.r.ReadRaw(pp.buf)
		if n > 0 {
			chunk := pp.buf[:n]
			if forward {
				out.mu.Lock()
				var err error
				if out.state != legClosed {
					if err = out.w.WriteRaw(chunk); err == nil && pp.r.Buffered() == 0 {
						err = out.w.Flush() // the next read may block: do not sit on data
					}
				}
				out.mu.Unlock()
				if err != nil {
					return err
				}
			}
			// Forwarded (the writer copied or sent the bytes): unmask in place.
			if h.Masked {
				wsframe.Mask(h.Mask, pos, chunk)
			}
			pos += n
			switch {
			case failed != nil:
			case pp.streamComp:
				failed = pp.streamInflate(chunk, h.Fin && pp.r.Remaining() == 0)
				if failed != nil && !forward {
					return failed
				}
			default:
				pp.keep(chunk)
			}
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return rerr
		}
	}
	if failed == nil && pp.streamComp && h.Fin && !pp.infDone {
		failed = pp.streamInflate(nil, true)
	}
	// The frame is whole: anything that waited for its end can go out now.
	out.mu.Lock()
	if out.state == legMidFrame {
		out.state = legStreaming
	}
	if out.deferredClose != nil {
		out.writeClose(out.deferredClose)
		out.deferredClose = nil
		close(out.closeWritten)
		out.mu.Unlock()
		return errEnded
	}
	if failed != nil {
		out.mu.Unlock()
		return failed
	}
	if pp.streamOp == wsframe.OpText && !pp.text.valid(h.Fin) {
		// Like a text message the hooks see, one that is not UTF-8 fails the
		// connection (1007); streamed, it is found out only as it passes, so
		// the frame went out whole first and the close follows it.
		out.mu.Unlock()
		return wsframe.ErrInvalidUTF8
	}
	if !h.Fin {
		out.mu.Unlock()
		return nil
	}
	var err error
	if pp.streamOwn && out.state != legClosed {
		err = out.w.WriteFragment(wsframe.OpContinuation, 0, nil, true) // the end of the plaintext
	}
	out.arrived++
	out.sentUpTo = out.arrived
	// The message is whole: its record goes first (like any message, when it
	// completes: a ping between its frames comes first), then the injections that
	// waited for it, written in the same critical section so that none overtakes
	// another.
	pp.streaming = false
	if out.state == legStreaming {
		out.setState(legIdle)
	}
	seq := pp.st.NextSeq() // before the injections queued behind the message
	queued := out.queue
	out.queue = nil
	injected, ierr := pp.s.writeInjections(out, queued)
	out.mu.Unlock()
	pp.st.Emit(pp.st.Streamed(pp.streamOp, pp.preview, pp.streamLen, pp.streamFrames, pp.streamComp, seq, pp.streamTime))
	pp.s.p.reclaim.done(pp.streamLen)
	pp.s.emitInjections(injected)
	if pp.inflated != nil && !pp.streaming {
		pp.inflated = nil // a streamed message is rare: do not keep its buffer
	}
	return cmp.Or(err, ierr)
}

// streamInflate inflates src, a piece of the compressed message being streamed,
// a chunk at a time: each chunk of plaintext feeds the preview and the UTF-8 check,
// and, when the proxy compresses this direction itself, goes out as a frame.
func (pp *pumper) streamInflate(src []byte, final bool) error {
	if pp.inflated == nil {
		pp.inflated = make([]byte, chunkSize)
	}
	if pp.infDone {
		return nil
	}
	for {
		nDst, nSrc, err := pp.inf.InflateChunk(pp.inflated, src, final)
		src = src[nSrc:]
		if nDst > 0 {
			plain := pp.inflated[:nDst]
			pp.streamLen += int64(nDst)
			pp.keep(plain)
			if pp.streamOwn {
				out := pp.out
				out.mu.Lock()
				var werr error
				if out.state != legClosed {
					if werr = out.w.WriteFragment(wsframe.OpContinuation, 0, plain, false); werr == nil && pp.r.Buffered() == 0 {
						werr = out.w.Flush()
					}
				}
				out.mu.Unlock()
				if werr != nil {
					return werr
				}
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			pp.infDone = true
			return nil
		case err != nil:
			return err
		case nDst < len(pp.inflated):
			return nil // src is used up
		}
	}
}

// keep feeds a piece of a streamed message's payload (unmasked, inflated) to the
// preview and the UTF-8 check.
func (pp *pumper) keep(p []byte) {
	if room := plugins.PreviewBytes - len(pp.preview); room > 0 {
		pp.preview = append(pp.preview, p[:min(len(p), room)]...)
	}
	if pp.streamOp == wsframe.OpText && pp.text.valid(false) {
		pp.text.write(p)
	}
}

// Inject sends a new message in direction in.Dir, uncompressed: an uncompressed
// message leaves the receiver's inflate window alone (RFC 7692 §6), so injection
// never costs the proxy the original compressed bytes. With in.Encode, the chain's
// codecs encode the payload first.
func (s *session) Inject(ctx context.Context, in plugins.Injection) error {
	if in.Opcode != wsframe.OpText && in.Opcode != wsframe.OpBinary {
		return fmt.Errorf("proxy: inject: opcode %s, want text or binary", in.Opcode)
	}
	var plain []byte
	if in.Encode {
		wire, err := s.p.chain.Encode(ctx, s.conn, in.Dir, in.Opcode, in.Payload)
		if err != nil {
			return fmt.Errorf("proxy: inject into conn %s: %w", s.conn.ID, err)
		}
		plain, in.Payload, in.Encode = in.Payload, wire, false
	}
	l := s.toServer
	if in.Dir == plugins.ServerToClient {
		s.mu.Lock()
		l = s.toClient
		if l == nil && !s.done {
			// goproxy has not handed the client over yet: the message waits for it.
			var err error
			if len(s.early2c) >= maxQueuedInjections {
				err = fmt.Errorf("proxy: inject into conn %s: %d injections already wait for the client", s.conn.ID, len(s.early2c))
			} else {
				s.early2c = append(s.early2c, pendingInjection{in: in, plain: plain})
			}
			s.mu.Unlock()
			return err
		}
		s.mu.Unlock()
	}
	if l == nil || s.ctx.Err() != nil {
		return fmt.Errorf("proxy: inject into conn %s: connection closed", s.conn.ID)
	}
	var rec *plugins.Record
	var err error
	l.mu.Lock()
	switch l.state {
	case legClosed:
		err = fmt.Errorf("proxy: inject into conn %s: the close handshake has begun", s.conn.ID)
	case legStreaming, legMidFrame:
		// A streamed message is going out on this leg: a data message cannot start
		// inside it, so this one waits for its end (the pump that streams sends it).
		if len(l.queue) >= maxQueuedInjections {
			err = fmt.Errorf("proxy: inject into conn %s: %d injections already wait for a streamed message", s.conn.ID, len(l.queue))
		} else {
			l.queue = append(l.queue, pendingInjection{in: in, plain: plain})
		}
	default:
		rec, err = s.writeInjection(l, in, plain)
	}
	l.mu.Unlock()
	if rec != nil {
		s.stream(in.Dir).Emit(rec)
	}
	return err
}

// writeInjection writes an injected message, uncompressed, and returns its record,
// with the next sequence number of its direction, so sequence numbers follow the
// wire. Called with l.mu held; the caller emits the record after unlocking.
func (s *session) writeInjection(l *leg, in plugins.Injection, plain []byte) (*plugins.Record, error) {
	err := l.w.WriteMessage(in.Opcode, 0, in.Payload, nil)
	if err == nil {
		err = l.w.Flush()
	}
	if err != nil {
		return nil, err
	}
	st := s.stream(in.Dir)
	return st.Injected(in.Opcode, in.Payload, plain, st.NextSeq(), time.Now()), nil
}

// writeInjections sends the injections that waited for a streamed message and
// returns their records. Called with l.mu held.
func (s *session) writeInjections(l *leg, queued []pendingInjection) ([]*plugins.Record, error) {
	var recs []*plugins.Record
	for _, p := range queued {
		rec, err := s.writeInjection(l, p.in, p.plain)
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// emitInjections hands injection records to the observers.
func (s *session) emitInjections(recs []*plugins.Record) {
	for _, r := range recs {
		s.stream(r.Dir).Emit(r)
	}
}

// control is the session as hooks see it (plugins.Controller).
type control struct{ s *session }

func (c control) Inject(ctx context.Context, in plugins.Injection) error { return c.s.Inject(ctx, in) }

func (c control) Close(code wsframe.CloseCode, reason string) { c.s.end(code, reason, "proxy") }
