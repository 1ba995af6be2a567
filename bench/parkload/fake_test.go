package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkd/parkd/wire"
)

// fakeServer implements just enough of the parkd contract for end-to-end tests,
// section 6 included: then (one action) on a park and on a kill, body, drip,
// and a parkd_piece_lateness_seconds histogram; and section 7's event stream
// (fakeEvents). broken makes it break section 6 or 7 in one way, so a test can
// see the tool catch it.
type fakeServer struct {
	// "", "kill_ignores_then", "close_as_reset", "short_drip", "late_when_busy";
	// for the event stream "ids_not_increasing", "lost_event", "keeps_stuck",
	// "not_event_stream" or "parked_for_zero".
	broken string

	mu       sync.Mutex
	parked   map[string]*fakeEntry
	dripping int       // bodies dripping now
	pieces   []float64 // lateness recorded for each piece written, seconds
	answers  []float64 // and for each answer at its deadline
	events   fakeEvents
}

type fakeEntry struct {
	deadline time.Time
	kill     chan struct{}
	then     wire.Action // the kill's; set before kill is closed
}

// startFake serves the fake on 127.0.0.1:0 until the test ends.
func startFake(t *testing.T) *httptest.Server {
	return startBrokenFake(t, "")
}

func startBrokenFake(t *testing.T, broken string) *httptest.Server {
	t.Helper()
	return startFakeCounting(t, broken, nil)
}

// startFakeCounting is startBrokenFake that also counts, in parks, the
// park requests it was sent.
func startFakeCounting(t *testing.T, broken string, parks *atomic.Int64) *httptest.Server {
	t.Helper()
	f := &fakeServer{broken: broken, parked: map[string]*fakeEntry{}, events: fakeEvents{subs: map[*fakeSub]struct{}{}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/request", f.request)
	mux.HandleFunc("GET /api/serverStatus", f.status)
	mux.HandleFunc("PUT /api/kill", f.kill)
	mux.HandleFunc("GET /metrics", f.metrics)
	mux.HandleFunc("GET /api/events", f.stream)
	var h http.Handler = mux
	if parks != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/request" {
				parks.Add(1)
			}
			mux.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, fakeConnKey{}, c)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) metrics(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\ngo_memstats_heap_inuse_bytes 1.048576e+06\nparked{x=\"y\"} 3\n", 10+len(f.parked))
	f.events.metrics(w)
	for name, samples := range map[string][]float64{histPieceLateness: f.pieces, histAnswerLateness: f.answers} {
		fmt.Fprintf(w, "# TYPE %s histogram\n", name)
		for _, le := range []float64{.001, .005, .05, 1, 0} { // 0 stands for +Inf
			n := 0
			for _, p := range samples {
				if p <= le || le == 0 {
					n++
				}
			}
			bound := strconv.FormatFloat(le, 'g', -1, 64)
			if le == 0 {
				bound = "+Inf"
			}
			fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", name, bound, n)
		}
		fmt.Fprintf(w, "%s_count %d\n", name, len(samples))
	}
}

func (f *fakeServer) request(w http.ResponseWriter, r *http.Request) {
	p, err := wire.ParsePark([]byte(r.URL.RawQuery), time.Hour)
	if err != nil {
		writeJSON(w, 400, map[string]string{"status": "error"})
		return
	}
	then, body, drip := wire.Action(200), 0, time.Duration(0)
	if sh := p.Shape; sh != nil {
		if a, ok := sh.Then.Only(); ok {
			then = a
		}
		body, drip = sh.Body, sh.Drip
	}
	e := &fakeEntry{deadline: time.Now().Add(p.Timeout), kill: make(chan struct{})}
	f.mu.Lock()
	if _, dup := f.parked[p.ConnID]; dup {
		f.mu.Unlock()
		writeJSON(w, 409, map[string]string{"status": "error"})
		return
	}
	f.parked[p.ConnID] = e
	f.mu.Unlock()
	if p.Timeout > 0 || f.broken == "parked_for_zero" {
		f.publish("parked", fmt.Sprintf(`{"connId":%q,"timeoutMs":%d,"startedAt":%q}`, p.ConnID, p.Timeout.Milliseconds(), fakeTime(e.deadline.Add(-p.Timeout))))
	}
	defer func() {
		f.publish("finished", fmt.Sprintf(`{"connId":%q,"outcome":"ok","startedAt":%q,"endedAt":%q}`, p.ConnID, fakeTime(e.deadline.Add(-p.Timeout)), fakeTime(time.Now())))
	}()
	timer := time.NewTimer(p.Timeout)
	defer timer.Stop()
	select {
	case <-timer.C:
		f.mu.Lock()
		mine := f.parked[p.ConnID] == e
		if mine {
			delete(f.parked, p.ConnID)
			f.answers = append(f.answers, time.Since(e.deadline).Seconds())
		}
		f.mu.Unlock()
		if mine {
			f.end(w, then, okJSON, body, drip, e.deadline)
		} else { // a kill won the race
			<-e.kill
			f.end(w, e.then, killedJSON, body, 0, e.deadline)
		}
	case <-e.kill:
		f.end(w, e.then, killedJSON, body, 0, e.deadline)
	case <-r.Context().Done():
		f.mu.Lock()
		if f.parked[p.ConnID] == e {
			delete(f.parked, p.ConnID)
		}
		f.mu.Unlock()
	}
}

// end applies action a: an answer with json padded to body bytes (dripping
// over drip after deadline for a 200), or an ending that is not HTTP.
func (f *fakeServer) end(w http.ResponseWriter, a wire.Action, json string, body int, drip time.Duration, deadline time.Time) {
	if a == wire.ActionClose && f.broken == "close_as_reset" {
		a = wire.ActionReset
	}
	b := json + strings.Repeat(" ", max(0, body-len(json)))
	if !a.IsStatus() {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		switch a {
		case wire.ActionReset:
			_ = conn.(*net.TCPConn).SetLinger(0)
		case wire.ActionGarbage:
			_, _ = io.WriteString(conn, "\x00not HTTP, only garbage\r\n")
		case wire.ActionTruncate:
			code := 200
			if json == killedJSON {
				code = 500
			}
			_, _ = fmt.Fprintf(conn, "HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s", code, len(b), b[:(len(b)-1)/2])
		}
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if drip == 0 || a != 200 {
		writeRaw(w, int(a), b)
		return
	}
	f.drip(w, b, drip, deadline)
}

func writeRaw(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// drip sends b in the contract's pieces, recording each one's lateness.
func (f *fakeServer) drip(w http.ResponseWriter, b string, drip time.Duration, deadline time.Time) {
	_, n := dripShape(len(b), drip)
	rc := http.NewResponseController(w)
	w.WriteHeader(200)
	_ = rc.Flush()
	f.mu.Lock()
	f.dripping++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.dripping--
		f.mu.Unlock()
	}()
	sent := 0
	for k := 1; k <= n; k++ {
		due := deadline.Add(drip * time.Duration(k) / time.Duration(n))
		time.Sleep(time.Until(due))
		// Recorded before the write, as parkd does: once the client has the
		// last byte, the histogram holds every piece.
		late := time.Since(due).Seconds()
		f.mu.Lock()
		if f.broken == "late_when_busy" {
			late = 0 // what is recorded depends on how busy the fake is, not on the machine
			if f.dripping > 10 {
				late = 0.1
			}
		}
		f.pieces = append(f.pieces, late)
		f.mu.Unlock()
		to := len(b) * k / n
		if f.broken == "short_drip" && k == n {
			to-- // one byte short, then the handler returns: net/http closes
		}
		if _, err := io.WriteString(w, b[sent:to]); err != nil || rc.Flush() != nil {
			return
		}
		sent = to
	}
}

func (f *fakeServer) status(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	now := time.Now()
	f.mu.Lock()
	for id, e := range f.parked {
		out[id] = strconv.Itoa(int(max(1, (e.deadline.Sub(now)+time.Second-1)/time.Second)))
	}
	f.mu.Unlock()
	writeJSON(w, 200, out)
}

func (f *fakeServer) kill(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	k, err := wire.ParseKill([]byte(r.URL.RawQuery), body)
	if err != nil {
		writeJSON(w, 400, map[string]string{"status": "error"})
		return
	}
	then := wire.Action(500)
	if a, ok := k.Then.Only(); ok && f.broken != "kill_ignores_then" {
		then = a
	}
	f.mu.Lock()
	e, ok := f.parked[k.ConnID]
	if ok {
		delete(f.parked, k.ConnID)
		e.then = then
		close(e.kill)
	}
	f.mu.Unlock()
	if !ok {
		writeJSON(w, 400, map[string]string{"status": "invalid connection Id : " + k.ConnID})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ok"})
}

// fakeEvents is the fake's event hub: each subscriber has a queue of
// frames that its handler writes. A write blocked for fakeStall drops the
// subscriber, as parkd drops one that takes no byte for 10 s; the fake's
// streams have a small send buffer, so that a client that stops reading
// blocks the handler's writes soon.
type fakeEvents struct {
	mu        sync.Mutex
	seq       int
	finished  int
	subs      map[*fakeSub]struct{}
	published int
	dropped   int
}

type fakeSub struct {
	queue [][]byte
	wake  chan struct{} // one token: the queue has grown
}

// fakeStall is how long a write may block before the fake drops its stream.
const fakeStall = 2 * time.Second

type fakeConnKey struct{}

func fakeTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// publish hands an event to every subscriber, numbered one above the last.
func (f *fakeServer) publish(event, data string) {
	ev := &f.events
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.subs) == 0 {
		return
	}
	ev.seq++
	id := ev.seq
	if event == "finished" {
		ev.finished++
		if f.broken == "lost_event" && ev.finished == 3 {
			return
		}
	}
	if f.broken == "ids_not_increasing" && id%7 == 0 {
		id -= 3
	}
	frame := []byte(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", id, event, data))
	ev.published++
	for s := range ev.subs {
		s.queue = append(s.queue, frame)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (ev *fakeEvents) metrics(w io.Writer) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	fmt.Fprintf(w, "parkd_event_subscribers %d\nparkd_event_subscribers_dropped_total %d\nparkd_events_published_total %d\n", len(ev.subs), ev.dropped, ev.published)
}

// stream is GET /api/events: the snapshot, then the queued frames as they come.
func (f *fakeServer) stream(w http.ResponseWriter, r *http.Request) {
	conn, _ := r.Context().Value(fakeConnKey{}).(*net.TCPConn)
	if conn != nil {
		_ = conn.SetWriteBuffer(4096)
	}
	ct := "text/event-stream"
	if f.broken == "not_event_stream" {
		ct = "text/plain"
	}
	w.Header().Set("Content-Type", ct)
	rc := http.NewResponseController(w)
	ev := &f.events
	s := &fakeSub{wake: make(chan struct{}, 1)}
	ev.mu.Lock()
	ev.subs[s] = struct{}{}
	ev.mu.Unlock()
	defer func() {
		ev.mu.Lock()
		delete(ev.subs, s)
		ev.mu.Unlock()
	}()
	snapshot, _ := json.Marshal([]string{})
	next := []byte("retry: 1000\n\n: hello\n\nevent: snapshot\ndata: " + string(snapshot) + "\n\n")
	for {
		if f.broken != "keeps_stuck" {
			_ = rc.SetWriteDeadline(time.Now().Add(fakeStall))
		}
		_, err := w.Write(next)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				ev.mu.Lock()
				ev.dropped++
				ev.mu.Unlock()
			}
			return
		}
		select {
		case <-s.wake:
		case <-r.Context().Done():
			return
		}
		ev.mu.Lock()
		next = bytes.Join(s.queue, nil)
		s.queue = nil
		ev.mu.Unlock()
	}
}
