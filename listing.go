package main

import (
	"strconv"
	"time"

	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// Listings of what is parked: serverStatus and the resource API read one
// snapshot of the registry and write it the same way.

// rfc3339Millis is RFC 3339 with exactly three decimals, as the resource
// API's times are written.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

// writeListing answers with every parked request in deadline order, soonest
// first: item writes each, between open and end, separated by commas.
func (s *server) writeListing(ctx *fasthttp.RequestCtx, open, end byte, item func([]byte, registry.Parked) []byte) {
	sc := s.scratch()
	defer s.release(sc)
	sc.parked = s.reg.Snapshot(sc.parked[:0])
	b := append(sc.body[:0], open)
	for i, p := range sc.parked {
		if i > 0 {
			b = append(b, ',')
		}
		b = item(b, p)
	}
	b = append(b, end)
	sc.body = b
	writeJSON(ctx, fasthttp.StatusOK, b) // copies b
}

// appendStatus writes one serverStatus member: "connId":"seconds left".
func appendStatus(b []byte, p registry.Parked) []byte {
	b = wire.AppendString(b, p.ConnID)
	b = append(b, ':', '"')
	b = strconv.AppendInt(b, secondsLeft(p.Remaining), 10)
	return append(b, '"')
}

// secondsLeft rounds up to whole seconds, and never shows a request that
// is still parked as 0.
func secondsLeft(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

// appendParked writes one resource-API object.
func appendParked(b []byte, p registry.Parked) []byte {
	return appendRequest(b, p.Info())
}

// appendRequest writes one parked request as the resource API shows it:
// remainingMs counts to its last byte, and then, phase and bytesSent say
// what its ending is and how far its answer has gone.
func appendRequest(b []byte, in registry.Info) []byte {
	timeoutMs := in.Timeout.Milliseconds()
	remainingMs := min(max(0, int64((in.Remaining+time.Millisecond-1)/time.Millisecond)), timeoutMs+in.Drip.Milliseconds())
	then, phase, sent := thenText(nil), phaseWaiting, int64(0)
	if pc, ok := in.Owner.(*parkedConn); ok && pc.shape != nil {
		then, phase, sent = thenText(pc.shape), pc.shape.phase.Load(), pc.shape.sent.Load()
	}
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
	b = append(b, `,"then":"`...)
	b = append(b, then...)
	b = append(b, `","phase":"`...)
	b = append(b, phaseNames[phase]...)
	b = append(b, `","bytesSent":`...)
	b = strconv.AppendInt(b, sent, 10)
	return append(b, '}')
}

// listing is scratch space for listings, kept in a pool so that polling a
// full server does not churn megabytes.
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
