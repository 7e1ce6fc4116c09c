// Package load builds a hook chain from --hook specs ([plugins.ParseSpec]): registered
// plugins, Go source files (package gosrc) and external processes (package
// exechook). Every front end (the proxy, the sniffer, the client, the UI) builds its
// chain here.
package load

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/exechook"
	"github.com/wstap/wstap/plugins/gosrc"
)

// Options are the settings of a chain built by [Chain].
type Options struct {
	// Policy says what a failing hook does to its connection.
	Policy plugins.ErrorPolicy
	// Logger receives the chain's and the plugins' logs; nil discards them.
	Logger *slog.Logger
}

// Elements builds the elements of specs, in order. On error, the processes it
// already started are stopped, and the error names the spec and, when the spec has
// one, its origin (a config file's line).
func Elements(specs []plugins.Spec, opts Options) (elems []plugins.Element, err error) {
	defer func() {
		if err != nil {
			Close(elems)
			elems = nil
		}
	}()
	for _, s := range specs {
		loaded, err := element(s, opts.Logger)
		if err != nil {
			if s.Origin != "" {
				return elems, fmt.Errorf("%s: %w", s.Origin, err)
			}
			return elems, err
		}
		elems = append(elems, loaded...)
	}
	return elems, nil
}

// Chain builds the chain of specs, in order (see [Elements] for errors).
func Chain(specs []plugins.Spec, opts Options) (*plugins.Chain, error) {
	elems, err := Elements(specs, opts)
	if err != nil {
		return nil, err
	}
	chain, err := plugins.NewChain(opts.Policy, opts.Logger, elems...)
	if err != nil {
		Close(elems)
		return nil, err
	}
	return chain, nil
}

// Close closes the elements that hold resources (hook processes).
func Close(elems []plugins.Element) {
	for _, e := range elems {
		if c, ok := e.(io.Closer); ok {
			c.Close()
		}
	}
}

// element loads one spec; a Go source file may give a codec and a hook.
func element(s plugins.Spec, log *slog.Logger) ([]plugins.Element, error) {
	switch s.Kind {
	case plugins.Named:
		p, err := plugins.New(s.Name, s.Options)
		if err != nil {
			return nil, err
		}
		if l, ok := p.(interface{ SetLogger(*slog.Logger) }); ok && log != nil {
			l.SetLogger(log)
		}
		return []plugins.Element{p}, nil
	case plugins.GoFile:
		return gosrc.Load(s.Path)
	case plugins.Exec:
		p, err := exechook.Start(s.Command, log)
		if err != nil {
			return nil, err
		}
		return []plugins.Element{p}, nil
	}
	return nil, fmt.Errorf("plugins: spec %q of unknown kind %d", s.String(), s.Kind)
}
