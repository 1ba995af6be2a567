// Command twin is parkd's net/http twin: sections 1–3 of the API
// (docs/API.md: park, serverStatus, kill) on the standard library's
// net/http.
//
// It exists ONLY as the baseline every parkd benchmark figure is compared
// with. It is meant to be the straightforward server a competent Go
// programmer would write, neither sabotaged nor tuned: a goroutine per
// parked request (as net/http gives), r.Context() to notice a client that
// hangs up, a sync.Mutex-guarded map and a time.Timer per parked request.
// It reads the contract through parkd's own wire package, so both servers
// parse queries and kill bodies identically. It is not a product.
//
//	go run ./bench/twin -addr 127.0.0.1:8081 [-max-timeout 1h] [-capacity 0]
//
// It logs one line at start, "twin listening on ADDR", and nothing per request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parkd/parkd/wire"
)

// maxKillBody is the contract's limit on a kill body.
const maxKillBody = 4 << 10

// entry is one parked request. Whoever deletes it from the map decides its
// outcome; a kill then closes killed to tell the parked handler.
type entry struct {
	deadline time.Time
	killed   chan struct{}
}

// twin holds the parked requests; it is the http.Handler.
type twin struct {
	maxTimeout time.Duration
	capacity   int

	mu     sync.Mutex
	parked map[string]*entry
}

func newTwin(maxTimeout time.Duration, capacity int) *twin {
	return &twin{maxTimeout: maxTimeout, capacity: capacity, parked: make(map[string]*entry)}
}

func (t *twin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "parkd-twin")
	var method string
	var handle func(http.ResponseWriter, *http.Request)
	switch r.URL.Path {
	case "/api/request":
		method, handle = http.MethodGet, t.park
	case "/api/serverStatus":
		method, handle = http.MethodGet, t.status
	case "/api/kill":
		method, handle = http.MethodPut, t.kill
	default:
		writeError(w, http.StatusNotFound, "not found",
			"no route "+r.Method+" "+r.URL.Path+"; see /api/request, /api/serverStatus, /api/kill")
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed",
			r.Method+" is not allowed on "+r.URL.Path+"; use "+method)
		return
	}
	handle(w, r)
}

// park is GET /api/request?connId=ID&timeout=SECONDS.
func (t *twin) park(w http.ResponseWriter, r *http.Request) {
	p, err := wire.ParsePark([]byte(r.URL.RawQuery), t.maxTimeout)
	if err != nil {
		writeError(w, http.StatusBadRequest, "error", err.Error())
		return
	}
	e, code, msg := t.add(p.ConnID, p.Timeout)
	switch {
	case code == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		fallthrough
	case code != 0:
		writeError(w, code, "error", msg)
		return
	case e == nil: // timeout=0: the checks passed, nothing to wait for
		writeStatus(w, http.StatusOK, "ok")
		return
	}

	timer := time.NewTimer(p.Timeout)
	defer timer.Stop()
	select {
	case <-timer.C:
		if t.remove(p.ConnID, e) {
			writeStatus(w, http.StatusOK, "ok")
			return
		}
		<-e.killed // a kill removed the entry first: it wins
		writeStatus(w, http.StatusInternalServerError, "killed")
	case <-e.killed:
		writeStatus(w, http.StatusInternalServerError, "killed")
	case <-r.Context().Done():
		// The client hung up: forget it and write nothing. If a kill got
		// there first, it has already answered its caller.
		t.remove(p.ConnID, e)
	}
}

// add parks id, or says why not with a status code and a message. A zero
// timeout passes the same checks but parks nothing (nil entry, code 0).
func (t *twin) add(id string, timeout time.Duration) (e *entry, code int, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.parked[id]; ok {
		return nil, http.StatusConflict, "connId " + id + " is already running"
	}
	if len(t.parked) >= t.capacity {
		return nil, http.StatusServiceUnavailable,
			"all " + strconv.Itoa(t.capacity) + " places for parked requests are taken; retry later"
	}
	if timeout == 0 {
		return nil, 0, ""
	}
	e = &entry{deadline: time.Now().Add(timeout), killed: make(chan struct{})}
	t.parked[id] = e
	return e, 0, ""
}

// remove deletes e if it is still parked as id, and reports whether it did:
// that deletion is the decision of e's outcome.
func (t *twin) remove(id string, e *entry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parked[id] != e {
		return false
	}
	delete(t.parked, id)
	return true
}

// status is GET /api/serverStatus: {"id":"seconds left",...} ordered by
// deadline, then connId; seconds are rounded up and never 0.
func (t *twin) status(w http.ResponseWriter, _ *http.Request) {
	type item struct {
		id       string
		deadline time.Time
	}
	t.mu.Lock()
	items := make([]item, 0, len(t.parked))
	for id, e := range t.parked {
		items = append(items, item{id, e.deadline})
	}
	t.mu.Unlock()
	slices.SortFunc(items, func(a, b item) int {
		if c := a.deadline.Compare(b.deadline); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})

	now := time.Now()
	b := make([]byte, 0, 2+len(items)*32)
	b = append(b, '{')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		left := it.deadline.Sub(now)
		secs := max(1, int64((left+time.Second-1)/time.Second))
		b = wire.AppendString(b, it.id)
		b = append(b, ':', '"')
		b = strconv.AppendInt(b, secs, 10)
		b = append(b, '"')
	}
	b = append(b, '}')
	writeJSON(w, http.StatusOK, b)
}

// kill is PUT /api/kill with the connId in the body (any accepted form) or
// the query string.
func (t *twin) kill(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxKillBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "error",
				"the body is larger than "+strconv.Itoa(maxKillBody)+" bytes")
		} else {
			writeError(w, http.StatusBadRequest, "error", "the body could not be read; "+wire.KillForms)
		}
		return
	}
	k, err := wire.ParseKill([]byte(r.URL.RawQuery), body)
	id := k.ConnID
	if err != nil {
		writeError(w, http.StatusBadRequest, "error", err.Error())
		return
	}
	t.mu.Lock()
	e, ok := t.parked[id]
	if ok {
		delete(t.parked, id)
		close(e.killed)
	}
	t.mu.Unlock()
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid connection Id : "+id, "")
		return
	}
	writeStatus(w, http.StatusOK, "ok")
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body) //nolint:errcheck // the client may be gone; nothing to do
}

// writeStatus answers {"status":status}.
func writeStatus(w http.ResponseWriter, code int, status string) {
	writeError(w, code, status, "")
}

// writeError answers {"status":status,"error":msg}, without "error" when
// msg is empty.
func writeError(w http.ResponseWriter, code int, status, msg string) {
	b := make([]byte, 0, 32+len(status)+len(msg))
	b = append(b, `{"status":`...)
	b = wire.AppendString(b, status)
	if msg != "" {
		b = append(b, `,"error":`...)
		b = wire.AppendString(b, msg)
	}
	writeJSON(w, code, append(b, '}'))
}

// defaultCapacity is parkd's: the open-file limit minus a reserve of 5%,
// at least 64, for status and kill connections.
func defaultCapacity() int {
	files := openFileLimit()
	return max(1, files-max(64, files/20))
}

func main() {
	addr := flag.String("addr", ":8081", "listen address")
	maxTimeout := flag.Duration("max-timeout", time.Hour, "largest accepted timeout")
	capacity := flag.Int("capacity", 0, "most requests parked at once; 0 = open-file limit minus max(64, 5%)")
	flag.Parse()
	if flag.NArg() > 0 || *maxTimeout <= 0 || *capacity < 0 {
		fmt.Fprintln(os.Stderr, "twin: want no arguments, -max-timeout > 0 and -capacity >= 0")
		flag.Usage()
		os.Exit(2)
	}
	if *capacity == 0 {
		*capacity = defaultCapacity()
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "twin:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           newTwin(*maxTimeout, *capacity),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    8 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close() // a baseline needs no graceful drain: hang up on everyone
	}()
	fmt.Fprintf(os.Stderr, "twin listening on %s capacity=%d max-timeout=%s\n", ln.Addr(), *capacity, *maxTimeout)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "twin:", err)
		os.Exit(1)
	}
}
