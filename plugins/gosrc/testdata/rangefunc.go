//go:build ignore

package main

import (
	"context"

	"github.com/wstap/wstap/plugins"
)

type h struct{}

func (h) Name() string { return "h" }

func seq(yield func(int) bool) {
	for i := 0; i < 3 && yield(i); i++ {
	}
}

func (h) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	n := 0
	for i := range seq {
		n += i
	}
	return plugins.Verdict{}, nil
}

func NewHook() (plugins.Hook, error) { return h{}, nil }
