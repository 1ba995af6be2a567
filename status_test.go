package main

// Section 2 (serverStatus), section 4's resource API, and how every place
// that prints a connId escapes it.

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestStatusEmpty(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	wantBody(t, "serverStatus", ts.get(t, "/api/serverStatus"), http.StatusOK, `{}`)
	wantBody(t, "/api/requests", ts.get(t, "/api/requests"), http.StatusOK, `[]`)
	// A request that came and went leaves it empty again.
	wantBody(t, "park", ts.park(t, "x", "0.05"), http.StatusOK, bodyOK)
	wantBody(t, "serverStatus after", ts.get(t, "/api/serverStatus"), http.StatusOK, `{}`)
}

// Values are strings of whole seconds rounded up: 0.9 → "1", 1.5 → "2",
// 6.2 → "7", 2 → "2".
func TestStatusRoundsUp(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, tmo := range []float64{0.9, 1.5, 6.2, 2} {
		t.Run(strconv.FormatFloat(tmo, 'f', -1, 64), func(t *testing.T) {
			t.Parallel()
			id := "r" + strconv.FormatFloat(tmo, 'f', -1, 64)
			sent := time.Now()
			parked := ts.parkAsync(t, id, strconv.FormatFloat(tmo, 'f', -1, 64))
			secs, _ := lookup(ts.waitListed(t, id), id)
			elapsed := time.Since(sent).Seconds()
			// The request has between tmo-elapsed and tmo seconds left;
			// rounded up, and never below 1. With a quick listing that is
			// exactly ceil(tmo).
			lo, hi := max(1, int(math.Ceil(tmo-elapsed))), int(math.Ceil(tmo))
			if n, err := strconv.Atoi(secs); err != nil || n < lo || n > hi || secs != strconv.Itoa(n) {
				t.Errorf("timeout %v shows %q %.3fs after parking, want whole seconds in [%d, %d]", tmo, secs, elapsed, lo, hi)
			}
			wantBody(t, "kill", ts.killJSON(t, id), http.StatusOK, bodyOK)
			await(t, id, parked)
		})
	}
}

// Entries are ordered by deadline, soonest first, whatever order they were
// parked in; values grow along the listing.
func TestStatusDeadlineOrder(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	ids := []string{"d", "b", "a", "c"} // parked in this order, one after the other
	timeouts := map[string]string{"a": "2.5", "b": "4.5", "c": "3.5", "d": "6.5"}
	var answers []<-chan reply
	for _, id := range ids {
		answers = append(answers, ts.parkAsync(t, id, timeouts[id]))
		ts.waitListed(t, id)
	}
	es := ts.status(t)
	var order []string
	for _, e := range es {
		order = append(order, e.id)
	}
	if want := []string{"a", "c", "b", "d"}; !slices.Equal(order, want) {
		t.Errorf("serverStatus order %q, want %q (by deadline)", order, want)
	}
	if !slices.IsSortedFunc(es, func(a, b entry) int { return cmpStr(a.secs, b.secs) }) {
		t.Errorf("values do not grow along the listing: %v", es)
	}
	for _, id := range ids {
		wantBody(t, "kill "+id, ts.killJSON(t, id), http.StatusOK, bodyOK)
	}
	for _, ch := range answers {
		wantBody(t, "killed", await(t, "parked", ch), http.StatusInternalServerError, bodyKilled)
	}
}

// While a request is parked its value counts down, never goes up, and
// never shows "0", up to its very last moment.
func TestStatusCountsDownNeverZero(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	parked := ts.parkAsync(t, "cd", "1.2")
	ts.waitListed(t, "cd")
	var seen []string
	end := time.Now().Add(waitBound)
	for {
		if time.Now().After(end) {
			t.Fatal("parked request never answered")
		}
		select {
		case r := <-parked:
			wantBody(t, "parked request", r, http.StatusOK, bodyOK)
			if _, in := lookup(ts.status(t), "cd"); in {
				t.Errorf("still listed after its answer")
			}
			if !slices.Contains(seen, "1") {
				t.Errorf("values seen %q, want \"1\" in its last second", seen)
			}
			if len(seen) == 0 || seen[0] != "2" && seen[0] != "1" || !slices.IsSortedFunc(seen, func(a, b string) int { return -cmpStr(a, b) }) {
				t.Errorf("values seen %q, want \"2\" then \"1\", never rising", seen)
			}
			return
		default:
		}
		if secs, in := lookup(ts.status(t), "cd"); in {
			if secs != "1" && secs != "2" {
				t.Fatalf("a 1.2 s request shows %q, want \"2\" or \"1\" (never \"0\")", secs)
			}
			if len(seen) == 0 || seen[len(seen)-1] != secs {
				seen = append(seen, secs)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cmpStr(a, b string) int {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return x - y
}

// A connId with characters that JSON, HTML, JavaScript, URLs or forms treat
// specially is parked, listed, refused as a duplicate, shown by the
// resource API, killed and reported unknown, always as valid JSON holding
// exactly that id.
func TestConnIDEscaping(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	ids := map[string]string{
		"quote":           `a"b`,
		"backslash":       `a\b\`,
		"script":          `</script><script>alert(1)</script>`,
		"line separators": "a\u2028b\u2029c",
		"non-ASCII":       "é€😀",
		"semicolon":       "a;b",
		"plus":            "a+b",
		"percent":         "50%",
		"percent escape":  "%41",
		"space":           "a b",
		"slash":           "a/b",
		"URL characters":  "a?b#c&d=e",
		"JSON look-alike": `{"connId":"12"}`,
		"apostrophe":      "it's",
		"ampersand":       "&amp;",
		"replacement":     "\ufffd",
	}
	for name, id := range ids {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			parked := ts.parkAsync(t, id, "60")
			ts.waitListed(t, id) // the key round-trips exactly

			obj := wantError(t, "duplicate", ts.park(t, id, "1"), http.StatusConflict, "error")
			if want := "connId " + id + " is already running"; obj != nil && obj["error"] != want {
				t.Errorf("409 error %q, want %q", obj["error"], want)
			}

			var list []map[string]any
			if err := json.Unmarshal(ts.get(t, "/api/requests").body, &list); err != nil ||
				!slices.ContainsFunc(list, func(m map[string]any) bool { return m["connId"] == id }) {
				t.Errorf("/api/requests does not list %q: %v %v", id, list, err)
			}
			one := ts.get(t, "/api/requests/"+url.PathEscape(id))
			var got map[string]any
			if err := json.Unmarshal(one.body, &got); one.code != http.StatusOK || err != nil || got["connId"] != id {
				t.Errorf("GET /api/requests/%s: %v, want 200 with connId %q", url.PathEscape(id), one, id)
			}

			wantBody(t, "kill", ts.killJSON(t, id), http.StatusOK, bodyOK)
			wantBody(t, "killed", await(t, "killed", parked), http.StatusInternalServerError, bodyKilled)

			obj = wantError(t, "kill again", ts.killJSON(t, id), http.StatusBadRequest, "invalid connection Id : "+id)
			if obj != nil && len(obj) != 1 {
				t.Errorf("unknown-id answer %v, want only a status", obj)
			}
			wantError(t, "GET after the kill", ts.get(t, "/api/requests/"+url.PathEscape(id)), http.StatusNotFound, "not found")
		})
	}
}

var rfc3339Ms = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)

// The resource API: a list in serverStatus order with every field, one
// request by its path-escaped connId, and DELETE as a kill.
func TestRequestsResource(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	// r1 through a raw connection, so its remote address is known.
	c := dialRaw(t, ts.addr)
	sent := time.Now()
	c.send(t, getRequest(parkPath("r 1", "5")))
	r2 := ts.parkAsync(t, "r/2", "3")
	ts.waitListed(t, "r 1", "r/2")
	now := time.Now()

	var list []map[string]any
	r := ts.get(t, "/api/requests")
	if err := json.Unmarshal(r.body, &list); err != nil || r.code != http.StatusOK || len(list) != 2 {
		t.Fatalf("GET /api/requests: %v, want 200 and a list of two", r)
	}
	if list[0]["connId"] != "r/2" || list[1]["connId"] != "r 1" {
		t.Errorf("GET /api/requests lists %v then %v, want r/2 then r 1 (deadline order)", list[0]["connId"], list[1]["connId"])
	}
	check := func(what string, m map[string]any, id string, timeoutMs float64, remote string) {
		t.Helper()
		keys := []string{"connId", "timeoutMs", "remainingMs", "startedAt", "deadline", "remoteAddr", "then", "phase", "bytesSent"}
		for k := range m {
			if !slices.Contains(keys, k) {
				t.Errorf("%s: unexpected field %q", what, k)
			}
		}
		// A plain park: the default ending, waiting, nothing sent.
		if m["then"] != "200" || m["phase"] != "waiting" || m["bytesSent"] != 0.0 {
			t.Errorf("%s: then %v phase %v bytesSent %v, want \"200\" \"waiting\" 0", what, m["then"], m["phase"], m["bytesSent"])
		}
		if m["connId"] != id || m["timeoutMs"] != timeoutMs {
			t.Errorf("%s: connId %v timeoutMs %v, want %q %v", what, m["connId"], m["timeoutMs"], id, timeoutMs)
		}
		if rem, ok := m["remainingMs"].(float64); !ok || rem <= 0 || rem > timeoutMs || rem != math.Trunc(rem) {
			t.Errorf("%s: remainingMs %v, want whole milliseconds in (0, %v]", what, m["remainingMs"], timeoutMs)
		}
		start, _ := m["startedAt"].(string)
		deadline, _ := m["deadline"].(string)
		if !rfc3339Ms.MatchString(start) || !rfc3339Ms.MatchString(deadline) {
			t.Errorf("%s: startedAt %q, deadline %q, want RFC 3339 with milliseconds", what, start, deadline)
			return
		}
		st, _ := time.Parse(time.RFC3339, start)
		dl, _ := time.Parse(time.RFC3339, deadline)
		if got := dl.Sub(st); got != time.Duration(timeoutMs)*time.Millisecond {
			t.Errorf("%s: deadline - startedAt = %v, want %vms", what, got, timeoutMs)
		}
		if st.Before(sent.Add(-time.Millisecond)) || st.After(now) {
			t.Errorf("%s: startedAt %v, want between %v and %v", what, st, sent, now)
		}
		if a, _ := m["remoteAddr"].(string); remote != "" && a != remote || remote == "" && a == "" {
			t.Errorf("%s: remoteAddr %q, want %q", what, a, remote)
		}
	}
	check("list r/2", list[0], "r/2", 3000, "")
	check("list r 1", list[1], "r 1", 5000, c.LocalAddr().String())

	var one map[string]any
	r = ts.get(t, "/api/requests/r%201")
	if err := json.Unmarshal(r.body, &one); err != nil || r.code != http.StatusOK {
		t.Fatalf("GET /api/requests/r%%201: %v", r)
	}
	check("GET r 1", one, "r 1", 5000, c.LocalAddr().String())
	wantError(t, "GET unknown", ts.get(t, "/api/requests/r1"), http.StatusNotFound, "not found")

	d := ts.do(t, http.MethodDelete, "/api/requests/r%201", nil)
	if d.code != http.StatusNoContent || len(d.body) != 0 {
		t.Errorf("DELETE /api/requests/r%%201: %v, want 204 and no body", d)
	}
	killed := c.read(t, http.MethodGet)
	wantBody(t, "deleted request", killed, http.StatusInternalServerError, bodyKilled)
	wantError(t, "GET deleted", ts.get(t, "/api/requests/r%201"), http.StatusNotFound, "not found")
	wantError(t, "DELETE deleted", ts.do(t, http.MethodDelete, "/api/requests/r%201", nil), http.StatusNotFound, "not found")
	if es := ts.status(t); len(es) != 1 || es[0].id != "r/2" {
		t.Errorf("serverStatus after DELETE: %v, want only r/2", es)
	}

	if d := ts.do(t, http.MethodDelete, "/api/requests/r%2F2", nil); d.code != http.StatusNoContent {
		t.Errorf("DELETE /api/requests/r%%2F2: %v, want 204", d)
	}
	wantBody(t, "r/2", await(t, "r/2", r2), http.StatusInternalServerError, bodyKilled)
	wantBody(t, "/api/requests at the end", ts.get(t, "/api/requests"), http.StatusOK, `[]`)
}

// Right at their deadline, requests not answered yet still show "1", never
// "0": 100 requests due at about the same moment, while serverStatus is
// read over and over.
func TestStatusNeverZeroAtDeadline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const n = 100
	answers := make(chan reply, n)
	for i := range n {
		ts.goAsync(t, func() { answers <- ts.park(t, "z"+strconv.Itoa(i), "0.3") })
	}
	reads, answered := 0, 0
	end := time.Now().Add(waitBound)
	for answered < n {
		if time.Now().After(end) {
			t.Fatalf("%d of %d requests answered within %v", answered, n, waitBound)
		}
		for _, e := range ts.status(t) {
			if e.secs != "1" {
				t.Fatalf("%s shows %q, want \"1\" for a request due within a second (never \"0\")", e.id, e.secs)
			}
		}
		reads++
		for drained := false; !drained; {
			select {
			case r := <-answers:
				wantBody(t, "parked", r, http.StatusOK, bodyOK)
				answered++
			default:
				drained = true
			}
		}
	}
	t.Logf("%d serverStatus reads", reads)
}
