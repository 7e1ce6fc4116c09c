//go:build ignore

// A Go-source hook that injects plaintext through the codecs, as the web UI's
// inject does: a client's "knock" (as the codecs before it decoded it) is answered
// with "who is there", encoded for the wire by every codec of the chain.
package main

import (
	"context"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

type knock struct{}

func (knock) Name() string { return "knock" }

func (knock) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if m.Dir != plugins.ClientToServer || string(m.Payload) != "knock" {
		return plugins.Verdict{}, nil
	}
	err := m.Conn.Inject(ctx, plugins.Injection{Dir: plugins.ServerToClient, Opcode: wsframe.OpText,
		Payload: []byte("who is there"), Encode: true})
	return plugins.Verdict{}, err
}

func NewHook() (plugins.Hook, error) { return knock{}, nil }
