//go:build unix

package main

import "syscall"

// openFileLimit is this process's soft RLIMIT_NOFILE (Go raises it to the hard limit at start).
func openFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return uint64(rl.Cur), nil
}
