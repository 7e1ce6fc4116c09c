//go:build ignore

package main

import (
	"errors"

	"github.com/wstap/wstap/plugins"
)

func NewHook() (plugins.Hook, error) { return nil, errors.New("no key configured") }
