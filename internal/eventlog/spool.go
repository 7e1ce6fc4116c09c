package eventlog

import (
	"io"
	"sync"
	"time"
)

// bufferSize is the capacity of each of a spool's two buffers, and minRoom the free
// space below which the current one is handed to the writing goroutine before a
// line is formatted: lines are formatted straight into the buffer, so a line that
// does not fit would be formatted into a new allocation, and big writes cost fewer
// syscalls. maxKept bounds the buffer kept after a huge line grew it.
const (
	bufferSize = 1 << 20
	minRoom    = 256 << 10
	maxKept    = 4 * bufferSize
)

// DefaultMaxPending is how many bytes of lines a live writer holds for a slow
// destination before it drops lines.
const DefaultMaxPending = 64 << 20

// Mode says what a writer does when its destination is slower than the events.
type Mode uint8

const (
	// Block makes the caller wait: nothing is lost. For reading captures, where
	// waiting slows the reading down and nothing else.
	Block Mode = iota
	// Live never makes the caller wait (the proxy's relay calls it): lines wait
	// in memory up to a bound, past which they are dropped and counted, and a line
	// says how many when the destination catches up.
	Live
)

// spool is the line-writing machinery of both views: callers format lines into one
// buffer under mu while a second goroutine writes the other buffer to the
// destination, so the write syscalls overlap the formatting and, in Live mode, a
// slow destination never blocks a caller.
type spool struct {
	mu       sync.Mutex
	buf      []byte // lines not yet handed to the writer
	err      error  // first write error
	shut     bool   // Close was called: lines are dropped
	mode     Mode
	max      int   // Live: the most bytes buf may hold
	lost     int64 // Live: lines dropped since the last notice
	lostLine func(b []byte, lines int64) []byte

	interval time.Duration
	full     chan []byte  // buffers to write, to writeLoop
	free     chan written // written buffers, back from writeLoop
	dirty    chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	close    sync.Once
}

// written is a buffer back from writeLoop, with the error writing it.
type written struct {
	buf []byte
	err error
}

// start initialises s to write to w, handing lines over at most interval after they
// were formatted (0: at once). lostLine formats the notice of dropped lines.
func (s *spool) start(w io.Writer, mode Mode, maxPending int, interval time.Duration, lostLine func([]byte, int64) []byte) {
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	s.buf = make([]byte, 0, bufferSize)
	s.mode, s.max, s.interval, s.lostLine = mode, maxPending, interval, lostLine
	s.full = make(chan []byte)
	s.free = make(chan written, 1)
	s.dirty = make(chan struct{}, 1)
	s.done = make(chan struct{})
	s.free <- written{buf: make([]byte, 0, bufferSize)}
	s.wg.Go(func() { s.writeLoop(w) })
	s.wg.Go(s.flusher)
}

// writeLoop writes the buffers handed to it, in order, until full is closed. After
// an error it writes nothing more.
func (s *spool) writeLoop(w io.Writer) {
	var err error
	for b := range s.full {
		if err == nil {
			_, err = w.Write(b)
		}
		s.free <- written{buf: b[:0], err: err}
	}
}

// handOff gives the current buffer to writeLoop and takes the other one. In Block
// mode it waits until that one is written; in Live mode, unless wait, it gives up
// when the writer is busy (the lines stay in the current buffer). With wait, it
// also waits for the buffer just handed off, so everything formatted so far has
// reached the destination. Called with s.mu held.
func (s *spool) handOff(wait bool) {
	if s.err != nil || s.shut {
		return
	}
	if s.lost > 0 {
		// The dropped lines came after those in buf and before any to come.
		s.buf = append(s.lostLine(s.buf, s.lost), '\n')
		s.lost = 0
	}
	if len(s.buf) > 0 {
		var next written
		if s.mode == Live && !wait {
			select {
			case next = <-s.free:
			default:
				return
			}
		} else {
			next = <-s.free
		}
		s.full <- s.buf
		s.buf, s.err = next.buf, next.err
		if cap(s.buf) > maxKept {
			s.buf = make([]byte, 0, bufferSize)
		}
	}
	if wait && s.err == nil {
		last := <-s.free
		s.err = last.err
		if cap(last.buf) > maxKept {
			last.buf = make([]byte, 0, bufferSize)
		}
		s.free <- written{buf: last.buf}
	}
}

// retryInterval is how soon a Live flusher tries again to hand lines over after
// finding the writer busy.
const retryInterval = 10 * time.Millisecond

// flusher hands lines over shortly after they arrive.
func (s *spool) flusher() {
	t := time.NewTimer(time.Hour)
	t.Stop()
	wait := func(d time.Duration) bool {
		t.Reset(d)
		select {
		case <-t.C:
			return true
		case <-s.done:
			t.Stop()
			return false
		}
	}
	for {
		select {
		case <-s.done:
			return
		case <-s.dirty:
		}
		if s.interval > 0 && !wait(s.interval) {
			return
		}
		s.mu.Lock()
		s.handOff(false)
		busy := len(s.buf) > 0 && s.err == nil && !s.shut
		s.mu.Unlock()
		if busy { // Live, and the writer was busy: try again shortly
			if !wait(retryInterval) {
				return
			}
			select {
			case s.dirty <- struct{}{}:
			default:
			}
		}
	}
}

// line appends one line with fill (which runs with s.mu held) and queues a flush.
func (s *spool) line(fill func(b []byte) []byte) {
	s.mu.Lock()
	if cap(s.buf)-len(s.buf) < minRoom {
		s.handOff(false)
	}
	switch {
	case s.err != nil || s.shut:
	case s.mode == Live && len(s.buf) >= s.max:
		s.lost++
	default:
		s.buf = append(fill(s.buf), '\n')
	}
	s.mu.Unlock()
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// Flush writes the buffered lines to the destination and returns the first write
// error, if any.
func (s *spool) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handOff(true)
	return s.err
}

// Close flushes and stops the goroutines; it does not close the destination. Lines
// after Close are dropped. It is safe to call more than once.
func (s *spool) Close() error {
	s.close.Do(func() {
		close(s.done)
		s.mu.Lock()
		s.handOff(true)
		s.shut = true
		close(s.full)
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s.Err()
}

// Err returns the first write error, if any.
func (s *spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
