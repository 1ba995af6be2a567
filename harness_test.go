package main

// The harness: one way to start a real parkd on 127.0.0.1:0, and the small
// client helpers every HTTP-level test shares. Everything goes through real
// sockets: net/http for ordinary requests, raw net.Conn where the bytes on
// the wire matter.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// runMainEnv makes the test binary run parkd's main instead of the tests;
// the signal tests re-execute themselves with it.
const runMainEnv = "PARKD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main() // exits
		return
	}
	os.Exit(m.Run())
}

// waitBound is the upper bound of every wait in the suite: a hang fails
// instead of blocking. Nothing a correct server does comes near it.
const waitBound = 10 * time.Second

// quiet is how long a test waits for something that must not happen. A
// longer wait could only let a broken server fail more often.
const quiet = 200 * time.Millisecond

// Bodies the contract fixes.
const (
	bodyOK           = `{"status":"ok"}`
	bodyKilled       = `{"status":"killed"}`
	bodyShuttingDown = `{"status":"shutting down"}`
)

// testConfig is the default configuration without a grace period, so that
// a test's cleanup does not wait for requests it left parked.
func testConfig() config {
	c := defaultConfig()
	c.grace = 0
	return c
}

// testServer is a parkd serving on a loopback port for one test.
type testServer struct {
	s      *server
	addr   string // host:port
	base   string // http://host:port
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}  // closed when serve has returned
	code   int            // serve's result, once done is closed
	owner  *testing.T     // the test that made it
	wg     sync.WaitGroup // the owner's helper goroutines
}

// startServer builds a server from cfg, lets opts adjust it (its fasthttp
// settings, say) and serves it until the test ends; cleanup cancels serve's
// context, waits for serve to return and closes the server.
func startServer(t *testing.T, cfg config, opts ...func(*server)) *testServer {
	t.Helper()
	return startServerWrapped(t, cfg, nil, opts...)
}

// startServerWrapped is startServer with the listener wrapped by wrap.
func startServerWrapped(t *testing.T, cfg config, wrap func(net.Listener) net.Listener, opts ...func(*server)) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := newServer(cfg, log)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		t.Fatalf("listen: %v", err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := clientFor(t, ln.Addr().String())
	ts.s, ts.cancel, ts.done = s, cancel, make(chan struct{})
	go func() {
		ts.code = s.serve(ctx, ln)
		close(ts.done)
	}()
	t.Cleanup(func() {
		// Idle client connections first: one the transport dialled but never
		// used would hold serve's final close for a second.
		ts.closeIdle()
		cancel()
		if _, ok := ts.wait(); !ok {
			t.Errorf("serve did not return within %v of its context's end", waitBound)
		}
		if err := s.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return ts
}

// clientFor is a testServer with only the client side, for a parkd that
// something else runs (run, or a child process). Cleanup waits for its
// helper goroutines.
func clientFor(t *testing.T, addr string) *testServer {
	ts := &testServer{
		owner: t,
		addr:  addr,
		base:  "http://" + addr,
		client: &http.Client{
			// A safety net above the suite's longest park (an hour, for
			// requests that must outlast parallel subtests waiting their
			// turn), which a test ends by a kill or its cleanup; awaits
			// bound the waits.
			Timeout:   61 * time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
			// A redirect is an answer to look at, never to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	// Registered first, so it runs last: the server is gone by then and
	// every helper goroutine has its answer.
	t.Cleanup(ts.wg.Wait)
	t.Cleanup(ts.closeIdle)
	return ts
}

func (ts *testServer) closeIdle() {
	ts.client.Transport.(*http.Transport).CloseIdleConnections()
}

// wait waits (at most waitBound) for serve to return and gives its result.
func (ts *testServer) wait() (code int, ok bool) {
	select {
	case <-ts.done:
		return ts.code, true
	case <-time.After(waitBound):
		return 0, false
	}
}

// goAsync runs fn on a goroutine that t's cleanup waits for. For the test
// that started the server that wait comes after the server's shutdown, which
// ends whatever is still parked; a subtest waits in its own cleanup, while
// the server still runs, so that nothing reports to it once it is over.
func (ts *testServer) goAsync(t *testing.T, fn func()) {
	wg := &ts.wg
	if t != ts.owner {
		wg = new(sync.WaitGroup)
		t.Cleanup(wg.Wait)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		fn()
	}()
}

// reply is one answer as a test sees it.
type reply struct {
	code    int
	header  http.Header
	body    []byte
	close   bool      // the answer asks to close the connection
	length  int64     // its Content-Length; -1 when not framed by one
	sent    time.Time // just before the request was written
	elapsed time.Duration
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s", r.code, clip(r.body))
}

func clip(b []byte) string {
	if len(b) > 300 {
		return fmt.Sprintf("%q…", b[:300])
	}
	return fmt.Sprintf("%q", b)
}

// do sends one request; path is sent as written (its query included). A
// transport error is reported and gives code 0. Every answer is checked for
// what the contract demands of all of them (checkAnswer). Safe to call
// from helper goroutines.
func (ts *testServer) do(t *testing.T, method, path string, body io.Reader, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, ts.base+path, body)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return reply{}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	r := reply{sent: time.Now()}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return r
	}
	defer resp.Body.Close()
	r.body, err = io.ReadAll(resp.Body)
	r.elapsed = time.Since(r.sent)
	if err != nil {
		t.Errorf("%s %s: reading the body: %v", method, path, err)
		return r
	}
	r.code, r.header = resp.StatusCode, resp.Header
	checkAnswer(t, method+" "+path, method, r)
	return r
}

func (ts *testServer) get(t *testing.T, path string) reply {
	t.Helper()
	return ts.do(t, http.MethodGet, path, nil)
}

// put sends PUT with a string body and, when given, a Content-Type.
func (ts *testServer) put(t *testing.T, path, body, contentType string) reply {
	t.Helper()
	if contentType == "" {
		return ts.do(t, http.MethodPut, path, strings.NewReader(body))
	}
	return ts.do(t, http.MethodPut, path, strings.NewReader(body), "Content-Type", contentType)
}

// killJSON kills id the way a program would: PUT {"connId":"<id>"}.
func (ts *testServer) killJSON(t *testing.T, id string) reply {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"connId": id})
	return ts.put(t, "/api/kill", string(b), "application/json")
}

// parkPath is the park request for id and a timeout written as given.
func parkPath(id, timeout string) string {
	return "/api/request?connId=" + url.QueryEscape(id) + "&timeout=" + timeout
}

func (ts *testServer) park(t *testing.T, id, timeout string) reply {
	t.Helper()
	return ts.get(t, parkPath(id, timeout))
}

// parkAsync parks on a helper goroutine; the channel gets its one answer.
func (ts *testServer) parkAsync(t *testing.T, id, timeout string) <-chan reply {
	t.Helper()
	ch := make(chan reply, 1)
	ts.goAsync(t, func() { ch <- ts.park(t, id, timeout) })
	return ch
}

// await receives the answer of an async request within waitBound.
func await(t *testing.T, what string, ch <-chan reply) reply {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitBound):
		t.Fatalf("%s: no answer within %v", what, waitBound)
		return reply{}
	}
}

// entry is one serverStatus member, in the order the server wrote it.
type entry struct{ id, secs string }

// status reads serverStatus as an ordered list, failing the test unless it
// is a JSON object whose values are all strings.
func (ts *testServer) status(t *testing.T) []entry {
	t.Helper()
	r := ts.get(t, "/api/serverStatus")
	if r.code != http.StatusOK {
		t.Fatalf("GET /api/serverStatus: got %v, want 200", r)
	}
	es, err := orderedStrings(r.body)
	if err != nil {
		t.Fatalf("GET /api/serverStatus: %v in %s", err, clip(r.body))
	}
	return es
}

// orderedStrings decodes a JSON object of strings, keeping its order.
func orderedStrings(body []byte) ([]entry, error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object (%v, %v)", tok, err)
	}
	es := []entry{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		v, err := dec.Token()
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("value of %q is %T %v, want a string", k, v, v)
		}
		es = append(es, entry{k.(string), s})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the object")
	}
	return es, nil
}

func lookup(es []entry, id string) (string, bool) {
	for _, e := range es {
		if e.id == id {
			return e.secs, true
		}
	}
	return "", false
}

// waitListed polls serverStatus until every id is listed and returns that
// listing.
func (ts *testServer) waitListed(t *testing.T, ids ...string) []entry {
	t.Helper()
	end := time.Now().Add(waitBound)
	for {
		es := ts.status(t)
		if !slices.ContainsFunc(ids, func(id string) bool { _, in := lookup(es, id); return !in }) {
			return es
		}
		if time.Now().After(end) {
			t.Fatalf("serverStatus never listed all of %q; last %v", ids, es)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone polls serverStatus until id is not listed. A listing requested
// more than within after since that still shows id fails the test.
func (ts *testServer) waitGone(t *testing.T, id string, since time.Time, within time.Duration) {
	t.Helper()
	for {
		asked := time.Now()
		es := ts.status(t)
		if _, in := lookup(es, id); !in {
			return
		}
		if asked.Sub(since) > within {
			t.Fatalf("%q still listed in serverStatus %v after the event, want gone within %v", id, asked.Sub(since).Round(time.Millisecond), within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leakMarkers are pieces of Go error strings, stack traces and panics that
// must never reach a client.
var leakMarkers = []string{
	"goroutine ", "panic", "runtime error", "strconv.", "json: ", "invalid character",
	"unexpected EOF", "unexpected end of JSON", "net/http", "fasthttp", "%!",
}

// checkAnswer checks what every answer must have: a Server header naming
// parkd and, when there is a body, Content-Type application/json, valid
// JSON, and no Go error text.
func checkAnswer(t *testing.T, what, method string, r reply) {
	t.Helper()
	if !strings.Contains(strings.ToLower(r.header.Get("Server")), "parkd") {
		t.Errorf("%s: Server header %q does not name parkd", what, r.header.Get("Server"))
	}
	if method == http.MethodHead || len(r.body) == 0 && (r.code == http.StatusNoContent || r.code == http.StatusNotModified) {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json (answer %v)", what, r.header.Get("Content-Type"), r)
	}
	if !json.Valid(r.body) {
		t.Errorf("%s: body is not JSON: %s", what, clip(r.body))
	}
	for _, m := range leakMarkers {
		if strings.Contains(string(r.body), m) {
			t.Errorf("%s: body holds %q, a piece of a Go error: %s", what, m, clip(r.body))
		}
	}
}

// wantBody checks an answer's code and exact body.
func wantBody(t *testing.T, what string, r reply, code int, body string) {
	t.Helper()
	if r.code != code || string(r.body) != body {
		t.Errorf("%s: got %v, want %d %q", what, r, code, body)
	}
}

// wantError checks an error answer: its code, a JSON object whose "status"
// is status and, for status "error", a non-empty "error" sentence. It
// returns the object.
func wantError(t *testing.T, what string, r reply, code int, status string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(r.body, &obj); err != nil || r.code != code {
		t.Errorf("%s: got %v, want %d with a JSON object", what, r, code)
		return nil
	}
	if obj["status"] != status {
		t.Errorf("%s: got status %v, want %q (body %s)", what, obj["status"], status, clip(r.body))
	}
	if msg, _ := obj["error"].(string); status == "error" && msg == "" {
		t.Errorf("%s: no \"error\" sentence in %s", what, clip(r.body))
	}
	return obj
}

// rawConn is a client connection written and read byte by byte.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialRaw opens a connection that the test's cleanup closes.
func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c, bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, s string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(waitBound))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readReply reads one answer to a request of method from br: the one way
// the suite reads an answer off a raw connection. An error while reading
// the body comes with the status and headers already read (code not 0).
func readReply(br *bufio.Reader, method string) (reply, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{code: resp.StatusCode, header: resp.Header, close: resp.Close, length: resp.ContentLength}
	r.body, err = io.ReadAll(resp.Body)
	return r, err
}

// read reads one answer to a request of method; it never waits longer than
// waitBound.
func (c *rawConn) read(t *testing.T, method string) reply {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitBound))
	r, err := readReply(c.br, method)
	if err != nil {
		t.Fatalf("reading an answer (%v): %v", r, err)
	}
	checkAnswer(t, "raw "+method, method, r)
	return r
}

// answerOrClose reads what the server does with a request it may refuse:
// an answer (got is true), or a close without one. It never waits past
// deadline.
func (c *rawConn) answerOrClose(method string, deadline time.Time) (r reply, got bool, err error) {
	c.SetReadDeadline(deadline)
	if _, err := c.br.Peek(1); err != nil {
		if isClosed(err) {
			return reply{}, false, nil
		}
		return reply{}, false, err
	}
	r, err = readReply(c.br, method)
	if err != nil {
		return reply{}, false, fmt.Errorf("reading an answer: %w", err)
	}
	return r, true, nil
}

// closedWithNothing checks that the server closes c without writing
// anything more, before deadline.
func (c *rawConn) closedWithNothing(deadline time.Time) error {
	c.SetReadDeadline(deadline)
	b, err := io.ReadAll(c.br)
	switch {
	case len(b) > 0:
		return fmt.Errorf("the server wrote %s more before closing", clip(b))
	case err != nil && !isClosed(err):
		return fmt.Errorf("the connection was not closed: %w", err)
	}
	return nil
}

// isClosed says whether err is how a read sees a connection the server
// closed: EOF, or a reset when it closed with bytes of ours unread.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// expectEOF checks that the server closed the connection without writing
// anything more.
func (c *rawConn) expectEOF(t *testing.T) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitBound))
	b, err := io.ReadAll(c.br)
	if len(b) > 0 || err != nil {
		t.Errorf("want the server to close the connection with nothing more; got %q, %v", b, err)
	}
}

// getRequest is the bytes of an HTTP/1.1 GET; extra are header lines with
// their CRLF.
func getRequest(path string, extra ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: parkd\r\n" + strings.Join(extra, "") + "\r\n"
}

// each runs fn(0) … fn(n-1) on workers goroutines and waits for them. fn
// must bound its own waits and must not call t.Fatal.
func each(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// ---- metrics ----

// scrape reads /metrics (Prometheus text, not JSON) on a connection of its
// own, closed after it.
func scrape(t *testing.T, ts *testServer) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.addr, waitBound)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer c.Close()
	return (&rawConn{c, bufio.NewReader(c)}).scrape(t)
}

// scrape reads /metrics on c, a keep-alive connection: the one way the
// suite scrapes.
func (c *rawConn) scrape(t *testing.T) string {
	t.Helper()
	c.send(t, getRequest("/metrics"))
	c.SetReadDeadline(time.Now().Add(waitBound))
	r, err := readReply(c.br, http.MethodGet)
	if err != nil || r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %v %q (%v)", r, r.header.Get("Content-Type"), err)
	}
	return string(r.body)
}

// parseMetrics reads the text exposition with Prometheus's own parser,
// which also fails on malformed output.
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// sample is the value of the series of name with exactly labels: a
// counter's or gauge's value, a histogram's count.
func sample(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range families[name].GetMetric() {
		if len(m.GetLabel()) == len(labels) && hasLabels(m, labels) {
			return value(m), true
		}
	}
	return 0, false
}

// metricSum adds up the series of name whose labels include labels,
// written as pairs: metricSum(t, text, "parkd_http_requests_total", "code", "400").
func metricSum(t *testing.T, text, name string, labels ...string) (sum float64, found bool) {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range parseMetrics(t, text)[name].GetMetric() {
		if hasLabels(m, want) {
			sum, found = sum+value(m), true
		}
	}
	return sum, found
}

func hasLabels(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := labels[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

// settledScrape scrapes /metrics until the series of name (with labels,
// as for metricSum) add up to at least n, or waitBound has passed, and
// returns the last scrape. A request is counted as it settles, just after
// its client got its ending, so a scrape right after that may come first.
func settledScrape(t *testing.T, ts *testServer, name string, n float64, labels ...string) string {
	t.Helper()
	for end := time.Now().Add(waitBound); ; time.Sleep(5 * time.Millisecond) {
		text := scrape(t, ts)
		if got, _ := metricSum(t, text, name, labels...); got >= n || time.Now().After(end) {
			return text
		}
	}
}

// waitParked polls /metrics until parkd_parked_requests is want; a scrape
// asked for more than within after since that still shows another value
// fails the test.
func waitParked(t *testing.T, ts *testServer, want float64, since time.Time, within time.Duration) {
	t.Helper()
	for {
		asked := time.Now()
		v, ok := metricSum(t, scrape(t, ts), "parkd_parked_requests")
		if !ok {
			t.Fatalf("/metrics has no parkd_parked_requests")
		}
		if v == want {
			return
		}
		if asked.Sub(since) > within {
			t.Fatalf("parkd_parked_requests is %v %v after the event, want %v within %v", v, asked.Sub(since).Round(time.Millisecond), want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- event streams ----

// sseEvent is one event of /api/events; comment is set for a comment line.
type sseEvent struct {
	id, event, data string
	comment         string
}

// sseStream is a client of /api/events on a raw connection.
type sseStream struct {
	*rawConn
	header http.Header
}

// subscribe opens /api/events, with Last-Event-ID when lastID is not
// empty, and checks the answer's status and headers.
func (ts *testServer) subscribe(t *testing.T, lastID string) *sseStream {
	t.Helper()
	c := dialRaw(t, ts.addr)
	extra := ""
	if lastID != "" {
		extra = "Last-Event-ID: " + lastID + "\r\n"
	}
	c.send(t, getRequest("/api/events", extra))
	c.SetReadDeadline(time.Now().Add(waitBound))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /api/events: %d %v", resp.StatusCode, resp.Header)
	}
	// The body is chunked; read it through the response's body.
	return &sseStream{&rawConn{c.Conn, bufio.NewReader(resp.Body)}, resp.Header}
}

// next reads the next event or comment, waiting at most within.
func (s *sseStream) next(t *testing.T, within time.Duration) (sseEvent, error) {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(within))
	var ev sseEvent
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
			return sseEvent{comment: line}, nil
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		case strings.HasPrefix(line, "retry: "):
		default:
			t.Errorf("an event stream line %q", line)
		}
	}
}

// nextEvent reads the next event, skipping comments; it fails the test
// after waitBound.
func (s *sseStream) nextEvent(t *testing.T) sseEvent {
	t.Helper()
	for {
		ev, err := s.next(t, waitBound)
		if err != nil {
			t.Fatalf("reading the event stream: %v", err)
		}
		if ev.comment == "" {
			return ev
		}
	}
}

// ---- cluster ----

// redisEnvCI is set to "true" in CI, where a missing redis-server or
// haproxy fails the test instead of skipping it.
const redisEnvCI = "CI"

// needProgram finds a program the cluster tests run, or ends the test:
// a failure under CI=true, where .ci/run installs it, a skip elsewhere.
func needProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(redisEnvCI) == "true" {
		t.Fatalf("%s not found: apt-get install %s", name, pkg)
	}
	t.Skipf("%s not found: apt-get install %s", name, pkg)
	return ""
}

// freePort is a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// redisOptions is how a test's redis-server runs.
type redisOptions struct {
	password string               // --requirepass
	tls      *redisTLS            // TLS only, on the port
	procAttr *syscall.SysProcAttr // e.g. a parent-death signal where there is one
}

// redisTLS is the files of a TLS redis-server, and how a client trusts it.
type redisTLS struct {
	certFile, keyFile, caFile string
	client                    *tls.Config
}

// redisServer is a real redis-server on a loopback port for one test,
// with persistence off: a restart starts it empty. Cleanup stops it by
// its PID.
type redisServer struct {
	t    *testing.T
	path string
	port int
	opts redisOptions

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

// startRedis starts a redis-server on a free loopback port and waits until
// it answers PING.
func startRedis(t *testing.T, opts redisOptions) *redisServer {
	t.Helper()
	r := &redisServer{t: t, path: needProgram(t, "redis-server", "redis-server"), opts: opts}
	t.Cleanup(r.kill)
	var err error
	for range 5 { // a port taken between freePort and redis-server's bind: another one
		r.port = freePort(t)
		if err = r.start(); err == nil {
			return r
		}
	}
	t.Fatalf("redis-server does not start: %v", err)
	return nil
}

// start runs redis-server on r.port and waits (at most waitBound) for its
// PING.
func (r *redisServer) start() error {
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""}
	if r.opts.tls != nil {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(r.port), "--tls-cert-file", r.opts.tls.certFile,
			"--tls-key-file", r.opts.tls.keyFile, "--tls-ca-cert-file", r.opts.tls.caFile, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", strconv.Itoa(r.port))
	}
	if r.opts.password != "" {
		args = append(args, "--requirepass", r.opts.password)
	}
	cmd := exec.Command(r.path, args...)
	cmd.SysProcAttr = r.opts.procAttr
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() //nolint:errcheck // a killed server exits with an error
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited, r.log = cmd, exited, log
	r.mu.Unlock()
	for end := time.Now().Add(waitBound); ; time.Sleep(10 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at start: %s", log.String())
		default:
		}
		if _, err := r.do("PING"); err == nil {
			return nil
		} else if time.Now().After(end) {
			r.kill()
			return fmt.Errorf("no PONG within %v: %v", waitBound, err)
		}
	}
}

// pid is the running redis-server's process id.
func (r *redisServer) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

// addr is host:port.
func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// url is what -redis takes to reach it.
func (r *redisServer) url() string {
	scheme := "redis"
	if r.opts.tls != nil {
		scheme = "rediss"
	}
	auth := ""
	if r.opts.password != "" {
		auth = ":" + url.QueryEscape(r.opts.password) + "@"
	}
	return scheme + "://" + auth + r.addr()
}

// kill ends the running redis-server with SIGKILL, by its PID, and waits
// for it.
func (r *redisServer) kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill() //nolint:errcheck // it may have exited already
	select {
	case <-exited:
	case <-time.After(waitBound):
		r.t.Errorf("redis-server %d did not exit after SIGKILL", cmd.Process.Pid)
	}
}

// restart kills the redis-server and starts an empty one on the same
// port.
func (r *redisServer) restart(t *testing.T) {
	t.Helper()
	r.kill()
	if err := r.start(); err != nil {
		t.Fatalf("restarting redis-server on %d: %v", r.port, err)
	}
}

// do runs one command on a connection of its own, after AUTH when the
// server wants a password, and returns its reply: a string, an integer,
// nil or a []any of those. A Redis error reply is an error.
func (r *redisServer) do(args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if r.opts.tls != nil {
		c = tls.Client(c, r.opts.tls.client)
	}
	c.SetDeadline(time.Now().Add(waitBound)) //nolint:errcheck // a failed deadline fails the read
	br := bufio.NewReader(c)
	if r.opts.password != "" {
		if _, err := respRoundTrip(c, br, "AUTH", r.opts.password); err != nil {
			return nil, err
		}
	}
	return respRoundTrip(c, br, args...)
}

// doT is do for a test: an error fails it.
func (r *redisServer) doT(t *testing.T, args ...string) any {
	t.Helper()
	v, err := r.do(args...)
	if err != nil {
		t.Fatalf("redis %q: %v", args, err)
	}
	return v
}

// respRoundTrip writes a command as a RESP array and reads its reply.
func respRoundTrip(w io.Writer, br *bufio.Reader, args ...string) (any, error) {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	return readRESP(br)
}

// readRESP reads one RESP2 reply.
func readRESP(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("an empty RESP line")
	}
	switch rest := line[1:]; line[0] {
	case '+':
		return rest, nil
	case '-':
		return nil, errors.New(rest)
	case ':':
		return strconv.ParseInt(rest, 10, 64)
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readRESP(br); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("a RESP line %q", line)
}

// respStrings is a reply of strings, such as KEYS's or HKEYS's.
func respStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// clusterNode is one parkd instance of a test's cluster, served in this
// process; its log is kept for the test to read.
type clusterNode struct {
	*testServer
	name string
	log  *syncBuffer
}

// clusterConfigFor is the test configuration of an instance named name in
// the cluster of r.
func clusterConfigFor(r *redisServer, name string) config {
	cfg := testConfig()
	cfg.redis, cfg.instance = r.url(), name
	return cfg
}

// startClusterNode serves cfg (see clusterConfigFor) in this process, logging
// at info level into its log, and waits until it has joined the cluster.
func startClusterNode(t *testing.T, cfg config) *clusterNode {
	t.Helper()
	n := &clusterNode{name: cfg.instance, log: &syncBuffer{}}
	n.testServer = startServer(t, cfg, func(s *server) {
		s.log = slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of instance %s (its end):\n%s", n.name, lastLines(n.log.String(), 40))
		}
	})
	n.waitJoined(t)
	return n
}

// waitJoined waits until the instance answers as a whole member of its
// cluster: a listing marked Parkd-Cluster: ok.
func (ts *testServer) waitJoined(t *testing.T) {
	t.Helper()
	// serve joins before it serves: until then a request waits in the
	// listener's backlog, and a failed join never answers it.
	probe := &http.Client{Timeout: time.Second}
	defer probe.CloseIdleConnections()
	for end := time.Now().Add(waitBound); ; time.Sleep(20 * time.Millisecond) {
		if ts.done != nil {
			select {
			case <-ts.done:
				t.Fatalf("instance %s stopped (status %d) before it joined the cluster", ts.addr, ts.code)
			default:
			}
		}
		resp, err := probe.Get(ts.base + "/api/serverStatus")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get(headerCluster) == "ok" {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("instance %s did not join the cluster within %v (last: %v)", ts.addr, waitBound, err)
		}
	}
}

// clusterHeader checks that a listing answer says whether it covers the
// whole cluster as want ("ok" or "degraded").
func clusterHeader(t *testing.T, what string, r reply, want string) {
	t.Helper()
	if got := r.header.Get(headerCluster); got != want {
		t.Errorf("%s: %s: %q, want %q (answer %v)", what, headerCluster, got, want, r)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n-1):], "")
}
