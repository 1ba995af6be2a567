package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/parkd/parkd/cluster"
	"github.com/parkd/parkd/history"
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
// fasthttp serves it again (keepalive.go). A request that asked for
// another ending (section 6 of docs/API.md) carries a shaping as well, and
// a dripping body is timed by the registry's steps, not a timer of its own.

// parkedConn is one parked request, from its park to its settling. Its
// states, and who moves it from one to the next:
//
//		parked ─▶ attached ─▶ [body] ─▶ decided ─▶ answered ─▶ settled ─▶ idle | closed | served again
//
//	  - parked: the handler (a fasthttp worker) has put its entry in the
//	    registry and asked fasthttp to hijack the connection, and returns.
//	  - attached: attach, on fasthttp's hijack goroutine, detaches the
//	    socket and watches it for a hang-up. Should fasthttp close the
//	    connection instead (it skips the hijack handler when it cannot clear
//	    the connection's deadlines), connLost, on the goroutine closing it,
//	    abandons the request.
//	  - body (a dripping request only): at its deadline the registry's wake
//	    goroutines call Step, which writes the headers, then at each later
//	    step a piece of the body; the request stays parked until the last
//	    byte has left.
//	  - decided: the registry decides the one outcome and calls Deliver, on
//	    the goroutine that decided it: the deadline or the last piece (the
//	    registry's wake goroutines), a kill (the killer's handler), the
//	    client hanging up (a goroutine hangUp starts, so that the poller's
//	    only goroutine never runs this path and its log line), or shutdown
//	    (serve's goroutine). An outcome decided before attach is kept for
//	    attach to answer; a kill waits for that answer (attachWait).
//	  - answered: answer applies the ending — writes the outcome's bytes
//	    without waiting for the client (what the socket does not take at
//	    once is written on a goroutine of its own, bounded by writeTimeout),
//	    or resets or closes the connection; a client that left gets nothing.
//	  - settled: settle accounts for the request (log line, outcome and
//	    ending counters, lateness) and then keeps the connection for its
//	    next request (keepAlive), closes it, or hands it back to fasthttp.
type parkedConn struct {
	s          *server
	entry      *registry.Entry // set before the hijack, read after it
	shape      *shaping        // nil for a plain park
	http11     bool
	closeAfter bool // the client asked to close after the answer

	mu       sync.Mutex // guards what follows
	lost     bool       // fasthttp closed the connection: attach never runs
	answered bool       // answer has begun: no step writes any more
	// written: attach has answered an outcome that came before the socket,
	// or fasthttp dropped the connection (a bool, not a channel: it fits
	// the struct's padding, and only a kill in that window waits on it).
	written bool
	outcome registry.Outcome // an outcome that came before the socket
	detail  registry.Detail  // and its detail
	sock    *socket.Socket   // nil until attach runs
	pending []byte           // bytes fasthttp had read past the request
}

// park is GET /api/request?connId=ID&timeout=SECONDS, with the options of
// section 6.
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
	req := registry.Request{ConnID: p.ConnID, Timeout: p.Timeout, RemoteAddr: remote}
	if p.Shape != nil {
		pc.shape, req.Timeout = s.newShaping(p.Shape, p.Timeout)
		req.Hold = pc.shape.holdsConn()
		if req.Pieces = pc.shape.pieces; req.Pieces > 0 {
			req.Drip = p.Shape.Drip
		}
	}
	// In cluster mode the connId is made this instance's first: the claim
	// waits on Redis before anything is parked or held here.
	var claim cluster.Parked
	if s.clustered() {
		claim = s.shared(p.ConnID, remote, req.Timeout, pc.shape, req.Drip)
		if err := s.claim(claim); err != nil {
			s.refused(ctx, err, p.ConnID)
			return
		}
		defer s.claiming.Delete(p.ConnID) // parked (or not) now: see killForOther
	}
	s.responding.Add(1)
	e, err := s.reg.Park(req, pc)
	if err != nil || e == nil {
		s.responding.Add(-1)
		if claim.ConnID != "" {
			s.store.Release(claim, 0)
		}
	}
	switch {
	case err != nil:
		s.refused(ctx, err, p.ConnID)
	case e == nil: // a zero timeout: answered here, after the same checks
		pc.answerAtOnce(ctx, p.ConnID, remote)
	default:
		pc.entry = e
		if s.store.Publishing() {
			s.store.PublishParked(p.ConnID, appendRequest(nil, e.Info(), s.instanceTag()))
		}
		if conn != nil {
			conn.awaitHijack(pc)
		}
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(pc.attach)
	}
}

// answerAtOnce answers a zero timeout whose ending fasthttp can write: a
// status code and its body.
func (pc *parkedConn) answerAtOnce(ctx *fasthttp.RequestCtx, connID, remote string) {
	end := ending{outcome: registry.OK, then: fasthttp.StatusOK, code: fasthttp.StatusOK, bytesSent: int64(len(okBody))}
	if sh := pc.shape; sh != nil {
		end.then, end.code = sh.then, int(sh.then)
		end.bytesSent = int64(sh.bodyLength(okBody, end.code))
	}
	now := time.Now()
	pc.s.finished(connID, remote, end, 0, now, now)
	if end.bytesSent == int64(len(okBody)) {
		writeJSONString(ctx, end.code, okBody)
		return
	}
	ctx.SetStatusCode(end.code)
	if end.bytesSent > 0 {
		ctx.SetContentType("application/json")
		body := ctx.Response.BodyWriter()
		for _, b := range appendBodyParts(nil, okBody, 0, int(end.bytesSent), pc.s.pad) {
			body.Write(b) //nolint:errcheck // an in-memory buffer
		}
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
	o, d := pc.outcome, pc.detail
	if o == 0 {
		err := sock.Watch(socket.Hangup, pc.hangUp)
		if err != nil && !errors.Is(err, socket.ErrUnsupported) {
			pc.s.log.Warn("cannot watch for hang-up", "connId", pc.entry.ConnID(), "err", err)
		}
	}
	pc.mu.Unlock()
	switch {
	case o != 0:
		pc.answer(o, d)
		pc.markWritten()
	case pc.shape != nil && pc.shape.pieces > 0 && !time.Now().Before(pc.entry.Deadline()):
		// Its deadline (a zero timeout) came before the socket: the
		// headers leave now, not with the first piece.
		pc.Step(0, pc.entry.Deadline())
	}
}

// hangUp runs on the poller's goroutine, which must stay free for other
// hang-ups and wake-ups: the abandon path, with its log line, runs on a
// goroutine of its own, which ends with it.
func (pc *parkedConn) hangUp(socket.Event) { go pc.entry.Abandon() }

// endingState tells listings how the request will end; it may run on
// any goroutine.
func (pc *parkedConn) endingState() (then string, phase uint32, sent int64) {
	if pc.shape == nil {
		return thenText(nil), phaseWaiting, 0
	}
	return thenText(pc.shape), pc.shape.phase.Load(), pc.shape.sent.Load()
}

// shapeOf is what section 6 asked of the request; nil for a plain park.
func (pc *parkedConn) shapeOf() *shaping { return pc.shape }

// markWritten ends a kill's awaitAttach.
func (pc *parkedConn) markWritten() {
	pc.mu.Lock()
	pc.written = true
	pc.mu.Unlock()
}

// connLost is called when fasthttp closes the connection without running
// attach: the request is abandoned, or, if its outcome came first, settled
// without an answer.
func (pc *parkedConn) connLost() {
	pc.mu.Lock()
	pc.lost = true
	o := pc.outcome
	pc.mu.Unlock()
	if o != 0 {
		pc.release(false)
		pc.settle(ending{outcome: o}, nil, nil, true, nil)
		pc.markWritten()
		return
	}
	pc.entry.Abandon()
}

// release gives the connId back to the cluster as the request ends: before
// its answer is written, so that by the time a client has read it the
// connId is free everywhere. Alone, it costs an interface call.
func (pc *parkedConn) release(wait bool) {
	d := time.Duration(0)
	if wait {
		d = releaseWait
	}
	pc.s.store.Release(cluster.Parked{ConnID: pc.entry.ConnID()}, d)
}

// Deliver is the registry's call: the outcome is decided, with the
// kill's detail (its drawn action) for a kill.
func (pc *parkedConn) Deliver(o registry.Outcome, d registry.Detail) {
	pc.mu.Lock()
	switch {
	case pc.lost: // no connection to answer on
		pc.mu.Unlock()
		pc.release(false)
		pc.settle(ending{outcome: o}, nil, nil, true, nil)
		return
	case pc.sock == nil: // still on its way to attach, which answers
		pc.outcome, pc.detail = o, d
		pc.mu.Unlock()
		if o == registry.Killed { // not the deadline or shutdown: those wait for nobody
			pc.awaitAttach()
		}
		return
	}
	pc.mu.Unlock()
	pc.answer(o, d)
}

// awaitAttach waits, on a kill's goroutine, until attach has written the
// answer of a request killed before its socket was attached, so that the
// kill answers after the killed request's answer. The hijack comes
// microseconds after the park handler returns; attachWait bounds it.
func (pc *parkedConn) awaitAttach() {
	for end := time.Now().Add(attachWait); time.Now().Before(end); time.Sleep(50 * time.Microsecond) {
		pc.mu.Lock()
		done := pc.written
		pc.mu.Unlock()
		if done {
			return
		}
	}
}

// answer applies the outcome's ending (none to a client that left) and
// keeps the connection for its next request or closes it. It runs once:
// from Deliver if the socket was attached, else from attach. It never
// waits for the client: Kill and Shutdown deliver on their caller's
// goroutine, and a client that reads nothing must not hold them up.
func (pc *parkedConn) answer(o registry.Outcome, d registry.Detail) {
	s := pc.s
	pc.mu.Lock()
	sock, pending := pc.sock, pc.pending
	pc.pending, pc.answered = nil, true
	sh := pc.shape
	if sh == nil && o == registry.Killed && wire.Action(d) != fasthttp.StatusInternalServerError {
		sh = &shaping{then: fasthttp.StatusOK} // a plain park whose kill asked for another ending
	}
	if sh != nil {
		// Held to the end: a step that has begun finishes its write first.
		defer pc.mu.Unlock()
	} else {
		pc.mu.Unlock()
	}

	sock.Stop()
	// A killed request's client may park its connId again at once, on any
	// instance: its release waits a little for Redis (a kill waits on its
	// caller's goroutine anyway). One that reached its deadline does not
	// wait: claims give a holder past its end that long to release.
	pc.release(o == registry.Killed)
	if o == registry.Abandoned {
		sock.Close()
		end := ending{outcome: o}
		if sh != nil && sh.phase.Load() == phaseBody { // its headers and part of its body had left
			end.code, end.bytesSent, end.dripped = sh.code, sh.sent.Load(), true
		}
		pc.settle(end, sock, nil, true, nil)
		return
	}
	if sh != nil {
		pc.answerShaped(sh, o, wire.Action(d), sock, pending)
		return
	}
	closeAfter := pc.closeAfter || s.draining.Load()
	code, body := answerOf(o)
	end := ending{outcome: o, then: wire.Action(code), code: code, bytesSent: int64(len(body))}
	b := appendHead(make([]byte, 0, 256), s.dates.now(), s.instance, code, len(body), pc.http11, closeAfter)
	rest, err := sock.TryWrite(append(b, body...))
	if err == nil && len(rest) > 0 {
		// The client's window is full, or the socket is not detached:
		// finish on a goroutine of its own, bounded by writeTimeout.
		go func() { pc.settle(end, sock, pending, closeAfter, sock.WriteAll(rest, writeTimeout)) }()
		return
	}
	pc.settle(end, sock, pending, closeAfter, err)
}

// answerShaped applies the ending of a request that asked for one: at its
// deadline its drawn action, on a kill the kill's (killAction), at
// shutdown a 503. A body that has begun to drip can only be cut: a reset
// if the kill drew one, else a close after the bytes already sent. It
// runs with pc.mu held.
func (pc *parkedConn) answerShaped(sh *shaping, o registry.Outcome, killAction wire.Action, sock *socket.Socket, pending []byte) {
	done := func(end ending, closeAfter bool, err error) {
		end.outcome = o
		pc.settle(end, sock, pending, closeAfter, err)
	}
	if sh.phase.Load() == phaseBody {
		end := ending{outcome: o, then: wire.ActionClose, code: sh.code, bytesSent: sh.sent.Load(), dripped: true}
		switch {
		case o == registry.OK && !sh.stalled && sh.then != wire.ActionTruncate:
			end.then = sh.then // the whole body has left: a complete answer
			pc.settle(end, sock, pending, pc.closeAfter || pc.s.draining.Load(), nil)
			return
		case o == registry.OK:
			end.then = sh.then
		case o == registry.Killed && killAction == wire.ActionReset:
			end.then = wire.ActionReset
			sock.Reset()
		}
		pc.settle(end, sock, pending, true, nil)
		return
	}
	switch o {
	case registry.OK:
		pc.writeShaped(sh, sock, sh.then, okBody, done)
	case registry.Killed:
		pc.writeShaped(sh, sock, killAction, killedBody, done)
	default:
		pc.writeShaped(sh, sock, fasthttp.StatusServiceUnavailable, shuttingDownBody, done)
	}
}

// writeShaped writes a shaped request's whole answer at once: a status
// code with its (padded) body, or one of the other endings. done gets how
// it ended, whether the connection must close, and the write's error. What
// the socket does not take at once is written on a goroutine of its own,
// bounded by writeTimeout, which then calls done; else done is called
// before writeShaped returns.
func (pc *parkedConn) writeShaped(sh *shaping, sock *socket.Socket, a wire.Action, json string, done func(end ending, closeAfter bool, err error)) {
	s := pc.s
	closeAfter := pc.closeAfter || s.draining.Load()
	end := ending{then: a}
	switch a {
	case wire.ActionReset:
		done(end, true, sock.Reset())
		return
	case wire.ActionClose:
		done(end, true, nil)
		return
	case wire.ActionGarbage:
		_, err := sock.TryWriteBuffers([][]byte{[]byte(garbageBytes)}) // taken at once, or the client is gone
		done(end, true, err)
		return
	}
	code := int(a)
	if a == wire.ActionTruncate {
		code = fasthttp.StatusOK
		if json == killedBody {
			code = fasthttp.StatusInternalServerError
		}
	}
	length := sh.bodyLength(json, code)
	send, framed := length, length
	switch {
	case a == wire.ActionTruncate:
		send, closeAfter = (length-1)/2, true // less than half, at least one byte short
	case !hasBody(code):
		framed = -1 // 204 and 304: no body, no Content-Length
	}
	end.code = code
	head := appendHead(make([]byte, 0, 256), s.dates.now(), s.instance, code, framed, pc.http11, closeAfter)
	bufs := appendBodyParts([][]byte{head}, json, 0, send, s.pad)
	total := len(head) + send
	n, err := sock.TryWriteBuffers(bufs)
	end.bytesSent = int64(max(0, n-len(head)))
	if err != nil || n == total {
		done(end, closeAfter, err)
		return
	}
	go func() {
		err := writeRest(sock, bufs, n, time.Now().Add(writeTimeout))
		if err == nil {
			end.bytesSent = int64(send)
		}
		done(end, closeAfter, err)
	}()
}

// Step is the registry's call for step k of a dripping body, due at due:
// the headers at step 0, at each other step the body up to its piece. It
// writes without waiting; bytes the socket does not take wait for the
// next step. done says that nothing more is to be sent: the whole body
// (or, for truncate, all it may send) has left, or the client took nothing
// for writeTimeout.
func (pc *parkedConn) Step(k int, due time.Time) (done bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	sh := pc.shape
	if pc.answered || pc.sock == nil {
		return pc.answered // a step before attach: the next one catches up
	}
	s, now := pc.s, time.Now()
	if sh.phase.Load() == phaseWaiting {
		sh.code = int(sh.then)
		if sh.then == wire.ActionTruncate {
			sh.code = fasthttp.StatusOK
		}
		closeAfter := pc.closeAfter || s.draining.Load() || sh.then == wire.ActionTruncate
		sh.headerRest = appendHead(nil, s.dates.now(), s.instance, sh.code, sh.bodyLength(okBody, sh.code), pc.http11, closeAfter)
		sh.lastMove = now
		sh.phase.Store(phaseBody)
		s.metrics.lateness.Observe(now.Sub(pc.entry.Deadline()).Seconds())
	}
	if k > sh.lastPiece {
		sh.lastPiece = k
		s.metrics.pieceLateness.Observe(now.Sub(due).Seconds())
	}
	length := sh.bodyLength(okBody, sh.code)
	target := length * k / sh.pieces
	if sh.then == wire.ActionTruncate {
		target = min(target, (length-1)/2)
	}
	sent := int(sh.sent.Load())
	bufs := appendBodyParts(append(make([][]byte, 0, 4), sh.headerRest), okBody, sent, target, s.pad)
	n, err := pc.sock.TryWriteBuffers(bufs)
	if err != nil {
		sh.stalled = true
		return true
	}
	if n > 0 {
		sh.lastMove = now
	}
	taken := min(n, len(sh.headerRest))
	sh.headerRest = sh.headerRest[taken:]
	sh.sent.Add(int64(n - taken))
	if len(sh.headerRest) > 0 || sent+n-taken < target {
		sh.stalled = now.Sub(sh.lastMove) > writeTimeout
		return sh.stalled
	}
	return target == length || sh.then == wire.ActionTruncate && target == (length-1)/2
}

// settle ends a parked request once its answer is written, or failed, or
// there was none to write (no code): its accounting, then the
// connection's next request or its close.
func (pc *parkedConn) settle(end ending, sock *socket.Socket, pending []byte, closeAfter bool, err error) {
	s := pc.s
	defer s.releaseWhenIdle()
	defer s.responding.Add(-1)
	e := pc.entry
	s.finished(e.ConnID(), e.RemoteAddr(), end, e.Timeout(), e.Deadline(), time.Now())
	if end.code != 0 {
		s.metrics.parkAnswered(end.code)
	}
	switch {
	case sock == nil:
	case end.code == 0 || err != nil || closeAfter:
		sock.Close()
	default:
		s.keepAlive(sock, pending)
	}
}

// answerOf is what a plain parked request answers for its outcome.
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

// finished accounts for a parked request's end: its history record and
// finished event, a log line, the outcomes counter, the endings counter,
// and for a timeout that elapsed (a zero one aside, it never waited), how
// late its answer left.
func (s *server) finished(connID, remote string, end ending, timeout time.Duration, deadline, ended time.Time) {
	s.store.PublishFinished(history.Record{
		ConnID: connID, Outcome: end.outcome.String(), Then: end.then.String(), Code: end.code,
		Timeout: timeout, Started: deadline.Add(-timeout), Ended: ended, BytesSent: end.bytesSent,
		RemoteAddr: remote, Instance: s.name,
	})
	s.metrics.outcome(end.outcome.String())
	if end.then != 0 {
		s.metrics.ended(end.then)
	}
	if end.outcome == registry.OK && timeout > 0 && !end.dripped {
		s.metrics.lateness.Observe(ended.Sub(deadline).Seconds())
	}
	// The level is checked first: formatting the durations would otherwise
	// cost every answer, also with -log-level warn.
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		s.log.Info("parked request finished", "connId", connID, "outcome", end.outcome.String(), "then", end.then.String(),
			"timeout", timeout.String(), "duration", ended.Sub(deadline.Add(-timeout)).Round(time.Millisecond).String(), "remote", remote)
	}
}

// refused answers a park the registry did not take, counting it and
// adding what the client is told.
func (s *server) refused(ctx *fasthttp.RequestCtx, err error, connID string) {
	switch {
	case errors.Is(err, registry.ErrDuplicate), errors.Is(err, cluster.ErrTaken):
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
