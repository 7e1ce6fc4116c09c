//go:build ignore

package main

import (
	"context"

	"github.com/wstap/wstap/plugins"
)

type h struct{}

func (h) Name() string { return "h" }

// go/types cannot tell the type of an imported constant (it checks without the
// imports), so yaegi meets this range and panics with "nil type".
func (h) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	for i := range plugins.PreviewBytes {
		_ = i
	}
	return plugins.Verdict{}, nil
}

func NewHook() (plugins.Hook, error) { return h{}, nil }
