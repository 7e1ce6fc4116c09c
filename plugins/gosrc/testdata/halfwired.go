//go:build ignore

package main

import (
	"context"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

type counter struct{ n int }

func (*counter) Name() string { return "counter" }

func (*counter) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	return plugins.Verdict{}, nil
}

func (c *counter) OnOpen(ctx context.Context, conn *plugins.Conn) { c.n++ }

func (c *counter) OnClose(ctx context.Context, conn *plugins.Conn, code wsframe.CloseCode, reason string) {
	c.n--
}

var the = &counter{}

func NewHook() (plugins.Hook, error) { return the, nil }

func NewLifecycle() (plugins.Lifecycle, error) {
	return plugins.Lifecycle{OnOpen: the.OnOpen}, nil
}
