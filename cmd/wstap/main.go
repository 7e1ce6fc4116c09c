// Command wstap is a WebSocket-first intercepting proxy and passive sniffer.
package main

import "github.com/wstap/wstap/cmd"

func main() { cmd.Main() }
