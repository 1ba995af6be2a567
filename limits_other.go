//go:build !unix

package main

// openFileLimit has no portable reading off Unix; parkd assumes a modest
// one, and -capacity sets the real figure.
func openFileLimit() (int, error) { return 8192, nil }
