package main

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// patientListener keeps accepting through a shortage of file descriptors
// or kernel memory. fasthttp's Serve returns on any accept error but a
// timeout, which would leave a full server deaf for good; net/http sleeps
// and retries instead, and so does this.
type patientListener struct {
	net.Listener
	log *slog.Logger
}

func (l patientListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !transientAcceptError(err) {
			return c, err
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
