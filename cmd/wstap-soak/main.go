// Command wstap-soak is the project's soak test: it runs the wstap binary under
// loads and attacks no unit test can afford (thousands of connections announcing
// huge frames, compression bombs, malformed frames under load, slow or silent
// clients inside tunnels…) and holds wstap to bounds on its memory, its file
// descriptors and what its peers see. Each scenario prints what it measured and one
// [PASS] or [FAIL] line per target; the exit status is 1 when a target fails.
//
//	go run ./cmd/wstap-soak                  # every scenario
//	go run ./cmd/wstap-soak -run announce    # some: a comma-separated list
//	go run ./cmd/wstap-soak -list            # what each scenario does
//
// It needs Linux (/proc) and a few GB of free memory for what it tries to make
// wstap allocate. Not part of `make test`: it takes minutes and both cores.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wstap/wstap/internal/childproc"
)

// scenario is one soak run: run starts what it needs through env and returns the
// targets it checked.
type scenario struct {
	name string
	doc  string
	run  func(env *env) ([]check, error)
}

// scenarios are every scenario, in the order they run.
var scenarios []scenario

// register adds a scenario; called from the init functions of the scenario files.
func register(s scenario) { scenarios = append(scenarios, s) }

// check is one target: what is measured against which bound, and what was found.
type check struct {
	what string
	got  string
	ok   bool
}

// env is what scenarios share: the wstap binary and a scratch directory.
type env struct {
	bin string
	tmp string
}

// wstap starts the wstap binary with a fresh CA and the given arguments (after
// "proxy --listen 127.0.0.1:0 --quiet").
func (e *env) wstap(name string, args ...string) (*childproc.Child, error) {
	ca, err := os.MkdirTemp(e.tmp, "ca-")
	if err != nil {
		return nil, err
	}
	return childproc.StartWstapWith(name, e.bin, filepath.Clean(ca), nil, args...)
}

func main() {
	run := flag.String("run", "", "comma-separated scenarios to run (default: all)")
	list := flag.Bool("list", false, "list the scenarios and exit")
	bin := flag.String("wstap", "", "the wstap binary (default: build ./cmd/wstap)")
	flag.Parse()
	if *list {
		for _, s := range scenarios {
			fmt.Printf("%-10s %s\n", s.name, s.doc)
		}
		return
	}
	var want []string
	if *run != "" {
		want = strings.Split(*run, ",")
		for _, w := range want {
			if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == w }) {
				fmt.Fprintf(os.Stderr, "wstap-soak: unknown scenario %q (-list lists them)\n", w)
				os.Exit(2)
			}
		}
	}
	tmp, err := os.MkdirTemp("", "wstap-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "wstap-soak:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(tmp)
	e := &env{bin: *bin, tmp: tmp}
	if e.bin == "" {
		if e.bin, err = childproc.BuildWstap(tmp); err != nil {
			fmt.Fprintln(os.Stderr, "wstap-soak:", err)
			os.Exit(1)
		}
	}
	failed := false
	for _, s := range scenarios {
		if want != nil && !slices.Contains(want, s.name) {
			continue
		}
		fmt.Printf("== %s: %s\n", s.name, s.doc)
		start := time.Now()
		checks, err := s.run(e)
		if err != nil {
			fmt.Printf("[FAIL] %s: %v\n", s.name, err)
			failed = true
		}
		for _, c := range checks {
			mark := "PASS"
			if !c.ok {
				mark, failed = "FAIL", true
			}
			fmt.Printf("[%s] %s: %s\n", mark, c.what, c.got)
		}
		fmt.Printf("   (%s)\n", time.Since(start).Round(time.Second))
	}
	if failed {
		os.Exit(1)
	}
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
