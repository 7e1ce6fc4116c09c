//go:build ignore

package main

import (
	"context"

	"github.com/wstap/wstap/plugins"
)

type counter struct{ n int }

func (*counter) Name() string { return "counter" }

func (*counter) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	return plugins.Verdict{}, nil
}

func (c *counter) OnOpen(ctx context.Context, conn *plugins.Conn) { c.n++ }

func (c *counter) Close() error { return nil }

func NewHook() (plugins.Hook, error) { return &counter{}, nil }
