package sniff

import (
	"slices"
	"time"
)

// streamSink receives one direction of a TCP connection as an ordered byte stream.
type streamSink interface {
	// data delivers the next bytes of the stream. t is the capture time at which
	// they were all there: that of the latest packet among them and the bytes
	// before them since the last gap (the packet that filled the last hole). p is
	// only valid during the call, and the sink may modify it in place.
	data(p []byte, t time.Time)
	// gap reports that the next n bytes of the stream are missing from the
	// capture; t is when the bytes after them arrived.
	gap(n int64, t time.Time)
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
// The stream starts at its SYN. Without one, segments wait (a bounded window, see
// [anchorWindow]) before the stream is anchored at the earliest of them: a capture
// that reorders packets may show the SYN, or the first data segment, after later
// ones. The peer's SYN-ACK also tells where the stream starts ([reassembler.startAt]).
//
// Every connection seen has two, so it is small: the waiting segments are
// allocated only while there are some.
//
// Sequence numbers wrap (RFC 9293 §3.4): they are compared through the sign of
// their 32-bit difference.
type reassembler struct {
	q      *segQueue // segments waiting; nil when none
	next   uint32    // sequence number of the next byte to deliver, once started
	finSeq uint32    // sequence number of the FIN, once finSet
	flags  uint8
}

// reassembler flags.
const (
	rStarted uint8 = 1 << iota // anchored: next is known
	rFromSYN                   // the stream starts at its SYN: byte 0 was seen
	rFinSet
	rDone // the FIN was reached
)

// segQueue holds the segments of a direction that wait, sorted by seq.
type segQueue struct {
	segs  []pendingSeg
	bytes int
}

// pendingSeg is a segment waiting for the bytes before it.
type pendingSeg struct {
	seq     uint32
	data    []byte // a copy
	missing int    // unknown bytes after data (snap length)
	at      time.Time
}

// diff returns a-b as a signed distance in sequence space.
func diff(a, b uint32) int64 { return int64(int32(a - b)) }

func (r *reassembler) is(f uint8) bool { return r.flags&f != 0 }

// pendingBytes returns the bytes of the waiting segments.
func (r *reassembler) pendingBytes() int {
	if r.q == nil {
		return 0
	}
	return r.q.bytes
}

// unanchored reports whether segments wait for the stream's start to be known.
func (r *reassembler) unanchored() bool { return !r.is(rStarted) && r.q != nil }

// add takes one segment that arrived at now, the capture time of its packet.
func (r *reassembler) add(seg *segment, now time.Time, sink streamSink) {
	seq := seg.seq
	if seg.syn {
		seq++ // the SYN occupies one sequence number
		if !r.is(rStarted) {
			r.flags |= rStarted | rFromSYN
			r.next = seq
		}
	}
	if r.is(rDone) {
		return
	}
	size := len(seg.payload) + seg.missing
	if seg.fin && !r.is(rFinSet) {
		r.flags |= rFinSet
		r.finSeq = seq + uint32(size)
	}
	var t time.Time
	switch {
	case r.is(rStarted) && diff(seq, r.next) <= 0:
		r.deliver(seq, seg.payload, seg.missing, now, sink)
		t = now
	case size > 0:
		r.insert(pendingSeg{seq: seq, data: append([]byte(nil), seg.payload...), missing: seg.missing, at: now})
	}
	if r.is(rStarted) {
		r.drain(t, sink)
		r.checkFin(sink)
	}
}

// startAt anchors the stream at seq, the peer's acknowledgment of its SYN, unless
// it is anchored already.
func (r *reassembler) startAt(seq uint32, sink streamSink) {
	if r.is(rStarted) {
		return
	}
	r.flags |= rStarted | rFromSYN
	r.next = seq
	r.drain(time.Time{}, sink)
	r.checkFin(sink)
}

// anchorFirst anchors a stream still waiting for its start at its earliest
// segment, without delivering it.
func (r *reassembler) anchorFirst() {
	if r.unanchored() {
		r.flags |= rStarted
		r.next = r.q.segs[0].seq
	}
}

// ready returns the arrival time of the first waiting segment when the stream
// has reached it.
func (r *reassembler) ready() (time.Time, bool) {
	if r.q == nil || !r.is(rStarted) || diff(r.q.segs[0].seq, r.next) > 0 {
		return time.Time{}, false
	}
	return r.q.segs[0].at, true
}

// deliver passes on the part of a segment at seq that is not delivered yet; the
// segment must not start after r.next. t is when its bytes were all there.
func (r *reassembler) deliver(seq uint32, data []byte, missing int, t time.Time, sink streamSink) {
	skip := -diff(seq, r.next) // bytes already delivered
	if skip < int64(len(data)) {
		p := data[skip:]
		r.next += uint32(len(p))
		sink.data(p, t)
		skip = 0
	} else {
		skip -= int64(len(data))
	}
	if m := int64(missing) - skip; m > 0 {
		r.next += uint32(m)
		sink.gap(m, t)
	}
}

// insert adds a waiting segment in order.
func (r *reassembler) insert(p pendingSeg) {
	if r.q == nil {
		r.q = &segQueue{}
	}
	q := r.q
	i := len(q.segs)
	for i > 0 && diff(q.segs[i-1].seq, p.seq) > 0 {
		i--
	}
	q.segs = slices.Insert(q.segs, i, p)
	q.bytes += len(p.data)
}

// drain delivers the waiting segments that the stream has reached. t is when the
// bytes before them were all there (zero after a gap or at the start): each is
// delivered at the later of t and its own arrival.
func (r *reassembler) drain(t time.Time, sink streamSink) {
	for {
		at, ok := r.ready()
		if !ok {
			return
		}
		t = later(t, at)
		r.drainOne(t, sink)
	}
}

// drainOne delivers the first waiting segment, which the stream has reached, at
// t.
func (r *reassembler) drainOne(t time.Time, sink streamSink) {
	q := r.q
	p := q.segs[0]
	q.segs[0] = pendingSeg{}
	q.segs = q.segs[1:]
	q.bytes -= len(p.data)
	if len(q.segs) == 0 {
		r.q = nil
	}
	r.deliver(p.seq, p.data, p.missing, t, sink)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// flush gives up waiting: the bytes missing before each waiting segment are
// reported as gaps and everything waiting is delivered.
func (r *reassembler) flush(sink streamSink) {
	r.flushBefore(time.Time{}, sink)
}

// flushBefore gives up the holes noticed before cutoff (all of them when cutoff is
// zero): a hole was noticed when the first segment after it arrived. Holes noticed
// later may still be filled by segments that are merely late. A stream still
// waiting for its start starts at its earliest segment.
func (r *reassembler) flushBefore(cutoff time.Time, sink streamSink) {
	for r.q != nil {
		if !cutoff.IsZero() && r.oldest().After(cutoff) {
			break
		}
		first := r.q.segs[0]
		if !r.is(rStarted) {
			r.anchorFirst()
		} else if d := diff(first.seq, r.next); d > 0 {
			r.next = first.seq
			sink.gap(d, first.at)
		}
		r.drain(time.Time{}, sink)
	}
	r.checkFin(sink)
}

// oldest returns when the earliest of the waiting segments arrived.
func (r *reassembler) oldest() time.Time {
	var t time.Time
	if r.q == nil {
		return t
	}
	for i, p := range r.q.segs {
		if i == 0 || p.at.Before(t) {
			t = p.at
		}
	}
	return t
}

func (r *reassembler) checkFin(sink streamSink) {
	if r.is(rFinSet) && r.is(rStarted) && !r.is(rDone) && diff(r.next, r.finSeq) >= 0 {
		r.flags |= rDone
		sink.fin()
	}
}
