package glob

import (
	"net/url"
	"testing"
)

func TestMatch(t *testing.T) {
	u, _ := url.Parse("wss://Chat.Example.com:8443/socket?room=1")
	tests := []struct {
		pattern string
		u       *url.URL
		want    bool
	}{
		{"*", u, true},
		{"*.example.com*", u, true},
		{"chat.example.com:8443", u, true},
		{"wss://chat.example.com:8443/*", u, true},
		{"*/socket*", u, true},
		{"ws://*", u, false},
		{"chat.example.com", u, false}, // the host has a port
		{"*?room=1", u, true},
		{"*[::1]*", &url.URL{Scheme: "ws", Host: "[::1]:80", Path: "/"}, true},
		{"*", nil, true},
		{"x*", nil, false},
	}
	for _, tc := range tests {
		if got := URL(tc.pattern, tc.u); got != tc.want {
			t.Errorf("URL(%q, %v) = %v, want %v", tc.pattern, tc.u, got, tc.want)
		}
	}
}
