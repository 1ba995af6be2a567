package main

import (
	"strconv"
	"time"

	"github.com/parkd/parkd/cluster"
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
	sc.body = s.appendListing(sc, sc.body[:0], open, end, item)
	writeJSON(ctx, fasthttp.StatusOK, sc.body) // copies it
}

// appendListing appends to b one snapshot of every parked request, as
// writeListing writes it, using sc's space for the snapshot.
func (s *server) appendListing(sc *listing, b []byte, open, end byte, item func([]byte, registry.Parked) []byte) []byte {
	sc.parked = s.reg.Snapshot(sc.parked[:0])
	b = append(b, open)
	for i, p := range sc.parked {
		if i > 0 {
			b = append(b, ',')
		}
		b = item(b, p)
	}
	return append(b, end)
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
	return appendRequest(b, p.Info(), "")
}

// appendRequest writes one parked request as the resource API shows it,
// naming the instance that holds it in cluster mode (instance not "").
func appendRequest(b []byte, in registry.Info, instance string) []byte {
	r := resource{connID: in.ConnID, timeout: in.Timeout, drip: in.Drip, remaining: in.Remaining, started: in.Started,
		deadline: in.Deadline, remote: in.RemoteAddr, then: thenText(nil), instance: instance}
	if er, ok := in.Owner.(endingReporter); ok {
		r.then, r.phase, r.sent = er.endingState()
	}
	return appendResource(b, r)
}

// resource is a resource-API object: a request parked here or elsewhere.
type resource struct {
	connID        string
	timeout, drip time.Duration
	remaining     time.Duration // to the last byte
	started       time.Time
	deadline      time.Time
	remote, then  string
	phase         uint32
	sent          int64
	instance      string // "" alone
}

// appendResource writes r: remainingMs counts to its last byte, and then,
// phase and bytesSent say what its ending is and how far its answer has
// gone.
func appendResource(b []byte, r resource) []byte {
	timeoutMs := r.timeout.Milliseconds()
	remainingMs := min(max(0, int64((r.remaining+time.Millisecond-1)/time.Millisecond)), timeoutMs+r.drip.Milliseconds())
	b = append(b, `{"connId":`...)
	b = wire.AppendString(b, r.connID)
	b = append(b, `,"timeoutMs":`...)
	b = strconv.AppendInt(b, timeoutMs, 10)
	b = append(b, `,"remainingMs":`...)
	b = strconv.AppendInt(b, remainingMs, 10)
	b = append(b, `,"startedAt":"`...)
	b = r.started.UTC().AppendFormat(b, rfc3339Millis)
	b = append(b, `","deadline":"`...)
	b = r.deadline.UTC().AppendFormat(b, rfc3339Millis)
	b = append(b, `","remoteAddr":`...)
	b = wire.AppendString(b, r.remote)
	b = append(b, `,"then":`...)
	b = wire.AppendString(b, r.then)
	b = append(b, `,"phase":"`...)
	b = append(b, phaseNames[r.phase]...)
	b = append(b, `","bytesSent":`...)
	b = strconv.AppendInt(b, r.sent, 10)
	if r.instance != "" {
		b = append(b, `,"instance":`...)
		b = wire.AppendString(b, r.instance)
	}
	return append(b, '}')
}

// endingReporter is a parked request's owner that tells how it will end:
// the action, the phase and the body bytes sent so far.
type endingReporter interface {
	endingState() (then string, phase uint32, sent int64)
}

// listing is scratch space for listings, kept in a pool so that polling a
// full server does not churn megabytes.
type listing struct {
	parked []registry.Parked
	body   []byte
	// A cluster listing's order (see appendClusterListing).
	remotes []*cluster.Parked
	locals  []int32
	ends    []int64
	order   []uint64
}

// release returns sc to the pool, dropping its references to entries.
func (s *server) release(sc *listing) {
	clear(sc.parked)
	clear(sc.remotes)
	s.listings.Put(sc)
}

func (s *server) scratch() *listing {
	if sc, ok := s.listings.Get().(*listing); ok {
		return sc
	}
	return &listing{}
}
