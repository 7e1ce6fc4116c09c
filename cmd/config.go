package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wstap/wstap/plugins"
)

// config is the proxy's configuration: the YAML file's fields and the flags of the
// same names. Sizes are strings such as "16MiB" or "1048576".
type config struct {
	Listen           string     `yaml:"listen"`
	CADir            string     `yaml:"ca_dir"`
	Hooks            []hookSpec `yaml:"hooks"`
	Log              string     `yaml:"log"`
	UpstreamInsecure bool       `yaml:"upstream_insecure"`
	UpstreamProxy    string     `yaml:"upstream_proxy"`
	AllowRemote      bool       `yaml:"allow_remote"`
	MaxHookMessage   string     `yaml:"max_hook_message"`
	MaxMessage       string     `yaml:"max_message"`
	HookErrors       string     `yaml:"hook_errors"`
	Quiet            bool       `yaml:"quiet"`
	EveryControl     bool       `yaml:"every_control"`
}

// hookSpec is one hook in the YAML file: either a --hook string, or a mapping with
// the plugin name as its only key and its options (no quoting needed) as the value:
//
//	hooks:
//	  - log
//	  - replace: {dir: c2s, match: 'a,b', with: c}
//	  - ./decrypt.go
type hookSpec struct{ plugins.Spec }

// UnmarshalYAML accepts the two forms of a hook.
func (h *hookSpec) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		s, err := plugins.ParseSpec(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		h.Spec = s
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return fmt.Errorf("line %d: a hook is one plugin name with its options, e.g. replace: {match: x, with: y}", n.Line)
		}
		name := n.Content[0].Value
		if name == "exec" {
			var cmd string
			if err := n.Content[1].Decode(&cmd); err != nil {
				return fmt.Errorf("line %d: exec: %w", n.Line, err)
			}
			h.Spec = plugins.Spec{Kind: plugins.Exec, Command: cmd}
			return nil
		}
		opts := map[string]string{}
		if n.Content[1].Kind != yaml.ScalarNode || n.Content[1].Value != "" {
			if err := n.Content[1].Decode(&opts); err != nil {
				return fmt.Errorf("line %d: options of %s: %w", n.Line, name, err)
			}
		}
		s, err := plugins.ParseSpec(name)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		s.Options = opts
		h.Spec = s
		return nil
	}
	return fmt.Errorf("line %d: a hook is a string or a mapping", n.Line)
}

// loadConfig reads a YAML configuration file, rejecting unknown fields.
func loadConfig(path string) (config, error) {
	var c config
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		var te *yaml.TypeError
		if errors.As(err, &te) { // one line per problem, naming no Go types
			return c, fmt.Errorf("%s: %s", path, strings.ReplaceAll(strings.Join(te.Errors, "; "), " in type cmd.config", ""))
		}
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseSize parses a byte size such as "16MiB", "1GB" or "1048576".
func parseSize(name, s string) (int64, error) {
	n, err := plugins.ParseSize(s)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("--%s %q: want a positive size such as 16MiB, 1GiB or 1048576", name, s)
	}
	return n, nil
}
