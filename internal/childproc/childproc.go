// Package childproc runs programs the project measures (wstap itself, the ceilings
// it is compared with) as child processes, and reads what they cost from /proc:
// CPU time, memory, system calls, open files. The benchmark and soak commands
// share it.
package childproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Child is a program running as a child process (wstap, a raw tunnel, mitmdump),
// so that its CPU time and memory can be read from /proc.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	Addr string // where it listens
	log  *tail
	bad  *tail // the lines logged at level WARN or ERROR (the last 20)
	nbad atomic.Int64
	done chan struct{}
}

// tail keeps the last lines a child printed, for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 20 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, s)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

var listeningRE = regexp.MustCompile(`listening on (\S+)`)

// Start starts cmd and waits until it is ready: when addr is empty, until it
// prints "listening on ADDR" on stderr; otherwise until addr accepts connections
// and every file in waitFiles exists.
func Start(name string, cmd *exec.Cmd, addr string, waitFiles ...string) (*Child, error) {
	c := &Child{Name: name, Cmd: cmd, log: &tail{}, bad: &tail{}, done: make(chan struct{})}
	dieWithParent(cmd)
	cmd.Stdout = logWriter{c.log}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.log.add(line)
			if strings.Contains(line, " level=WARN ") || strings.Contains(line, " level=ERROR ") {
				c.bad.add(line)
				c.nbad.Add(1)
			}
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait() // after the last read: Wait closes the pipe
		close(c.done)
	}()
	deadline := time.After(60 * time.Second)
	if addr == "" {
		select {
		case c.Addr = <-addrc:
			fmt.Fprintf(os.Stderr, "%s (pid %d) listening on %s\n", name, cmd.Process.Pid, c.Addr)
			return c, nil
		case <-c.done:
			return nil, fmt.Errorf("%s exited before listening:\n%s", name, c.log)
		case <-deadline:
			c.Stop()
			return nil, fmt.Errorf("%s did not say where it listens within 60s:\n%s", name, c.log)
		}
	}
	c.Addr = addr
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			ok := true
			for _, f := range waitFiles {
				if _, err := os.Stat(f); err != nil {
					ok = false
				}
			}
			if ok {
				fmt.Fprintf(os.Stderr, "%s (pid %d) listening on %s\n", name, cmd.Process.Pid, c.Addr)
				return c, nil
			}
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("%s exited before listening:\n%s", name, c.log)
		case <-deadline:
			c.Stop()
			return nil, fmt.Errorf("%s did not accept connections on %s within 60s:\n%s", name, addr, c.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type logWriter struct{ t *tail }

func (w logWriter) Write(p []byte) (int, error) {
	for l := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.add(l)
	}
	return len(p), nil
}

// Stop ends the child (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (c *Child) Stop() {
	if c == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.Cmd.Process.Kill()
		<-c.done
	}
}

// Alive returns an error, with the last lines it printed, once the child has exited.
func (c *Child) Alive() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited:\n%s", c.Name, c.log)
	default:
		return nil
	}
}

// CPUTime returns the user+system CPU time the child has used so far.
func (c *Child) CPUTime() time.Duration {
	if c == nil {
		return 0
	}
	return pidCPU(c.Cmd.Process.Pid)
}

// pidCPU returns the user+system CPU time process pid has used so far (0 if gone).
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is 14, stime 15
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// Problems returns the lines the child logged at level WARN or ERROR (the last 20,
// after a count when there were more).
func (c *Child) Problems() []string {
	n := c.nbad.Load()
	if n == 0 {
		return nil
	}
	c.bad.mu.Lock()
	defer c.bad.mu.Unlock()
	lines := slices.Clone(c.bad.lines)
	if int(n) > len(lines) {
		lines = append([]string{fmt.Sprintf("(%d lines, the last %d follow)", n, len(lines))}, lines...)
	}
	return lines
}

// TreeCPU returns the user+system CPU time used so far by the child and the
// processes it started (such as exec hooks), living ones only.
func (c *Child) TreeCPU() time.Duration {
	if c == nil {
		return 0
	}
	var sum time.Duration
	todo := []int{c.Cmd.Process.Pid}
	for len(todo) > 0 && len(todo) < 1000 {
		pid := todo[0]
		todo = todo[1:]
		sum += pidCPU(pid)
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
			for f := range strings.FieldsSeq(string(b)) {
				if k, err := strconv.Atoi(f); err == nil {
					todo = append(todo, k)
				}
			}
		}
	}
	return sum
}

// Syscalls returns how many read and write system calls the child has made so far
// (/proc/PID/io syscr + syscw: read, write and their vector forms; not splice).
func (c *Child) Syscalls() int64 {
	if c == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", c.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	var n int64
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "syscr" || k == "syscw" {
			x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			n += x
		}
	}
	return n
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// Mem returns the child's resident set size now and its peak, in bytes.
func (c *Child) Mem() (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", c.Cmd.Process.Pid, line, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/PID/status")
	}
	return rss, hwm, nil
}

// BuildWstap builds ./cmd/wstap into dir (the bench runs from inside the module).
func BuildWstap(dir string) (string, error) {
	out := filepath.Join(dir, "wstap")
	cmd := exec.Command("go", "build", "-o", out, "github.com/wstap/wstap/cmd/wstap")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/wstap (run the bench from inside the wstap module, or pass -wstap): %w", err)
	}
	return out, nil
}

// StartWstap runs wstap with an empty chain and the CA in caDir.
func StartWstap(bin, caDir string) (*Child, error) {
	return StartWstapWith("wstap", bin, caDir, nil)
}

// StartWstapWith runs wstap with the CA in caDir, env added to the environment and
// extra arguments (--hook ...).
func StartWstapWith(name, bin, caDir string, env []string, extra ...string) (*Child, error) {
	args := append([]string{"proxy", "--listen", "127.0.0.1:0", "--quiet", "--upstream-insecure"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "WSTAP_CA_DIR="+caDir), env...)
	return Start(name, cmd, "")
}
