package gosrc

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// The elements Load returns are Go values that call into the interpreter: every
// call recovers a panic of the file's code and panics again with a
// *plugins.PanicError that says where in the file it happened (see script.repanic),
// and the first element carries the file's lifecycle funcs as the optional
// interfaces the chain looks for.

// script is one loaded file, shared by the elements it gave.
type script struct {
	path   string
	stderr *stderr // the interpreter's standard error
}

// repanic is deferred by every call into the file: it turns a panic into a
// *plugins.PanicError with the position in the file, and panics again with it for
// the chain to recover and log (once per connection).
func (s *script) repanic() {
	if p := recover(); p != nil {
		panic(s.panicError(p))
	}
}

// panicError describes p, recovered on this goroutine: the trace yaegi wrote for it
// gives the position (the innermost interpreted function) and goes into the
// stack, which the chain logs at debug level only.
func (s *script) panicError(p any) *plugins.PanicError {
	if pe, ok := p.(*plugins.PanicError); ok {
		return pe
	}
	pe := &plugins.PanicError{Value: p}
	var b strings.Builder
	if lines := s.stderr.take(); len(lines) > 0 {
		pe.Where = where(lines[0])
		b.WriteString("interpreter trace, innermost first:\n")
		for _, l := range lines {
			b.WriteString("\t" + l + "\n")
		}
		b.WriteString("\n")
	}
	b.Write(debug.Stack())
	pe.Stack = []byte(b.String())
	return pe
}

// name asks an element the file built for its name, once: the chain calls Name
// outside its panic recovery.
func (s *script) name(ctor string, e plugins.Element) (name string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gosrc: %s: Name of what %s returned: %w", s.path, ctor, s.panicError(p))
		}
	}()
	return e.Name(), nil
}

// hook is a message hook of the file, or, with h nil, a hook that passes every
// message (a file with lifecycle funcs only).
type hook struct {
	lifecycle
	name string
	h    plugins.Hook
}

// Name returns the name the script's hook gave when loaded.
func (h *hook) Name() string { return h.name }

// OnMessage calls the script's OnMessage.
func (h *hook) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	if h.h == nil {
		return plugins.Verdict{}, nil
	}
	defer h.s.repanic()
	return h.h.OnMessage(ctx, m)
}

// codec is a codec of the file.
type codec struct {
	lifecycle
	name string
	c    plugins.Codec
}

// Name returns the name the script's codec gave when loaded.
func (c *codec) Name() string { return c.name }

// Decode calls the script's Decode.
func (c *codec) Decode(ctx context.Context, m *plugins.Message) ([]byte, error) {
	defer c.s.repanic()
	return c.c.Decode(ctx, m)
}

// Encode calls the script's Encode.
func (c *codec) Encode(ctx context.Context, m *plugins.Message, decoded []byte) ([]byte, error) {
	defer c.s.repanic()
	return c.c.Encode(ctx, m, decoded)
}

// lifecycle calls the funcs of the file's [plugins.Lifecycle]; f is nil for the
// elements that do not carry it, and a nil func is not called.
type lifecycle struct {
	s *script
	f *plugins.Lifecycle
}

// OnHandshake calls the script's OnHandshake, if any.
func (l lifecycle) OnHandshake(ctx context.Context, h *plugins.Handshake) error {
	if l.f == nil || l.f.OnHandshake == nil {
		return nil
	}
	defer l.s.repanic()
	return l.f.OnHandshake(ctx, h)
}

// OnOpen calls the script's OnOpen, if any.
func (l lifecycle) OnOpen(ctx context.Context, c *plugins.Conn) {
	if l.f == nil || l.f.OnOpen == nil {
		return
	}
	defer l.s.repanic()
	l.f.OnOpen(ctx, c)
}

// OnClose calls the script's OnClose, if any.
func (l lifecycle) OnClose(ctx context.Context, c *plugins.Conn, code wsframe.CloseCode, reason string) {
	if l.f == nil || l.f.OnClose == nil {
		return
	}
	defer l.s.repanic()
	l.f.OnClose(ctx, c, code, reason)
}

// Close calls the script's Close, if any. A panic is returned as the error: the
// chain's Close does not recover.
func (l lifecycle) Close() (err error) {
	if l.f == nil || l.f.Close == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = l.s.panicError(p)
		}
	}()
	return l.f.Close()
}

// Interface guards.
var (
	_ plugins.Hook          = (*hook)(nil)
	_ plugins.Codec         = (*codec)(nil)
	_ plugins.HandshakeHook = (*hook)(nil)
	_ plugins.OpenHook      = (*codec)(nil)
	_ plugins.CloseHook     = (*hook)(nil)
)
