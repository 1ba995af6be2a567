package main

// Section 6 of docs/API.md through real servers: how a parked request ends
// (then on park and on kill), jitter, padded bodies, the listing fields,
// the endings counter, and the Parkd-Instance header on every answer.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A park's then with a status code answers with that code at the
// deadline, the body {"status":"ok"} whatever the code (none for 204 and
// 304); the outcome is still ok, and the listing shows the drawn action.
func TestThenStatusCodes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, tt := range []struct {
		then string
		code int
		body string
	}{
		{"503", 503, bodyOK},
		{"200", 200, bodyOK},
		{"201", 201, bodyOK},
		{"404", 404, bodyOK},
		{"599", 599, bodyOK},
		{"204", 204, ""},
		{"304", 304, ""},
	} {
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(parkPath("code-"+tt.then, "0.05")+"&then="+tt.then))
		r := c.read(t, http.MethodGet)
		if r.code != tt.code || string(r.body) != tt.body {
			t.Errorf("then=%s: got %v, want %d %q", tt.then, r, tt.code, tt.body)
		}
		// The connection is kept, as after any answer.
		c.send(t, getRequest("/healthz"))
		wantBody(t, "healthz after then="+tt.then, c.read(t, http.MethodGet), 200, bodyOK)
	}
	text := scrape(t, ts)
	if n, _ := metricSum(t, text, "parkd_outcomes_total", "outcome", "ok"); n != 7 {
		t.Errorf("outcome ok counted %v times, want 7", n)
	}
	for _, code := range []string{"503", "201", "204", "599"} {
		if n, _ := metricSum(t, text, "parkd_endings_total", "then", code); n != 1 {
			t.Errorf("parkd_endings_total{then=%q} = %v, want 1", code, n)
		}
	}
}

// A weighted then draws each request's action from its list alone, in
// about the proportions of the weights, and the listing shows the drawn
// action before the deadline, which then brings it.
func TestThenWeightedDraw(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const n = 40
	answers := make([]<-chan reply, n)
	for i := range n {
		ch := make(chan reply, 1)
		id := "w" + strconv.Itoa(i)
		ts.goAsync(t, func() { ch <- ts.get(t, parkPath(id, "1")+"&then=201:1,202:3") })
		answers[i] = ch
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "w" + strconv.Itoa(i)
	}
	ts.waitListed(t, ids...)
	var listed []struct {
		ConnID string `json:"connId"`
		Then   string `json:"then"`
	}
	if r := ts.get(t, "/api/requests"); json.Unmarshal(r.body, &listed) != nil {
		t.Fatalf("GET /api/requests: %v", r)
	}
	drawn := map[string]string{}
	for _, l := range listed {
		drawn[l.ConnID] = l.Then
	}
	counts := map[int]int{}
	for i, ch := range answers {
		r := await(t, ids[i], ch)
		counts[r.code]++
		if strconv.Itoa(r.code) != drawn[ids[i]] || string(r.body) != bodyOK {
			t.Errorf("%s: listed then %q, answered %v", ids[i], drawn[ids[i]], r)
		}
	}
	if counts[201]+counts[202] != n || counts[202] < counts[201] {
		t.Errorf("answers %v, want only 201 and 202, about three 202 for each 201", counts)
	}
}

// body pads the answer's JSON with spaces to that many bytes; a smaller
// value leaves it as it is. A kill's answer is padded too.
func TestBodyPadding(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, tt := range []struct {
		query string
		want  int
	}{
		{"&body=1000", 1000},
		{"&body=1048576", 1 << 20},
		{"&body=3", len(bodyOK)},
		{"&body=0", len(bodyOK)},
		{"&body=100&then=503", 100},
	} {
		r := ts.get(t, parkPath("pad"+tt.query, "0.05")+tt.query)
		if len(r.body) != tt.want || !strings.HasPrefix(string(r.body), bodyOK) || strings.TrimRight(string(r.body), " ") != bodyOK {
			t.Errorf("park%s: %d bytes %s, want %d: the JSON then spaces", tt.query, len(r.body), clip(r.body), tt.want)
		}
	}
	killed := ts.parkAsync(t, "padkill", "60&body=300")
	ts.waitListed(t, "padkill")
	wantBody(t, "kill", ts.killJSON(t, "padkill"), 200, bodyOK)
	r := await(t, "padkill", killed)
	if r.code != 500 || len(r.body) != 300 || strings.TrimRight(string(r.body), " ") != bodyKilled {
		t.Errorf("killed with body=300: %d, %d bytes %s; want 500 and the killed JSON padded to 300", r.code, len(r.body), clip(r.body))
	}
	// A zero timeout is answered at once, padded too.
	if r := ts.get(t, parkPath("pad0", "0")+"&body=64"); r.code != 200 || len(r.body) != 64 {
		t.Errorf("timeout=0&body=64: %v, want 200 and 64 bytes", r)
	}
}

// The kill's then, from each place it may come from, is what the killed
// request gets; a kill that draws truncate cuts the killed body short
// after a 500 status line.
func TestKillThen(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for i, tt := range []struct {
		name string
		kill func(id string) reply
		code int
	}{
		{"json string", func(id string) reply {
			return ts.put(t, "/api/kill", `{"connId":"`+id+`","then":"502"}`, "application/json")
		}, 502},
		{"json number", func(id string) reply { return ts.put(t, "/api/kill", `{"connId":"`+id+`","then":504}`, "") }, 504},
		{"form", func(id string) reply {
			return ts.put(t, "/api/kill", "connId="+id+"&then=418", "application/x-www-form-urlencoded")
		}, 418},
		{"query", func(id string) reply { return ts.put(t, "/api/kill?connId="+id+"&then=200", "", "") }, 200},
		{"query with a JSON body", func(id string) reply {
			return ts.put(t, "/api/kill?then=503", `{"connId":"`+id+`"}`, "application/json")
		}, 503},
		{"the same in two places", func(id string) reply {
			return ts.put(t, "/api/kill?then=503", `{"connId":"`+id+`","then":"503"}`, "")
		}, 503},
		{"DELETE", func(id string) reply { return ts.do(t, http.MethodDelete, "/api/requests/"+id+"?then=507", nil) }, 507},
	} {
		id := "kt" + strconv.Itoa(i)
		parked := ts.parkAsync(t, id, "60")
		ts.waitListed(t, id)
		r := tt.kill(id)
		if r.code != 200 && r.code != 204 {
			t.Errorf("%s: kill answered %v", tt.name, r)
		}
		wantBody(t, "killed by "+tt.name, await(t, id, parked), tt.code, bodyKilled)
	}

	// Refused kills kill nothing.
	parked := ts.parkAsync(t, "ktr", "60")
	ts.waitListed(t, "ktr")
	for _, bad := range []struct{ path, body string }{
		{"/api/kill?then=503", `{"connId":"ktr","then":"reset"}`},
		{"/api/kill", `{"connId":"ktr","then":"nope"}`},
		{"/api/kill", `{"connId":"ktr","then":""}`},
		{"/api/kill", `connId=ktr&then=200:0`},
		{"/api/kill?connId=ktr&then=600", ""},
	} {
		wantError(t, "kill "+bad.path+" "+bad.body, ts.put(t, bad.path, bad.body, ""), 400, "error")
	}
	wantError(t, "DELETE with two thens", ts.do(t, http.MethodDelete, "/api/requests/ktr?then=503&then=502", nil), 400, "error")
	ts.waitListed(t, "ktr")
	wantBody(t, "kill after the refused ones", ts.killJSON(t, "ktr"), 200, bodyOK)
	wantBody(t, "ktr", await(t, "ktr", parked), 500, bodyKilled)

	// truncate on a kill: a 500 status line, then less than half of the
	// killed body.
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("kttr", "60")))
	ts.waitListed(t, "kttr")
	wantBody(t, "kill truncate", ts.put(t, "/api/kill", `{"connId":"kttr","then":"truncate"}`, ""), 200, bodyOK)
	head, body, err := c.readTruncated(t)
	if !strings.HasPrefix(head, "HTTP/1.1 500 ") || !strings.Contains(head, "Content-Length: "+strconv.Itoa(len(bodyKilled))) ||
		!strings.HasPrefix(bodyKilled, body) || len(body) == 0 || 2*len(body) >= len(bodyKilled) || err != nil {
		t.Errorf("kill with truncate: head %q, body %q (%v); want a 500 and under half of %s", head, body, err, bodyKilled)
	}
}

// then=truncate at the deadline: the headers promise the whole body, less
// than half of it comes (at least one byte), then the close.
func TestThenTruncate(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, query := range []string{"&then=truncate", "&then=truncate&body=1000", "&then=truncate&body=40&drip=0.4"} {
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(parkPath("tr", "0.05")+query))
		head, body, err := c.readTruncated(t)
		length := max(len(bodyOK), bodyParam(query))
		if !strings.HasPrefix(head, "HTTP/1.1 200 ") || !strings.Contains(head, "Content-Length: "+strconv.Itoa(length)) ||
			len(body) == 0 || 2*len(body) >= length || !strings.HasPrefix(bodyOK+strings.Repeat(" ", length), body) || err != nil {
			t.Errorf("park%s: head %q, body %q (%v); want 200, Content-Length %d and less than half of it", query, head, body, err, length)
		}
	}
}

// bodyParam reads body=N out of a query, 0 without one.
func bodyParam(query string) int {
	for p := range strings.SplitSeq(query, "&") {
		if v, ok := strings.CutPrefix(p, "body="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// readTruncated reads a status line and headers, then the body up to the
// server's close: the close must come before Content-Length bytes.
func (c *rawConn) readTruncated(t *testing.T) (head, body string, err error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitBound))
	var h strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return h.String(), "", fmt.Errorf("reading the headers: %w", err)
		}
		h.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	b, err := io.ReadAll(c.br)
	return h.String(), string(b), err
}

// jitter draws each request's timeout from [timeout, timeout+jitter], to
// the millisecond, and the listing shows the drawn timeout.
func TestJitter(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const n = 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "j" + strconv.Itoa(i)
		ts.parkAsync(t, ids[i], "60&jitter=30")
	}
	ts.waitListed(t, ids...)
	var listed []struct {
		TimeoutMs   int64 `json:"timeoutMs"`
		RemainingMs int64 `json:"remainingMs"`
	}
	if r := ts.get(t, "/api/requests"); json.Unmarshal(r.body, &listed) != nil || len(listed) != n {
		t.Fatalf("GET /api/requests: %v", r)
	}
	distinct := map[int64]bool{}
	for _, l := range listed {
		if l.TimeoutMs < 60_000 || l.TimeoutMs > 90_000 || l.RemainingMs > l.TimeoutMs {
			t.Errorf("timeoutMs %d remainingMs %d, want a timeout in [60000, 90000]", l.TimeoutMs, l.RemainingMs)
		}
		distinct[l.TimeoutMs] = true
	}
	if len(distinct) < n/2 {
		t.Errorf("%d distinct timeouts among %d, want them drawn", len(distinct), n)
	}
	// The answer comes no sooner than the drawn timeout.
	r := ts.get(t, parkPath("jshort", "0.1")+"&jitter=0.2")
	if r.code != 200 || r.elapsed < 100*time.Millisecond {
		t.Errorf("timeout=0.1&jitter=0.2: %v after %v, want 200 after at least 100ms", r, r.elapsed)
	}
}

// Bad section-6 parameters are refused with 400 and a sentence, and
// nothing is parked.
func TestShapeRefusals(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.maxTimeout = 100 * time.Second
	ts := startServer(t, cfg)
	for _, q := range []string{
		"&then=", "&then=nope", "&then=199", "&then=600", "&then=200:0", "&then=200,,503", "&then=,",
		"&then=" + strings.Repeat("200,", 16) + "200", "&then=503&then=503", "&then=RESET",
		"&jitter=-1", "&jitter=.5", "&jitter=1&jitter=1", "&jitter=91",
		"&body=-1", "&body=1048577", "&body=1k", "&body=1&body=1",
		"&drip=", "&drip=1s", "&drip=1&drip=1", "&drip=90.001", "&jitter=45&drip=45.001",
	} {
		r := ts.get(t, parkPath("bad", "10")+q)
		obj := wantError(t, "park"+q, r, http.StatusBadRequest, "error")
		if msg, _ := obj["error"].(string); !strings.ContainsAny(msg, " ") {
			t.Errorf("park%s: error %q is no sentence", q, msg)
		}
	}
	if es := ts.status(t); len(es) != 0 {
		t.Errorf("refused parks listed: %v", es)
	}
	// Unknown parameters are still ignored.
	wantBody(t, "an unknown parameter", ts.get(t, parkPath("unknown", "0")+"&shape=x"), 200, bodyOK)
}

// Every answer names the instance: -instance, or the host name and the
// bound port.
func TestParkdInstanceHeader(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.instance = "unit-7"
	named := startServer(t, cfg)
	unnamed := startServer(t, testConfig())
	_, port, _ := strings.Cut(unnamed.addr, ":")
	for _, tt := range []struct {
		ts   *testServer
		want func(string) bool
	}{
		{named, func(v string) bool { return v == "unit-7" }},
		{unnamed, func(v string) bool { return strings.HasSuffix(v, ":"+port) && len(v) > len(port)+1 }},
	} {
		ts := tt.ts
		parked := ts.parkAsync(t, "inst", "60")
		ts.waitListed(t, "inst")
		answers := []reply{
			ts.park(t, "inst-0", "0"),
			ts.park(t, "inst-1", "0.01"),
			ts.park(t, "inst-2", "0.01&then=503&body=100"),
			ts.park(t, "inst", "1"), // 409
			ts.get(t, "/api/serverStatus"),
			ts.get(t, "/api/requests/nobody"),
			ts.get(t, "/nowhere"),
			ts.do(t, http.MethodPost, "/api/kill", nil),
			ts.killJSON(t, "inst"),
			await(t, "inst", parked),
		}
		c := dialRaw(t, ts.addr)
		c.send(t, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 10<<10)+"\r\n\r\n")
		answers = append(answers, c.read(t, http.MethodGet))
		for i, r := range answers {
			if v := r.header.Get("Parkd-Instance"); !tt.want(v) {
				t.Errorf("answer %d (%v): Parkd-Instance %q", i, r, v)
			}
		}
	}
}

// The resource API shows a plain park's ending, and a shaped one's drawn
// action; serverStatus keeps its format.
func TestListingShowsThen(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	ts.parkAsync(t, "lp", "60")
	ts.parkAsync(t, "lr", "61&then=reset")
	ts.parkAsync(t, "l503", "62&then=503&body=99")
	ts.waitListed(t, "lp", "lr", "l503")
	var listed []map[string]any
	if r := ts.get(t, "/api/requests"); json.Unmarshal(r.body, &listed) != nil {
		t.Fatalf("GET /api/requests: %v", r)
	}
	var got []string
	for _, l := range listed {
		got = append(got, fmt.Sprintf("%v:%v:%v:%v", l["connId"], l["then"], l["phase"], l["bytesSent"]))
	}
	if want := []string{"lp:200:waiting:0", "lr:reset:waiting:0", "l503:503:waiting:0"}; !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
	for _, e := range ts.status(t) {
		if _, err := strconv.Atoi(e.secs); err != nil {
			t.Errorf("serverStatus value %q is not whole seconds", e.secs)
		}
	}
	for _, id := range []string{"lp", "lr", "l503"} {
		ts.killJSON(t, id)
	}
}
