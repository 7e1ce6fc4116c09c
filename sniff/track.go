package sniff

import (
	"encoding/binary"
	"fmt"

	"github.com/wstap/wstap/wsframe"
)

// tracker follows the frame boundaries of the bytes a direction gives its decoder,
// reading only headers. It serves two purposes:
//
//   - a gap that falls inside a frame's payload needs no search: the frame's end,
//     and so the next header, is known;
//   - a header the decoder would reject (and recover from with its own, weaker
//     search) is caught first: the decoder never sees it, and the sniffer's
//     resynchronisation takes over.
//
// Validity is decided by a header's first two bytes (reserved opcode, a control
// frame that is fragmented or too long, continuation sequencing), which is what
// the decoder in lenient mode checks; a header whose first byte ends the bytes at
// hand is held back until the second arrives.
type tracker struct {
	hdr       [wsframe.MaxHeaderSize]byte
	hdrLen    int    // bytes of a header split over two pieces
	remaining uint64 // payload bytes of the current frame still to come
	inFrame   bool   // inside a frame's payload
	inside    bool   // a fragmented data message is in progress
	ctrl      bool   // the current frame is a control frame
}

// check validates the first two bytes of a header for a decoder in lenient mode,
// and applies continuation sequencing.
func (t *tracker) check(b0, b1 byte) error {
	op := wsframe.Opcode(b0 & 0x0F)
	fin := b0&0x80 != 0
	switch {
	case op.IsReserved():
		return fmt.Errorf("%w 0x%X", wsframe.ErrReservedOpcode, uint8(op))
	case op.IsControl() && !fin:
		return fmt.Errorf("%w: %s", wsframe.ErrFragmentedControl, op)
	case op.IsControl() && b1&0x7F > wsframe.MaxControlPayload:
		return fmt.Errorf("%w: %s", wsframe.ErrControlTooLong, op)
	case op == wsframe.OpContinuation && !t.inside:
		return wsframe.ErrUnexpectedContinue
	case op.IsData() && t.inside:
		return fmt.Errorf("%w (%s)", wsframe.ErrExpectedContinue, op)
	}
	return nil
}

// begin starts the frame whose whole header is h.
func (t *tracker) begin(h []byte) {
	op := wsframe.Opcode(h[0] & 0x0F)
	fin := h[0]&0x80 != 0
	if !op.IsControl() {
		t.inside = !fin
	}
	t.ctrl = op.IsControl()
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		n = binary.BigEndian.Uint64(h[2:])
	}
	t.remaining, t.inFrame = n, n > 0
}

// scan follows p and returns how many of its bytes the decoder may take: all of
// them; or up to an invalid header (err); or all but a last byte that starts a
// header (hold: give it again with the next bytes).
func (t *tracker) scan(p []byte) (n int, hold bool, err error) {
	i := 0
	for i < len(p) {
		if t.inFrame {
			k := min(uint64(len(p)-i), t.remaining)
			i += int(k)
			t.remaining -= k
			t.inFrame = t.remaining > 0
			continue
		}
		if t.hdrLen == 0 {
			if i+1 == len(p) {
				return i, true, nil
			}
			if err := t.check(p[i], p[i+1]); err != nil {
				return i, false, err
			}
			hl := wsframe.HeaderLen(p[i], p[i+1])
			if i+hl <= len(p) {
				t.begin(p[i : i+hl])
				i += hl
				continue
			}
			t.hdrLen = copy(t.hdr[:], p[i:])
			return len(p), false, nil
		}
		hl := wsframe.HeaderLen(t.hdr[0], t.hdr[1])
		k := copy(t.hdr[t.hdrLen:hl], p[i:])
		t.hdrLen += k
		i += k
		if t.hdrLen == hl {
			t.hdrLen = 0
			t.begin(t.hdr[:hl])
		}
	}
	return i, false, nil
}
