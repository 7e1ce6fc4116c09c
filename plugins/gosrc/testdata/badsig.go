//go:build ignore

package main

func NewHook() string { return "" }
