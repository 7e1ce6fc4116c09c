//go:build ignore

package main

import (
	"bytes"
	"context"

	"github.com/wstap/wstap/plugins"
)

type upper struct{}

func (upper) Name() string { return "upper" }

func (upper) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if m.Dir != plugins.ClientToServer {
		return plugins.Verdict{}, nil
	}
	return plugins.Verdict{Action: plugins.Modify, Payload: bytes.ToUpper(m.Payload)}, nil
}

func NewHook() (plugins.Hook, error) { return upper{}, nil }
