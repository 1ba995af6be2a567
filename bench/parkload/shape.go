package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// The phases of section 6 of docs/API.md, how a parked request ends: drip,
// drip-capacity, fault and killthen. Each parks waves of requests like the
// park phase (one connection each, over child processes near the
// open-file limit) but watches every answer byte by byte (watch.go), and
// reads the server's own lateness histograms from /metrics before and after
// (histogram.go).

// dripPiece is the shortest time between two pieces of a dripping body.
const dripPiece = 100 * time.Millisecond

// The JSON of the answers at the deadline and on a kill, before padding.
const (
	okJSON     = `{"status":"ok"}`
	killedJSON = `{"status":"killed"}`
)

// dripShape is the length of a body=B answer at the deadline and the number
// of pieces drip=D sends it in: min(length, ceil(D / 100 ms)).
func dripShape(body int, drip time.Duration) (length, pieces int) {
	length = max(len(okJSON), body)
	return length, min(length, int((drip+dripPiece-1)/dripPiece))
}

// dripQuery is the query of a park asking for body and drip (whole
// milliseconds, as the server reads them).
func dripQuery(body int, drip time.Duration) string {
	return "&body=" + strconv.Itoa(body) + "&drip=" + formatTimeout(drip.Milliseconds())
}

// plan gives w's requests their timeouts: uniform over [base, base+spread],
// or with -same-deadline one instant, phase start + base + spread.
func (r *runner) plan(w *wave, base, spread time.Duration) {
	if r.cfg.sameDeadline {
		w.deadline = r.clk.now() + int64(base+spread)
	} else {
		w.timeouts = planTimeouts(w.n, base, spread, r.rng)
	}
}

// rssIf reads the server's RSS when -pid was given.
func (r *runner) rssIf() *int64 {
	if r.cfg.pid <= 0 {
		return nil
	}
	return r.rss()
}

// perRequest is (v - base) / n, when both were read.
func perRequest(v, base *int64, n int) *float64 {
	if v == nil || base == nil || n == 0 {
		return nil
	}
	return ptr(round3(float64(*v-*base) / float64(n)))
}

// dueMs is how long after request i's deadline, as its client reckons it
// (request written + timeout), stamp came, in ms.
func dueMs(s sendRec, stamp int64) float64 {
	return nsToMs(stamp - s.Sent - s.TimeoutMs*int64(time.Millisecond))
}

// shapePhases runs the section-6 phases selected, in order.
func (r *runner) shapePhases(ctx context.Context) {
	p := r.cfg.phases
	for _, ph := range []struct {
		on  bool
		run func(context.Context)
	}{{p.drip, r.drip}, {p.dripCapacity, r.dripCapacity}, {p.fault, r.fault}, {p.killthen, r.killthen}} {
		if ph.on && ctx.Err() == nil {
			ph.run(ctx)
		}
	}
}

// dripWave is one wave of dripping requests and what its clients saw.
type dripWave struct {
	wo            waveOut
	ok            int
	errors        map[string]int
	heads, pieces []float64 // client-side lateness of the headers and of each piece, ms
	right         []bool    // by request: a 200 whose padded body came whole
	before, after map[string]histogram
}

// runDrip parks n requests asking body and drip, timeouts uniform over
// [timeout, timeout+spread], and checks every answer: a 200 whose padded
// body came whole. during runs once they are written.
func (r *runner) runDrip(ctx context.Context, prefix string, n, body int, drip, spread time.Duration, during func(*waveOut)) dripWave {
	length, pieces := dripShape(body, drip)
	w := wave{n: n, prefix: prefix, query: dripQuery(body, drip), watch: &watchSpec{Pieces: pieces, BodyLen: length, Drip: drip}}
	r.plan(&w, r.cfg.timeout, spread)
	dw := dripWave{errors: map[string]int{}}
	dw.before, _ = scrapeHistograms(ctx, r.tgt, r.cfg.dialTimeout)
	dw.wo = r.runWave(ctx, w, during)
	dw.after, _ = scrapeHistograms(ctx, r.tgt, r.cfg.dialTimeout)
	r.res.Children = max(r.res.Children, dw.wo.children)
	dw.right = make([]bool, len(dw.wo.outs))
	for i, o := range dw.wo.outs {
		s := dw.wo.sends[i]
		if s.Sent > 0 && o.Effect > 0 {
			dw.heads = append(dw.heads, dueMs(s, o.Effect))
		}
		for _, us := range o.Late {
			dw.pieces = append(dw.pieces, float64(us)/1e3)
		}
		switch {
		case seenRight(o, "200", false, body):
			dw.ok++
			dw.right[i] = true
		case o.Kind == "status_200":
			dw.errors["bad_body"]++
		default:
			dw.errors[o.Kind]++
		}
	}
	return dw
}

// drip is the drip phase: -n requests with body=-body&drip=-drip.
func (r *runner) drip(ctx context.Context) {
	cfg, res := &r.cfg, r.res
	drip := cfg.dripDur.Truncate(time.Millisecond)
	_, pieces := dripShape(cfg.dripBody, drip)
	res.DripN, res.DripBody, res.DripS, res.DripPieces = cfg.n, cfg.dripBody, drip.Seconds(), pieces
	res.DripRSSBeforeBytes = r.rssIf()
	prefix := r.prefix + "d"
	ss := r.openStreams(ctx, "drip", []waveKey{{prefix + "p", cfg.n}})
	dw := r.runDrip(ctx, prefix, cfg.n, cfg.dripBody, drip, cfg.spread, func(wo *waveOut) {
		res.DripWritten = written(wo.sends)
		r.logf("drip: %d of %d written in %.2fs", res.DripWritten, cfg.n, time.Since(wo.start).Seconds())
		if ctx.Err() == nil {
			res.DripListed = r.confirmParked(ctx, prefix, wo.sends, drip)
			res.DripRSSParkedBytes = r.rssIf()
		}
	})
	r.keepStreams(ss.finish(ctx, dw.wo.start, [][]int8{expectFrom(dw.wo.sends, func(i int) bool { return dw.right[i] })}))
	res.DripOK, res.DripErrors = dw.ok, dw.errors
	for _, c := range dw.errors {
		res.DripErrorTotal += c
	}
	d := summarize(dw.heads)
	res.DripHeadP50Ms, res.DripHeadP99Ms, res.DripHeadMaxMs = d.p50, d.p99, d.max
	d = summarize(dw.pieces)
	res.DripPieceSamples = d.n
	res.DripPieceP50Ms, res.DripPieceP99Ms, res.DripPieceMaxMs = d.p50, d.p99, d.max
	if dw.wo.peak.rss > 0 {
		res.DripRSSPeakBytes = ptr(dw.wo.peak.rss)
	}
	res.DripRSSPerRequestBytes = perRequest(res.DripRSSParkedBytes, res.DripRSSBeforeBytes, cfg.n)
	res.DripRSSPeakPerRequestBytes = perRequest(res.DripRSSPeakBytes, res.DripRSSBeforeBytes, cfg.n)
	res.DripServerPieces = histDelta(dw.before, dw.after, histPieceLateness)
	res.DripServerHeads = histDelta(dw.before, dw.after, histAnswerLateness)
	res.DripVerdict = verdict(ctx, dw.ok == cfg.n)
	r.logf("drip: %s, %d of %d whole, %d pieces", res.DripVerdict, dw.ok, cfg.n, d.n)
}

// verdict is PASS or FAIL; a run cut short fails.
func verdict(ctx context.Context, pass bool) string {
	if pass && ctx.Err() == nil {
		return soakPass
	}
	return soakFail
}

// capStep is one wave of the drip-capacity phase.
type capStep struct {
	N           int            `json:"n"`
	OK          int            `json:"ok"` // clients that got a 200 and the whole body
	Errors      map[string]int `json:"errors"`
	Server      *histFigures   `json:"server"`       // parkd_piece_lateness_seconds over the step
	WithinLimit *float64       `json:"within_limit"` // share of the server's pieces within -capacity-p99
	ClientP50Ms *float64       `json:"client_p50_ms"`
	ClientP99Ms *float64       `json:"client_p99_ms"`
	ClientMaxMs *float64       `json:"client_max_ms"`
	OnSchedule  bool           `json:"on_schedule"`
}

// dripCapacity is the drip-capacity phase: waves of -capacity-steps
// requests, until one misses the schedule (with -capacity-all, all of them).
func (r *runner) dripCapacity(ctx context.Context) {
	cfg, res := &r.cfg, r.res
	drip := cfg.capDrip.Truncate(time.Millisecond)
	_, pieces := dripShape(cfg.capBody, drip)
	res.CapBody, res.CapDripS, res.CapPieces, res.CapLimitMs = cfg.capBody, drip.Seconds(), pieces, nsToMs(int64(cfg.capP99))
	for i, n := range cfg.capSteps {
		if i > 0 && !sleepCtx(ctx, time.Second) { // the last wave's connections close
			break
		}
		dw := r.runDrip(ctx, r.prefix+"c"+strconv.Itoa(i)+"-", n, cfg.capBody, drip, cfg.capSpread, func(*waveOut) {})
		if ctx.Err() != nil {
			res.CapNotes = append(res.CapNotes, "the run ended during the step of "+strconv.Itoa(n))
			break
		}
		st := capStep{N: n, OK: dw.ok, Errors: dw.errors}
		d := summarize(dw.pieces)
		st.ClientP50Ms, st.ClientP99Ms, st.ClientMaxMs = d.p50, d.p99, d.max
		a, okA := dw.after[histPieceLateness]
		b, okB := dw.before[histPieceLateness]
		if okA && okB {
			h := a.since(b)
			st.Server, st.WithinLimit = h.figures(), h.within(cfg.capP99)
			st.OnSchedule = st.WithinLimit != nil && *st.WithinLimit >= 0.99
			res.CapBasis = "server"
		} else {
			// Without the server's histogram, the clients' view decides.
			st.OnSchedule = st.ClientP99Ms != nil && *st.ClientP99Ms <= res.CapLimitMs
			res.CapBasis = "client"
		}
		st.OnSchedule = st.OnSchedule && dw.ok == n
		res.CapSteps = append(res.CapSteps, st)
		r.logf("drip-capacity: %d dripping: on schedule %v (within %s ms: %s, ok %d)", n, st.OnSchedule,
			fnum(&res.CapLimitMs), fnum(st.WithinLimit), dw.ok)
		switch {
		case !st.OnSchedule && res.CapFirstMissN == nil:
			res.CapFirstMissN = ptr(n)
		case st.OnSchedule && res.CapFirstMissN == nil:
			res.CapMaxN = ptr(n) // every smaller step kept the schedule too
		}
		if res.CapFirstMissN != nil && !cfg.capAll {
			break
		}
	}
}

// faultAction is what the clients of one fault wave saw.
type faultAction struct {
	Then     string         `json:"then"`
	N        int            `json:"n"`
	Written  int            `json:"written"`
	Expected int            `json:"expected"`  // saw exactly the ending asked for
	RST      int            `json:"rst"`       // an RST with nothing read
	FIN      int            `json:"fin_empty"` // EOF with nothing read
	Other    int            `json:"other"`     // anything else: bytes, a status line, a timeout
	Seen     map[string]int `json:"seen"`      // every ending seen, by kind
	P50Ms    *float64       `json:"p50_ms"`    // when the expected ending came, after the deadline the client reckons
	P99Ms    *float64       `json:"p99_ms"`
	MaxMs    *float64       `json:"max_ms"`
	Server   *histFigures   `json:"server"` // parkd_answer_lateness_seconds over the wave: when the server applied the endings
}

// fault is the fault phase: for each -fault-then action, -n requests whose
// deadline applies it.
func (r *runner) fault(ctx context.Context) {
	cfg, res := &r.cfg, r.res
	res.FaultN, res.FaultSameDeadline = cfg.n, cfg.sameDeadline
	pass := true
	prefix := func(i int) string { return r.prefix + "f" + strconv.Itoa(i) + "-" }
	var keys []waveKey
	for i := range cfg.faultThens {
		keys = append(keys, waveKey{prefix(i) + "p", cfg.n})
	}
	ss := r.openStreams(ctx, "fault", keys)
	var expect [][]int8
	var start time.Time
	for i, then := range cfg.faultThens {
		if i > 0 && !sleepCtx(ctx, time.Second) {
			break
		}
		w := wave{n: cfg.n, prefix: prefix(i), query: "&then=" + url.QueryEscape(then), watch: &watchSpec{}}
		r.plan(&w, cfg.timeout, cfg.spread)
		fa := faultAction{Then: then, N: cfg.n, Seen: map[string]int{}}
		before, _ := scrapeHistograms(ctx, r.tgt, cfg.dialTimeout)
		wo := r.runWave(ctx, w, func(wo *waveOut) {
			fa.Written = written(wo.sends)
			r.logf("fault: then=%s: %d of %d written in %.2fs", then, fa.Written, cfg.n, time.Since(wo.start).Seconds())
		})
		after, _ := scrapeHistograms(ctx, r.tgt, cfg.dialTimeout)
		fa.Server = histDelta(before, after, histAnswerLateness)
		res.Children = max(res.Children, wo.children)
		if i == 0 {
			start = wo.start
		}
		var late []float64
		right := make([]bool, len(wo.outs))
		for j, o := range wo.outs {
			fa.Seen[o.Kind]++
			switch o.Kind {
			case seenReset:
				fa.RST++
			case seenClose:
				fa.FIN++
			default:
				fa.Other++
			}
			if seenRight(o, then, false, 0) {
				fa.Expected++
				right[j] = true
				late = append(late, dueMs(wo.sends[j], o.Effect))
			}
		}
		expect = append(expect, expectFrom(wo.sends, func(j int) bool { return right[j] }))
		d := summarize(late)
		fa.P50Ms, fa.P99Ms, fa.MaxMs = d.p50, d.p99, d.max
		res.FaultActions = append(res.FaultActions, fa)
		pass = pass && fa.Expected == cfg.n
		r.logf("fault: then=%s: expected %d of %d (rst %d, fin %d, other %d)", then, fa.Expected, cfg.n, fa.RST, fa.FIN, fa.Other)
		if ctx.Err() != nil {
			break
		}
	}
	r.keepStreams(ss.finish(ctx, start, expect))
	res.FaultVerdict = verdict(ctx, pass && len(res.FaultActions) == len(cfg.faultThens))
}

// ktAction is what the kills with one then value did.
type ktAction struct {
	Then       string         `json:"then"`
	Kills      int            `json:"kills"`    // kills sent
	KillsOK    int            `json:"kills_ok"` // answered 200 {"status":"ok"}
	Right      int            `json:"right"`    // the parked client saw the ending the kill asked for
	Seen       map[string]int `json:"seen"`     // what the parked clients saw, by kind
	KillErrors map[string]int `json:"kill_errors"`
	P50Ms      *float64       `json:"p50_ms"` // kill written → the parked client saw its ending
	P99Ms      *float64       `json:"p99_ms"`
	MaxMs      *float64       `json:"max_ms"`
}

// killthen is the killthen phase: -n parked requests, each killed with one
// of the -kill-then actions in turn.
func (r *runner) killthen(ctx context.Context) {
	cfg, res := &r.cfg, r.res
	res.KtN, res.KtTimeoutS, res.KtBody = cfg.n, cfg.killthenTimeout.Seconds(), cfg.killthenBody
	prefix := r.prefix + "k"
	timeouts := make([]int64, cfg.n)
	for i := range timeouts {
		timeouts[i] = cfg.killthenTimeout.Milliseconds()
	}
	w := wave{n: cfg.n, prefix: prefix, timeouts: timeouts, watch: &watchSpec{}}
	if cfg.killthenBody > 0 {
		w.query = "&body=" + strconv.Itoa(cfg.killthenBody)
	}
	var kills []killRec
	ss := r.openStreams(ctx, "killthen", []waveKey{{prefix + "p", cfg.n}})
	wo := r.runWave(ctx, w, func(wo *waveOut) {
		res.KtWritten = written(wo.sends)
		r.logf("killthen: %d of %d written in %.2fs", res.KtWritten, cfg.n, time.Since(wo.start).Seconds())
		if ctx.Err() != nil {
			return
		}
		res.KtListed = r.confirmParked(ctx, prefix, wo.sends, 0)
		kills = r.killEach(ctx, prefix, wo.sends, cfg.killThens)
		r.logf("killthen: %d kills sent", len(kills))
	})
	res.Children = max(res.Children, wo.children)
	acts := make([]ktAction, len(cfg.killThens))
	lat := make([][]float64, len(cfg.killThens))
	for i, then := range cfg.killThens {
		acts[i] = ktAction{Then: then, Seen: map[string]int{}, KillErrors: map[string]int{}}
	}
	right := make([]bool, cfg.n)
	for _, k := range kills {
		a := &acts[k.idx%len(acts)]
		o := wo.outs[k.idx]
		a.Kills++
		a.Seen[o.Kind]++
		if k.kind != "" {
			a.KillErrors[k.kind]++
			continue
		}
		a.KillsOK++
		if seenRight(o, a.Then, true, cfg.killthenBody) && o.Effect > 0 {
			a.Right++
			right[k.idx] = true
			lat[k.idx%len(acts)] = append(lat[k.idx%len(acts)], nsToMs(o.Effect-k.wrote))
		}
	}
	pass := len(kills) == cfg.n
	for i := range acts {
		d := summarize(lat[i])
		acts[i].P50Ms, acts[i].P99Ms, acts[i].MaxMs = d.p50, d.p99, d.max
		pass = pass && acts[i].Right == acts[i].Kills
	}
	res.KtActions = acts
	r.keepStreams(ss.finish(ctx, wo.start, [][]int8{expectFrom(wo.sends, func(i int) bool { return right[i] })}))
	res.KtVerdict = verdict(ctx, pass)
}

// killEach kills every written request of a wave, one after another on one
// keep-alive connection, request i with then thens[i % len(thens)].
func (r *runner) killEach(ctx context.Context, prefix string, sends []sendRec, thens []string) []killRec {
	kc := newKAConn(r.tgt, "", r.cfg.dialTimeout)
	defer kc.close()
	var kills []killRec
	for i, s := range sends {
		if ctx.Err() != nil {
			break
		}
		if s.Sent == 0 {
			continue
		}
		id, _ := json.Marshal(parkID(prefix, i))
		then, _ := json.Marshal(thens[i%len(thens)])
		body := append(append(append(append([]byte(`{"connId":`), id...), `,"then":`...), then...), '}')
		kills = append(kills, r.sendKill(ctx, kc, i, body))
	}
	return kills
}
