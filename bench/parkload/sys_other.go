//go:build !linux

package main

import "syscall"

// childSysProcAttr: without Pdeathsig a child still ends when its stdin closes.
func childSysProcAttr() *syscall.SysProcAttr { return nil }

// bindNoPort has nothing to set outside Linux.
func bindNoPort(network, address string, c syscall.RawConn) error { return nil }
