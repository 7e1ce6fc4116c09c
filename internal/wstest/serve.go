package wstest

import (
	"context"
	"net"
	"sync"
	"testing"
)

// Serve runs serve (a proxy's or a UI server's Serve method) on a new listener on
// 127.0.0.1 and returns its address and a stop function: stop cancels serve's
// context, waits for it to return, and fails t with name when it returned an
// error. stop may be called more than once; it runs when the test ends anyway, so
// a caller calls it only to stop earlier or in a particular order.
func Serve(t testing.TB, name string, serve func(ctx context.Context, ln net.Listener) error) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s Serve: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}
