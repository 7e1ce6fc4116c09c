//go:build ignore

package main

import (
	"context"
	"log"

	"github.com/wstap/wstap/plugins"
)

type boom struct{}

func (boom) Name() string { return "boom" }

func at(x []int, i int) int {
	return x[i]
}

func (boom) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	log.Printf("boom saw %s", m.Payload)
	_ = at(nil, 3)
	return plugins.Verdict{}, nil
}

func NewHook() (plugins.Hook, error) { return boom{}, nil }
