package main

import (
	"fmt"
	"os"
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
