package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkd/parkd/cluster"
	"github.com/parkd/parkd/registry"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// HTTP-level benchmarks: a real parkd server (newServer + serve) and
// fasthttp clients, on an in-memory listener so the figures show parkd's
// own costs rather than the kernel's loopback; BenchmarkHTTPParkZeroTCP
// runs over loopback TCP too. bench/twin/bench_test.go has the same
// benchmarks, by the same names, against the net/http twin (over loopback
// TCP only: net/http has no in-memory listener); compare the twin with
// BenchmarkHTTPParkZeroTCP for the same transport. Allocations counted
// include the client's, which is in the same process.
//
// No timing assertions. Every benchmark stops its server (which decides
// whatever is still parked) and closes its client before returning, so
// they also run with -benchtime 1x.

// benchServer is a parkd server and a client connected to it.
type benchServer struct {
	s      *server
	client *fasthttp.HostClient
	cancel context.CancelFunc
	served chan int
	base   string // scheme and host of request URIs
}

// startBench starts parkd with the default configuration but no shutdown
// grace, on an in-memory listener or, with tcp, on 127.0.0.1:0.
func startBench(b *testing.B, tcp bool) *benchServer {
	b.Helper()
	cfg := defaultConfig()
	cfg.grace = 0
	// Fixed rather than derived from the open-file limit, so that
	// BenchmarkHTTPServerStatus can park 10k where the limit is 1024.
	cfg.capacity = 1 << 20
	s, err := newServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	client := &fasthttp.HostClient{
		Name: "parkd-bench",
		// The pool's cleaner goroutine wakes this often and exits once
		// CloseIdleConnections has emptied the pool; the default (10 s)
		// would leave it behind for that long.
		MaxIdleConnDuration: 50 * time.Millisecond,
	}
	var ln net.Listener
	if tcp {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			s.close()
			b.Fatal(err)
		}
		client.Addr = ln.Addr().String()
		// A plain dialer: fasthttp's default one starts a DNS-cache
		// goroutine that lives as long as the process.
		var d net.Dialer
		client.Dial = func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) }
	} else {
		mem := fasthttputil.NewInmemoryListener()
		ln = mem
		client.Addr = "parkd.bench"
		client.Dial = func(string) (net.Conn, error) { return mem.Dial() }
	}
	ctx, cancel := context.WithCancel(context.Background())
	bs := &benchServer{s: s, client: client, cancel: cancel, served: make(chan int, 1), base: "http://" + client.Addr}
	go func() { bs.served <- s.serve(ctx, ln) }()
	return bs
}

// stop closes the client's connections and shuts the server down: it
// decides Shutdown for whatever is still parked and returns once serve
// has.
func (bs *benchServer) stop(b *testing.B) {
	b.Helper()
	bs.client.CloseIdleConnections()
	bs.cancel()
	if code := <-bs.served; code != 0 {
		b.Errorf("serve returned %d", code)
	}
	if err := bs.s.close(); err != nil {
		b.Error(err)
	}
}

// exchange is one goroutine's reusable request and response.
type exchange struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	buf  []byte // the request URI or body being built
}

func newExchange() *exchange {
	return &exchange{req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
}

func (x *exchange) release() {
	fasthttp.ReleaseRequest(x.req)
	fasthttp.ReleaseResponse(x.resp)
}

// do sends x.req and reports an answer other than want; false if so.
func (x *exchange) do(b *testing.B, c *fasthttp.HostClient, want int) bool {
	if err := c.Do(x.req, x.resp); err != nil {
		b.Error(err)
		return false
	}
	if code := x.resp.StatusCode(); code != want {
		b.Errorf("%s %s: %d %s, want %d", x.req.Header.Method(), x.req.RequestURI(), code, x.resp.Body(), want)
		return false
	}
	return true
}

// connIDs hands out connIds unique within one benchmark run.
type connIDs struct{ n atomic.Uint64 }

func (c *connIDs) append(b []byte, prefix string) []byte {
	return strconv.AppendUint(append(b, prefix...), c.n.Add(1), 10)
}

func (c *connIDs) next(prefix string) string {
	return prefix + strconv.FormatUint(c.n.Add(1), 10)
}

// BenchmarkHTTPParkZero is GET /api/request?connId=<unique>&timeout=0,
// which passes every check of a park and answers at once, over an
// in-memory listener.
func BenchmarkHTTPParkZero(b *testing.B) {
	benchParkZero(b, false)
}

// BenchmarkHTTPParkZeroTCP is BenchmarkHTTPParkZero over loopback TCP,
// the twin's transport.
func BenchmarkHTTPParkZeroTCP(b *testing.B) {
	benchParkZero(b, true)
}

func benchParkZero(b *testing.B, tcp bool) {
	bs := startBench(b, tcp)
	defer bs.stop(b)
	var seq connIDs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := newExchange()
		defer x.release()
		for pb.Next() {
			x.buf = seq.append(append(x.buf[:0], bs.base...), "/api/request?connId=z")
			x.buf = append(x.buf, "&timeout=0"...)
			x.req.SetRequestURIBytes(x.buf)
			if !x.do(b, bs.client, fasthttp.StatusOK) {
				return
			}
		}
	})
	b.StopTimer()
}

// BenchmarkHTTPServerStatus is GET /api/serverStatus with N requests
// parked. Parking N through HTTP would take N client connections each
// held open for the whole benchmark (and as many file descriptors), so
// they are parked directly in the server's registry instead, with a no-op
// deliver and an hour's timeout so none answers or expires during the
// run; the listing is the same, it reads only the registry. They are
// parked once per sub-benchmark and killed after it.
func BenchmarkHTTPServerStatus(b *testing.B) {
	bs := startBench(b, false)
	defer bs.stop(b)
	for _, n := range []int{0, 1000, 10_000} {
		var ids []string
		b.Run("parked="+strconv.Itoa(n), func(b *testing.B) {
			if ids == nil {
				ids = make([]string, 0, n)
				for i := range n {
					id := "s" + strconv.Itoa(i)
					// Distinct deadlines in no particular order, so the
					// listing's sort has work to do.
					timeout := time.Hour + time.Duration(i*7919%n)*time.Millisecond
					if _, err := bs.s.reg.Park(registry.Request{ConnID: id, Timeout: timeout, RemoteAddr: "127.0.0.1:1"},
						nopOwner{}); err != nil {
						b.Fatalf("parking %s: %v", id, err)
					}
					ids = append(ids, id)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				x := newExchange()
				defer x.release()
				x.req.SetRequestURI(bs.base + "/api/serverStatus")
				for pb.Next() {
					if !x.do(b, bs.client, fasthttp.StatusOK) {
						return
					}
					// Each entry is "id":"seconds"; count them.
					if got := bytes.Count(x.resp.Body(), []byte(`":"`)); got != n {
						b.Errorf("serverStatus lists %d, want %d", got, n)
						return
					}
				}
			})
			b.StopTimer()
		})
		for _, id := range ids {
			if err := bs.s.reg.Kill(id, 0); err != nil {
				b.Errorf("kill %s: %v", id, err)
			}
		}
	}
}

// BenchmarkHTTPKill parks a request directly in the registry (as the park
// handler does, with a deliver that here counts instead of answering) and
// kills it with PUT /api/kill and a JSON body; the kill answers 200 after
// the registry delivered Killed to the parked side.
func BenchmarkHTTPKill(b *testing.B) {
	bs := startBench(b, false)
	defer bs.stop(b)
	var killed, wrong, ops atomic.Int64
	deliver := countingOwner(func(o registry.Outcome) {
		if o != registry.Killed {
			wrong.Add(1)
		}
		killed.Add(1)
	})
	var seq connIDs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := newExchange()
		defer x.release()
		x.req.Header.SetMethod(fasthttp.MethodPut)
		x.req.Header.SetContentType("application/json")
		x.req.SetRequestURI(bs.base + "/api/kill")
		var n int64
		defer func() { ops.Add(n) }()
		for pb.Next() {
			id := seq.next("k")
			if _, err := bs.s.reg.Park(registry.Request{ConnID: id, Timeout: time.Hour, RemoteAddr: "127.0.0.1:1"}, deliver); err != nil {
				b.Error("park:", err)
				return
			}
			x.buf = append(append(append(x.buf[:0], `{"connId":"`...), id...), `"}`...)
			x.req.SetBodyRaw(x.buf)
			if !x.do(b, bs.client, fasthttp.StatusOK) {
				return
			}
			n++
		}
	})
	b.StopTimer()
	if killed.Load() != ops.Load() || wrong.Load() != 0 {
		b.Errorf("%d kills answered 200, %d outcomes delivered, %d not Killed", ops.Load(), killed.Load(), wrong.Load())
	}
}

// nopOwner owns registry entries parked without a connection, to be listed.
type nopOwner struct{}

func (nopOwner) Deliver(registry.Outcome, registry.Detail) {}
func (nopOwner) Step(int, time.Time) bool                  { return true }

// countingOwner owns registry entries parked without a connection, and is
// told their outcome.
type countingOwner func(registry.Outcome)

func (f countingOwner) Deliver(o registry.Outcome, _ registry.Detail) { f(o) }
func (countingOwner) Step(int, time.Time) bool                        { return true }

// BenchmarkClusterServerStatus is serverStatus in cluster mode on the
// instance that lists: 19,000 of its own and 95,000 of five other
// instances, as the store reads them from Redis (cluster's
// BenchmarkOthers measures that read; this is what the instance does
// with them).
//
//	go test -run '^$' -bench ClusterServerStatus -benchmem .
func BenchmarkClusterServerStatus(b *testing.B) {
	const local, remote = 19_000, 95_000
	bs := startBench(b, false)
	defer bs.stop(b)
	start := time.Now()
	others := make([]cluster.Parked, remote)
	for i := range others {
		others[i] = cluster.Parked{ConnID: "r" + strconv.Itoa(i), Instance: "other" + strconv.Itoa(i%5), Token: uint64(i),
			Started: start, Timeout: time.Hour + time.Duration(i*7919%remote)*time.Millisecond, Then: "200", RemoteAddr: "127.0.0.1:40000"}
	}
	bs.s.store = listingStore{bs.s.store, others}
	for i := range local {
		timeout := time.Hour + time.Duration(i*7919%local)*time.Millisecond
		if _, err := bs.s.reg.Park(registry.Request{ConnID: "s" + strconv.Itoa(i), Timeout: timeout, RemoteAddr: "127.0.0.1:1"},
			nopOwner{}); err != nil {
			b.Fatal(err)
		}
	}
	x := newExchange()
	defer x.release()
	x.req.SetRequestURI(bs.base + "/api/serverStatus")
	b.ReportAllocs()
	for b.Loop() {
		if !x.do(b, bs.client, fasthttp.StatusOK) {
			return
		}
	}
	b.StopTimer()
	if got := bytes.Count(x.resp.Body(), []byte(`":"`)); got != local+remote {
		b.Errorf("serverStatus lists %d, want %d", got, local+remote)
	}
}

// listingStore is a whole cluster view whose other instances hold others.
type listingStore struct {
	cluster.Store
	others []cluster.Parked
}

func (listingStore) Health() cluster.Health { return cluster.Whole }

func (l listingStore) Others(context.Context) ([][]cluster.Parked, error) {
	return [][]cluster.Parked{slices.Clone(l.others)}, nil // what a read that finds every hash moved allocates
}
