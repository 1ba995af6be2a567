package main

// Connections on raw sockets: keep-alive, pipelining, Connection: close,
// HTTP/1.0, and clients that hang up while parked.

import (
	"net/http"
	"testing"
	"time"
)

// Two parked requests one after the other on one HTTP/1.1 connection, and
// a request after them.
func TestKeepAliveParks(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	c := dialRaw(t, ts.addr)
	for _, id := range []string{"ka1", "ka2"} {
		sent := time.Now()
		c.send(t, getRequest(parkPath(id, "0.05")))
		r := c.read(t, http.MethodGet)
		wantBody(t, id, r, http.StatusOK, bodyOK)
		if r.close {
			t.Errorf("%s: the server asks to close the connection", id)
		}
		if d := time.Since(sent); d < 50*time.Millisecond {
			t.Errorf("%s answered after %v, want no earlier than 50ms", id, d)
		}
	}
	c.send(t, getRequest("/api/serverStatus"))
	r := c.read(t, http.MethodGet)
	wantBody(t, "serverStatus on the same connection", r, http.StatusOK, `{}`)
}

// A park, a serverStatus, another park and a health check written in one
// go come back in order, each complete.
func TestPipelining(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	c := dialRaw(t, ts.addr)
	sent := time.Now()
	c.send(t, getRequest(parkPath("p1", "0.1"))+
		getRequest("/api/serverStatus")+
		getRequest(parkPath("p2", "0.05"))+
		getRequest("/healthz"))
	want := []string{bodyOK, `{}`, bodyOK, bodyOK}
	for i, body := range want {
		r := c.read(t, http.MethodGet)
		wantBody(t, "pipelined answer "+string(rune('1'+i)), r, http.StatusOK, body)
	}
	if d := time.Since(sent); d < 150*time.Millisecond {
		t.Errorf("the four answers took %v, want no less than the two parks, 150ms", d)
	}
}

// A pipelined request behind a parked one that gets killed is still served,
// after the 500.
func TestPipeliningAfterKill(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("pk", "60"))+getRequest("/api/serverStatus"))
	ts.waitListed(t, "pk")
	wantBody(t, "kill", ts.killJSON(t, "pk"), http.StatusOK, bodyOK)
	r := c.read(t, http.MethodGet)
	wantBody(t, "killed", r, http.StatusInternalServerError, bodyKilled)
	r = c.read(t, http.MethodGet)
	wantBody(t, "serverStatus behind it", r, http.StatusOK, `{}`)
}

// Connection: close and HTTP/1.0 are honoured: answered, then closed;
// HTTP/1.0 with Connection: keep-alive stays open.
func TestConnectionClose(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	tests := []struct {
		name, request string
		keepOpen      bool
	}{
		{"HTTP/1.1 Connection: close",
			"GET " + parkPath("cc1", "0.05") + " HTTP/1.1\r\nHost: parkd\r\nConnection: close\r\n\r\n", false},
		{"HTTP/1.0",
			"GET " + parkPath("cc2", "0.05") + " HTTP/1.0\r\n\r\n", false},
		{"HTTP/1.0 with a Host",
			"GET " + parkPath("cc3", "0.05") + " HTTP/1.0\r\nHost: parkd\r\n\r\n", false},
		{"HTTP/1.0 keep-alive",
			"GET " + parkPath("cc4", "0.05") + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
		{"HTTP/1.1 keep-alive",
			"GET " + parkPath("cc5", "0.05") + " HTTP/1.1\r\nHost: parkd\r\n\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, ts.addr)
			c.send(t, tt.request)
			r := c.read(t, http.MethodGet)
			wantBody(t, tt.name, r, http.StatusOK, bodyOK)
			if r.length != int64(len(bodyOK)) {
				t.Errorf("Content-Length %d, want %d (an HTTP/1.0 client cannot read chunks)", r.length, len(bodyOK))
			}
			if !tt.keepOpen {
				if !r.close {
					t.Errorf("the answer does not say Connection: close")
				}
				c.expectEOF(t)
				return
			}
			if r.close {
				t.Errorf("the answer closes a keep-alive connection")
			}
			c.send(t, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			r = c.read(t, http.MethodGet)
			wantBody(t, "second request on the connection", r, http.StatusOK, bodyOK)
		})
	}
}
