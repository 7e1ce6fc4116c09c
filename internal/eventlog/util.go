package eventlog

import (
	"net"

	"github.com/wstap/wstap/plugins"
)

func urlString(c *plugins.Conn) string {
	if c.URL == nil {
		return ""
	}
	return c.URL.String()
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
