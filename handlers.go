package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// Bodies of the answers a parked request gets.
const (
	okBody           = `{"status":"ok"}`
	killedBody       = `{"status":"killed"}`
	shuttingDownBody = `{"status":"shutting down"}`
)

// rfc3339Millis is RFC 3339 with exactly three decimals, as the resource
// API's times are written.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

func writeJSON(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

func writeJSONString(ctx *fasthttp.RequestCtx, code int, body string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(body)
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

// serverStatus is GET /api/serverStatus: {"connId":"seconds left", ...}.
func (s *server) serverStatus(ctx *fasthttp.RequestCtx) {
	sc := s.scratch()
	defer s.release(sc)
	sc.parked = s.reg.Snapshot(sc.parked[:0])
	b := append(sc.body[:0], '{')
	for i, p := range sc.parked {
		if i > 0 {
			b = append(b, ',')
		}
		b = wire.AppendString(b, p.ConnID)
		b = append(b, ':', '"')
		b = strconv.AppendInt(b, secondsLeft(p.Remaining), 10)
		b = append(b, '"')
	}
	b = append(b, '}')
	sc.body = b
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// secondsLeft rounds up to whole seconds, and never shows a request that
// is still parked as 0.
func secondsLeft(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

// kill is PUT /api/kill with the connId in the body or the query.
func (s *server) kill(ctx *fasthttp.RequestCtx) {
	id, err := wire.KillConnID(ctx.URI().QueryString(), ctx.PostBody())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if err := s.reg.Kill(id); err != nil {
		s.writeError(ctx, withMessage(errUnknownConnID, "invalid connection Id : "+id))
		return
	}
	writeJSONString(ctx, fasthttp.StatusOK, okBody)
}

func (s *server) healthz(ctx *fasthttp.RequestCtx) {
	writeJSONString(ctx, fasthttp.StatusOK, okBody)
}

// readyz says whether the server takes new parked requests.
func (s *server) readyz(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		writeJSONString(ctx, fasthttp.StatusServiceUnavailable, shuttingDownBody)
		return
	}
	writeJSONString(ctx, fasthttp.StatusOK, `{"status":"ready"}`)
}

// listRequests is GET /api/requests: every parked request, in
// serverStatus's order.
func (s *server) listRequests(ctx *fasthttp.RequestCtx) {
	sc := s.scratch()
	defer s.release(sc)
	sc.parked = s.reg.Snapshot(sc.parked[:0])
	b := append(sc.body[:0], '[')
	for i, p := range sc.parked {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRequest(b, p.Info())
	}
	b = append(b, ']')
	sc.body = b
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// getRequest is GET /api/requests/{connId}.
func (s *server) getRequest(ctx *fasthttp.RequestCtx) {
	id, err := pathConnID(ctx)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	in, ok := s.reg.Get(id)
	if !ok {
		s.writeError(ctx, notParked(id))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, appendRequest(nil, in))
}

// deleteRequest is DELETE /api/requests/{connId}: a kill.
func (s *server) deleteRequest(ctx *fasthttp.RequestCtx) {
	id, err := pathConnID(ctx)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if err := s.reg.Kill(id); err != nil {
		s.writeError(ctx, notParked(id))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func notParked(id string) error {
	return withMessage(errRequestNotParked, "no request is parked with connId "+id)
}

// pathConnID decodes the {connId} segment; the router matches raw paths, so
// an id with a '/' arrives as %2F within one segment.
func pathConnID(ctx *fasthttp.RequestCtx) (string, error) {
	raw, _ := ctx.UserValue("connId").(string)
	return wire.UnescapePath(raw)
}

// appendRequest writes one parked request as the resource API shows it.
func appendRequest(b []byte, in registry.Info) []byte {
	timeoutMs := in.Timeout.Milliseconds()
	remainingMs := min(max(0, int64((in.Remaining+time.Millisecond-1)/time.Millisecond)), timeoutMs)
	b = append(b, `{"connId":`...)
	b = wire.AppendString(b, in.ConnID)
	b = append(b, `,"timeoutMs":`...)
	b = strconv.AppendInt(b, timeoutMs, 10)
	b = append(b, `,"remainingMs":`...)
	b = strconv.AppendInt(b, remainingMs, 10)
	b = append(b, `,"startedAt":"`...)
	b = in.Started.UTC().AppendFormat(b, rfc3339Millis)
	b = append(b, `","deadline":"`...)
	b = in.Deadline.UTC().AppendFormat(b, rfc3339Millis)
	b = append(b, `","remoteAddr":`...)
	b = wire.AppendString(b, in.RemoteAddr)
	return append(b, '}')
}

// listing is scratch space for serverStatus and the resource API, kept in
// a pool so that polling a full server does not churn megabytes.
type listing struct {
	parked []registry.Parked
	body   []byte
}

// release returns sc to the pool, dropping its references to entries.
func (s *server) release(sc *listing) {
	clear(sc.parked)
	s.listings.Put(sc)
}

func (s *server) scratch() *listing {
	if sc, ok := s.listings.Get().(*listing); ok {
		return sc
	}
	return &listing{}
}
