// Package gosrc loads hooks written as Go source at run time, with the yaegi
// interpreter, so a user can change a hook without rebuilding wstap:
//
//	wstap --hook ./examples/hooks/chatdecrypt.go
//
// The file is a main package that imports what it needs (the standard library and
// github.com/wstap/wstap/plugins and wsframe) and exposes each capability through a
// constructor the loader looks up by name, because yaegi hands back a value wrapped
// for one interface only, and type assertions to others fail:
//
//	func NewHook() (plugins.Hook, error)             // a message hook
//	func NewCodec() (plugins.Codec, error)           // a codec layer
//	func NewLifecycle() (plugins.Lifecycle, error)   // OnHandshake, OnOpen, OnClose, Close
//
// A file defines any of them; the codec runs first, then the hook. The funcs of the
// [plugins.Lifecycle] are what a compiled-in plugin would have as methods
// ([plugins.HandshakeHook], [plugins.OpenHook], [plugins.CloseHook], io.Closer); they
// are usually method values of the hook's own value:
//
//	var counter = &count{}
//
//	func NewHook() (plugins.Hook, error) { return counter, nil }
//	func NewLifecycle() (plugins.Lifecycle, error) {
//		return plugins.Lifecycle{OnOpen: counter.OnOpen, OnClose: counter.OnClose}, nil
//	}
//
// A file with only NewLifecycle is a hook that passes every message (to refuse
// handshakes, say), named after the file. Methods of the hook or codec type that
// wstap could not call (an OnOpen, a Close, a Decode without NewCodec) make loading
// fail with a message naming them, rather than being silently ignored.
//
// Start the file with `//go:build ignore` so `go build ./...` and `go vet` skip it.
// Syntax and type errors, missing constructors and constructs yaegi cannot run are
// reported with the file name and, where known, the line, before the proxy starts.
//
// A panic in the file's code is recovered by the chain like any plugin's, as a
// [plugins.PanicError] whose Where gives the line in the file; the interpreter's
// own panic lines do not reach the terminal (they go into the error's stack,
// logged at debug level). What the file writes with the log package goes to
// standard error.
package gosrc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/wstap/wstap/internal/yaegisym"
	"github.com/wstap/wstap/plugins"
)

// ErrNoConstructor is returned when a file defines none of NewHook, NewCodec and
// NewLifecycle.
var ErrNoConstructor = errors.New("gosrc: the file defines none of NewHook, NewCodec and NewLifecycle")

// Load interprets the Go file at path and returns the plugins its constructors
// build, in chain order: the codec (if any) first, then the hook. The first of them
// carries the file's [plugins.Lifecycle], if it has one, as the optional interfaces
// the chain looks for.
func Load(path string) (elems []plugins.Element, err error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	f, err := check(path, src)
	if err != nil {
		return nil, err
	}

	s := &script{path: path, stderr: newStderr(os.Stderr)}
	defer quietLog()()
	defer func() {
		// yaegi panics, instead of returning an error, on some constructs it does not
		// support.
		if p := recover(); p != nil {
			s.stderr.take()
			elems, err = nil, fmt.Errorf("gosrc: %s: the interpreter cannot run this file (%v)%s", path, p, f.unsupportedHint())
		}
	}()
	i := interp.New(interp.Options{
		Env:    os.Environ(), // hooks may read their settings from the environment
		Stderr: s.stderr,
	})
	if err := i.Use(stdlib.Symbols); err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	if err := i.Use(yaegisym.Symbols); err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	if _, err := i.EvalPath(path); err != nil {
		s.stderr.take()
		return nil, fmt.Errorf("gosrc: %w", err)
	}

	c, hasCodec, err := construct[plugins.Codec](s, i, "NewCodec")
	if err != nil {
		return nil, err
	}
	h, hasHook, err := construct[plugins.Hook](s, i, "NewHook")
	if err != nil {
		return nil, err
	}
	lc, hasLifecycle, err := construct[plugins.Lifecycle](s, i, "NewLifecycle")
	if err != nil {
		return nil, err
	}
	if err := f.reachable(hasHook, hasCodec, hasLifecycle, lc); err != nil {
		return nil, err
	}

	life := lifecycle{s: s}
	if hasLifecycle {
		life.f = &lc
	}
	if hasCodec {
		name, err := s.name("NewCodec", c)
		if err != nil {
			return nil, err
		}
		elems = append(elems, &codec{lifecycle: life, name: name, c: c})
		life = lifecycle{s: s} // the lifecycle goes with the first element only
	}
	if hasHook {
		name, err := s.name("NewHook", h)
		if err != nil {
			return nil, err
		}
		elems = append(elems, &hook{lifecycle: life, name: name, h: h})
	}
	if len(elems) == 0 && hasLifecycle {
		// Lifecycle funcs alone: a hook that passes every message.
		name := strings.TrimSuffix(filepath.Base(path), ".go")
		elems = append(elems, &hook{lifecycle: life, name: name})
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("%w: %s (want func NewHook() (plugins.Hook, error), func NewCodec() (plugins.Codec, error) or func NewLifecycle() (plugins.Lifecycle, error))", ErrNoConstructor, path)
	}
	return elems, nil
}

// construct calls main.<name> if the file defines it with the signature
// func() (T, error).
func construct[T any](s *script, i *interp.Interpreter, name string) (t T, ok bool, err error) {
	var zero T
	v, err := i.Eval("main." + name)
	if err != nil {
		return zero, false, nil // not defined
	}
	f, ok := v.Interface().(func() (T, error))
	if !ok {
		return zero, false, fmt.Errorf("gosrc: %s: %s has type %s, want func() (%s, error)", s.path, name, v.Type(), reflect.TypeFor[T]())
	}
	defer func() {
		if p := recover(); p != nil {
			t, ok, err = zero, false, fmt.Errorf("gosrc: %s: %s: %w", s.path, name, s.panicError(p))
		}
	}()
	t, err = f()
	if err != nil {
		return zero, false, fmt.Errorf("gosrc: %s: %s: %w", s.path, name, err)
	}
	if any(t) == nil {
		return zero, false, fmt.Errorf("gosrc: %s: %s returned nil", s.path, name)
	}
	return t, true, nil
}
