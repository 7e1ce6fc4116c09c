package wsframe

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Default limits of an [Assembler].
const (
	DefaultMaxMessageSize = 64 << 20
	DefaultMaxFragments   = 1 << 16
)

// keepBufferSize is the largest message buffer an Assembler or Inflater keeps for
// reuse. A larger one is let go of as soon as its message is complete, so one big
// message does not pin its memory for the life of an idle connection; the small ones
// kept make the steady state allocation-free.
const keepBufferSize = 256 << 10

// keepFrames is the largest number of frame headers an Assembler keeps room for
// between messages, for the same reason.
const keepFrames = 4096

// growStep is how far a message buffer may grow ahead of the payload bytes that
// arrived: a buffer grows with what is received (at most doubling, and at least by
// growStep), never to the length a header merely announced.
const growStep = 64 << 10

// Limits bound what an [Assembler] accepts. They are checked against the lengths in
// frame headers before any payload is read. Within them, buffers grow with the
// payload bytes that actually arrive, so a peer cannot make the assembler allocate
// what it merely announced.
type Limits struct {
	// MaxFrameSize is the largest frame payload; 0 means MaxMessageSize.
	MaxFrameSize int64
	// MaxMessageSize is the largest message, both as carried on the wire and
	// inflated; 0 means DefaultMaxMessageSize.
	MaxMessageSize int64
	// MaxFragments is the largest number of frames in one message; 0 means
	// DefaultMaxFragments.
	MaxFragments int
}

func (l Limits) withDefaults() Limits {
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.MaxFrameSize <= 0 || l.MaxFrameSize > l.MaxMessageSize {
		l.MaxFrameSize = l.MaxMessageSize
	}
	if l.MaxFragments <= 0 {
		l.MaxFragments = DefaultMaxFragments
	}
	return l
}

// Message is a whole WebSocket message, or a control frame.
//
// The slices belong to the [Assembler] that returned the message and stay valid until
// it starts assembling the next message of the same kind (data or control): a control
// message delivered in the middle of a fragmented data message leaves the previous
// data message intact. Copy what you keep longer.
//
// A data message whose buffers grew beyond a few hundred KiB is handed over instead:
// the Assembler lets go of those buffers when it returns the message and never reuses
// them, so their memory is freed as soon as the caller drops the message (and its
// slices) rather than when the connection next sends something.
type Message struct {
	Opcode Opcode

	// Payload is the application data: unmasked and, when Compressed, inflated.
	Payload []byte

	// Compressed reports that RSV1 was set on the first frame of a data message (RFC
	// 7692 §6); it is never set for control frames. When the Assembler has no
	// Inflater (lenient mode without a negotiated extension, or a caller that
	// inflates as the frames arrive), Payload is the still-compressed Wire, and a
	// text message's UTF-8 is the caller's to check.
	Compressed bool

	// Wire is the payload as carried on the wire, unmasked: the same bytes as Payload
	// unless Compressed.
	Wire []byte

	// Frames are the headers of the frames the message arrived in, in order, with
	// their masking keys and lengths: [Writer.WriteFrames] with Frames and Wire
	// reproduces the original bytes.
	Frames []Header
}

// AssemblerConfig configures an [Assembler].
type AssemblerConfig struct {
	Limits

	// Inflater inflates compressed messages: set it when permessage-deflate was
	// negotiated for this direction. Nil means no extension.
	Inflater *Inflater

	// Lenient skips the checks a passive observer cannot act on: UTF-8 validity of
	// text messages and close reasons, close code validity, and RSV1 on control and
	// continuation frames.
	Lenient bool
}

// Assembler turns the frames of one direction of a connection into messages (RFC
// 6455 §5.4): it joins fragments, delivers control frames that arrive between
// fragments as messages of their own, inflates compressed messages, and validates
// what the RFCs require. Use [Assembler.ReadMessage] with a [Reader], or push frames
// with Begin, Write and End.
type Assembler struct {
	cfg AssemblerConfig

	data     Message
	inflated []byte
	inData   bool // a fragmented data message is in progress

	ctrl       Message
	ctrlBuf    [MaxControlPayload]byte
	ctrlFrames [1]Header

	cur  *Message
	need uint64 // payload bytes of the current frame still to come
	fin  bool
}

// NewAssembler returns an Assembler with cfg, filling in default limits.
func NewAssembler(cfg AssemblerConfig) *Assembler {
	cfg.Limits = cfg.Limits.withDefaults()
	return &Assembler{cfg: cfg}
}

// InMessage reports whether a fragmented data message has started and not ended.
func (a *Assembler) InMessage() bool { return a.inData }

// ReadMessage reads frames from r until a message is complete and returns it. The
// payload goes straight from r into the message buffer.
func (a *Assembler) ReadMessage(r *Reader) (*Message, error) {
	for {
		h, err := r.NextFrame()
		if errors.Is(err, io.EOF) && a.inData {
			return nil, fmt.Errorf("wsframe: stream ended inside a fragmented message: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return nil, err
		}
		if err := a.Begin(h); err != nil {
			return nil, err
		}
		if err := a.ReadPayload(r); err != nil {
			return nil, err
		}
		if m, err := a.End(); m != nil || err != nil {
			return m, err
		}
	}
}

// Begin starts a frame whose header the caller has read (and checked with
// [Rules.Check]). It enforces the sequencing rules of RFC 6455 §5.4 and the limits,
// before anything is allocated for the payload.
func (a *Assembler) Begin(h Header) error {
	if a.need != 0 {
		return fmt.Errorf("wsframe: Begin with %d payload bytes of the previous frame missing", a.need)
	}
	switch {
	case h.Opcode.IsControl():
		if h.Length > MaxControlPayload {
			return fmt.Errorf("%w: %s of %d bytes", ErrControlTooLong, h.Opcode, h.Length)
		}
		if !a.cfg.Lenient && h.Compressed() {
			return ErrControlCompressed
		}
		a.ctrlFrames[0] = h
		a.ctrl = Message{Opcode: h.Opcode, Wire: a.ctrlBuf[:0], Frames: a.ctrlFrames[:1]}
		a.cur = &a.ctrl
	case h.Opcode == OpContinuation:
		if !a.inData {
			return ErrUnexpectedContinue
		}
		if !a.cfg.Lenient && h.Compressed() {
			return ErrContinuationRSV1
		}
		if len(a.data.Frames) >= a.cfg.MaxFragments {
			return fmt.Errorf("%w of %d", ErrTooManyFrames, a.cfg.MaxFragments)
		}
		if h.Length > uint64(a.cfg.MaxMessageSize-int64(len(a.data.Wire))) {
			return fmt.Errorf("%w of %d bytes", ErrMessageTooBig, a.cfg.MaxMessageSize)
		}
		a.data.Frames = append(a.data.Frames, h)
		a.cur = &a.data
	default:
		if a.inData {
			return fmt.Errorf("%w (%s)", ErrExpectedContinue, h.Opcode)
		}
		if h.Opcode.IsReserved() {
			return fmt.Errorf("%w 0x%X", ErrReservedOpcode, uint8(h.Opcode))
		}
		if h.Length > uint64(a.cfg.MaxMessageSize) {
			return fmt.Errorf("%w of %d bytes", ErrMessageTooBig, a.cfg.MaxMessageSize)
		}
		a.release() // in case the last message failed
		a.data = Message{Opcode: h.Opcode, Compressed: h.Compressed(), Wire: a.data.Wire[:0], Frames: append(a.data.Frames[:0], h)}
		a.cur, a.inData = &a.data, true
	}
	if h.Length > uint64(a.cfg.MaxFrameSize) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooBig, h.Length, a.cfg.MaxFrameSize)
	}
	a.need, a.fin = h.Length, h.Fin
	return nil
}

// ReadPayload reads the whole payload of the frame begun with Begin from r (a
// [Reader] positioned at that frame) straight into the message buffer, which grows
// with the bytes as they arrive.
func (a *Assembler) ReadPayload(r io.Reader) error {
	m := a.cur
	for a.need > 0 {
		if len(m.Wire) == cap(m.Wire) {
			m.Wire = grow(m.Wire, a.need, a.fin)
		}
		n := len(m.Wire)
		room := m.Wire[n:min(uint64(cap(m.Wire)), uint64(n)+a.need)]
		k, err := r.Read(room)
		m.Wire = m.Wire[:n+k]
		a.need -= uint64(k)
		if err != nil && a.need > 0 {
			return unexpected(err)
		}
	}
	return nil
}

// grow returns b with room for more of a frame's payload, of which need bytes are
// still to come: room for as much again as b holds (so a long message is copied
// only a few times), or for the rest of the frame up to growStep if that is more.
// When last (the frame ends the message), it never makes room beyond the frame.
func grow(b []byte, need uint64, last bool) []byte {
	more := max(uint64(len(b)), min(need, growStep))
	if last {
		more = min(more, need)
	}
	nb := make([]byte, len(b), uint64(len(b))+more)
	copy(nb, b)
	return nb
}

// Partial returns the headers and wire payload of the data message in progress, or
// nil when there is none. The slices belong to the Assembler.
func (a *Assembler) Partial() (frames []Header, wire []byte) {
	if !a.inData {
		return nil, nil
	}
	return a.data.Frames, a.data.Wire
}

// Detach gives up the data message in progress and returns the headers and wire
// payload of the frames it received so far. The caller takes over the rest of that
// message: its continuation frames must not be passed to Begin, which would reject
// them, and when Detach is called in the middle of a frame (between Begin and End,
// after some of its payload was written), the rest of that frame's payload too. A
// relay uses it to stream a message that turned out too large to hold. The slices
// stay valid as a [Message]'s do; large ones are handed over to the caller.
func (a *Assembler) Detach() (frames []Header, wire []byte) {
	if !a.inData {
		return nil, nil
	}
	a.inData = false
	if a.cur == &a.data {
		a.cur, a.need = nil, 0
	}
	frames, wire = a.data.Frames, a.data.Wire
	a.release()
	return frames, wire
}

// release lets go of the data message's buffers that grew too large to keep. The
// caller has made sure nothing of the Assembler's still points into them.
func (a *Assembler) release() {
	if cap(a.data.Wire) > keepBufferSize {
		a.data.Wire = nil
	}
	if cap(a.data.Frames) > keepFrames {
		a.data.Frames = nil
	}
	if cap(a.inflated) > keepBufferSize {
		a.inflated = nil
	}
	a.data.Payload = nil
}

// handOver returns the completed data message m (which is &a.data) for the caller.
// When some of its buffers are too large to keep, the caller gets a Message of its
// own holding them and the Assembler lets go of them; otherwise m itself.
func (a *Assembler) handOver(m *Message) *Message {
	if cap(m.Wire) <= keepBufferSize && cap(m.Frames) <= keepFrames && cap(a.inflated) <= keepBufferSize {
		return m
	}
	out := new(Message)
	*out = *m
	a.release()
	return out
}

// Write appends unmasked payload bytes of the current frame. It fails if p holds more
// than the header announced.
func (a *Assembler) Write(p []byte) (int, error) {
	if uint64(len(p)) > a.need {
		return 0, fmt.Errorf("wsframe: %d payload bytes written, frame has %d left", len(p), a.need)
	}
	a.cur.Wire = append(a.cur.Wire, p...)
	a.need -= uint64(len(p))
	return len(p), nil
}

// End finishes the current frame. It returns the message when the frame completed
// one (a control frame, or the final frame of a data message), and nil while a
// fragmented message goes on.
func (a *Assembler) End() (*Message, error) {
	if a.need != 0 {
		return nil, fmt.Errorf("wsframe: frame ended with %d payload bytes missing: %w", a.need, io.ErrUnexpectedEOF)
	}
	m := a.cur
	a.cur = nil
	if m == &a.ctrl {
		m.Payload = m.Wire
		if m.Opcode == OpClose && !a.cfg.Lenient {
			if _, _, err := ParseClose(m.Payload); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	if !a.fin {
		return nil, nil
	}
	a.inData = false
	m.Payload = m.Wire
	if m.Compressed && a.cfg.Inflater != nil {
		out, err := a.cfg.Inflater.Inflate(a.inflated[:0], m.Wire, a.cfg.MaxMessageSize)
		a.inflated = out
		if err != nil {
			a.release()
			return nil, err
		}
		m.Payload = out
	}
	// A compressed message with no Inflater is inflated by the caller, which checks
	// what it inflates (the compressed bytes are not text).
	if m.Opcode == OpText && !a.cfg.Lenient && !(m.Compressed && a.cfg.Inflater == nil) && !utf8.Valid(m.Payload) {
		a.release()
		return nil, ErrInvalidUTF8
	}
	return a.handOver(m), nil
}
