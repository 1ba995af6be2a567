//go:build unix

package main

import "syscall"

// openFileLimit is the process's soft limit on open files (Go raises it to
// the hard limit at start), as parkd reads it.
func openFileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 1 << 30 // unreadable or "unlimited": -capacity sets the real figure
	}
	return int(lim.Cur)
}
