//go:build !unix

package main

// openFileLimit has no portable reading off Unix; like parkd, assume a
// modest one, and let -capacity set the real figure.
func openFileLimit() int { return 8192 }
