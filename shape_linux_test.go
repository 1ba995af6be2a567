package main

// Section 6's connection-level endings and dripping bodies, on real
// sockets: a reset is seen as ECONNRESET, a close as EOF with nothing, the
// garbage as its fixed bytes; a body drips on its schedule; kills, hang-ups
// and shutdown cut it as the API says. Linux only: the hang-up cases need
// Linux's watcher, and the error numbers are Linux's.

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sawFault classifies what a client reads after sending a park whose
// ending is a fault: "reset" (ECONNRESET), "close" (EOF with nothing), or
// the bytes it read before the server closed.
func sawFault(t *testing.T, c *rawConn) (kind string, got []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitBound))
	got, err := io.ReadAll(c.br)
	switch {
	case errors.Is(err, syscall.ECONNRESET) && len(got) == 0:
		return "reset", nil
	case err == nil && len(got) == 0:
		return "close", nil
	case err == nil:
		return "bytes", got
	}
	t.Fatalf("reading what the server did: %q, %v", got, err)
	return "", nil
}

// At the deadline, and at once for timeout=0: reset is a TCP reset,
// close a FIN with nothing written, garbage its fixed bytes (not HTTP)
// and a FIN. The outcome is ok all the same, and the endings count.
func TestThenFaults(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, timeout := range []string{"0.05", "0"} {
		for _, tt := range []struct{ then, want string }{
			{"reset", "reset"}, {"close", "close"}, {"garbage", "bytes"},
		} {
			c := dialRaw(t, ts.addr)
			c.send(t, getRequest(parkPath("f-"+tt.then+"-"+timeout, timeout)+"&then="+tt.then))
			kind, got := sawFault(t, c)
			if kind != tt.want {
				t.Errorf("then=%s timeout=%s: saw %s %q, want %s", tt.then, timeout, kind, got, tt.want)
			}
			if tt.then == "garbage" && (string(got) != garbageBytes || len(got) < 16 || strings.HasPrefix(string(got), "HTTP/")) {
				t.Errorf("then=garbage: %q, want the documented bytes, at least 16, not starting with HTTP/", got)
			}
		}
	}
	text := settledScrape(t, ts, "parkd_endings_total", 6) // counted last, as each settles
	if n, _ := metricSum(t, text, "parkd_outcomes_total", "outcome", "ok"); n != 6 {
		t.Errorf("outcome ok counted %v times, want 6", n)
	}
	for _, then := range []string{"reset", "close", "garbage"} {
		if n, _ := metricSum(t, text, "parkd_endings_total", "then", then); n != 2 {
			t.Errorf("parkd_endings_total{then=%q} = %v, want 2", then, n)
		}
	}
	if n, _ := metricSum(t, text, "parkd_http_requests_total", "route", "/api/request"); n != 0 {
		t.Errorf("%v answers counted for requests that got none", n)
	}
}

// A kill's reset, close and garbage reach the parked client; the kill
// answers 200 and the outcome is killed.
func TestKillThenFaults(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, tt := range []struct{ then, want string }{{"reset", "reset"}, {"close", "close"}, {"garbage", "bytes"}} {
		id := "kf-" + tt.then
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(parkPath(id, "60")))
		ts.waitListed(t, id)
		wantBody(t, "kill then="+tt.then, ts.put(t, "/api/kill", `{"connId":"`+id+`","then":"`+tt.then+`"}`, ""), 200, bodyOK)
		if kind, got := sawFault(t, c); kind != tt.want || tt.then == "garbage" && string(got) != garbageBytes {
			t.Errorf("killed with then=%s: saw %s %q, want %s", tt.then, kind, got, tt.want)
		}
	}
	if n, _ := metricSum(t, scrape(t, ts), "parkd_outcomes_total", "outcome", "killed"); n != 3 {
		t.Errorf("outcome killed counted %v times, want 3", n)
	}
}

// dripRead reads a dripping answer: the headers, then each body byte with
// the time it arrived.
type dripRead struct {
	code    int
	length  int
	headers time.Time
	body    []byte
	at      []time.Time // when each byte of body arrived
	err     error       // how the body ended early, if it did
}

func readDrip(t *testing.T, c *rawConn) dripRead {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(3 * waitBound))
	var d dripRead
	tp := bufio.NewReader(c.br)
	status, err := tp.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the status line: %v", err)
	}
	d.headers = time.Now()
	d.code, _ = strconv.Atoi(strings.Fields(status)[1])
	for {
		line, err := tp.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the headers: %v", err)
		}
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			d.length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	buf := make([]byte, 4096)
	for len(d.body) < d.length {
		n, err := tp.Read(buf)
		now := time.Now()
		for range n {
			d.at = append(d.at, now)
		}
		d.body = append(d.body, buf[:n]...)
		if err != nil {
			d.err = err
			break
		}
	}
	return d
}

// A dripping body: headers at the deadline, then n = min(length,
// ceil(drip/100ms)) pieces, piece k ending at byte floor(length·k/n) and
// leaving at deadline + drip·k/n. Checked within a generous tolerance
// (these machines are shared): no byte early, none more than 400 ms late.
func TestDripSchedule(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, tt := range []struct {
		query  string
		length int
		drip   time.Duration
		pieces int
	}{
		{"&body=50&drip=1", 50, time.Second, 10},                // ten pieces of 5 bytes, 100 ms apart
		{"&drip=1.2", len(bodyOK), 1200 * time.Millisecond, 12}, // a byte or two every 100 ms
		{"&body=4&drip=1", len(bodyOK), time.Second, 10},        // a smaller body leaves the JSON as it is
		{"&body=3000&drip=0.3", 3000, 300 * time.Millisecond, 3},
	} {
		c := dialRaw(t, ts.addr)
		sent := time.Now()
		c.send(t, getRequest(parkPath("drip", "0.2")+tt.query))
		d := readDrip(t, c)
		if d.code != 200 || d.err != nil || len(d.body) != tt.length || strings.TrimRight(string(d.body), " ") != bodyOK {
			t.Errorf("park%s: %d, %d bytes %q (%v); want 200 and %d bytes", tt.query, d.code, len(d.body), d.body, d.err, tt.length)
			continue
		}
		deadline := sent.Add(200 * time.Millisecond)
		if d.headers.Before(deadline) {
			t.Errorf("park%s: headers %v before the deadline", tt.query, deadline.Sub(d.headers))
		}
		for k := 1; k <= tt.pieces; k++ {
			from, to := tt.length*(k-1)/tt.pieces, tt.length*k/tt.pieces
			due := deadline.Add(tt.drip * time.Duration(k) / time.Duration(tt.pieces))
			for i := from; i < to; i++ {
				if early := due.Sub(d.at[i]); early > 0 {
					t.Errorf("park%s: byte %d (piece %d) came %v before its time", tt.query, i, k, early)
				} else if late := -early; late > 400*time.Millisecond {
					t.Errorf("park%s: byte %d (piece %d) came %v after its time", tt.query, i, k, late)
				}
			}
		}
		// The connection is kept after a dripped answer.
		c.send(t, getRequest("/healthz"))
		wantBody(t, "healthz after a drip", c.read(t, http.MethodGet), 200, bodyOK)
	}
	if n, _ := metricSum(t, scrape(t, ts), "parkd_piece_lateness_seconds"); n != 10+12+10+3 {
		t.Errorf("parkd_piece_lateness_seconds counts %v pieces, want %d", n, 10+12+10+3)
	}
}

// While its body drips a request is still parked: listed, by the time to
// its last byte, with phase body and the bytes sent so far.
func TestDripListed(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("dl", "0.1")+"&body=100&drip=30"))
	ts.parkAsync(t, "plain", "20") // ends before dl's last byte, after its deadline
	for end := time.Now().Add(waitBound); ; time.Sleep(20 * time.Millisecond) {
		var l []struct {
			ConnID      string `json:"connId"`
			TimeoutMs   int64  `json:"timeoutMs"`
			RemainingMs int64  `json:"remainingMs"`
			Then, Phase string
			BytesSent   int64 `json:"bytesSent"`
		}
		if r := ts.get(t, "/api/requests"); json.Unmarshal(r.body, &l) != nil {
			t.Fatalf("GET /api/requests: %v", r)
		}
		if len(l) == 2 && l[1].Phase == "body" && l[1].BytesSent > 0 {
			if l[0].ConnID != "plain" || l[1].ConnID != "dl" || l[1].TimeoutMs != 100 ||
				l[1].RemainingMs <= 25_000 || l[1].RemainingMs > 30_000 || l[1].Then != "200" {
				t.Errorf("listing %+v; want plain, then dl (100 ms timeout, 25-30 s to its last byte, then 200)", l)
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("dl never listed in its body phase: %+v", l)
		}
	}
	es := ts.status(t)
	if secs, ok := lookup(es, "dl"); !ok || secs < "26" || len(es) != 2 {
		t.Errorf("serverStatus %v, want dl with 26-30 s left", es)
	}
	ts.killJSON(t, "dl")
	ts.killJSON(t, "plain")
}

// A kill while the body drips ends it at once: a reset if the kill draws
// one, else a close after the bytes already sent; the kill answers 200
// and no status can be sent any more.
func TestDripKilled(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, tt := range []struct{ then, want string }{{"reset", "reset"}, {"503", "close"}, {"", "close"}} {
		id := "dk-" + tt.then
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(parkPath(id, "0")+"&body=200&drip=20"))
		c.SetReadDeadline(time.Now().Add(waitBound))
		var head strings.Builder
		for !strings.HasSuffix(head.String(), "\r\n\r\n{") { // the headers and the first byte of the body
			b, err := c.br.ReadByte()
			if err != nil {
				t.Fatalf("%s: reading the headers: %q, %v", id, head.String(), err)
			}
			head.WriteByte(b)
		}
		if !strings.HasPrefix(head.String(), "HTTP/1.1 200 ") {
			t.Fatalf("%s: %q, want a 200", id, head.String())
		}
		kill := `{"connId":"` + id + `"}`
		if tt.then != "" {
			kill = `{"connId":"` + id + `","then":"` + tt.then + `"}`
		}
		wantBody(t, "kill "+id, ts.put(t, "/api/kill", kill, ""), 200, bodyOK)
		c.SetReadDeadline(time.Now().Add(waitBound))
		rest, err := io.ReadAll(c.br)
		switch {
		case tt.want == "reset" && !errors.Is(err, syscall.ECONNRESET):
			t.Errorf("%s: after the kill read %q, %v; want a reset", id, rest, err)
		case tt.want == "close" && (err != nil || strings.Contains(string(rest), "HTTP/") || 1+len(rest) >= 200):
			t.Errorf("%s: after the kill read %q, %v; want the rest of a short body, then EOF", id, rest, err)
		}
	}
}

// A client that leaves while its body drips is forgotten within a second.
func TestDripHangUp(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("dh", "0")+"&body=100&drip=30"))
	c.SetReadDeadline(time.Now().Add(waitBound))
	if _, err := c.br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	ts.waitListed(t, "dh")
	left := time.Now()
	c.Close()
	ts.waitGone(t, "dh", left, time.Second)
	if n, _ := metricSum(t, settledScrape(t, ts, "parkd_outcomes_total", 1), "parkd_outcomes_total", "outcome", "abandoned"); n != 1 {
		t.Errorf("outcome abandoned counted %v times, want 1", n)
	}
	// Its history says what had left: the headers' code, and the body
	// bytes sent before the client went.
	es := ts.history(t, "?connId=dh")
	if len(es) != 1 || es[0].Outcome != "abandoned" || es[0].Then != nil || es[0].Code == nil || *es[0].Code != 200 ||
		es[0].BytesSent >= 100 {
		t.Errorf("history of dh: %+v, want abandoned, then null, code 200, part of its body", es)
	}
}

// Shutdown goes by the last byte: a request whose last byte falls within
// the grace finishes its drip; one whose body has begun and ends after the
// grace is closed short; one still waiting that ends after it gets 503.
func TestDripShutdown(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.grace = 3 * time.Second
	ts := startServer(t, cfg)
	within, begun, waiting := dialRaw(t, ts.addr), dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	within.send(t, getRequest(parkPath("within", "0")+"&body=20&drip=1"))
	begun.send(t, getRequest(parkPath("begun", "0")+"&body=100&drip=60"))
	waiting.send(t, getRequest(parkPath("waiting", "2")+"&drip=30"))
	ts.waitListed(t, "within", "begun", "waiting")
	begun.SetReadDeadline(time.Now().Add(waitBound))
	if head, err := begun.br.ReadString('\n'); err != nil || !strings.HasPrefix(head, "HTTP/1.1 200") {
		t.Fatalf("begun: %q, %v", head, err)
	}
	ts.cancel()
	if d := readDrip(t, within); d.err != nil || len(d.body) != 20 {
		t.Errorf("within the grace: %d bytes, %v; want the whole 20", len(d.body), d.err)
	}
	begun.SetReadDeadline(time.Now().Add(waitBound))
	if rest, err := io.ReadAll(begun.br); err != nil || strings.Count(string(rest), " ") >= 100 {
		t.Errorf("begun, ending after the grace: %q, %v; want closed short", rest, err)
	}
	r := waiting.read(t, http.MethodGet)
	wantBody(t, "waiting, ending after the grace", r, http.StatusServiceUnavailable, bodyShuttingDown)
}

// -idle-timeout closes a keep-alive connection that stays silent after an
// answer, whether it waits in parkd's epoll set (after a parked answer) or
// in fasthttp (after any other).
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.idleTimeout = 300 * time.Millisecond
	ts := startServer(t, cfg)
	for _, path := range []string{parkPath("idle", "0.01"), "/healthz"} {
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(path))
		c.read(t, http.MethodGet)
		if err := c.closedWithNothing(time.Now().Add(waitBound)); err != nil {
			t.Errorf("after %s and a silence: %v", path, err)
		}
	}
}
