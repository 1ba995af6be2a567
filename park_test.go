package main

// Section 1 of the contract: GET /api/request?connId=ID&timeout=SECONDS.

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A parked request answers 200 {"status":"ok"}, never before its timeout
// (rounded half-up to the millisecond), and leaves serverStatus by then.
func TestParkAnswersOKAfterTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	tests := []struct {
		name, timeout string
		want          time.Duration
	}{
		{"zero", "0", 0},
		{"zero with leading zeros", "000", 0},
		{"zero point zero", "0.000", 0},
		{"below half a millisecond", "0.0004", 0},
		{"half a millisecond rounds up", "0.0005", time.Millisecond},
		{"fifty milliseconds", "0.05", 50 * time.Millisecond},
		{"fractional", "0.25", 250 * time.Millisecond},
		{"rounded half-up", "0.1234567", 123 * time.Millisecond},
		{"rounded half-up past the third decimal", "0.1235", 124 * time.Millisecond},
		{"leading zeros", "000.150", 150 * time.Millisecond},
		{"whole seconds with leading zero", "01", time.Second},
		{"many decimals", "0.30000000000000000000000000001", 300 * time.Millisecond},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := "ok-" + string(rune('a'+i))
			r := ts.park(t, id, tt.timeout)
			wantBody(t, "park timeout="+tt.timeout, r, http.StatusOK, bodyOK)
			if r.elapsed < tt.want {
				t.Errorf("timeout=%s answered after %v, want no earlier than %v", tt.timeout, r.elapsed, tt.want)
			}
			// The entry leaves before its answer is written.
			if secs, in := lookup(ts.status(t), id); in {
				t.Errorf("%q still listed (%q) after its answer", id, secs)
			}
			// And the connId is free again.
			wantBody(t, "park again", ts.park(t, id, "0"), http.StatusOK, bodyOK)
		})
	}
}

// connIds at the edges of the grammar are accepted.
func TestParkAcceptsConnIDs(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, q := range []string{
		"connId=" + strings.Repeat("x", 128),     // 128 bytes
		"connId=" + strings.Repeat("%C3%A9", 64), // 128 bytes of UTF-8, 64 characters
		"connId=a;b",                             // a raw ';' is part of the value
		"connId=+",                               // a space
		"connId=%EF%BF%BD",                       // a real U+FFFD
		"connId=%C2%A0",                          // U+00A0 follows the C1 controls
		"connId=%F0%9F%98%80",                    // 4-byte UTF-8
		"connId=%22%5C%3C%2F%3E",                 // "\</>
		"connId=12&other=%zz",                    // other parameters are not read
		"timeout=0&connId=reordered&x=1&x=2&y",   // order and extra keys do not matter
		"connId=%E2%80%A8",                       // U+2028
		"connId=" + strings.Repeat("%7E", 128),   // escapes count after decoding
		"connId=%e2%82%ac",                       // lower-case hex
	} {
		if !strings.Contains(q, "timeout=") {
			q += "&timeout=0"
		}
		wantBody(t, "park "+q, ts.get(t, "/api/request?"+q), http.StatusOK, bodyOK)
	}
}

// Invalid parameters answer 400 {"status":"error","error":...} at once,
// with a sentence about what was wrong, and park nothing.
func TestParkRejectsInvalidParameters(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	tests := []struct {
		name, query string
		mentions    string // a word the error sentence must hold
	}{
		{"connId missing", "timeout=1", "connId"},
		{"connId repeated", "connId=r1&connId=r2&timeout=1", "connId"},
		{"connId repeated with one value", "connId=r3&connId=r3&timeout=1", "connId"},
		{"connId empty", "connId=&timeout=1", "connId"},
		{"connId without =", "connId&timeout=1", "connId"},
		{"connId of 129 bytes", "connId=" + strings.Repeat("x", 129) + "&timeout=1", "connId"},
		{"connId of 129 bytes in 128 characters", "connId=" + strings.Repeat("x", 127) + "%C3%A9&timeout=1", "connId"},
		{"connId with NUL", "connId=a%00&timeout=1", "connId"},
		{"connId with a tab", "connId=a%09b&timeout=1", "connId"},
		{"connId with LF", "connId=a%0Ab&timeout=1", "connId"},
		{"connId with US", "connId=a%1F&timeout=1", "connId"},
		{"connId with DEL", "connId=a%7F&timeout=1", "connId"},
		{"connId with C1 NEL", "connId=a%C2%85&timeout=1", "connId"},
		{"connId with C1 U+0080", "connId=%C2%80&timeout=1", "connId"},
		{"connId with C1 U+009F", "connId=a%C2%9Fb&timeout=1", "connId"},
		{"connId with byte FF", "connId=a%FF&timeout=1", "connId"},
		{"connId with a truncated sequence", "connId=a%E2%82&timeout=1", "connId"},
		{"connId with an overlong sequence", "connId=a%C0%AF&timeout=1", "connId"},
		{"connId with a surrogate", "connId=a%ED%A0%80&timeout=1", "connId"},
		{"connId with a malformed escape", "connId=a%zz&timeout=1", "escape"},
		{"connId with a short escape", "connId=a%2&timeout=1", "escape"},
		{"connId ending in %", "connId=a%&timeout=1", "escape"},
		{"malformed escape in a key", "connId=a&timeout=1&%zz=1", "escape"},
		{"timeout missing", "connId=t1", "timeout"},
		{"timeout repeated", "connId=t2&timeout=1&timeout=2", "timeout"},
		{"timeout repeated with one value", "connId=t3&timeout=1&timeout=1", "timeout"},
		{"timeout empty", "connId=t4&timeout=", "timeout"},
		{"timeout negative", "connId=t5&timeout=-1", "timeout"},
		{"timeout minus zero", "connId=t6&timeout=-0", "timeout"},
		{"timeout with a plus sign", "connId=t7&timeout=%2B5", "timeout"},
		{"timeout with a raw plus (a space)", "connId=t8&timeout=+5", "timeout"},
		{"timeout with an exponent", "connId=t9&timeout=1e3", "timeout"},
		{"timeout with an upper-case exponent", "connId=t10&timeout=1E3", "timeout"},
		{"timeout in hex", "connId=t11&timeout=0x10", "timeout"},
		{"timeout .5", "connId=t12&timeout=.5", "timeout"},
		{"timeout 5.", "connId=t13&timeout=5.", "timeout"},
		{"timeout NaN", "connId=t14&timeout=NaN", "timeout"},
		{"timeout Inf", "connId=t15&timeout=Inf", "timeout"},
		{"timeout with a leading space", "connId=t16&timeout=%205", "timeout"},
		{"timeout with a trailing space", "connId=t17&timeout=5%20", "timeout"},
		{"timeout with a comma", "connId=t18&timeout=1,5", "timeout"},
		{"timeout with two dots", "connId=t19&timeout=1.2.3", "timeout"},
		{"timeout with a unit", "connId=t20&timeout=5s", "timeout"},
		{"timeout with an underscore", "connId=t21&timeout=1_0", "timeout"},
		{"timeout in full-width digits", "connId=t22&timeout=%EF%BC%95", "timeout"},
		{"timeout with a malformed escape", "connId=t23&timeout=1%", "escape"},
		{"timeout above the maximum", "connId=t24&timeout=3601", "timeout"},
		{"timeout above the maximum by 1 ms", "connId=t25&timeout=3600.001", "timeout"},
		{"timeout above the maximum once rounded", "connId=t26&timeout=3600.0005", "timeout"},
		{"timeout beyond int64 nanoseconds", "connId=t27&timeout=9223372037", "timeout"},
		{"timeout of 30 digits", "connId=t28&timeout=" + strings.Repeat("9", 30), "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ts.get(t, "/api/request?"+tt.query)
			obj := wantError(t, "GET ?"+tt.query, r, http.StatusBadRequest, "error")
			if msg, _ := obj["error"].(string); obj != nil && !strings.Contains(msg, tt.mentions) {
				t.Errorf("error %q does not mention %q", msg, tt.mentions)
			}
		})
	}
	t.Cleanup(func() {
		// Runs after the parallel subtests: none of them parked anything.
		if es := ts.status(t); len(es) != 0 {
			t.Errorf("refused requests are listed: %v", es)
		}
	})
}

// The maximum applies after rounding to the millisecond, exactly at the
// boundary, with a small -max-timeout.
func TestParkMaxTimeoutBoundary(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.maxTimeout = 200 * time.Millisecond
	ts := startServer(t, cfg)
	tests := []struct {
		timeout string
		code    int
	}{
		{"0.2", http.StatusOK},
		{"0.2004", http.StatusOK}, // rounds down to the maximum
		{"000.200", http.StatusOK},
		{"0.2005", http.StatusBadRequest}, // rounds up past it
		{"0.201", http.StatusBadRequest},  // by 1 ms
		{"1", http.StatusBadRequest},
	}
	for i, tt := range tests {
		t.Run(tt.timeout, func(t *testing.T) {
			t.Parallel()
			r := ts.park(t, "max-"+string(rune('a'+i)), tt.timeout)
			if tt.code == http.StatusOK {
				wantBody(t, "timeout="+tt.timeout, r, http.StatusOK, bodyOK)
				if r.elapsed < 200*time.Millisecond {
					t.Errorf("answered after %v, want no earlier than 200ms", r.elapsed)
				}
				return
			}
			obj := wantError(t, "timeout="+tt.timeout, r, http.StatusBadRequest, "error")
			if msg, _ := obj["error"].(string); obj != nil && !strings.Contains(msg, "0.2") {
				t.Errorf("error %q does not name the maximum of 0.2 seconds", msg)
			}
		})
	}
}

// The default maximum, an hour, is itself accepted.
func TestParkDefaultMaximumAccepted(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	parked := ts.parkAsync(t, "hour", "3600")
	es := ts.waitListed(t, "hour")
	if secs, _ := lookup(es, "hour"); secs != "3600" {
		t.Errorf("serverStatus shows %q for a 3600 s request just parked, want \"3600\"", secs)
	}
	wantBody(t, "kill", ts.killJSON(t, "hour"), http.StatusOK, bodyOK)
	wantBody(t, "the hour-long request", await(t, "hour", parked), http.StatusInternalServerError, bodyKilled)
}

// A second request for a parked connId answers 409 at once, whatever its
// timeout; the first is untouched and answers 200 at its own deadline.
func TestParkDuplicateConnID(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const id = "dup;12 é"
	first := ts.parkAsync(t, id, "2")
	ts.waitListed(t, id)
	for _, timeout := range []string{"0.05", "0", "3600"} {
		r := ts.park(t, id, timeout)
		obj := wantError(t, "second park timeout="+timeout, r, http.StatusConflict, "error")
		if want := "connId " + id + " is already running"; obj != nil && obj["error"] != want {
			t.Errorf("got error %q, want %q", obj["error"], want)
		}
	}
	r := await(t, "first request", first)
	wantBody(t, "first request", r, http.StatusOK, bodyOK)
	if r.elapsed < 2*time.Second {
		t.Errorf("first request answered after %v, want no earlier than 2s", r.elapsed)
	}
	wantBody(t, "the connId parked again", ts.park(t, id, "0.05"), http.StatusOK, bodyOK)
}

// Of many requests racing for one connId exactly one parks; every other
// one gets 409.
func TestParkDuplicateRace(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const n = 20
	answers := make(chan reply, n)
	for range n {
		ts.goAsync(t, func() { answers <- ts.park(t, "race", "60") })
	}
	for range n - 1 {
		r := await(t, "racing park", answers)
		wantError(t, "racing park", r, http.StatusConflict, "error")
	}
	select {
	case r := <-answers:
		t.Fatalf("all %d racing parks answered (the last %v); want one of them parked", n, r)
	case <-time.After(quiet):
	}
	wantBody(t, "kill", ts.killJSON(t, "race"), http.StatusOK, bodyOK)
	wantBody(t, "the one parked", await(t, "winner", answers), http.StatusInternalServerError, bodyKilled)
}

// At capacity a park answers 503 with Retry-After: 1, also for timeout=0,
// while status, kill, health and the resource API keep answering; a freed
// place is usable again.
func TestParkAtCapacity(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.capacity = 2
	ts := startServer(t, cfg)
	a := ts.parkAsync(t, "cap-a", "60")
	b := ts.parkAsync(t, "cap-b", "60")
	ts.waitListed(t, "cap-a", "cap-b")

	for _, timeout := range []string{"1", "0.05", "0"} {
		r := ts.park(t, "cap-c", timeout)
		wantError(t, "park at capacity, timeout="+timeout, r, http.StatusServiceUnavailable, "error")
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Errorf("park at capacity: Retry-After %q, want \"1\"", got)
		}
	}
	if es := ts.status(t); len(es) != 2 {
		t.Errorf("serverStatus at capacity: %v, want the two parked", es)
	}
	wantBody(t, "healthz at capacity", ts.get(t, "/healthz"), http.StatusOK, bodyOK)
	if r := ts.get(t, "/readyz"); r.code != http.StatusOK {
		t.Errorf("readyz at capacity: %v, want 200", r)
	}
	if r := ts.get(t, "/api/requests"); r.code != http.StatusOK {
		t.Errorf("GET /api/requests at capacity: %v, want 200", r)
	}
	wantBody(t, "kill at capacity", ts.killJSON(t, "cap-a"), http.StatusOK, bodyOK)
	wantBody(t, "killed", await(t, "cap-a", a), http.StatusInternalServerError, bodyKilled)

	// One place is free: one park fits, the next does not.
	c := ts.parkAsync(t, "cap-c", "60")
	ts.waitListed(t, "cap-c")
	wantError(t, "park at capacity again", ts.park(t, "cap-d", "0"), http.StatusServiceUnavailable, "error")
	for _, id := range []string{"cap-b", "cap-c"} {
		wantBody(t, "kill "+id, ts.killJSON(t, id), http.StatusOK, bodyOK)
	}
	wantBody(t, "cap-b", await(t, "cap-b", b), http.StatusInternalServerError, bodyKilled)
	wantBody(t, "cap-c", await(t, "cap-c", c), http.StatusInternalServerError, bodyKilled)
	wantBody(t, "park once empty", ts.park(t, "cap-d", "0.05"), http.StatusOK, bodyOK)
}

// fasthttp skips the hijack handler, and closes the connection, when it
// cannot clear the connection's deadlines. A request parked on it then gets
// exactly one outcome all the same (abandoned, or ok if its deadline came
// first), is not listed, and nothing waits for its answer.
func TestParkWhenTheHijackIsSkipped(t *testing.T) {
	t.Parallel()
	ts := startServerWrapped(t, testConfig(), func(ln net.Listener) net.Listener { return noDeadlineListener{ln} })
	for _, timeout := range []string{"30", "0.001"} {
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(parkPath("skipped-"+timeout, timeout)))
		if err := c.closedWithNothing(time.Now().Add(waitBound)); err != nil {
			t.Errorf("park of %s s whose hijack was skipped: %v", timeout, err)
		}
	}
	waitParked(t, ts, 0, time.Now(), waitBound)
	if es := ts.status(t); len(es) != 0 {
		t.Errorf("serverStatus lists %v, want {}", es)
	}
	text := scrape(t, ts)
	if n, _ := metricSum(t, text, "parkd_outcomes_total"); n != 2 {
		t.Errorf("parkd_outcomes_total adds up to %v, want 2:\n%s", n, text)
	}
	if n, _ := metricSum(t, text, "parkd_outcomes_total", "outcome", "abandoned"); n < 1 {
		t.Errorf("parkd_outcomes_total{outcome=\"abandoned\"} = %v, want at least the 30 s park", n)
	}
	if n := ts.s.responding.Load(); n != 0 {
		t.Errorf("%d answers still awaited, want none", n)
	}
}

// noDeadlineListener's connections cannot set both deadlines at once, as
// fasthttp does before it hands a connection to a hijack handler.
type noDeadlineListener struct{ net.Listener }

func (l noDeadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return noDeadlineConn{c}, nil
}

type noDeadlineConn struct{ net.Conn }

func (noDeadlineConn) SetDeadline(time.Time) error { return errors.New("deadlines cannot be set") }
