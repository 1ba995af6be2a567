package registry

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds what the benchmarks in bench_test.go compare parkd's
// registry (an xsync.Map) with: two baselines that do the same work the
// same way on other maps, minimal but faithful. Each keeps an entry per
// parked request with a time.AfterFunc timer, decides each outcome once
// with a compare-and-swap whose winner deletes the entry, checks capacity
// and duplicates on Park, and builds a snapshot by ranging the map and
// sorting by deadline, then connId.

// parker is what the benchmarks use of a registry.
type parker interface {
	// Park parks id for timeout (> 0); deliver gets its one outcome.
	Park(id string, timeout time.Duration, deliver func(Outcome)) error
	Kill(id string) error
	Get(id string) (Info, bool)
	Len() int
	Snapshot(dst []Parked) []Parked
	// Close decides Shutdown for everything still parked, as
	// Registry.Shutdown(0) does; outcomes decided before it may still be
	// delivering when it returns. The parker is not used after.
	Close()
}

// impl names a parker for the benchmarks' impl=NAME sub-benchmarks.
type impl struct {
	name string
	new  func(capacity int) parker
}

var impls = []impl{
	{"xsync", func(c int) parker { return xsyncParker{New(c)} }},
	{"syncmap", func(c int) parker { return newSyncMapParker(c) }},
	{"rwmutex", func(c int) parker { return newRWMutexParker(c) }},
}

// xsyncParker is parkd's own Registry.
type xsyncParker struct{ *Registry }

func (p xsyncParker) Park(id string, timeout time.Duration, deliver func(Outcome)) error {
	_, err := p.Registry.Park(Request{ConnID: id, Timeout: timeout, RemoteAddr: "127.0.0.1:1"}, deliverFunc(deliver))
	return err
}

func (p xsyncParker) Kill(id string) error { return p.Registry.Kill(id, 0) }

func (p xsyncParker) Close() {
	p.Shutdown(0)
	<-p.Drained()
}

// baseEntry is a baseline's Entry: the same fields, the same single
// parked → decided transition.
type baseEntry struct {
	connID     string
	remoteAddr string
	timeout    time.Duration
	deadline   time.Time
	deliver    func(Outcome)
	state      atomic.Uint32
	timer      atomic.Pointer[time.Timer]
}

func newBaseEntry(id string, timeout time.Duration, deliver func(Outcome)) *baseEntry {
	return &baseEntry{
		connID:     id,
		remoteAddr: "127.0.0.1:1",
		timeout:    timeout,
		deadline:   time.Now().Add(timeout),
		deliver:    deliver,
	}
}

func (e *baseEntry) info(now time.Time) Info {
	return Info{
		ConnID:     e.connID,
		Timeout:    e.timeout,
		Started:    e.deadline.Add(-e.timeout),
		Deadline:   e.deadline,
		Remaining:  e.deadline.Sub(now),
		RemoteAddr: e.remoteAddr,
	}
}

// arm starts e's timer once e is in the map; a decision that came first
// stops it again.
func (e *baseEntry) arm(finish func(*baseEntry, Outcome) bool) {
	t := time.AfterFunc(e.timeout, func() { finish(e, OK) })
	e.timer.Store(t)
	if e.state.Load() == decided {
		t.Stop()
	}
}

// claim is the compare-and-swap every decision goes through; only its
// winner goes on to delete e and deliver.
func (e *baseEntry) claim() bool {
	if !e.state.CompareAndSwap(parked, decided) {
		return false
	}
	if t := e.timer.Load(); t != nil {
		t.Stop()
	}
	return true
}

func sortEntries(es []*baseEntry) {
	slices.SortFunc(es, func(a, b *baseEntry) int {
		if c := a.deadline.Compare(b.deadline); c != 0 {
			return c
		}
		return cmp.Compare(a.connID, b.connID)
	})
}

// appendParked lists es as serverStatus needs them.
func appendParked(dst []Parked, es []*baseEntry) []Parked {
	now := time.Now()
	dst = slices.Grow(dst, len(es))
	for _, e := range es {
		dst = append(dst, Parked{ConnID: e.connID, Remaining: e.deadline.Sub(now)})
	}
	return dst
}

// syncMapParker is the sync.Map baseline: LoadOrStore inserts if absent,
// an atomic counter reserves capacity, as in Registry.
type syncMapParker struct {
	m        sync.Map // connId → *baseEntry
	capacity int64
	parked   atomic.Int64
}

func newSyncMapParker(capacity int) *syncMapParker {
	return &syncMapParker{capacity: int64(capacity)}
}

func (p *syncMapParker) Park(id string, timeout time.Duration, deliver func(Outcome)) error {
	if _, ok := p.m.Load(id); ok {
		return ErrDuplicate
	}
	if p.parked.Add(1) > p.capacity {
		p.parked.Add(-1)
		return ErrFull
	}
	e := newBaseEntry(id, timeout, deliver)
	if _, loaded := p.m.LoadOrStore(id, e); loaded {
		p.parked.Add(-1)
		return ErrDuplicate
	}
	e.arm(p.finish)
	return nil
}

func (p *syncMapParker) finish(e *baseEntry, o Outcome) bool {
	if !e.claim() {
		return false
	}
	p.m.Delete(e.connID)
	p.parked.Add(-1)
	e.deliver(o)
	return true
}

func (p *syncMapParker) Kill(id string) error {
	v, ok := p.m.Load(id)
	if !ok || !p.finish(v.(*baseEntry), Killed) {
		return ErrNotParked
	}
	return nil
}

func (p *syncMapParker) Get(id string) (Info, bool) {
	v, ok := p.m.Load(id)
	if !ok {
		return Info{}, false
	}
	e := v.(*baseEntry)
	if e.state.Load() == decided {
		return Info{}, false
	}
	return e.info(time.Now()), true
}

func (p *syncMapParker) Len() int {
	return int(p.parked.Load())
}

func (p *syncMapParker) Snapshot(dst []Parked) []Parked {
	es := make([]*baseEntry, 0, p.parked.Load())
	p.m.Range(func(_, v any) bool {
		if e := v.(*baseEntry); e.state.Load() != decided {
			es = append(es, e)
		}
		return true
	})
	sortEntries(es)
	return appendParked(dst, es)
}

func (p *syncMapParker) Close() {
	p.m.Range(func(_, v any) bool {
		p.finish(v.(*baseEntry), Shutdown)
		return true
	})
}

// rwMutexParker is the sync.RWMutex + map baseline: duplicates and
// capacity are checked and the entry inserted under the write lock, where
// len(m) is the exact count, so it needs no separate counter; Get, Len
// and Snapshot take the read lock.
type rwMutexParker struct {
	mu       sync.RWMutex
	m        map[string]*baseEntry
	capacity int
}

func newRWMutexParker(capacity int) *rwMutexParker {
	return &rwMutexParker{m: make(map[string]*baseEntry), capacity: capacity}
}

func (p *rwMutexParker) Park(id string, timeout time.Duration, deliver func(Outcome)) error {
	e := newBaseEntry(id, timeout, deliver)
	p.mu.Lock()
	if _, ok := p.m[id]; ok {
		p.mu.Unlock()
		return ErrDuplicate
	}
	if len(p.m) >= p.capacity {
		p.mu.Unlock()
		return ErrFull
	}
	p.m[id] = e
	p.mu.Unlock()
	e.arm(p.finish)
	return nil
}

func (p *rwMutexParker) finish(e *baseEntry, o Outcome) bool {
	if !e.claim() {
		return false
	}
	p.mu.Lock()
	delete(p.m, e.connID)
	p.mu.Unlock()
	e.deliver(o)
	return true
}

func (p *rwMutexParker) Kill(id string) error {
	p.mu.RLock()
	e, ok := p.m[id]
	p.mu.RUnlock()
	if !ok || !p.finish(e, Killed) {
		return ErrNotParked
	}
	return nil
}

func (p *rwMutexParker) Get(id string) (Info, bool) {
	p.mu.RLock()
	e, ok := p.m[id]
	p.mu.RUnlock()
	if !ok || e.state.Load() == decided {
		return Info{}, false
	}
	return e.info(time.Now()), true
}

func (p *rwMutexParker) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.m)
}

func (p *rwMutexParker) Snapshot(dst []Parked) []Parked {
	p.mu.RLock()
	es := make([]*baseEntry, 0, len(p.m))
	for _, e := range p.m {
		if e.state.Load() != decided {
			es = append(es, e)
		}
	}
	p.mu.RUnlock()
	sortEntries(es)
	return appendParked(dst, es)
}

func (p *rwMutexParker) Close() {
	p.mu.RLock()
	es := make([]*baseEntry, 0, len(p.m))
	for _, e := range p.m {
		es = append(es, e)
	}
	p.mu.RUnlock()
	for _, e := range es {
		p.finish(e, Shutdown)
	}
}
