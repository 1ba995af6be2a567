//go:build !unix

package main

// openFileLimit has no rlimit to read here; assume a modest limit.
func openFileLimit() (uint64, error) { return 8192, nil }
