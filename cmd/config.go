package cmd

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wstap/wstap/plugins"
)

// config is the proxy's configuration: the YAML file's settings and the flags of
// the same names (max_message in the file is --max-message). Sizes are strings
// such as "16MiB" or "1048576".
type config struct {
	Listen           string
	CADir            string
	Hooks            []plugins.Spec
	Show             []string
	Log              string
	UpstreamInsecure bool
	UpstreamProxy    string
	AllowRemote      bool
	MaxHookMessage   string
	MaxMessage       string
	HookErrors       string
	Quiet            bool
	EveryControl     bool
	UI               string // the web UI's address; "true" is the default one
	UIHistory        string
	Intercept        []string // --intercept rules
	InterceptTimeout string

	// origin says, by flag name, where the config file set a setting, for error
	// messages ("wstap.yaml:5: max_message"); settings from flags or defaults are
	// not in it.
	origin map[string]string
}

// where names the setting with the flag name flag in an error message: the file,
// line and key when the config file set it, the flag otherwise.
func (c *config) where(flag string) string {
	if o := c.origin[flag]; o != "" {
		return o
	}
	return "--" + flag
}

// setting is one setting of the config file.
type setting struct {
	key, flag string // "max_message", "max-message"
	want      string // what a value looks like, for errors
	ptr       any    // the field: *string, *bool, *[]string or *[]plugins.Spec
}

// settings returns c's settings, in the order the flags are documented.
func (c *config) settings() []setting {
	const boolean = "true or false"
	return []setting{
		{"listen", "listen", "an address such as 127.0.0.1:8080", &c.Listen},
		{"ca_dir", "ca-dir", "a directory", &c.CADir},
		{"hooks", "hook", "a list of hooks", &c.Hooks},
		{"show", "show", "a --show rule such as 'dir=s2c,match=error', or a list of them", &c.Show},
		{"log", "log", "a file name, or - for stdout", &c.Log},
		{"upstream_insecure", "upstream-insecure", boolean, &c.UpstreamInsecure},
		{"upstream_proxy", "upstream-proxy", "a URL such as http://host:3128", &c.UpstreamProxy},
		{"allow_remote", "allow-remote", boolean, &c.AllowRemote},
		{"max_hook_message", "max-hook-message", "a size such as 16MiB", &c.MaxHookMessage},
		{"max_message", "max-message", "a size such as 1GiB", &c.MaxMessage},
		{"hook_errors", "hook-errors", "pass or close", &c.HookErrors},
		{"quiet", "quiet", boolean, &c.Quiet},
		{"every_control", "every-control", boolean, &c.EveryControl},
		{"ui", "ui", "an address such as 127.0.0.1:8081, or true for that one", &c.UI},
		{"ui_history", "ui-history", "a size such as 256MiB", &c.UIHistory},
		{"intercept", "intercept", "an intercept rule such as 'dir=c2s,match=transfer', or a list of them", &c.Intercept},
		{"intercept_timeout", "intercept-timeout", "a duration such as 5m", &c.InterceptTimeout},
	}
}

// configError is a mistake in the config file's content, which the user must fix
// (exit status 2), as opposed to a file that cannot be read. Its text starts with
// the file and line.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// badConfig returns a configError about node n of the file path.
func badConfig(path string, n *yaml.Node, format string, args ...any) error {
	return &configError{fmt.Sprintf("%s:%d: ", path, n.Line) + fmt.Sprintf(format, args...)}
}

// yamlLine matches the position in the YAML library's syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// loadConfig reads a YAML configuration file: a mapping of settings (the flags'
// names with _), the hooks a list of which each entry is either a --hook string or
// a mapping with the plugin name as its only key and its options (no quoting
// needed) as the value:
//
//	listen: 127.0.0.1:8080
//	hooks:
//	  - log
//	  - replace: {dir: c2s, match: 'a,b', with: c}
//	  - ./decrypt.go
//
// Mistakes in the content are *configError, naming the file, the line and the
// setting or hook, and saying what was expected; hooks carry their file and line
// in [plugins.Spec.Origin] for the errors of the plugins.
func loadConfig(path string) (config, error) {
	c := config{origin: map[string]string{}}
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return c, &configError{fmt.Sprintf("%s:%s: %s (YAML syntax)", path, m[1], msg[len(m[0]):])}
		}
		return c, &configError{fmt.Sprintf("%s: %s", path, strings.TrimPrefix(msg, "yaml: "))}
	}
	if len(doc.Content) == 0 { // an empty file
		return c, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return c, badConfig(path, top, "want one setting per line, such as listen: 127.0.0.1:8080, not %s", describe(top))
	}
	byKey := map[string]setting{}
	var keys []string
	for _, s := range c.settings() {
		byKey[s.key] = s
		keys = append(keys, s.key)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		s, ok := byKey[k.Value]
		if !ok {
			return c, badConfig(path, k, "unknown setting %q (known: %s)", k.Value, strings.Join(keys, ", "))
		}
		if _, dup := c.origin[s.flag]; dup {
			return c, badConfig(path, k, "%s is set twice", k.Value)
		}
		if err := decodeSetting(s, v, path); err != nil {
			return c, err
		}
		c.origin[s.flag] = fmt.Sprintf("%s:%d: %s", path, k.Line, k.Value)
	}
	return c, nil
}

// decodeSetting stores the value v of the setting s.
func decodeSetting(s setting, v *yaml.Node, path string) error {
	bad := func(format string, args ...any) error {
		return badConfig(path, v, "%s: %s", s.key, fmt.Sprintf(format, args...))
	}
	switch p := s.ptr.(type) {
	case *string:
		if v.Kind != yaml.ScalarNode {
			return bad("want %s, not %s", s.want, describe(v))
		}
		*p = v.Value
		if v.Tag == "!!null" {
			*p = ""
		}
	case *bool:
		var b bool
		if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
			return bad("want %s, not %s", s.want, describe(v))
		}
		*p = b
	case *[]string:
		switch v.Kind {
		case yaml.ScalarNode:
			*p = []string{v.Value}
		case yaml.SequenceNode:
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return badConfig(path, item, "%s: want %s, not %s", s.key, s.want, describe(item))
				}
				*p = append(*p, item.Value)
			}
		default:
			return bad("want %s, not %s", s.want, describe(v))
		}
	case *[]plugins.Spec:
		if v.Kind != yaml.SequenceNode {
			return bad("want a list with one hook per line, each starting with \"- \" (- replace: {match: a, with: b}), not %s", describe(v))
		}
		for i, item := range v.Content {
			spec, err := hookEntry(item, path, i)
			if err != nil {
				return err
			}
			*p = append(*p, spec)
		}
	default:
		panic(fmt.Sprintf("cmd: setting %s of type %T", s.key, s.ptr))
	}
	return nil
}

// hookEntry reads entry i of the config file's hooks: a --hook string, or a
// mapping of the plugin name to its options.
func hookEntry(n *yaml.Node, path string, i int) (plugins.Spec, error) {
	origin := fmt.Sprintf("%s:%d: hook %d", path, n.Line, i+1)
	bad := func(format string, args ...any) (plugins.Spec, error) {
		return plugins.Spec{}, &configError{origin + ": " + fmt.Sprintf(format, args...)}
	}
	var spec plugins.Spec
	switch n.Kind {
	case yaml.ScalarNode:
		s, err := plugins.ParseSpec(n.Value)
		if err != nil {
			return bad("%v", err)
		}
		spec = s
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return bad("want one plugin with its options, such as replace: {match: a, with: b}; start each hook with its own \"- \"")
		}
		name, val := n.Content[0].Value, n.Content[1]
		if name == "exec" {
			if val.Kind != yaml.ScalarNode || val.Value == "" {
				return bad("exec: want a command line, such as exec: /usr/bin/python3 hook.py")
			}
			spec = plugins.Spec{Kind: plugins.Exec, Command: val.Value}
			break
		}
		s, err := plugins.ParseSpec(name)
		if err != nil {
			return bad("%v", err)
		}
		if s.Kind != plugins.Named {
			return bad("%s takes no options: write it alone, as - %s", name, name)
		}
		if val.Kind != yaml.ScalarNode || val.Value != "" { // "- log:" has no options
			if val.Kind != yaml.MappingNode {
				return bad("options of %s: want key: value pairs, such as %s: {dir: c2s}, not %s", name, name, describe(val))
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				k, v := val.Content[j], val.Content[j+1]
				if v.Kind != yaml.ScalarNode {
					return bad("option %s of %s: want one value (quote it: '…'), not %s", k.Value, name, describe(v))
				}
				if _, dup := s.Options[k.Value]; dup {
					return bad("option %s of %s is given twice", k.Value, name)
				}
				s.Options[k.Value] = v.Value
			}
		}
		spec = s
	default:
		return bad("want a plugin name (log), a --hook string ('replace:match=a,with=b') or a plugin with its options (replace: {match: a, with: b}), not %s", describe(n))
	}
	spec.Origin = origin
	return spec, nil
}

// describe says what a YAML node is, in the user's terms.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping (key: value)"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// merge overlays the settings of the command line (set; fs says which flags were
// given) over the file's: a flag given wins, and a setting absent from the file
// takes the flag's default.
func merge(fs *flag.FlagSet, file, set config) config {
	out := file
	if out.origin == nil {
		out.origin = map[string]string{}
	}
	from := set.settings()
	for i, s := range out.settings() {
		given := flagGiven(fs, s.flag)
		if !given && out.origin[s.flag] != "" {
			continue
		}
		delete(out.origin, s.flag)
		switch p := s.ptr.(type) {
		case *string:
			*p = *from[i].ptr.(*string)
		case *bool:
			*p = *from[i].ptr.(*bool)
		case *[]string:
			*p = *from[i].ptr.(*[]string)
		case *[]plugins.Spec:
			*p = *from[i].ptr.(*[]plugins.Spec)
		}
	}
	return out
}

// parseSize parses a byte size such as "16MiB", "1GB" or "1048576"; where names
// the setting for the error ("--max-message").
func parseSize(where, s string) (int64, error) {
	n, err := plugins.ParseSize(s)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s %q: want a positive size such as 16MiB, 1GiB or 1048576", where, s)
	}
	return n, nil
}

// hookLimit checks the hook limit against the message limit; hookSet and msgSet
// name them with their values for the error ("--max-message 1MiB"). A hook limit
// above the message limit means nothing (a larger message never reaches the
// hooks): when the user chose it (explicit), that is a mistake to fix; the
// default is lowered to the message limit.
func hookLimit(hook, msg int64, explicit bool, hookSet, msgSet string) (int64, error) {
	if hook <= msg {
		return hook, nil
	}
	if explicit {
		return 0, fmt.Errorf("%s is larger than %s, above which no message reaches the hooks; lower the first or raise the second", hookSet, msgSet)
	}
	return msg, nil
}
