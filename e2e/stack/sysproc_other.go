//go:build unix && !linux

package stack

import "syscall"

// sysProcAttr puts a child in its own process group, so that Ctrl-C in the
// terminal reaches only the launcher, which then stops the child once, in
// order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
