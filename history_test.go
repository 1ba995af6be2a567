package main

// Section 7's history through real servers: every field of a finished
// request, for every outcome and every kind of then, the filters, the
// limit, and -history 0.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkd/parkd/history"
)

// historyEntry is one /api/history object, every field of it; the test
// refuses any other.
type historyEntry struct {
	ConnID     string  `json:"connId"`
	Outcome    string  `json:"outcome"`
	Then       *string `json:"then"`
	Code       *int    `json:"code"`
	TimeoutMs  int64   `json:"timeoutMs"`
	StartedAt  string  `json:"startedAt"`
	EndedAt    string  `json:"endedAt"`
	DurationMs int64   `json:"durationMs"`
	BytesSent  int64   `json:"bytesSent"`
	RemoteAddr string  `json:"remoteAddr"`
	Instance   string  `json:"instance"`
}

// history reads /api/history with query, strictly.
func (ts *testServer) history(t *testing.T, query string) []historyEntry {
	t.Helper()
	r := ts.get(t, "/api/history"+query)
	if r.code != http.StatusOK {
		t.Fatalf("GET /api/history%s: %v", query, r)
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	var es []historyEntry
	if err := dec.Decode(&es); err != nil || es == nil {
		t.Fatalf("GET /api/history%s: %v in %s", query, err, clip(r.body))
	}
	return es
}

// waitHistory polls /api/history until id has n entries.
func (ts *testServer) waitHistory(t *testing.T, id string, n int) []historyEntry {
	t.Helper()
	for end := time.Now().Add(waitBound); ; time.Sleep(10 * time.Millisecond) {
		es := ts.history(t, "?connId="+id)
		if len(es) >= n {
			return es
		}
		if time.Now().After(end) {
			t.Fatalf("history of %q: %d entries, want %d", id, len(es), n)
		}
	}
}

func str(s string) *string { return &s }
func num(n int) *int       { return &n }

// Every outcome and every kind of then leaves exactly one entry, with
// each field as the API says.
func TestHistoryFields(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.instance = "hist-1"
	ts := startServer(t, cfg)
	type want struct {
		outcome   string
		then      *string
		code      *int
		timeoutMs int64
		bytesSent int64
		minMs     int64 // durationMs at least
	}
	cases := map[string]want{}
	// Each parks on a raw connection and reads to its end: a client that
	// left would be abandoned, and net/http's client would retry a GET
	// that got nothing.
	park := func(id, query string, w want) {
		cases[id] = w
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(parkPath(id, query), "Connection: close\r\n"))
		ts.goAsync(t, func() {
			c.SetReadDeadline(time.Now().Add(2 * waitBound))
			io.Copy(io.Discard, c)
		})
	}
	park("h-ok", "0.05", want{"ok", str("200"), num(200), 50, 15, 50})
	park("h-zero", "0", want{"ok", str("200"), num(200), 0, 15, 0})
	park("h-503", "0.05&then=503&body=100", want{"ok", str("503"), num(503), 50, 100, 50})
	park("h-204", "0.05&then=204", want{"ok", str("204"), num(204), 50, 0, 50})
	park("h-reset", "0.05&then=reset", want{"ok", str("reset"), nil, 50, 0, 50})
	park("h-close", "0.05&then=close", want{"ok", str("close"), nil, 50, 0, 50})
	park("h-garbage", "0.05&then=garbage", want{"ok", str("garbage"), nil, 50, 0, 50})
	park("h-truncate", "0.05&then=truncate&body=41", want{"ok", str("truncate"), num(200), 50, 20, 50})
	park("h-drip", "0.05&body=20&drip=0.2", want{"ok", str("200"), num(200), 50, 20, 250})
	park("h-kill", "60", want{"killed", str("500"), num(500), 60_000, 19, 0})
	park("h-kill-reset", "60", want{"killed", str("reset"), nil, 60_000, 0, 0})
	park("h-kill-trunc", "60", want{"killed", str("truncate"), num(500), 60_000, 9, 0})
	park("h-kill-drip", "0&body=100&drip=5", want{"killed", str("close"), num(200), 0, -1, 0})
	park("h-kill-drip-reset", "0&body=100&drip=5", want{"killed", str("reset"), num(200), 0, -1, 0})
	ts.waitListed(t, "h-kill", "h-kill-reset", "h-kill-trunc", "h-kill-drip", "h-kill-drip-reset")
	time.Sleep(300 * time.Millisecond) // the drips have begun: a byte every 50 ms
	ts.killJSON(t, "h-kill")
	ts.put(t, "/api/kill", `{"connId":"h-kill-reset","then":"reset"}`, "")
	ts.put(t, "/api/kill", `{"connId":"h-kill-trunc","then":"truncate"}`, "")
	ts.killJSON(t, "h-kill-drip")
	ts.put(t, "/api/kill", `{"connId":"h-kill-drip-reset","then":"reset"}`, "")
	// Refused parks are not in the history.
	wantError(t, "a refused park", ts.park(t, "h-bad", "-1"), http.StatusBadRequest, "error")

	for id, w := range cases {
		es := ts.waitHistory(t, id, 1)
		e := es[0]
		if len(es) != 1 {
			t.Errorf("%s: %d entries, want one", id, len(es))
		}
		started, err1 := time.Parse(rfc3339Millis, e.StartedAt)
		ended, err2 := time.Parse(rfc3339Millis, e.EndedAt)
		switch {
		case e.ConnID != id || e.Outcome != w.outcome || e.TimeoutMs != w.timeoutMs || e.Instance != "hist-1":
			t.Errorf("%s: %+v, want outcome %s, timeoutMs %d, instance hist-1", id, e, w.outcome, w.timeoutMs)
		case (e.Then == nil) != (w.then == nil) || e.Then != nil && *e.Then != *w.then:
			t.Errorf("%s: then %v, want %v", id, deref(e.Then), deref(w.then))
		case (e.Code == nil) != (w.code == nil) || e.Code != nil && *e.Code != *w.code:
			t.Errorf("%s: code %v, want %v", id, derefInt(e.Code), derefInt(w.code))
		case w.bytesSent >= 0 && e.BytesSent != w.bytesSent, w.bytesSent < 0 && (e.BytesSent <= 0 || e.BytesSent >= 100):
			t.Errorf("%s: bytesSent %d, want %d (-1: some, not all)", id, e.BytesSent, w.bytesSent)
		case err1 != nil || err2 != nil || !rfc3339Ms.MatchString(e.StartedAt) || !rfc3339Ms.MatchString(e.EndedAt):
			t.Errorf("%s: startedAt %q, endedAt %q, want RFC 3339 with milliseconds", id, e.StartedAt, e.EndedAt)
		case e.DurationMs != ended.Sub(started).Milliseconds() || e.DurationMs < w.minMs:
			t.Errorf("%s: durationMs %d for %s → %s, want their difference, at least %d", id, e.DurationMs, e.StartedAt, e.EndedAt, w.minMs)
		case !strings.HasPrefix(e.RemoteAddr, "127.0.0.1:"):
			t.Errorf("%s: remoteAddr %q", id, e.RemoteAddr)
		}
	}
	if es := ts.history(t, "?connId=h-bad"); len(es) != 0 {
		t.Errorf("a refused park is in the history: %+v", es)
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func derefInt(n *int) any {
	if n == nil {
		return nil
	}
	return *n
}

// A shutdown's entry says 503.
func TestHistoryShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	parked := ts.parkAsync(t, "h-down", "60")
	ts.waitListed(t, "h-down")
	ts.cancel()
	wantBody(t, "at shutdown", await(t, "h-down", parked), 503, bodyShuttingDown)
	// The record is kept as the request settles, just after its answer
	// has left: the client may read the answer first. The server no
	// longer answers HTTP, so the store is asked.
	var es []history.Record
	for end := time.Now().Add(waitBound); ; time.Sleep(5 * time.Millisecond) {
		es, _ = ts.s.store.History(context.Background(), history.Filter{})
		if len(es) > 0 || time.Now().After(end) {
			break
		}
	}
	if len(es) != 1 || es[0].Outcome != "shutdown" || es[0].Then != "503" || es[0].Code != 503 {
		t.Errorf("history after shutdown: %+v, want one shutdown with then 503 and code 503", es)
	}
}

// Newest first; connId, outcome and limit filter; limit above what the
// ring holds gives all of it; the ring keeps the last -history.
func TestHistoryFilters(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.history = 5
	ts := startServer(t, cfg)
	for i := range 7 {
		id := "f" + strconv.Itoa(i%3)
		wantBody(t, "park", ts.park(t, id, "0"), 200, bodyOK)
	}
	ids := func(es []historyEntry) string {
		var s []string
		for _, e := range es {
			s = append(s, e.ConnID)
		}
		return strings.Join(s, " ")
	}
	for _, tt := range []struct{ query, want string }{
		{"", "f0 f2 f1 f0 f2"},
		{"?limit=2", "f0 f2"},
		{"?limit=100", "f0 f2 f1 f0 f2"},
		{"?limit=99999999999999999999999", "f0 f2 f1 f0 f2"},
		{"?connId=f0", "f0 f0"},
		{"?connId=f0&limit=1", "f0"},
		{"?outcome=ok&limit=3", "f0 f2 f1"},
		{"?outcome=killed", ""},
		{"?connId=nobody", ""},
		{"?other=1", "f0 f2 f1 f0 f2"},
	} {
		if got := ids(ts.history(t, tt.query)); got != tt.want {
			t.Errorf("history%s = %q, want %q", tt.query, got, tt.want)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=x", "?limit=", "?limit=1&limit=1", "?outcome=rejected",
		"?outcome=OK", "?connId=", "?connId=a%00", "?connId=%zz"} {
		wantError(t, "history"+q, ts.get(t, "/api/history"+q), http.StatusBadRequest, "error")
	}
	wantError(t, "POST /api/history", ts.do(t, http.MethodPost, "/api/history", nil), http.StatusMethodNotAllowed, "method not allowed")

	none := testConfig()
	none.history = 0
	empty := startServer(t, none)
	wantBody(t, "park", empty.park(t, "x", "0"), 200, bodyOK)
	wantBody(t, "-history 0", empty.get(t, "/api/history"), 200, "[]")
}
