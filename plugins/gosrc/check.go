package gosrc

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"strings"

	"github.com/wstap/wstap/plugins"
)

// source is a hook file as go/parser and go/types see it, checked before and after
// the interpreter runs it: go/types points at what yaegi cannot run with a clear
// message, where yaegi would panic, and the method declarations show what a
// constructor fails to expose.
type source struct {
	fset  *token.FileSet
	file  *ast.File
	info  *types.Info
	types []*typeMethods // types with methods, in the order of the file
}

// typeMethods are the methods of one type of the file that the chain would call on
// a compiled-in plugin (their parameter and result counts match).
type typeMethods struct {
	name    string
	methods map[string]token.Pos // where each is declared
}

// chainMethods are the methods the chain calls on a plugin beyond Name, with their
// parameter and result counts.
var chainMethods = map[string][2]int{
	"OnMessage":   {2, 2},
	"Decode":      {2, 2},
	"Encode":      {3, 2},
	"OnHandshake": {2, 1},
	"OnOpen":      {2, 0},
	"OnClose":     {4, 0},
	"Close":       {0, 1},
}

// lifecycleFuncs are the fields of [plugins.Lifecycle], which stand for the methods
// of the same names.
var lifecycleFuncs = []string{"OnHandshake", "OnOpen", "OnClose", "Close"}

// check parses src and rejects what yaegi is known not to run. go/types checks the
// file without the packages it imports (what depends on them has no type): enough
// for local variables and literals.
func check(path string, src []byte) (*source, error) {
	s := &source{fset: token.NewFileSet()}
	var err error
	s.file, err = parser.ParseFile(s.fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("gosrc: %w", err)
	}
	s.info = &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{
		Importer: importerFunc(func(string) (*types.Package, error) { return nil, errNoImport }),
		Error:    func(error) {}, // yaegi reports real errors, with its own knowledge of the imports
	}
	conf.Check("main", s.fset, []*ast.File{s.file}, s.info) //nolint:errcheck // see Error above

	var bad error
	ast.Inspect(s.file, func(n ast.Node) bool {
		if r, ok := n.(*ast.RangeStmt); ok && bad == nil {
			switch s.rangeOver(r) {
			case "int":
				bad = fmt.Errorf("gosrc: %s: ranging over an integer is not supported by yaegi; write for i := 0; i < n; i++", s.fset.Position(r.For))
			case "func":
				bad = fmt.Errorf("gosrc: %s: ranging over a function (an iterator) is not supported by yaegi; call it with a yield function instead", s.fset.Position(r.For))
			}
		}
		return bad == nil
	})
	if bad != nil {
		return nil, bad
	}
	s.collectMethods()
	return s, nil
}

var errNoImport = errors.New("not imported when checking")

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

// rangeOver says what r ranges over: "int", "func", "unknown" (go/types could not
// tell, for instance because it depends on an import) or "" (something yaegi runs).
func (s *source) rangeOver(r *ast.RangeStmt) string {
	if call, ok := ast.Unparen(r.X).(*ast.CallExpr); ok {
		if id, ok := ast.Unparen(call.Fun).(*ast.Ident); ok {
			if _, builtin := s.info.Uses[id].(*types.Builtin); builtin && (id.Name == "len" || id.Name == "cap") {
				return "int"
			}
		}
	}
	tv, ok := s.info.Types[r.X]
	if !ok || tv.Type == nil {
		return "unknown"
	}
	switch u := tv.Type.Underlying().(type) {
	case *types.Basic:
		if u.Info()&types.IsInteger != 0 {
			return "int"
		}
		if u.Kind() == types.Invalid {
			return "unknown"
		}
	case *types.Signature:
		return "func"
	}
	return ""
}

// unsupportedHint points at the construct that probably made yaegi panic, as
// "; probably FILE:LINE:COL: ..." (or "" when it finds none): the first range over
// a value whose type go/types could not tell.
func (s *source) unsupportedHint() string {
	hint := ""
	ast.Inspect(s.file, func(n ast.Node) bool {
		if r, ok := n.(*ast.RangeStmt); ok && hint == "" && s.rangeOver(r) == "unknown" {
			hint = fmt.Sprintf("; probably %s: ranging over an integer or a function is not supported by yaegi", s.fset.Position(r.For))
		}
		return hint == ""
	})
	return hint
}

// collectMethods lists, by receiver type, the methods named and shaped like those
// the chain calls.
func (s *source) collectMethods() {
	byName := map[string]*typeMethods{}
	for _, d := range s.file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil || len(fd.Recv.List) != 1 {
			continue
		}
		want, ok := chainMethods[fd.Name.Name]
		if !ok || fieldCount(fd.Type.Params) != want[0] || fieldCount(fd.Type.Results) != want[1] {
			continue
		}
		name := recvName(fd.Recv.List[0].Type)
		t := byName[name]
		if t == nil {
			t = &typeMethods{name: name, methods: map[string]token.Pos{}}
			byName[name] = t
			s.types = append(s.types, t)
		}
		t.methods[fd.Name.Name] = fd.Pos()
	}
}

// fieldCount counts the parameters or results of a signature.
func fieldCount(l *ast.FieldList) int {
	if l == nil {
		return 0
	}
	n := 0
	for _, f := range l.List {
		n += max(len(f.Names), 1)
	}
	return n
}

// recvName is the type name of a receiver: T for T, *T, T[P] and *T[P].
func recvName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return "?"
		}
	}
}

// reachable fails when the file has methods the chain would call on a compiled-in
// plugin but that no constructor exposes: the interpreter hands wstap a value with
// the methods of one interface, so these would be silently ignored. A type is a
// hook if it has OnMessage and a codec if it has Decode and Encode; a Close counts
// only on those (other types may well have one), OnHandshake, OnOpen and OnClose on
// any type.
func (s *source) reachable(hasHook, hasCodec, hasLifecycle bool, lc plugins.Lifecycle) error {
	set := map[string]bool{
		"OnHandshake": lc.OnHandshake != nil,
		"OnOpen":      lc.OnOpen != nil,
		"OnClose":     lc.OnClose != nil,
		"Close":       lc.Close != nil,
	}
	for _, t := range s.types {
		has := func(m string) bool { return t.methods[m].IsValid() }
		pos := func(m string) token.Position { return s.fset.Position(t.methods[m]) }
		isHook := has("OnMessage")
		isCodec := has("Decode") && has("Encode")
		if isCodec && !hasCodec {
			return fmt.Errorf("gosrc: %s: type %s has Decode and Encode, which wstap never calls without a constructor: define func NewCodec() (plugins.Codec, error)", pos("Decode"), t.name)
		}
		if isHook && !hasHook && !isCodec {
			return fmt.Errorf("gosrc: %s: type %s has OnMessage, which wstap never calls without a constructor: define func NewHook() (plugins.Hook, error)", pos("OnMessage"), t.name)
		}
		var missing []string
		for _, m := range lifecycleFuncs {
			if has(m) && !set[m] && (m != "Close" || isHook || isCodec) {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			continue
		}
		fields := make([]string, len(missing))
		for i, m := range missing {
			fields[i] = m + ": v." + m
		}
		what := fmt.Sprintf("type %s has %s, which wstap cannot call on a value of the interpreter (it sees only the Hook or Codec methods)", t.name, andList(missing))
		if !hasLifecycle {
			return fmt.Errorf("gosrc: %s: %s: define func NewLifecycle() (plugins.Lifecycle, error) returning plugins.Lifecycle{%s}, with v the value NewHook or NewCodec returns", pos(missing[0]), what, strings.Join(fields, ", "))
		}
		return fmt.Errorf("gosrc: %s: %s: set %s in the plugins.Lifecycle that NewLifecycle returns", pos(missing[0]), what, andList(missing))
	}
	return nil
}

// andList joins words as "a", "a and b", "a, b and c".
func andList(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
