package main

// run end to end, hang-ups included (only Linux notices them).

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// run serves the API on the address it logs, logs one line per finished
// parked request with its connId, outcome and duration, and returns 0 when
// its context ends.
func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	cancel, stderr, wait := startRun(t, "-addr", "127.0.0.1:0", "-log-format", "json", "-max-timeout", "90s", "-grace", "5s")
	addr := waitFor(t, "start line", stderr, func(log string) string {
		for _, m := range jsonLines(t, log) {
			if m["msg"] == "parkd listening" {
				a, _ := m["addr"].(string)
				return a
			}
		}
		return ""
	})
	ts := clientFor(t, addr)

	const odd = "a\"b;c\u2028é</script>" // must survive the JSON log
	wantBody(t, "park", ts.park(t, "ok", "0.05"), http.StatusOK, bodyOK)
	wantBody(t, "park for no time", ts.park(t, "zero", "0"), http.StatusOK, bodyOK)
	wantBody(t, "park an odd id", ts.park(t, odd, "0.01"), http.StatusOK, bodyOK)
	wantError(t, "above -max-timeout", ts.park(t, "long", "91"), http.StatusBadRequest, "error")
	killed := ts.parkAsync(t, "killed", "60")
	c := dialRaw(t, addr)
	c.send(t, getRequest(parkPath("gone", "60")))
	ts.waitListed(t, "killed", "gone")
	hungUp := time.Now()
	c.Close()
	ts.waitGone(t, "gone", hungUp, time.Second)
	wantBody(t, "kill", ts.killJSON(t, "killed"), http.StatusOK, bodyOK)
	wantBody(t, "killed", await(t, "killed", killed), http.StatusInternalServerError, bodyKilled)
	wantBody(t, "serverStatus", ts.get(t, "/api/serverStatus"), http.StatusOK, `{}`)

	// Parked beyond the grace when run's context ends: 503, logged as such.
	late := ts.parkAsync(t, "late", "60")
	ts.waitListed(t, "late")
	ts.closeIdle()
	cancel()
	wantBody(t, "parked at shutdown", await(t, "late", late), http.StatusServiceUnavailable, bodyShuttingDown)
	if code, ok := wait(); !ok || code != 0 {
		t.Fatalf("run returned %d (returned: %v), want 0", code, ok)
	}

	want := map[string]string{"ok": "ok", "zero": "ok", odd: "ok", "killed": "killed", "gone": "abandoned", "late": "shutdown"}
	got := map[string][]string{}
	for _, m := range jsonLines(t, stderr.String()) {
		if m["msg"] == "parkd listening" {
			// The default capacity: the open-file limit less 5%, at least 64.
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 1<<30 {
				if want := float64(int(lim.Cur) - max(64, int(lim.Cur)/20)); m["capacity"] != want {
					t.Errorf("start line %v: capacity %v, want %v for an open-file limit of %d", m, m["capacity"], want, lim.Cur)
				}
			}
			continue
		}
		id, ok := m["connId"].(string)
		if !ok {
			continue
		}
		o, _ := m["outcome"].(string)
		got[id] = append(got[id], o)
		if _, ok := m["duration"]; !ok {
			t.Errorf("log line for %q has no duration: %v", id, m)
		}
	}
	for id, o := range want {
		if len(got[id]) != 1 || got[id][0] != o {
			t.Errorf("log lines for %q: outcomes %q, want exactly one %q", id, got[id], o)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("log line for %q, which never parked", id)
		}
	}
}
