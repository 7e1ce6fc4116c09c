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
//	func NewHook() (plugins.Hook, error)   // a message hook
//	func NewCodec() (plugins.Codec, error) // a codec layer
//
// A file may define either or both (the codec runs first). Start it with
// `//go:build ignore` so `go build ./...` and `go vet` skip it. Syntax and type
// errors, missing constructors and constructs yaegi cannot run are reported with the
// file name and, where yaegi gives one, the line, before the proxy starts.
package gosrc

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/wstap/wstap/internal/yaegisym"
	"github.com/wstap/wstap/plugins"
)

// ErrNoConstructor is returned when a file defines neither NewHook nor NewCodec.
var ErrNoConstructor = errors.New("gosrc: the file defines neither NewHook nor NewCodec")

// Load interprets the Go file at path and returns the plugins its constructors
// build, in chain order: the codec (if any) first, then the hook.
func Load(path string) (elems []plugins.Element, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	defer func() {
		// yaegi panics, instead of returning an error, on some constructs it does not
		// support (such as ranging over an integer).
		if p := recover(); p != nil {
			elems, err = nil, fmt.Errorf("gosrc: %s: the interpreter cannot run this file (%v)%s", path, p, unsupportedHint(path))
		}
	}()
	i := interp.New(interp.Options{Env: os.Environ()}) // hooks may read their settings from the environment
	if err := i.Use(stdlib.Symbols); err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	if err := i.Use(yaegisym.Symbols); err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	if _, err := i.EvalPath(path); err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	if codec, ok, err := construct[plugins.Codec](i, path, "NewCodec"); err != nil {
		return nil, err
	} else if ok {
		elems = append(elems, codec)
	}
	if hook, ok, err := construct[plugins.Hook](i, path, "NewHook"); err != nil {
		return nil, err
	} else if ok {
		elems = append(elems, hook)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("%w: %s (want func NewHook() (plugins.Hook, error) or func NewCodec() (plugins.Codec, error))", ErrNoConstructor, path)
	}
	return elems, nil
}

// unsupportedHint points at the first construct in the file that yaegi is known
// not to support, as ", line N: ..." (or "" when it finds none).
func unsupportedHint(path string) string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return ""
	}
	hint := ""
	ast.Inspect(f, func(n ast.Node) bool {
		if r, ok := n.(*ast.RangeStmt); ok && hint == "" {
			if lit, ok := r.X.(*ast.BasicLit); ok && lit.Kind == token.INT {
				hint = fmt.Sprintf("; probably %s: ranging over an integer is not supported by yaegi, write for i := 0; i < n; i++", fset.Position(r.Pos()))
			}
		}
		return hint == ""
	})
	return hint
}

// construct calls main.<name> if the file defines it with the signature
// func() (T, error).
func construct[T any](i *interp.Interpreter, path, name string) (T, bool, error) {
	var zero T
	v, err := i.Eval("main." + name)
	if err != nil {
		return zero, false, nil // not defined
	}
	f, ok := v.Interface().(func() (T, error))
	if !ok {
		return zero, false, fmt.Errorf("gosrc: %s: %s has type %s, want func() (%s, error)", path, name, v.Type(), reflect.TypeFor[T]())
	}
	t, err := f()
	if err != nil {
		return zero, false, fmt.Errorf("gosrc: %s: %s: %w", path, name, err)
	}
	if any(t) == nil {
		return zero, false, fmt.Errorf("gosrc: %s: %s returned nil", path, name)
	}
	return t, true, nil
}
