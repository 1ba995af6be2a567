package main

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/socket"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// A parked request holds no goroutine, no RequestCtx, no buffer and, on
// Linux, not even a net.Conn while it waits. The handler parks it in the
// registry and hijacks the connection; fasthttp's worker goes back to its
// pool; the connection's socket is detached from Go's poller (package
// socket). What remains is a descriptor, a registry entry (its place in
// the map and in the deadline order), a hang-up watch and this struct:
// a few hundred bytes. When the registry
// delivers the outcome, the answer is written from prepared bytes, and a
// keep-alive connection waits for its next request in the same epoll set,
// still without a goroutine, until fasthttp serves it again.

// parkedConn is one parked request between its park and its answer.
type parkedConn struct {
	s          *server
	entry      *registry.Entry // set before the hijack, read after it
	http11     bool
	closeAfter bool // the client asked to close after the answer

	mu      sync.Mutex       // guards what follows
	sock    *socket.Socket   // nil until the hijack handler runs
	pending []byte           // bytes fasthttp had read past the request
	outcome registry.Outcome // an outcome that came before the socket
}

// park is GET /api/request?connId=ID&timeout=SECONDS.
func (s *server) park(ctx *fasthttp.RequestCtx) {
	p, err := wire.ParsePark(ctx.URI().QueryString(), s.maxTimeout)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	pc := &parkedConn{
		s:          s,
		http11:     ctx.Request.Header.IsHTTP11(),
		closeAfter: ctx.Request.Header.ConnectionClose(),
	}
	remote := ctx.RemoteAddr().String()
	s.responding.Add(1)
	e, err := s.reg.Park(registry.Request{ConnID: p.ConnID, Timeout: p.Timeout, RemoteAddr: remote}, pc.deliver)
	if err != nil || e == nil {
		s.responding.Add(-1)
	}
	switch {
	case err != nil:
		s.refused(ctx, err, p.ConnID)
	case e == nil: // a zero timeout: answered here, after the same checks
		now := time.Now()
		s.finished(p.ConnID, remote, registry.OK, 0, now, now)
		writeJSONString(ctx, fasthttp.StatusOK, okBody)
	default:
		pc.entry = e
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(pc.attach)
	}
}

// attach is the hijack handler: it runs on its own goroutine once fasthttp
// has let go of the connection, and returns at once.
func (pc *parkedConn) attach(c net.Conn) {
	pending := drainBuffered(c)
	// Keep the socket, not fasthttp's wrapper around it: the wrapper reads
	// through the server's buffered reader, which stays with fasthttp.
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn()
	}
	if r, ok := c.(*resumedConn); ok { // its own pending bytes were just drained
		c = r.Conn
	}
	sock := pc.s.sockets.Detach(c)
	pc.mu.Lock()
	pc.sock, pc.pending = sock, pending
	o := pc.outcome
	if o == 0 {
		err := sock.Watch(socket.Hangup, pc.hangUp)
		if err != nil && !errors.Is(err, socket.ErrUnsupported) {
			pc.s.log.Warn("cannot watch for hang-up", "connId", pc.entry.ConnID(), "err", err)
		}
	}
	pc.mu.Unlock()
	if o != 0 {
		pc.answer(o)
	}
}

func (pc *parkedConn) hangUp(socket.Event) { pc.entry.Abandon() }

// deliver is the registry's callback: the outcome is decided.
func (pc *parkedConn) deliver(o registry.Outcome) {
	pc.mu.Lock()
	if pc.sock == nil { // still on its way to attach, which answers
		pc.outcome = o
		pc.mu.Unlock()
		return
	}
	pc.mu.Unlock()
	pc.answer(o)
}

// answer writes the outcome's answer (none to a client that left) and
// keeps the connection for its next request or closes it. It runs once:
// from deliver if the socket was attached, else from attach. It never
// waits for the client: Kill and Shutdown deliver on their caller's
// goroutine, and a client that reads nothing must not hold them up.
func (pc *parkedConn) answer(o registry.Outcome) {
	s := pc.s
	pc.mu.Lock()
	sock, pending := pc.sock, pc.pending
	pc.pending = nil
	pc.mu.Unlock()

	sock.Stop()
	if o == registry.Abandoned {
		sock.Close()
		pc.settle(o, 0, sock, nil, true, nil)
		return
	}
	closeAfter := pc.closeAfter || s.draining.Load()
	code, body := answerOf(o)
	rest, err := sock.TryWrite(appendAnswer(make([]byte, 0, 192), s.dates.now(), code, body, pc.http11, closeAfter))
	if err == nil && len(rest) > 0 {
		// The client's window is full, or the socket is not detached:
		// finish on a goroutine of its own, bounded by writeTimeout.
		go func() { pc.settle(o, code, sock, pending, closeAfter, sock.WriteAll(rest, writeTimeout)) }()
		return
	}
	pc.settle(o, code, sock, pending, closeAfter, err)
}

// settle ends a parked request once its answer is written, or failed:
// its accounting, then the connection's next request or its close.
func (pc *parkedConn) settle(o registry.Outcome, code int, sock *socket.Socket, pending []byte, closeAfter bool, err error) {
	s := pc.s
	defer s.releaseWhenIdle()
	defer s.responding.Add(-1)
	e := pc.entry
	s.finished(e.ConnID(), e.RemoteAddr(), o, e.Timeout(), e.Deadline(), time.Now())
	if o == registry.Abandoned {
		return
	}
	s.metrics.answered(parkRoute, code)
	if err != nil || closeAfter {
		sock.Close()
		return
	}
	s.keepAlive(sock, pending)
}

// parkRoute is the route label of a parked request's answer.
const parkRoute = "/api/request"

// appendAnswer writes a complete HTTP response, framed as fasthttp frames
// its own: an HTTP/1.1 status line, and Connection: keep-alive for an
// HTTP/1.0 client that keeps the connection.
func appendAnswer(b, date []byte, code int, body string, http11, closeAfter bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(code)...)
	b = append(b, "\r\nServer: parkd\r\nDate: "...)
	b = append(b, date...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	switch {
	case closeAfter:
		b = append(b, "\r\nConnection: close"...)
	case !http11:
		b = append(b, "\r\nConnection: keep-alive"...)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// dateCache holds the Date header's value for the current second:
// formatting it for each of thousands of answers due at one instant would
// be a tenth of their cost.
type dateCache struct {
	cur atomic.Pointer[dateLine]
}

type dateLine struct {
	sec  int64
	text []byte
}

// now is the Date header's value for this second; never modified.
func (d *dateCache) now() []byte {
	t := time.Now()
	if l := d.cur.Load(); l != nil && l.sec == t.Unix() {
		return l.text
	}
	l := &dateLine{sec: t.Unix(), text: t.UTC().AppendFormat(nil, http.TimeFormat)}
	d.cur.Store(l)
	return l.text
}

// drainBuffered returns what the hijacked connection's reader had already
// read from the client past the parked request — a pipelined request,
// usually nothing. A read deadline in the past makes the socket itself
// yield nothing, so only buffered bytes come out.
func drainBuffered(c net.Conn) []byte {
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return nil
	}
	defer c.SetReadDeadline(time.Time{})
	var pending []byte
	var buf [64]byte
	for {
		n, err := c.Read(buf[:])
		pending = append(pending, buf[:n]...)
		if err != nil || n == 0 {
			return pending
		}
	}
}

// keepAlive keeps a connection after a parked answer. With a pipelined
// request already read, fasthttp serves it at once. Otherwise the
// connection waits in the epoll set, without a goroutine, until the client
// sends its next request (fasthttp serves it), hangs up, or stays silent
// for idleTimeout (parkd closes it).
func (s *server) keepAlive(sock *socket.Socket, pending []byte) {
	if len(pending) == 0 {
		ic := &idleConn{s: s, sock: sock}
		ic.timer = time.AfterFunc(idleTimeout, ic.expire)
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

// serveAgain hands a connection back to fasthttp.
func (s *server) serveAgain(sock *socket.Socket, pending []byte) {
	c, err := sock.Conn()
	if err != nil {
		sock.Close()
		return
	}
	if len(pending) > 0 {
		c = &resumedConn{Conn: c, pending: pending}
	}
	// ServeConn returns when the connection closes; it closes it itself.
	go s.http.ServeConn(c) //nolint:errcheck // connection errors are the client's
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

// resumedConn hands fasthttp a connection together with the bytes it had
// read ahead before the hijack, so a pipelined request is not lost.
type resumedConn struct {
	net.Conn
	pending []byte
}

func (c *resumedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn lets the socket package reach the descriptor.
func (c *resumedConn) NetConn() net.Conn { return c.Conn }
