package main

import (
	"sync/atomic"
	"time"

	"github.com/parkd/parkd/socket"
)

// Keep-alive after a parked answer. The connection does not go back to
// fasthttp at once: that would give it a goroutine and buffers again for
// as long as the client stays silent. It waits in the poller's epoll set
// instead, and fasthttp gets it back the moment the client speaks.

// keepAlive keeps a connection after a parked answer. With a pipelined
// request already read, fasthttp serves it at once. Otherwise the
// connection waits in the epoll set, without a goroutine, until the client
// sends its next request (fasthttp serves it), hangs up, or stays silent
// for the idle timeout (parkd closes it).
func (s *server) keepAlive(sock *socket.Socket, pending []byte) {
	if len(pending) == 0 {
		ic := &idleConn{s: s, sock: sock}
		ic.timer = time.AfterFunc(s.http.IdleTimeout, ic.expire)
		s.idle.Store(ic, struct{}{})
		err := sock.Watch(socket.Readable|socket.Hangup, ic.wake)
		if err == nil || !ic.claim() {
			return // waiting, or already woken or expired
		}
		ic.timer.Stop()
		s.idle.Delete(ic)
	}
	s.serveAgain(sock, pending)
}

// serveAgain hands a connection back to fasthttp, with the bytes it had
// read ahead so that a pipelined request is not lost.
func (s *server) serveAgain(sock *socket.Socket, pending []byte) {
	c, err := sock.Conn()
	if err != nil {
		sock.Close()
		return
	}
	// ServeConn returns when the connection closes; it closes it itself.
	go s.http.ServeConn(&clientConn{Conn: c, pending: pending}) //nolint:errcheck // connection errors are the client's
}

// closeIdle closes every connection waiting after a parked answer: the
// server is shutting down and nothing is parked any more.
func (s *server) closeIdle() {
	s.idle.Range(func(ic *idleConn, _ struct{}) bool {
		ic.expire()
		return true
	})
}

// idleConn is a keep-alive connection waiting for its next request after
// a parked answer. Whichever comes first — the client speaking or leaving,
// the idle timeout, or shutdown — claims it.
type idleConn struct {
	s       *server
	sock    *socket.Socket
	timer   *time.Timer
	claimed atomic.Bool
}

func (ic *idleConn) claim() bool { return ic.claimed.CompareAndSwap(false, true) }

// wake runs on the poller's goroutine: the client sent bytes or left.
func (ic *idleConn) wake(socket.Event) {
	if !ic.claim() {
		return
	}
	ic.timer.Stop()
	ic.s.idle.Delete(ic)
	if ic.sock.PeekClosed() {
		ic.sock.Close()
		return
	}
	ic.s.serveAgain(ic.sock, nil)
}

// expire closes the connection: its idle time ran out, or shutdown (whose
// call leaves the timer to fire into a claimed idleConn).
func (ic *idleConn) expire() {
	if !ic.claim() {
		return
	}
	ic.s.idle.Delete(ic)
	ic.sock.Close()
}
