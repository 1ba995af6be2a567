package main

// The harness: one way to start a real parkd on 127.0.0.1:0, and the small
// client helpers every HTTP-level test shares. Everything goes through real
// sockets: net/http for ordinary requests, raw net.Conn where the bytes on
// the wire matter.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
			// A safety net above the suite's longest park (60 s), which a
			// test ends by a kill or its cleanup; awaits bound the waits.
			Timeout:   70 * time.Second,
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
	if method == http.MethodHead || len(r.body) == 0 && r.code == http.StatusNoContent {
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

// read reads one answer to a request of method; it never waits longer than
// waitBound.
func (c *rawConn) read(t *testing.T, method string) (*http.Response, reply) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitBound))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading an answer's body: %v", err)
	}
	r := reply{code: resp.StatusCode, header: resp.Header, body: body}
	checkAnswer(t, "raw "+method, method, r)
	return resp, r
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
