package registry

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dripOwner records the steps and the outcome of one dripping request.
// done decides what Step answers for step k.
type dripOwner struct {
	done func(k int) bool

	mu       sync.Mutex
	steps    []int
	late     []time.Duration // how long after its due each step was called
	outcomes []Outcome
	details  []Detail
	ended    chan struct{}
}

func newDripOwner(done func(k int) bool) *dripOwner {
	return &dripOwner{done: done, ended: make(chan struct{})}
}

func (o *dripOwner) Step(k int, due time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.steps = append(o.steps, k)
	o.late = append(o.late, time.Since(due))
	return o.done(k)
}

func (o *dripOwner) Deliver(out Outcome, d Detail) {
	o.mu.Lock()
	o.outcomes = append(o.outcomes, out)
	o.details = append(o.details, d)
	o.mu.Unlock()
	close(o.ended) // a second Deliver panics: exactly one
}

func (o *dripOwner) wait(t *testing.T) {
	t.Helper()
	select {
	case <-o.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome within 10s")
	}
}

func (o *dripOwner) record() (steps []int, late []time.Duration, outcomes []Outcome, details []Detail) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.steps...), append([]time.Duration(nil), o.late...),
		append([]Outcome(nil), o.outcomes...), append([]Detail(nil), o.details...)
}

func lastStep(n int) func(int) bool { return func(k int) bool { return k == n } }

// Steps 0…n come in order, none before its due, while the request stays
// listed by its last step; OK comes once the owner is done.
func TestDripSteps(t *testing.T) {
	r := New(10)
	o := newDripOwner(lastStep(4))
	e, err := r.Park(Request{ConnID: "d", Timeout: 50 * time.Millisecond, Pieces: 4, Drip: 200 * time.Millisecond}, o)
	if err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot(nil)
	if len(snap) != 1 || snap[0].Remaining <= 200*time.Millisecond || snap[0].Remaining > 250*time.Millisecond {
		t.Fatalf("Snapshot %+v, want d with about 250ms left (to its last step)", snap)
	}
	in := snap[0].Info()
	if in.Drip != 200*time.Millisecond || in.Timeout != 50*time.Millisecond || !in.Deadline.Equal(e.Deadline()) ||
		in.Deadline.Sub(in.Started) != 50*time.Millisecond || in.Owner != Owner(o) {
		t.Errorf("Info %+v", in)
	}
	o.wait(t)
	steps, late, outcomes, _ := o.record()
	if fmt.Sprint(steps) != "[0 1 2 3 4]" || fmt.Sprint(outcomes) != "[ok]" {
		t.Errorf("steps %v, outcomes %v; want [0 1 2 3 4], [ok]", steps, outcomes)
	}
	for k, l := range late {
		if l < 0 {
			t.Errorf("step %d called %v before its due", k, -l)
		}
	}
	if r.Len() != 0 || len(r.Snapshot(nil)) != 0 {
		t.Errorf("still parked after OK")
	}
}

// A last step whose owner is not done is called again until it is.
func TestDripLastStepRetried(t *testing.T) {
	r := New(10)
	var calls atomic.Int64
	o := newDripOwner(func(k int) bool { return k == 2 && calls.Add(1) == 3 })
	if _, err := r.Park(Request{ConnID: "d", Timeout: 0, Pieces: 2, Drip: 20 * time.Millisecond}, o); err != nil {
		t.Fatal(err)
	}
	o.wait(t)
	if steps, _, outcomes, _ := o.record(); fmt.Sprint(steps) != "[0 1 2 2 2]" || fmt.Sprint(outcomes) != "[ok]" {
		t.Errorf("steps %v, outcomes %v; want [0 1 2 2 2], [ok]", steps, outcomes)
	}
}

// An owner done before the last step ends the request there.
func TestDripDoneEarly(t *testing.T) {
	r := New(10)
	o := newDripOwner(func(k int) bool { return k == 1 })
	if _, err := r.Park(Request{ConnID: "d", Timeout: 0, Pieces: 5, Drip: 50 * time.Millisecond}, o); err != nil {
		t.Fatal(err)
	}
	o.wait(t)
	time.Sleep(80 * time.Millisecond) // the rest of the schedule: no more steps may come
	if steps, _, outcomes, _ := o.record(); fmt.Sprint(steps) != "[0 1]" || fmt.Sprint(outcomes) != "[ok]" {
		t.Errorf("steps %v, outcomes %v; want [0 1], [ok]", steps, outcomes)
	}
}

// A kill while the body drips delivers Killed with the kill's detail, and
// no step starts after it.
func TestDripKilled(t *testing.T) {
	r := New(10)
	o := newDripOwner(lastStep(100))
	if _, err := r.Park(Request{ConnID: "d", Timeout: 0, Pieces: 100, Drip: 10 * time.Second}, o); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if steps, _, _, _ := o.record(); len(steps) > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("step 0 never came")
		}
	}
	if err := r.Kill("d", 7); err != nil {
		t.Fatal(err)
	}
	o.wait(t)
	before, _, outcomes, details := o.record()
	time.Sleep(250 * time.Millisecond) // two more steps' worth
	after, _, _, _ := o.record()
	if fmt.Sprint(outcomes) != "[killed]" || fmt.Sprint(details) != "[7]" || len(after) != len(before) {
		t.Errorf("outcomes %v details %v, steps %v then %v; want [killed] [7] and no step after the kill", outcomes, details, before, after)
	}
	r.orderMu.Lock()
	held := r.steps.Len() + r.order.Len() + r.drips.Len()
	r.orderMu.Unlock()
	if r.Len() != 0 || held != 0 {
		t.Errorf("the killed request is still held")
	}
}

// Shutdown goes by the last step: a request ending within the grace runs
// its course, one ending after it gets Shutdown at once.
func TestDripShutdown(t *testing.T) {
	r := New(10)
	within := newDripOwner(lastStep(2))
	beyond := newDripOwner(lastStep(2))
	if _, err := r.Park(Request{ConnID: "within", Timeout: 10 * time.Millisecond, Pieces: 2, Drip: 100 * time.Millisecond}, within); err != nil {
		t.Fatal(err)
	}
	// Its deadline is within the grace, its last step is not.
	if _, err := r.Park(Request{ConnID: "beyond", Timeout: 10 * time.Millisecond, Pieces: 2, Drip: time.Hour}, beyond); err != nil {
		t.Fatal(err)
	}
	r.Shutdown(time.Second)
	beyond.wait(t)
	within.wait(t)
	<-r.Drained()
	_, _, o1, _ := within.record()
	_, _, o2, _ := beyond.record()
	if fmt.Sprint(o1) != "[ok]" || fmt.Sprint(o2) != "[shutdown]" {
		t.Errorf("within the grace: %v, beyond it: %v; want [ok] and [shutdown]", o1, o2)
	}
}

// Hold parks a zero timeout, which is due at once.
func TestHoldZeroTimeout(t *testing.T) {
	r := New(10)
	o := newOutcomes()
	e, err := r.Park(Request{ConnID: "h", Hold: true}, o.deliver("h"))
	if err != nil || e == nil {
		t.Fatalf("Park with Hold: %v, %v; want an entry", e, err)
	}
	o.wait(t, 1)
	if got := o.of("h"); fmt.Sprint(got) != "[ok]" {
		t.Errorf("outcomes %v, want [ok]", got)
	}
}

// Dripping and plain requests, with kills and abandons racing their steps
// and deadlines: exactly one outcome each, and the trees empty at the end.
func TestDripStress(t *testing.T) {
	r := New(100_000)
	const n = 2000
	owners := make([]*dripOwner, n)
	entries := make([]*Entry, n)
	rnd := rand.New(rand.NewPCG(5, 6))
	for i := range n {
		pieces := rnd.IntN(4)
		owners[i] = newDripOwner(lastStep(pieces))
		req := Request{ConnID: fmt.Sprint(i), Timeout: time.Duration(rnd.IntN(5)) * time.Millisecond, Hold: true}
		if pieces > 0 {
			req.Pieces, req.Drip = pieces, time.Duration(rnd.IntN(6))*time.Millisecond
		}
		e, err := r.Park(req, owners[i])
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = e
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				switch i % 3 {
				case 0:
					r.Kill(fmt.Sprint(i), Detail(i))
				case 1:
					entries[i].Abandon()
				}
			}
		})
	}
	wg.Wait()
	for _, o := range owners {
		o.wait(t)
	}
	<-time.After(50 * time.Millisecond) // late deliveries would panic in close
	r.orderMu.Lock()
	left := r.order.Len() + r.steps.Len() + r.drips.Len()
	r.orderMu.Unlock()
	if r.Len() != 0 || left != 0 {
		t.Errorf("after every outcome: Len %d, %d left in the trees", r.Len(), left)
	}
}

// A snapshot lists dripping and plain requests together, by their ends.
func TestDripSnapshotOrder(t *testing.T) {
	r := New(100)
	park := func(id string, timeout, drip time.Duration) {
		req := Request{ConnID: id, Timeout: timeout}
		var o Owner = newOutcomes().deliver(id)
		if drip > 0 {
			req.Pieces, req.Drip = 3, drip
			o = newDripOwner(lastStep(3))
		}
		if _, err := r.Park(req, o); err != nil {
			t.Fatal(err)
		}
	}
	park("p10", 10*time.Second, 0)
	park("d5+10", 5*time.Second, 10*time.Second) // ends at 15 s
	park("p20", 20*time.Second, 0)
	park("d1+1", time.Second, time.Second) // ends at 2 s
	park("p5", 5*time.Second, 0)
	park("d30+1", 30*time.Second, time.Second) // ends at 31 s
	var ids []string
	for _, p := range r.Snapshot(make([]Parked, 0, 1)) {
		ids = append(ids, p.ConnID)
	}
	if got := fmt.Sprint(ids); got != "[d1+1 p5 p10 d5+10 p20 d30+1]" {
		t.Errorf("Snapshot %s, want the ends in order: [d1+1 p5 p10 d5+10 p20 d30+1]", got)
	}
	r.Shutdown(0)
}
