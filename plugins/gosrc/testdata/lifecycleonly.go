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

// A file with lifecycle funcs only (func literals here): a hook named after the
// file that passes every message.
func NewLifecycle() (plugins.Lifecycle, error) {
	var conns atomic.Int64
	return plugins.Lifecycle{
		OnHandshake: func(ctx context.Context, h *plugins.Handshake) error {
			if h.Request.Get("X-Refuse") != "" {
				return errors.New("refused by lifecycleonly")
			}
			h.Request.Set("X-Tracker", "seen")
			return nil
		},
		OnOpen: func(ctx context.Context, c *plugins.Conn) {
			conns.Add(1)
			c.Inject(ctx, plugins.Injection{Dir: plugins.ServerToClient, Payload: []byte("opened " + c.ID)})
		},
		OnClose: func(ctx context.Context, c *plugins.Conn, code wsframe.CloseCode, reason string) {
			c.Inject(ctx, plugins.Injection{Dir: plugins.ServerToClient, Payload: []byte(fmt.Sprintf("closed %s %d %s", c.ID, code, reason))})
		},
		Close: func() error { return fmt.Errorf("closed after %d connections", conns.Load()) },
	}, nil
}
