package main

// Shutdown under load, on the real process (see signal_test.go): SIGTERM
// with 5,000 requests parked on 5,000 connections. Linux only, as
// hostile_test.go, whose helpers it shares.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SIGTERM with 5,000 requests parked, half due within the grace period and
// half far beyond it: each gets exactly one answer — 200 at its deadline
// for the first half, 503 at once for the others — and then the close; a
// keep-alive connection opened before the signal sees /readyz answer 503;
// the process exits 0 within the grace period plus a second.
func TestShutdownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("parks 5,000 requests on 5,000 connections")
	}
	t.Parallel()
	const n = 5000
	const grace = 3 * time.Second
	c := startChild(t, "-grace", grace.String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("parkd's log, but for the finished requests:\n%s", notFinished(c.stderr.String()))
		}
	})

	// The precise moment the process exits.
	exitAt, stopWatch := make(chan time.Time, 1), make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		select {
		case <-c.exited:
			exitAt <- time.Now()
		case <-stopWatch:
		}
	})
	t.Cleanup(func() { close(stopWatch); watch.Wait() })

	spare := dialRaw(t, c.addr) // open before the signal, kept alive
	spare.send(t, getRequest("/readyz"))
	if r := spare.read(t, http.MethodGet); r.code != http.StatusOK {
		t.Fatalf("readyz before the signal: %v", r)
	}

	type parked struct {
		id      string
		timeout time.Duration
		within  bool // due within the grace period after the signal
		sent    time.Time
		r       reply
		at      time.Time // when its answer arrived
		err     error     // no answer, or something after it
	}
	ps := make([]parked, n)
	for i := range ps {
		p := &ps[i]
		p.id = fmt.Sprintf("s%04d", i)
		k := time.Duration(i / 2)
		if p.within = i%2 == 0; p.within {
			p.timeout = time.Second + k*1000/(n/2)*time.Millisecond // 1 s to 2 s
		} else {
			p.timeout = 20*time.Second + k*40000/(n/2)*time.Millisecond // 20 s to 60 s
		}
	}

	var readers sync.WaitGroup
	t.Cleanup(readers.Wait) // runs after the connections are closed
	conns := newConnSet(t).dialMany(t, c.addr, n)
	park := func(i int) {
		p, cn := &ps[i], conns[i]
		ms := p.timeout.Milliseconds()
		cn.SetReadDeadline(time.Now().Add(2 * time.Minute)) // brought forward at the signal
		cn.SetWriteDeadline(time.Now().Add(waitBound))
		p.sent = time.Now()
		if _, err := io.WriteString(cn, getRequest(parkPath(p.id, fmt.Sprintf("%d.%03d", ms/1000, ms%1000)))); err != nil {
			p.err = fmt.Errorf("sending: %w", err)
			return
		}
		readers.Go(func() {
			r, err := readReply(cn.br, http.MethodGet)
			p.at = time.Now()
			p.r = r
			if err != nil {
				p.err = err
				return
			}
			// Nothing more: the server closes the connection.
			if b, err := io.ReadAll(cn.br); len(b) > 0 || err != nil {
				p.err = fmt.Errorf("after the answer: %s, %v", clip(b), err)
			}
		})
	}
	// untilParked waits until want requests are parked or, on a slow day,
	// some due soon already answered.
	untilParked := func(want float64) {
		for end := time.Now().Add(waitBound); ; time.Sleep(20 * time.Millisecond) {
			text := spare.scrape(t)
			parkedNow, _ := metricSum(t, text, "parkd_parked_requests")
			ok, _ := metricSum(t, text, "parkd_outcomes_total", "outcome", "ok")
			all, _ := metricSum(t, text, "parkd_outcomes_total")
			if all != ok {
				t.Fatalf("outcomes other than ok before the signal:\n%s", grepLines(text, "parkd_outcomes_total"))
			}
			if parkedNow+ok == want {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("%v parked and %v answered of %v within %v", parkedNow, ok, want, waitBound)
			}
		}
	}
	// The half due long after the grace first, then the half due within
	// it, so that the time these take to park is short next to their
	// timeouts.
	each(n/2, 32, func(i int) { park(2*i + 1) })
	untilParked(n / 2)
	setupStart := time.Now()
	each(n/2, 32, func(i int) { park(2 * i) })
	untilParked(n)
	setup := time.Since(setupStart)

	signalled := time.Now()
	c.signal(t, syscall.SIGTERM)
	for _, cn := range conns {
		cn.SetReadDeadline(signalled.Add(waitBound))
	}

	// The connection opened before the signal is still served, and /readyz
	// says 503 while the requests due within the grace are parked.
	for end := signalled.Add(waitBound); ; time.Sleep(5 * time.Millisecond) {
		spare.send(t, getRequest("/readyz"))
		r := spare.read(t, http.MethodGet)
		if r.code == http.StatusServiceUnavailable {
			wantError(t, "readyz while draining", r, http.StatusServiceUnavailable, "shutting down")
			break
		}
		if r.code != http.StatusOK || time.Now().After(end) {
			t.Fatalf("readyz after SIGTERM: %v, want 503 within %v", r, waitBound)
		}
	}
	readyAt := time.Now()

	readers.Wait() // every read has a deadline
	var exitAfter time.Duration
	select {
	case at := <-exitAt:
		exitAfter = at.Sub(signalled)
	case <-time.After(waitBound):
		t.Fatalf("parkd did not exit within %v of SIGTERM", waitBound)
	}
	if code := c.exitCode(t); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}

	var ok, down, other, early, stillParkedAtReadyz int
	var last200, last503 time.Duration
	complain := func(p *parked, format string, args ...any) {
		if other++; other <= 10 {
			t.Errorf("%s (timeout %v): %s", p.id, p.timeout, fmt.Sprintf(format, args...))
		}
	}
	for i := range ps {
		p := &ps[i]
		switch {
		case p.err != nil:
			complain(p, "answer %v, then %v", p.r, p.err)
		case p.within && (p.r.code != http.StatusOK || string(p.r.body) != bodyOK):
			complain(p, "got %v, want 200 %s: due within the grace", p.r, bodyOK)
		case p.within && p.at.Sub(p.sent) < p.timeout:
			complain(p, "answered %v after it was sent, before its deadline", p.at.Sub(p.sent))
		case p.within:
			ok++
			last200 = max(last200, p.at.Sub(signalled))
			if p.at.Before(signalled) {
				early++
			}
			if p.at.After(readyAt) {
				stillParkedAtReadyz++
			}
		case p.r.code != http.StatusServiceUnavailable || string(p.r.body) != bodyShuttingDown:
			complain(p, "got %v, want 503 %s: due after the grace", p.r, bodyShuttingDown)
		case p.at.Sub(signalled) > grace+time.Second:
			complain(p, "its 503 came %v after SIGTERM, want it at once", p.at.Sub(signalled))
		default:
			down++
			last503 = max(last503, p.at.Sub(signalled))
		}
	}
	if other > 10 {
		t.Errorf("… and %d more", other-10)
	}
	if stillParkedAtReadyz == 0 && early < n/2 {
		t.Errorf("readyz said 503 only once every request due within the grace had its answer")
	}
	if exitAfter > grace+time.Second {
		t.Errorf("parkd exited %v after SIGTERM, want within the grace period plus a second, %v", exitAfter.Round(time.Millisecond), grace+time.Second)
	}

	// The log has exactly one finished line per request, with its outcome.
	// Its times, the server's own, say how long the server took to send
	// its 503s and to stop, whatever delays this process had in reading.
	outcomes := map[string][]string{}
	var shuttingDown, last503Logged, stopped time.Time
	for l := range strings.Lines(c.stderr.String()) {
		var m struct {
			Time                 time.Time
			Msg, ConnID, Outcome string
		}
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		switch m.Msg {
		case "parked request finished":
			outcomes[m.ConnID] = append(outcomes[m.ConnID], m.Outcome)
			if m.Outcome == "shutdown" && m.Time.After(last503Logged) {
				last503Logged = m.Time
			}
		case "shutting down":
			shuttingDown = m.Time
		case "stopped":
			stopped = m.Time
		}
	}
	bad := 0
	for i := range ps {
		p := &ps[i]
		want := "shutdown"
		if p.within {
			want = "ok"
		}
		if got := outcomes[p.id]; len(got) != 1 || got[0] != want {
			if bad++; bad <= 10 {
				t.Errorf("%s: logged outcomes %q, want exactly one %q", p.id, got, want)
			}
		}
	}
	t.Logf("shutdown: parked=%d ok=%d shutting_down=%d other=%d exit_after=%.2fs last_503_after=%.2fs last_200_after=%.2fs ok_before_signal=%d setup=%.2fs server_503s_in=%.2fs server_stopped_in=%.2fs",
		n, ok, down, other, exitAfter.Seconds(), last503.Seconds(), last200.Seconds(), early, setup.Seconds(),
		last503Logged.Sub(shuttingDown).Seconds(), stopped.Sub(shuttingDown).Seconds())
}

// grepLines keeps the lines of text that hold s.
func grepLines(text, s string) string {
	var b strings.Builder
	for l := range strings.Lines(text) {
		if strings.Contains(l, s) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// notFinished is the log without its "parked request finished" lines.
func notFinished(log string) string {
	var b strings.Builder
	for l := range strings.Lines(log) {
		if !strings.Contains(l, `"parked request finished"`) {
			b.WriteString(l)
		}
	}
	return b.String()
}
