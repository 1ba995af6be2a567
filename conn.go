package main

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// patientListener keeps accepting through a shortage of file descriptors
// or kernel memory, and hands fasthttp every connection as a clientConn.
// fasthttp's Serve returns on any accept error but a timeout, which would
// leave a full server deaf for good; net/http sleeps and retries instead,
// and so does this.
type patientListener struct {
	net.Listener
	log *slog.Logger
}

func (l patientListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return &clientConn{Conn: c}, nil
		}
		if !transientAcceptError(err) {
			return nil, err
		}
		if delay == 0 {
			delay = 5 * time.Millisecond
			l.log.Warn("accept failed; retrying", "err", err)
		} else {
			delay = min(2*delay, time.Second)
		}
		time.Sleep(delay)
	}
}

func transientAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// hijackWaiter is a parked request whose connection fasthttp has not yet
// handed to its hijack handler.
type hijackWaiter interface {
	// connLost is called when fasthttp closes the connection instead (it
	// skips the hijack handler when it cannot clear the deadlines).
	connLost()
}

// clientConn is every connection fasthttp serves: accepted ones, and those
// handed back after a parked answer. It carries what parkd must know about
// the connection beyond fasthttp's view of it. Its methods are safe for
// concurrent use, as net.Conn's are.
type clientConn struct {
	net.Conn
	pending []byte // read ahead before a hijack; fasthttp reads it first

	mu      sync.Mutex
	waiting hijackWaiter // a parked request waiting for its hijack
	linger  bool         // close lingering: an error answer left the request unread
}

func (c *clientConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn lets the socket package reach the descriptor.
func (c *clientConn) NetConn() net.Conn { return c.Conn }

// awaitHijack links w to c until the hijack handler takes the connection
// (hijacked) or fasthttp closes it (w.connLost).
func (c *clientConn) awaitHijack(w hijackWaiter) {
	c.mu.Lock()
	c.waiting = w
	c.mu.Unlock()
}

// hijacked ends the link made by awaitHijack: the hijack handler runs.
func (c *clientConn) hijacked() {
	c.mu.Lock()
	c.waiting = nil
	c.mu.Unlock()
}

// lingerOnClose makes the close lingering (lingeringClose).
func (c *clientConn) lingerOnClose() {
	c.mu.Lock()
	c.linger = true
	c.mu.Unlock()
}

// Close closes the connection, lingering if an error answer asked for it,
// and tells a parked request still waiting for its hijack that it never
// comes.
func (c *clientConn) Close() error {
	c.mu.Lock()
	w, linger := c.waiting, c.linger
	c.waiting, c.linger = nil, false
	c.mu.Unlock()
	if w != nil {
		w.connLost()
	}
	if linger {
		return lingeringClose(c.Conn)
	}
	return c.Conn.Close()
}

// lingeringClose closes c after an error answer that was sent before the
// client had sent all of its request. Closing a socket with unread bytes
// makes the kernel reset the connection, and a reset can reach the client
// before it has read the answer, which it then never sees (a broken pipe
// instead of a 413). So the write side closes first (the client reads the
// whole answer, then EOF), and what the client still sends is read and
// dropped until it closes too, or the bounds run out.
func lingeringClose(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return c.Close()
		}
	}
	end := time.Now().Add(lingerTime)
	buf := make([]byte, 16<<10)
	for read := 0; read < lingerBytes; {
		next := time.Now().Add(lingerIdle)
		if next.After(end) {
			next = end
		}
		if err := c.SetReadDeadline(next); err != nil {
			break
		}
		n, err := c.Read(buf)
		read += n
		if err != nil {
			break
		}
	}
	return c.Close()
}
