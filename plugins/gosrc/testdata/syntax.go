//go:build ignore

package main

func NewHook() (plugins.Hook, error) {
	return nil nil
}
