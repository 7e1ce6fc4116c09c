package gosrc

import (
	"bytes"
	"io"
	"log"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// stderr is the interpreter's standard error. Each time a panic leaves an
// interpreted function, yaegi writes a line there ("hook.go:16:6: panic:
// main.OnMessage(...)") before the panic goes on into wstap, whose chain recovers
// it and logs it once per connection. Printed, those lines would flood the terminal
// (one per message); stderr keeps them instead, by goroutine, for the adapter that
// recovers the same panic on the same goroutine (script.panicError). Everything
// else, such as what the file logs with the log package, goes to out.
type stderr struct {
	out io.Writer

	mu    sync.Mutex
	lines map[uint64][]string // by goroutine id
}

// Bounds on what stderr keeps: a panic through deep recursion writes a line per
// frame, and a file that recovers its own panics leaves lines nobody takes.
const (
	maxTraceLines = 32
	maxGoroutines = 1024
)

// panicLine matches what yaegi's runCfg prints when a panic leaves a function.
var panicLine = regexp.MustCompile(`^(.+?): panic: (.+)\(\.\.\.\)\n$`)

func newStderr(out io.Writer) *stderr {
	return &stderr{out: out, lines: map[uint64][]string{}}
}

// Write keeps yaegi's panic lines and passes the rest to w.out.
func (w *stderr) Write(p []byte) (int, error) {
	if !panicLine.Match(p) {
		return w.out.Write(p)
	}
	id := goid()
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.lines[id]
	if !ok && len(w.lines) >= maxGoroutines {
		clear(w.lines)
	}
	line := strings.TrimSuffix(string(p), "\n")
	if len(l) >= maxTraceLines {
		l[maxTraceLines-1] = "…"
	} else {
		l = append(l, line)
	}
	w.lines[id] = l
	return len(p), nil
}

// take returns and forgets the panic lines written on this goroutine.
func (w *stderr) take() []string {
	id := goid()
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lines[id]
	delete(w.lines, id)
	return l
}

// where turns a panic line into "hook.go:16:6 in main.OnMessage".
func where(line string) string {
	m := panicLine.FindStringSubmatch(line + "\n")
	if m == nil {
		return line
	}
	return m[1] + " in " + m[2]
}

// goid returns the id of the calling goroutine, from the first line of its stack
// ("goroutine 18 [running]:"). Only the panic path calls it.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// yaegi's type checker logs a line with the standard logger ("nil type") just
// before it panics on some constructs it cannot handle; Load turns the panic into
// its error, and quietLog keeps that line out of the terminal while files load.
// The standard logger is the process's, so quietLog swaps in a filter that passes
// every other line to the writer it replaced, and puts that writer back when the
// last concurrent Load ends.
var quiet struct {
	sync.Mutex
	users int
	prev  io.Writer
}

// yaegiLogLine matches the messages of yaegi's log.Panic calls, after whatever
// prefix the standard logger's flags add.
var yaegiLogLine = regexp.MustCompile(`(^|\s)(nil type|nil reflect type|.*compositeGenerator not implemented for type kind: .*)\n$`)

// quietLog installs the filter; call the function it returns to remove it.
func quietLog() (restore func()) {
	quiet.Lock()
	defer quiet.Unlock()
	if quiet.users == 0 {
		quiet.prev = log.Writer()
		log.SetOutput(logFilter{quiet.prev})
	}
	quiet.users++
	return func() {
		quiet.Lock()
		defer quiet.Unlock()
		if quiet.users--; quiet.users == 0 {
			log.SetOutput(quiet.prev)
			quiet.prev = nil
		}
	}
}

// logFilter drops yaegi's log lines and passes the rest to out.
type logFilter struct{ out io.Writer }

func (f logFilter) Write(p []byte) (int, error) {
	if yaegiLogLine.Match(p) {
		return len(p), nil
	}
	return f.out.Write(p)
}
