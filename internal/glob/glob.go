// Package glob matches the globs with which the web UI's filters and the intercept
// rules select connections: * matches any run of characters, slashes included, ?
// one character, and every other character itself, ignoring case. A URL glob
// matches the whole URL or its host alone, so "*.example.com" and
// "wss://chat.example.com/*" both select wss://chat.example.com/socket.
package glob

import (
	"net/url"
	"path"
	"strings"
)

// Match reports whether s matches pattern.
func Match(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return strings.EqualFold(pattern, s)
	}
	p := strings.ToLower(pattern)
	// path.Match treats / specially; replace it so * crosses it.
	p = strings.ReplaceAll(p, "/", "\x00")
	ok, err := path.Match(strings.ReplaceAll(p, "[", "\\["), strings.ReplaceAll(strings.ToLower(s), "/", "\x00"))
	return err == nil && ok
}

// URL reports whether pattern matches u, as a whole or its host (host:port when
// the URL has a port). A nil u (a connection whose URL is unknown) is matched as
// the empty string.
func URL(pattern string, u *url.URL) bool {
	if u == nil {
		return Match(pattern, "")
	}
	return Match(pattern, u.String()) || Match(pattern, u.Host)
}
