package plugins

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Factory builds a plugin (a [Hook], a [Codec] or a [Scope]) from its options. It must
// read every option it understands from opts; [New] rejects the ones left unread.
type Factory func(opts *Options) (Element, error)

// Registration describes a named plugin for the registry and for `wstap plugins`.
type Registration struct {
	Name        string
	Description string      // one line
	Options     []OptionDoc // the options the factory reads
	New         Factory
}

// OptionDoc documents one option of a plugin.
type OptionDoc struct {
	Name    string
	Usage   string
	Default string
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Registration{}
)

// namePattern is what a plugin name may look like on the command line.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// Register adds a plugin under r.Name, the short name the CLI uses (`--hook NAME`).
// Call it from an init function. It panics on an invalid or duplicate name or a nil
// factory: those are programming errors.
func Register(r Registration) {
	if !namePattern.MatchString(r.Name) {
		panic(fmt.Sprintf("plugins: Register: invalid plugin name %q", r.Name))
	}
	if r.New == nil {
		panic(fmt.Sprintf("plugins: Register: plugin %q has no factory", r.Name))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[r.Name]; dup {
		panic(fmt.Sprintf("plugins: Register: plugin %q registered twice", r.Name))
	}
	registry[r.Name] = r
}

// Registered returns the registered plugins sorted by name.
func Registered() []Registration {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return slices.SortedFunc(maps.Values(registry), func(a, b Registration) int { return strings.Compare(a.Name, b.Name) })
}

// Lookup returns the registration of the plugin called name.
func Lookup(name string) (Registration, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	r, ok := registry[name]
	return r, ok
}

// New builds the registered plugin called name with the given options, rejecting
// options the plugin does not read.
func New(name string, opts map[string]string) (Element, error) {
	r, ok := Lookup(name)
	if !ok {
		var names []string
		for _, r := range Registered() {
			names = append(names, r.Name)
		}
		return nil, fmt.Errorf("plugins: unknown plugin %q (known: %s)", name, strings.Join(names, ", "))
	}
	o := &Options{plugin: name, values: opts, used: map[string]bool{}}
	p, err := r.New(o)
	if err != nil {
		return nil, err
	}
	if err := o.unused(); err != nil {
		return nil, err
	}
	switch p.(type) {
	case Hook, Codec, Scope:
		return p, nil
	}
	return nil, fmt.Errorf("plugins: %s: factory returned %T, not a Hook, a Codec or a Scope", name, p)
}

// Options are a plugin's key=value options, read by its factory. Each getter marks
// the option as read; errors name the plugin and the option.
type Options struct {
	plugin string
	values map[string]string
	used   map[string]bool
}

// NewOptions returns options for plugin, for factories called outside [New] (tests,
// custom builds).
func NewOptions(plugin string, values map[string]string) *Options {
	return &Options{plugin: plugin, values: values, used: map[string]bool{}}
}

func (o *Options) get(name string) (string, bool) {
	o.used[name] = true
	v, ok := o.values[name]
	return v, ok
}

// Errorf returns an error about option name of the plugin.
func (o *Options) Errorf(name, format string, args ...any) error {
	return fmt.Errorf("plugins: %s: option %s: %s", o.plugin, name, fmt.Sprintf(format, args...))
}

// String returns option name, or def when it is absent.
func (o *Options) String(name, def string) string {
	if v, ok := o.get(name); ok {
		return v
	}
	return def
}

// Required returns option name, or an error when it is absent or empty.
func (o *Options) Required(name string) (string, error) {
	v, ok := o.get(name)
	if !ok || v == "" {
		return "", o.Errorf(name, "required")
	}
	return v, nil
}

// Bool returns option name as a boolean (true, false, 1, 0…), or def when absent.
func (o *Options) Bool(name string, def bool) (bool, error) {
	v, ok := o.get(name)
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, o.Errorf(name, "%q is not a boolean", v)
	}
	return b, nil
}

// Int returns option name as an integer, or def when absent.
func (o *Options) Int(name string, def int) (int, error) {
	v, ok := o.get(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, o.Errorf(name, "%q is not an integer", v)
	}
	return n, nil
}

// Direction returns option name as a direction filter: "c2s", "s2c" or "both" (the
// default when absent); 0 means both.
func (o *Options) Direction(name string) (Direction, error) {
	switch v, _ := o.get(name); v {
	case "", "both":
		return 0, nil
	case "c2s":
		return ClientToServer, nil
	case "s2c":
		return ServerToClient, nil
	default:
		return 0, o.Errorf(name, "%q, want c2s, s2c or both", v)
	}
}

// Size returns option name as a byte size such as 16MiB, 64KB or 1048576, or def
// when absent.
func (o *Options) Size(name string, def int64) (int64, error) {
	v, ok := o.get(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := ParseSize(v)
	if err != nil || n == 0 || n > 1<<40 {
		return def, o.Errorf(name, "%q, want a positive size such as 16MiB, 64KB or 1048576", v)
	}
	return n, nil
}

// Bytes returns option name decoded with [ParseBytes]; ok is false when it is
// absent or empty.
func (o *Options) Bytes(name string) (b []byte, ok bool, err error) {
	v, present := o.get(name)
	if !present || v == "" {
		return nil, false, nil
	}
	if b, err = ParseBytes(v); err != nil {
		return nil, true, o.Errorf(name, "%v", err)
	}
	return b, true, nil
}

// ParseBytes decodes a byte value written hex:..., base64:... (padded or not,
// standard or URL alphabet) or text:..., the form plugins use for keys and IVs.
func ParseBytes(s string) ([]byte, error) {
	kind, v, _ := strings.Cut(s, ":")
	switch kind {
	case "hex":
		b, err := hex.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("not hex: %v", err)
		}
		return b, nil
	case "base64":
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(v); err == nil {
				return b, nil
			}
		}
		return nil, errors.New("not base64")
	case "text":
		return []byte(v), nil
	}
	return nil, fmt.Errorf("want hex:..., base64:... or text:... (got %q)", s)
}

func (o *Options) unused() error {
	var unknown []string
	for k := range o.values {
		if !o.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("plugins: %s: unknown option %s (see 'wstap plugins')", o.plugin, strings.Join(unknown, ", "))
}
