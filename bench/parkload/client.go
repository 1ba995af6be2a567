package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// ioTimeout bounds every read and write that is not a parked request.
const ioTimeout = 30 * time.Second

// kaConn is one keep-alive HTTP/1.1 connection used by one goroutine at a time. It
// redials when the server has closed it.
type kaConn struct {
	tgt    target
	dialer net.Dialer
	conn   net.Conn
	br     *bufio.Reader
}

func newKAConn(tgt target, source string, dialTimeout time.Duration) *kaConn {
	k := &kaConn{tgt: tgt, dialer: net.Dialer{Timeout: dialTimeout}}
	if source != "" {
		k.dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	return k
}

// exchange is one answered request with the instants around it.
type exchange struct {
	resp       response
	sent, done time.Time // just before the request was written; answer fully read
}

// do sends req and reads the answer. A request that meets a keep-alive connection
// the server had already closed is retried once on a new connection.
func (k *kaConn) do(ctx context.Context, req []byte, maxBody int) (exchange, error) {
	ex, reused, err := k.try(ctx, req, maxBody)
	if err != nil && reused && ctx.Err() == nil && staleConn(err) {
		ex, _, err = k.try(ctx, req, maxBody)
	}
	return ex, err
}

// staleConn reports errors that mean the server closed an idle connection before
// reading our request.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (k *kaConn) try(ctx context.Context, req []byte, maxBody int) (ex exchange, reused bool, err error) {
	reused = k.conn != nil
	if k.conn == nil {
		c, err := k.dialer.DialContext(ctx, "tcp", k.tgt.dial)
		if err != nil {
			return ex, false, dialError{err}
		}
		k.conn, k.br = c, bufio.NewReaderSize(c, 16<<10)
	}
	c := k.conn
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	ex.sent = time.Now()
	if _, err = c.Write(req); err != nil {
		k.close()
		return ex, reused, err
	}
	ex.resp, err = readResponse(k.br, 256<<20)
	ex.done = time.Now()
	if err != nil || ex.resp.close {
		k.close()
	}
	return ex, reused, err
}

// close drops the connection; the next request dials a new one.
func (k *kaConn) close() {
	if k.conn != nil {
		k.conn.Close()
		k.conn, k.br = nil, nil
	}
}
