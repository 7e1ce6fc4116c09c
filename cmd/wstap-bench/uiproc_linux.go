package main

import (
	"os/exec"
	"syscall"
)

// dieWithBench makes cmd get SIGKILL when the bench dies.
func dieWithBench(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
