package main

// Hostile clients against a live server: junk bytes, a huge header,
// slowloris, crowds of idle connections, floods of bad requests, a full
// server, and a client that reads nothing. Each case runs while a control
// client keeps parking, listing and killing on connections of its own:
// every control operation must get the right answer, and none may take
// longer than wedged. The control latencies are logged, one greppable
// "control:" line per case, for the docs (the target is p99 under 100 ms;
// it is not asserted: these machines are noisy and -race is on).
//
// Linux only: the client that reads nothing sets socket buffer sizes, and
// a full server is emptied by hang-ups, which only Linux's watcher
// notices.

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// wedged is how long one control operation may take before the server
// counts as wedged by the hostile client. It is a bound for hangs, not a
// latency target.
const wedged = 5 * time.Second

// controlMinLoops is the fewest rounds the control client makes in a case,
// however quickly the hostile client is done.
const controlMinLoops = 10

type hostileCase struct {
	name string
	// capacity, when not 0, is the server's parked-request capacity.
	capacity int
	opts     []func(*server)
	// full: the server is filled to capacity, so the control client's
	// parks may rightly be refused (503 + Retry-After: 1).
	full    bool
	hostile func(t *testing.T, ts *testServer, ctl *control)
}

func TestHostile(t *testing.T) {
	t.Parallel()
	cases := []hostileCase{
		{name: "garbage", hostile: hostileGarbage},
		{name: "header64k", hostile: hostileHugeHeader},
		{name: "slowloris", hostile: hostileSlowloris,
			opts: []func(*server){func(s *server) { s.http.ReadTimeout = 500 * time.Millisecond }}},
		{name: "idle1000", hostile: hostileIdle},
		{name: "bad10000", hostile: hostileBadRequests},
		{name: "capacity", capacity: 300, full: true, hostile: hostileCapacity},
		// Every socket the server accepts gets the smallest send buffer, so
		// that a client that reads nothing fills it after a few dozen
		// answers instead of a few megabytes.
		{name: "readsnothing", hostile: hostileReadsNothing,
			opts: []func(*server){func(s *server) { s.http.ConnState = smallSendBuffer }}},
	}
	for _, hc := range cases {
		t.Run(hc.name, func(t *testing.T) {
			// Not parallel: each case's control figures are its own.
			cfg := testConfig()
			if hc.capacity > 0 {
				cfg.capacity = hc.capacity
			}
			ts := startServer(t, cfg, hc.opts...)
			ctl := startControl(t, ts.addr, hc.full)
			hc.hostile(t, ts, ctl)
			ctl.finish()
			ctl.report(hc.name)
			// The server is still whole: metrics answer and nothing is
			// left parked.
			waitParked(t, ts, 0, time.Now(), time.Second)
		})
	}
}

// ---- the control client ----

// control is a client that keeps working while a hostile one does its
// worst: a short park, a serverStatus, and a long park that it kills, on
// two keep-alive connections of its own, over and over.
type control struct {
	t    *testing.T
	full bool
	a, b *ctlConn // parks on a; status, polls and kills on b

	loops    atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu      sync.Mutex
	conns   []net.Conn // every connection it dialled, closed by abort
	aborted bool

	// Owned by the control goroutine until done is closed.
	lat     []time.Duration
	refused int
}

func startControl(t *testing.T, addr string, full bool) *control {
	ctl := &control{t: t, full: full, stop: make(chan struct{}), done: make(chan struct{})}
	ctl.a = &ctlConn{ctl: ctl, addr: addr}
	ctl.b = &ctlConn{ctl: ctl, addr: addr}
	go ctl.run()
	t.Cleanup(ctl.finish)
	return ctl
}

func (ctl *control) run() {
	defer close(ctl.done)
	for i := 0; ; i++ {
		select {
		case <-ctl.stop:
			if i >= controlMinLoops || ctl.isAborted() {
				return
			}
		default:
		}
		ctl.round(i)
		ctl.loops.Add(1)
	}
}

// finish stops the control client after its current round and waits for
// it; a control client stuck past waitBound has its connections closed.
func (ctl *control) finish() {
	ctl.stopOnce.Do(func() { close(ctl.stop) })
	select {
	case <-ctl.done:
		return
	case <-time.After(waitBound):
	}
	ctl.t.Errorf("control: still running %v after it was asked to stop; closing its connections", waitBound)
	ctl.mu.Lock()
	ctl.aborted = true
	for _, c := range ctl.conns {
		c.Close()
	}
	ctl.mu.Unlock()
	<-ctl.done // every read it makes has a deadline and now fails at once
}

func (ctl *control) isAborted() bool {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return ctl.aborted
}

// waitLoops waits until the control client has made n more rounds: the
// hostile client holds its ground meanwhile.
func (ctl *control) waitLoops(t *testing.T, n int64) {
	t.Helper()
	want := ctl.loops.Load() + n
	end := time.Now().Add(waitBound + time.Duration(n)*wedged)
	for ctl.loops.Load() < want {
		if time.Now().After(end) {
			t.Fatalf("the control client made %d of %d rounds", ctl.loops.Load()-want+n, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// record keeps one operation's latency and checks that the whole of it
// (which for a park includes its timeout) stayed under wedged.
func (ctl *control) record(what string, latency, whole time.Duration) {
	ctl.lat = append(ctl.lat, max(0, latency))
	if whole > wedged {
		ctl.t.Errorf("control %s took %v, over the %v that means the server is wedged", what, whole, wedged)
	}
}

// refusedFull says whether r is the 503 a full server gives a park, when
// the case fills the server.
func (ctl *control) refusedFull(r reply) bool {
	if !ctl.full || r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
		return false
	}
	var obj struct{ Status, Error string }
	return json.Unmarshal(r.body, &obj) == nil && obj.Status == "error" && obj.Error != ""
}

// round is one round of the control client's operations.
func (ctl *control) round(i int) {
	t := ctl.t
	// A short park: 200 ok, never before its timeout.
	const short = 50 * time.Millisecond
	id := "ctl-" + strconv.Itoa(i) + "-p"
	r, err := ctl.a.roundTrip(http.MethodGet, getRequest(parkPath(id, "0.05")))
	switch {
	case err != nil:
		ctl.a.failed("park "+id, err)
	case ctl.refusedFull(r):
		ctl.refused++
		ctl.record("park "+id, r.elapsed, r.elapsed)
	default:
		checkAnswer(t, "control park "+id, http.MethodGet, r)
		wantBody(t, "control park "+id, r, http.StatusOK, bodyOK)
		if r.elapsed < short {
			t.Errorf("control park %s answered after %v, before its timeout", id, r.elapsed)
		}
		ctl.record("park "+id, r.elapsed-short, r.elapsed)
	}

	// serverStatus: a JSON object of strings.
	r, err = ctl.b.roundTrip(http.MethodGet, getRequest("/api/serverStatus"))
	if err != nil {
		ctl.b.failed("serverStatus", err)
	} else {
		checkAnswer(t, "control serverStatus", http.MethodGet, r)
		if _, err := orderedStrings(r.body); r.code != http.StatusOK || err != nil {
			t.Errorf("control serverStatus: got %v (%v), want 200 and an object of strings", r, err)
		}
		ctl.record("serverStatus", r.elapsed, r.elapsed)
	}

	ctl.parkAndKill(i)
}

// parkAnswer is a parked request's answer as the control client reads it.
type parkAnswer struct {
	r   reply
	err error
	at  time.Time
}

// parkAndKill parks a long request on a and kills it on b as soon as it is
// listed: 200 for the kill, 500 for the park.
func (ctl *control) parkAndKill(i int) {
	t := ctl.t
	id := "ctl-" + strconv.Itoa(i) + "-k"
	sent := time.Now()
	if err := ctl.a.send(getRequest(parkPath(id, "5"))); err != nil {
		ctl.a.failed("park "+id, err)
		return
	}
	parked := make(chan parkAnswer, 1)
	go func() { // received below on every path; the read has a deadline
		r, err := ctl.a.read(http.MethodGet)
		parked <- parkAnswer{r, err, time.Now()}
	}()
	listed, early := ctl.pollListed(id, parked)
	switch {
	case early != nil && early.err != nil:
		ctl.a.failed("park "+id, early.err)
		return
	case early != nil && ctl.refusedFull(early.r):
		ctl.refused++
		ctl.record("park "+id, early.at.Sub(sent), early.at.Sub(sent))
		return
	case early != nil:
		t.Errorf("control park %s answered %v before it was listed", id, early.r)
		return
	case !listed: // reported; its timeout ends it
		if a := <-parked; a.err != nil {
			ctl.a.failed("park "+id, a.err)
		}
		return
	}
	killSent := time.Now()
	r, err := ctl.b.roundTrip(http.MethodPut, "PUT /api/kill?connId="+id+" HTTP/1.1\r\nHost: parkd\r\nContent-Length: 0\r\n\r\n")
	if err != nil {
		ctl.b.failed("kill "+id, err)
	} else {
		checkAnswer(t, "control kill "+id, http.MethodPut, r)
		wantBody(t, "control kill "+id, r, http.StatusOK, bodyOK)
		ctl.record("kill "+id, r.elapsed, r.elapsed)
	}
	a := <-parked
	if a.err != nil {
		ctl.a.failed("park "+id, a.err)
		return
	}
	checkAnswer(t, "control park "+id, http.MethodGet, a.r)
	wantBody(t, "control killed park "+id, a.r, http.StatusInternalServerError, bodyKilled)
	ctl.record("killed "+id, a.at.Sub(killSent), a.at.Sub(killSent))
}

// pollListed polls GET /api/requests/{id} until id is listed, or its park
// answers first (early), or wedged has passed.
func (ctl *control) pollListed(id string, parked <-chan parkAnswer) (listed bool, early *parkAnswer) {
	t := ctl.t
	for end := time.Now().Add(wedged); ; time.Sleep(time.Millisecond) {
		select {
		case a := <-parked:
			return false, &a
		default:
		}
		r, err := ctl.b.roundTrip(http.MethodGet, getRequest("/api/requests/"+id))
		if err != nil {
			ctl.b.failed("GET /api/requests/"+id, err)
			return false, nil
		}
		checkAnswer(t, "control GET /api/requests/"+id, http.MethodGet, r)
		ctl.record("GET /api/requests/"+id, r.elapsed, r.elapsed)
		switch {
		case r.code == http.StatusOK:
			return true, nil
		case r.code != http.StatusNotFound:
			t.Errorf("control GET /api/requests/%s: got %v, want 200 or 404", id, r)
			return false, nil
		case time.Now().After(end):
			t.Errorf("control park %s not listed within %v", id, wedged)
			return false, nil
		}
	}
}

// report logs the control latencies in one greppable line.
func (ctl *control) report(name string) {
	lat := slices.Clone(ctl.lat)
	slices.Sort(lat)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
	var p50, p99, worst time.Duration
	if n := len(lat); n > 0 {
		p50, p99, worst = lat[(n-1)/2], lat[(n*99+99)/100-1], lat[n-1]
	}
	ctl.t.Logf("control: case=%s ops=%d p50=%s p99=%s max=%s refused=%d", name, len(lat), ms(p50), ms(p99), ms(worst), ctl.refused)
}

// ctlConn is one of the control client's keep-alive connections; it
// reports to the test instead of failing it, as it runs on a goroutine.
type ctlConn struct {
	ctl  *control
	addr string
	c    net.Conn
	br   *bufio.Reader
}

func (cc *ctlConn) dial() error {
	c, err := net.DialTimeout("tcp", cc.addr, waitBound)
	if err != nil {
		return err
	}
	cc.ctl.mu.Lock()
	defer cc.ctl.mu.Unlock()
	if cc.ctl.aborted {
		c.Close()
		return errors.New("control aborted")
	}
	cc.ctl.conns = append(cc.ctl.conns, c)
	cc.c, cc.br = c, bufio.NewReader(c)
	return nil
}

// failed reports an I/O error and drops the connection; the next
// operation dials a new one.
func (cc *ctlConn) failed(what string, err error) {
	cc.ctl.t.Errorf("control %s: %v", what, err)
	if cc.c != nil {
		cc.c.Close()
		cc.c = nil
	}
}

func (cc *ctlConn) send(request string) error {
	if cc.c == nil {
		if err := cc.dial(); err != nil {
			return err
		}
	}
	cc.c.SetWriteDeadline(time.Now().Add(waitBound))
	_, err := io.WriteString(cc.c, request)
	return err
}

func (cc *ctlConn) read(method string) (reply, error) {
	cc.c.SetReadDeadline(time.Now().Add(waitBound))
	return readReply(cc.br, method)
}

func (cc *ctlConn) roundTrip(method, request string) (reply, error) {
	sent := time.Now()
	if err := cc.send(request); err != nil {
		return reply{}, err
	}
	r, err := cc.read(method)
	r.sent, r.elapsed = sent, time.Since(sent)
	return r, err
}

// ---- helpers for hostile clients ----

// connSet closes, at the latest in the test's cleanup, the connections a
// hostile client opened.
type connSet struct {
	mu    sync.Mutex
	conns []net.Conn
}

func newConnSet(t *testing.T) *connSet {
	s := &connSet{}
	t.Cleanup(s.closeAll)
	return s
}

func (s *connSet) dial(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		return nil, err
	}
	s.add(c)
	return &rawConn{c, bufio.NewReader(c)}, nil
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// dialMany opens n connections; any that fails fails the test.
func (s *connSet) dialMany(t *testing.T, addr string, n int) []*rawConn {
	t.Helper()
	conns := make([]*rawConn, n)
	var failed atomic.Int64
	each(n, 32, func(i int) {
		c, err := s.dial(addr)
		if err != nil {
			if failed.Add(1) == 1 {
				t.Errorf("dial %s: %v", addr, err)
			}
			return
		}
		conns[i] = c
	})
	if failed.Load() > 0 {
		t.Fatalf("%d of %d connections failed to open", failed.Load(), n)
	}
	return conns
}

// refusedOrClosed checks what every hostile request must get: a 4xx JSON
// answer, followed by a close when it is one of the answers after which
// the server cannot go on reading (400, 408, 431, or one that says
// Connection: close); or a close without an answer.
func refusedOrClosed(t *testing.T, what string, c *rawConn, deadline time.Time) (code int) {
	t.Helper()
	r, got, err := c.answerOrClose(http.MethodGet, deadline)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return -1
	}
	if !got {
		return 0
	}
	checkAnswer(t, what, http.MethodGet, r)
	if r.code < 400 || r.code > 499 {
		t.Errorf("%s: got %v, want a 4xx answer or a close", what, r)
	}
	switch {
	case r.code == http.StatusBadRequest, r.code == http.StatusRequestTimeout,
		r.code == http.StatusRequestHeaderFieldsTooLarge, strings.EqualFold(r.header.Get("Connection"), "close"):
		if err := c.closedWithNothing(deadline); err != nil {
			t.Errorf("%s: after %v: %v", what, r, err)
		}
	}
	return r.code
}

// tally counts what hostile connections got: an answer's status code, or
// 0 for a close without one.
type tally struct {
	mu sync.Mutex
	n  map[int]int
}

func (ty *tally) add(code int) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	if ty.n == nil {
		ty.n = map[int]int{}
	}
	ty.n[code]++
}

func (ty *tally) String() string {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(ty.n)) {
		what := strconv.Itoa(code)
		if code == 0 {
			what = "closed"
		} else if code < 0 {
			what = "failed"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", what, ty.n[code]))
	}
	return strings.Join(parts, " ")
}

// ---- the hostile cases ----

// junk is non-HTTP text and binary that clients do send to HTTP ports.
var junk = []string{
	"HELLO WORLD\r\n\r\n",
	"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\x5a", 32), // a TLS ClientHello
	"SSH-2.0-OpenSSH_9.6\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", // the HTTP/2 preface
	"EHLO parkd\r\nMAIL FROM:<a@b.c>\r\n",
	"GET /\r\n\r\n",
	" GET /api/serverStatus HTTP/1.1\r\n\r\n",
	"GET /api/serverStatus\x00 HTTP/1.1\r\nHost: parkd\r\n\r\n",
	"GET /api/serverStatus HTTP/1.1\r\nHost: parkd\r\nno colon here\r\n\r\n",
	"{\"connId\":12}\r\n\r\n",
	"\r\n\r\n\r\n\r\n",
	"\x00\x00\x00\x00\x00\x00\x00\x00",
}

// garbage is connection i's junk: random binary ended by a blank line;
// random binary, then a half-close; random text, then a half-close; one
// of junk, then a half-close. Seeded by i, so a failure can be replayed.
func garbage(i int) (payload []byte, halfClose bool) {
	rnd := rand.New(rand.NewPCG(0x9a7b, uint64(i)))
	n := 1 + rnd.IntN(2048)
	switch i % 4 {
	case 0, 1:
		payload = make([]byte, n)
		for j := range payload {
			payload[j] = byte(rnd.Uint32())
		}
		if i%4 == 0 {
			return append(payload, "\r\n\r\n"...), false
		}
		return payload, true
	case 2:
		const text = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :/?&=%\r\n\t"
		payload = make([]byte, n)
		for j := range payload {
			payload[j] = text[rnd.IntN(len(text))]
		}
		return payload, true
	}
	return []byte(junk[(i/4)%len(junk)]), true
}

// Random binary and non-HTTP text on 300 connections: each gets a 4xx
// JSON answer or a close.
func hostileGarbage(t *testing.T, ts *testServer, ctl *control) {
	const n = 300
	conns := newConnSet(t)
	var got tally
	each(n, 16, func(i int) {
		payload, halfClose := garbage(i)
		what := fmt.Sprintf("garbage #%d %s", i, clip(payload))
		c, err := conns.dial(ts.addr)
		if err != nil {
			t.Errorf("%s: dial: %v", what, err)
			return
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(waitBound))
		// The server may answer and close before it has read it all.
		if _, err := c.Write(payload); err == nil && halfClose {
			c.Conn.(*net.TCPConn).CloseWrite()
		}
		got.add(refusedOrClosed(t, what, c, time.Now().Add(waitBound)))
	})
	t.Logf("garbage: %d connections: %v", n, &got)
	ctl.waitLoops(t, 1)
}

// Requests with a 64 KiB header value: each gets 431 JSON, then a close.
func hostileHugeHeader(t *testing.T, ts *testServer, ctl *control) {
	const n = 40
	conns := newConnSet(t)
	request := getRequest("/api/serverStatus", "X-Huge: "+strings.Repeat("h", 64<<10)+"\r\n")
	each(n, 4, func(i int) {
		c, err := conns.dial(ts.addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(waitBound))
		io.WriteString(c, request) // the server stops reading at 8 KiB: the write may fail
		deadline := time.Now().Add(waitBound)
		r, got, err := c.answerOrClose(http.MethodGet, deadline)
		if err != nil || !got {
			t.Errorf("a 64 KiB header: no answer (%v), want 431", err)
			return
		}
		checkAnswer(t, "a 64 KiB header", http.MethodGet, r)
		wantError(t, "a 64 KiB header", r, http.StatusRequestHeaderFieldsTooLarge, "error")
		if err := c.closedWithNothing(deadline); err != nil {
			t.Errorf("a 64 KiB header: after the 431: %v", err)
		}
	})
	ctl.waitLoops(t, 1)
}

// slowloris: 200 connections send part of a request and stall, or trickle
// a byte every 100 ms. With ReadTimeout at 500 ms each is cut off, with a
// 408 JSON or a close, well within wedged.
func hostileSlowloris(t *testing.T, ts *testServer, ctl *control) {
	const n = 200
	conns := newConnSet(t)
	var got tally
	each(n, n, func(i int) {
		c, err := conns.dial(ts.addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		start := time.Now()
		c.SetWriteDeadline(start.Add(waitBound))
		var what string
		stopTrickle, trickled := make(chan struct{}), make(chan struct{})
		switch i % 3 {
		case 0:
			what = "half a request line"
			io.WriteString(c, "GET /api/serverStatus HT")
			close(trickled)
		case 1:
			what = "headers without their end"
			io.WriteString(c, "GET /api/serverStatus HTTP/1.1\r\nHost: parkd\r\nX-Slow: 1\r\n")
			close(trickled)
		default:
			what = "a byte every 100ms"
			go func() {
				defer close(trickled)
				req := getRequest("/api/serverStatus", "X-Slow: "+strings.Repeat("s", 200)+"\r\n")
				for j := range len(req) {
					if _, err := c.Write([]byte{req[j]}); err != nil {
						return // cut off
					}
					select {
					case <-stopTrickle:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}()
		}
		got.add(refusedOrClosed(t, "slowloris, "+what, c, start.Add(wedged)))
		close(stopTrickle)
		<-trickled
	})
	t.Logf("slowloris: %d connections: %v", n, &got)
	ctl.waitLoops(t, 1)
}

// 1,000 connections that send nothing, then 1,000 keep-alive connections
// left idle after one request: the control client keeps working while
// they are open, and the idle keep-alive ones are still served.
func hostileIdle(t *testing.T, ts *testServer, ctl *control) {
	const n = 1000
	silent := newConnSet(t)
	silent.dialMany(t, ts.addr, n)
	ctl.waitLoops(t, controlMinLoops)
	silent.closeAll()

	kept := newConnSet(t)
	conns := kept.dialMany(t, ts.addr, n)
	each(n, 32, func(i int) {
		c := conns[i]
		c.SetWriteDeadline(time.Now().Add(waitBound))
		if _, err := io.WriteString(c, getRequest("/healthz")); err != nil {
			t.Errorf("healthz on keep-alive connection %d: %v", i, err)
			return
		}
		r, got, err := c.answerOrClose(http.MethodGet, time.Now().Add(waitBound))
		if err != nil || !got {
			t.Errorf("healthz on keep-alive connection %d: no answer (%v)", i, err)
			return
		}
		wantBody(t, "healthz", r, http.StatusOK, bodyOK)
	})
	ctl.waitLoops(t, controlMinLoops)
	for i := 0; i < n; i += 100 { // still served after their idle spell
		conns[i].send(t, getRequest("/api/serverStatus"))
		if r := conns[i].read(t, http.MethodGet); r.code != http.StatusOK {
			t.Errorf("serverStatus on idle keep-alive connection %d: %v", i, r)
		}
	}
	kept.closeAll()
}

// badRequests are requests with invalid parameters; each answers 400.
var badRequests = []struct{ method, request string }{
	{"GET", getRequest("/api/request?connId=&timeout=1")},
	{"GET", getRequest("/api/request?timeout=1")},
	{"GET", getRequest("/api/request?connId=b&timeout=-1")},
	{"GET", getRequest("/api/request?connId=b&timeout=1e3")},
	{"GET", getRequest("/api/request?connId=b&timeout=.5")},
	{"GET", getRequest("/api/request?connId=b&timeout=99999")},
	{"GET", getRequest("/api/request?connId=%zz&timeout=1")},
	{"GET", getRequest("/api/request?connId=b&connId=c&timeout=1")},
	{"GET", getRequest("/api/request?connId=%01&timeout=1")},
	{"PUT", "PUT /api/kill HTTP/1.1\r\nHost: parkd\r\nContent-Length: 10\r\n\r\n{\"connId\":"},
	{"PUT", "PUT /api/kill?connId=nobody HTTP/1.1\r\nHost: parkd\r\nContent-Length: 0\r\n\r\n"},
}

// malformed is HTTP that cannot be read; each answers 400 and closes.
var malformed = []string{
	"HELLO WORLD\r\n\r\n",
	"GET /\r\n\r\n",
	"GET /api/serverStatus HTTP/1.1\r\nHost: parkd\r\nno colon here\r\n\r\n",
	"GET /api/serverStatus HTTP/1.1\r\nHost: parkd\r\nContent-Length: x\r\n\r\n",
	"PUT /api/kill HTTP/1.1\r\nHost: parkd\r\nContent-Length: -1\r\n\r\n",
	"PUT /api/kill HTTP/1.1\r\nHost: parkd\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}

// 10,000 requests with invalid parameters as fast as they go, pipelined
// on 10 keep-alive connections, then 300 malformed requests on fresh
// connections: every one answered 400, and counted so by /metrics.
func hostileBadRequests(t *testing.T, ts *testServer, ctl *control) {
	const conns, perConn, fresh = 10, 1000, 300
	set := newConnSet(t)
	var bad atomic.Int64
	each(conns, conns, func(k int) {
		c, err := set.dial(ts.addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		var all strings.Builder
		for j := range perConn {
			all.WriteString(badRequests[(k+j)%len(badRequests)].request)
		}
		written := make(chan error, 1)
		go func() { // written while the answers are read: both sides' buffers fill
			c.SetWriteDeadline(time.Now().Add(waitBound))
			_, err := io.WriteString(c, all.String())
			written <- err
		}()
		defer func() {
			if err := <-written; err != nil {
				t.Errorf("writing %d pipelined requests: %v", perConn, err)
			}
		}()
		for j := range perConn {
			br := badRequests[(k+j)%len(badRequests)]
			r, got, err := c.answerOrClose(br.method, time.Now().Add(waitBound))
			if err != nil || !got {
				t.Errorf("bad request %d on connection %d: no answer (%v)", j, k, err)
				c.Close() // ends the writer too
				return
			}
			checkAnswer(t, "bad request", br.method, r)
			if r.code != http.StatusBadRequest {
				t.Errorf("%q: got %v, want 400", br.request, r)
				c.Close()
				return
			}
			bad.Add(1)
		}
	})
	each(fresh, 16, func(i int) {
		raw := malformed[i%len(malformed)]
		c, err := set.dial(ts.addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(waitBound))
		io.WriteString(c, raw)
		deadline := time.Now().Add(waitBound)
		r, got, err := c.answerOrClose(http.MethodGet, deadline)
		if err != nil || !got {
			t.Errorf("malformed %s: no answer (%v), want 400", clip([]byte(raw)), err)
			return
		}
		wantError(t, "malformed "+clip([]byte(raw)), r, http.StatusBadRequest, "error")
		if err := c.closedWithNothing(deadline); err != nil {
			t.Errorf("malformed %s: after the 400: %v", clip([]byte(raw)), err)
		}
		bad.Add(1)
	})
	if want := int64(conns*perConn + fresh); bad.Load() != want {
		t.Errorf("%d requests answered 400, want %d", bad.Load(), want)
	}
	// The control client's requests are never 400s.
	if n, _ := metricSum(t, scrape(t, ts), "parkd_http_requests_total", "code", "400"); n != float64(bad.Load()) {
		t.Errorf("parkd_http_requests_total counts %v answers 400, want %d", n, bad.Load())
	}
	ctl.waitLoops(t, 1)
}

// A server with capacity 300 filled by 300 parked requests: all listed;
// one more park gets 503 + Retry-After: 1; serverStatus, kill, healthz
// and /metrics keep answering; when every client hangs up the server
// forgets them all within a second.
func hostileCapacity(t *testing.T, ts *testServer, ctl *control) {
	const n = 300
	set := newConnSet(t)
	conns := set.dialMany(t, ts.addr, n)
	id := func(i int) string { return "cap-" + strconv.Itoa(i) }
	// Each parks until it is listed: a 503 while filling means the control
	// client held a place at that moment, and is tried again.
	var filling atomic.Bool
	filling.Store(true)
	answers := make([]chan reply, n)
	for i, c := range conns {
		answers[i] = make(chan reply, 1)
		ts.goAsync(t, func() {
			for {
				c.SetWriteDeadline(time.Now().Add(waitBound))
				if _, err := io.WriteString(c, getRequest(parkPath(id(i), "60"))); err != nil {
					answers[i] <- reply{}
					return
				}
				r, got, err := c.answerOrClose(http.MethodGet, time.Now().Add(2*waitBound))
				if err == nil && got && r.code == http.StatusServiceUnavailable && filling.Load() {
					time.Sleep(2 * time.Millisecond)
					continue
				}
				answers[i] <- r // code 0: closed, or no answer in time
				return
			}
		})
	}
	listedHostile := func() []entry {
		return slices.DeleteFunc(ts.status(t), func(e entry) bool { return !strings.HasPrefix(e.id, "cap-") })
	}
	for end := time.Now().Add(waitBound); len(listedHostile()) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("only %d of %d parked requests listed within %v", len(listedHostile()), n, waitBound)
		}
	}
	filling.Store(false)
	ctl.waitLoops(t, 2)

	for _, timeout := range []string{"60", "0"} {
		r := ts.park(t, "cap-extra", timeout)
		wantError(t, "park 301 (timeout "+timeout+")", r, http.StatusServiceUnavailable, "error")
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Errorf("park 301: Retry-After %q, want \"1\"", got)
		}
	}
	text := scrape(t, ts)
	if v, _ := metricSum(t, text, "parkd_parked_requests"); v != n {
		t.Errorf("parkd_parked_requests %v at capacity, want %d", v, n)
	}
	if v, _ := metricSum(t, text, "parkd_outcomes_total", "outcome", "rejected"); v < 2 {
		t.Errorf(`parkd_outcomes_total{outcome="rejected"} %v, want at least the 2 refused parks`, v)
	}
	wantBody(t, "healthz at capacity", ts.get(t, "/healthz"), http.StatusOK, bodyOK)
	wantBody(t, "kill at capacity", ts.killJSON(t, id(0)), http.StatusOK, bodyOK)
	wantBody(t, "killed at capacity", await(t, id(0), answers[0]), http.StatusInternalServerError, bodyKilled)
	ctl.waitLoops(t, 2)

	hungUp := time.Now()
	for _, c := range conns[1:] {
		c.Close()
	}
	for {
		asked := time.Now()
		left := listedHostile()
		if len(left) == 0 {
			break
		}
		if asked.Sub(hungUp) > time.Second {
			t.Fatalf("%d of %d requests still listed %v after their clients hung up, want none after 1s",
				len(left), n-1, asked.Sub(hungUp).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 1; i < n; i++ {
		if r := await(t, id(i), answers[i]); r.code != 0 {
			t.Errorf("%s got an answer %v after its client hung up", id(i), r)
		}
	}
}

// smallSendBuffer gives every socket the server accepts the smallest send
// buffer, as a fasthttp ConnState hook.
func smallSendBuffer(c net.Conn, state fasthttp.ConnState) {
	if tc, ok := c.(*net.TCPConn); ok && state == fasthttp.StateNew {
		tc.SetWriteBuffer(4096)
	}
}

// dialSmallReceiveBuffer opens a connection whose receive buffer is the
// smallest there is, set before the handshake so the window stays small.
func dialSmallReceiveBuffer(set *connSet, addr string) (*rawConn, error) {
	d := net.Dialer{Timeout: waitBound, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		})
		return cmp.Or(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	set.add(c)
	return &rawConn{c, bufio.NewReader(c)}, nil
}

// Clients that read nothing, with the smallest receive buffer (and the
// server's send buffers at their smallest too, so they fill after a few
// dozen answers):
//
//   - one pipelines 60 parks of 0.1 s: the server answers them one after
//     the other until its buffers are full, then its write timeout ends
//     the connection; nothing else waits for it.
//   - one pipelines 200 parks of 60 s that the test kills one after the
//     other: every kill answers at once, also the one whose answer finds
//     the client's buffers full.
func hostileReadsNothing(t *testing.T, ts *testServer, ctl *control) {
	const quick, long = 60, 200
	set := newConnSet(t)
	qc, err := dialSmallReceiveBuffer(set, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := dialSmallReceiveBuffer(set, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	var q, l strings.Builder
	for i := range quick {
		q.WriteString(getRequest(parkPath("q-"+strconv.Itoa(i), "0.1")))
	}
	for i := range long {
		l.WriteString(getRequest(parkPath("l-"+strconv.Itoa(i), "60")))
	}
	qc.send(t, q.String())
	lc.send(t, l.String())

	// Watch the quick parks go by until none has been listed for five
	// seconds, fifty times their timeout (a loaded machine can stall the
	// server for a second or two): the last one listed is the one whose
	// answer found the buffers full (or the last of all, if they never
	// filled).
	type watched struct {
		last     int
		lastSeen time.Time
	}
	watch := make(chan watched, 1)
	ts.goAsync(t, func() {
		w := watched{last: -1}
		defer func() { watch <- w }()
		for end := time.Now().Add(waitBound + quick*time.Second/10); (w.last < 0 || time.Since(w.lastSeen) < 5*time.Second) && time.Now().Before(end); {
			r := ts.get(t, "/api/requests")
			var list []struct{ ConnID string }
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Errorf("GET /api/requests: %v: %v", r, err)
				return
			}
			for _, p := range list {
				if i, err := strconv.Atoi(strings.TrimPrefix(p.ConnID, "q-")); err == nil && strings.HasPrefix(p.ConnID, "q-") {
					w.last, w.lastSeen = max(w.last, i), time.Now()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// Kill the long parks one after the other, each as soon as it is
	// listed, until one is not listed within wedged: the answers before it
	// have filled the buffers. (This runs while the quick parks fill
	// theirs, and is done long before their write timeout.)
	kills := 0
	for i := range long {
		id := "l-" + strconv.Itoa(i)
		listed := false
		for end := time.Now().Add(wedged); !listed && time.Now().Before(end); {
			if r := ts.get(t, "/api/requests/"+id); r.code == http.StatusOK {
				listed = true
			} else if r.code != http.StatusNotFound {
				t.Fatalf("GET /api/requests/%s: %v", id, r)
			} else {
				time.Sleep(2 * time.Millisecond)
			}
		}
		if !listed {
			break
		}
		r := ts.killJSON(t, id)
		wantBody(t, "kill "+id, r, http.StatusOK, bodyOK)
		if r.elapsed > wedged {
			t.Errorf("kill %s took %v: a kill waits for the killed request's answer to be written, "+
				"and a client that reads nothing holds it up to the write timeout (%v)", id, r.elapsed.Round(time.Millisecond), writeTimeout)
			break
		}
		kills++
	}
	t.Logf("readsnothing: %d kills answered before the killed client's buffers were full", kills)

	var w watched
	select {
	case w = <-watch:
	case <-time.After(2*waitBound + quick*time.Second/10):
		t.Fatal("the watcher of the quick parks did not finish")
	}
	switch w.last {
	case -1:
		t.Fatalf("no quick park was ever listed")
	case quick - 1:
		t.Logf("readsnothing: the buffers never filled: all %d quick parks were answered", quick)
	default:
		// The server gives up on the answer it could not write after its
		// write timeout, and closes the connection. Until then reading
		// would let it go on; after it, it finds the answers written
		// before, then the close.
		time.Sleep(time.Until(w.lastSeen.Add(writeTimeout + 2*time.Second)))
	}
	qc.SetReadDeadline(time.Now().Add(waitBound))
	answered := 0
	for ; answered < quick; answered++ {
		r, err := readReply(qc.br, http.MethodGet)
		if err != nil && r.code == 0 {
			if !isClosed(err) {
				t.Errorf("after %d answers the connection was not closed: %v", answered, err)
			}
			break
		}
		if isClosed(err) {
			break // the answer the server gave up on
		}
		if err != nil || r.code != http.StatusOK || string(r.body) != bodyOK {
			t.Errorf("quick park %d: got %v (%v), want 200 %s", answered, r, err, bodyOK)
		}
	}
	switch {
	case w.last < quick-1 && answered == quick:
		t.Errorf("all %d answers arrived, though q-%d's found the buffers full: the server kept the connection past its write timeout", answered, w.last)
	case w.last == quick-1 && answered != quick:
		t.Errorf("%d answers arrived, want %d", answered, quick)
	}
	t.Logf("readsnothing: %d of %d quick parks answered before the write timeout ended the connection", answered, quick)
	set.closeAll()
}
