// Command encrypted-chat is a practice target for wstap: a small chat server whose
// WebSocket messages are AES-256-GCM encrypted, base64-wrapped JSON, with a browser
// page and a command-line client. The tutorial in docs/plugins.md uses it to show
// wstap's codec hooks end to end.
//
// Server (the default mode): serves the page on / and the chat on /ws. Every valid
// message is printed as "received user=... text=..." and broadcast, re-encrypted with
// a fresh nonce, to every connected client; anything that does not decrypt or parse
// is rejected and printed as "rejected ...".
//
//	go run ./examples/encrypted-chat                        # http://127.0.0.1:8000/
//	go run ./examples/encrypted-chat -listen 127.0.0.1:0    # any free port (printed)
//	go run ./examples/encrypted-chat -tls                   # https/wss, self-signed certificate
//
// Client: connects (optionally through an HTTP proxy such as wstap, trusting a CA file
// for wss://), sends the -send messages (or one message per stdin line) and -raw
// texts (sent as they are, unencrypted) in command-line order, prints every message it
// receives as "got user=... text=...", and exits once the server has broadcast back as
// many messages from -user as it sent (or after -timeout, with status 1):
//
//	go run ./examples/encrypted-chat -client ws://127.0.0.1:8000/ws \
//	    -proxy http://127.0.0.1:8080 -user alice -send hello
//
// Both sides use -key, 64 hex digits (AES-256); the default is the public demo key
// chatcrypto.DemoKey, 000102…1f.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/wstap/wstap/examples/encrypted-chat/chatcrypto"
)

// outgoing is one message the client sends: encrypted JSON, or raw text.
type outgoing struct {
	raw  bool
	text string
}

// sendFlag appends to a list shared by -send and -raw, keeping their order.
type sendFlag struct {
	list *[]outgoing
	raw  bool
}

func (f sendFlag) String() string { return "" }
func (f sendFlag) Set(v string) error {
	*f.list = append(*f.list, outgoing{raw: f.raw, text: v})
	return nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("encrypted-chat", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "server: address to listen on (port 0 picks a free port)")
	useTLS := fs.Bool("tls", false, "server: serve https:// and wss:// with a self-signed certificate")
	keyHex := fs.String("key", chatcrypto.DemoKey, "AES-256 key, 64 hex digits; the default is the public demo key")
	clientURL := fs.String("client", "", "client mode: connect to this ws:// or wss:// URL (e.g. ws://127.0.0.1:8000/ws)")
	proxyURL := fs.String("proxy", "", "client: connect through this HTTP proxy (e.g. http://127.0.0.1:8080)")
	caFile := fs.String("ca", "", "client: trust the CA certificates in this PEM file for wss:// (e.g. wstap-ca.pem)")
	user := fs.String("user", "alice", "client: the user name of the messages sent")
	timeout := fs.Duration("timeout", 10*time.Second, "client: how long to wait for the echoes after the last message is sent")
	var out []outgoing
	fs.Var(sendFlag{&out, false}, "send", "client: send this `text` as an encrypted message (repeatable; default: one per stdin line)")
	fs.Var(sendFlag{&out, true}, "raw", "client: send this `text` as it is, unencrypted (repeatable), e.g. to see what the server rejects")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "encrypted-chat: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	box, err := chatcrypto.NewHex(*keyHex)
	if err != nil {
		fmt.Fprintf(os.Stderr, "encrypted-chat: -key: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *clientURL == "" {
		if len(out) > 0 || *proxyURL != "" || *caFile != "" {
			fmt.Fprintln(os.Stderr, "encrypted-chat: -send, -raw, -proxy and -ca need -client URL")
			return 2
		}
		if err := serve(ctx, *listen, *useTLS, box, *keyHex, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "encrypted-chat: %v\n", err)
			return 1
		}
		return 0
	}
	c := client{url: *clientURL, proxy: *proxyURL, caFile: *caFile, user: *user, timeout: *timeout, box: box, out: os.Stdout}
	if len(out) == 0 {
		c.stdin = os.Stdin
	}
	if err := c.run(ctx, out); err != nil {
		fmt.Fprintf(os.Stderr, "encrypted-chat: %v\n", err)
		return 1
	}
	return 0
}

// printable returns s as it is, or quoted when it holds control characters (so a
// message cannot fake output lines).
func printable(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}
