package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
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
// the map and in the deadline order), a hang-up watch and a parkedConn:
// a few hundred bytes. When the registry delivers the outcome, the answer
// is written from prepared bytes, and a keep-alive connection waits for
// its next request in the same epoll set, still without a goroutine, until
// fasthttp serves it again (keepalive.go).

// Bodies of the answers a parked request gets.
const (
	okBody           = `{"status":"ok"}`
	killedBody       = `{"status":"killed"}`
	shuttingDownBody = `{"status":"shutting down"}`
)

// parkedConn is one parked request, from its park to its settling. Its
// states, and who moves it from one to the next:
//
//		parked ─▶ attached ─▶ decided ─▶ answered ─▶ settled ─▶ idle | closed | served again
//
//	  - parked: the handler (a fasthttp worker) has put its entry in the
//	    registry and asked fasthttp to hijack the connection, and returns.
//	  - attached: attach, on fasthttp's hijack goroutine, detaches the
//	    socket and watches it for a hang-up. Should fasthttp close the
//	    connection instead (it skips the hijack handler when it cannot clear
//	    the connection's deadlines), connLost, on the goroutine closing it,
//	    abandons the request.
//	  - decided: the registry decides the one outcome and calls deliver, on
//	    the goroutine that decided it: the deadline (the registry's wake
//	    goroutines), a kill (the killer's handler), the client hanging up (a
//	    goroutine hangUp starts, so that the poller's only goroutine never
//	    runs this path and its log line), or shutdown (serve's goroutine). An
//	    outcome decided before attach is kept for attach to answer.
//	  - answered: answer writes the outcome's bytes without waiting for the
//	    client (what the socket does not take at once is written on a
//	    goroutine of its own, bounded by writeTimeout); a client that left
//	    gets nothing.
//	  - settled: settle accounts for the request (log line, outcome counter,
//	    lateness) and then keeps the connection for its next request
//	    (keepAlive), closes it, or hands it back to fasthttp.
type parkedConn struct {
	s          *server
	entry      *registry.Entry // set before the hijack, read after it
	http11     bool
	closeAfter bool // the client asked to close after the answer

	mu      sync.Mutex       // guards what follows
	sock    *socket.Socket   // nil until attach runs
	pending []byte           // bytes fasthttp had read past the request
	outcome registry.Outcome // an outcome that came before the socket
	lost    bool             // fasthttp closed the connection: attach never runs
}

// park is GET /api/request?connId=ID&timeout=SECONDS.
func (s *server) park(ctx *fasthttp.RequestCtx) {
	p, err := wire.ParsePark(ctx.URI().QueryString(), s.maxTimeout)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	conn, _ := ctx.Conn().(*clientConn)
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
		if conn != nil {
			conn.awaitHijack(pc)
		}
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
	if cc, ok := c.(*clientConn); ok { // its own pending bytes were just drained
		cc.hijacked()
		c = cc.Conn
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

// hangUp runs on the poller's goroutine, which must stay free for other
// hang-ups and wake-ups: the abandon path, with its log line, runs on a
// goroutine of its own, which ends with it.
func (pc *parkedConn) hangUp(socket.Event) { go pc.entry.Abandon() }

// connLost is called when fasthttp closes the connection without running
// attach: the request is abandoned, or, if its outcome came first, settled
// without an answer.
func (pc *parkedConn) connLost() {
	pc.mu.Lock()
	pc.lost = true
	o := pc.outcome
	pc.mu.Unlock()
	if o != 0 {
		pc.settle(o, 0, nil, nil, true, nil)
		return
	}
	pc.entry.Abandon()
}

// deliver is the registry's callback: the outcome is decided.
func (pc *parkedConn) deliver(o registry.Outcome) {
	pc.mu.Lock()
	switch {
	case pc.lost: // no connection to answer on
		pc.mu.Unlock()
		pc.settle(o, 0, nil, nil, true, nil)
		return
	case pc.sock == nil: // still on its way to attach, which answers
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

// settle ends a parked request once its answer is written, or failed, or
// there was none to write (code 0): its accounting, then the connection's
// next request or its close.
func (pc *parkedConn) settle(o registry.Outcome, code int, sock *socket.Socket, pending []byte, closeAfter bool, err error) {
	s := pc.s
	defer s.releaseWhenIdle()
	defer s.responding.Add(-1)
	e := pc.entry
	s.finished(e.ConnID(), e.RemoteAddr(), o, e.Timeout(), e.Deadline(), time.Now())
	if code == 0 {
		return
	}
	s.metrics.parkAnswered(code)
	if err != nil || closeAfter {
		sock.Close()
		return
	}
	s.keepAlive(sock, pending)
}

// answerOf is what a parked request answers for its outcome.
func answerOf(o registry.Outcome) (code int, body string) {
	switch o {
	case registry.OK:
		return fasthttp.StatusOK, okBody
	case registry.Killed:
		return fasthttp.StatusInternalServerError, killedBody
	default:
		return fasthttp.StatusServiceUnavailable, shuttingDownBody
	}
}

// finished accounts for a parked request's outcome: a log line, the
// outcomes counter, and for a timeout that elapsed (a zero one aside, it
// never waited), how late its answer left.
func (s *server) finished(connID, remote string, o registry.Outcome, timeout time.Duration, deadline, answered time.Time) {
	s.metrics.outcome(o.String())
	if o == registry.OK && timeout > 0 {
		s.metrics.lateness.Observe(answered.Sub(deadline).Seconds())
	}
	// The level is checked first: formatting the durations would otherwise
	// cost every answer, also with -log-level warn.
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		s.log.Info("parked request finished", "connId", connID, "outcome", o.String(), "timeout", timeout.String(),
			"duration", answered.Sub(deadline.Add(-timeout)).Round(time.Millisecond).String(), "remote", remote)
	}
}

// refused answers a park the registry did not take, counting it and
// adding what the client is told.
func (s *server) refused(ctx *fasthttp.RequestCtx, err error, connID string) {
	switch {
	case errors.Is(err, registry.ErrDuplicate):
		err = withMessage(err, "connId "+connID+" is already running")
	case errors.Is(err, registry.ErrFull):
		s.metrics.outcome(outcomeRejected)
		err = withMessage(err, "all "+strconv.Itoa(s.reg.Capacity())+" places for parked requests are taken; retry later")
	case errors.Is(err, registry.ErrShuttingDown):
		s.metrics.outcome(registry.Shutdown.String())
	}
	s.writeError(ctx, err)
}

// releaseWhenIdle gives memory back to the OS once nothing has been parked
// for a moment. A burst of parked requests leaves garbage that no
// allocation will collect on an idle server until the runtime's forced GC
// two minutes later; an operator watching RSS, or a load test checking
// that the server returns to its baseline, should not wait that long. At
// most one release is pending at a time.
func (s *server) releaseWhenIdle() {
	if s.reg.Len() != 0 || !s.releasing.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(idleRelease, func() {
		s.releasing.Store(false)
		if s.reg.Len() == 0 {
			debug.FreeOSMemory()
		}
	})
}

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
