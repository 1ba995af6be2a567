package main

import (
	"context"
	crand "crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runner carries one run's settings and figures between its phases.
type runner struct {
	cfg    config
	tgt    target
	clk    clock
	rng    *rand.Rand
	prefix string // connIds of this run start with it, so leftovers of other runs never clash
	res    *result
	nofile uint64 // the open-file limit, for splitting a wave over child processes
	exe    string // the binary children run
	spread []spreadTarget
}

// runPhases performs the configured phases against cfg.url and returns every figure. An
// error means the run could not start; a run cut short by ctx or maxDuration
// returns what it measured, with Aborted set.
func runPhases(ctx context.Context, cfg config) (*result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tgt, _ := parseTarget(cfg.url)
	seed := cfg.seed
	for seed == 0 {
		seed = rand.Uint64()
	}
	var p [4]byte
	if _, err := crand.Read(p[:]); err != nil {
		return nil, err
	}
	r := &runner{
		cfg:    cfg,
		tgt:    tgt,
		clk:    newClock(),
		rng:    rand.New(rand.NewPCG(seed, seed>>1|1)),
		prefix: hex.EncodeToString(p[:]) + "-",
		res:    newResult(),
	}
	res := r.res
	res.URL, res.Phases, res.RunPrefix, res.Seed = cfg.url, cfg.phases.String(), r.prefix, seed
	for _, u := range cfg.spreadURLs {
		t, _ := parseTarget(u) // validate checked it
		r.spread = append(r.spread, spreadTarget{Dial: t.dial, Host: t.host, Base: t.base})
	}
	res.Instances = max(1, len(cfg.spreadURLs))
	if cfg.pid > 0 {
		for _, pid := range append([]int{cfg.pid}, cfg.alsoPids...) {
			if _, err := readRSS(pid); err != nil {
				return nil, fmt.Errorf("-pid %d: %w", pid, err)
			}
		}
	}
	if cfg.phases.waves() {
		var err error
		if r.nofile, err = openFileLimit(); err != nil {
			return nil, err
		}
		// The largest wave decides: a smaller one splits into fewer processes.
		counts, err := splitCounts(cfg.largestWave(), cfg.perProcessCap, r.nofile)
		if err != nil {
			return nil, err
		}
		if len(counts) > 0 {
			if r.exe, err = executable(&cfg); err != nil {
				return nil, err
			}
		}
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.maxDuration)
	defer cancel()
	start := time.Now()
	var metricsBefore map[string]float64
	if cfg.metrics {
		metricsBefore, res.MetricsAvailable = scrapeMetrics(ctx, tgt, cfg.dialTimeout)
	}
	if cfg.pid > 0 {
		res.RSSBeforeBytes = r.rss()
	}
	var peak peaks
	if cfg.phases.park {
		peak = r.park(ctx)
	} else if cfg.phases.status {
		r.status(ctx)
	}
	if cfg.phases.throughput && cfg.throughputDuration > 0 && ctx.Err() == nil {
		r.throughput(ctx)
	}
	if cfg.phases.soak && ctx.Err() == nil {
		r.soak(ctx)
	}
	r.shapePhases(ctx)
	if ctx.Err() == nil && sleepCtx(ctx, cfg.settle) {
		if cfg.pid > 0 {
			res.RSSAfterBytes = r.rss()
		}
		if res.MetricsAvailable {
			after, _ := scrapeMetrics(ctx, tgt, cfg.dialTimeout)
			res.GoroutinesAfter, res.HeapInuseAfterBytes = metricPtr(after, metricGoroutines), metricPtr(after, metricHeapInuse)
		}
	}
	if res.MetricsAvailable {
		res.GoroutinesBefore, res.HeapInuseBeforeBytes = metricPtr(metricsBefore, metricGoroutines), metricPtr(metricsBefore, metricHeapInuse)
		res.GoroutinesPeak, res.HeapInusePeakBytes = metricPtr(peak.metrics, metricGoroutines), metricPtr(peak.metrics, metricHeapInuse)
	}
	res.DurationS = round3(time.Since(start).Seconds())
	res.Aborted = ctx.Err() != nil
	return res, nil
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.log != nil {
		fmt.Fprintf(r.cfg.log, "parkload: "+format+"\n", args...)
	}
}

// rss reads the server's RSS, summed over -pid and -also-pid; nil when one
// cannot be read (a server may have died).
func (r *runner) rss() *int64 {
	v, err := r.readRSSAll()
	if err != nil {
		r.logf("%v", err)
		return nil
	}
	return &v
}

func (r *runner) readRSSAll() (int64, error) {
	var sum int64
	for _, pid := range append([]int{r.cfg.pid}, r.cfg.alsoPids...) {
		v, err := readRSS(pid)
		if err != nil {
			return 0, fmt.Errorf("read RSS of pid %d: %w", pid, err)
		}
		sum += v
	}
	return sum, nil
}

func metricPtr(m map[string]float64, name string) *float64 {
	if v, ok := m[name]; ok {
		return &v
	}
	return nil
}

// sleepCtx waits d; false means ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// peaks are the largest RSS seen during the park phase and the /metrics values read
// once every request was parked.
type peaks struct {
	rss     int64
	metrics map[string]float64
}

func (p *peaks) add(rss int64, m map[string]float64) {
	p.rss = max(p.rss, rss)
	if p.metrics == nil {
		p.metrics = map[string]float64{}
	}
	for k, v := range m {
		if old, ok := p.metrics[k]; !ok || v > old {
			p.metrics[k] = v
		}
	}
}

// pollPeaks samples RSS every 250 ms until ctx ends, then sends what it saw on the
// returned channel. /metrics is not polled: scraping it while tens of thousands of
// requests are parked was seen to delay parkd's answers, which would skew lateness.
func (r *runner) pollPeaks(ctx context.Context) <-chan peaks {
	out := make(chan peaks, 1)
	go func() {
		var p peaks
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if r.cfg.pid > 0 {
				rss, _ := r.readRSSAll()
				p.add(rss, nil)
			}
			select {
			case <-ctx.Done():
				out <- p
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// wave is one batch of parked requests opened together, each on a
// connection of its own, in this process or split over child processes when
// one process cannot hold them all.
type wave struct {
	n        int
	prefix   string  // connIds are prefix + "p" + index
	timeouts []int64 // each request's timeout in ms; nil: all end at deadline
	deadline int64   // the stamp every request ends at, when timeouts is nil
	query    string  // appended to every park's query
	watch    *watchSpec
}

// waveOut is what a wave recorded, indexed as its requests.
type waveOut struct {
	sends    []sendRec
	outs     []outRec
	peak     peaks // RSS polled every 250 ms while the wave ran
	children int
	start    time.Time
}

// runWave opens w's requests, calls during with what is known once every
// one was written (or failed to be), and returns once every answer has
// arrived, failed, or ctx ended.
func (r *runner) runWave(ctx context.Context, w wave, during func(wo *waveOut)) waveOut {
	cfg := &r.cfg
	counts, err := splitCounts(w.n, cfg.perProcessCap, r.nofile)
	if err != nil || len(counts) > 0 && r.exe == "" {
		// Not reached: runPhases split the largest wave, and a smaller one
		// needs no more processes than it.
		counts = nil
	}
	wo := waveOut{children: len(counts)}
	if len(counts) == 0 {
		counts = []int{w.n}
	}
	maxDur := cfg.maxDuration
	if dl, ok := ctx.Deadline(); ok {
		maxDur = time.Until(dl)
	}
	specs := make([]workerSpec, 0, len(counts))
	first := 0
	for _, c := range counts {
		s := workerSpec{
			Dial: r.tgt.dial, Host: r.tgt.host, Base: r.tgt.base, Prefix: w.prefix,
			First: first, Count: c, DeadlineStamp: w.deadline,
			Sources:         sourceIPs(cfg.sources, r.tgt.ipv6),
			DialConcurrency: max(1, cfg.dialConcurrency*c/w.n),
			DialTimeout:     cfg.dialTimeout, ReadSlack: readSlack, MaxDuration: maxDur,
			Query: w.query, Watch: w.watch, Spread: r.spread,
		}
		if cfg.parkRate > 0 {
			s.Rate = cfg.parkRate * float64(c) / float64(w.n)
		}
		if w.timeouts != nil {
			s.TimeoutsMs = w.timeouts[first : first+c]
		}
		specs = append(specs, s)
		first += c
	}

	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	peakCh := r.pollPeaks(pollCtx)
	wo.start = time.Now()
	readyCh, doneCh := make(chan readyMsg, len(specs)), make(chan doneMsg, len(specs))
	for _, s := range specs {
		if wo.children > 0 {
			startChild(ctx, r.exe, s, r.cfg.log, readyCh, doneCh)
		} else {
			startLocal(ctx, s, r.clk, readyCh, doneCh)
		}
	}
	wo.sends = make([]sendRec, w.n)
	for range specs {
		m := <-readyCh
		copy(wo.sends[m.first:], m.sends)
	}
	during(&wo)
	wo.outs = make([]outRec, w.n)
	for range specs {
		m := <-doneCh
		copy(wo.outs[m.first:], m.outs)
		if m.err != nil && ctx.Err() == nil {
			r.logf("%v", m.err)
		}
	}
	stopPoll()
	wo.peak = <-peakCh
	return wo
}

// written counts the requests that were written.
func written(sends []sendRec) int {
	n := 0
	for _, s := range sends {
		if s.Sent > 0 {
			n++
		}
	}
	return n
}

// park runs the park phase, and the status and kill phases while requests are parked.
func (r *runner) park(ctx context.Context) peaks {
	cfg, res := &r.cfg, r.res
	n := cfg.n
	ss := r.openStreams(ctx, "park", []waveKey{{r.prefix + "p", n}})
	w := wave{n: n, prefix: r.prefix}
	r.plan(&w, cfg.timeout, cfg.spread)
	var atParked map[string]float64
	var kills []killRec
	wo := r.runWave(ctx, w, func(wo *waveOut) {
		sends := wo.sends
		res.ParkWritten = written(sends)
		res.ParkWriteS = ptr(round3(time.Since(wo.start).Seconds()))
		r.logf("park: %d of %d written in %.2fs over %d process(es)", res.ParkWritten, n, *res.ParkWriteS, max(1, wo.children))
		if ctx.Err() == nil {
			res.ParkListed = r.confirmParked(ctx, r.prefix, sends, 0)
			if cfg.pid > 0 {
				res.RSSParkedBytes = r.rss()
			}
			if res.MetricsAvailable {
				atParked, _ = scrapeMetrics(ctx, r.tgt, cfg.dialTimeout)
			}
		}
		if cfg.phases.status && ctx.Err() == nil {
			r.status(ctx)
		}
		if cfg.phases.kill && ctx.Err() == nil {
			kills = r.kill(ctx, sends)
		}
	})
	r.keepStreams(ss.finish(ctx, wo.start, [][]int8{expectFrom(wo.sends, func(i int) bool {
		return wo.outs[i].Kind == "ok" || wo.outs[i].Kind == "killed"
	})}))
	res.ParkN, res.ParkSameDeadline = n, cfg.sameDeadline
	res.Children = max(res.Children, wo.children)
	peak := wo.peak
	peak.add(0, atParked)
	if res.RSSParkedBytes != nil {
		peak.add(*res.RSSParkedBytes, nil)
	}
	r.tally(wo.sends, wo.outs, kills, peak)
	if cfg.samplesOut != "" {
		if err := r.writeSamples(cfg.samplesOut, r.clk.at(wo.start), wo.sends, wo.outs, kills); err != nil {
			r.logf("-samples-out: %v", err)
		}
	}
	r.logf("park: done after %.2fs: ok %d, killed %d, errors %d", time.Since(wo.start).Seconds(), res.ParkOK, res.ParkKilled, res.ParkErrorTotal)
	return peak
}

// confirmParked waits, at most parkSettle, until serverStatus lists every request
// whose connId starts with prefix + "p" and that should still be parked (for
// extra past its timeout: a dripping body's time), and returns how many it
// listed (nil if serverStatus never answered).
func (r *runner) confirmParked(ctx context.Context, prefix string, sends []sendRec, extra time.Duration) *int {
	kc := newKAConn(r.tgt, "", r.cfg.dialTimeout)
	defer kc.close()
	until := time.Now().Add(r.cfg.parkSettle)
	var listed *int
	for {
		now := r.clk.now()
		expect := 0
		for _, s := range sends {
			if s.Sent > 0 && s.Sent+s.TimeoutMs*int64(time.Millisecond)+int64(extra) > now {
				expect++
			}
		}
		st, _, kind := r.fetchStatus(ctx, kc, prefix, false)
		if kind == "" {
			listed = ptr(st.run)
			if st.run >= expect {
				return listed
			}
		}
		if !time.Now().Before(until) || !sleepCtx(ctx, 100*time.Millisecond) {
			return listed
		}
	}
}

// statusAnswer counts the entries of one serverStatus answer; listed holds the
// indices of this run's parked requests when asked for.
type statusAnswer struct {
	entries, run int
	listed       []int
}

// fetchStatus times one GET /api/serverStatus; kind is "" on success. The
// entries counted as the run's are those whose connId starts with prefix + "p".
func (r *runner) fetchStatus(ctx context.Context, kc *kaConn, prefix string, wantListed bool) (statusAnswer, time.Duration, string) {
	ex, err := kc.do(ctx, appendRequest(nil, "GET", r.tgt, "/api/serverStatus", nil, false), 256<<20)
	if err != nil {
		return statusAnswer{}, 0, errKind(ctx, err)
	}
	if ex.resp.status != 200 {
		return statusAnswer{}, 0, "status_" + strconv.Itoa(ex.resp.status)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(ex.resp.body, &m); err != nil || m == nil {
		return statusAnswer{}, 0, "bad_body"
	}
	st := statusAnswer{entries: len(m)}
	for k := range m {
		if rest, ok := strings.CutPrefix(k, prefix+"p"); ok {
			st.run++
			if i, err := strconv.Atoi(rest); err == nil && wantListed {
				st.listed = append(st.listed, i)
			}
		}
	}
	return st, ex.done.Sub(ex.sent), ""
}

// status times statusSamples serverStatus calls on one keep-alive connection.
func (r *runner) status(ctx context.Context) {
	res := r.res
	kc := newKAConn(r.tgt, "", r.cfg.dialTimeout)
	defer kc.close()
	var lat []float64
	for range r.cfg.statusSamples {
		if ctx.Err() != nil {
			break
		}
		st, d, kind := r.fetchStatus(ctx, kc, r.prefix, false)
		res.StatusSamples++
		if kind != "" {
			res.StatusErrors[kind]++
			continue
		}
		lat = append(lat, nsToMs(int64(d)))
		res.StatusEntries, res.StatusRunEntries = ptr(st.entries), ptr(st.run)
	}
	res.StatusOK = len(lat)
	d := summarize(lat)
	res.StatusP50Ms, res.StatusP99Ms, res.StatusMaxMs = d.p50, d.p99, d.max
}

// killRec is one kill sent: which request, when, and what went wrong if anything.
type killRec struct {
	idx   int
	wrote int64 // stamp as the kill request was written; 0 if it failed
	kind  string
}

// kill kills up to kills parked requests, picked at random among those with at
// least killMinRemaining left, one after another on one keep-alive connection.
// Candidates are the ones serverStatus lists, since a written request may have
// been refused (503 when the server is full); without that list, all written ones.
func (r *runner) kill(ctx context.Context, sends []sendRec) []killRec {
	res := r.res
	res.KillsRequested = r.cfg.kills
	kc := newKAConn(r.tgt, "", r.cfg.dialTimeout)
	defer kc.close()
	st, _, kind := r.fetchStatus(ctx, kc, r.prefix, true)
	var cands []int
	if kind == "" {
		for _, i := range st.listed {
			if i >= 0 && i < len(sends) && sends[i].Sent > 0 {
				cands = append(cands, i)
			}
		}
	} else {
		for i, s := range sends {
			if s.Sent > 0 {
				cands = append(cands, i)
			}
		}
	}
	slices.Sort(cands) // map order is random; sort so that a -seed run repeats
	r.rng.Shuffle(len(cands), func(a, b int) { cands[a], cands[b] = cands[b], cands[a] })
	var kills []killRec
	for _, i := range cands {
		if len(kills) == r.cfg.kills || ctx.Err() != nil {
			break
		}
		s := sends[i]
		if s.Sent+s.TimeoutMs*int64(time.Millisecond)-r.clk.now() < int64(r.cfg.killMinRemaining) {
			continue
		}
		id, _ := json.Marshal(parkID(r.prefix, i))
		kills = append(kills, r.sendKill(ctx, kc, i, append(append([]byte(`{"connId":`), id...), '}')))
	}
	res.KillsAttempted = len(kills)
	return kills
}

// sendKill sends PUT /api/kill with body for request i on kc and checks
// that it answers 200 {"status":"ok"}.
func (r *runner) sendKill(ctx context.Context, kc *kaConn, i int, body []byte) killRec {
	k := killRec{idx: i}
	ex, err := kc.do(ctx, appendRequest(nil, "PUT", r.tgt, "/api/kill", body, false), 64<<10)
	switch {
	case err != nil:
		k.kind = "kill_" + errKind(ctx, err)
	case ex.resp.status != 200:
		k.kind = "kill_status_" + strconv.Itoa(ex.resp.status)
	default:
		if st, ok := bodyStatus(ex.resp.body); !ok || st != "ok" {
			k.kind = "kill_bad_body"
		}
	}
	if err == nil {
		k.wrote = r.clk.at(ex.sent)
	}
	return k
}

// tally turns the records of the park phase into figures.
func (r *runner) tally(sends []sendRec, outs []outRec, kills []killRec, peak peaks) {
	res := r.res
	killed := make([]bool, len(outs))
	var killLat []float64
	for _, k := range kills {
		killed[k.idx] = true
		o := outs[k.idx]
		switch {
		case k.kind != "":
			res.KillErrors[k.kind]++
		case o.Kind == "killed":
			res.KillsOK++
			killLat = append(killLat, nsToMs(o.Done-k.wrote))
		default:
			res.KillErrors["parked_answered_"+o.Kind]++
		}
	}
	d := summarize(killLat)
	res.KillP50Ms, res.KillP99Ms, res.KillMaxMs = d.p50, d.p99, d.max
	if len(r.spread) > 1 {
		// Kills go to -url; a request parked elsewhere is killed across instances.
		var onOwner, fromOther []float64
		own := r.cfg.spreadIndex()
		for _, k := range kills {
			if k.kind != "" || outs[k.idx].Kind != "killed" {
				continue
			}
			lat := nsToMs(outs[k.idx].Done - k.wrote)
			if k.idx%len(r.spread) == own {
				onOwner = append(onOwner, lat)
			} else {
				fromOther = append(fromOther, lat)
			}
		}
		o, f := summarize(onOwner), summarize(fromOther)
		res.KillOwnerN, res.KillOwnerP50Ms, res.KillOwnerP99Ms, res.KillOwnerMaxMs = o.n, o.p50, o.p99, o.max
		res.KillOtherN, res.KillOtherP50Ms, res.KillOtherP99Ms, res.KillOtherMaxMs = f.n, f.p50, f.p99, f.max
	}

	var late []float64
	for i, o := range outs {
		switch {
		case o.Kind == "ok":
			res.ParkOK++
			if !killed[i] {
				late = append(late, nsToMs(o.Done-sends[i].Sent-sends[i].TimeoutMs*int64(time.Millisecond)))
			}
		case o.Kind == "killed" && killed[i]:
			res.ParkKilled++
		case o.Kind == "killed":
			res.ParkErrors["killed_unasked"]++
		case o.Kind == "":
			res.ParkErrors["unknown"]++
		default:
			res.ParkErrors[o.Kind]++
		}
	}
	for _, c := range res.ParkErrors {
		res.ParkErrorTotal += c
	}
	d = summarize(late)
	res.LatenessSamples = d.n
	res.LatenessP50Ms, res.LatenessP99Ms, res.LatenessMaxMs, res.LatenessMinMs = d.p50, d.p99, d.max, d.min

	if r.cfg.pid > 0 {
		if peak.rss > 0 {
			res.RSSPeakBytes = ptr(peak.rss)
		}
		if res.RSSBeforeBytes != nil && res.RSSParkedBytes != nil {
			g := *res.RSSParkedBytes - *res.RSSBeforeBytes
			res.RSSGrowthBytes = &g
			res.RSSPerRequestBytes = ptr(round3(float64(g) / float64(r.cfg.n)))
			res.RSSPerRequestKB = ptr(round3(float64(g) / float64(r.cfg.n) / 1024))
			if res.ParkListed != nil && *res.ParkListed > 0 {
				res.RSSPerListedBytes = ptr(round3(float64(g) / float64(*res.ParkListed)))
			}
		}
	}
}

// tpOut is what one throughput connection measured.
type tpOut struct {
	lat          []float64
	requests, ok int
	errs         map[string]int
}

// throughput runs timeout=0 requests in closed loop, one in flight per connection.
func (r *runner) throughput(ctx context.Context) {
	cfg, res := &r.cfg, r.res
	conns := cfg.throughputConns
	res.TpConns = conns
	sources := sourceIPs(cfg.sources, r.tgt.ipv6)
	start := time.Now()
	end := start.Add(cfg.throughputDuration)
	outs := make([]tpOut, conns)
	var wg sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[c] = r.tpLoop(ctx, c, sources[c%len(sources)], end)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	var lat []float64
	for _, o := range outs {
		lat = append(lat, o.lat...)
		res.TpRequests += o.requests
		res.TpOK += o.ok
		for k, v := range o.errs {
			res.TpErrors[k] += v
		}
	}
	res.TpDurationS = ptr(round3(elapsed))
	res.TpRPS = ptr(round3(float64(res.TpOK) / elapsed))
	d := summarize(lat)
	res.TpP50Ms, res.TpP99Ms, res.TpMaxMs = d.p50, d.p99, d.max
	r.logf("throughput: %d ok of %d in %.2fs", res.TpOK, res.TpRequests, elapsed)
}

func (r *runner) tpLoop(ctx context.Context, c int, src string, end time.Time) tpOut {
	o := tpOut{errs: map[string]int{}}
	kc := newKAConn(r.tgt, src, r.cfg.dialTimeout)
	defer kc.close()
	var buf []byte
	for seq := 0; time.Now().Before(end) && ctx.Err() == nil; seq++ {
		id := r.prefix + "t" + strconv.Itoa(c) + "-" + strconv.Itoa(seq)
		buf = appendRequest(buf[:0], "GET", r.tgt, "/api/request?connId="+id+"&timeout=0", nil, false)
		ex, err := kc.do(ctx, buf, 64<<10)
		if err != nil {
			kind := errKind(ctx, err)
			if kind == "aborted" {
				break
			}
			o.requests++
			o.errs[kind]++
			if strings.HasPrefix(kind, "dial_") {
				sleepCtx(ctx, 10*time.Millisecond) // do not spin on a refusing server
			}
			continue
		}
		o.requests++
		if k := parkedKind(ex.resp); k != "ok" {
			o.errs[k]++
			continue
		}
		o.ok++
		o.lat = append(o.lat, nsToMs(int64(ex.done.Sub(ex.sent))))
	}
	return o
}

// writeSamples writes the raw records of the park phase as CSV, so lateness can be
// plotted against send time or outcome.
func (r *runner) writeSamples(path string, origin int64, sends []sendRec, outs []outRec, kills []killRec) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	killAt := make(map[int]int64, len(kills))
	for _, k := range kills {
		killAt[k.idx] = k.wrote
	}
	w := csv.NewWriter(f)
	rel := func(stamp int64) string {
		if stamp == 0 {
			return ""
		}
		return strconv.FormatFloat(nsToMs(stamp-origin), 'f', 3, 64)
	}
	_ = w.Write([]string{"index", "conn_id", "timeout_ms", "sent_ms", "done_ms", "lateness_ms", "outcome", "kill_sent_ms"})
	for i, s := range sends {
		o := outs[i]
		late := ""
		if o.Kind == "ok" {
			late = strconv.FormatFloat(nsToMs(o.Done-s.Sent-s.TimeoutMs*int64(time.Millisecond)), 'f', 3, 64)
		}
		k, killed := killAt[i]
		ks := ""
		if killed {
			ks = rel(k)
			if ks == "" {
				ks = "failed"
			}
		}
		_ = w.Write([]string{strconv.Itoa(i), parkID(r.prefix, i), strconv.FormatInt(s.TimeoutMs, 10), rel(s.Sent), rel(o.Done), late, o.Kind, ks})
	}
	w.Flush()
	return errors.Join(w.Error(), f.Close())
}
