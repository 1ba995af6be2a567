package main

// Section 7's event stream through real servers: the snapshot, the
// events in order with growing ids, the replay after Last-Event-ID, the
// keep-alive comment, and the end of a stream at shutdown.

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkd/parkd/history"
)

// A stream starts with the snapshot of what is parked, then a parked
// event and a finished event for each request, in order, ids growing.
func TestEventStream(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	held := ts.parkAsync(t, "before", "60")
	ts.waitListed(t, "before")
	s := ts.subscribe(t, "")
	snap := s.nextEvent(t)
	var listed []map[string]any
	if snap.event != "snapshot" || snap.id != "" || json.Unmarshal([]byte(snap.data), &listed) != nil ||
		len(listed) != 1 || listed[0]["connId"] != "before" || listed[0]["then"] != "200" {
		t.Fatalf("first event %+v, want the snapshot listing \"before\", without an id", snap)
	}
	wantBody(t, "park", ts.park(t, "e1", "0.05&then=503"), 503, bodyOK)
	ts.killJSON(t, "before")
	await(t, "before", held)
	wantBody(t, "park for no time", ts.park(t, "e2", "0"), 200, bodyOK)

	want := []struct{ event, connID, field, value string }{
		{"parked", "e1", "then", "503"},
		{"finished", "e1", "outcome", "ok"},
		{"finished", "before", "outcome", "killed"},
		{"finished", "e2", "outcome", "ok"}, // a zero timeout never waits: finished only
	}
	var last history.ID
	for i, w := range want {
		ev := s.nextEvent(t)
		id, ok := history.ParseID(ev.id)
		var obj map[string]any
		if !ok || i > 0 && !last.Less(id) || ev.event != w.event || json.Unmarshal([]byte(ev.data), &obj) != nil ||
			obj["connId"] != w.connID || obj[w.field] != w.value {
			t.Fatalf("event %d: %+v, want %s of %s with %s %s, its id after %v", i, ev, w.event, w.connID, w.field, w.value, last)
		}
		last = id
	}
	if n, _ := metricSum(t, scrape(t, ts), "parkd_event_subscribers"); n != 1 {
		t.Errorf("parkd_event_subscribers = %v, want 1", n)
	}
	s.Close()
	for end := time.Now().Add(waitBound); ; time.Sleep(50 * time.Millisecond) {
		if n, _ := metricSum(t, scrape(t, ts), "parkd_event_subscribers"); n == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("a stream whose client left is still counted")
		}
	}
}

// A client reconnecting with Last-Event-ID gets the snapshot, then every
// finished event after that id still in the ring, then live events; an
// id that is not one is ignored.
func TestEventStreamReplay(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for i := range 5 {
		ts.park(t, "r"+strconv.Itoa(i), "0")
	}
	hist := ts.history(t, "")
	// The third finished event's id, from a stream that saw them all.
	s := ts.subscribe(t, "0")
	if ev := s.nextEvent(t); ev.event != "snapshot" {
		t.Fatalf("first %+v", ev)
	}
	var ids []string
	for range 5 {
		ev := s.nextEvent(t)
		ids = append(ids, ev.id)
		if ev.event != "finished" {
			t.Fatalf("replay: %+v", ev)
		}
	}
	s.Close()
	if len(hist) != 5 {
		t.Fatalf("history %+v", hist)
	}
	again := ts.subscribe(t, ids[2])
	if ev := again.nextEvent(t); ev.event != "snapshot" {
		t.Fatalf("first after reconnecting: %+v", ev)
	}
	for _, want := range []string{"r3", "r4"} {
		ev := again.nextEvent(t)
		if ev.event != "finished" || !strings.Contains(ev.data, `"connId":"`+want+`"`) {
			t.Fatalf("replay after %s: %+v, want %s", ids[2], ev, want)
		}
	}
	ts.park(t, "live", "0")
	if ev := again.nextEvent(t); !strings.Contains(ev.data, `"connId":"live"`) {
		t.Fatalf("after the replay: %+v, want the live event", ev)
	}
	bogus := ts.subscribe(t, "not-an-id")
	if ev := bogus.nextEvent(t); ev.event != "snapshot" {
		t.Fatalf("first with a bogus id: %+v", ev)
	}
	ts.park(t, "after-bogus", "0")
	if ev := bogus.nextEvent(t); !strings.Contains(ev.data, `"connId":"after-bogus"`) {
		t.Fatalf("with a bogus Last-Event-ID: %+v, want no replay, the live event", ev)
	}
}

// A quiet stream gets a comment line every 15 s.
func TestEventStreamKeepAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 15 s")
	}
	t.Parallel()
	ts := startServer(t, testConfig())
	s := ts.subscribe(t, "")
	s.nextEvent(t) // the snapshot
	start := time.Now()
	ev, err := s.next(t, 20*time.Second)
	if err != nil || ev.comment == "" || time.Since(start) < 14*time.Second {
		t.Errorf("after a quiet spell: %+v, %v after %v; want a comment line after about 15 s", ev, err, time.Since(start))
	}
}

// A stream follows the drain, then ends once nothing is parked, so that
// it never holds the process past the grace.
func TestEventStreamShutdown(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.grace = 5 * time.Second
	ts := startServer(t, cfg)
	parked := ts.parkAsync(t, "drain", "0.5")
	ts.waitListed(t, "drain")
	s := ts.subscribe(t, "")
	s.nextEvent(t)
	ts.cancel()
	wantBody(t, "within the grace", await(t, "drain", parked), 200, bodyOK)
	if ev := s.nextEvent(t); ev.event != "finished" || !strings.Contains(ev.data, `"connId":"drain"`) {
		t.Errorf("during the drain: %+v, want drain's finished event", ev)
	}
	s.SetReadDeadline(time.Now().Add(waitBound))
	if rest, err := io.ReadAll(s.br); err != nil {
		t.Errorf("the stream did not end after the drain: %q, %v", rest, err)
	}
	if code, ok := ts.wait(); !ok || code != 0 {
		t.Errorf("serve returned %d (%v), want 0", code, ok)
	}
	// New streams are refused once the hub has closed.
	_ = http.StatusServiceUnavailable
}
