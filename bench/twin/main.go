// Command twin is parkd's net/http twin: sections 1–3 and 6 of the API
// (docs/API.md: park, serverStatus, kill, and shaping the answer) on the
// standard library's net/http.
//
// It exists ONLY as the baseline every parkd benchmark figure is compared
// with. It is meant to be the straightforward server a competent Go
// programmer would write, neither sabotaged nor tuned: a goroutine per
// parked request (as net/http gives), r.Context() to notice a client that
// hangs up, a sync.Mutex-guarded map and a time.Timer per parked request.
// Section 6 is done the same way: the handler's goroutine drips a body
// piece by piece, writing and flushing through the ResponseWriter with a
// timer set to each piece's due time (as go-httpbin's /drip does with a
// ticker), and the endings that are not HTTP answers (reset, close,
// garbage, truncate) take the connection with http.Hijacker; a reset sets
// SO_LINGER to 0 before closing. It reads the contract through parkd's own
// wire package, so both servers parse queries and kill bodies identically.
// It is not a product.
//
// GET /metrics serves, in the Prometheus text format, the histograms the
// load tool reads from parkd under the same names —
// parkd_answer_lateness_seconds and parkd_piece_lateness_seconds, with
// parkd's buckets — and parkd_endings_total{then}, and the Go runtime's
// figures.
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
	"math/rand/v2"
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxKillBody is the contract's limit on a kill body.
const maxKillBody = 4 << 10

// Bodies of the answers a parked request gets.
const (
	okBody     = `{"status":"ok"}`
	killedBody = `{"status":"killed"}`
)

// garbageBytes is what then=garbage writes before it closes: parkd's bytes,
// so a client cannot tell the two servers apart by them.
const garbageBytes = "\x00\xff\xfeparkd garbage, not HTTP\xfd\xfc\x00\r\n\r\n"

// dripPiece is the shortest time between two pieces of a dripping body.
const dripPiece = 100 * time.Millisecond

// entry is one parked request. Whoever deletes it from the map decides its
// outcome; a kill then sets kill and closes killed to tell the parked
// handler.
type entry struct {
	deadline time.Time     // when the answer (for a dripping body, its headers) is due
	drip     time.Duration // its body drips over this long after the deadline
	killed   chan struct{}
	kill     wire.Action // what the kill drew; written before killed is closed
}

// shape is what one park drew from the parameters of section 6.
type shape struct {
	then   wire.Action   // what the deadline brings; 200 by default
	body   int           // answers are padded with spaces to this many bytes
	drip   time.Duration // the body goes out over this long after the deadline
	pieces int           // in this many pieces; 0: it does not drip
}

// metrics are the figures GET /metrics serves.
type metrics struct {
	registry       *prometheus.Registry
	answerLateness prometheus.Histogram
	pieceLateness  prometheus.Histogram
	endings        *prometheus.CounterVec
}

func newMetrics() *metrics {
	buckets := []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1} // parkd's
	m := &metrics{
		registry: prometheus.NewRegistry(),
		answerLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parkd_answer_lateness_seconds",
			Help:    "How long after its deadline a parked request's answer (a dripping body's headers) was written.",
			Buckets: buckets,
		}),
		pieceLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parkd_piece_lateness_seconds",
			Help:    "How long after its scheduled time a piece of a dripping body was written.",
			Buckets: buckets,
		}),
		endings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkd_endings_total",
			Help: "Endings applied to parked requests, by what was applied: a status code, reset, close, garbage or truncate.",
		}, []string{"then"}),
	}
	m.registry.MustRegister(m.answerLateness, m.pieceLateness, m.endings, collectors.NewGoCollector())
	return m
}

// twin holds the parked requests; it is the http.Handler.
type twin struct {
	maxTimeout time.Duration
	capacity   int
	metrics    *metrics
	serveMet   http.Handler

	drawMu sync.Mutex // guards draws, which is not safe for concurrent use
	draws  *rand.Rand

	mu     sync.Mutex
	parked map[string]*entry
}

func newTwin(maxTimeout time.Duration, capacity int) *twin {
	m := newMetrics()
	return &twin{
		maxTimeout: maxTimeout, capacity: capacity,
		metrics: m, serveMet: promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}),
		draws:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		parked: make(map[string]*entry),
	}
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
	case "/metrics":
		method, handle = http.MethodGet, t.serveMet.ServeHTTP
	default:
		writeError(w, http.StatusNotFound, "not found",
			"no route "+r.Method+" "+r.URL.Path+"; see /api/request, /api/serverStatus, /api/kill, /metrics")
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

// park is GET /api/request?connId=ID&timeout=SECONDS, with the options of
// section 6: then, jitter, body and drip.
func (t *twin) park(w http.ResponseWriter, r *http.Request) {
	p, err := wire.ParsePark([]byte(r.URL.RawQuery), t.maxTimeout)
	if err != nil {
		writeError(w, http.StatusBadRequest, "error", err.Error())
		return
	}
	sh, timeout := t.drawShape(p)
	e, code, msg := t.add(p.ConnID, timeout, sh.drip)
	switch {
	case code == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		fallthrough
	case code != 0:
		writeError(w, code, "error", msg)
		return
	case e == nil: // timeout=0: the checks passed, nothing to wait for
		t.end(w, sh.then, okBody, sh.body)
		return
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-timer.C:
		if sh.pieces > 0 {
			select {
			case <-e.killed: // a kill came first: its answer can still be sent
				t.end(w, e.kill, killedBody, sh.body)
			default:
				t.drip(w, r, p.ConnID, e, sh)
			}
			return
		}
		if t.remove(p.ConnID, e) {
			t.metrics.answerLateness.Observe(time.Since(e.deadline).Seconds())
			t.end(w, sh.then, okBody, sh.body)
			return
		}
		<-e.killed // a kill removed the entry first: it wins
		t.end(w, e.kill, killedBody, sh.body)
	case <-e.killed:
		t.end(w, e.kill, killedBody, sh.body)
	case <-r.Context().Done():
		// The client hung up: forget it and write nothing. If a kill got
		// there first, it has already answered its caller.
		t.remove(p.ConnID, e)
	}
}

// drawShape draws what p's section-6 parameters ask of this request: its
// action and, with jitter, its timeout (to the millisecond).
func (t *twin) drawShape(p wire.Park) (shape, time.Duration) {
	sh := shape{then: http.StatusOK}
	timeout := p.Timeout
	if p.Shape == nil {
		return sh, timeout
	}
	t.drawMu.Lock()
	if a := p.Shape.Then.Draw(t.draws); a != 0 {
		sh.then = a
	}
	if p.Shape.Jitter > 0 {
		timeout += time.Duration(t.draws.Int64N(int64(p.Shape.Jitter/time.Millisecond)+1)) * time.Millisecond
	}
	t.drawMu.Unlock()
	sh.body = p.Shape.Body
	if p.Shape.Drip > 0 && (sh.then == wire.ActionTruncate || sh.then.IsStatus() && hasBody(int(sh.then))) {
		sh.drip = p.Shape.Drip
		sh.pieces = min(max(len(okBody), sh.body), int((sh.drip+dripPiece-1)/dripPiece))
	}
	return sh, timeout
}

// drawKill is the action a kill draws from its then list: a 500 without one.
func (t *twin) drawKill(then wire.Then) wire.Action {
	if then.IsZero() {
		return http.StatusInternalServerError
	}
	t.drawMu.Lock()
	defer t.drawMu.Unlock()
	return then.Draw(t.draws)
}

// add parks id, or says why not with a status code and a message. A zero
// timeout without a dripping body passes the same checks but parks nothing
// (nil entry, code 0).
func (t *twin) add(id string, timeout, drip time.Duration) (e *entry, code int, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.parked[id]; ok {
		return nil, http.StatusConflict, "connId " + id + " is already running"
	}
	if len(t.parked) >= t.capacity {
		return nil, http.StatusServiceUnavailable,
			"all " + strconv.Itoa(t.capacity) + " places for parked requests are taken; retry later"
	}
	if timeout == 0 && drip == 0 {
		return nil, 0, ""
	}
	e = &entry{deadline: time.Now().Add(timeout), drip: drip, killed: make(chan struct{})}
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

// end applies action a to a request that has written nothing yet: an
// answer with that code and json padded to bodyLen bytes, or one of the
// endings that are not HTTP answers.
func (t *twin) end(w http.ResponseWriter, a wire.Action, json string, bodyLen int) {
	t.metrics.endings.WithLabelValues(a.String()).Inc()
	body := padded(json, bodyLen)
	switch a {
	case wire.ActionReset, wire.ActionClose, wire.ActionGarbage:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		switch a {
		case wire.ActionReset:
			setLingerZero(conn)
		case wire.ActionGarbage:
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			conn.Write([]byte(garbageBytes)) //nolint:errcheck // closed next either way
		}
		conn.Close()
	case wire.ActionTruncate:
		code := http.StatusOK
		if json == killedBody {
			code = http.StatusInternalServerError
		}
		setLength(w, len(body), true)
		w.WriteHeader(code)
		w.Write(body[:(len(body)-1)/2]) //nolint:errcheck // closed next either way
		cut(w, wire.ActionClose)
	default:
		if !hasBody(int(a)) {
			body = nil
		}
		writeJSON(w, int(a), body)
	}
}

// drip sends the answer of a request whose body drips: the headers now, at
// its deadline, then piece k of n at deadline + drip·k/n, ending at byte
// len·k/n. The request stays parked until its last byte has left; a kill
// meanwhile cuts it short (a reset if the kill drew one, else a close), and
// a client that hangs up is forgotten.
func (t *twin) drip(w http.ResponseWriter, r *http.Request, id string, e *entry, sh shape) {
	body := padded(okBody, sh.body)
	code, limit := int(sh.then), len(body)
	if sh.then == wire.ActionTruncate {
		code, limit = http.StatusOK, (len(body)-1)/2 // less than half, at least one byte short
	}
	setLength(w, len(body), sh.then == wire.ActionTruncate)
	w.WriteHeader(code)
	rc := http.NewResponseController(w)
	t.metrics.answerLateness.Observe(time.Since(e.deadline).Seconds())
	if rc.Flush() != nil {
		t.remove(id, e) // the client is gone
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k, sent := 1, 0; sent < limit; k++ {
		due := e.deadline.Add(e.drip * time.Duration(k) / time.Duration(sh.pieces))
		timer.Reset(time.Until(due))
		select {
		case <-timer.C:
		case <-e.killed:
			t.cutKilled(w, e.kill)
			return
		case <-r.Context().Done():
			t.remove(id, e)
			return
		}
		t.metrics.pieceLateness.Observe(time.Since(due).Seconds())
		to := min(len(body)*k/sh.pieces, limit)
		if _, err := w.Write(body[sent:to]); err != nil || rc.Flush() != nil {
			t.remove(id, e)
			return
		}
		sent = to
	}
	if !t.remove(id, e) {
		<-e.killed // a kill decided first, as the last piece left
		t.cutKilled(w, e.kill)
		return
	}
	t.metrics.endings.WithLabelValues(sh.then.String()).Inc()
	if sh.then == wire.ActionTruncate {
		cut(w, wire.ActionClose)
	}
}

// cutKilled ends a body that has begun to drip, for a kill that drew a:
// a status code cannot be sent any more, so anything but a reset closes.
func (t *twin) cutKilled(w http.ResponseWriter, a wire.Action) {
	if a != wire.ActionReset {
		a = wire.ActionClose
	}
	t.metrics.endings.WithLabelValues(a.String()).Inc()
	cut(w, a)
}

// cut flushes what was written, takes the connection and resets it (a is
// reset) or closes it.
func cut(w http.ResponseWriter, a wire.Action) {
	rc := http.NewResponseController(w)
	_ = rc.Flush() // Hijack drops what the ResponseWriter still buffers
	conn, _, err := rc.Hijack()
	if err != nil {
		return
	}
	if a == wire.ActionReset {
		setLingerZero(conn)
	}
	conn.Close()
}

// setLingerZero makes the coming Close send a TCP RST instead of a FIN.
func setLingerZero(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// setLength declares a JSON body of n bytes, and with closeAfter that the
// connection closes after it.
func setLength(w http.ResponseWriter, n int, closeAfter bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(n))
	if closeAfter {
		h.Set("Connection", "close")
	}
}

// hasBody says whether an answer with code carries a body.
func hasBody(code int) bool {
	return code != http.StatusNoContent && code != http.StatusNotModified
}

// padded is json followed by spaces up to n bytes, or json alone when it is
// not shorter.
func padded(json string, n int) []byte {
	b := make([]byte, max(len(json), n))
	copy(b, json)
	for i := len(json); i < len(b); i++ {
		b[i] = ' '
	}
	return b
}

// status is GET /api/serverStatus: {"id":"seconds left",...} ordered by
// the time left, then connId; seconds are rounded up and never 0. A
// dripping body's time counts to its last byte.
func (t *twin) status(w http.ResponseWriter, _ *http.Request) {
	type item struct {
		id  string
		end time.Time
	}
	t.mu.Lock()
	items := make([]item, 0, len(t.parked))
	for id, e := range t.parked {
		items = append(items, item{id, e.deadline.Add(e.drip)})
	}
	t.mu.Unlock()
	slices.SortFunc(items, func(a, b item) int {
		if c := a.end.Compare(b.end); c != 0 {
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
		left := it.end.Sub(now)
		secs := max(1, int64((left+time.Second-1)/time.Second))
		b = wire.AppendString(b, it.id)
		b = append(b, ':', '"')
		b = strconv.AppendInt(b, secs, 10)
		b = append(b, '"')
	}
	b = append(b, '}')
	writeJSON(w, http.StatusOK, b)
}

// kill is PUT /api/kill with the connId, and optionally a then list, in the
// body (any accepted form) or the query string.
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
	if err != nil {
		writeError(w, http.StatusBadRequest, "error", err.Error())
		return
	}
	a := t.drawKill(k.Then)
	t.mu.Lock()
	e, ok := t.parked[k.ConnID]
	if ok {
		delete(t.parked, k.ConnID)
		e.kill = a
		close(e.killed)
	}
	t.mu.Unlock()
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid connection Id : "+k.ConnID, "")
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
