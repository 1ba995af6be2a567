//go:build linux

package hangup

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/puzpuzpuz/xsync/v4"
	"golang.org/x/sys/unix"
)

// wakeToken marks the eventfd that Close uses to end the loop; watch
// tokens start at 1.
const wakeToken = 0

// Watcher watches connections for hang-ups. Its methods are safe for
// concurrent use. Watch and Stop are each a map operation and one
// epoll_ctl call; hang-up callbacks run one at a time on the watcher's
// goroutine, so they must be quick.
type Watcher struct {
	epfd, wakefd int
	next         atomic.Uint64
	callbacks    *xsync.Map[uint64, func()]
	done         chan struct{} // closed when the loop has returned

	mu     sync.RWMutex // held shared while using epfd, exclusively to close it
	closed bool
}

// Watch is one watched connection.
type Watch struct {
	w     *Watcher
	raw   syscall.RawConn
	token uint64
}

// New starts a Watcher; Close stops it.
func New() (*Watcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	w := &Watcher{epfd: epfd, wakefd: wakefd, callbacks: xsync.NewMap[uint64, func()](), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Watch calls onHangup once, on the watcher's goroutine, when the peer of c
// closes or half-closes it or the connection fails, unless the returned
// Watch is stopped first. Stop the Watch before closing c: the kernel
// drops a closed socket from the watch by itself, but its number may
// already belong to another connection by then.
func (w *Watcher) Watch(c net.Conn, onHangup func()) (Watch, error) {
	raw, err := rawConn(c)
	if err != nil {
		return Watch{}, err
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return Watch{}, ErrClosed
	}
	token := w.next.Add(1)
	w.callbacks.Store(token, onHangup)
	var ctlErr error
	err = raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLONESHOT}
		setToken(&ev, token)
		ctlErr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		if errors.Is(ctlErr, unix.EEXIST) { // a watch that was never stopped: take it over
			ctlErr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		w.callbacks.Delete(token)
		return Watch{}, fmt.Errorf("watch for hang-up: %w", err)
	}
	return Watch{w: w, raw: raw, token: token}, nil
}

// Stop ends the watch; after it returns, onHangup is not called unless it
// has already started. Stopping a zero Watch, or twice, does nothing.
func (h Watch) Stop() {
	if h.w == nil {
		return
	}
	if _, ok := h.w.callbacks.LoadAndDelete(h.token); !ok {
		return // fired or stopped already; a oneshot watch stays quiet
	}
	h.w.mu.RLock()
	defer h.w.mu.RUnlock()
	if h.w.closed {
		return
	}
	// Control fails if the connection is closed already; then the kernel
	// has dropped it from the epoll set itself.
	_ = h.raw.Control(func(fd uintptr) {
		_ = unix.EpollCtl(h.w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// Close stops the watcher's goroutine and releases its descriptors.
// Callbacks not yet called are dropped. It waits for the loop to return.
func (w *Watcher) Close() error {
	w.mu.Lock()
	was := w.closed
	w.closed = true
	w.mu.Unlock()
	if was {
		return nil
	}
	// The lock is not held while waiting: a callback on the loop may be
	// calling Watch or Stop, which see closed and return.
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	if _, err := unix.Write(w.wakefd, one); err != nil {
		return fmt.Errorf("wake hang-up watcher: %w", err)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	unix.Close(w.epfd)
	unix.Close(w.wakefd)
	return nil
}

func (w *Watcher) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return // only a closed or broken epfd gets here
		}
		for i := range events[:n] {
			token := getToken(&events[i])
			if token == wakeToken {
				return
			}
			if f, ok := w.callbacks.LoadAndDelete(token); ok {
				f()
			}
		}
	}
}

// The 64-bit epoll data is split over Fd and Pad in x/sys/unix's layout.
func setToken(ev *unix.EpollEvent, token uint64) {
	ev.Fd = int32(uint32(token))
	ev.Pad = int32(uint32(token >> 32))
}

func getToken(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
