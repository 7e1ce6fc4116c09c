package scope_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/scope"
	"github.com/wstap/wstap/wsframe"
)

func TestScopeInChain(t *testing.T) {
	mk := func(opts map[string]string) plugins.Element {
		s, err := scope.New(plugins.NewOptions("scope", opts))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var seen []string
	tap := func(name string) plugins.Hook {
		return plugins.HookFunc{HookName: name, Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
			seen = append(seen, name+"@"+m.Conn.URL.Hostname())
			return plugins.Verdict{}, nil
		}}
	}
	chain, err := plugins.NewChain(plugins.FailOpen, nil,
		tap("all"), mk(map[string]string{"host": "*.example.com"}), tap("example"),
		mk(map[string]string{"url": "wss://*/admin*"}), tap("admin"), mk(nil), tap("again"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"wss://chat.example.com/x", "wss://other.test/admin/y", "ws://example.com/"} {
		pu, _ := url.Parse(u)
		chain.Run(context.Background(), &plugins.Message{Conn: &plugins.Conn{ID: "c", URL: pu}, Dir: plugins.ClientToServer, Opcode: wsframe.OpText})
	}
	want := []string{"all@chat.example.com", "example@chat.example.com", "again@chat.example.com",
		"all@other.test", "admin@other.test", "again@other.test",
		"all@example.com", "again@example.com"}
	if len(seen) != len(want) {
		t.Fatalf("hooks ran %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("hooks ran %q, want %q", seen, want)
		}
	}
}

func TestScopeOptions(t *testing.T) {
	if _, err := scope.New(plugins.NewOptions("scope", map[string]string{"host": "[a-"})); err == nil {
		t.Error("bad host glob accepted")
	}
}
