package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The net/http twin's side of parkd's HTTP benchmarks (../../bench_test.go):
// the same workloads under the same names, so that benchstat can set them
// side by side. The twin is served by an http.Server configured as in
// main and reached with net/http clients over loopback TCP, since net/http
// has no in-memory listener; compare these figures with parkd's
// BenchmarkHTTPParkZeroTCP for the same transport (parkd's other HTTP
// benchmarks use an in-memory listener and so are cheaper by a loopback
// round trip). Allocations counted include the client's, which is in the
// same process.
//
// No timing assertions. Each benchmark removes what it parked, closes the
// server and the client's connections before returning, so they also run
// with -benchtime 1x.

// benchCapacity is far more than any benchmark parks, and does not
// depend on the open-file limit.
const benchCapacity = 1 << 20

// benchTwin is a twin served on 127.0.0.1:0 and a client for it.
type benchTwin struct {
	t      *twin
	srv    *http.Server
	served chan error
	client *http.Client
	base   string
}

func startTwin(b *testing.B) *benchTwin {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	t := newTwin(time.Hour, benchCapacity)
	bt := &benchTwin{
		t: t,
		srv: &http.Server{ // as main configures it
			Handler:           t,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    8 << 10,
		},
		served: make(chan error, 1),
		client: &http.Client{Transport: &http.Transport{
			// One idle connection kept per parallel client goroutine
			// (the default keeps 2 per host).
			MaxIdleConnsPerHost: 256,
			DisableCompression:  true,
		}},
		base: "http://" + ln.Addr().String(),
	}
	go func() { bt.served <- bt.srv.Serve(ln) }()
	return bt
}

// stop closes the client's idle connections and the server with its
// connections, and waits for Serve to return.
func (bt *benchTwin) stop(b *testing.B) {
	b.Helper()
	bt.client.CloseIdleConnections()
	if err := bt.srv.Close(); err != nil {
		b.Error(err)
	}
	if err := <-bt.served; !errors.Is(err, http.ErrServerClosed) {
		b.Error(err)
	}
}

// do sends req, reads the whole answer and reports one other than want;
// false if so.
func (bt *benchTwin) do(b *testing.B, req *http.Request, want int, buf *bytes.Buffer) bool {
	resp, err := bt.client.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		b.Error(err)
		return false
	}
	if resp.StatusCode != want {
		b.Errorf("%s %s: %d %s, want %d", req.Method, req.URL, resp.StatusCode, buf, want)
		return false
	}
	return true
}

// connIDs hands out connIds unique within one benchmark run.
type connIDs struct{ n atomic.Uint64 }

func (c *connIDs) next(prefix string) string {
	return prefix + strconv.FormatUint(c.n.Add(1), 10)
}

// put parks id directly in the twin's map with its deadline timeout away,
// as its park handler does minus the goroutine waiting on it.
func (t *twin) put(id string, timeout time.Duration) *entry {
	e := &entry{deadline: time.Now().Add(timeout), killed: make(chan struct{})}
	t.mu.Lock()
	t.parked[id] = e
	t.mu.Unlock()
	return e
}

// BenchmarkHTTPParkZero is GET /api/request?connId=<unique>&timeout=0.
func BenchmarkHTTPParkZero(b *testing.B) {
	bt := startTwin(b)
	defer bt.stop(b)
	var seq connIDs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var buf bytes.Buffer
		for pb.Next() {
			req, err := http.NewRequest(http.MethodGet, bt.base+"/api/request?connId="+seq.next("z")+"&timeout=0", nil)
			if err != nil {
				b.Error(err)
				return
			}
			if !bt.do(b, req, http.StatusOK, &buf) {
				return
			}
		}
	})
	b.StopTimer()
}

// BenchmarkHTTPServerStatus is GET /api/serverStatus with N parked. They
// are put directly in the twin's map, with deadlines an hour away, once
// per sub-benchmark and removed after it: parking them through HTTP would
// hold N connections open for the whole run.
func BenchmarkHTTPServerStatus(b *testing.B) {
	bt := startTwin(b)
	defer bt.stop(b)
	for _, n := range []int{0, 1000, 10_000} {
		var ids []string
		b.Run("parked="+strconv.Itoa(n), func(b *testing.B) {
			if ids == nil {
				ids = make([]string, 0, n)
				for i := range n {
					id := "s" + strconv.Itoa(i)
					// Distinct deadlines in no particular order, as in
					// parkd's benchmark.
					bt.t.put(id, time.Hour+time.Duration(i*7919%n)*time.Millisecond)
					ids = append(ids, id)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var buf bytes.Buffer
				for pb.Next() {
					req, err := http.NewRequest(http.MethodGet, bt.base+"/api/serverStatus", nil)
					if err != nil {
						b.Error(err)
						return
					}
					if !bt.do(b, req, http.StatusOK, &buf) {
						return
					}
					// Each entry is "id":"seconds"; count them.
					if got := bytes.Count(buf.Bytes(), []byte(`":"`)); got != n {
						b.Errorf("serverStatus lists %d, want %d", got, n)
						return
					}
				}
			})
			b.StopTimer()
		})
		bt.t.mu.Lock()
		for _, id := range ids {
			delete(bt.t.parked, id)
		}
		bt.t.mu.Unlock()
	}
}

// BenchmarkHTTPKill parks a request directly in the twin's map and kills
// it with PUT /api/kill and a JSON body; the kill answers 200 after
// closing the entry's killed channel, which is how the parked side hears
// of it.
func BenchmarkHTTPKill(b *testing.B) {
	bt := startTwin(b)
	defer bt.stop(b)
	var seq connIDs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var buf bytes.Buffer
		for pb.Next() {
			id := seq.next("k")
			e := bt.t.put(id, time.Hour)
			req, err := http.NewRequest(http.MethodPut, bt.base+"/api/kill", strings.NewReader(`{"connId":"`+id+`"}`))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			if !bt.do(b, req, http.StatusOK, &buf) {
				return
			}
			select {
			case <-e.killed:
			default:
				b.Errorf("kill of %s answered 200 but the parked side was not told", id)
				return
			}
		}
	})
	b.StopTimer()
	bt.t.mu.Lock()
	left := len(bt.t.parked)
	bt.t.mu.Unlock()
	if left != 0 {
		b.Errorf("%d requests still parked after every kill", left)
	}
}
