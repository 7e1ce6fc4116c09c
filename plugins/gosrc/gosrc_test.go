package gosrc_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/gosrc"
	"github.com/wstap/wstap/wsframe"
)

func TestLoadHook(t *testing.T) {
	elems, err := gosrc.Load("testdata/upper.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != 1 {
		t.Fatalf("%d elements, want 1", len(elems))
	}
	hook, ok := elems[0].(plugins.Hook)
	if !ok || hook.Name() != "upper" {
		t.Fatalf("element %T is not the upper hook", elems[0])
	}
	chain, err := plugins.NewChain(plugins.FailOpen, nil, elems...)
	if err != nil {
		t.Fatal(err)
	}
	// Interpreted hooks serve concurrent connections.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			m := &plugins.Message{Conn: &plugins.Conn{ID: "c"}, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte("hello " + string(rune('a'+i)))}
			res, err := chain.Run(context.Background(), m)
			if err != nil || res.Action != plugins.Modify || string(res.Payload) != "HELLO "+string(rune('A'+i)) {
				t.Errorf("result %+v, %v", res, err)
			}
		})
	}
	wg.Wait()
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/syntax.go", []string{"testdata/syntax.go:6:"}},
		{"testdata/rangeint.go", []string{"testdata/rangeint.go:17:", "ranging over an integer"}},
		{"testdata/noctor.go", []string{"neither NewHook nor NewCodec"}},
		{"testdata/badsig.go", []string{"NewHook has type", "want func() (plugins.Hook, error)"}},
		{"testdata/ctorerr.go", []string{"NewHook: no key configured"}},
		{"testdata/missing.go", []string{"no such file"}},
	}
	for _, tc := range tests {
		_, err := gosrc.Load(tc.file)
		if err == nil {
			t.Errorf("%s: loaded without error", tc.file)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.file, err, w)
			}
		}
	}
	if _, err := gosrc.Load("testdata/noctor.go"); !errors.Is(err, gosrc.ErrNoConstructor) {
		t.Errorf("noctor: %v, want ErrNoConstructor", err)
	}
}
