package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// The churn soak: for a while, many clients each loop over random actions on a
// keep-alive connection of their own — park and wait, park and be killed by
// another client, kill, park and hang up, pipeline, poll — and every answer is
// checked against the contract: exactly one answer per request that was not
// abandoned, one 200 kill behind every 500 killed and the reverse, nothing lost,
// nothing left in serverStatus at the end, and (with -metrics) the server back
// to idle with its outcome counters agreeing with what the clients saw.
//
// This file runs it; soak_client.go and soak_actions.go are the clients,
// soak_ledger.go the record of every park they share, soak_end.go the checks
// of the server once they are done, and soak_verdict.go the violation kinds
// and the verdict.

// soakOptions are the soak's knobs. The flags set duration, clients and settle;
// the rest are fixed for the command and shrunk by tests.
type soakOptions struct {
	duration         time.Duration // clients start actions for this long
	clients          int
	parkMax          time.Duration // plain parks: uniform [0, parkMax] in ms steps, 1 in 8 exactly 0
	longMin, longMax time.Duration // kill targets and hang-ups
	publishMax       time.Duration // a kill target joins the pool after uniform [0, publishMax]
	raceMin, raceMax time.Duration // timeouts of kill targets published near their deadline
	hangupMax        time.Duration // a hang-up comes after uniform [0, hangupMax]
	slack            time.Duration // longest wait past a park's timeout for its answer
	drain            time.Duration // after duration, outstanding requests get this long
	emptyWait        time.Duration // serverStatus must be {} within this once clients are done
	settle           time.Duration // wait before the after-reading of /metrics
	idleWait         time.Duration // poll /metrics this long for the goroutines to come back
	metrics          bool
	dialTimeout      time.Duration
	sources          []string // local addresses, round robin over clients; nil = any
	seed             uint64
	prefix           string // every connId of the run starts with it
	log              io.Writer
}

// soakOptionsFor derives the command's soak from cfg.
func soakOptionsFor(cfg *config, tgt target, seed uint64, prefix string) soakOptions {
	o := soakOptions{
		duration: cfg.soakDuration, clients: cfg.soakClients,
		parkMax: 3 * time.Second, longMin: 5 * time.Second, longMax: 10 * time.Second,
		publishMax: 200 * time.Millisecond, raceMin: 200 * time.Millisecond, raceMax: time.Second, hangupMax: 500 * time.Millisecond,
		slack: 10 * time.Second, emptyWait: 2 * time.Second, settle: cfg.settle, idleWait: 15 * time.Second,
		metrics: cfg.metrics, dialTimeout: cfg.dialTimeout, sources: sourceIPs(cfg.sources, tgt.ipv6),
		seed: seed, prefix: prefix, log: cfg.log,
	}
	o.drain = o.longMax + o.slack + 5*time.Second
	return o
}

// soak runs the soak phase of a run, its length cut to fit -max-duration.
func (r *runner) soak(ctx context.Context) {
	o := soakOptionsFor(&r.cfg, r.tgt, r.res.Seed, r.prefix)
	if dl, ok := ctx.Deadline(); ok {
		reserve := o.drain + o.emptyWait + o.settle + o.idleWait + 5*time.Second
		if left := time.Until(dl) - reserve; left < o.duration {
			o.duration = max(left, time.Second)
			r.res.SoakNotes = append(r.res.SoakNotes, fmt.Sprintf("-max-duration leaves room for a %.1f s soak only", o.duration.Seconds()))
		}
	}
	r.logf("soak: %d clients for %s", o.clients, o.duration)
	runSoak(ctx, r.tgt, o, r.res)
	r.logf("soak: %s after %d requests, %d violations", r.res.SoakVerdict, r.res.SoakRequestTotal, r.res.SoakViolationTotal)
}

// soak is the state the clients share.
type soak struct {
	tgt    target
	o      soakOptions
	parent context.Context // the run's: its end aborts the soak, not a violation
	res    *result

	mu       sync.Mutex // guards what follows and the soak fields of res
	parks    map[string]*parkRec
	pool     []string // kill targets; one leaves when a kill finds it gone, so kills race
	aborted  int
	examples map[violationKind][]string
}

// runSoak is the soak's core: it fills the Soak fields of res, verdict included.
func runSoak(ctx context.Context, tgt target, o soakOptions, res *result) {
	s := &soak{tgt: tgt, o: o, parent: ctx, res: res, parks: map[string]*parkRec{}, examples: res.SoakViolationExamples}
	res.SoakClients = o.clients
	for _, c := range []string{"ok", "killed", "conflict_409", "busy_503", "other"} {
		res.SoakAnswers[c] += 0 // every class listed, seen or not
	}
	var before map[string]float64
	if o.metrics {
		var ok bool
		if before, ok = scrapeSoakMetrics(ctx, tgt, o.dialTimeout); ok {
			res.SoakMetricsAvailable = true
		} else {
			res.SoakNotes = append(res.SoakNotes, "no /metrics: server idle and outcome checks skipped")
		}
	} else {
		res.SoakNotes = append(res.SoakNotes, "-metrics not set: server idle and outcome checks skipped")
	}

	start := time.Now()
	end := start.Add(o.duration)
	clientCtx, cancelClients := context.WithCancel(ctx)
	defer cancelClients()
	var wg sync.WaitGroup
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.client(c).loop(clientCtx, end)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if sleepCtx(ctx, time.Until(end)) {
		s.logf("soak: actions over after %s; waiting for outstanding requests", o.duration)
	}
	actionsEnd := time.Now()
	res.SoakDurationS = ptr(round3(actionsEnd.Sub(start).Seconds()))
	s.reap(clientCtx, done, actionsEnd.Add(o.drain), cancelClients)
	<-done
	res.SoakDrainS = ptr(round3(time.Since(actionsEnd).Seconds()))

	aborted := ctx.Err() != nil
	if !aborted {
		s.awaitEmpty(ctx)
	}
	if !aborted && res.SoakMetricsAvailable {
		s.checkIdle(ctx, before)
	}
	aborted = ctx.Err() != nil
	s.crossCheck()
	s.verdict(aborted)
}

func (s *soak) logf(format string, args ...any) {
	if s.o.log != nil {
		fmt.Fprintf(s.o.log, "parkload: "+format+"\n", args...)
	}
}

// reap kills, after the actions, every kill target still parked, again and again
// until every client is done, so that none waits out its long timeout. At
// bound it cancels the clients: whatever is still outstanding is lost.
func (s *soak) reap(ctx context.Context, done <-chan struct{}, bound time.Time, cancel func()) {
	cl := s.client(s.o.clients)
	defer cl.drop()
	limit := time.NewTimer(time.Until(bound))
	defer limit.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		var ids []string
		for _, id := range slices.Clone(s.pool) {
			if s.parks[id].answer != "" {
				s.unpublishLocked(id)
			} else {
				ids = append(ids, id)
			}
		}
		s.mu.Unlock()
		for _, id := range ids {
			if ctx.Err() != nil {
				break
			}
			cl.killID(ctx, id, "kill_reaper")
		}
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-limit.C:
			s.mu.Lock()
			s.res.SoakNotes = append(s.res.SoakNotes, fmt.Sprintf("outstanding requests cancelled %s after the actions", s.o.drain))
			s.mu.Unlock()
			cancel()
			return
		case <-tick.C:
		}
	}
}
