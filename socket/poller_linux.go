//go:build linux

package socket

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/puzpuzpuz/xsync/v4"
	"golang.org/x/sys/unix"
)

// Poller owns one epoll instance and the goroutine that waits on it. Its
// methods are safe for concurrent use. Watch functions run one at a time
// on that goroutine, so they must be quick.
//
// A token, not the descriptor's number, names a watch, so an event that
// was already on its way when its descriptor was closed (and its number
// reused) cannot reach another socket.
type Poller struct {
	epfd    int
	epoll   *os.File                    // epfd as Go's poller sees it: the loop waits there
	next    atomic.Uint64               // the last token given
	watches *xsync.Map[uint64, *Socket] // armed watches by token
	done    chan struct{}               // closed when the loop has returned

	mu     sync.RWMutex // held shared while using epfd, exclusively to close it
	closed bool
}

// NewPoller starts a Poller; Close stops it.
//
// The loop does not block in epoll_wait: an OS thread blocked in a system
// call keeps its P until the runtime's monitor takes it back, up to 10 ms
// later, and with GOMAXPROCS=1 every timer waits that long. Instead the
// epoll descriptor, which is readable while events are ready, goes into
// Go's own poller, and the loop reads events without blocking when it
// wakes.
func NewPoller() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	p := &Poller{
		epfd:    epfd,
		epoll:   os.NewFile(uintptr(epfd), "epoll"),
		watches: xsync.NewMap[uint64, *Socket](),
		done:    make(chan struct{}),
	}
	raw, err := p.epoll.SyscallConn()
	if err != nil {
		p.epoll.Close()
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	go p.loop(raw)
	return p, nil
}

// Detach takes c's socket out of Go's network poller: it duplicates the
// descriptor and closes c, whose buffers and poller state go with it. c
// must not be in use. A connection without a descriptor is kept as it is
// (conn mode); so is one whose descriptor cannot be duplicated.
func (p *Poller) Detach(c net.Conn) *Socket {
	s := &Socket{p: p, fd: -1, conn: c}
	raw, err := rawConn(c)
	if err != nil {
		return s
	}
	dup, dupErr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) {
		dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || dupErr != nil {
		return s
	}
	c.Close() // the socket lives on in dup
	s.fd, s.conn = dup, nil
	return s
}

// Watch arms a watch on s: f is called once, on the Poller's goroutine,
// when the peer hangs up (Hangup) or, if ev includes Readable, when bytes
// arrive. It replaces the watch s had. A Socket in conn mode cannot be
// watched: ErrUnsupported.
func (s *Socket) Watch(ev Event, f func(Event)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.spent:
		return ErrClosed
	case s.fd < 0:
		return ErrUnsupported
	}
	p := s.p
	s.stopLocked()
	events := uint32(unix.EPOLLRDHUP | unix.EPOLLONESHOT)
	if ev&Readable != 0 {
		events |= unix.EPOLLIN
	}
	token := p.next.Add(1) // never 0, which means no watch
	p.watches.Store(token, s)
	op := unix.EPOLL_CTL_ADD
	if s.registered {
		op = unix.EPOLL_CTL_MOD
	}
	epev := unix.EpollEvent{Events: events}
	setToken(&epev, token)
	p.mu.RLock()
	err := ErrClosed
	if !p.closed {
		err = unix.EpollCtl(p.epfd, op, s.fd, &epev)
		if errors.Is(err, unix.EEXIST) { // not ours to have: take it over
			err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, s.fd, &epev)
		}
	}
	p.mu.RUnlock()
	if err != nil {
		p.watches.Delete(token)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	s.registered = true
	s.token, s.onEvent = token, f
	return nil
}

// PeekClosed reports whether the peer has closed its side with nothing
// left to read, without taking any byte. A Socket in conn mode says false.
func (s *Socket) PeekClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return s.spent
	}
	var b [1]byte
	for {
		n, _, err := unix.Recvfrom(s.fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return !wouldBlock(err)
		default:
			return n == 0
		}
	}
}

// PeerClosed reports whether the peer of c, a connection still in Go's
// poller, has closed its side with nothing left to read, without taking any
// byte: a long answer that the client never replies to (an event stream)
// learns that its client left before it next writes. A connection without
// a descriptor says false.
func PeerClosed(c net.Conn) bool {
	raw, err := rawConn(c)
	if err != nil {
		return false
	}
	closed := false
	raw.Control(func(fd uintptr) { //nolint:errcheck // a failed Control says nothing about the peer
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = err == nil && n == 0 || err != nil && !wouldBlock(err) && !errors.Is(err, unix.EINTR)
	})
	return closed
}

func (p *Poller) forget(token uint64) {
	p.watches.Delete(token)
}

// Close stops the Poller's goroutine and releases its descriptor; watches
// not yet fired never fire. It does not close the Sockets.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.epoll.Close() // wakes the loop, which returns
	p.mu.Unlock()
	// Not waited for under the lock: a watch function running on the loop
	// may be calling Watch, which sees closed and returns.
	<-p.done
	return err
}

func (p *Poller) loop(raw syscall.RawConn) {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		err := raw.Read(func(fd uintptr) bool {
			var err error
			n, err = unix.EpollWait(int(fd), events, 0)
			// Nothing ready (or interrupted): wait for Go's poller to say so.
			return err == nil && n > 0
		})
		if err != nil {
			return // the Poller was closed
		}
		for i := range events[:n] {
			if s, ok := p.watches.LoadAndDelete(getToken(&events[i])); ok {
				s.fire(getToken(&events[i]), eventOf(events[i].Events))
			}
		}
	}
}

func eventOf(mask uint32) Event {
	var ev Event
	if mask&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= Hangup
	}
	if mask&unix.EPOLLIN != 0 {
		ev |= Readable
	}
	return ev
}

// The 64-bit epoll data is split over Fd and Pad in x/sys/unix's layout.
func setToken(ev *unix.EpollEvent, token uint64) {
	ev.Fd = int32(uint32(token))
	ev.Pad = int32(uint32(token >> 32))
}

func getToken(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// writeFD sends without blocking, and without SIGPIPE when the peer is gone.
func writeFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.SendmsgN(fd, b, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n, err
	}
}

// writeBuffersFD sends bufs in one sendmsg, without blocking or SIGPIPE.
func writeBuffersFD(fd int, bufs [][]byte) (int, error) {
	for {
		n, err := unix.SendmsgBuffers(fd, bufs, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n, err
	}
}

// lingerZeroFD makes closing fd reset the connection.
func lingerZeroFD(fd int) error {
	return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

func wouldBlock(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK)
}

// handBackLocked gives the socket back to Go's poller as a net.Conn and
// closes s's descriptor (net.FileConn works on a duplicate). The epoll
// registration goes first: the kernel drops one by itself only when the
// last descriptor of the socket closes, and this one is not the last.
func (s *Socket) handBackLocked() (net.Conn, error) {
	if s.registered {
		s.p.mu.RLock()
		if !s.p.closed {
			_ = unix.EpollCtl(s.p.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
		}
		s.p.mu.RUnlock()
		s.registered = false
	}
	f := os.NewFile(uintptr(s.fd), "parked")
	s.fd = -1
	c, err := net.FileConn(f)
	f.Close()
	return c, err
}

func closeFD(fd int) error {
	return unix.Close(fd)
}
