// Package hangup notices when the client of a parked request goes away.
//
// fasthttp does not: while a handler waits, nobody reads the connection,
// and RequestCtx.Done fires only on server shutdown. On Linux a Watcher
// keeps one epoll instance that watches parked connections for EPOLLRDHUP
// (the peer closed or half-closed) and EPOLLHUP/EPOLLERR (reset, failed),
// with EPOLLONESHOT and without EPOLLIN, so pipelined bytes from a live
// client do not wake it and each watch fires at most once. One goroutine
// waits on it for the whole process. On other systems Watch returns
// ErrUnsupported and parked requests are only released by their outcome.
package hangup

import (
	"errors"
	"net"
	"syscall"
)

var (
	// ErrUnsupported: this system or this connection cannot be watched.
	ErrUnsupported = errors.New("hang-up detection is not supported for this connection")
	// ErrClosed: the Watcher was closed.
	ErrClosed = errors.New("hang-up watcher is closed")
)

// rawConn reaches the socket under c, through the wrappers that fasthttp
// (a hijacked conn), crypto/tls and parkd put around it.
func rawConn(c net.Conn) (syscall.RawConn, error) {
	for {
		switch v := c.(type) {
		case syscall.Conn:
			return v.SyscallConn()
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		case interface{ UnsafeConn() net.Conn }:
			c = v.UnsafeConn()
		default:
			return nil, ErrUnsupported
		}
	}
}
