//go:build ignore

// origin refuses WebSocket upgrades from browser pages of other sites, loaded as
// Go source at run time:
//
//	ALLOW_ORIGINS=https://chat.example wstap --hook ./examples/hooks/origin.go
//
// An upgrade request whose Origin header is not one of the comma-separated origins
// in ALLOW_ORIGINS is refused (the client gets 403); requests without an Origin
// (not sent by a browser) pass. It also logs how many connections are open.
//
// It has no message hook: the interpreter lets wstap call only the methods of the
// value a constructor returns as a plugins.Hook or plugins.Codec, so a file hands
// over its handshake, open and close functions in a plugins.Lifecycle, from the
// NewLifecycle constructor. A file with only that constructor is a hook that passes
// every message, named after the file ("origin").
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"sync/atomic"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

type guard struct {
	allowed map[string]bool
	open    atomic.Int64
}

// OnHandshake refuses an upgrade from an origin not allowed.
func (g *guard) OnHandshake(_ context.Context, h *plugins.Handshake) error {
	origin := h.Request.Get("Origin")
	if origin != "" && !g.allowed[origin] {
		return fmt.Errorf("origin %q is not in ALLOW_ORIGINS", origin)
	}
	return nil
}

func (g *guard) OnOpen(_ context.Context, c *plugins.Conn) {
	log.Printf("origin: %s opened, %d open", c.ID, g.open.Add(1))
}

func (g *guard) OnClose(_ context.Context, c *plugins.Conn, code wsframe.CloseCode, _ string) {
	log.Printf("origin: %s closed with %d, %d open", c.ID, code, g.open.Add(-1))
}

// NewLifecycle is the constructor wstap looks up by name.
func NewLifecycle() (plugins.Lifecycle, error) {
	g := &guard{allowed: map[string]bool{}}
	for _, o := range strings.Split(os.Getenv("ALLOW_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			g.allowed[o] = true
		}
	}
	if len(g.allowed) == 0 {
		return plugins.Lifecycle{}, fmt.Errorf("ALLOW_ORIGINS: want a comma-separated list of origins, such as https://chat.example")
	}
	return plugins.Lifecycle{OnHandshake: g.OnHandshake, OnOpen: g.OnOpen, OnClose: g.OnClose}, nil
}
