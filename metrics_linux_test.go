package main

import (
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMetricsAddUp drives a scripted sequence — 3 ok, 2 killed, 1
// abandoned, 1 rejected at capacity — and checks that every counter, the
// gauges and the histogram hold exactly the expected values, and that the
// resource API agrees with serverStatus while requests are parked.
func TestMetricsAddUp(t *testing.T) {
	cfg := testConfig()
	cfg.capacity = 2
	ts := startServer(t, cfg)

	for _, id := range []string{"ok-1", "ok-2", "ok-3"} {
		wantBody(t, "park "+id, ts.park(t, id, "0.05"), 200, bodyOK)
	}

	k1 := ts.parkAsync(t, "kill-1", "60")
	k2 := ts.parkAsync(t, "kill-2", "60.5")
	ts.waitListed(t, "kill-1", "kill-2")
	if v, _ := metricSum(t, scrape(t, ts), "parkd_parked_requests"); v != 2 {
		t.Fatalf("parkd_parked_requests = %v with two parked, want 2", v)
	}
	requestsAgreeWithStatus(t, ts)
	r := ts.park(t, "rejected", "1")
	wantError(t, "park at capacity", r, 503, "error")
	for _, id := range []string{"kill-1", "kill-2"} {
		wantBody(t, "kill "+id, ts.killJSON(t, id), 200, bodyOK)
	}
	wantBody(t, "kill-1", await(t, "kill-1", k1), 500, bodyKilled)
	wantBody(t, "kill-2", await(t, "kill-2", k2), 500, bodyKilled)

	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(getRequest(parkPath("gone", "60")))); err != nil {
		t.Fatal(err)
	}
	ts.waitListed(t, "gone")
	requestsAgreeWithStatus(t, ts)
	hungUp := time.Now()
	c.Close()
	ts.waitGone(t, "gone", hungUp, time.Second)

	families := parseMetrics(t, scrape(t, ts))
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"parkd_outcomes_total", map[string]string{"outcome": "ok"}, 3},
		{"parkd_outcomes_total", map[string]string{"outcome": "killed"}, 2},
		{"parkd_outcomes_total", map[string]string{"outcome": "abandoned"}, 1},
		{"parkd_outcomes_total", map[string]string{"outcome": "rejected"}, 1},
		{"parkd_outcomes_total", map[string]string{"outcome": "shutdown"}, 0},
		{"parkd_parked_requests", nil, 0},
		{"parkd_parked_requests_capacity", nil, 2},
		{"parkd_draining", nil, 0},
		{"parkd_http_requests_total", map[string]string{"route": "/api/request", "code": "200"}, 3},
		{"parkd_http_requests_total", map[string]string{"route": "/api/request", "code": "500"}, 2},
		{"parkd_http_requests_total", map[string]string{"route": "/api/request", "code": "503"}, 1},
		{"parkd_http_requests_total", map[string]string{"route": "/api/kill", "code": "200"}, 2},
		{"parkd_answer_lateness_seconds", nil, 3}, // the histogram's count: the three ok
	}
	for _, w := range want {
		got, ok := sample(families, w.name, w.labels)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	for name, kind := range map[string]string{
		"parkd_parked_requests": "GAUGE", "parkd_outcomes_total": "COUNTER",
		"parkd_answer_lateness_seconds": "HISTOGRAM", "parkd_http_requests_total": "COUNTER",
		"go_goroutines": "GAUGE", "process_resident_memory_bytes": "GAUGE",
	} {
		if f, ok := families[name]; !ok || f.GetType().String() != kind {
			t.Errorf("metric %s: missing or not a %s", name, kind)
		}
	}
	// No connId ever becomes a label value.
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "kill-") || strings.Contains(l.GetValue(), "gone") {
					t.Errorf("%s has a connId in label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// requestsAgreeWithStatus checks that /api/requests lists the same ids in
// the same order as serverStatus, read one after the other while nothing
// parks or ends.
func requestsAgreeWithStatus(t *testing.T, ts *testServer) {
	t.Helper()
	var fromStatus []string
	for _, e := range ts.status(t) {
		fromStatus = append(fromStatus, e.id)
	}
	var list []struct {
		ConnID string `json:"connId"`
	}
	r := ts.get(t, "/api/requests")
	if r.code != 200 || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("GET /api/requests: %v", r)
	}
	var fromRequests []string
	for _, e := range list {
		fromRequests = append(fromRequests, e.ConnID)
	}
	if !slices.Equal(fromStatus, fromRequests) {
		t.Fatalf("serverStatus lists %q, /api/requests %q", fromStatus, fromRequests)
	}
}
