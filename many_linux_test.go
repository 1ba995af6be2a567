package main

// Many parked requests at once: order, consistency between the two
// listings, and hang-ups en masse.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// 500 parked requests are listed once each, in deadline order, identically
// by serverStatus and /api/requests; when all their clients hang up at once,
// all leave serverStatus within a second.
func TestManyParked(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const n = 500
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialRaw(t, ts.addr)
		// Deadlines 30 s to 35 s away, interleaved with the order of arrival.
		timeout := strconv.FormatFloat(30+float64(i*37%50)/10, 'f', 1, 64)
		conns[i].send(t, getRequest(parkPath("m"+strconv.Itoa(i), timeout)))
	}
	var es []entry
	end := time.Now().Add(waitBound)
	for len(es) < n {
		if time.Now().After(end) {
			t.Fatalf("only %d of %d requests listed within %v", len(es), n, waitBound)
		}
		time.Sleep(20 * time.Millisecond)
		es = ts.status(t)
	}
	var list []struct{ ConnID, Deadline string }
	r := ts.get(t, "/api/requests")
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatalf("GET /api/requests: %v: %v", r, err)
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.id
	}
	listIDs := make([]string, len(list))
	for i, l := range list {
		listIDs[i] = l.ConnID
	}
	if !slices.Equal(ids, listIDs) {
		t.Errorf("serverStatus and /api/requests list the requests in different orders")
	}
	if !slices.IsSortedFunc(list, func(a, b struct{ ConnID, Deadline string }) int {
		x, _ := time.Parse(time.RFC3339, a.Deadline)
		y, _ := time.Parse(time.RFC3339, b.Deadline)
		return x.Compare(y)
	}) {
		t.Errorf("/api/requests is not ordered by deadline")
	}
	if !slices.IsSortedFunc(es, func(a, b entry) int { return cmpStr(a.secs, b.secs) }) {
		t.Errorf("serverStatus values do not grow along the listing: %v", es)
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != n {
		t.Errorf("serverStatus lists a connId twice")
	}

	for _, c := range conns {
		c.Close()
	}
	hungUp := time.Now()
	for {
		asked := time.Now()
		es := ts.status(t)
		if len(es) == 0 {
			break
		}
		if asked.Sub(hungUp) > time.Second {
			t.Fatalf("%d of %d abandoned requests still listed %v after their clients left, want none after 1s",
				len(es), n, asked.Sub(hungUp).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantBody(t, "a freed connId parks again", ts.park(t, "m0", "0"), http.StatusOK, bodyOK)
}
