package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkd/parkd/wire"
)

// fakeServer implements just enough of the parkd contract for end-to-end tests,
// section 6 included: then (one action) on a park and on a kill, body, drip,
// and a parkd_piece_lateness_seconds histogram. broken makes it break section 6
// in one way, so a test can see the tool catch it.
type fakeServer struct {
	broken string // "", "kill_ignores_then", "close_as_reset", "short_drip" or "late_when_busy"

	mu       sync.Mutex
	parked   map[string]*fakeEntry
	dripping int       // bodies dripping now
	pieces   []float64 // lateness recorded for each piece written, seconds
	answers  []float64 // and for each answer at its deadline
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
	f := &fakeServer{broken: broken, parked: map[string]*fakeEntry{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/request", f.request)
	mux.HandleFunc("GET /api/serverStatus", f.status)
	mux.HandleFunc("PUT /api/kill", f.kill)
	mux.HandleFunc("GET /metrics", f.metrics)
	srv := httptest.NewServer(mux)
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
