package plugins

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrSpec reports a --hook value that does not follow the grammar of [ParseSpec].
var ErrSpec = errors.New("plugins: bad hook spec")

// SpecKind says where a hook comes from.
type SpecKind uint8

// Kinds of hook specs.
const (
	// Named is a registered plugin: NAME[:key=value,...].
	Named SpecKind = iota + 1
	// GoFile is Go source loaded at run time: a path ending in .go.
	GoFile
	// Exec is an external process: exec:COMMAND.
	Exec
)

// Spec is a parsed --hook value.
type Spec struct {
	Kind    SpecKind
	Name    string            // Named: the plugin name
	Options map[string]string // Named: its options
	Path    string            // GoFile: the file
	Command string            // Exec: the command line

	// Origin says where the spec was written, for error messages: a config file
	// and line ("wstap.yaml:12"), or "" for the command line.
	Origin string
}

// ParseSpec parses a --hook value. The grammar:
//
//	spec    = "exec:" command | path ".go" | name [ ":" option { "," option } ]
//	option  = key "=" value
//	value   = plain | "'" { char | "''" } "'" | `"` { char | `""` } `"`
//
// A plain value runs to the next comma; a value containing "," or "=" (or starting
// with a quote) is quoted with single or double quotes, inside which the quote
// character is written twice. Backslashes are not special, so regular expressions
// need no extra escaping:
//
//	replace:dir=c2s,match='a,b',with=c
//	replace:match='it''s',with="say ""hi"""
func ParseSpec(s string) (Spec, error) {
	switch {
	case strings.HasPrefix(s, "exec:"):
		cmd := strings.TrimSpace(strings.TrimPrefix(s, "exec:"))
		if cmd == "" {
			return Spec{}, fmt.Errorf("%w %q: exec: needs a command", ErrSpec, s)
		}
		return Spec{Kind: Exec, Command: cmd}, nil
	case strings.HasSuffix(s, ".go"):
		return Spec{Kind: GoFile, Path: s}, nil
	}
	name, rest, hasOpts := strings.Cut(s, ":")
	if !namePattern.MatchString(name) {
		return Spec{}, fmt.Errorf("%w %q: %q is not a plugin name (lower-case letters, digits, - and _)", ErrSpec, s, name)
	}
	spec := Spec{Kind: Named, Name: name, Options: map[string]string{}}
	if !hasOpts {
		return spec, nil
	}
	for i := 0; ; {
		eq := strings.IndexByte(rest[i:], '=')
		if eq < 0 {
			return Spec{}, fmt.Errorf("%w %q: option %q has no '=value'", ErrSpec, s, rest[i:])
		}
		key := rest[i : i+eq]
		if key == "" || strings.ContainsAny(key, ",'\"") {
			return Spec{}, fmt.Errorf("%w %q: bad option name %q", ErrSpec, s, key)
		}
		if _, dup := spec.Options[key]; dup {
			return Spec{}, fmt.Errorf("%w %q: option %s given twice", ErrSpec, s, key)
		}
		i += eq + 1
		var val string
		if i < len(rest) && (rest[i] == '\'' || rest[i] == '"') {
			q := rest[i]
			var b strings.Builder
			j := i + 1
			for {
				k := strings.IndexByte(rest[j:], q)
				if k < 0 {
					return Spec{}, fmt.Errorf("%w %q: unterminated quote in option %s", ErrSpec, s, key)
				}
				b.WriteString(rest[j : j+k])
				j += k + 1
				if j < len(rest) && rest[j] == q { // doubled quote
					b.WriteByte(q)
					j++
					continue
				}
				break
			}
			val, i = b.String(), j
			if i < len(rest) && rest[i] != ',' {
				return Spec{}, fmt.Errorf("%w %q: text after the quoted value of %s", ErrSpec, s, key)
			}
		} else {
			end := strings.IndexByte(rest[i:], ',')
			if end < 0 {
				end = len(rest) - i
			}
			val = rest[i : i+end]
			if strings.Contains(val, "=") {
				return Spec{}, fmt.Errorf("%w %q: the value of %s contains '='; quote it: %s='%s'", ErrSpec, s, key, key, val)
			}
			i += end
		}
		spec.Options[key] = val
		if i >= len(rest) {
			return spec, nil
		}
		i++ // the comma
		if i >= len(rest) {
			return Spec{}, fmt.Errorf("%w %q: trailing comma", ErrSpec, s)
		}
	}
}

// String formats s back into the grammar of [ParseSpec], quoting where needed.
func (s Spec) String() string {
	switch s.Kind {
	case Exec:
		return "exec:" + s.Command
	case GoFile:
		return s.Path
	}
	var b strings.Builder
	b.WriteString(s.Name)
	keys := make([]string, 0, len(s.Options))
	for k := range s.Options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte(':')
		} else {
			b.WriteByte(',')
		}
		v := s.Options[k]
		b.WriteString(k + "=")
		if strings.ContainsAny(v, ",='\"") {
			b.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
		} else {
			b.WriteString(v)
		}
	}
	return b.String()
}
