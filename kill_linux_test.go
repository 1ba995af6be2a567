package main

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// A kill that comes after the park handler has returned but before
// fasthttp has handed the connection over (attach) answers 200 only once
// the killed request's answer has been written. The window, microseconds
// in practice, is widened here by a connection whose SetDeadline, which
// fasthttp calls just before the hijack, takes 300 ms.
func TestKillBeforeAttach(t *testing.T) {
	t.Parallel()
	ts := startServerWrapped(t, testConfig(), func(ln net.Listener) net.Listener {
		return slowHijackListener{ln, 300 * time.Millisecond}
	})
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("early-kill", "30")))
	ts.waitListed(t, "early-kill")
	wantBody(t, "kill before attach", ts.killJSON(t, "early-kill"), http.StatusOK, bodyOK)
	if n := pendingBytes(t, c.Conn); n == 0 {
		t.Errorf("the kill answered before the killed request's answer had been written")
	}
	wantBody(t, "the killed request", c.read(t, http.MethodGet), http.StatusInternalServerError, bodyKilled)
}

// slowHijackListener's connections are slow to clear their deadlines, as
// fasthttp does just before it runs a hijack handler.
type slowHijackListener struct {
	net.Listener
	delay time.Duration
}

func (l slowHijackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return slowHijackConn{c, l.delay}, nil
}

type slowHijackConn struct {
	net.Conn
	delay time.Duration
}

func (c slowHijackConn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		time.Sleep(c.delay)
	}
	return c.Conn.SetDeadline(t)
}
