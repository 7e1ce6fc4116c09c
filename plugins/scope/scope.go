// Package scope is the "scope" plugin: the hooks after it, up to the next scope,
// apply only to the connections it matches.
//
//	--hook scope:host=*.example.com --hook base64 --hook scope --hook log
//
// Here base64 decodes only example.com's sub-domains' messages, and the log tap (after
// an empty scope, which matches everything) sees every connection.
package scope

import (
	"fmt"
	"path"
	"strings"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/filter"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "scope",
		Description: "apply the following hooks only to connections whose host or URL matches",
		Options: []plugins.OptionDoc{
			{Name: "host", Usage: "a glob on the host name (path.Match syntax), e.g. *.example.com"},
			{Name: "url", Usage: "a glob on the whole ws:// or wss:// URL, as filter's: * matches anything (also /), ? one character"},
		},
		New: New,
	})
}

// Scope is a configured scope.
type Scope struct {
	host string
	url  string
}

// New builds a scope; with no options it matches every connection.
func New(o *plugins.Options) (plugins.Element, error) {
	s := &Scope{host: strings.ToLower(o.String("host", ""))}
	if s.host != "" {
		if _, err := path.Match(s.host, ""); err != nil {
			return nil, o.Errorf("host", "bad glob %q: %v", s.host, err)
		}
	}
	s.url = o.String("url", "")
	return s, nil
}

// Name returns "scope".
func (s *Scope) Name() string { return "scope" }

// MatchConn reports whether c's host and URL match.
func (s *Scope) MatchConn(c *plugins.Conn) bool {
	if c.URL == nil {
		return s.host == "" && s.url == ""
	}
	if s.host != "" {
		if ok, _ := path.Match(s.host, strings.ToLower(c.URL.Hostname())); !ok {
			return false
		}
	}
	return s.url == "" || filter.Glob(s.url, c.URL.String())
}

// String describes the scope.
func (s *Scope) String() string { return fmt.Sprintf("scope host=%q url=%q", s.host, s.url) }

var _ plugins.Scope = (*Scope)(nil)
