package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The churn soak: for a while, many clients each loop over random actions on a
// keep-alive connection of their own — park and wait, park and be killed by
// another client, kill, park and hang up, pipeline, poll — and every answer is
// checked against the contract: exactly one answer per request that was not
// abandoned, one 200 kill behind every 500 killed and the reverse, nothing lost,
// nothing left in serverStatus at the end, and (with -metrics) the server back
// to idle with its outcome counters agreeing with what the clients saw.

// Soak verdicts.
const (
	soakPass = "PASS"
	soakFail = "FAIL"
)

const (
	// soakAbandonGrace is how long after a hang-up serverStatus may still list
	// the request: the contract says one second; one more for a noisy machine.
	soakAbandonGrace = 2 * time.Second
	// soakGoroutineSlack and soakHeapSlack bound the server's growth over the soak.
	soakGoroutineSlack = 5
	soakHeapSlack      = 8 << 20
	// soakMaxBody bounds one answer; serverStatus of a few hundred ids is small.
	soakMaxBody = 16 << 20
)

// Park kinds, also the keys of soak_requests.
const (
	skPark      = "park"             // keep-alive park of 0–ParkMax
	skParkClose = "park_close"       // the same with Connection: close
	skTarget    = "park_kill_target" // long park published for other clients to kill
	skRace      = "park_kill_race"   // short park published about when it ends: kill races deadline
	skHangup    = "park_hangup"      // long park the client hangs up on
	skPipelined = "park_pipelined"   // park of 0 or 0.1 s inside a pipelined batch
)

// soakOptions are the soak's knobs. The flags set Duration, Clients and Settle;
// the rest are fixed for the command and shrunk by tests.
type soakOptions struct {
	Duration         time.Duration // clients start actions for this long
	Clients          int
	ParkMax          time.Duration // plain parks: uniform [0, ParkMax] in ms steps, 1 in 8 exactly 0
	LongMin, LongMax time.Duration // kill targets and hang-ups
	PublishMax       time.Duration // a kill target joins the pool after uniform [0, PublishMax]
	RaceMin, RaceMax time.Duration // timeouts of kill targets published near their deadline
	HangupMax        time.Duration // a hang-up comes after uniform [0, HangupMax]
	Slack            time.Duration // longest wait past a park's timeout for its answer
	Drain            time.Duration // after Duration, outstanding requests get this long
	EmptyWait        time.Duration // serverStatus must be {} within this once clients are done
	Settle           time.Duration // wait before the after-reading of /metrics
	IdleWait         time.Duration // poll /metrics this long for the goroutines to come back
	Metrics          bool
	DialTimeout      time.Duration
	Sources          []string // local addresses, round robin over clients; nil = any
	Seed             uint64
	Prefix           string // every connId of the run starts with it
	Log              io.Writer
}

// soakOptionsFor derives the command's soak from cfg.
func soakOptionsFor(cfg *Config, tgt target, seed uint64, prefix string) soakOptions {
	o := soakOptions{
		Duration: cfg.SoakDuration, Clients: cfg.SoakClients,
		ParkMax: 3 * time.Second, LongMin: 5 * time.Second, LongMax: 10 * time.Second,
		PublishMax: 200 * time.Millisecond, RaceMin: 200 * time.Millisecond, RaceMax: time.Second, HangupMax: 500 * time.Millisecond,
		Slack: 10 * time.Second, EmptyWait: 2 * time.Second, Settle: cfg.Settle, IdleWait: 15 * time.Second,
		Metrics: cfg.Metrics, DialTimeout: cfg.DialTimeout, Sources: sourceIPs(cfg.Sources, tgt.ipv6),
		Seed: seed, Prefix: prefix, Log: cfg.Log,
	}
	o.Drain = o.LongMax + o.Slack + 5*time.Second
	return o
}

// soak runs the soak phase of a Run, its length cut to fit -max-duration.
func (r *runner) soak(ctx context.Context) {
	o := soakOptionsFor(&r.cfg, r.tgt, r.res.Seed, r.prefix)
	if dl, ok := ctx.Deadline(); ok {
		reserve := o.Drain + o.EmptyWait + o.Settle + o.IdleWait + 5*time.Second
		if left := time.Until(dl) - reserve; left < o.Duration {
			o.Duration = max(left, time.Second)
			r.res.SoakNotes = append(r.res.SoakNotes, fmt.Sprintf("-max-duration leaves room for a %.1f s soak only", o.Duration.Seconds()))
		}
	}
	r.logf("soak: %d clients for %s", o.Clients, o.Duration)
	runSoak(ctx, r.tgt, o, r.res)
	r.logf("soak: %s after %d requests, %d violations", r.res.SoakVerdict, r.res.SoakRequestTotal, r.res.SoakViolationTotal)
}

// parkRec is what is known of one parked request of the soak.
type parkRec struct {
	kind         string
	timeoutMs    int64
	answer       string    // "" while outstanding; an answer class, or hungup, lost, unsent, aborted
	answers      int       // complete answers read for it
	endedAt      time.Time // its answer was read in full (answered requests only)
	hungUpAt     time.Time // the client hung up, or gave up on it and closed
	killsOK      int       // kills of it that answered 200
	killsUnknown int       // kills of it whose answer is unknown (failed or retried)
}

// soak is the state the clients share.
type soak struct {
	tgt    target
	o      soakOptions
	parent context.Context // the run's: its end aborts the soak, not a violation
	res    *Result

	mu       sync.Mutex // guards what follows and the soak fields of res
	parks    map[string]*parkRec
	pool     []string // kill targets; one leaves when a kill finds it gone, so kills race
	aborted  int
	examples map[string][]string
}

// runSoak is the soak's core: it fills the Soak fields of res, verdict included.
func runSoak(ctx context.Context, tgt target, o soakOptions, res *Result) {
	s := &soak{tgt: tgt, o: o, parent: ctx, res: res, parks: map[string]*parkRec{}, examples: res.SoakViolationExamples}
	res.SoakClients = o.Clients
	for _, c := range []string{"ok", "killed", "conflict_409", "busy_503", "other"} {
		res.SoakAnswers[c] += 0 // every class listed, seen or not
	}
	var before map[string]float64
	if o.Metrics {
		var ok bool
		if before, ok = scrapeSoakMetrics(ctx, tgt, o.DialTimeout); ok {
			res.SoakMetricsAvailable = true
		} else {
			res.SoakNotes = append(res.SoakNotes, "no /metrics: server idle and outcome checks skipped")
		}
	} else {
		res.SoakNotes = append(res.SoakNotes, "-metrics not set: server idle and outcome checks skipped")
	}

	start := time.Now()
	end := start.Add(o.Duration)
	clientCtx, cancelClients := context.WithCancel(ctx)
	defer cancelClients()
	var wg sync.WaitGroup
	for c := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.client(c).loop(clientCtx, end)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if sleepCtx(ctx, time.Until(end)) {
		s.logf("soak: actions over after %s; waiting for outstanding requests", o.Duration)
	}
	actionsEnd := time.Now()
	res.SoakDurationS = ptr(round3(actionsEnd.Sub(start).Seconds()))
	s.reap(clientCtx, done, actionsEnd.Add(o.Drain), cancelClients)
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
	if s.o.Log != nil {
		fmt.Fprintf(s.o.Log, "parkload: "+format+"\n", args...)
	}
}

// count adds one request of kind.
func (s *soak) count(kind string, n int) {
	s.mu.Lock()
	s.res.SoakRequests[kind] += n
	s.mu.Unlock()
}

// violate records a violation; s.mu must be held. At most 5 examples per kind.
func (s *soak) violate(kind, example string) {
	s.res.SoakViolations[kind]++
	if len(s.examples[kind]) < 5 {
		s.examples[kind] = append(s.examples[kind], example)
	}
}

func (s *soak) violation(kind, example string) {
	s.mu.Lock()
	s.violate(kind, example)
	s.mu.Unlock()
}

// register notes a park before it is written, so that a poll seeing it knows it.
func (s *soak) register(id, kind string, timeoutMs int64) {
	s.mu.Lock()
	s.parks[id] = &parkRec{kind: kind, timeoutMs: timeoutMs}
	s.res.SoakRequests[kind]++
	s.mu.Unlock()
}

// soakClass is the class of a park's answer, also the keys of soak_answers.
func soakClass(r response) string {
	switch parkedKind(r) {
	case "ok":
		return "ok"
	case "killed":
		return "killed"
	}
	switch r.status {
	case 409:
		return "conflict_409"
	case 503:
		return "busy_503"
	}
	return "other"
}

// answered records a park's complete answer, read at got for a request written at sent.
func (s *soak) answered(id string, resp response, sent, got time.Time) string {
	class := soakClass(resp)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	rec.answers++
	if rec.answers > 1 {
		s.violate("duplicate_answer", fmt.Sprintf("%s: answer %d: %d %s", id, rec.answers, resp.status, short(resp.body)))
	}
	rec.answer, rec.endedAt = class, got
	s.res.SoakAnswers[class]++
	switch class {
	case "ok":
		// The server cannot start the timeout before the request was written.
		if took := got.Sub(sent); took < time.Duration(rec.timeoutMs)*time.Millisecond {
			s.violate("early_ok", fmt.Sprintf("%s (%s): 200 ok after %s of a %d ms timeout", id, rec.kind, took.Round(time.Millisecond), rec.timeoutMs))
		}
	case "conflict_409":
		s.violate("conflict_409", fmt.Sprintf("%s (%s): 409 %s", id, rec.kind, short(resp.body)))
	case "other":
		s.violate("other_answer", fmt.Sprintf("%s (%s): %d %s", id, rec.kind, resp.status, short(resp.body)))
	}
	return class
}

// lost records a park that ended without an answer, the client having closed its
// connection (so the server may list it for soakAbandonGrace more).
func (s *soak) lost(id, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	rec.hungUpAt = time.Now()
	if s.parent.Err() != nil {
		rec.answer = "aborted"
		s.aborted++
		return
	}
	rec.answer = "lost"
	s.res.SoakLost++
	s.violate("lost_answer", fmt.Sprintf("%s (%s, timeout %d ms): %s", id, rec.kind, rec.timeoutMs, why))
}

// unsent records a park that could not be written: the server never saw it whole.
func (s *soak) unsent(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	rec.hungUpAt = time.Now()
	if s.parent.Err() != nil {
		rec.answer = "aborted"
		s.aborted++
		return
	}
	rec.answer = "unsent"
	s.violate("request_failed", fmt.Sprintf("park %s not sent: %v", id, err))
}

// publish adds a kill target to the pool, unless it has ended already.
func (s *soak) publish(id string) {
	s.mu.Lock()
	if rec := s.parks[id]; rec.answer == "" && !slices.Contains(s.pool, id) {
		s.pool = append(s.pool, id)
	}
	s.mu.Unlock()
}

func (s *soak) unpublishLocked(id string) {
	if i := slices.Index(s.pool, id); i >= 0 {
		s.pool[i] = s.pool[len(s.pool)-1]
		s.pool = s.pool[:len(s.pool)-1]
	}
}

// pick chooses a kill target. It leaves the pool half the time, so that two
// kills often race for one request.
func (s *soak) pick(rng *rand.Rand) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pool) == 0 {
		return "", false
	}
	id := s.pool[rng.IntN(len(s.pool))]
	if rng.IntN(2) == 0 {
		s.unpublishLocked(id)
	}
	return id, true
}

// killResult records the answer to a kill of id.
func (s *soak) killResult(id string, resp response, retried bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	if retried {
		rec.killsUnknown++ // the first try may have killed it
	}
	if err != nil {
		rec.killsUnknown++
		if s.parent.Err() == nil {
			s.res.SoakKillsUnknown++
			s.violate("request_failed", fmt.Sprintf("kill %s: %s", id, errKind(s.parent, err)))
		}
		return
	}
	st, _ := bodyStatus(resp.body)
	switch {
	case resp.status == 200 && st == "ok":
		s.res.SoakKillsOK++
		rec.killsOK++
		s.unpublishLocked(id)
		if rec.killsOK > 1 {
			s.violate("killed_twice", fmt.Sprintf("%s: %d kills answered 200", id, rec.killsOK))
		}
	case resp.status == 400 && st == "invalid connection Id : "+id:
		s.res.SoakKillsFinished++
		if rec.answer != "" { // else not parked yet: it stays a target
			s.unpublishLocked(id)
		}
	default:
		rec.killsUnknown++
		s.res.SoakKillsUnknown++
		s.violate("kill_bad_answer", fmt.Sprintf("kill %s: %d %s", id, resp.status, short(resp.body)))
	}
}

// ghosts checks the ids of this run that a serverStatus or /api/requests answer
// listed, for a request written at sent: none may have been answered before
// then, nor hung up on soakAbandonGrace before then.
func (s *soak) ghosts(ids []string, sent time.Time, where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if !strings.HasPrefix(id, s.o.Prefix) {
			continue
		}
		rec := s.parks[id]
		switch {
		case rec == nil:
			s.violate("status_lists_unknown", fmt.Sprintf("%s lists %s, never parked", where, id))
		case !rec.endedAt.IsZero() && rec.endedAt.Before(sent):
			s.violate("status_lists_finished", fmt.Sprintf("%s lists %s (%s), answered %s %s before the request", where, id, rec.kind, rec.answer, sent.Sub(rec.endedAt).Round(time.Millisecond)))
		case !rec.hungUpAt.IsZero() && sent.Sub(rec.hungUpAt) > soakAbandonGrace:
			s.violate("status_lists_abandoned", fmt.Sprintf("%s lists %s (%s), hung up on %s before the request", where, id, rec.kind, sent.Sub(rec.hungUpAt).Round(time.Millisecond)))
		}
	}
}

// checkStatus validates a serverStatus answer — a JSON object of strings holding
// whole seconds, never "0" — and returns the ids it lists; kind names a failure.
func (s *soak) checkStatus(resp response, sent time.Time, kind string) {
	if resp.status != 200 {
		s.violation(kind, fmt.Sprintf("serverStatus answered %d %s", resp.status, short(resp.body)))
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &m); err != nil || m == nil {
		s.violation(kind, "serverStatus is not a JSON object: "+short(resp.body))
		return
	}
	ids := make([]string, 0, len(m))
	for id, raw := range m {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || v == "" || v == "0" || strings.Trim(v, "0123456789") != "" {
			s.violation(kind, fmt.Sprintf("serverStatus entry %q: %s is not whole seconds as a string", id, short(raw)))
			return
		}
		ids = append(ids, id)
	}
	s.ghosts(ids, sent, "serverStatus")
}

// checkRequests validates GET /api/requests: a JSON array of objects with a connId.
func (s *soak) checkRequests(resp response, sent time.Time) {
	var list []struct {
		ConnID *string `json:"connId"`
	}
	if resp.status != 200 || json.Unmarshal(resp.body, &list) != nil || list == nil {
		s.violation("bad_requests_body", fmt.Sprintf("/api/requests answered %d %s", resp.status, short(resp.body)))
		return
	}
	ids := make([]string, 0, len(list))
	for _, e := range list {
		if e.ConnID == nil {
			s.violation("bad_requests_body", "/api/requests entry without connId: "+short(resp.body))
			return
		}
		ids = append(ids, *e.ConnID)
	}
	s.ghosts(ids, sent, "/api/requests")
}

// short quotes the start of a body or of stray bytes for an example.
func short(b []byte) string {
	if len(b) > 120 {
		return strconv.Quote(string(b[:120])) + "…"
	}
	return strconv.Quote(string(b))
}

// soakConn is one connection of a client.
type soakConn struct {
	c      net.Conn
	br     *bufio.Reader
	reused bool // an exchange completed on it: a failure may mean the server closed it idle
}

func (sc *soakConn) write(b []byte) error {
	_ = sc.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := sc.c.Write(b)
	return err
}

// read reads one answer by deadline; the end of ctx closes the connection.
func (sc *soakConn) read(ctx context.Context, deadline time.Time) (response, error) {
	c := sc.c
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetReadDeadline(deadline)
	return readResponse(sc.br, soakMaxBody)
}

// readRest reads what comes before the server closes the connection, up to wait.
func (sc *soakConn) readRest(ctx context.Context, wait time.Duration) ([]byte, error) {
	c := sc.c
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(io.LimitReader(sc.br, 64<<10))
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil // closed, if rudely
	}
	return b, err
}

// soakClient is one client goroutine: at most two connections at a time, its
// keep-alive one and, while hanging up, a fresh one.
type soakClient struct {
	s      *soak
	n      int
	rng    *rand.Rand
	dialer net.Dialer
	main   *soakConn
	seq    int
}

func (s *soak) client(n int) *soakClient {
	cl := &soakClient{s: s, n: n, rng: rand.New(rand.NewPCG(s.o.Seed, uint64(n)+1)), dialer: net.Dialer{Timeout: s.o.DialTimeout}}
	if len(s.o.Sources) > 0 {
		cl.dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(s.o.Sources[n%len(s.o.Sources)])}
	}
	return cl
}

func (cl *soakClient) nextID(tag string) string {
	cl.seq++
	return cl.s.o.Prefix + tag + strconv.Itoa(cl.n) + "-" + strconv.Itoa(cl.seq)
}

func (cl *soakClient) dial(ctx context.Context) (*soakConn, error) {
	c, err := cl.dialer.DialContext(ctx, "tcp", cl.s.tgt.dial)
	if err != nil {
		return nil, dialError{err}
	}
	cl.s.mu.Lock()
	cl.s.res.SoakConnects++
	cl.s.mu.Unlock()
	return &soakConn{c: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// conn returns the keep-alive connection, dialling one if there is none.
func (cl *soakClient) conn(ctx context.Context) (*soakConn, error) {
	if cl.main == nil {
		sc, err := cl.dial(ctx)
		if err != nil {
			return nil, err
		}
		cl.main = sc
	}
	return cl.main, nil
}

// drop closes the keep-alive connection; the next action dials anew.
func (cl *soakClient) drop() {
	if cl.main != nil {
		cl.main.c.Close()
		cl.main = nil
	}
}

func (cl *soakClient) req(method, path string, body []byte, closeConn bool) []byte {
	return appendRequest(nil, method, cl.s.tgt, path, body, closeConn)
}

func parkPath(id string, timeoutMs int64) string {
	return "/api/request?connId=" + url.QueryEscape(id) + "&timeout=" + formatTimeout(timeoutMs)
}

func (cl *soakClient) between(lo, hi time.Duration) int64 {
	return lo.Milliseconds() + cl.rng.Int64N(hi.Milliseconds()-lo.Milliseconds()+1)
}

// loop starts actions until end, then closes its connection.
func (cl *soakClient) loop(ctx context.Context, end time.Time) {
	defer cl.drop()
	for ctx.Err() == nil && time.Now().Before(end) {
		switch w := cl.rng.IntN(100); {
		case w < 28:
			t := int64(0)
			if cl.rng.IntN(8) != 0 {
				t = cl.between(0, cl.s.o.ParkMax)
			}
			kind := skPark
			if cl.rng.IntN(4) == 0 {
				kind = skParkClose
			}
			cl.park(ctx, kind, t, -1)
		case w < 42 && cl.rng.IntN(4) == 0:
			t := cl.between(cl.s.o.RaceMin, cl.s.o.RaceMax)
			cl.park(ctx, skRace, t, time.Duration(cl.rng.Int64N(t+101))*time.Millisecond)
		case w < 42:
			cl.park(ctx, skTarget, cl.between(cl.s.o.LongMin, cl.s.o.LongMax), time.Duration(cl.rng.Int64N(cl.s.o.PublishMax.Milliseconds()+1))*time.Millisecond)
		case w < 64:
			cl.kill(ctx)
		case w < 72:
			cl.hangup(ctx)
		case w < 84:
			cl.pipeline(ctx)
		default:
			cl.poll(ctx)
		}
	}
}

// do sends one request that is not a park on the keep-alive connection and reads
// its answer. A failure on a reused connection before any answer is retried once
// on a new one (the server may have closed it idle); retried says so.
func (cl *soakClient) do(ctx context.Context, req []byte) (resp response, retried bool, err error) {
	for attempt := 0; ; attempt++ {
		sc, err := cl.conn(ctx)
		if err != nil {
			return resp, retried, err
		}
		err = sc.write(req)
		if err == nil {
			resp, err = sc.read(ctx, time.Now().Add(ioTimeout))
		}
		if err != nil {
			cl.drop()
			if sc.reused && attempt == 0 && ctx.Err() == nil && staleConn(err) {
				retried = true
				cl.s.mu.Lock()
				cl.s.res.SoakStaleRetries++
				cl.s.mu.Unlock()
				continue
			}
			return resp, retried, err
		}
		sc.reused = true
		if resp.close {
			cl.drop()
		}
		return resp, retried, nil
	}
}

// park parks one request on the keep-alive connection and waits for its answer.
// A kill target joins the pool publishAfter after it was written (never when
// negative), and stays there after its answer until a kill finds it gone.
func (cl *soakClient) park(ctx context.Context, kind string, timeoutMs int64, publishAfter time.Duration) {
	s := cl.s
	id := cl.nextID("s")
	s.register(id, kind, timeoutMs)
	sc, err := cl.conn(ctx)
	if err != nil {
		s.unsent(id, err)
		return
	}
	closeConn := kind == skParkClose
	sent := time.Now()
	if err := sc.write(cl.req("GET", parkPath(id, timeoutMs), nil, closeConn)); err != nil {
		cl.drop()
		s.lost(id, "write: "+errKind(ctx, err))
		return
	}
	var pub *time.Timer
	if publishAfter >= 0 {
		pub = time.AfterFunc(publishAfter, func() { s.publish(id) })
	}
	resp, err := sc.read(ctx, sent.Add(time.Duration(timeoutMs)*time.Millisecond+s.o.Slack))
	got := time.Now()
	if pub != nil {
		pub.Stop()
	}
	if err != nil {
		cl.drop()
		s.lost(id, errKind(ctx, err))
		return
	}
	class := s.answered(id, resp, sent, got)
	if closeConn || resp.close {
		cl.main = nil
		cl.expectClose(ctx, id, sc)
		return
	}
	sc.reused = true
	cl.afterAnswer(ctx, id, class == "killed" || pub != nil || cl.rng.IntN(4) == 0)
}

// expectClose checks that the server closes a connection after the answer that
// said it would, and writes nothing more on it.
func (cl *soakClient) expectClose(ctx context.Context, after string, sc *soakConn) {
	defer sc.c.Close()
	extra, err := sc.readRest(ctx, cl.s.o.Slack)
	switch {
	case len(extra) > 0:
		cl.s.violation("duplicate_answer", fmt.Sprintf("%s: %s more after its answer on a closing connection", after, short(extra)))
	case err != nil && ctx.Err() == nil:
		cl.s.violation("close_not_honoured", fmt.Sprintf("%s: connection not closed %s after a closing answer (%s)", after, cl.s.o.Slack, errKind(ctx, err)))
	}
}

// afterAnswer checks that nothing but the answer came for a park on the
// keep-alive connection: no bytes beyond it already, and, when probe is set, the
// next answer is the one to a kill of a never-parked id, which echoes that id.
func (cl *soakClient) afterAnswer(ctx context.Context, after string, probe bool) {
	sc := cl.main
	if sc == nil {
		return
	}
	if n := sc.br.Buffered(); n > 0 {
		b, _ := sc.br.Peek(n)
		cl.s.violation("duplicate_answer", fmt.Sprintf("%s: unrequested bytes after its answer: %s", after, short(b)))
		cl.drop()
		return
	}
	if !probe {
		return
	}
	s := cl.s
	nonce := cl.nextID("x")
	body, _ := json.Marshal(map[string]string{"connId": nonce})
	s.mu.Lock()
	s.res.SoakProbes++
	s.mu.Unlock()
	err := sc.write(cl.req("PUT", "/api/kill", body, false))
	var resp response
	if err == nil {
		resp, err = sc.read(ctx, time.Now().Add(ioTimeout))
	}
	if err != nil {
		cl.drop()
		if ctx.Err() == nil {
			s.violation("request_failed", fmt.Sprintf("probe after %s: %s", after, errKind(ctx, err)))
		}
		return
	}
	if st, _ := bodyStatus(resp.body); resp.status != 400 || st != "invalid connection Id : "+nonce {
		s.violation("duplicate_answer", fmt.Sprintf("%s: the next answer on its connection was %d %s, not the probe's 400", after, resp.status, short(resp.body)))
		cl.drop()
		return
	}
	if resp.close {
		cl.drop()
	}
}

// kill kills a random kill target, or polls when there is none.
func (cl *soakClient) kill(ctx context.Context) {
	id, ok := cl.s.pick(cl.rng)
	if !ok {
		cl.poll(ctx)
		return
	}
	cl.killID(ctx, id, "kill")
}

func (cl *soakClient) killID(ctx context.Context, id, kind string) {
	cl.s.count(kind, 1)
	body, _ := json.Marshal(map[string]string{"connId": id})
	resp, retried, err := cl.do(ctx, cl.req("PUT", "/api/kill", body, false))
	if err != nil && cl.s.parent.Err() != nil {
		return
	}
	cl.s.killResult(id, resp, retried, err)
}

// hangup parks on a fresh connection and hangs up after a short delay: a full
// close, or a half-close after which the server must write nothing and close.
func (cl *soakClient) hangup(ctx context.Context) {
	s := cl.s
	id := cl.nextID("s")
	timeoutMs := cl.between(s.o.LongMin, s.o.LongMax)
	s.register(id, skHangup, timeoutMs)
	sc, err := cl.dial(ctx)
	if err != nil {
		s.unsent(id, err)
		return
	}
	defer sc.c.Close()
	if err := sc.write(cl.req("GET", parkPath(id, timeoutMs), nil, false)); err != nil {
		s.lost(id, "write: "+errKind(ctx, err))
		return
	}
	if !sleepCtx(ctx, time.Duration(cl.rng.Int64N(s.o.HangupMax.Milliseconds()+1))*time.Millisecond) {
		s.lost(id, "aborted before the hang-up")
		return
	}
	tc, half := sc.c.(*net.TCPConn)
	half = half && cl.rng.IntN(2) == 0
	at := time.Now()
	s.mu.Lock()
	s.parks[id].hungUpAt = at
	s.res.SoakHangups++
	if half {
		s.res.SoakHangupsHalfClose++
	}
	s.mu.Unlock()
	var data []byte
	if half {
		if err = tc.CloseWrite(); err == nil {
			data, err = sc.readRest(ctx, s.o.Slack)
		}
	} else {
		err = sc.c.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	if len(data) > 0 {
		resp, perr := readResponse(bufio.NewReader(bytes.NewReader(data)), soakMaxBody)
		if perr == nil && resp.status == 503 { // refused before the hang-up: the server was full
			rec.answer, rec.endedAt = "busy_503", at
			s.res.SoakAnswers["busy_503"]++
			return
		}
		s.violate("hangup_answered", fmt.Sprintf("%s: %s written after a half-close into a %d ms park", id, short(data), timeoutMs))
	} else if err != nil && ctx.Err() == nil {
		s.violate("hangup_not_closed", fmt.Sprintf("%s: connection not closed %s after a half-close (%s)", id, s.o.Slack, errKind(ctx, err)))
	}
	rec.answer = "hungup"
	s.res.SoakHungUp++
}

// pipelineItem is one request of a pipelined batch.
type pipelineItem struct {
	kind      string // park, status or healthz
	id        string
	timeoutMs int64
}

// pipeline writes 2–4 requests in one write — a 0.1 s park first, then parks of
// 0.1 s or 0 s, serverStatus and healthz — and reads their answers in order.
func (cl *soakClient) pipeline(ctx context.Context) {
	s := cl.s
	items := make([]pipelineItem, 2+cl.rng.IntN(3))
	var buf []byte
	var names []string
	for i := range items {
		k := 0
		if i > 0 {
			k = cl.rng.IntN(4)
		}
		it := &items[i]
		switch k {
		case 0, 2:
			it.kind, it.id = "park", cl.nextID("s")
			if k == 0 {
				it.timeoutMs = 100
			}
			s.register(it.id, skPipelined, it.timeoutMs)
			buf = append(buf, cl.req("GET", parkPath(it.id, it.timeoutMs), nil, false)...)
			names = append(names, it.id)
		case 1:
			it.kind = "status"
			buf = append(buf, cl.req("GET", "/api/serverStatus", nil, false)...)
			names = append(names, "serverStatus")
		case 3:
			it.kind = "healthz"
			buf = append(buf, cl.req("GET", "/healthz", nil, false)...)
			names = append(names, "healthz")
		}
	}
	batch := "pipeline [" + strings.Join(names, " ") + "]"
	s.mu.Lock()
	s.res.SoakPipelinedBatches++
	s.res.SoakPipelinedRequests += len(items)
	for _, it := range items {
		if it.kind != "park" {
			s.res.SoakRequests[it.kind+"_pipelined"]++
		}
	}
	s.mu.Unlock()
	fail := func(from int, why string) {
		cl.drop()
		for _, it := range items[from:] {
			if it.kind == "park" {
				s.lost(it.id, why)
			} else if s.parent.Err() == nil {
				s.violation("request_failed", fmt.Sprintf("%s: %s: %s", batch, it.kind, why))
			}
		}
	}
	sc, err := cl.conn(ctx)
	if err != nil {
		for _, it := range items {
			if it.kind == "park" {
				s.unsent(it.id, err)
			}
		}
		return
	}
	sent := time.Now()
	if err := sc.write(buf); err != nil {
		fail(0, "write: "+errKind(ctx, err))
		return
	}
	for i, it := range items {
		resp, err := sc.read(ctx, time.Now().Add(time.Duration(it.timeoutMs)*time.Millisecond+s.o.Slack))
		if err != nil {
			fail(i, errKind(ctx, err))
			return
		}
		switch it.kind {
		case "park":
			s.answered(it.id, resp, sent, time.Now())
		case "status":
			s.checkStatus(resp, sent, "pipeline_mismatch")
		case "healthz":
			if resp.status != 200 {
				s.violation("pipeline_mismatch", fmt.Sprintf("%s: healthz answered %d %s", batch, resp.status, short(resp.body)))
			}
		}
		if resp.close {
			if i < len(items)-1 {
				fail(i+1, "connection closed after answer "+strconv.Itoa(i+1))
				return
			}
			cl.main = nil
			cl.expectClose(ctx, batch, sc)
			return
		}
	}
	sc.reused = true
	cl.afterAnswer(ctx, batch, cl.rng.IntN(4) == 0)
}

// poll reads serverStatus, or 1 time in 4 /api/requests, and checks it.
func (cl *soakClient) poll(ctx context.Context) {
	path, kind := "/api/serverStatus", "status"
	if cl.rng.IntN(4) == 0 {
		path, kind = "/api/requests", "requests"
	}
	cl.s.count(kind, 1)
	cl.s.mu.Lock()
	if kind == "status" {
		cl.s.res.SoakStatusPolls++
	} else {
		cl.s.res.SoakRequestsPolls++
	}
	cl.s.mu.Unlock()
	sent := time.Now()
	resp, _, err := cl.do(ctx, cl.req("GET", path, nil, false))
	switch {
	case err != nil:
		if cl.s.parent.Err() == nil {
			cl.s.violation("request_failed", fmt.Sprintf("GET %s: %s", path, errKind(ctx, err)))
		}
	case kind == "status":
		cl.s.checkStatus(resp, sent, "bad_status_body")
	default:
		cl.s.checkRequests(resp, sent)
	}
}

// reap kills, after the actions, every kill target still parked, again and again
// until every client is done, so that none waits out its long timeout. At
// bound it cancels the clients: whatever is still outstanding is lost.
func (s *soak) reap(ctx context.Context, done <-chan struct{}, bound time.Time, cancel func()) {
	cl := s.client(s.o.Clients)
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
			s.res.SoakNotes = append(s.res.SoakNotes, fmt.Sprintf("outstanding requests cancelled %s after the actions", s.o.Drain))
			s.mu.Unlock()
			cancel()
			return
		case <-tick.C:
		}
	}
}

// awaitEmpty polls serverStatus until it is {}, for at most EmptyWait.
func (s *soak) awaitEmpty(ctx context.Context) {
	kc := newKAConn(s.tgt, "", s.o.DialTimeout)
	defer kc.Close()
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
		if time.Since(start) >= s.o.EmptyWait || !sleepCtx(ctx, 100*time.Millisecond) {
			break
		}
	}
	if ctx.Err() == nil {
		s.violation("status_not_empty", fmt.Sprintf("serverStatus not {} %s after the clients finished: %s", s.o.EmptyWait, last))
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
	defer kc.Close()
	ex, err := kc.do(ctx, appendRequest(nil, "GET", tgt, "/metrics", nil, true), 64<<20)
	if err != nil || ex.resp.status != 200 {
		return nil, false
	}
	return parseMetrics(ex.resp.body, metricGoroutines, metricHeapInuse, metricHeapObjects, metricParked,
		outcomeMetric("ok"), outcomeMetric("killed"), outcomeMetric("abandoned"), outcomeMetric("shutdown"), outcomeMetric("rejected")), true
}

// checkIdle reads /metrics after Settle, again every 500 ms for up to IdleWait
// until the goroutines are back and nothing is parked, and compares with before.
func (s *soak) checkIdle(ctx context.Context, before map[string]float64) {
	res := s.res
	if !sleepCtx(ctx, s.o.Settle) {
		return
	}
	until := time.Now().Add(s.o.IdleWait)
	var after map[string]float64
	for {
		if m, ok := scrapeSoakMetrics(ctx, s.tgt, s.o.DialTimeout); ok {
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
		s.violation("server_not_idle", "/metrics unreadable after the soak")
		return
	}
	res.SoakGoroutinesBefore, res.SoakGoroutinesAfter = metricPtr(before, metricGoroutines), metricPtr(after, metricGoroutines)
	res.SoakHeapInuseBeforeBytes, res.SoakHeapInuseAfterBytes = metricPtr(before, metricHeapInuse), metricPtr(after, metricHeapInuse)
	res.SoakHeapObjectsBefore, res.SoakHeapObjectsAfter = metricPtr(before, metricHeapObjects), metricPtr(after, metricHeapObjects)
	res.SoakParkedBefore, res.SoakParkedAfter = metricPtr(before, metricParked), metricPtr(after, metricParked)
	gb, ga := res.SoakGoroutinesBefore, res.SoakGoroutinesAfter
	if gb != nil && ga != nil && *ga > *gb+soakGoroutineSlack {
		s.violation("server_not_idle", fmt.Sprintf("go_goroutines %v before, %v after %s + %s of waiting", *gb, *ga, s.o.Settle, s.o.IdleWait))
	}
	if pa := res.SoakParkedAfter; pa != nil && *pa != 0 {
		s.violation("server_not_idle", fmt.Sprintf("parkd_parked_requests %v after the soak", *pa))
	}
	// Heap in use is compared loosely: the GC may not have run since the soak, so
	// garbage still counts. Twice the baseline, or 8 MiB more, leaves room for
	// that, while a leak of one object per request over ~10^5 requests does not fit.
	if hb, ha := res.SoakHeapInuseBeforeBytes, res.SoakHeapInuseAfterBytes; hb != nil && ha != nil && *ha > max(2**hb, *hb+soakHeapSlack) {
		s.violation("server_not_idle", fmt.Sprintf("heap in use %.1f MiB before, %.1f MiB after", *hb/(1<<20), *ha/(1<<20)))
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
		s.violation("outcome_mismatch", fmt.Sprintf("server counted %v killed, clients got %v", *killed, cKilled))
	}
	if *ok+*ab != cOK+cHung || *ok < cOK || *ab > cHung {
		s.violation("outcome_mismatch", fmt.Sprintf("server ok %v + abandoned %v, clients ok %v + hung up %v", *ok, *ab, cOK, cHung))
	}
	if rej != nil && shut != nil && *rej+*shut != cBusy {
		s.violation("outcome_mismatch", fmt.Sprintf("server rejected %v + shutdown %v, clients got %v 503s", *rej, *shut, cBusy))
	}
}

// crossCheck matches kills with killed answers over every park of the run.
func (s *soak) crossCheck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	unconfirmed := 0
	for _, id := range slices.Sorted(maps.Keys(s.parks)) {
		rec := s.parks[id]
		switch {
		case rec.answer == "":
			if s.parent.Err() != nil {
				rec.answer = "aborted"
				s.aborted++
				continue
			}
			s.res.SoakLost++
			s.violate("lost_answer", fmt.Sprintf("%s (%s, timeout %d ms): never ended", id, rec.kind, rec.timeoutMs))
		case rec.answer == "killed" && rec.killsOK == 0 && rec.killsUnknown == 0:
			s.violate("killed_without_kill", fmt.Sprintf("%s (%s): answered 500 killed, no kill of it answered 200", id, rec.kind))
		case rec.answer == "killed" && rec.killsOK == 0:
			unconfirmed++
		case rec.killsOK > 0 && rec.answer != "killed" && rec.answer != "aborted":
			s.violate("kill_ok_not_killed", fmt.Sprintf("%s (%s): a kill answered 200, the park ended %s", id, rec.kind, rec.answer))
		}
	}
	if unconfirmed > 0 {
		s.res.SoakNotes = append(s.res.SoakNotes, fmt.Sprintf("%d killed answers match a kill whose own answer was lost", unconfirmed))
	}
}

// soakCheck groups violation kinds into the checks of the verdict.
func soakCheck(kind string) string {
	switch kind {
	case "conflict_409", "other_answer", "duplicate_answer", "early_ok", "hangup_answered":
		return "one_answer_each"
	case "killed_without_kill", "kill_ok_not_killed", "killed_twice", "kill_bad_answer":
		return "kills_match"
	case "lost_answer", "hangup_not_closed", "close_not_honoured", "request_failed":
		return "nothing_lost"
	case "status_not_empty":
		return "status_empty_at_end"
	case "server_not_idle":
		return "server_idle"
	case "outcome_mismatch":
		return "outcomes_agree"
	}
	return "responses_valid" // bad bodies, pipeline mismatches, ghosts in serverStatus
}

// verdict fills the checks, totals and verdict.
func (s *soak) verdict(aborted bool) {
	res := s.res
	for _, c := range []string{"one_answer_each", "kills_match", "nothing_lost", "responses_valid", "status_empty_at_end", "server_idle", "outcomes_agree"} {
		res.SoakChecks[c] = "pass"
	}
	if !res.SoakMetricsAvailable {
		res.SoakChecks["server_idle"], res.SoakChecks["outcomes_agree"] = "skipped", "skipped"
	} else if res.SoakServerOK == nil {
		res.SoakChecks["outcomes_agree"] = "skipped"
	}
	res.SoakViolationTotal = 0
	for k, n := range res.SoakViolations {
		res.SoakChecks[soakCheck(k)] = "fail"
		res.SoakViolationTotal += n
	}
	for _, n := range res.SoakRequests {
		res.SoakRequestTotal += n
	}
	res.SoakRequestTotal += res.SoakProbes
	res.SoakVerdict = soakPass
	if aborted {
		res.SoakChecks["completed"] = "fail"
		res.SoakNotes = append(res.SoakNotes, fmt.Sprintf("aborted by max-duration or a signal: no verdict possible (%d requests cut short)", s.aborted))
		res.SoakVerdict = soakFail
	}
	if res.SoakViolationTotal > 0 {
		res.SoakVerdict = soakFail
	}
}
