package main

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parkd/parkd/hangup"
	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// A parked request holds no goroutine, no RequestCtx and no buffer while
// it waits. The handler parks it in the registry and hijacks the
// connection; fasthttp's worker goes back to its pool. What remains is the
// connection, a registry entry with its timer, a hang-up watch and this
// struct: a few hundred bytes. When the registry delivers the outcome, the
// answer is written from prepared bytes and the connection goes back to
// fasthttp (Server.ServeConn) for its next request, with whatever
// pipelined bytes fasthttp had already read from it.

// parkedConn is one parked request between its park and its answer.
type parkedConn struct {
	s          *server
	p          wire.Park
	remote     string
	entry      *registry.Entry // set before the hijack, read after it
	http11     bool
	closeAfter bool // the client asked to close after the answer

	mu      sync.Mutex       // guards what follows
	conn    net.Conn         // nil until the hijack handler runs
	pending []byte           // bytes fasthttp had read past the request
	outcome registry.Outcome // an outcome that came before the connection
	watch   hangup.Watch
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
		p:          p,
		remote:     ctx.RemoteAddr().String(),
		http11:     ctx.Request.Header.IsHTTP11(),
		closeAfter: ctx.Request.Header.ConnectionClose(),
	}
	s.responding.Add(1)
	e, err := s.reg.Park(registry.Request{ConnID: p.ConnID, Timeout: p.Timeout, RemoteAddr: pc.remote}, pc.deliver)
	if err != nil || e == nil {
		s.responding.Add(-1)
	}
	switch {
	case err != nil:
		s.refused(ctx, err, p.ConnID)
	case e == nil: // a zero timeout: answered here, after the same checks
		s.finished(pc, registry.OK, time.Now(), time.Now())
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
	pc.mu.Lock()
	pc.conn, pc.pending = c, pending
	o := pc.outcome
	if o == 0 {
		var err error
		pc.watch, err = pc.s.hangups.Watch(c, pc.hangUp)
		if err != nil && !errors.Is(err, hangup.ErrUnsupported) {
			pc.s.log.Warn("cannot watch for hang-up", "connId", pc.p.ConnID, "err", err)
		}
	}
	pc.mu.Unlock()
	if o != 0 {
		pc.answer(o)
	}
}

func (pc *parkedConn) hangUp() { pc.entry.Abandon() }

// deliver is the registry's callback: the outcome is decided.
func (pc *parkedConn) deliver(o registry.Outcome) {
	pc.mu.Lock()
	if pc.conn == nil { // still on its way to attach, which answers
		pc.outcome = o
		pc.mu.Unlock()
		return
	}
	pc.mu.Unlock()
	pc.answer(o)
}

// answer writes the outcome's answer (none to a client that left) and
// hands the connection back to fasthttp or closes it. It runs once: from
// deliver if the connection was attached, else from attach.
func (pc *parkedConn) answer(o registry.Outcome) {
	s := pc.s
	defer s.responding.Add(-1)
	pc.mu.Lock()
	c, pending, watch := pc.conn, pc.pending, pc.watch
	pc.conn, pc.pending = nil, nil
	pc.mu.Unlock()

	watch.Stop() // before the connection can be closed and its descriptor reused
	if o == registry.Abandoned {
		c.Close()
		s.finished(pc, o, pc.entry.Deadline(), time.Now())
		return
	}
	closeAfter := pc.closeAfter || s.draining.Load()
	code, body := answerOf(o)
	err := c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err == nil {
		_, err = c.Write(appendAnswer(make([]byte, 0, 192), code, body, pc.http11, closeAfter))
	}
	s.finished(pc, o, pc.entry.Deadline(), time.Now())
	s.metrics.answered(parkRoute, code)
	if err != nil || closeAfter {
		c.Close()
		return
	}
	if len(pending) > 0 {
		c = &resumedConn{Conn: c, pending: pending}
	}
	// The connection's next request is fasthttp's again. ServeConn returns
	// when the connection closes; it closes it itself.
	go s.http.ServeConn(c) //nolint:errcheck // connection errors are the client's
}

// parkRoute is the route label of a parked request's answer.
const parkRoute = "/api/request"

// appendAnswer writes a complete HTTP response, framed as fasthttp frames
// its own: an HTTP/1.1 status line, and Connection: keep-alive for an
// HTTP/1.0 client that keeps the connection.
func appendAnswer(b []byte, code int, body string, http11, closeAfter bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(code)...)
	b = append(b, "\r\nServer: parkd\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
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
	var buf [512]byte
	for {
		n, err := c.Read(buf[:])
		pending = append(pending, buf[:n]...)
		if err != nil || n == 0 {
			return pending
		}
	}
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

// NetConn lets the hang-up watcher reach the socket.
func (c *resumedConn) NetConn() net.Conn { return c.Conn }
