//go:build ignore

package main

import "github.com/wstap/wstap/plugins"

func NewHook() (plugins.Hook, error) {
	var m map[string]plugins.Hook
	m["x"] = nil
	return nil, nil
}
