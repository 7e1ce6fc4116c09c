package exechook_test

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/exechook"
	"github.com/wstap/wstap/wsframe"
)

const python = "/usr/bin/python3"

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(python); err != nil {
		t.Fatalf("%s is needed (make test installs it): %v", python, err)
	}
}

func msg(dir plugins.Direction, payload string) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1"}, Dir: dir, Opcode: wsframe.OpText, Payload: []byte(payload)}
}

func start(t *testing.T, mode string, logs *bytes.Buffer) any {
	t.Helper()
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	p, err := exechook.Start(python+" testdata/fake.py "+mode, log)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecHook(t *testing.T) {
	defer goleak.VerifyNone(t)
	needPython(t)
	h := start(t, "upper", nil).(*exechook.Hook)
	defer h.Close()
	if h.Name() != "fake-upper" {
		t.Fatalf("name %q", h.Name())
	}
	var wg sync.WaitGroup
	for i := range 20 { // concurrent calls are matched to their answers by id
		wg.Go(func() {
			in := strings.Repeat("x", i)
			v, err := h.OnMessage(context.Background(), msg(plugins.ClientToServer, in))
			if err != nil || v.Action != plugins.Modify || string(v.Payload) != strings.ToUpper(in) ||
				len(v.Inject) != 1 || v.Inject[0].Dir != plugins.ServerToClient || string(v.Inject[0].Payload) != "ack" || v.Inject[0].Opcode != wsframe.OpText {
				t.Errorf("verdict %+v, %v", v, err)
			}
		})
	}
	wg.Wait()
	if v, err := h.OnMessage(context.Background(), msg(plugins.ServerToClient, "s")); err != nil || v.Action != plugins.Pass {
		t.Fatalf("s2c verdict %+v, %v", v, err)
	}
}

func TestExecCodec(t *testing.T) {
	defer goleak.VerifyNone(t)
	needPython(t)
	c := start(t, "rev", nil).(*exechook.Codec)
	defer c.Close()
	m := msg(plugins.ClientToServer, "olleh")
	d, err := c.Decode(context.Background(), m)
	if err != nil || string(d) != "hello" {
		t.Fatalf("Decode = %q, %v", d, err)
	}
	e, err := c.Encode(context.Background(), m, []byte("howdy"))
	if err != nil || string(e) != "ydwoh" {
		t.Fatalf("Encode = %q, %v", e, err)
	}
	if _, err := c.Decode(context.Background(), msg(plugins.ClientToServer, "!x")); err == nil || !strings.Contains(err.Error(), "not reversed text") {
		t.Fatalf("Decode of foreign input: %v", err)
	}
}

// TestExecFailures checks that a process that dies, hangs or answers garbage costs a
// call at most the timeout, is logged, and is restarted.
func TestExecFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	needPython(t)
	old, oldHello := exechook.Timeout, exechook.HelloTimeout
	exechook.Timeout = 500 * time.Millisecond // the hanging process fails its call after this
	defer func() { exechook.Timeout, exechook.HelloTimeout = old, oldHello }()
	for _, mode := range []string{"crash", "hang", "garbage"} {
		t.Run(mode, func(t *testing.T) {
			var logs bytes.Buffer
			h := start(t, mode, &logs).(*exechook.Hook)
			defer h.Close()
			for i := range 2 {
				begin := time.Now()
				_, err := h.OnMessage(context.Background(), msg(plugins.ClientToServer, "x"))
				if err == nil {
					t.Fatalf("call %d succeeded", i)
				}
				// Bounded by the timeouts (a restart's hello and the call), never hung.
				if d, limit := time.Since(begin), exechook.HelloTimeout+2*exechook.Timeout; d > limit {
					t.Fatalf("call %d took %v, more than the %v the timeouts allow", i, d, limit)
				}
			}
			if !strings.Contains(logs.String(), "hook process failed") || !strings.Contains(logs.String(), "hook process restarted") {
				t.Fatalf("logs do not show the failure and the restart:\n%s", logs.String())
			}
		})
	}
	exechook.HelloTimeout = 500 * time.Millisecond
	if _, err := exechook.Start(python+" testdata/fake.py slowhello", nil); err == nil || !strings.Contains(err.Error(), "hello") {
		t.Fatalf("a process without hello: %v", err)
	}
	if _, err := exechook.Start("/nonexistent/hook", nil); err == nil {
		t.Fatal("a missing command started")
	}
}
