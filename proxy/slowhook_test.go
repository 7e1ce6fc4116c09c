package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/proxy"
)

// TestRelaySlowHookDelaysOnlyItsConnection blocks a hook on one connection's message
// and checks that another connection through the same proxy keeps flowing, and
// that the held message goes on, in order, once the hook lets go.
func TestRelaySlowHookDelaysOnlyItsConnection(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	slow := plugins.HookFunc{HookName: "slow", Func: func(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
		if m.Dir == plugins.ClientToServer && string(m.Payload) == "hold me" {
			blocked <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return plugins.Verdict{}, nil
	}}
	tp := startProxy(t, proxy.Config{}, plugins.FailOpen, slow)
	echo := wsrStartEcho(t, false)
	held, _, err := tp.Dialer().Dial(echo.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	other, _, err := tp.Dialer().Dial(echo.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	wsrEcho(t, held, "before")
	if err := held.WriteMessage(1, []byte("hold me")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook never saw the message")
	}
	// While the hook holds the first connection's message, the second connection
	// works normally.
	start := time.Now()
	for range 20 {
		wsrEcho(t, other, "meanwhile")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the other connection took %v for 20 echoes while a hook was blocked", d)
	}
	close(release)
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, got, err := held.ReadMessage(); err != nil || string(got) != "hold me" {
		t.Fatalf("after the hook let go: %q, %v", got, err)
	}
	wsrEcho(t, held, "after")
}
