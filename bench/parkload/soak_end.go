package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// soakGoroutineSlack and soakHeapSlack bound the server's growth over the soak.
const (
	soakGoroutineSlack = 5
	soakHeapSlack      = 8 << 20
)

// awaitEmpty polls serverStatus until it is {}, for at most emptyWait.
func (s *soak) awaitEmpty(ctx context.Context) {
	kc := newKAConn(s.tgt, "", s.o.dialTimeout)
	defer kc.close()
	start := time.Now()
	req := appendRequest(nil, "GET", s.tgt, "/api/serverStatus", nil, false)
	var last string
	for {
		ex, err := kc.do(ctx, req, soakMaxBody)
		if err == nil && ex.resp.status == 200 {
			var m map[string]json.RawMessage
			if json.Unmarshal(ex.resp.body, &m) == nil && m != nil {
				if len(m) == 0 {
					s.res.SoakEndEmptyAfterS = ptr(round3(time.Since(start).Seconds()))
					return
				}
				ids := slices.Sorted(maps.Keys(m))
				last = fmt.Sprintf("%d entries, e.g. %s", len(ids), strings.Join(ids[:min(5, len(ids))], " "))
			}
		} else if err != nil {
			last = errKind(ctx, err)
		} else {
			last = fmt.Sprintf("%d %s", ex.resp.status, short(ex.resp.body))
		}
		if time.Since(start) >= s.o.emptyWait || !sleepCtx(ctx, 100*time.Millisecond) {
			break
		}
	}
	if ctx.Err() == nil {
		s.violation(violStatusNotEmpty, fmt.Sprintf("serverStatus not {} %s after the clients finished: %s", s.o.emptyWait, last))
	}
}

// Metrics the soak reads besides go_goroutines and the heap in use.
const (
	metricHeapObjects = "go_memstats_heap_objects"
	metricParked      = "parkd_parked_requests"
)

func outcomeMetric(o string) string { return `parkd_outcomes_total{outcome="` + o + `"}` }

// scrapeSoakMetrics fetches /metrics on a fresh connection; ok is false without it.
func scrapeSoakMetrics(ctx context.Context, tgt target, dialTimeout time.Duration) (map[string]float64, bool) {
	kc := newKAConn(tgt, "", dialTimeout)
	defer kc.close()
	ex, err := kc.do(ctx, appendRequest(nil, "GET", tgt, "/metrics", nil, true), 64<<20)
	if err != nil || ex.resp.status != 200 {
		return nil, false
	}
	return parseMetrics(ex.resp.body, metricGoroutines, metricHeapInuse, metricHeapObjects, metricParked,
		outcomeMetric("ok"), outcomeMetric("killed"), outcomeMetric("abandoned"), outcomeMetric("shutdown"), outcomeMetric("rejected")), true
}

// checkIdle reads /metrics after settle, again every 500 ms for up to idleWait
// until the goroutines are back and nothing is parked, and compares with before.
func (s *soak) checkIdle(ctx context.Context, before map[string]float64) {
	res := s.res
	if !sleepCtx(ctx, s.o.settle) {
		return
	}
	until := time.Now().Add(s.o.idleWait)
	var after map[string]float64
	for {
		if m, ok := scrapeSoakMetrics(ctx, s.tgt, s.o.dialTimeout); ok {
			after = m
		}
		g, gok := after[metricGoroutines]
		p, pok := after[metricParked]
		back := (!gok || g <= before[metricGoroutines]+soakGoroutineSlack) && (!pok || p == 0)
		if after != nil && back || !time.Now().Before(until) || !sleepCtx(ctx, 500*time.Millisecond) {
			break
		}
	}
	if ctx.Err() != nil {
		return
	}
	if after == nil {
		s.violation(violServerNotIdle, "/metrics unreadable after the soak")
		return
	}
	res.SoakGoroutinesBefore, res.SoakGoroutinesAfter = metricPtr(before, metricGoroutines), metricPtr(after, metricGoroutines)
	res.SoakHeapInuseBeforeBytes, res.SoakHeapInuseAfterBytes = metricPtr(before, metricHeapInuse), metricPtr(after, metricHeapInuse)
	res.SoakHeapObjectsBefore, res.SoakHeapObjectsAfter = metricPtr(before, metricHeapObjects), metricPtr(after, metricHeapObjects)
	res.SoakParkedBefore, res.SoakParkedAfter = metricPtr(before, metricParked), metricPtr(after, metricParked)
	gb, ga := res.SoakGoroutinesBefore, res.SoakGoroutinesAfter
	if gb != nil && ga != nil && *ga > *gb+soakGoroutineSlack {
		s.violation(violServerNotIdle, fmt.Sprintf("go_goroutines %v before, %v after %s + %s of waiting", *gb, *ga, s.o.settle, s.o.idleWait))
	}
	if pa := res.SoakParkedAfter; pa != nil && *pa != 0 {
		s.violation(violServerNotIdle, fmt.Sprintf("parkd_parked_requests %v after the soak", *pa))
	}
	// Heap in use is compared loosely: the GC may not have run since the soak, so
	// garbage still counts. Twice the baseline, or 8 MiB more, leaves room for
	// that, while a leak of one object per request over ~10^5 requests does not fit.
	if hb, ha := res.SoakHeapInuseBeforeBytes, res.SoakHeapInuseAfterBytes; hb != nil && ha != nil && *ha > max(2**hb, *hb+soakHeapSlack) {
		s.violation(violServerNotIdle, fmt.Sprintf("heap in use %.1f MiB before, %.1f MiB after", *hb/(1<<20), *ha/(1<<20)))
	}
	delta := func(o string) *float64 {
		b, bok := before[outcomeMetric(o)]
		a, aok := after[outcomeMetric(o)]
		if !bok || !aok {
			return nil
		}
		return ptr(a - b)
	}
	res.SoakServerOK, res.SoakServerKilled, res.SoakServerAbandoned = delta("ok"), delta("killed"), delta("abandoned")
	res.SoakServerRejected, res.SoakServerShutdown = delta("rejected"), delta("shutdown")
	s.compareOutcomes()
}

// compareOutcomes checks the server's outcome counts against the clients'. They
// must agree exactly when the server served only this soak, as assumed here.
// A hang-up can race the answer: the server counts ok what the client gave up
// on, so ok and abandoned are compared as a sum.
func (s *soak) compareOutcomes() {
	res := s.res
	ok, killed, ab, rej, shut := res.SoakServerOK, res.SoakServerKilled, res.SoakServerAbandoned, res.SoakServerRejected, res.SoakServerShutdown
	if ok == nil || killed == nil || ab == nil {
		res.SoakNotes = append(res.SoakNotes, "no parkd_outcomes_total counters: outcome comparison skipped")
		return
	}
	res.SoakNotes = append(res.SoakNotes, "outcome counts compared assume the server served only this soak")
	cOK, cKilled, cHung, cBusy := float64(res.SoakAnswers["ok"]), float64(res.SoakAnswers["killed"]), float64(res.SoakHungUp), float64(res.SoakAnswers["busy_503"])
	if *killed != cKilled {
		s.violation(violOutcomeMismatch, fmt.Sprintf("server counted %v killed, clients got %v", *killed, cKilled))
	}
	if *ok+*ab != cOK+cHung || *ok < cOK || *ab > cHung {
		s.violation(violOutcomeMismatch, fmt.Sprintf("server ok %v + abandoned %v, clients ok %v + hung up %v", *ok, *ab, cOK, cHung))
	}
	if rej != nil && shut != nil && *rej+*shut != cBusy {
		s.violation(violOutcomeMismatch, fmt.Sprintf("server rejected %v + shutdown %v, clients got %v 503s", *rej, *shut, cBusy))
	}
}
