// Package tcpdumptest records loopback traffic with tcpdump, for tests that
// check wstap's sniffer on real captures. It is used by tests only.
package tcpdumptest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Recorder records loopback traffic on one TCP port into a file.
type Recorder struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stderr bytes.Buffer // what tcpdump printed after "listening on"
	done   chan struct{}
	file   string
}

// Start starts tcpdump on lo for port, writing to file, and waits until it
// captures. Without tcpdump, or without permission to capture, it fails the test
// when the CI environment variable is set and skips it otherwise.
func Start(t testing.TB, file string, port int) *Recorder {
	t.Helper()
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tcpdump is not installed, and CI is set")
		}
		t.Skip("tcpdump is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	args := []string{"-i", "lo", "-n", "-U", "--immediate-mode", "-B", "32768", "-s", "0", "-w", file}
	if os.Geteuid() == 0 {
		args = append(args, "-Z", "root") // keep the right to write into the test's directory
	}
	args = append(args, fmt.Sprintf("tcp port %d", port))
	r := &Recorder{cmd: exec.CommandContext(ctx, tcpdump, args...), cancel: cancel, done: make(chan struct{}), file: file}
	r.cmd.WaitDelay = 5 * time.Second
	pipe, err := r.cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("tcpdump: %v", err)
	}
	listening := make(chan bool, 1)
	var head bytes.Buffer // stderr up to "listening on"
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(pipe)
		ok := false
		for sc.Scan() {
			if !ok {
				head.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "listening on lo") {
					ok = true
					listening <- true
				}
				continue
			}
			r.stderr.WriteString(sc.Text() + "\n")
		}
		if !ok {
			listening <- false
		}
	}()
	var ok bool
	select {
	case ok = <-listening:
	case <-time.After(20 * time.Second):
	}
	if !ok {
		cancel()
		<-r.done
		r.cmd.Wait()
		msg := strings.TrimSpace(head.String())
		if os.Getenv("CI") == "" && (strings.Contains(msg, "ermission") || strings.Contains(msg, "not permitted")) {
			t.Skipf("tcpdump may not capture on lo here: %s", msg)
		}
		t.Fatalf("tcpdump did not start capturing: %s", msg)
	}
	t.Cleanup(func() { r.kill() })
	return r
}

// Stop waits until the capture file stops growing (every packet written: -U),
// interrupts tcpdump and waits for it; it reports the packets the kernel dropped.
func (r *Recorder) Stop(t testing.TB) {
	t.Helper()
	last, stable := int64(-1), 0
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && stable < 5; {
		time.Sleep(100 * time.Millisecond)
		if fi, err := os.Stat(r.file); err == nil && fi.Size() == last {
			stable++
		} else if err == nil {
			last, stable = fi.Size(), 0
		}
	}
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-r.done
	err := r.cmd.Wait()
	r.cancel()
	if err != nil {
		t.Fatalf("tcpdump: %v: %s", err, r.stderr.Bytes())
	}
	out := r.stderr.String()
	t.Logf("tcpdump: %s", strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
	if !strings.Contains("\n"+out, "\n0 packets dropped by kernel") {
		t.Fatalf("tcpdump dropped packets: %s", out)
	}
}

func (r *Recorder) kill() {
	r.cancel()
	<-r.done
	r.cmd.Wait()
}
