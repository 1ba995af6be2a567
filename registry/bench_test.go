package registry

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks run each operation on parkd's Registry (impl=xsync) and
// on the baselines of baseline_test.go (impl=syncmap, impl=rwmutex);
// compare them with
//
//	go test -run '^$' -bench . -count 6 ./registry/ > new.txt
//	benchstat -col /impl new.txt
//
// They make no timing assertions. Each leaves nothing parked and waits
// for every delivery it caused, so they also run with -benchtime 1x.

// benchCapacity is never reached: the benchmarks measure parking, not
// refusals.
const benchCapacity = 1 << 30

// far is a timeout that never elapses during a benchmark.
const far = time.Hour

// ids hands out connIds unique within one benchmark run.
type ids struct{ n atomic.Uint64 }

func (s *ids) next() string {
	return strconv.FormatUint(s.n.Add(1), 36)
}

// fill parks n requests on a new p with far, distinct, shuffled deadlines
// (so that the snapshot's sort has work to do whatever order the map
// ranges in) and returns their connIds.
func fill(b *testing.B, p parker, n int) []string {
	b.Helper()
	keys := make([]string, n)
	for i := range n {
		keys[i] = "c" + strconv.Itoa(i)
		// i*7919 mod n is a permutation of 0..n-1 (7919 is prime and
		// divides none of the sizes used).
		spread := time.Duration(i*7919%n) * time.Millisecond
		if err := p.Park(keys[i], far+spread, func(Outcome) {}); err != nil {
			b.Fatalf("parking %s: %v", keys[i], err)
		}
	}
	if got := p.Len(); got != n {
		b.Fatalf("Len() = %d after parking %d", got, n)
	}
	return keys
}

// lazily builds a parker with n parked once per sub-benchmark: the
// function given to b.Run may be called several times (b.N = 1, then
// larger), and the parker is kept between the calls; the caller closes it
// after b.Run returns.
type lazily struct {
	p    parker
	keys []string
}

func (l *lazily) get(b *testing.B, im impl, n int) (parker, []string) {
	if l.p == nil {
		l.p = im.new(benchCapacity)
		l.keys = fill(b, l.p, n)
	}
	return l.p, l.keys
}

func (l *lazily) close() {
	if l.p != nil {
		l.p.Close()
	}
}

// BenchmarkParkExpire parks requests with a 1µs timeout, in parallel,
// each under a new connId, and counts as done only once every one of them
// has been delivered OK by its timer.
func BenchmarkParkExpire(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			p := im.new(benchCapacity)
			defer p.Close()
			var (
				delivered sync.WaitGroup
				wrong     atomic.Int64
				seq       ids
			)
			deliver := func(o Outcome) {
				if o != OK {
					wrong.Add(1)
				}
				delivered.Done()
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					delivered.Add(1)
					if err := p.Park(seq.next(), time.Microsecond, deliver); err != nil {
						delivered.Done()
						b.Error("Park:", err)
						return
					}
				}
			})
			delivered.Wait()
			b.StopTimer()
			if n := wrong.Load(); n > 0 {
				b.Errorf("%d outcomes other than OK", n)
			}
			if n := p.Len(); n != 0 {
				b.Errorf("Len() = %d after every delivery", n)
			}
		})
	}
}

// BenchmarkParkKill parks a request for an hour and kills it, in
// parallel, each under a new connId. Kill delivers before it returns.
func BenchmarkParkKill(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			p := im.new(benchCapacity)
			defer p.Close()
			var killed, wrong, ops atomic.Int64
			deliver := func(o Outcome) {
				if o != Killed {
					wrong.Add(1)
				}
				killed.Add(1)
			}
			var seq ids
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var n int64
				for pb.Next() {
					id := seq.next()
					if err := p.Park(id, far, deliver); err != nil {
						b.Error("Park:", err)
						return
					}
					if err := p.Kill(id); err != nil {
						b.Error("Kill:", err)
						return
					}
					n++
				}
				ops.Add(n)
			})
			b.StopTimer()
			if killed.Load() != ops.Load() || wrong.Load() != 0 {
				b.Errorf("%d kills delivered %d outcomes, %d not Killed", ops.Load(), killed.Load(), wrong.Load())
			}
		})
	}
}

// BenchmarkSnapshot takes the sorted snapshot of N parked requests,
// reusing the destination slice. The registry is filled once per
// sub-benchmark, outside the timer.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{1000, 10_000, 100_000} {
		for _, im := range impls {
			var l lazily
			b.Run(fmt.Sprintf("entries=%d/impl=%s", n, im.name), func(b *testing.B) {
				p, _ := l.get(b, im, n)
				dst := make([]Parked, 0, n)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					dst = p.Snapshot(dst[:0])
				}
				b.StopTimer()
				if len(dst) != n {
					b.Fatalf("snapshot of %d entries, want %d", len(dst), n)
				}
				for i := 1; i < len(dst); i++ {
					if dst[i].Remaining < dst[i-1].Remaining {
						b.Fatalf("snapshot out of order at %d", i)
					}
				}
			})
			l.close()
		}
	}
}

// BenchmarkLen reads the number parked, in parallel, with 1000 parked.
func BenchmarkLen(b *testing.B) {
	const n = 1000
	for _, im := range impls {
		var l lazily
		b.Run("impl="+im.name, func(b *testing.B) {
			p, _ := l.get(b, im, n)
			var wrong atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if p.Len() != n {
						wrong.Add(1)
					}
				}
			})
			b.StopTimer()
			if wrong.Load() != 0 {
				b.Errorf("Len() was not %d %d times", n, wrong.Load())
			}
		})
		l.close()
	}
}

// BenchmarkGet reads random parked requests among 10k, in parallel.
func BenchmarkGet(b *testing.B) {
	const n = 10_000
	for _, im := range impls {
		var l lazily
		b.Run("impl="+im.name, func(b *testing.B) {
			p, keys := l.get(b, im, n)
			var missing atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok := p.Get(keys[rand.IntN(n)]); !ok {
						missing.Add(1)
					}
				}
			})
			b.StopTimer()
			if missing.Load() != 0 {
				b.Errorf("Get missed a parked request %d times", missing.Load())
			}
		})
		l.close()
	}
}
