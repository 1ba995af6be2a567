package main

// Clients that hang up while parked: only Linux's watcher notices them.

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A client that closes its connection, half-closes it or resets it while
// parked is forgotten within a second: gone from serverStatus, not
// killable, its place and its connId free; nothing is written to it.
func TestHangUp(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.capacity = 1 // an abandoned request must give its place back
	ts := startServer(t, cfg)
	tests := []struct {
		name   string
		hangUp func(*rawConn) error
		half   bool
	}{
		{"close", func(c *rawConn) error { return c.Close() }, false},
		{"half-close", func(c *rawConn) error { return c.Conn.(*net.TCPConn).CloseWrite() }, true},
		{"reset", func(c *rawConn) error {
			c.Conn.(*net.TCPConn).SetLinger(0) // close sends RST, not FIN
			return c.Close()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the server has one place.
			const id = "gone"
			c := dialRaw(t, ts.addr)
			c.send(t, getRequest(parkPath(id, "60")))
			ts.waitListed(t, id)
			hungUp := time.Now()
			if err := tt.hangUp(c); err != nil {
				t.Fatal(err)
			}
			ts.waitGone(t, id, hungUp, time.Second)
			if tt.half {
				c.expectEOF(t) // the server wrote nothing and closed
			}
			wantBody(t, "kill after the hang-up", ts.killJSON(t, id), http.StatusBadRequest, `{"status":"invalid connection Id : gone"}`)
			wantBody(t, "park again", ts.park(t, id, "0.05"), http.StatusOK, bodyOK)
		})
	}
}

// A hang-up is noticed on a keep-alive connection's second parked request
// too, and with a pipelined request waiting behind it.
func TestHangUpKeepAlive(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("k1", "0.05")))
	r := c.read(t, http.MethodGet)
	wantBody(t, "first park", r, http.StatusOK, bodyOK)
	c.send(t, getRequest(parkPath("k2", "60"))+getRequest("/api/serverStatus"))
	ts.waitListed(t, "k2")
	hungUp := time.Now()
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	ts.waitGone(t, "k2", hungUp, time.Second)
	c.expectEOF(t)
}

// A hang-up is noticed when it came before the request was parked: the
// client wrote its request and half-closed in one go.
func TestHangUpBeforeParked(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("early", "60")))
	hungUp := time.Now()
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// Wait for the connection to end: the server writes nothing and closes.
	c.expectEOF(t)
	ts.waitGone(t, "early", hungUp, time.Second)
	wantBody(t, "park again", ts.park(t, "early", "0"), http.StatusOK, bodyOK)
}

// A slow log sink does not hold up hang-ups: the line a hang-up logs is
// written off the poller's goroutine, so while one client's line waits,
// another client's hang-up is still noticed.
func TestHangUpWithASlowLogSink(t *testing.T) {
	t.Parallel()
	sink := &stuckLog{release: make(chan struct{})}
	ts := startServer(t, testConfig(), func(s *server) { s.log = slog.New(sink) })
	defer close(sink.release) // before the server's cleanup, which waits for the lines
	for _, id := range []string{"first", "second"} {
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest(parkPath(id, "60")))
		ts.waitListed(t, id)
		hungUp := time.Now()
		c.Close()
		ts.waitGone(t, id, hungUp, waitBound)
	}
	// The line is written after the request left the listing: give the
	// second one a moment to reach the sink beside the first, still stuck.
	for end := time.Now().Add(waitBound); sink.stuck.Load() < 2 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := sink.stuck.Load(); n != 2 {
		t.Errorf("%d log lines waiting in the sink, want the two hang-ups'", n)
	}
}

// stuckLog is a log sink whose lines about finished parked requests wait
// until release is closed.
type stuckLog struct {
	release chan struct{}
	stuck   atomic.Int64
}

func (l *stuckLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *stuckLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *stuckLog) WithGroup(string) slog.Handler            { return l }

func (l *stuckLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "parked request finished" {
		l.stuck.Add(1)
		<-l.release
	}
	return nil
}
