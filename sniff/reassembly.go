package sniff

import (
	"slices"
	"time"
)

// streamSink receives one direction of a TCP connection as an ordered byte stream.
type streamSink interface {
	// data delivers the next bytes of the stream. p is only valid during the call,
	// and the sink may modify it in place.
	data(p []byte)
	// gap reports that the next n bytes of the stream are missing from the capture.
	gap(n int64)
	// fin reports that the sender closed its direction (FIN) and every byte before
	// it was delivered.
	fin()
}

// reassembler orders the TCP segments of one direction into a byte stream: a
// segment that continues the stream is delivered straight from the packet (no
// copy, the fast path of an in-order capture); earlier bytes (retransmissions,
// overlaps) are trimmed; later ones wait, copied, until the bytes before them arrive
// or until the Sniffer gives up on those bytes (buffer limits, a timeout, the end of
// the connection) and reports them as a gap.
//
// Sequence numbers wrap (RFC 9293 §3.4): they are compared through the sign of
// their 32-bit difference.
type reassembler struct {
	started bool   // next is known
	fromSYN bool   // the stream started at its SYN: byte 0 was seen
	next    uint32 // sequence number of the next byte to deliver
	finSet  bool
	finSeq  uint32 // sequence number of the FIN
	done    bool   // the FIN was reached

	pending      []pendingSeg // out of order, sorted by seq
	pendingBytes int
}

// pendingSeg is an out-of-order segment waiting for the bytes before it.
type pendingSeg struct {
	seq     uint32
	data    []byte // a copy
	missing int    // unknown bytes after data (snap length)
	at      time.Time
}

// diff returns a-b as a signed distance in sequence space.
func diff(a, b uint32) int64 { return int64(int32(a - b)) }

// add takes one segment that arrived at now.
func (r *reassembler) add(seg *segment, now time.Time, sink streamSink) {
	seq := seg.seq
	if seg.syn {
		seq++ // the SYN occupies one sequence number
		if !r.started {
			r.started, r.fromSYN, r.next = true, true, seq
		}
	}
	if !r.started {
		// Capture started mid-connection: the stream starts here.
		r.started, r.next = true, seq
	}
	if r.done {
		return
	}
	size := len(seg.payload) + seg.missing
	if seg.fin && !r.finSet {
		r.finSet, r.finSeq = true, seq+uint32(size)
	}
	if diff(seq, r.next) > 0 {
		if size > 0 {
			r.insert(pendingSeg{seq: seq, data: append([]byte(nil), seg.payload...), missing: seg.missing, at: now})
		}
		return
	}
	r.deliver(seq, seg.payload, seg.missing, sink)
	r.drain(sink)
	r.checkFin(sink)
}

// deliver passes on the part of a segment at seq that is not delivered yet; the
// segment must not start after r.next.
func (r *reassembler) deliver(seq uint32, data []byte, missing int, sink streamSink) {
	skip := -diff(seq, r.next) // bytes already delivered
	if skip < int64(len(data)) {
		p := data[skip:]
		r.next += uint32(len(p))
		sink.data(p)
		skip = 0
	} else {
		skip -= int64(len(data))
	}
	if m := int64(missing) - skip; m > 0 {
		r.next += uint32(m)
		sink.gap(m)
	}
}

// insert adds a pending segment in order.
func (r *reassembler) insert(p pendingSeg) {
	i := len(r.pending)
	for i > 0 && diff(r.pending[i-1].seq, p.seq) > 0 {
		i--
	}
	r.pending = slices.Insert(r.pending, i, p)
	r.pendingBytes += len(p.data)
}

// drain delivers the pending segments that the stream has reached.
func (r *reassembler) drain(sink streamSink) {
	n := 0
	for n < len(r.pending) && diff(r.pending[n].seq, r.next) <= 0 {
		p := r.pending[n]
		r.deliver(p.seq, p.data, p.missing, sink)
		r.pendingBytes -= len(p.data)
		r.pending[n] = pendingSeg{}
		n++
	}
	if n > 0 {
		r.pending = r.pending[:copy(r.pending, r.pending[n:])]
		if len(r.pending) == 0 && cap(r.pending) > 64 {
			r.pending = nil
		}
	}
}

// flush gives up waiting: the bytes missing before each pending segment are
// reported as gaps and everything pending is delivered.
func (r *reassembler) flush(sink streamSink) {
	r.flushBefore(time.Time{}, sink)
}

// flushBefore gives up the holes noticed before cutoff (all of them when cutoff is
// zero): a hole was noticed when the first segment after it arrived. Holes noticed
// later may still be filled by segments that are merely late.
func (r *reassembler) flushBefore(cutoff time.Time, sink streamSink) {
	for len(r.pending) > 0 {
		if !cutoff.IsZero() && r.oldest().After(cutoff) {
			break
		}
		if d := diff(r.pending[0].seq, r.next); d > 0 {
			r.next = r.pending[0].seq
			sink.gap(d)
		}
		r.drain(sink)
	}
	r.checkFin(sink)
}

// oldest returns when the earliest of the pending segments arrived.
func (r *reassembler) oldest() time.Time {
	var t time.Time
	for i, p := range r.pending {
		if i == 0 || p.at.Before(t) {
			t = p.at
		}
	}
	return t
}

func (r *reassembler) checkFin(sink streamSink) {
	if r.finSet && !r.done && diff(r.next, r.finSeq) >= 0 {
		r.done = true
		sink.fin()
	}
}
