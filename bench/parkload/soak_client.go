package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// soakMaxBody bounds one answer; serverStatus of a few hundred ids is small.
const soakMaxBody = 16 << 20

// soakConn is one connection of a client.
type soakConn struct {
	c      net.Conn
	br     *bufio.Reader
	reused bool // an exchange completed on it: a failure may mean the server closed it idle
}

func (sc *soakConn) write(b []byte) error {
	_ = sc.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := sc.c.Write(b)
	return err
}

// read reads one answer by deadline; the end of ctx closes the connection.
func (sc *soakConn) read(ctx context.Context, deadline time.Time) (response, error) {
	c := sc.c
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetReadDeadline(deadline)
	return readResponse(sc.br, soakMaxBody)
}

// readRest reads what comes before the server closes the connection, up to wait.
func (sc *soakConn) readRest(ctx context.Context, wait time.Duration) ([]byte, error) {
	c := sc.c
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(io.LimitReader(sc.br, 64<<10))
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil // closed, if rudely
	}
	return b, err
}

// soakClient is one client goroutine: at most two connections at a time, its
// keep-alive one and, while hanging up, a fresh one.
type soakClient struct {
	s      *soak
	n      int
	rng    *rand.Rand
	dialer net.Dialer
	main   *soakConn
	seq    int
}

func (s *soak) client(n int) *soakClient {
	cl := &soakClient{s: s, n: n, rng: rand.New(rand.NewPCG(s.o.seed, uint64(n)+1)), dialer: net.Dialer{Timeout: s.o.dialTimeout}}
	if len(s.o.sources) > 0 {
		cl.dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(s.o.sources[n%len(s.o.sources)])}
	}
	return cl
}

func (cl *soakClient) nextID(tag string) string {
	cl.seq++
	return cl.s.o.prefix + tag + strconv.Itoa(cl.n) + "-" + strconv.Itoa(cl.seq)
}

func (cl *soakClient) dial(ctx context.Context) (*soakConn, error) {
	c, err := cl.dialer.DialContext(ctx, "tcp", cl.s.tgt.dial)
	if err != nil {
		return nil, dialError{err}
	}
	cl.s.mu.Lock()
	cl.s.res.SoakConnects++
	cl.s.mu.Unlock()
	return &soakConn{c: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// conn returns the keep-alive connection, dialling one if there is none.
func (cl *soakClient) conn(ctx context.Context) (*soakConn, error) {
	if cl.main == nil {
		sc, err := cl.dial(ctx)
		if err != nil {
			return nil, err
		}
		cl.main = sc
	}
	return cl.main, nil
}

// drop closes the keep-alive connection; the next action dials anew.
func (cl *soakClient) drop() {
	if cl.main != nil {
		cl.main.c.Close()
		cl.main = nil
	}
}

func (cl *soakClient) req(method, path string, body []byte, closeConn bool) []byte {
	return appendRequest(nil, method, cl.s.tgt, path, body, closeConn)
}

func parkPath(id string, timeoutMs int64) string {
	return "/api/request?connId=" + url.QueryEscape(id) + "&timeout=" + formatTimeout(timeoutMs)
}

func (cl *soakClient) between(lo, hi time.Duration) int64 {
	return lo.Milliseconds() + cl.rng.Int64N(hi.Milliseconds()-lo.Milliseconds()+1)
}

// do sends one request that is not a park on the keep-alive connection and reads
// its answer. A failure on a reused connection before any answer is retried once
// on a new one (the server may have closed it idle); retried says so.
func (cl *soakClient) do(ctx context.Context, req []byte) (resp response, retried bool, err error) {
	for attempt := 0; ; attempt++ {
		sc, err := cl.conn(ctx)
		if err != nil {
			return resp, retried, err
		}
		err = sc.write(req)
		if err == nil {
			resp, err = sc.read(ctx, time.Now().Add(ioTimeout))
		}
		if err != nil {
			cl.drop()
			if sc.reused && attempt == 0 && ctx.Err() == nil && staleConn(err) {
				retried = true
				cl.s.mu.Lock()
				cl.s.res.SoakStaleRetries++
				cl.s.mu.Unlock()
				continue
			}
			return resp, retried, err
		}
		sc.reused = true
		if resp.close {
			cl.drop()
		}
		return resp, retried, nil
	}
}
