package proxy

import (
	"runtime/debug"
	"sync/atomic"
	"time"
)

// reclaimAfter is the size of a message after which the proxy gives memory back to
// the operating system, and reclaimDelay how long it waits first, so that a burst
// of large messages costs one collection.
const (
	reclaimAfter = 4 << 20
	reclaimDelay = 2 * time.Second
)

// reclaimer returns the memory of large messages to the operating system soon after
// they are done with. The buffers are released when a message ends, but the Go
// runtime frees garbage only at its next collection, which an idle proxy does not
// run for minutes (a bomb's memory stayed resident for over a minute); then the
// pages go back to the system only gradually.
type reclaimer struct {
	pending atomic.Bool
}

// done notes that a message of n bytes was handled.
func (r *reclaimer) done(n int64) {
	if n < reclaimAfter || !r.pending.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(reclaimDelay, func() {
		debug.FreeOSMemory()
		r.pending.Store(false)
	})
}
