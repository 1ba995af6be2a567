package main

// Graceful shutdown: serve's context ends, as on SIGINT/SIGTERM.

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// With a grace period: requests due within it finish normally, the others
// answer 503 at once; open connections are still served, with /readyz
// saying 503 and new parks refused; new connections are not accepted; serve
// returns 0 once the last parked request has ended, and then closes the
// idle connections.
func TestShutdownGrace(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.grace = 5 * time.Second
	ts := startServer(t, cfg)

	open := dialRaw(t, ts.addr) // a keep-alive connection from before the shutdown
	open.send(t, getRequest("/healthz"))
	if r := open.read(t, http.MethodGet); r.code != http.StatusOK {
		t.Fatalf("healthz: %v", r)
	}
	within := dialRaw(t, ts.addr)
	within.send(t, getRequest(parkPath("within", "2.5")))
	withinSent := time.Now()
	killed := dialRaw(t, ts.addr)
	killed.send(t, getRequest(parkPath("killed", "4")))
	beyond := dialRaw(t, ts.addr)
	beyond.send(t, getRequest(parkPath("beyond", "30")))
	ts.waitListed(t, "within", "killed", "beyond")

	ts.cancel()
	r := beyond.read(t, http.MethodGet) // bounded by waitBound, far before its 30 s
	wantBody(t, "request due after the grace", r, http.StatusServiceUnavailable, bodyShuttingDown)

	// The drain has begun; the open connection is still served.
	ask := func(request string) reply {
		t.Helper()
		open.send(t, request)
		r := open.read(t, http.MethodGet)
		return r
	}
	wantError(t, "readyz while draining", ask(getRequest("/readyz")), http.StatusServiceUnavailable, "shutting down")
	r = ask(getRequest("/api/serverStatus"))
	es, err := orderedStrings(r.body)
	if r.code != http.StatusOK || err != nil || len(es) != 2 || es[0].id != "within" || es[1].id != "killed" {
		t.Errorf("serverStatus while draining: %v, want within and killed listed", r)
	}
	wantBody(t, "new park while draining", ask(getRequest(parkPath("new", "0.05"))), http.StatusServiceUnavailable, bodyShuttingDown)
	wantBody(t, "kill while draining", ask("PUT /api/kill?connId=killed HTTP/1.1\r\nHost: parkd\r\nContent-Length: 0\r\n\r\n"), http.StatusOK, bodyOK)
	r = killed.read(t, http.MethodGet)
	wantBody(t, "request killed while draining", r, http.StatusInternalServerError, bodyKilled)
	wantBody(t, "healthz while draining", ask(getRequest("/healthz")), http.StatusOK, bodyOK)
	select {
	case <-ts.done:
		t.Errorf("serve returned while a request was still parked")
	default:
	}

	// The listener is closed. Should another test's server have been given
	// the port since, it answers but does not know our request.
	if c, err := net.DialTimeout("tcp", ts.addr, waitBound); err == nil {
		rc := &rawConn{c, nil}
		rc.br = bufio.NewReader(c)
		rc.send(t, getRequest("/api/serverStatus"))
		r := rc.read(t, http.MethodGet)
		if es, _ := orderedStrings(r.body); len(es) > 0 && es[0].id == "within" {
			t.Errorf("a new connection was accepted while draining")
		}
		c.Close()
	}

	r = within.read(t, http.MethodGet)
	wantBody(t, "request due within the grace", r, http.StatusOK, bodyOK)
	if d := time.Since(withinSent); d < 2500*time.Millisecond {
		t.Errorf("request due within the grace answered after %v, want no earlier than its 2.5s", d)
	}
	code, ok := ts.wait()
	if !ok || code != 0 {
		t.Fatalf("serve returned %d (returned: %v), want 0", code, ok)
	}
	open.expectEOF(t) // idle, so closed once serve is done
}

// With nothing parked, serve returns 0 at once and closes idle keep-alive
// connections.
func TestShutdownIdle(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.grace = time.Hour // nothing to wait for, however long the grace
	ts := startServer(t, cfg)
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest("/api/serverStatus"))
	if r := c.read(t, http.MethodGet); r.code != http.StatusOK {
		t.Fatalf("serverStatus: %v", r)
	}
	ts.cancel()
	if code, ok := ts.wait(); !ok || code != 0 {
		t.Fatalf("serve returned %d (returned: %v), want 0", code, ok)
	}
	c.expectEOF(t)
}

// Without a grace period every parked request answers 503 at once, and a
// request that was to answer at once still does.
func TestShutdownNoGrace(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	a := ts.parkAsync(t, "a", "0.5")
	b := ts.parkAsync(t, "b", "30")
	ts.waitListed(t, "a", "b")
	ts.cancel()
	for _, ch := range []<-chan reply{a, b} {
		r := await(t, "parked", ch)
		wantBody(t, "parked at shutdown", r, http.StatusServiceUnavailable, bodyShuttingDown)
	}
	if code, ok := ts.wait(); !ok || code != 0 {
		t.Fatalf("serve returned %d (returned: %v), want 0", code, ok)
	}
}

// A park with timeout=0 during the drain passes "the same checks as any
// other (409, 503)" (contract, section 1): it is a new park, refused with
// 503 like one of 0.001 s.
func TestShutdownRefusesZeroTimeoutPark(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.grace = 5 * time.Second
	ts := startServer(t, cfg)
	open := dialRaw(t, ts.addr)
	parked := dialRaw(t, ts.addr)
	parked.send(t, getRequest(parkPath("holds", "3")))
	ts.waitListed(t, "holds")
	ts.cancel()
	end := time.Now().Add(waitBound)
	for { // until the drain has begun
		open.send(t, getRequest("/readyz"))
		if r := open.read(t, http.MethodGet); r.code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(end) {
			t.Fatal("readyz never said 503")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, timeout := range []string{"0.001", "0"} {
		open.send(t, getRequest(parkPath("new", timeout)))
		r := open.read(t, http.MethodGet)
		wantBody(t, "park timeout="+timeout+" while draining", r, http.StatusServiceUnavailable, bodyShuttingDown)
	}
	r := parked.read(t, http.MethodGet)
	wantBody(t, "request within the grace", r, http.StatusOK, bodyOK)
}
