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
}

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
	Started    time.Time
	Deadline   time.Time
	Remaining  time.Duration // at the reading; ≤ 0 just before the outcome
	RemoteAddr string
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
	order    *btree.BTreeG[ordered] // undecided entries by (due, connId)
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
		nextWake: math.MaxInt64,
		drained:  make(chan struct{}),
	}
	r.wake = time.AfterFunc(time.Hour, r.expireDue)
	r.wake.Stop()
	return r
}

// Park parks req until its timeout elapses, it is killed or abandoned, or
// Shutdown ends it, and then calls deliver exactly once with the outcome.
//
// deliver runs on whichever goroutine decided the outcome: one of the
// registry's timeout goroutines, or the caller of Kill, Entry.Abandon or
// Shutdown; it may run before Park has returned. It should be quick; the entry has already left the registry
// when it runs, so it may park the same connId again.
//
// Park fails with ErrDuplicate when req.ConnID is parked, ErrFull at
// capacity and ErrShuttingDown once Shutdown has begun; then deliver is
// never called. A park that races Shutdown's start is parked, and gets
// Shutdown's rule like the others.
// A zero timeout passes the same checks but parks nothing: Park returns a
// nil Entry and nil, and the caller answers at once without deliver.
//
// The duplicate check and the insertion are one atomic step (two requests
// racing for one connId cannot both park); the capacity check is a
// separate atomic reservation made before it.
func (r *Registry) Park(req Request, deliver func(Outcome)) (*Entry, error) {
	if r.draining.Load() {
		return nil, ErrShuttingDown
	}
	if _, ok := r.entries.Load(req.ConnID); ok {
		return nil, ErrDuplicate
	}
	if req.Timeout <= 0 {
		if r.parked.Load() >= r.capacity {
			return nil, ErrFull
		}
		return nil, nil
	}
	if r.parked.Add(1) > r.capacity {
		r.parked.Add(-1)
		return nil, ErrFull
	}
	deadline := time.Now().Add(req.Timeout)
	e := &Entry{
		reg:        r,
		connID:     req.ConnID,
		remoteAddr: req.RemoteAddr,
		timeout:    req.Timeout,
		deadline:   deadline,
		due:        int64(deadline.Sub(r.epoch)),
		deliver:    deliver,
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
		r.order.ReplaceOrInsert(e.ordered())
		if e.due < r.nextWake {
			r.wakeAtLocked(e.due)
		}
	}
	r.orderMu.Unlock()
	// Shutdown may have swept the map between our draining check and the
	// insertion. Its rule applies: a deadline within the grace runs its
	// course (the reservation kept Drained open for it); a later one gets
	// Shutdown here, delivered like any outcome.
	if r.draining.Load() && e.due > r.cutoff.Load() {
		r.finish(e, Shutdown)
	}
	return e, nil
}

// Kill decides Killed for the request parked as connID and delivers it
// before returning. It fails with ErrNotParked when nothing is parked with
// that connId or its outcome is already decided.
func (r *Registry) Kill(connID string) error {
	e, ok := r.entries.Load(connID)
	if !ok || !r.finish(e, Killed) {
		return ErrNotParked
	}
	return nil
}

// Get reads the request parked as connID.
func (r *Registry) Get(connID string) (Info, bool) {
	e, ok := r.entries.Load(connID)
	if !ok || e.state.Load() == decided {
		return Info{}, false
	}
	in := e.info()
	in.Remaining = time.Until(e.deadline)
	return in, true
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
	if n := r.order.Len(); cap(dst)-len(dst) < n {
		grown := make([]Parked, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	r.order.Ascend(func(o ordered) bool {
		dst = append(dst, Parked{ConnID: o.id, Remaining: time.Duration(o.due - now), entry: o.e})
		return true
	})
	return dst
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
// decides Shutdown for every parked request whose deadline is more than
// grace away; the others run to their outcome. Drained is closed once
// nothing is parked. Calling Shutdown again sweeps again with the new
// grace.
func (r *Registry) Shutdown(grace time.Duration) {
	cutoff := time.Now().Add(grace)
	r.cutoff.Store(int64(cutoff.Sub(r.epoch)))
	r.draining.Store(true)
	r.entries.Range(func(_ string, e *Entry) bool {
		if e.deadline.After(cutoff) {
			r.finish(e, Shutdown)
		}
		return true
	})
	r.closeIfDrained()
}

// Drained is closed when Shutdown has been called and nothing is parked.
func (r *Registry) Drained() <-chan struct{} {
	return r.drained
}

// finish decides o for e and delivers it; false if e already had its
// outcome.
func (r *Registry) finish(e *Entry, o Outcome) bool {
	if !r.decide(e) {
		return false
	}
	e.deliver(o)
	return true
}

// decide is the one place an outcome is decided: the first caller for e
// wins and removes e from the registry; every later caller gets false.
func (r *Registry) decide(e *Entry) bool {
	r.orderMu.Lock()
	won := e.state.CompareAndSwap(parked, decided)
	if won {
		r.order.Delete(e.ordered())
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

// expireDue is the wake timer's function: OK for every request whose
// deadline has come, then the timer again for the earliest one left. Two
// of these may overlap (a park reset the timer while one ran); decide
// keeps each outcome single.
func (r *Registry) expireDue() {
	for {
		now := int64(time.Since(r.epoch))
		var due []*Entry
		r.orderMu.Lock()
		r.order.Ascend(func(o ordered) bool {
			if o.due > now {
				return false
			}
			due = append(due, o.e)
			return true
		})
		if len(due) == 0 {
			r.nextWake = math.MaxInt64
			if first, ok := r.order.Min(); ok {
				r.wakeAtLocked(first.due)
			}
			r.orderMu.Unlock()
			return
		}
		r.orderMu.Unlock()
		r.finishAll(due, OK)
	}
}

// finishAll decides o for es, spread over the available processors when
// there are many, and returns when all are delivered.
func (r *Registry) finishAll(es []*Entry, o Outcome) {
	const perWorker = 256 // below this, one goroutine is quicker than several
	workers := min(runtime.GOMAXPROCS(0), (len(es)+perWorker-1)/perWorker)
	if workers <= 1 {
		for _, e := range es {
			r.finish(e, o)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (len(es) + workers - 1) / workers
	for start := 0; start < len(es); start += chunk {
		part := es[start:min(start+chunk, len(es))]
		wg.Go(func() {
			for _, e := range part {
				r.finish(e, o)
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
