// Command custom-build is wstap with a compiled-in plugin, "chat" (see chatcodec).
package main

import (
	"github.com/wstap/wstap/cmd"
	_ "github.com/wstap/wstap/examples/custom-build/chatcodec"
)

func main() { cmd.Main() }
