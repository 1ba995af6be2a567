package registry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// outcomes collects what deliver receives, per connId.
type outcomes struct {
	mu  sync.Mutex
	got map[string][]Outcome
	ch  chan string // connIds, as they are delivered
}

func newOutcomes() *outcomes {
	return &outcomes{got: map[string][]Outcome{}, ch: make(chan string, 100_000)}
}

// deliverFunc is the Owner of a request that does not drip: a function
// given its outcome.
type deliverFunc func(Outcome)

func (f deliverFunc) Deliver(o Outcome, _ Detail)     { f(o) }
func (f deliverFunc) Step(int, time.Time) (done bool) { return true }

func (o *outcomes) deliver(id string) deliverFunc {
	return func(out Outcome) {
		o.mu.Lock()
		o.got[id] = append(o.got[id], out)
		o.mu.Unlock()
		o.ch <- id
	}
}

func (o *outcomes) of(id string) []Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Outcome(nil), o.got[id]...)
}

// wait blocks until n deliveries arrived or fails the test after 10 s (a
// hang, not a timing bound: every timeout here is far shorter).
func (o *outcomes) wait(t *testing.T, n int) {
	t.Helper()
	limit := time.After(10 * time.Second)
	for range n {
		select {
		case <-o.ch:
		case <-limit:
			t.Fatalf("deliveries did not arrive")
		}
	}
}

func park(t *testing.T, r *Registry, o *outcomes, id string, timeout time.Duration) *Entry {
	t.Helper()
	e, err := r.Park(Request{ConnID: id, Timeout: timeout, RemoteAddr: "127.0.0.1:1"}, o.deliver(id))
	if err != nil {
		t.Fatalf("Park(%q, %v): %v", id, timeout, err)
	}
	return e
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name string
		act  func(r *Registry, e *Entry) error
		want Outcome
	}{
		{"timeout elapses", func(*Registry, *Entry) error { return nil }, OK},
		{"kill", func(r *Registry, _ *Entry) error { return r.Kill("a", 0) }, Killed},
		{"abandon", func(_ *Registry, e *Entry) error {
			if !e.Abandon() {
				return errors.New("Abandon returned false")
			}
			return nil
		}, Abandoned},
		{"shutdown beyond grace", func(r *Registry, _ *Entry) error { r.Shutdown(time.Millisecond); return nil }, Shutdown},
		{"shutdown within grace", func(r *Registry, _ *Entry) error { r.Shutdown(time.Hour); return nil }, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, o := New(10), newOutcomes()
			timeout := 50 * time.Millisecond
			if tt.want != OK {
				timeout = time.Hour
			}
			e := park(t, r, o, "a", timeout)
			if err := tt.act(r, e); err != nil {
				t.Fatal(err)
			}
			o.wait(t, 1)
			if got := o.of("a"); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("outcomes %v, want [%v]", got, tt.want)
			}
			if r.Len() != 0 || len(r.Snapshot(nil)) != 0 {
				t.Fatalf("after the outcome: Len %d, Snapshot %v; want empty", r.Len(), r.Snapshot(nil))
			}
			if err := r.Kill("a", 0); !errors.Is(err, ErrNotParked) {
				t.Fatalf("Kill after the outcome: %v, want ErrNotParked", err)
			}
			if e.Abandon() {
				t.Fatal("Abandon after the outcome returned true")
			}
			time.Sleep(2 * timeout % time.Second) // let a stopped timer prove it stays stopped
			if got := o.of("a"); len(got) != 1 {
				t.Fatalf("outcomes %v, want exactly one", got)
			}
		})
	}
}

func TestParkRefusals(t *testing.T) {
	r, o := New(2), newOutcomes()
	park(t, r, o, "a", time.Hour)
	tests := []struct {
		id      string
		timeout time.Duration
		err     error
	}{
		{"a", time.Hour, ErrDuplicate},
		{"a", 0, ErrDuplicate}, // a zero timeout passes the same checks
		{"b", time.Hour, nil},
		{"c", time.Hour, ErrFull},
		{"c", 0, ErrFull},
		{"a", time.Hour, ErrDuplicate}, // a duplicate is named as such also when full
	}
	for _, tt := range tests {
		e, err := r.Park(Request{ConnID: tt.id, Timeout: tt.timeout}, o.deliver(tt.id))
		if !errors.Is(err, tt.err) {
			t.Fatalf("Park(%q, %v) = %v, want %v", tt.id, tt.timeout, err, tt.err)
		}
		if err != nil && e != nil {
			t.Fatalf("Park(%q, %v) failed but returned an entry", tt.id, tt.timeout)
		}
	}
	if err := r.Kill("b", 0); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Park(Request{ConnID: "c", Timeout: 0}, o.deliver("c")); err != nil || e != nil {
		t.Fatalf("zero timeout below capacity: %v, %v; want nil, nil", e, err)
	}
	if err := r.Kill("nobody", 0); !errors.Is(err, ErrNotParked) {
		t.Fatalf("Kill(nobody) = %v, want ErrNotParked", err)
	}
	o.wait(t, 1) // b's kill; c's zero timeout delivers nothing
	if got := o.of("c"); len(got) != 0 {
		t.Fatalf("zero timeout delivered %v, want nothing", got)
	}
}

func TestSnapshotOrderAndInfo(t *testing.T) {
	r, o := New(10), newOutcomes()
	before := time.Now()
	park(t, r, o, "late", 9*time.Second)
	park(t, r, o, "soon", 3*time.Second)
	park(t, r, o, "mid", 6*time.Second)
	// Equal deadlines are impossible to arrange through Park's clock, so the
	// tie rule is checked on entries whose deadlines are set by hand.
	tie := time.Now().Add(time.Hour)
	for _, id := range []string{"tie-b", "tie-a"} {
		e := park(t, r, o, id, 2*time.Hour)
		r.orderMu.Lock() // re-key e in the order as Park would have
		r.order.Delete(e.ordered())
		e.due = int64(tie.Sub(r.epoch))
		r.order.ReplaceOrInsert(e.ordered())
		r.orderMu.Unlock()
	}
	var ids []string
	snap := r.Snapshot(nil)
	for _, p := range snap {
		ids = append(ids, p.ConnID)
	}
	if fmt.Sprint(ids) != "[soon mid late tie-a tie-b]" {
		t.Fatalf("Snapshot order %v, want [soon mid late tie-a tie-b]", ids)
	}
	if in := snap[1].Info(); in.ConnID != "mid" || in.Timeout != 6*time.Second || in.Remaining != snap[1].Remaining {
		t.Fatalf("Snapshot's Info for mid = %+v", in)
	}
	in, ok := r.Get("mid")
	if !ok || in.Timeout != 6*time.Second || in.RemoteAddr != "127.0.0.1:1" ||
		in.Deadline.Sub(in.Started) != 6*time.Second || in.Started.Before(before) ||
		in.Remaining <= 0 || in.Remaining > 6*time.Second {
		t.Fatalf("Get(mid) = %+v, %v", in, ok)
	}
	if _, ok := r.Get("nobody"); ok {
		t.Fatal("Get(nobody) found something")
	}
	r.Shutdown(0)
	o.wait(t, 5)
}

func TestShutdown(t *testing.T) {
	r, o := New(10), newOutcomes()
	park(t, r, o, "far", time.Hour)
	park(t, r, o, "near", 100*time.Millisecond)
	r.Shutdown(10 * time.Second)
	select {
	case <-r.Drained():
		t.Fatal("Drained closed while near was still parked")
	default:
	}
	if _, err := r.Park(Request{ConnID: "new", Timeout: time.Second}, o.deliver("new")); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Park after Shutdown = %v, want ErrShuttingDown", err)
	}
	if _, err := r.Park(Request{ConnID: "zero", Timeout: 0}, o.deliver("zero")); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("zero-timeout Park after Shutdown = %v, want ErrShuttingDown", err)
	}
	o.wait(t, 2)
	if got := o.of("far"); fmt.Sprint(got) != "[shutdown]" {
		t.Fatalf("far: %v, want [shutdown]", got)
	}
	if got := o.of("near"); fmt.Sprint(got) != "[ok]" {
		t.Fatalf("near: %v, want [ok]", got)
	}
	select {
	case <-r.Drained():
	case <-time.After(10 * time.Second):
		t.Fatal("Drained not closed after the last outcome")
	}
}

func TestShutdownWhenEmpty(t *testing.T) {
	r := New(1)
	r.Shutdown(time.Second)
	select {
	case <-r.Drained():
	default:
		t.Fatal("Drained not closed by Shutdown of an empty registry")
	}
}

// TestStress races parks, kills, abandons, expiries and, at the end, a
// shutdown; every successful Park must get exactly one outcome, and a Kill
// or Abandon that reported success must be that outcome.
func TestStress(t *testing.T) {
	const workers, perWorker = 8, 2000
	r, o := New(workers*perWorker), newOutcomes()
	var parkedOK, killedOK, abandonedOK atomic.Int64
	var claimed sync.Map // connId → the outcome its Kill/Abandon claimed
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var mine []*Entry
			for i := range perWorker {
				id := fmt.Sprintf("w%d-%d", w, i)
				// Timeouts of 0-3 ms make kills and abandons race the timer.
				timeout := time.Duration(rng.IntN(3000)+1) * time.Microsecond
				e, err := r.Park(Request{ConnID: id, Timeout: timeout}, o.deliver(id))
				if err != nil {
					t.Errorf("Park(%s): %v", id, err)
					return
				}
				parkedOK.Add(1)
				mine = append(mine, e)
				switch rng.IntN(3) {
				case 0:
					victim := fmt.Sprintf("w%d-%d", rng.IntN(workers), rng.IntN(i+1))
					if r.Kill(victim, 0) == nil {
						killedOK.Add(1)
						if _, dup := claimed.LoadOrStore(victim, Killed); dup {
							t.Errorf("%s claimed twice", victim)
						}
					}
				case 1:
					e := mine[rng.IntN(len(mine))]
					if e.Abandon() {
						abandonedOK.Add(1)
						if _, dup := claimed.LoadOrStore(e.connID, Abandoned); dup {
							t.Errorf("%s claimed twice", e.connID)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	r.Shutdown(0)
	o.wait(t, int(parkedOK.Load()))
	<-r.Drained()

	counts := map[Outcome]int64{}
	o.mu.Lock()
	for id, got := range o.got {
		if len(got) != 1 {
			t.Errorf("%s: outcomes %v, want exactly one", id, got)
			continue
		}
		counts[got[0]]++
		if c, ok := claimed.Load(id); ok && c != got[0] {
			t.Errorf("%s: outcome %v, but %v reported success", id, got[0], c)
		}
	}
	o.mu.Unlock()
	if int64(len(o.got)) != parkedOK.Load() {
		t.Errorf("%d requests got an outcome, %d were parked", len(o.got), parkedOK.Load())
	}
	if counts[Killed] != killedOK.Load() || counts[Abandoned] != abandonedOK.Load() {
		t.Errorf("outcomes %v; Kill succeeded %d times, Abandon %d", counts, killedOK.Load(), abandonedOK.Load())
	}
	if r.Len() != 0 || r.entries.Size() != 0 || r.order.Len() != 0 {
		t.Errorf("after all outcomes: Len %d, map size %d, order size %d", r.Len(), r.entries.Size(), r.order.Len())
	}
	t.Logf("outcomes: %v", counts)
}

// TestParkRacesShutdown: a Park that races Shutdown either fails with
// ErrShuttingDown or gets exactly one outcome — Shutdown when its deadline
// is beyond the grace, OK when within (the sweep may have missed it; it
// runs its course and Drained waits for it) — and Drained closes.
func TestParkRacesShutdown(t *testing.T) {
	tests := []struct {
		name           string
		timeout, grace time.Duration
		want           Outcome
	}{
		{"beyond the grace", time.Hour, 0, Shutdown},
		{"within the grace", 20 * time.Millisecond, time.Hour, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := range 30 {
				r, o := New(1000), newOutcomes()
				var ok atomic.Int64
				var wg sync.WaitGroup
				for g := range 4 {
					wg.Go(func() {
						for i := range 50 {
							id := fmt.Sprintf("%d-%d-%d", round, g, i)
							_, err := r.Park(Request{ConnID: id, Timeout: tt.timeout}, o.deliver(id))
							switch {
							case err == nil:
								ok.Add(1)
							case !errors.Is(err, ErrShuttingDown):
								t.Errorf("Park: %v", err)
							}
						}
					})
				}
				r.Shutdown(tt.grace)
				wg.Wait()
				o.wait(t, int(ok.Load()))
				select {
				case <-r.Drained():
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: Drained not closed; Len %d", round, r.Len())
				}
				o.mu.Lock()
				for id, got := range o.got {
					if len(got) != 1 || got[0] != tt.want {
						t.Errorf("%s: %v, want [%v]", id, got, tt.want)
					}
				}
				o.mu.Unlock()
			}
		})
	}
}

// TestEarlierDeadlineReschedules: the one wake timer is set for the
// earliest deadline, so a request parked behind a far one is not held up
// by it.
func TestEarlierDeadlineReschedules(t *testing.T) {
	r, o := New(10), newOutcomes()
	park(t, r, o, "far", time.Hour)
	park(t, r, o, "near", 20*time.Millisecond)
	o.wait(t, 1)
	if got := o.of("near"); fmt.Sprint(got) != "[ok]" {
		t.Fatalf("near: %v, want [ok]", got)
	}
	if got := o.of("far"); len(got) != 0 {
		t.Fatalf("far: %v, want nothing yet", got)
	}
	r.Shutdown(0)
	o.wait(t, 1)
}

// TestManyDueAtOnce: thousands due at one instant are finished in parallel
// batches, each exactly once, while kills race them.
func TestManyDueAtOnce(t *testing.T) {
	const n = 3000
	r, o := New(n), newOutcomes()
	for i := range n {
		park(t, r, o, fmt.Sprint(i), 30*time.Millisecond)
	}
	var killed atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if r.Kill(fmt.Sprint(i), 0) == nil {
					killed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	o.wait(t, n)
	counts := map[Outcome]int64{}
	o.mu.Lock()
	for id, got := range o.got {
		if len(got) != 1 {
			t.Errorf("%s: %v, want exactly one outcome", id, got)
		}
		counts[got[0]]++
	}
	o.mu.Unlock()
	if counts[Killed] != killed.Load() || counts[OK]+counts[Killed] != n {
		t.Fatalf("outcomes %v, kills that succeeded %d, parked %d", counts, killed.Load(), n)
	}
	if r.Len() != 0 || r.order.Len() != 0 {
		t.Fatalf("Len %d, order %d after all outcomes", r.Len(), r.order.Len())
	}
}
