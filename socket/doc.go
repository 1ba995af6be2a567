// Package socket holds the connections of parked requests outside Go's
// network poller, and notices when their clients go away.
//
// A connection Go's net package knows costs about a kilobyte of memory
// besides its socket (a pollDesc off the heap, a netFD and two addresses
// on it, measured with go1.26), more than everything else a parked request
// needs. On Linux, Detach takes the socket out: it duplicates the
// descriptor and closes the net.Conn, so what remains is a file
// descriptor and a small Socket. One epoll instance, shared by all
// Sockets and waited on by one goroutine, watches them:
//
//   - for a hang-up (EPOLLRDHUP: the peer closed or half-closed; EPOLLHUP,
//     EPOLLERR: reset or failed) while a request is parked, without
//     EPOLLIN so that pipelined bytes from a live client do not wake it;
//   - for readability (EPOLLIN as well) while a keep-alive connection is
//     idle after a parked answer, so it waits without a goroutine too.
//
// Every watch is EPOLLONESHOT: it fires at most once. A Socket goes back
// to Go's poller with Conn when fasthttp is to serve it again.
//
// fasthttp does not notice a hang-up itself: while a handler waits nobody
// reads the connection, and RequestCtx.Done fires only on server shutdown.
//
// On other systems, and for connections that have no descriptor (an
// in-memory pipe), Detach keeps the net.Conn as it is and Watch fails with
// ErrUnsupported: parked requests then wait for their outcome even if the
// client has gone, and idle connections go straight back to fasthttp.
package socket

import (
	"errors"
	"net"
	"syscall"
)

var (
	// ErrUnsupported: this system or this connection cannot be watched.
	ErrUnsupported = errors.New("socket watching is not supported for this connection")
	// ErrClosed: the Socket or the Poller was closed.
	ErrClosed = errors.New("socket is closed")
)

// Event says what woke a watch.
type Event uint8

const (
	// Hangup: the peer closed or half-closed the connection, or it failed.
	Hangup Event = 1 << iota
	// Readable: bytes (or the end of the stream) wait to be read.
	Readable
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
