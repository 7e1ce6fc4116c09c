package childproc

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the child get SIGKILL when the bench process dies, so an
// interrupted run leaves no proxy behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
