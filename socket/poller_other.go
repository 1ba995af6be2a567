//go:build !linux

package socket

import (
	"errors"
	"net"
)

// Poller is a stand-in on systems without epoll: sockets stay in conn
// mode and cannot be watched.
type Poller struct{}

// NewPoller returns a Poller that detaches and watches nothing.
func NewPoller() (*Poller, error) { return &Poller{}, nil }

// Detach keeps c as it is.
func (p *Poller) Detach(c net.Conn) *Socket { return &Socket{p: p, fd: -1, conn: c} }

// Watch fails with ErrUnsupported.
func (s *Socket) Watch(Event, func(Event)) error { return ErrUnsupported }

// PeekClosed says false: nothing is known without reading.
func (s *Socket) PeekClosed() bool { return false }

// PeerClosed says false: nothing is known without reading.
func PeerClosed(net.Conn) bool { return false }

// Close does nothing.
func (p *Poller) Close() error { return nil }

func (p *Poller) forget(uint64) {}

// The descriptor paths are never taken here: fd stays -1.
var errNoDescriptors = errors.New("no detached descriptors on this system")

func writeFD(int, []byte) (int, error)              { return 0, errNoDescriptors }
func writeBuffersFD(int, [][]byte) (int, error)     { return 0, errNoDescriptors }
func lingerZeroFD(int) error                        { return errNoDescriptors }
func wouldBlock(error) bool                         { return false }
func (s *Socket) handBackLocked() (net.Conn, error) { return nil, errNoDescriptors }
func closeFD(int) error                             { return errNoDescriptors }
