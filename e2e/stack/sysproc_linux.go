package stack

import "syscall"

// sysProcAttr puts a child in its own process group, so that Ctrl-C in the
// terminal reaches only the launcher, which then stops the child once, in
// order. Pdeathsig kills the child if the launcher dies without stopping it
// (a test binary killed on timeout), so no orphan keeps a port or a database.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
