package main

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkd/parkd/cluster"
	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// Cluster mode (section 9 of docs/API.md): what the server does besides
// what it does alone. The local registry stays the owner of its requests;
// the cluster store is the shared view. A standalone server has the
// in-process store, whose calls cost nothing, and these paths are taken
// only when the store is shared.

// clusterConfig is what cluster mode is set with.
type clusterConfig struct {
	url, prefix string
	history     int
}

// headerCluster says, on a listing in cluster mode, whether it covers the
// whole cluster (ok) or this instance alone (degraded).
const headerCluster = "Parkd-Cluster"

// joinCluster connects to the cluster's Redis when -redis names one:
// after it, the server's store is the shared one.
func (s *server) joinCluster(ctx context.Context) error {
	if s.cluster.url == "" {
		return nil
	}
	store, err := cluster.Connect(ctx, cluster.Config{
		URL: s.cluster.url, Prefix: s.cluster.prefix, Instance: s.name, History: s.cluster.history,
		Log: s.log, Ring: s.ring, Hub: s.hub, Local: s.localParked, KillLocal: s.killForOther,
	})
	if err != nil {
		return err
	}
	s.store = store
	s.log.Info("joined the cluster", "instance", s.name, "prefix", s.cluster.prefix)
	return nil
}

// killForOther kills what this instance holds as connID, for another
// instance that was asked to; then is the kill's then list as text.
func (s *server) killForOther(connID, then string) bool {
	var th wire.Then
	if then != "" {
		var err error
		if th, err = wire.ParseThen(then); err != nil {
			return false // sent by a parkd, which checked it: not reached
		}
	}
	for end := time.Now().Add(claimedWait); ; time.Sleep(time.Millisecond) {
		if _, claiming := s.claiming.Load(connID); !claiming || time.Now().After(end) {
			break
		}
	}
	return s.reg.Kill(connID, registry.Detail(s.drawKill(th))) == nil
}

// clustered says whether the store is shared.
func (s *server) clustered() bool { return s.store.Health() != cluster.Alone }

// markCluster sets Parkd-Cluster on a listing answer in cluster mode.
func (s *server) markCluster(ctx *fasthttp.RequestCtx, whole bool) {
	if !s.clustered() {
		return
	}
	if whole {
		ctx.Response.Header.Set(headerCluster, "ok")
	} else {
		ctx.Response.Header.Set(headerCluster, "degraded")
	}
}

// shared describes a request this instance holds for the shared view.
func (s *server) shared(connID, remote string, timeout time.Duration, sh *shaping, drip time.Duration) cluster.Parked {
	p := cluster.Parked{ConnID: connID, Instance: s.name, RemoteAddr: remote, Then: thenText(sh),
		Timeout: timeout, Started: time.Now(), BodyLen: len(okBody)}
	if sh != nil {
		p.BodyLen = sh.bodyLength(okBody, int(sh.then))
		if sh.then == wire.ActionTruncate {
			p.BodyLen = sh.bodyLength(okBody, fasthttp.StatusOK)
		}
		if p.Pieces = sh.pieces; p.Pieces > 0 {
			p.Drip = drip
		}
	}
	return p
}

// localParked lists what this instance holds, for re-registering it.
func (s *server) localParked() []cluster.Parked {
	snap := s.reg.Snapshot(nil)
	out := make([]cluster.Parked, 0, len(snap))
	for _, p := range snap {
		in := p.Info()
		var sh *shaping
		if o, ok := in.Owner.(shapeOwner); ok {
			sh = o.shapeOf()
		}
		cp := s.shared(in.ConnID, in.RemoteAddr, in.Timeout, sh, in.Drip)
		cp.Started = in.Started
		out = append(out, cp)
	}
	return out
}

// shapeOwner is a parked request's owner that knows what section 6 asked
// of it.
type shapeOwner interface{ shapeOf() *shaping }

// instanceTag is the instance name resource objects carry: in cluster
// mode only.
func (s *server) instanceTag() string {
	if s.clustered() {
		return s.name
	}
	return ""
}

// appendHere writes a request this instance holds as a cluster-wide
// resource listing shows it.
func (s *server) appendHere(b []byte, p registry.Parked) []byte {
	return appendRequest(b, p.Info(), s.name)
}

// claim makes connID this instance's across the cluster before it parks.
// Between the claim and the registry, the connId is in claiming: the
// other instances list it already, and a kill they forward waits for it.
func (s *server) claim(p cluster.Parked) error {
	if s.reg.Has(p.ConnID) {
		return registry.ErrDuplicate
	}
	s.claiming.Store(p.ConnID, struct{}{})
	err := s.store.Claim(context.Background(), p) // never the RequestCtx: it is reused once the handler returns
	if err != nil {
		s.claiming.Delete(p.ConnID)
	}
	return err
}

// claimedWait bounds how long a forwarded kill waits for a park that has
// claimed its connId to reach the registry: a handler's few microseconds,
// but a busy machine may stretch them.
const claimedWait = 50 * time.Millisecond

// writeClusterListing answers a listing in cluster mode: this instance's
// requests and the other live instances', in deadline order to the
// millisecond, ties by connId. When the shared view cannot be read, this
// instance's alone, marked degraded.
func (s *server) writeClusterListing(ctx *fasthttp.RequestCtx, open, end byte, local func([]byte, registry.Parked) []byte,
	remote func([]byte, *cluster.Parked, time.Time) []byte) {
	sc := s.scratch()
	defer s.release(sc)
	var whole bool
	sc.body, whole = s.appendClusterListing(sc, sc.body[:0], open, end, local, remote)
	s.markCluster(ctx, whole)
	writeJSON(ctx, fasthttp.StatusOK, sc.body)
}

// appendClusterListing appends the cluster-wide listing to b, and says
// whether it covers the whole cluster.
func (s *server) appendClusterListing(sc *listing, b []byte, open, end byte,
	local func([]byte, registry.Parked) []byte, remote func([]byte, *cluster.Parked, time.Time) []byte) ([]byte, bool) {
	chunks, err := s.store.Others(context.Background())
	sc.remotes = sc.remotes[:0]
	for _, c := range chunks {
		for i := range c {
			sc.remotes = append(sc.remotes, &c[i])
		}
	}
	others := sc.remotes
	sc.parked = s.reg.Snapshot(sc.parked[:0])
	now := time.Now()
	// An id both here and elsewhere: another instance took it while this
	// one was cut off, and the cluster's is listed. The set is of the local
	// ids, the smaller side.
	var shadowed map[string]bool
	if len(others) > 0 && len(sc.parked) > 0 {
		shadowed = make(map[string]bool, len(sc.parked))
		for i := range sc.parked {
			shadowed[sc.parked[i].ConnID] = false
		}
		for _, p := range others {
			if _, ok := shadowed[p.ConnID]; ok {
				shadowed[p.ConnID] = true
			}
		}
	}
	// Item i is others[i], then sc.parked[sc.locals[i-len(others)]].
	sc.locals, sc.ends = sc.locals[:0], sc.ends[:0]
	for _, p := range others {
		sc.ends = append(sc.ends, p.End().UnixMilli())
	}
	for i := range sc.parked {
		if !shadowed[sc.parked[i].ConnID] {
			sc.locals = append(sc.locals, int32(i))
			sc.ends = append(sc.ends, now.Add(sc.parked[i].Remaining).UnixMilli())
		}
	}
	connID := func(i int) string {
		if i < len(others) {
			return others[i].ConnID
		}
		return sc.parked[sc.locals[i-len(others)]].ConnID
	}
	sc.order = listedOrder(sc.order, sc.ends, connID)
	b = append(b, open)
	for n, key := range sc.order {
		if n > 0 {
			b = append(b, ',')
		}
		if i := int(key); i < len(others) {
			b = remote(b, others[i], now)
		} else {
			b = local(b, sc.parked[sc.locals[i-len(others)]])
		}
	}
	return append(b, end), err == nil
}

// listedOrder puts into dst the order of a listing's items, soonest end
// first, ties by connId: item i ends at ends[i] (ms) and is connID(i).
// A cluster listing sorts one item per request of the cluster (114,000 at
// 6 × 19,000), so items are sorted as plain numbers, the end above the
// index, which needs no comparison function and moves no pointers; only
// runs of equal ends are then compared by connId.
func listedOrder(dst []uint64, ends []int64, connID func(int) string) []uint64 {
	const indexBits = 24
	dst = dst[:0]
	if len(ends) == 0 {
		return dst
	}
	lo, hi := slices.Min(ends), slices.Max(ends)
	byID := func(a, b uint64) int { return strings.Compare(connID(int(a)), connID(int(b))) }
	if len(ends) >= 1<<indexBits || uint64(hi-lo) >= 1<<(64-indexBits) { // not met by any real listing
		for i := range ends {
			dst = append(dst, uint64(i))
		}
		slices.SortFunc(dst, func(a, b uint64) int {
			return cmp.Or(cmp.Compare(ends[a], ends[b]), byID(a, b))
		})
		return dst
	}
	for i, e := range ends {
		dst = append(dst, uint64(e-lo)<<indexBits|uint64(i))
	}
	slices.Sort(dst)
	const index = 1<<indexBits - 1
	for i := range dst {
		dst[i] &= index
	}
	for i := 0; i < len(dst); {
		j := i + 1
		for j < len(dst) && ends[dst[j]] == ends[dst[i]] {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(dst[i:j], byID)
		}
		i = j
	}
	return dst
}

// appendRemoteStatus writes another instance's request as a serverStatus
// member.
func appendRemoteStatus(b []byte, p *cluster.Parked, now time.Time) []byte {
	b = wire.AppendString(b, p.ConnID)
	b = append(b, ':', '"')
	b = strconv.AppendInt(b, secondsLeft(p.End().Sub(now)), 10)
	return append(b, '"')
}

// appendRemoteRequest writes another instance's request as the resource
// API shows it; its phase and bytes sent follow its schedule.
func appendRemoteRequest(b []byte, p *cluster.Parked, now time.Time) []byte {
	begun, sent := p.BodyAt(now)
	phase := phaseWaiting
	if begun {
		phase = phaseBody
	}
	return appendResource(b, resource{
		connID: p.ConnID, timeout: p.Timeout, drip: p.Drip, remaining: p.End().Sub(now), started: p.Started,
		deadline: p.Deadline(), remote: p.RemoteAddr, then: p.Then, phase: phase, sent: int64(sent), instance: p.Instance,
	})
}

// killElsewhere forwards a kill the local registry did not find to the
// instance holding the request: nil once that one has decided it.
func (s *server) killElsewhere(connID string, then wire.Then) error {
	if !s.clustered() {
		return cluster.ErrNotParked
	}
	text := ""
	if !then.IsZero() {
		text = then.String()
	}
	return s.store.Kill(context.Background(), connID, text)
}

// findElsewhere reads a request another instance holds.
func (s *server) findElsewhere(connID string) (cluster.Parked, error) {
	if !s.clustered() {
		return cluster.Parked{}, cluster.ErrNotParked
	}
	return s.store.Find(context.Background(), connID)
}

// clusterError is what a kill or a lookup that went to the cluster
// answers when it did not find the request.
func clusterError(err error, notFound error) error {
	var unreachable cluster.Unreachable
	switch {
	case errors.As(err, &unreachable):
		return withMessage(errInstanceUnreachable, "instance "+unreachable.Instance+" unreachable")
	case errors.Is(err, cluster.ErrUnavailable):
		return withMessage(errClusterUnavailable, "cluster store unreachable")
	}
	return notFound
}
