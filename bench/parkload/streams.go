package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The event stream's side of a phase that parks waves of requests (park,
// drip, fault, killthen; -subscribers, -stuck-subscriber): subscribers to
// GET /api/events opened before the phase, each read on a goroutine of its
// own, every frame checked (the snapshot first, ids that increase, each
// parked request's parked and finished events once, none lost) and timed
// (arrival − its cause: startedAt for parked, endedAt for finished); one
// optional subscriber that reads its snapshot and then nothing, which the
// server must drop; and the server's CPU time over the phase, so that two
// runs, with and without subscribers, give the CPU per delivered event.

// Metrics of the event stream read from /metrics.
const (
	metricSubscribers = "parkd_event_subscribers"
	metricDropped     = "parkd_event_subscribers_dropped_total"
	metricPublished   = "parkd_events_published_total"
)

// stuckReadBuffer is the stuck subscriber's socket receive buffer: small,
// so that the server's writes stall after a few frames.
const stuckReadBuffer = 4096

// dropPollEvery is how often /metrics is read, with -stuck-subscriber, to
// see when the server drops the stuck stream.
const dropPollEvery = 200 * time.Millisecond

// streamFigures is what the subscribers of one phase saw, and the
// server's CPU time over the phase.
type streamFigures struct {
	Phase string   `json:"phase"`
	CPUS  *float64 `json:"cpu_s"`  // server user+system CPU from before the phase's first request until its subscribers had every event (ticks of 10 ms)
	WallS *float64 `json:"wall_s"` // that window's length

	Subscribers      int            `json:"subscribers"`
	Opened           int            `json:"opened"`            // streams that began right: 200, text/event-stream, the snapshot first
	ExpectedParked   int            `json:"expected_parked"`   // parked events each subscriber must see
	ExpectedFinished int            `json:"expected_finished"` // finished events
	UnknownRequests  int            `json:"unknown_requests"`  // requests that failed client-side: their events are not checked
	ParkedMin        *int           `json:"parked_min"`        // the run's parked events a subscriber saw, fewest
	ParkedMax        *int           `json:"parked_max"`
	FinishedMin      *int           `json:"finished_min"`
	FinishedMax      *int           `json:"finished_max"`
	Delivered        int            `json:"delivered"`     // the run's events, over all subscribers
	Foreign          int            `json:"foreign"`       // events of other requests, over all subscribers
	LostParked       int            `json:"lost_parked"`   // (subscriber, request) pairs whose parked event never came
	LostFinished     int            `json:"lost_finished"` // and finished
	Unexpected       int            `json:"unexpected"`    // events a request must not have (a parked event of a zero timeout)
	Problems         int            `json:"problems"`      // frames that broke the contract, by kind in errors
	Errors           map[string]int `json:"errors"`        // problems and failed or ended streams, by kind
	Examples         []string       `json:"examples"`      // up to 10
	EndedEarly       int            `json:"ended_early"`   // streams the server ended before the tool closed them
	NoLoss           *bool          `json:"no_loss"`       // every subscriber got every expected event, once
	CaughtUpS        *float64       `json:"caught_up_s"`   // after the phase's last answer, until every subscriber had every expected event
	KeepAlives       int            `json:"keep_alives"`   // comment lines, over all subscribers
	RetryMs          *int64         `json:"retry_ms"`      // the retry: the streams suggested
	LateSamples      int            `json:"lateness_samples"`
	LateP50Ms        *float64       `json:"lateness_p50_ms"` // arrival − cause, all subscribers, ±1 ms (causes are written in ms)
	LateP99Ms        *float64       `json:"lateness_p99_ms"`
	LateMaxMs        *float64       `json:"lateness_max_ms"`
	LateMinMs        *float64       `json:"lateness_min_ms"`
	ParkedP99Ms      *float64       `json:"parked_p99_ms"`
	FinishedP99Ms    *float64       `json:"finished_p99_ms"`

	SubscribersBefore *float64 `json:"subscribers_before"` // parkd_event_subscribers before the streams opened
	SubscribersAfter  *float64 `json:"subscribers_after"`  // and once back (or after gauge_wait)
	GaugeBackS        *float64 `json:"gauge_back_s"`       // after the tool closed its streams, until the gauge was back
	DroppedBefore     *float64 `json:"dropped_before"`     // parkd_event_subscribers_dropped_total
	DroppedAfter      *float64 `json:"dropped_after"`
	PublishedBefore   *float64 `json:"published_before"` // parkd_events_published_total
	PublishedAfter    *float64 `json:"published_after"`
	GoroutinesBefore  *float64 `json:"goroutines_before"`
	GoroutinesAfter   *float64 `json:"goroutines_after"`

	Stuck   *stuckFigures `json:"stuck"`
	Verdict string        `json:"verdict"` // PASS or FAIL with subscribers or a stuck one; "" with neither
}

// stuckFigures is what became of the subscriber that read its snapshot
// and then nothing.
type stuckFigures struct {
	Opened  bool   `json:"opened"`
	Dropped bool   `json:"dropped"` // the server closed it: draining what it had sent ended in EOF or an RST
	End     string `json:"end"`     // eof, reset, still_open (2 s without a byte, no EOF), or an error kind
	// From the phase's first request written until /metrics first counted
	// a dropped subscriber (read every 200 ms), and until the last reading
	// that did not: the drop came between.
	DropAfterS      *float64 `json:"drop_after_s"`
	DropAfterLowS   *float64 `json:"drop_after_low_s"`
	PublishedAtDrop *float64 `json:"published_at_drop"` // events published since the streams opened, at that reading
	Received        int      `json:"received"`          // parked and finished events it had been sent, read when draining
	LagAtDrop       *float64 `json:"lag_at_drop"`       // published_at_drop − received: how far behind it was, at most
	DrainedBytes    int64    `json:"drained_bytes"`
	DrainS          *float64 `json:"drain_s"` // how long the drain took, to its end
	// The server's side of the connection in the kernel's socket table
	// before the drain (Linux): ESTABLISHED (still open), FIN_WAIT1 (closed,
	// with unsent bytes queued), ..., or "gone"; "" when it cannot be read.
	ServerState  string `json:"server_state"`
	ServerUnsent *int64 `json:"server_unsent"` // bytes it had queued and not sent
	Verdict      string `json:"verdict"`
}

// streamSession is the event-stream side of one phase in progress.
type streamSession struct {
	r      *runner
	fig    *streamFigures
	subs   []*subscriber
	stuck  *subscriber
	wg     sync.WaitGroup
	cpu0   *float64
	wall0  time.Time
	before map[string]float64
	poll   *dropPoll
}

// streamMetrics are the /metrics values a session reads.
func streamMetrics() []string {
	return []string{metricSubscribers, metricDropped, metricPublished, metricGoroutines}
}

// openStreams opens the phase's subscribers (waves: the requests it will
// park) and reads the server's CPU time; finish ends it. With neither
// subscribers nor -pid there is nothing to do: nil.
func (r *runner) openStreams(ctx context.Context, phase string, waves []waveKey) *streamSession {
	cfg := &r.cfg
	if cfg.subscribers == 0 && !cfg.stuckSubscriber && cfg.pid == 0 {
		return nil
	}
	ss := &streamSession{r: r, fig: &streamFigures{Phase: phase, Subscribers: cfg.subscribers, Errors: map[string]int{}, Examples: []string{}}}
	if cfg.subscribers > 0 || cfg.stuckSubscriber {
		ss.before, _ = scrapeValues(ctx, r.tgt, cfg.dialTimeout, streamMetrics()...)
		for range cfg.subscribers {
			s := newSubscriber(waves)
			if err := s.open(ctx, r.tgt, cfg.dialTimeout, 0, r.clk); err != nil {
				ss.problem(streamErrKind(ctx, err), "opening a subscriber: %v", err)
				continue
			}
			ss.fig.Opened++
			ss.subs = append(ss.subs, s)
		}
		for _, s := range ss.subs {
			ss.wg.Add(1)
			go func() {
				defer ss.wg.Done()
				s.run(ctx)
			}()
		}
		if cfg.stuckSubscriber {
			ss.fig.Stuck = &stuckFigures{}
			s := newSubscriber(nil)
			if err := s.open(ctx, r.tgt, cfg.dialTimeout, stuckReadBuffer, r.clk); err != nil {
				ss.problem("stuck_"+streamErrKind(ctx, err), "opening the stuck subscriber: %v", err)
			} else {
				ss.stuck, ss.fig.Stuck.Opened = s, true
				if v, ok := ss.before[metricDropped]; ok {
					ss.poll = r.pollDrop(ctx, v)
				}
			}
		}
		r.logf("%s: %d of %d event-stream subscribers open, stuck one open: %v", phase, ss.fig.Opened, cfg.subscribers, ss.stuck != nil)
	}
	if cfg.pid > 0 {
		ss.cpu0 = r.cpu()
	}
	ss.wall0 = time.Now()
	return ss
}

// problem counts a failure of the session itself.
func (ss *streamSession) problem(kind, format string, args ...any) {
	ss.fig.Errors[kind]++
	if len(ss.fig.Examples) < 10 {
		ss.fig.Examples = append(ss.fig.Examples, kind+": "+fmt.Sprintf(format, args...))
	}
}

// cpu reads the server's CPU time; nil when it cannot be read.
func (r *runner) cpu() *float64 {
	v, err := readCPU(r.cfg.pid)
	if err != nil {
		r.logf("read CPU time of pid %d: %v", r.cfg.pid, err)
		return nil
	}
	return &v
}

// finish ends the session once the phase has had every answer: it waits
// (at most -stream-grace) for the subscribers to have every event
// expected — expect[w][i] for request i of wave w: seenParked and
// seenFinished bits, or expectUnknown — reads the CPU time, closes the
// streams, sees to the stuck one, and returns the figures.
func (ss *streamSession) finish(ctx context.Context, waveStart time.Time, expect [][]int8) *streamFigures {
	if ss == nil {
		return nil
	}
	r, fig, cfg := ss.r, ss.fig, &ss.r.cfg
	for _, ex := range expect {
		for _, e := range ex {
			switch {
			case e == expectUnknown:
				fig.UnknownRequests++
			default:
				fig.ExpectedParked += int(e & seenParked)
				fig.ExpectedFinished += int(e&seenFinished) >> evFinished
			}
		}
	}
	want := int64(fig.ExpectedParked + fig.ExpectedFinished)
	if len(ss.subs) > 0 {
		end := time.Now()
		for until := end.Add(cfg.streamGrace); ; {
			all := true
			for _, s := range ss.subs {
				all = all && (s.done.Load() || s.got.Load() >= want)
			}
			if all {
				fig.CaughtUpS = ptr(round3(time.Since(end).Seconds()))
			}
			if all || !time.Now().Before(until) || !sleepCtx(ctx, 10*time.Millisecond) {
				break
			}
		}
	}
	if ss.cpu0 != nil {
		if c := r.cpu(); c != nil {
			fig.CPUS = ptr(round3(*c - *ss.cpu0))
		}
		fig.WallS = ptr(round3(time.Since(ss.wall0).Seconds()))
	}
	if cfg.subscribers == 0 && ss.fig.Stuck == nil {
		return fig
	}
	for _, s := range ss.subs {
		s.close()
	}
	ss.wg.Wait()
	ss.tally(expect)
	if ss.fig.Stuck != nil {
		ss.finishStuck(ctx, waveStart)
	}
	ss.after(ctx)
	ss.judge()
	return fig
}

// tally turns what the subscribers saw into figures.
func (ss *streamSession) tally(expect [][]int8) {
	fig := ss.fig
	var byKind [2][]float64
	for _, s := range ss.subs {
		for k, n := range s.errs {
			fig.Errors[k] += n
			fig.Problems += n
		}
		for _, ex := range s.examples {
			if len(fig.Examples) < 10 {
				fig.Examples = append(fig.Examples, ex)
			}
		}
		if s.ended != "" {
			fig.EndedEarly++
			ss.problem("ended_"+s.ended, "a subscriber's stream ended after %d frames", s.frames)
		}
		for w, ex := range expect {
			if w >= len(s.waves) {
				break
			}
			seen := s.waves[w].seen
			for i, e := range ex {
				if e == expectUnknown || i >= len(seen) {
					continue
				}
				lost, extra := uint8(e)&^seen[i], seen[i]&^uint8(e)
				fig.LostParked += int(lost & seenParked)
				fig.LostFinished += int(lost&seenFinished) >> evFinished
				fig.Unexpected += int(extra&seenParked) + int(extra&seenFinished)>>evFinished
			}
		}
		fig.ParkedMin, fig.ParkedMax = minMax(fig.ParkedMin, fig.ParkedMax, s.runSeen[evParked])
		fig.FinishedMin, fig.FinishedMax = minMax(fig.FinishedMin, fig.FinishedMax, s.runSeen[evFinished])
		fig.Delivered += s.runSeen[evParked] + s.runSeen[evFinished]
		fig.Foreign += s.foreign
		fig.KeepAlives += s.c.p.comments
		if s.c.p.retry >= 0 {
			fig.RetryMs = ptr(s.c.p.retry)
		}
		for k := range byKind {
			byKind[k] = append(byKind[k], s.late[k]...)
		}
	}
	d := summarize(append(byKind[evParked], byKind[evFinished]...))
	fig.LateSamples = d.n
	fig.LateP50Ms, fig.LateP99Ms, fig.LateMaxMs, fig.LateMinMs = d.p50, d.p99, d.max, d.min
	fig.ParkedP99Ms = summarize(byKind[evParked]).p99
	fig.FinishedP99Ms = summarize(byKind[evFinished]).p99
	if fig.LostParked > 0 || fig.LostFinished > 0 {
		ss.problem("lost", "%d parked and %d finished events never reached their subscriber", fig.LostParked, fig.LostFinished)
	}
	if fig.Unexpected > 0 {
		ss.problem("unexpected", "%d events of requests that must not have them (a parked event of a zero timeout)", fig.Unexpected)
	}
	dup := 0
	for k, n := range fig.Errors {
		if strings.HasPrefix(k, "duplicate_") {
			dup += n
		}
	}
	fig.NoLoss = ptr(len(ss.subs) == fig.Subscribers && fig.LostParked == 0 && fig.LostFinished == 0 && dup == 0 && fig.EndedEarly == 0)
}

func minMax(lo, hi *int, v int) (*int, *int) {
	if lo == nil || v < *lo {
		lo = ptr(v)
	}
	if hi == nil || v > *hi {
		hi = ptr(v)
	}
	return lo, hi
}

// Draining the stuck stream. Its 4 KB receive buffer cannot take one of
// loopback's 32–64 KB segments, so the kernel dropped them and the server
// retransmits with a backoff of seconds: the drain first makes the buffer
// large, then waits up to -drain-silence for each next byte, a minute in all.
const (
	drainBuffer = 4 << 20
	drainMost   = time.Minute
)

// finishStuck waits (at most -stuck-wait) for the server to drop the
// stuck stream, looks up the server's side of its connection in the
// kernel's socket table, then drains it: a dropped stream ends in EOF once
// what the server had sent is read.
func (ss *streamSession) finishStuck(ctx context.Context, waveStart time.Time) {
	r, st := ss.r, ss.fig.Stuck
	if ss.poll != nil {
		ss.poll.wait(ctx, r.cfg.stuckWait)
		at, low, published, seen := ss.poll.stop()
		if seen {
			st.DropAfterS = ptr(round3(nsToMs(at-r.clk.at(waveStart)) / 1e3))
			if low > 0 {
				st.DropAfterLowS = ptr(round3(max(0, nsToMs(low-r.clk.at(waveStart))/1e3)))
			}
			if v, ok := ss.before[metricPublished]; ok {
				st.PublishedAtDrop = ptr(published - v)
			}
		}
	}
	s := ss.stuck
	if s == nil {
		st.Verdict = soakFail
		return
	}
	if ss.poll == nil { // no /metrics to tell when: give the server its time
		sleepCtx(ctx, r.cfg.stuckWait)
	}
	conn := s.c.conn
	defer conn.Close()
	if sock, err := peerSocket(conn); err == nil {
		st.ServerState, st.ServerUnsent = sock.state, ptr(sock.txQueue)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(drainBuffer)
	}
	s.c.buf = make([]byte, 1<<20)
	start := time.Now()
	for until := start.Add(drainMost); ; {
		_ = conn.SetReadDeadline(time.Now().Add(r.cfg.drainSilence))
		err := s.c.readSome()
		if err == nil && s.c.over {
			err = io.EOF // the last chunk: the server ended the stream
		}
		if err == nil && time.Now().Before(until) {
			continue
		}
		switch {
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
			st.End = "still_open"
		case errors.Is(err, io.EOF):
			st.End, st.Dropped = "eof", true
		case errors.Is(err, syscall.ECONNRESET):
			st.End, st.Dropped = "reset", true
		default:
			st.End = streamErrKind(ctx, err)
		}
		break
	}
	st.DrainS = ptr(round3(time.Since(start).Seconds()))
	st.Received, st.DrainedBytes = s.events, s.c.bytes
	if st.PublishedAtDrop != nil {
		st.LagAtDrop = ptr(*st.PublishedAtDrop - float64(st.Received))
	}
	for k, n := range s.errs {
		ss.problem("stuck_"+k, "%d in the stuck stream's frames", n)
	}
	st.Verdict = verdict(ctx, st.Dropped)
	r.logf("%s: stuck subscriber: %s (server side %s, %s bytes unsent), dropped %s s after the first park, %d events received",
		ss.fig.Phase, st.End, st.ServerState, i64num(st.ServerUnsent), fnum(st.DropAfterS), st.Received)
}

// after reads the stream metrics once the gauge is back to its reading
// before the streams opened, or after -gauge-wait.
func (ss *streamSession) after(ctx context.Context) {
	r, fig := ss.r, ss.fig
	if ss.before == nil {
		return
	}
	start := time.Now()
	want, hasWant := ss.before[metricSubscribers]
	var vals map[string]float64
	for until := start.Add(r.cfg.gaugeWait); ; {
		vals, _ = scrapeValues(ctx, r.tgt, r.cfg.dialTimeout, streamMetrics()...)
		if v, ok := vals[metricSubscribers]; hasWant && ok && v <= want {
			fig.GaugeBackS = ptr(round3(time.Since(start).Seconds()))
			break
		}
		if !hasWant || !time.Now().Before(until) || !sleepCtx(ctx, 100*time.Millisecond) {
			break
		}
	}
	fig.SubscribersBefore, fig.SubscribersAfter = metricPtr(ss.before, metricSubscribers), metricPtr(vals, metricSubscribers)
	fig.DroppedBefore, fig.DroppedAfter = metricPtr(ss.before, metricDropped), metricPtr(vals, metricDropped)
	fig.PublishedBefore, fig.PublishedAfter = metricPtr(ss.before, metricPublished), metricPtr(vals, metricPublished)
	fig.GoroutinesBefore, fig.GoroutinesAfter = metricPtr(ss.before, metricGoroutines), metricPtr(vals, metricGoroutines)
	if fig.DroppedBefore != nil && fig.DroppedAfter != nil {
		want := 0.0
		if fig.Stuck != nil && fig.Stuck.Opened {
			want = 1
		}
		if d := *fig.DroppedAfter - *fig.DroppedBefore; d != want {
			ss.problem("dropped_count", "the server counted %v subscribers dropped, want %v", d, want)
		}
	}
	if fig.GaugeBackS == nil && hasWant {
		ss.problem("gauge_not_back", "%s read %s after %s, %v before", metricSubscribers, fnum(fig.SubscribersAfter), r.cfg.gaugeWait, want)
	}
}

// judge gives the session its verdict.
func (ss *streamSession) judge() {
	fig := ss.fig
	pass := fig.Opened == fig.Subscribers && len(fig.Errors) == 0 && (fig.NoLoss == nil || *fig.NoLoss)
	if fig.Stuck != nil {
		pass = pass && fig.Stuck.Verdict == soakPass
	}
	fig.Verdict = soakFail
	if pass {
		fig.Verdict = soakPass
	}
}

// dropPoll reads /metrics every dropPollEvery until the dropped counter
// passes its value before.
type dropPoll struct {
	mu        sync.Mutex
	at, low   int64 // stamps of the reading that first counted the drop, and of the last that did not
	published float64
	seen      bool
	cancel    context.CancelFunc
	done      chan struct{}
}

func (r *runner) pollDrop(ctx context.Context, before float64) *dropPoll {
	ctx, cancel := context.WithCancel(ctx)
	p := &dropPoll{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			vals, ok := scrapeValues(ctx, r.tgt, r.cfg.dialTimeout, metricDropped, metricPublished)
			now := r.clk.now()
			if v, has := vals[metricDropped]; ok && has {
				p.mu.Lock()
				if v > before {
					p.at, p.published, p.seen = now, vals[metricPublished], true
				} else {
					p.low = now
				}
				seen := p.seen
				p.mu.Unlock()
				if seen {
					return
				}
			}
			if !sleepCtx(ctx, dropPollEvery) {
				return
			}
		}
	}()
	return p
}

// wait waits until the drop was seen, at most d.
func (p *dropPoll) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// stop ends the polling and says what it saw.
func (p *dropPoll) stop() (at, low int64, published float64, seen bool) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at, p.low, p.published, p.seen
}

// scrapeValues reads the unlabelled samples of names from GET /metrics; ok
// is false when it cannot be read.
func scrapeValues(ctx context.Context, tgt target, dialTimeout time.Duration, names ...string) (map[string]float64, bool) {
	kc := newKAConn(tgt, "", dialTimeout)
	defer kc.close()
	ex, err := kc.do(ctx, appendRequest(nil, "GET", tgt, "/metrics", nil, true), 64<<20)
	if err != nil || ex.resp.status != 200 {
		return nil, false
	}
	return parseMetrics(ex.resp.body, names...), true
}

// readCPU is the user and system CPU time process pid has used, in
// seconds, from /proc/PID/stat.
func readCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// parseProcStat reads utime + stime, fields 14 and 15 of /proc/PID/stat;
// they are counted after the command, in parentheses, which may itself
// hold spaces and parentheses.
func parseProcStat(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command in /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3, the state: utime is f[11], stime f[12].
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/PID/stat: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// expectFrom is what a subscriber must see of each request of a wave:
// nothing known of one that parked reports false for, else its finished
// event, and its parked event when its timeout was not zero (a zero one
// is answered at once, never parked).
func expectFrom(sends []sendRec, parked func(i int) bool) []int8 {
	out := make([]int8, len(sends))
	for i, s := range sends {
		switch {
		case s.Sent == 0 || !parked(i):
			out[i] = expectUnknown
		case s.TimeoutMs > 0:
			out[i] = seenParked | seenFinished
		default:
			out[i] = seenFinished
		}
	}
	return out
}

// keepStreams adds a phase's stream figures to the result.
func (r *runner) keepStreams(fig *streamFigures) {
	if fig != nil {
		r.res.Streams = append(r.res.Streams, fig)
	}
}
