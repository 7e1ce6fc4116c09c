package plugins_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "test-upper",
		Description: "upper-cases text (test plugin)",
		Options:     []plugins.OptionDoc{{Name: "dir", Usage: "c2s, s2c or both"}, {Name: "times", Usage: "repeat", Default: "1"}},
		New: func(o *plugins.Options) (plugins.Element, error) {
			if _, err := o.Direction("dir"); err != nil {
				return nil, err
			}
			if _, err := o.Int("times", 1); err != nil {
				return nil, err
			}
			return plugins.HookFunc{HookName: "test-upper", Func: func(context.Context, *plugins.Message) (plugins.Verdict, error) {
				return plugins.Verdict{}, nil
			}}, nil
		},
	})
}

func TestRegistry(t *testing.T) {
	if _, err := plugins.New("test-upper", map[string]string{"dir": "c2s", "times": "2"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts map[string]string
		want string
	}{
		{"nope", nil, `unknown plugin "nope"`},
		{"test-upper", map[string]string{"colour": "red"}, "unknown option colour"},
		{"test-upper", map[string]string{"dir": "up"}, "option dir"},
		{"test-upper", map[string]string{"times": "many"}, "option times"},
	} {
		_, err := plugins.New(tc.name, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s, %v) = %v, want an error containing %q", tc.name, tc.opts, err, tc.want)
		}
	}
	found := false
	for _, r := range plugins.Registered() {
		found = found || r.Name == "test-upper"
	}
	if !found {
		t.Fatal("Registered does not list test-upper")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a duplicate name did not panic")
		}
	}()
	plugins.Register(plugins.Registration{Name: "test-upper", New: func(*plugins.Options) (plugins.Element, error) { return nil, nil }})
}
