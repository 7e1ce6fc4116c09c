//go:build ignore

package main

import (
	"bytes"
	"context"

	"github.com/wstap/wstap/plugins"
)

// rev is a codec, but the file only has NewHook: Decode and Encode would never run.
type rev struct{}

func (rev) Name() string { return "rev" }

func (rev) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	return plugins.Verdict{}, nil
}

func (rev) Decode(ctx context.Context, m *plugins.Message) ([]byte, error) {
	return bytes.Clone(m.Payload), nil
}

func (rev) Encode(ctx context.Context, m *plugins.Message, decoded []byte) ([]byte, error) {
	return decoded, nil
}

func NewHook() (plugins.Hook, error) { return rev{}, nil }
