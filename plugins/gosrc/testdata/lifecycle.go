//go:build ignore

package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// tracker is a hook whose optional methods reach wstap through NewLifecycle.
type tracker struct{ conns atomic.Int64 }

func (*tracker) Name() string { return "tracker" }

func (*tracker) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	return plugins.Verdict{}, nil
}

func (*tracker) OnHandshake(ctx context.Context, h *plugins.Handshake) error {
	if h.Request.Get("X-Refuse") != "" {
		return errors.New("refused by tracker")
	}
	h.Request.Set("X-Tracker", "seen")
	return nil
}

func (t *tracker) OnOpen(ctx context.Context, c *plugins.Conn) {
	t.conns.Add(1)
	c.Inject(ctx, plugins.Injection{Dir: plugins.ServerToClient, Payload: []byte("opened " + c.ID)})
}

func (*tracker) OnClose(ctx context.Context, c *plugins.Conn, code wsframe.CloseCode, reason string) {
	c.Inject(ctx, plugins.Injection{Dir: plugins.ServerToClient, Payload: []byte(fmt.Sprintf("closed %s %d %s", c.ID, code, reason))})
}

func (t *tracker) Close() error {
	return fmt.Errorf("closed after %d connections", t.conns.Load())
}

var the = &tracker{}

func NewHook() (plugins.Hook, error) { return the, nil }

func NewLifecycle() (plugins.Lifecycle, error) {
	return plugins.Lifecycle{
		OnHandshake: the.OnHandshake,
		OnOpen:      the.OnOpen,
		OnClose:     the.OnClose,
		Close:       the.Close,
	}, nil
}
