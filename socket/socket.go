package socket

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Socket is one connection held by a Poller: a detached descriptor, or,
// where detaching is not possible, the net.Conn as it was. Its methods are
// safe for concurrent use; each is atomic with respect to the others.
type Socket struct {
	p *Poller

	mu         sync.Mutex
	fd         int      // the detached descriptor; -1 in conn mode or once spent
	conn       net.Conn // conn mode: the connection, kept as it is
	token      uint64   // the armed watch, 0 if none
	onEvent    func(Event)
	registered bool // fd is in the epoll set (a fired oneshot watch stays there, disarmed)
	spent      bool // closed, or handed back by Conn
}

// TryWrite writes what the socket takes at once, without blocking, and
// returns the rest: nothing, usually, for the answer to a parked request
// is small and its send buffer empty. A Socket in conn mode takes nothing
// at once: its writes may block, so they belong to WriteAll.
func (s *Socket) TryWrite(b []byte) (rest []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.spent:
		return b, ErrClosed
	case s.fd < 0:
		return b, nil
	}
	n, err := writeFD(s.fd, b)
	if err != nil && !wouldBlock(err) {
		return b, err
	}
	return b[max(n, 0):], nil
}

// TryWriteBuffers writes what the socket takes at once of bufs, in order,
// in one system call, and returns how many bytes it took. A Socket in
// conn mode has no way to ask without blocking: it writes for at most a
// millisecond.
func (s *Socket) TryWriteBuffers(bufs [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.spent:
		return 0, ErrClosed
	case s.fd < 0:
		if err := s.conn.SetWriteDeadline(time.Now().Add(time.Millisecond)); err != nil {
			return 0, err
		}
		nb := net.Buffers(bufs)
		n, err := nb.WriteTo(s.conn)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
		}
		return int(n), err
	}
	n, err := writeBuffersFD(s.fd, bufs)
	if err != nil && !wouldBlock(err) {
		return 0, err
	}
	return max(n, 0), nil
}

// WriteAll writes b, blocking for at most timeout. What a detached socket
// does not take at once is written through Go's poller: the socket goes
// back there, and the Socket is in conn mode from then on (Watch fails;
// Conn and Close still work).
func (s *Socket) WriteAll(b []byte, timeout time.Duration) error {
	b, err := s.TryWrite(b)
	if err != nil || len(b) == 0 {
		return err
	}
	s.mu.Lock()
	if s.fd >= 0 {
		s.stopLocked()
		c, err := s.handBackLocked()
		if err != nil {
			s.spent = true
			s.mu.Unlock()
			return err
		}
		s.conn = c
	}
	c := s.conn
	s.mu.Unlock()
	if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// Conn hands the connection back as a net.Conn, in Go's poller again; the
// Socket is spent. A watch still armed is stopped.
func (s *Socket) Conn() (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent {
		return nil, ErrClosed
	}
	s.spent = true
	s.stopLocked()
	if s.fd < 0 {
		return s.conn, nil
	}
	return s.handBackLocked()
}

// Reset closes the connection with a TCP reset instead of a FIN: linger
// on with a zero timeout, then close, so the kernel drops what is unsent
// and answers RST. A connection that is not TCP (an in-memory pipe) has no
// reset and is closed. A watch still armed is stopped; resetting a spent
// Socket does nothing.
func (s *Socket) Reset() error { return s.end(true) }

// BoundSendBuffer fixes the kernel's send buffer of c, a TCP connection
// still in Go's poller, at about n bytes: a long answer to a client that
// stops reading then blocks in user space soon, where a stall can be
// seen, instead of filling megabytes of an autotuned buffer. It does
// nothing to a connection that is not TCP.
func BoundSendBuffer(c net.Conn, n int) error {
	if tcp, ok := tcpConnOf(c); ok {
		return tcp.SetWriteBuffer(n)
	}
	return nil
}

// AbortOnClose makes closing c, a TCP connection still in Go's poller,
// reset it: what it still had to send is dropped at once, not kept by
// the kernel for a client that reads nothing. It does nothing to a
// connection that is not TCP.
func AbortOnClose(c net.Conn) error {
	if tcp, ok := tcpConnOf(c); ok {
		return tcp.SetLinger(0)
	}
	return nil
}

// tcpConnOf finds the *net.TCPConn under c's wrappers.
func tcpConnOf(c net.Conn) (*net.TCPConn, bool) {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v, true
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		case interface{ UnsafeConn() net.Conn }:
			c = v.UnsafeConn()
		default:
			return nil, false
		}
	}
}

// Close closes the connection; a watch still armed is stopped. Closing a
// spent Socket does nothing.
func (s *Socket) Close() error { return s.end(false) }

// end closes the connection, with a reset (linger 0) or a FIN.
func (s *Socket) end(reset bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent {
		return nil
	}
	s.spent = true
	s.stopLocked()
	if s.fd < 0 {
		if tcp, ok := tcpConnOf(s.conn); ok && reset {
			tcp.SetLinger(0) //nolint:errcheck // the close below ends it either way
		}
		return s.conn.Close()
	}
	if reset {
		lingerZeroFD(s.fd) //nolint:errcheck // the close below ends it either way
	}
	err := closeFD(s.fd)
	s.fd = -1
	return err
}

// Stop disarms the watch; once it returns, the watch's function is not
// called unless it had already started. Stopping without a watch does
// nothing.
func (s *Socket) Stop() {
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
}

// stopLocked forgets the watch. The epoll registration stays, disarmed or
// soon to be: a oneshot watch fires at most once more, finds no token and
// is dropped; closing the descriptor removes it.
func (s *Socket) stopLocked() {
	if s.token != 0 {
		s.p.forget(s.token)
		s.token, s.onEvent = 0, nil
	}
}

// fire runs on the Poller's goroutine for a watch's event: it calls the
// watch's function unless the watch was stopped or replaced meanwhile.
func (s *Socket) fire(token uint64, ev Event) {
	s.mu.Lock()
	if s.token != token {
		s.mu.Unlock()
		return
	}
	f := s.onEvent
	s.token, s.onEvent = 0, nil
	s.mu.Unlock()
	f(ev)
}
