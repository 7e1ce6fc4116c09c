//go:build ignore

package main

func Hook() {}
