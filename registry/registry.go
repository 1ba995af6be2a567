// Package registry holds parked requests: a concurrent map from connId to a
// deadline and the way the request's single outcome is delivered, and
// beside it the same requests in deadline order, which also times them out.
//
// It knows nothing of HTTP. A caller parks a request with a deliver
// function; the registry decides the request's outcome — the timeout
// elapsed, a kill, the client went away, or shutdown — in one place
// (decide), exactly once, however those events race, and then calls
// deliver once with it.
//
// Lookups by connId (the duplicate check, Kill, Get) go to a sharded,
// lock-free xsync map and never wait. The deadline order is a B-tree
// under one mutex, held for a park's insertion, a decision and the copy a
// Snapshot takes: that copy reads the tree's compact nodes in order
// instead of sorting entries scattered across the heap, which is what
// keeps serverStatus fast with tens of thousands parked.
//
// Timeouts need no timer of their own: one timer is set for the earliest
// deadline in the tree, and when it fires, every request that is due gets
// OK, spread over GOMAXPROCS goroutines. A timer per request would cost a
// hundred-odd bytes each and, for thousands due at one instant, as many
// goroutines.
//
// A request may also drip: its end is spread over steps after its
// deadline (the server writes its headers at the first, a piece of its
// body at each of the others). The same timer times the steps: dripping
// requests wait in a second B-tree by their next step, and the wake
// goroutines call the request's Owner for each step that is due. A
// dripping request stays parked, listed by its last step, until its Owner
// says it is done (then OK is decided), or a kill, an abandon or Shutdown
// comes first. Dripping requests are listed from a tree of their own, so
// that the timing of plain ones never walks past them (a server that
// falls behind its drips would otherwise walk them all at every wake); a
// request that does not drip is in neither of their trees.
package registry

import (
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"github.com/puzpuzpuz/xsync/v4"
)

// Errors of Park and Kill.
var (
	// ErrDuplicate: a request with this connId is parked right now.
	ErrDuplicate = errors.New("connId is already running")
	// ErrFull: as many requests are parked as the capacity allows.
	ErrFull = errors.New("parked-request capacity is full")
	// ErrShuttingDown: Shutdown was called; nothing new is parked.
	ErrShuttingDown = errors.New("shutting down")
	// ErrNotParked: nothing is parked with this connId (never was, or it
	// already has its outcome).
	ErrNotParked = errors.New("no request parked with this connId")
)

// Request is what a caller asks to park.
type Request struct {
	ConnID     string
	Timeout    time.Duration
	RemoteAddr string
	// Hold parks the request even when its timeout is zero (it is due at
	// once), for an ending that needs its connection.
	Hold bool
	// Pieces, when not 0, makes the request drip: after the deadline (step
	// 0) come steps 1…Pieces, step k at deadline + Drip·k/Pieces.
	Pieces int
	Drip   time.Duration
}

// Owner is the caller's side of a parked request: the registry calls it
// when the request's outcome is decided and, for a dripping request, at
// each of its steps. Its methods run on the goroutine that moved the
// request (see Park) and should be quick.
type Owner interface {
	// Deliver is called exactly once, with the decided outcome and, for a
	// kill, the Detail the killer gave.
	Deliver(o Outcome, d Detail)
	// Step is called for step k of a dripping request (0: its deadline),
	// due at due, on a wake goroutine; a kill, an abandon or Shutdown may
	// decide the request meanwhile, and Deliver then runs concurrently
	// with it. done says that nothing more is to be sent: OK is decided
	// then. A last step that is not done is called again a little later.
	Step(k int, due time.Time) (done bool)
}

// Detail is what a killer passes to the killed request's Owner; the
// registry does not read it.
type Detail uint32

// stepRetry is how long a last step that was not done waits before it is
// called again: the client's window was full.
const stepRetry = 10 * time.Millisecond

// Parked is one request in a Snapshot: enough for serverStatus, and the
// way to the rest.
type Parked struct {
	ConnID    string
	Remaining time.Duration // at the Snapshot; ≤ 0 just before the outcome
	entry     *Entry
}

// Info describes a parked request.
type Info struct {
	ConnID     string
	Timeout    time.Duration
	Drip       time.Duration // from the deadline to the last step; 0 without one
	Started    time.Time
	Deadline   time.Time
	Remaining  time.Duration // to the last step, at the reading; ≤ 0 just before the outcome
	RemoteAddr string
	Owner      Owner
}

// Info reads the rest of p's request: its fields never change.
func (p Parked) Info() Info {
	in := p.entry.info()
	in.Remaining = p.Remaining
	return in
}

// Registry is the set of parked requests. All methods are safe for
// concurrent use. A Registry must be made with New.
type Registry struct {
	entries  *xsync.Map[string, *Entry]
	epoch    time.Time // Entry.due counts from here, on the monotonic clock
	capacity int64
	parked   atomic.Int64 // entries between Park's reservation and decide
	draining atomic.Bool
	cutoff   atomic.Int64 // Shutdown's grace end, on the due clock; set before draining

	orderMu  sync.Mutex
	order    *btree.BTreeG[ordered] // undecided entries that do not drip, by (deadline, connId)
	drips    *btree.BTreeG[ordered] // undecided dripping entries, by (last step, connId)
	steps    *btree.BTreeG[ordered] // undecided dripping entries, by (next step, connId)
	wake     *time.Timer            // fires at nextWake
	nextWake int64                  // the earliest due when wake was set; MaxInt64: unset

	drainedOnce sync.Once
	drained     chan struct{}
}

// ordered is an entry's place in the deadline order, with its sort key
// and connId inline so that reading the order does not touch the entry.
type ordered struct {
	due int64
	id  string
	e   *Entry
}

func lessOrdered(a, b ordered) bool {
	if a.due != b.due {
		return a.due < b.due
	}
	return a.id < b.id
}

// New returns an empty Registry that parks at most capacity requests at once.
func New(capacity int) *Registry {
	r := &Registry{
		entries:  xsync.NewMap[string, *Entry](),
		epoch:    time.Now(),
		capacity: int64(capacity),
		order:    btree.NewG(32, lessOrdered),
		drips:    btree.NewG(32, lessOrdered),
		steps:    btree.NewG(32, lessOrdered),
		nextWake: math.MaxInt64,
		drained:  make(chan struct{}),
	}
	r.wake = time.AfterFunc(time.Hour, r.expireDue)
	r.wake.Stop()
	return r
}

// Park parks req until its timeout elapses (for a dripping request: until
// its owner is done after the last step), it is killed or abandoned, or
// Shutdown ends it, and then calls owner.Deliver exactly once with the
// outcome.
//
// Deliver runs on whichever goroutine decided the outcome: one of the
// registry's wake goroutines, or the caller of Kill, Entry.Abandon or
// Shutdown; it may run before Park has returned. The entry has already
// left the registry when it runs, so it may park the same connId again.
// Step runs on a wake goroutine.
//
// Park fails with ErrDuplicate when req.ConnID is parked, ErrFull at
// capacity and ErrShuttingDown once Shutdown has begun; then the owner is
// never called. A park that races Shutdown's start is parked, and gets
// Shutdown's rule like the others. A zero timeout, without Hold or Pieces,
// passes the same checks but parks nothing: Park returns a nil Entry and
// nil, and the caller answers at once without the owner.
//
// The duplicate check and the insertion are one atomic step (two requests
// racing for one connId cannot both park); the capacity check is a
// separate atomic reservation made before it.
func (r *Registry) Park(req Request, owner Owner) (*Entry, error) {
	if r.draining.Load() {
		return nil, ErrShuttingDown
	}
	if _, ok := r.entries.Load(req.ConnID); ok {
		return nil, ErrDuplicate
	}
	if req.Timeout <= 0 && !req.Hold && req.Pieces == 0 {
		if r.parked.Load() >= r.capacity {
			return nil, ErrFull
		}
		return nil, nil
	}
	if r.parked.Add(1) > r.capacity {
		r.parked.Add(-1)
		return nil, ErrFull
	}
	deadline := int64(time.Since(r.epoch) + req.Timeout)
	e := &Entry{
		reg:        r,
		connID:     req.ConnID,
		remoteAddr: req.RemoteAddr,
		timeout:    req.Timeout,
		due:        deadline,
		owner:      owner,
	}
	if req.Pieces > 0 {
		e.drip = &drip{span: req.Drip, pieces: int32(req.Pieces), at: deadline}
		e.due += int64(req.Drip)
	}
	if _, loaded := r.entries.LoadOrStore(req.ConnID, e); loaded {
		r.parked.Add(-1)
		return nil, ErrDuplicate
	}
	// Into the order unless a Kill found e in the map first: decide and
	// this are serialized by orderMu, so e is in the order exactly while
	// it is undecided, and the wake is never later than the earliest due.
	r.orderMu.Lock()
	if e.state.Load() == parked {
		first := e.due
		if e.drip == nil {
			r.order.ReplaceOrInsert(e.ordered())
		} else {
			r.drips.ReplaceOrInsert(e.ordered())
			r.steps.ReplaceOrInsert(e.step())
			first = e.drip.at
		}
		if first < r.nextWake {
			r.wakeAtLocked(first)
		}
	}
	r.orderMu.Unlock()
	// Shutdown may have swept the map between our draining check and the
	// insertion. Its rule applies: a request ending within the grace runs
	// its course (the reservation kept Drained open for it); a later one
	// gets Shutdown here, delivered like any outcome.
	if r.draining.Load() && e.due > r.cutoff.Load() {
		r.finish(e, Shutdown, 0)
	}
	return e, nil
}

// Kill decides Killed for the request parked as connID and delivers it,
// with d, before returning. It fails with ErrNotParked when nothing is
// parked with that connId or its outcome is already decided.
func (r *Registry) Kill(connID string, d Detail) error {
	e, ok := r.entries.Load(connID)
	if !ok || !r.finish(e, Killed, d) {
		return ErrNotParked
	}
	return nil
}

// Has reports whether a request is parked as connID now: one atomic map
// read, a check made before a costlier one (a cluster-wide claim).
func (r *Registry) Has(connID string) bool {
	e, ok := r.entries.Load(connID)
	return ok && e.state.Load() == parked
}

// Get reads the request parked as connID.
func (r *Registry) Get(connID string) (Info, bool) {
	e, ok := r.entries.Load(connID)
	if !ok || e.state.Load() == decided {
		return Info{}, false
	}
	return e.Info(), true
}

// Snapshot appends every parked request to dst, ordered by deadline,
// soonest first, ties by connId. It is one atomic view with respect to
// outcomes: a request is listed if and only if it was parked and not yet
// decided at one instant during the call. It holds the order's mutex while
// it copies, so a park or a decision waits that long (about a
// millisecond at 20k parked).
func (r *Registry) Snapshot(dst []Parked) []Parked {
	now := int64(time.Since(r.epoch))
	r.orderMu.Lock()
	defer r.orderMu.Unlock()
	plain, drips := r.order.Len(), r.drips.Len()
	if cap(dst)-len(dst) < plain+drips {
		grown := make([]Parked, len(dst), len(dst)+plain+drips)
		copy(grown, dst)
		dst = grown
	}
	start := len(dst)
	add := func(o ordered) bool {
		dst = append(dst, Parked{ConnID: o.id, Remaining: time.Duration(o.due - now), entry: o.e})
		return true
	}
	r.order.Ascend(add)
	if drips == 0 {
		return dst
	}
	r.drips.Ascend(add)
	// Both runs are in order; merge them into one, from the back, in
	// place: the dripping ones wait in a copy.
	out := dst[start:]
	tail := append([]Parked(nil), out[plain:]...)
	i, j := plain-1, drips-1
	for k := plain + drips - 1; j >= 0; k-- {
		if i >= 0 && lessParked(tail[j], out[i]) {
			out[k] = out[i]
			i--
		} else {
			out[k] = tail[j]
			j--
		}
	}
	return dst
}

// lessParked orders two snapshot items as the trees do.
func lessParked(a, b Parked) bool {
	return lessOrdered(ordered{due: a.entry.due, id: a.ConnID}, ordered{due: b.entry.due, id: b.ConnID})
}

// Len is the number of requests parked (including ones being parked or
// decided at this instant). It is one atomic load.
func (r *Registry) Len() int {
	return int(r.parked.Load())
}

// Capacity is the most requests Park holds at once.
func (r *Registry) Capacity() int {
	return int(r.capacity)
}

// Shutdown stops parking new requests (Park fails with ErrShuttingDown,
// zero timeouts too: they pass the same checks as any other) and at once
// decides Shutdown for every parked request whose end (its deadline, or
// its last step) is more than grace away; the others run to their
// outcome. Drained is closed once nothing is parked. Calling Shutdown
// again sweeps again with the new grace.
func (r *Registry) Shutdown(grace time.Duration) {
	cutoff := int64(time.Since(r.epoch) + grace)
	r.cutoff.Store(cutoff)
	r.draining.Store(true)
	r.entries.Range(func(_ string, e *Entry) bool {
		if e.due > cutoff {
			r.finish(e, Shutdown, 0)
		}
		return true
	})
	r.closeIfDrained()
}

// Drained is closed when Shutdown has been called and nothing is parked.
func (r *Registry) Drained() <-chan struct{} {
	return r.drained
}

// finish decides o for e and delivers it, with d; false if e already had
// its outcome.
func (r *Registry) finish(e *Entry, o Outcome, d Detail) bool {
	if !r.decide(e) {
		return false
	}
	e.owner.Deliver(o, d)
	return true
}

// decide is the one place an outcome is decided: the first caller for e
// wins and removes e from the registry; every later caller gets false.
func (r *Registry) decide(e *Entry) bool {
	r.orderMu.Lock()
	won := e.state.CompareAndSwap(parked, decided)
	switch {
	case won && e.drip == nil:
		r.order.Delete(e.ordered())
	case won:
		r.drips.Delete(e.ordered())
		if e.drip.at >= 0 {
			r.steps.Delete(e.step())
		}
	}
	r.orderMu.Unlock()
	if !won {
		return false
	}
	// Only the winner deletes, and LoadOrStore never replaces, so the key
	// still maps to e here.
	r.entries.Delete(e.connID)
	if r.parked.Add(-1) == 0 && r.draining.Load() {
		r.closeIfDrained()
	}
	return true
}

// wakeAtLocked sets the timer for due, on the registry's clock.
func (r *Registry) wakeAtLocked(due int64) {
	r.nextWake = due
	r.wake.Reset(time.Duration(due - int64(time.Since(r.epoch))))
}

// stepCall is a dripping entry's step taken off the steps tree, to be
// called outside the lock.
type stepCall struct {
	e   *Entry
	k   int
	due int64
}

// expireDue is the wake timer's function: OK for every request whose
// deadline has come, the steps of dripping requests that are due, then the
// timer again for the earliest left. Two of these may overlap (a park
// reset the timer while one ran); decide keeps each outcome single, and a
// step is taken off the tree by exactly one of them.
func (r *Registry) expireDue() {
	for {
		now := int64(time.Since(r.epoch))
		var due []*Entry
		var steps []stepCall
		r.orderMu.Lock()
		r.order.Ascend(func(o ordered) bool {
			if o.due > now {
				return false
			}
			due = append(due, o.e)
			return true
		})
		r.steps.Ascend(func(o ordered) bool {
			if o.due > now {
				return false
			}
			steps = append(steps, stepCall{o.e, int(o.e.drip.next), o.due})
			return true
		})
		for _, sc := range steps {
			r.advanceLocked(sc.e)
		}
		if len(due) == 0 && len(steps) == 0 {
			r.nextWake = math.MaxInt64
			if first, ok := r.firstWakeLocked(); ok {
				r.wakeAtLocked(first)
			}
			r.orderMu.Unlock()
			return
		}
		r.orderMu.Unlock()
		r.finishAll(due, OK)
		r.stepAll(steps)
	}
}

// advanceLocked takes e's next step off the steps tree and puts the one
// after it there, if there is one.
func (r *Registry) advanceLocked(e *Entry) {
	d := e.drip
	r.steps.Delete(e.step())
	if d.next >= d.pieces {
		d.at = -1
		return
	}
	d.next++
	deadline := e.due - int64(d.span)
	d.at = deadline + int64(d.span)*int64(d.next)/int64(d.pieces)
	r.steps.ReplaceOrInsert(e.step())
}

// firstWakeLocked is when the timer must fire next: the earliest step, or
// the earliest deadline of a request that does not drip.
func (r *Registry) firstWakeLocked() (int64, bool) {
	first, found := int64(math.MaxInt64), false
	if s, ok := r.steps.Min(); ok {
		first, found = s.due, true
	}
	if o, ok := r.order.Min(); ok && o.due < first {
		first, found = o.due, true
	}
	return first, found
}

// stepAll calls the owner of each step, and decides OK for the entries
// whose owner is done; a last step that is not done is tried again after
// stepRetry.
func (r *Registry) stepAll(steps []stepCall) {
	r.spread(len(steps), func(i int) {
		sc := steps[i]
		if sc.e.owner.Step(sc.k, r.epoch.Add(time.Duration(sc.due))) {
			r.finish(sc.e, OK, 0)
			return
		}
		if sc.k < int(sc.e.drip.pieces) {
			return // the next step writes the rest
		}
		r.orderMu.Lock()
		if d := sc.e.drip; sc.e.state.Load() == parked && d.at < 0 {
			d.at = int64(time.Since(r.epoch) + stepRetry)
			r.steps.ReplaceOrInsert(sc.e.step())
			if d.at < r.nextWake {
				r.wakeAtLocked(d.at)
			}
		}
		r.orderMu.Unlock()
	})
}

// finishAll decides o for es and returns when all are delivered.
func (r *Registry) finishAll(es []*Entry, o Outcome) {
	r.spread(len(es), func(i int) { r.finish(es[i], o, 0) })
}

// spread runs f(0) … f(n-1), over the available processors when there
// are many, and returns when all have returned.
func (r *Registry) spread(n int, f func(int)) {
	const perWorker = 256 // below this, one goroutine is quicker than several
	workers := min(runtime.GOMAXPROCS(0), (n+perWorker-1)/perWorker)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		wg.Go(func() {
			for i := start; i < end; i++ {
				f(i)
			}
		})
	}
	wg.Wait()
}

func (r *Registry) closeIfDrained() {
	if r.draining.Load() && r.parked.Load() == 0 {
		r.drainedOnce.Do(func() { close(r.drained) })
	}
}
