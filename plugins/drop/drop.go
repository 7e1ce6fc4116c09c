// Package drop is the "drop" hook: it drops the messages matching a rule, so they are
// not forwarded and later hooks do not see them. The rule (dir, opcode, match, url;
// all must hold) is the one of the "filter" hook, which does the opposite; package
// filter documents it, including the url glob.
//
//	--hook 'drop:dir=c2s,match="""type"":""telemetry"""'
//	--hook 'drop:url=wss://*.ads.example/*'
//	--hook 'drop:opcode=binary,dir=s2c'
//
// A drop hook without conditions drops every message. In sniff mode nothing can
// be dropped: the log says which messages would be (would_drop).
package drop

import (
	"context"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/filter"
)

func init() {
	plugins.Register(plugins.Registration{
		Name:        "drop",
		Description: "drop the messages matching a rule from the traffic: the peer never gets them (to hide them only from the view: --show)",
		Options:     filter.RuleOptions,
		New:         New,
	})
}

// Hook is the drop hook: it drops the messages its rule matches.
type Hook struct {
	rule filter.Rule
}

// New builds a drop hook from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	r, err := filter.NewRule(o)
	if err != nil {
		return nil, err
	}
	return &Hook{rule: r}, nil
}

// Name returns "drop".
func (h *Hook) Name() string { return "drop" }

// OnMessage drops m when the rule matches it and passes it otherwise.
func (h *Hook) OnMessage(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if h.rule.Match(m) {
		return plugins.Verdict{Action: plugins.Drop}, nil
	}
	return plugins.Verdict{}, nil
}

var _ plugins.Hook = (*Hook)(nil)
