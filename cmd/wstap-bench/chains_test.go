package main

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	_ "github.com/wstap/wstap/plugins/all"
	"github.com/wstap/wstap/plugins/load"
	"github.com/wstap/wstap/wsframe"
)

func TestChainSet(t *testing.T) {
	cs, err := newChainSet()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.msgs) != chainPool {
		t.Fatalf("%d messages, want %d", len(cs.msgs), chainPool)
	}
	if cs.matches < chainPool*2/5 || cs.matches > chainPool*3/5 {
		t.Errorf("%d of %d messages contain %q, want about half", cs.matches, chainPool, chainMatch)
	}
	v := &verifier{aead: cs.aead, raw: make([]byte, chainWire), plain: make([]byte, 0, chainWire)}
	for i, m := range cs.msgs {
		pt, err := v.open(m.wire)
		if err != nil || !bytes.Equal(pt, m.plain) {
			t.Fatalf("message %d: does not decrypt to its plaintext (%v)", i, err)
		}
		if len(m.wire) != chainWire || len(m.want) != chainPlain || bytes.Contains(m.want, []byte(chainMatch)) {
			t.Fatalf("message %d: %d B on the wire, rewritten plaintext %q", i, len(m.wire), m.want)
		}
	}
	if got := cs.expectedRewrites(2*chainPool + 10); got < 2*cs.matches || got > 2*cs.matches+10 {
		t.Errorf("expectedRewrites: %d", got)
	}
	if len(cs.end) == chainWire {
		t.Error("the end message is as long as the others")
	}
}

// TestChains runs each chain of the chains section in process, as wstap builds it
// from the same --hook arguments, on the section's messages.
func TestChains(t *testing.T) {
	cs, err := newChainSet()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range chainEnv() {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	python := "/usr/bin/python3"
	for _, kind := range chainKinds[1:] {
		t.Run(kind, func(t *testing.T) {
			if kind == "exec" {
				if err := exec.Command(python, "-c", "import cryptography.hazmat.primitives.ciphers.aead").Run(); err != nil {
					t.Skipf("%s with the cryptography module: %v", python, err)
				}
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			var elems []plugins.Element
			args := chainHookArgs(kind, "hooks", python)
			for i := 1; i < len(args); i += 2 {
				s, err := plugins.ParseSpec(args[i])
				if err != nil {
					t.Fatal(err)
				}
				e, err := load.Elements([]plugins.Spec{s}, load.Options{Logger: log})
				if err != nil {
					t.Fatal(err)
				}
				elems = append(elems, e...)
			}
			chain, err := plugins.NewChain(plugins.FailClose, log, elems...)
			if err != nil {
				t.Fatal(err)
			}
			defer chain.Close()
			v := &verifier{aead: cs.aead, raw: make([]byte, chainWire), plain: make([]byte, 0, chainWire)}
			run := func(dir plugins.Direction, payload []byte) plugins.Result {
				t.Helper()
				m := &plugins.Message{Dir: dir, Opcode: wsframe.OpText, Payload: payload}
				res, err := chain.Run(context.Background(), m)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			for i, m := range cs.msgs[:64] {
				res := run(plugins.ClientToServer, m.wire)
				if !m.match {
					if res.Action != plugins.Pass || !bytes.Equal(res.Decoded, m.plain) {
						t.Fatalf("message %d: %v, decoded %q; want it passed and decoded", i, res.Action, res.Decoded)
					}
					continue
				}
				if res.Action != plugins.Modify {
					t.Fatalf("message %d (with %q): %v, want modify", i, chainMatch, res.Action)
				}
				pt, err := v.open(res.Payload)
				if err != nil || !bytes.Equal(pt, m.want) {
					t.Fatalf("message %d: rewritten to %q (%v), want %q", i, pt, err, m.want)
				}
				if back := run(plugins.ServerToClient, bytes.Clone(res.Payload)); back.Action != plugins.Pass {
					t.Fatalf("message %d: the echo of the rewritten message: %v, want pass", i, back.Action)
				}
			}
			if logs.Len() > 0 {
				t.Errorf("the chain logged:\n%s", logs.String())
			}
		})
	}
}
