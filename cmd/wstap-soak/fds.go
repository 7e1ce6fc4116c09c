package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/wstap/wstap/internal/childproc"
)

// openFDs returns how many file descriptors the child has open.
func openFDs(c *childproc.Child) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// settledFDs polls the child's open file descriptors until they are down to
// want or timeout has passed, and returns the last count.
func settledFDs(c *childproc.Child, want int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := openFDs(c)
		if err != nil || n <= want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fdPeak samples the child's open file descriptors every 20 ms until stopped.
type fdPeak struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	max  int
}

func watchFDs(c *childproc.Child) *fdPeak {
	w := &fdPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if n, err := openFDs(c); err == nil {
				w.mu.Lock()
				w.max = max(w.max, n)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// peak returns the largest count seen so far.
func (w *fdPeak) peak() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}

// close stops the sampling.
func (w *fdPeak) close() {
	close(w.stop)
	<-w.done
}
