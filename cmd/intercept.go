package cmd

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/wstap/wstap/intercept"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/load"
)

// breakpoint is the web UI's intercept in the proxy's chain: its controller, and
// where in the chain it sits.
type breakpoint struct {
	ctl   *intercept.Controller // nil without --ui
	where string                // "after base64 → aes", for the UI and the banner
}

// isInterceptSpec reports whether s is "--hook intercept", the place of the
// breakpoint in the chain.
func isInterceptSpec(s plugins.Spec) bool { return s.Kind == plugins.Named && s.Name == "intercept" }

// newBreakpoint checks the intercept settings: the rules (each a --intercept, or
// the config file's intercept setting, which where names in errors), the timeout,
// and a "--hook intercept" among hooks. Without the UI (withUI false)
// there is no breakpoint, and asking for one is an error: nothing could release
// what it holds.
func newBreakpoint(where string, rules []string, timeout time.Duration, hooks []plugins.Spec, withUI bool, log *slog.Logger) (breakpoint, error) {
	placed := 0
	for _, h := range hooks {
		if !isInterceptSpec(h) {
			continue
		}
		placed++
		if len(h.Options) > 0 {
			return breakpoint{}, errors.New("--hook intercept takes no options: it only places the breakpoint; give its rules with --intercept RULE")
		}
	}
	if placed > 1 {
		return breakpoint{}, errors.New("--hook intercept is given more than once; the chain has one breakpoint")
	}
	parsed := make([]intercept.Rule, 0, len(rules))
	for _, r := range rules {
		rule, err := intercept.ParseRule(r)
		if err != nil {
			return breakpoint{}, fmt.Errorf("%s: %s", where, strings.TrimPrefix(err.Error(), "intercept: "))
		}
		parsed = append(parsed, rule)
	}
	if !withUI {
		switch {
		case len(rules) > 0:
			return breakpoint{}, fmt.Errorf("%s needs --ui: held messages are forwarded, edited or dropped in the web UI (or its API), and without it nothing could release them", where)
		case placed > 0:
			return breakpoint{}, errors.New("--hook intercept needs --ui: the breakpoint is the web UI's intercept")
		}
		return breakpoint{}, nil
	}
	ctl := intercept.New(intercept.Config{Settings: intercept.Settings{Enabled: len(parsed) > 0, Rules: parsed, Timeout: timeout},
		Logger: log})
	return breakpoint{ctl: ctl, where: placement(hooks)}, nil
}

// specName is a short name of a hook for placement: its plugin name without the
// options (which may hold a key), the Go file's name, or exec.
func specName(s plugins.Spec) string {
	switch s.Kind {
	case plugins.Exec:
		return "exec"
	case plugins.GoFile:
		return filepath.Base(s.Path)
	}
	return s.Name
}

// placement says where the breakpoint sits among hooks.
func placement(hooks []plugins.Spec) string {
	var before, after []string
	seen := false
	for _, h := range hooks {
		switch {
		case isInterceptSpec(h):
			seen = true
		case seen:
			after = append(after, specName(h))
		default:
			before = append(before, specName(h))
		}
	}
	if !seen {
		before, after = append(before, after...), nil
	}
	switch {
	case len(before) == 0 && len(after) == 0:
		return "no hooks: the payload as it arrived"
	case len(after) == 0:
		return "after " + strings.Join(before, " → ")
	case len(before) == 0:
		return "before " + strings.Join(after, " → ")
	}
	return "after " + strings.Join(before, " → ") + ", before " + strings.Join(after, " → ")
}

// chain builds the proxy's chain of hooks, with the breakpoint where "--hook
// intercept" puts it, by default after every hook.
func (b breakpoint) chain(hooks []plugins.Spec, opts load.Options) (*plugins.Chain, error) {
	if b.ctl == nil {
		return load.Chain(hooks, opts)
	}
	at := len(hooks)
	for i, h := range hooks {
		if isInterceptSpec(h) {
			at = i
		}
	}
	var rest []plugins.Spec
	if at < len(hooks) {
		rest = hooks[at+1:]
	}
	before, err := load.Elements(hooks[:at], opts)
	if err != nil {
		return nil, err
	}
	after, err := load.Elements(rest, opts)
	if err != nil {
		load.Close(before)
		return nil, err
	}
	elems := append(append(before, plugins.Element(b.ctl)), after...)
	chain, err := plugins.NewChain(opts.Policy, opts.Logger, elems...)
	if err != nil {
		load.Close(elems)
		return nil, err
	}
	return chain, nil
}
