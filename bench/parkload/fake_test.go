package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeServer implements just enough of the parkd contract for end-to-end tests.
type fakeServer struct {
	mu     sync.Mutex
	parked map[string]*fakeEntry
}

type fakeEntry struct {
	deadline time.Time
	kill     chan struct{}
}

// startFake serves the fake on 127.0.0.1:0 until the test ends.
func startFake(t *testing.T) *httptest.Server {
	t.Helper()
	f := &fakeServer{parked: map[string]*fakeEntry{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/request", f.request)
	mux.HandleFunc("GET /api/serverStatus", f.status)
	mux.HandleFunc("PUT /api/kill", f.kill)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n := len(f.parked)
		f.mu.Unlock()
		fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\ngo_memstats_heap_inuse_bytes 1.048576e+06\nparked{x=\"y\"} 3\n", 10+n)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) request(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("connId")
	secs, err := strconv.ParseFloat(r.URL.Query().Get("timeout"), 64)
	if id == "" || err != nil || secs < 0 {
		writeJSON(w, 400, map[string]string{"status": "error"})
		return
	}
	d := time.Duration(math.Round(secs*1000)) * time.Millisecond
	e := &fakeEntry{deadline: time.Now().Add(d), kill: make(chan struct{})}
	f.mu.Lock()
	if _, dup := f.parked[id]; dup {
		f.mu.Unlock()
		writeJSON(w, 409, map[string]string{"status": "error"})
		return
	}
	f.parked[id] = e
	f.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		f.mu.Lock()
		mine := f.parked[id] == e
		if mine {
			delete(f.parked, id)
		}
		f.mu.Unlock()
		if mine {
			writeJSON(w, 200, map[string]string{"status": "ok"})
		} else { // a kill won the race
			writeJSON(w, 500, map[string]string{"status": "killed"})
		}
	case <-e.kill:
		writeJSON(w, 500, map[string]string{"status": "killed"})
	case <-r.Context().Done():
		f.mu.Lock()
		if f.parked[id] == e {
			delete(f.parked, id)
		}
		f.mu.Unlock()
	}
}

func (f *fakeServer) status(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	now := time.Now()
	f.mu.Lock()
	for id, e := range f.parked {
		out[id] = strconv.Itoa(int(math.Ceil(e.deadline.Sub(now).Seconds())))
	}
	f.mu.Unlock()
	writeJSON(w, 200, out)
}

func (f *fakeServer) kill(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ConnID string `json:"connId"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, 400, map[string]string{"status": "error"})
		return
	}
	f.mu.Lock()
	e, ok := f.parked[body.ConnID]
	if ok {
		delete(f.parked, body.ConnID)
		close(e.kill)
	}
	f.mu.Unlock()
	if !ok {
		writeJSON(w, 400, map[string]string{"status": "invalid connection Id : " + body.ConnID})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ok"})
}
