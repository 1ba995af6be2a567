package main

import (
	"bufio"
	"context"
	"net"
	"time"

	"github.com/parkd/parkd/cluster"
	"github.com/parkd/parkd/events"
	"github.com/parkd/parkd/history"
	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/socket"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// streamSendBuffer bounds the kernel's send buffer of an event stream.
const streamSendBuffer = 64 << 10

// streamRetry is the reconnection delay an event stream suggests to its
// client, in milliseconds.
const streamRetry = "1000"

// historyList is GET /api/history: finished parked requests, newest
// first, filtered by connId and outcome, at most limit of them.
func (s *server) historyList(ctx *fasthttp.RequestCtx) {
	q, err := wire.ParseHistoryQuery(ctx.URI().QueryString())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	recs, err := s.store.History(context.Background(), history.Filter{ConnID: q.ConnID, Outcome: q.Outcome, Limit: q.Limit})
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.markCluster(ctx, s.store.Health() != cluster.Degraded)
	b := make([]byte, 0, 64+len(recs)*256)
	b = append(b, '[')
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = recs[i].AppendJSON(b)
	}
	writeJSON(ctx, fasthttp.StatusOK, append(b, ']'))
}

// eventStream is GET /api/events: Server-Sent Events. The snapshot and the
// replay after Last-Event-ID are written here, while the handler still
// owns ctx; the events that follow are written by the stream's writer, on
// its own goroutine, until the client leaves, falls behind or stalls, or
// the server has drained (the hub closes).
func (s *server) eventStream(ctx *fasthttp.RequestCtx) {
	last, ok := history.ParseID(string(ctx.Request.Header.Peek("Last-Event-ID")))
	conn := ctx.Conn()
	// A client that stops reading must block the stream's writes soon,
	// where the hub sees them stall, not after megabytes of kernel buffer.
	socket.BoundSendBuffer(conn, streamSendBuffer) //nolint:errcheck // an unbounded buffer only delays the stall
	// A write blocked for events.StallTimeout (or a subscriber too far
	// behind) is cut by a deadline in the past, and the connection resets
	// as it closes, dropping what the client never took; fasthttp's own
	// write timeout would end the stream after 10 s.
	cut := func() {
		socket.AbortOnClose(conn)         //nolint:errcheck // it closes either way
		conn.SetWriteDeadline(time.Now()) //nolint:errcheck // the stream is ending
	}
	sub, replay, err := s.store.Subscribe(last, ok, cut)
	if err != nil {
		s.writeError(ctx, registry.ErrShuttingDown)
		return
	}
	if err := ctx.SetWriteDeadline(time.Time{}); err != nil {
		s.hub.Unsubscribe(sub)
		s.writeError(ctx, err)
		return
	}
	first := append(make([]byte, 0, 4096), "retry: "+streamRetry+"\n\n"...)
	first = events.AppendFrame(first, nil, "snapshot", s.appendSnapshot(nil))
	for i := range replay {
		first = events.AppendFrame(first, replay[i].ID.AppendText(nil), "finished", replay[i].AppendJSON(nil))
	}
	s.markCluster(ctx, s.store.Health() != cluster.Degraded)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	ctx.SetConnectionClose()                           // a dropped stream is a closed connection
	ctx.Response.ImmediateHeaderFlush = true
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { s.writeStream(w, conn, sub, first) })
}

// streamCheck is how often a quiet stream checks that its client is still
// there; the keep-alive comment goes out every events.KeepAlive.
const streamCheck = time.Second

// writeStream is a stream's writer: it owns sub and never touches the
// request's ctx. conn is only peeked at, to notice that the client left.
func (s *server) writeStream(w *bufio.Writer, conn net.Conn, sub *events.Subscriber, first []byte) {
	defer s.hub.Unsubscribe(sub)
	frames := make([][]byte, 0, 256)
	quiet := time.Duration(0)
	for pending := first; ; {
		// Each frame tells the hub the writer is moving: one that takes no
		// byte for events.StallTimeout is cut, one that reads slowly is not.
		sub.Writing(true)
		if len(pending) > 0 {
			w.Write(pending) //nolint:errcheck // a failed write fails the flush
		}
		for _, f := range frames {
			sub.Writing(true)
			w.Write(f) //nolint:errcheck // likewise
		}
		sub.Writing(true)
		err := w.Flush()
		sub.Writing(false)
		if err != nil {
			return
		}
		clear(frames) // the hub's frames are not held past their sending
		frames = frames[:0]
		for pending = nil; len(frames) == 0 && pending == nil; {
			if frames, err = sub.Next(frames[:0], streamCheck); err != nil {
				return
			}
			switch quiet += streamCheck; {
			case len(frames) > 0:
				quiet = 0
			case socket.PeerClosed(conn): // a busy stream learns it when it writes
				return
			case quiet >= events.KeepAlive:
				quiet, pending = 0, []byte(": keep-alive\n\n")
			}
		}
	}
}

// appendSnapshot writes every parked request as /api/requests lists it,
// the cluster's in cluster mode.
func (s *server) appendSnapshot(b []byte) []byte {
	sc := s.scratch()
	defer s.release(sc)
	if s.clustered() {
		b, _ = s.appendClusterListing(sc, b, '[', ']', s.appendHere, appendRemoteRequest)
		return b
	}
	return s.appendListing(sc, b, '[', ']', appendParked)
}
