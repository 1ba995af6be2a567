//go:build !linux

package hangup

import "net"

// Watcher is a stand-in on systems without epoll: every Watch fails with
// ErrUnsupported, so parked requests wait for their outcome even if their
// client has gone.
type Watcher struct{}

// Watch is one watched connection; here there are none.
type Watch struct{}

// New returns a Watcher that watches nothing.
func New() (*Watcher, error) { return &Watcher{}, nil }

// Watch fails with ErrUnsupported.
func (w *Watcher) Watch(net.Conn, func()) (Watch, error) { return Watch{}, ErrUnsupported }

// Stop does nothing.
func (Watch) Stop() {}

// Close does nothing.
func (w *Watcher) Close() error { return nil }
