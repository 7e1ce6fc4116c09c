package cmd_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// proc is a process a test started (wstap's binary, the chat example), with its
// output kept. It is killed when the test ends if it is still running.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *outBuf
	done           chan struct{}
	// stopWithin is how long the process may take to exit after SIGINT.
	stopWithin time.Duration
}

// startProc starts path with args in dir (the test's working directory when
// empty) and the environment env.
func startProc(t *testing.T, path, dir string, env []string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	p := &proc{name: path, stdout: newOutBuf(), stderr: newOutBuf(), done: make(chan struct{}), stopWithin: 10 * time.Second}
	p.cmd = exec.CommandContext(ctx, path, args...)
	p.cmd.Dir, p.cmd.Env = dir, env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits until out (the process's stdout or stderr) matches re and returns the
// last submatch.
func (p *proc) wait(t *testing.T, out *outBuf, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[len(m)-1]
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m[len(m)-1]
			}
			t.Fatalf("%s exited (%v) before printing %q; stdout:\n%s\nstderr:\n%s", p.name, p.cmd.ProcessState, re, p.stdout, p.stderr)
		case <-deadline:
			t.Fatalf("%s printed no %q within 30 s; stdout:\n%s\nstderr:\n%s", p.name, re, p.stdout, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// finish waits for the process to exit on its own and returns its status.
func (p *proc) finish(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still running after 60 s; stdout:\n%s\nstderr:\n%s", p.name, p.stdout, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// interrupt sends SIGINT and returns the exit status; the process must end within
// stopWithin.
func (p *proc) interrupt(t *testing.T) int {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT to %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(p.stopWithin):
		t.Fatalf("%s still running %v after SIGINT; stderr:\n%s", p.name, p.stopWithin, p.stderr)
	}
	t.Logf("%s exited %v after SIGINT", p.name, time.Since(start).Round(time.Millisecond))
	return p.cmd.ProcessState.ExitCode()
}
