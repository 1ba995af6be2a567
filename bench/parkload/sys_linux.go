//go:build linux

package main

import "syscall"

// childSysProcAttr makes the kernel kill a child when the parent dies, however it dies.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT from linux/in.h; package syscall lacks it.
const ipBindAddressNoPort = 24

// bindNoPort lets connect(), not bind(), choose the ephemeral port of a socket with a
// fixed source address: bind() would reserve a port for every destination and search
// the whole range, which slows down and runs out once tens of thousands are taken.
func bindNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	_ = serr // an old kernel without the option still works, only slower
	return nil
}
