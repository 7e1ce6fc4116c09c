package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// previewBytes is how much of a message that bypasses the hooks is kept for the log.
const previewBytes = 4 << 10

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
// tears the connection down (close frames to whoever still listens, both sockets
// closed), which ends the other pump.
type session struct {
	p        *Proxy
	conn     *plugins.Conn
	upstream io.ReadWriteCloser // the server, as the 101 response body

	params   wsframe.DeflateParams
	deflate  bool
	toServer *leg // c2s output
	toClient *leg // s2c output, set when WriteTo starts

	early []byte // client bytes received with Write before ReadFrom

	mu          sync.Mutex
	clientReady chan struct{} // closed when toClient is set (or the session ends)
	client      io.Closer     // the client connection, once known
	done        bool

	ctx    context.Context
	cancel context.CancelFunc

	seq     [2]atomic.Uint64                   // next sequence number per direction
	closeEv atomic.Pointer[plugins.CloseEvent] // the first close frame seen
	endOnce sync.Once
}

// closeTimeout bounds how long the teardown waits to deliver close frames.
const closeTimeout = 2 * time.Second

// writeClose writes a close frame and marks the leg closed. Called with mu held.
func (l *leg) writeClose(payload []byte) {
	l.closed = true
	if l.w.WriteMessage(wsframe.OpClose, 0, payload, nil) == nil {
		l.w.Flush()
	}
}

// leg is one output side: a frame writer shared by the pump that relays into it, by
// injections and by the teardown. mu is held only while writing, never while
// reading a source, so a stalled peer on one side cannot block the other.
type leg struct {
	mu       sync.Mutex
	w        *wsframe.Writer
	dst      io.Writer
	comp     wsframe.Compression // how the receiver expects this direction compressed
	owned    bool                // the proxy compresses this direction itself (see wsframe docs)
	deflater *wsframe.Deflater
	scratch  []byte
	closed   bool // a close frame was written: nothing more may be

	// A message too large for the hooks is streamed frame by frame. While it is in
	// progress no other data message may start (injections wait in queue), and
	// while one of its frames is half written nothing at all may be written (a
	// close from the teardown waits in deferredClose for the frame's end).
	inMessage     bool
	inFrame       bool
	queue         []plugins.Injection
	deferredClose []byte
	closeWritten  chan struct{} // closed once deferredClose went out
}

// maxQueuedInjections bounds the injections waiting for a streamed message to end.
const maxQueuedInjections = 1024

func newLeg(dst io.Writer, sender wsframe.Side, comp wsframe.Compression) *leg {
	return &leg{w: wsframe.NewWriter(dst, sender, 0), dst: dst, comp: comp}
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

func (s *session) leg(d plugins.Direction) *leg {
	if d == plugins.ClientToServer {
		return s.toServer
	}
	<-s.clientReady
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.toClient
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
	if c, ok := client.(io.Closer); ok {
		s.client = c
	}
	if s.done { // the session ended before goproxy got here
		s.mu.Unlock()
		s.closeSockets()
		return 0, nil
	}
	s.toClient = newLeg(client, wsframe.Server, s.params.Sender(wsframe.Server))
	close(s.clientReady)
	s.mu.Unlock()
	s.pump(plugins.ServerToClient, s.upstream, s.toClient)
	return 0, nil
}

// Close ends the session (goproxy calls it on the MITM path).
func (s *session) Close() error {
	s.end(wsframe.CloseGoingAway, "", "proxy")
	return nil
}

// pump relays one direction until its source ends or the session is torn down.
func (s *session) pump(dir plugins.Direction, src io.Reader, out *leg) {
	sender := dir.Sender()
	rules := wsframe.Rules{Sender: sender}
	cfg := wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: s.p.maxMessage}}
	comp := s.params.Sender(sender)
	if s.deflate {
		rules.Extensions = wsframe.RSV1
		cfg.Inflater = wsframe.NewInflater(comp)
	}
	pp := &pumper{s: s, dir: dir, out: out, r: wsframe.NewReader(src, rules, 0), a: wsframe.NewAssembler(cfg), takeover: s.deflate && comp.ContextTakeover}
	err := pp.run()
	s.finish(dir, err)
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
// frame), both sockets closed, the close event logged.
func (s *session) end(code wsframe.CloseCode, reason, by string) {
	s.endOnce.Do(func() {
		// The first close wins the log: a close frame a peer sent earlier, or this
		// one, not the replies the peers send to it while the sockets close.
		s.closeEv.CompareAndSwap(nil, &plugins.CloseEvent{Time: time.Now(), Code: code, Reason: reason, By: by})
		s.cancel()
		wire := code
		if !wire.ValidOnWire() {
			wire = wsframe.CloseGoingAway
		}
		payload := wsframe.AppendClose(nil, wire, reason)
		s.mu.Lock()
		s.done = true
		toClient := s.toClient
		if toClient == nil {
			close(s.clientReady) // wake injections waiting for the client leg
		}
		s.mu.Unlock()
		var waits []chan struct{}
		for _, l := range []*leg{s.toServer, toClient} {
			if l == nil {
				continue
			}
			// A write blocked on a stuck peer holds the lock; the deadline frees it.
			if c, ok := l.dst.(interface{ SetWriteDeadline(time.Time) error }); ok {
				c.SetWriteDeadline(time.Now().Add(closeTimeout))
			}
			l.mu.Lock()
			switch {
			case l.closed:
			case l.inFrame:
				// Mid-frame: the streaming pump sends the close when the frame ends.
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
		s.closeSockets()
		ev := *s.closeEv.Load()
		s.p.chain.Closed(context.Background(), s.conn, ev.Code, ev.Reason)
		s.p.observer.Closed(s.conn, ev)
		s.p.sessions.Delete(s)
	})
}

func (s *session) closeSockets() {
	s.upstream.Close()
	s.mu.Lock()
	if s.client != nil {
		s.client.Close()
	}
	s.mu.Unlock()
}

// pumper is the state of one direction's pump.
type pumper struct {
	s        *session
	dir      plugins.Direction
	out      *leg
	r        *wsframe.Reader
	a        *wsframe.Assembler
	seq      uint64
	takeover bool // the sender compresses with context takeover

	sizes []int

	// Reused per message so the hot path does not allocate: observers and hooks
	// must not keep them (see plugins.Observer).
	rec plugins.Record
	msg plugins.Message
	now time.Time // the clock, read once per batch of frames (zero: read it)

	// Streaming a message too large for the hooks.
	streaming    bool // between the message's first and last frame
	streamOp     wsframe.Opcode
	streamLen    int64
	streamFrames int
	streamTime   time.Time
	text         utf8Stream // the UTF-8 check of a streamed text message
	preview      []byte
	buf          []byte
}

func (pp *pumper) run() error {
	defer func() {
		if !pp.streaming {
			return
		}
		// The sender stopped mid-message. A half-written frame cannot be followed
		// by anything, not even a close frame: that side only sees the socket close.
		out := pp.out
		out.mu.Lock()
		if out.inFrame {
			out.closed = true
			if out.deferredClose != nil {
				out.deferredClose = nil
				close(out.closeWritten)
			}
		}
		out.inMessage, out.inFrame = false, false
		clear(out.queue)
		out.queue = out.queue[:0]
		out.mu.Unlock()
	}()
	for {
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

// frame handles one frame whose header was just read.
func (pp *pumper) frame(h wsframe.Header) error {
	maxHook := pp.s.p.maxHookMessage
	switch {
	case pp.streaming && !h.Opcode.IsControl():
		if h.Opcode != wsframe.OpContinuation {
			return fmt.Errorf("%w (%s)", wsframe.ErrExpectedContinue, h.Opcode)
		}
		return pp.streamFrame(h)
	case h.Opcode.IsData() && !h.Compressed() && !pp.a.InMessage() && h.Length > uint64(maxHook):
		// A new uncompressed message too large for the hooks: stream it.
		if err := pp.startStream(h.Opcode, nil, nil); err != nil {
			return err
		}
		return pp.streamFrame(h)
	case h.Opcode == wsframe.OpContinuation && pp.a.InMessage():
		// An uncompressed message growing past the hook limit: stream the rest.
		// (Compressed ones are assembled up to --max-message: inflating needs the
		// whole message, and the window needs every message.)
		if frames, wire := pp.a.Partial(); !frames[0].Compressed() && int64(len(wire))+int64(h.Length) > maxHook {
			pp.a.Detach()
			if err := pp.startStream(frames[0].Opcode, frames, wire); err != nil {
				return err
			}
			return pp.streamFrame(h)
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

// clock returns the time of the current batch of frames.
func (pp *pumper) clock() time.Time {
	if pp.now.IsZero() {
		pp.now = time.Now()
	}
	return pp.now
}

// control relays a ping, pong or close frame unchanged and logs it.
func (pp *pumper) control(m *wsframe.Message) error {
	now := pp.clock()
	if m.Opcode == wsframe.OpClose {
		code, reason, _ := wsframe.ParseClose(m.Payload)
		pp.s.closeEv.CompareAndSwap(nil, &plugins.CloseEvent{Time: now, Code: code, Reason: reason, By: pp.dir.Sender().String()})
	}
	pp.out.mu.Lock()
	var err error
	if !pp.out.closed {
		pp.out.closed = m.Opcode == wsframe.OpClose
		err = pp.out.w.WriteFrames(m.Frames, m.Wire)
	}
	pp.out.mu.Unlock()
	pp.rec = plugins.Record{Conn: pp.s.conn, Dir: pp.dir, Seq: pp.s.nextSeq(pp.dir), Opcode: m.Opcode, Time: now,
		Payload: m.Payload, Len: int64(len(m.Payload)), Frames: 1}
	pp.s.p.observer.Message(&pp.rec)
	return err
}

// message runs a data message through the chain and forwards the verdict.
func (pp *pumper) message(m *wsframe.Message) error {
	s := pp.s
	now := pp.clock()
	hooked := int64(len(m.Payload)) <= s.p.maxHookMessage
	rec := &pp.rec
	*rec = plugins.Record{Conn: s.conn, Dir: pp.dir, Seq: s.nextSeq(pp.dir), Opcode: m.Opcode, Time: now,
		Payload: m.Payload, Len: int64(len(m.Payload)), Frames: len(m.Frames), Compressed: m.Compressed, Hooked: hooked}
	var res plugins.Result
	if hooked && s.p.chain.Len() > 0 {
		pp.msg = plugins.Message{Conn: s.conn, Dir: pp.dir, Opcode: m.Opcode, Payload: m.Payload, Time: now, Seq: rec.Seq}
		var err error
		if res, err = s.p.chain.Run(s.ctx, &pp.msg); err != nil {
			return err
		}
		rec.Decoded = res.Decoded
	} else if !hooked && len(rec.Payload) > previewBytes {
		rec.Payload, rec.Truncated = textPrefix(m.Opcode, rec.Payload[:previewBytes]), true
	}
	out := pp.out
	out.mu.Lock()
	var err error
	switch {
	case out.closed:
		// The close handshake has begun on this side: nothing more may be sent.
	case res.Action == plugins.Drop:
		rec.Dropped = true
		// The receiver never sees this message's contribution to the sender's
		// window: from now on the proxy compresses this direction itself.
		out.owned = out.owned || (m.Compressed && pp.takeover)
	case res.Action == plugins.Modify:
		rec.Modified, rec.Payload, rec.Len = true, res.Payload, int64(len(res.Payload))
		err = out.writeMessage(m.Opcode, res.Payload, m.Compressed, pp.frameSizes(m, len(res.Payload)))
		out.owned = out.owned || (m.Compressed && pp.takeover)
	case m.Compressed && out.owned:
		err = out.writeMessage(m.Opcode, m.Payload, true, nil)
	default:
		// Unchanged: the original frames, byte for byte.
		err = out.w.WriteFrames(m.Frames, m.Wire)
	}
	out.mu.Unlock()
	s.p.observer.Message(rec)
	if err != nil {
		return err
	}
	for _, in := range res.Inject {
		if in.Opcode == 0 {
			in.Opcode = m.Opcode
		}
		if err := s.Inject(s.ctx, in); err != nil {
			// The hook's message is lost, not the connection.
			s.p.log.Warn("injection not sent", "conn", s.conn.ID, "dir", in.Dir.String(), "err", err)
		}
	}
	return nil
}

// frameSizes returns the original fragment sizes when an uncompressed payload kept
// its length, so a rewrite does not change the framing; nil (one frame) otherwise.
func (pp *pumper) frameSizes(m *wsframe.Message, n int) []int {
	if m.Compressed || n != len(m.Wire) || len(m.Frames) == 1 {
		return nil
	}
	pp.sizes = pp.sizes[:0]
	for _, h := range m.Frames {
		pp.sizes = append(pp.sizes, int(h.Length))
	}
	return pp.sizes
}

// startStream begins forwarding a message that bypasses the hooks, with the frames
// of it that were already assembled.
func (pp *pumper) startStream(op wsframe.Opcode, frames []wsframe.Header, wire []byte) error {
	pp.streaming = true
	pp.streamOp, pp.streamLen, pp.streamFrames = op, int64(len(wire)), len(frames)
	pp.streamTime = pp.clock()
	pp.preview = append(pp.preview[:0], wire[:min(len(wire), previewBytes)]...)
	pp.text.reset()
	pp.text.write(wire) // the assembled part, unmasked
	out := pp.out
	out.mu.Lock()
	defer out.mu.Unlock()
	out.inMessage = true
	if out.closed {
		return nil
	}
	return out.w.WriteFrames(frames, wire)
}

// errEnded stops a pump that delivered the teardown's close frame.
var errEnded = errors.New("proxy: session ended")

// streamFrame forwards one frame of a streamed message as it arrives, holding no
// more of it than a buffer, and the output lock only while writing.
func (pp *pumper) streamFrame(h wsframe.Header) error {
	pp.streamLen += int64(h.Length)
	pp.streamFrames++
	if pp.streamLen > pp.s.p.maxMessage {
		return fmt.Errorf("%w of %d bytes", wsframe.ErrMessageTooBig, pp.s.p.maxMessage)
	}
	out := pp.out
	out.mu.Lock()
	var err error
	if !out.closed {
		out.inFrame = true
		err = out.w.WriteHeader(h)
	}
	out.mu.Unlock()
	if err != nil {
		return err
	}
	if pp.buf == nil {
		pp.buf = make([]byte, 32<<10)
	}
	pos := 0
	for {
		n, rerr := pp.r.ReadRaw(pp.buf)
		if n > 0 {
			if keep := min(n, previewBytes-len(pp.preview)); keep > 0 {
				off := len(pp.preview)
				pp.preview = append(pp.preview, pp.buf[:keep]...)
				if h.Masked {
					wsframe.Mask(h.Mask, pos, pp.preview[off:])
				}
			}
			pos += n
			out.mu.Lock()
			if !out.closed {
				if err = out.w.WriteRaw(pp.buf[:n]); err == nil && pp.r.Buffered() == 0 {
					err = out.w.Flush() // the next read may block: do not sit on data
				}
			}
			out.mu.Unlock()
			if err != nil {
				return err
			}
			if pp.streamOp == wsframe.OpText && pp.text.valid(false) {
				// Forwarded (the writer copied or sent the bytes): unmask in place.
				if h.Masked {
					wsframe.Mask(h.Mask, pos-n, pp.buf[:n])
				}
				pp.text.write(pp.buf[:n])
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	// The frame is whole: anything that waited for its end can go out now.
	out.mu.Lock()
	out.inFrame = false
	if out.deferredClose != nil {
		out.writeClose(out.deferredClose)
		out.deferredClose = nil
		close(out.closeWritten)
		out.mu.Unlock()
		return errEnded
	}
	if pp.streamOp == wsframe.OpText && !pp.text.valid(h.Fin) {
		// Like a text message the hooks see, one that is not UTF-8 fails the
		// connection (1007); streamed, it is found out only as it passes, so
		// the frame went out whole first and the close follows it.
		out.mu.Unlock()
		return wsframe.ErrInvalidUTF8
	}
	if h.Fin {
		// Log the message (like any message, when it completes: a ping between its
		// frames comes first), then send the injections that waited for it, in the
		// same critical section so that none overtakes another.
		pp.streaming, out.inMessage = false, false
		pp.rec = plugins.Record{Conn: pp.s.conn, Dir: pp.dir, Seq: pp.s.nextSeq(pp.dir), Opcode: pp.streamOp, Time: pp.streamTime,
			Payload: textPrefix(pp.streamOp, pp.preview), Len: pp.streamLen, Truncated: pp.streamLen > int64(len(pp.preview)), Frames: pp.streamFrames}
		pp.s.p.observer.Message(&pp.rec)
		err = pp.s.drainQueue(out)
	}
	out.mu.Unlock()
	return err
}

// textPrefix cuts a text preview back to a rune boundary, so a preview that ends in
// the middle of a character is still logged as text.
func textPrefix(op wsframe.Opcode, p []byte) []byte {
	if op != wsframe.OpText {
		return p
	}
	for i := 0; i < utf8.UTFMax && len(p) > 0 && !utf8.Valid(p); i++ {
		p = p[:len(p)-1]
	}
	return p
}

// Inject sends a new message in direction in.Dir, uncompressed: an uncompressed
// message leaves the receiver's inflate window alone (RFC 7692 §6), so injection
// never costs the proxy the original compressed bytes.
func (s *session) Inject(ctx context.Context, in plugins.Injection) error {
	if in.Opcode != wsframe.OpText && in.Opcode != wsframe.OpBinary {
		return fmt.Errorf("proxy: inject: opcode %s, want text or binary", in.Opcode)
	}
	l := s.leg(in.Dir)
	if l == nil || s.ctx.Err() != nil {
		return fmt.Errorf("proxy: inject into conn %s: connection closed", s.conn.ID)
	}
	l.mu.Lock()
	var err error
	switch {
	case l.closed:
		err = fmt.Errorf("proxy: inject into conn %s: the close handshake has begun", s.conn.ID)
	case l.inMessage:
		// A streamed message is going out on this leg: a data message cannot start
		// inside it, so this one waits for its end (the pump that streams sends it).
		if len(l.queue) >= maxQueuedInjections {
			err = fmt.Errorf("proxy: inject into conn %s: %d injections already wait for a streamed message", s.conn.ID, len(l.queue))
		} else {
			l.queue = append(l.queue, in)
		}
	default:
		err = s.writeInjection(l, in)
	}
	l.mu.Unlock()
	return err
}

// writeInjection writes an injected message, uncompressed, and logs it with the
// next sequence number of its direction, so sequence numbers follow the wire.
// Called with l.mu held.
func (s *session) writeInjection(l *leg, in plugins.Injection) error {
	err := l.w.WriteMessage(in.Opcode, 0, in.Payload, nil)
	if err == nil {
		err = l.w.Flush()
	}
	if err == nil {
		s.p.observer.Message(&plugins.Record{Conn: s.conn, Dir: in.Dir, Seq: s.nextSeq(in.Dir), Opcode: in.Opcode, Time: time.Now(),
			Payload: in.Payload, Len: int64(len(in.Payload)), Frames: 1, Injected: true})
	}
	return err
}

// drainQueue sends the injections that waited for a streamed message. Called with
// l.mu held.
func (s *session) drainQueue(l *leg) error {
	for i, in := range l.queue {
		if err := s.writeInjection(l, in); err != nil {
			clear(l.queue[i:])
			l.queue = l.queue[:0]
			return err
		}
	}
	clear(l.queue)
	l.queue = l.queue[:0]
	return nil
}

// control is the session as hooks see it (plugins.Controller).
type control struct{ s *session }

func (c control) Inject(ctx context.Context, in plugins.Injection) error { return c.s.Inject(ctx, in) }

func (c control) Close(code wsframe.CloseCode, reason string) { c.s.end(code, reason, "proxy") }

func (s *session) nextSeq(d plugins.Direction) uint64 {
	return s.seq[d-1].Add(1) - 1
}
