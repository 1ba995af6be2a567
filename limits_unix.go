//go:build unix

package main

import "syscall"

// openFileLimit is the process's soft limit on open files.
func openFileLimit() (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur > 1<<30 { // "unlimited" and its kin
		return 1 << 30, nil
	}
	return int(lim.Cur), nil
}
