package main

// Methods, unknown paths, and requests fasthttp itself refuses (too large,
// too slow, not HTTP): all answer JSON errors.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every route refuses every other method with 405 and an Allow header that
// lists exactly its methods (never OPTIONS), without doing what the route
// does: no park, no kill.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	// Far longer than the parallel subtests can wait for their turn in a
	// busy suite.
	victim := ts.parkAsync(t, "X", "3600")
	ts.waitListed(t, "X")
	routes := []struct {
		path  string
		allow []string
	}{
		{"/api/request?connId=m&timeout=60", []string{"GET"}},
		{"/api/serverStatus", []string{"GET"}},
		{"/api/kill?connId=X", []string{"PUT"}},
		{"/healthz", []string{"GET"}},
		{"/readyz", []string{"GET"}},
		{"/api/requests", []string{"GET"}},
		{"/api/requests/X", []string{"DELETE", "GET"}},
	}
	methods := []string{"GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"}
	for _, rt := range routes {
		for _, m := range methods {
			if slices.Contains(rt.allow, m) {
				continue
			}
			t.Run(m+" "+rt.path, func(t *testing.T) {
				t.Parallel()
				var body io.Reader
				if m == "PUT" || m == "POST" || m == "PATCH" {
					body = strings.NewReader(`{"connId":"X"}`)
				}
				r := ts.do(t, m, rt.path, body)
				if r.code != http.StatusMethodNotAllowed {
					t.Fatalf("got %v, want 405", r)
				}
				var allow []string
				for a := range strings.SplitSeq(r.header.Get("Allow"), ",") {
					allow = append(allow, strings.TrimSpace(a))
				}
				slices.Sort(allow)
				if !slices.Equal(allow, rt.allow) {
					t.Errorf("Allow %q, want %q (and never OPTIONS)", r.header.Get("Allow"), rt.allow)
				}
				if m != "HEAD" {
					wantError(t, m+" "+rt.path, r, http.StatusMethodNotAllowed, "method not allowed")
				} else if len(r.body) != 0 {
					t.Errorf("HEAD answered with a body %s", clip(r.body))
				}
			})
		}
	}
	t.Cleanup(func() {
		es := ts.status(t)
		if _, in := lookup(es, "X"); !in || len(es) != 1 {
			t.Errorf("after the refused methods serverStatus is %v, want only X", es)
		}
		wantBody(t, "kill X", ts.killJSON(t, "X"), http.StatusOK, bodyOK)
		wantBody(t, "X", await(t, "X", victim), http.StatusInternalServerError, bodyKilled)
	})
}

// Unknown paths, trailing-slash and case variants of real ones included,
// answer 404 with a JSON error: never a redirect, never a park.
func TestNotFound(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	const q = "?connId=nf&timeout=60"
	tests := []struct{ method, path string }{
		{"GET", "/index.html"},
		{"GET", "/dashboard"},
		{"GET", "/dashboard/"},
		{"GET", "/dashboard/nope.js"},
		{"GET", "/dashboard/index.html"},
		{"GET", "/api"},
		{"GET", "/api/"},
		{"GET", "/nope"},
		{"GET", "/api/request/" + q},
		{"GET", "/api/request/extra" + q},
		{"GET", "/api/requestx" + q},
		{"GET", "/API/REQUEST" + q},
		{"GET", "/api/Request" + q},
		{"GET", "//api/request" + q},
		{"GET", "/api//request" + q},
		{"GET", "/api/./request" + q},
		{"GET", "/api/serverStatus/"},
		{"GET", "/api/serverstatus"},
		{"GET", "/healthz/"},
		{"GET", "/readyz/"},
		{"GET", "/api/requests/"},
		{"GET", "/api/requests/x/"},
		{"GET", "/api/requests/x/y"},
		{"PUT", "/api/kill/?connId=nf"},
		{"PUT", "/api/Kill?connId=nf"},
		{"DELETE", "/nope"},
		{"POST", "/nope"},
		{"OPTIONS", "/nope"},
		{"HEAD", "/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			r := ts.do(t, tt.method, tt.path, nil)
			if loc := r.header.Get("Location"); loc != "" {
				t.Errorf("redirects to %q", loc)
			}
			if tt.method == "HEAD" {
				if r.code != http.StatusNotFound {
					t.Errorf("got %v, want 404", r)
				}
				return
			}
			wantError(t, tt.method+" "+tt.path, r, http.StatusNotFound, "not found")
		})
	}
	t.Cleanup(func() {
		if es := ts.status(t); len(es) != 0 {
			t.Errorf("an unknown path parked something: %v", es)
		}
	})
}

// A kill body of more than 4 KiB answers 413, declared or chunked; 4 KiB
// exactly is read and kills. The refused ones go over raw connections in
// one write, so the server's early answer and close cannot cut off the
// client's sending.
func TestKillBodyLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	// A JSON kill of id padded with blanks to n bytes.
	padded := func(id string, n int) string {
		head := `{"connId":"` + id + `"`
		return head + strings.Repeat(" ", n-len(head)-1) + "}"
	}
	chunks := func(body string, size int) string {
		var b strings.Builder
		for len(body) > 0 {
			n := min(size, len(body))
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		return b.String() + "0\r\n\r\n"
	}
	const head = "PUT /api/kill HTTP/1.1\r\nHost: parkd\r\nContent-Type: application/json\r\n"
	for _, tt := range []struct{ name, request string }{
		{"4097 bytes", head + "Content-Length: 4097\r\n\r\n" + padded("big", 4097)},
		{"5000 bytes in one chunk", head + "Transfer-Encoding: chunked\r\n\r\n" + chunks(padded("big", 5000), 5000)},
		{"5000 bytes in chunks of 1000", head + "Transfer-Encoding: chunked\r\n\r\n" + chunks(padded("big", 5000), 1000)},
	} {
		c := dialRaw(t, ts.addr)
		c.send(t, tt.request)
		r := c.read(t, http.MethodPut)
		wantError(t, "kill with "+tt.name, r, http.StatusRequestEntityTooLarge, "error")
	}
	chunked := func(s string) io.Reader { return struct{ io.Reader }{strings.NewReader(s)} } // length unknown: sent chunked
	for _, tt := range []struct {
		name string
		body func(id string) io.Reader
	}{
		{"4096 bytes", func(id string) io.Reader { return strings.NewReader(padded(id, 4096)) }},
		{"4096 bytes chunked", func(id string) io.Reader { return chunked(padded(id, 4096)) }},
	} {
		id := "k-" + strings.ReplaceAll(tt.name, " ", "-")
		parked := ts.parkAsync(t, id, "60")
		ts.waitListed(t, id)
		wantBody(t, "kill with "+tt.name, ts.do(t, http.MethodPut, "/api/kill", tt.body(id)), http.StatusOK, bodyOK)
		wantBody(t, "killed by "+tt.name, await(t, id, parked), http.StatusInternalServerError, bodyKilled)
	}
}

// 300 kill bodies over the limit — 5 KB and 1 MiB, declared and chunked,
// some written slowly — each sent whole before its client reads: every
// client reads its 413 and then the close. The server answers before it
// has read the body; were it to close then, the bytes it had not read
// would turn its close into a reset, which can reach the client before
// the answer does (a broken pipe instead of a 413). Its close lingers
// instead: it reads and drops the rest first.
func TestOversizedKillBodiesGetTheir413(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	type client struct {
		size    int
		chunked bool
		slow    bool
	}
	var clients []client
	for i := range 300 {
		clients = append(clients, client{size: []int{5000, 1 << 20}[i%2], chunked: i/2%2 == 1, slow: i/4%2 == 1})
	}
	each(len(clients), 32, func(i int) {
		cl := clients[i]
		what := fmt.Sprintf("client %d (%d bytes, chunked %v, slow %v)", i, cl.size, cl.chunked, cl.slow)
		c, err := net.DialTimeout("tcp", ts.addr, waitBound)
		if err != nil {
			t.Errorf("%s: dial: %v", what, err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * waitBound))
		body := `{"connId":"big-` + strconv.Itoa(i) + `"` + strings.Repeat(" ", cl.size)[:cl.size-len(`{"connId":"big-`+strconv.Itoa(i)+`"}`)] + "}"
		head := "PUT /api/kill HTTP/1.1\r\nHost: parkd\r\nContent-Type: application/json\r\n"
		piece, pause := len(body), time.Duration(0)
		if cl.slow {
			piece, pause = max(100, cl.size/16), 10*time.Millisecond
		}
		var wire []string
		if cl.chunked {
			wire = append(wire, head+"Transfer-Encoding: chunked\r\n\r\n")
			for rest := body; len(rest) > 0; {
				n := min(piece, len(rest))
				wire = append(wire, fmt.Sprintf("%x\r\n%s\r\n", n, rest[:n]))
				rest = rest[n:]
			}
			wire = append(wire, "0\r\n\r\n")
		} else {
			wire = append(wire, head+"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
			for rest := body; len(rest) > 0; {
				n := min(piece, len(rest))
				wire = append(wire, rest[:n])
				rest = rest[n:]
			}
		}
		for _, w := range wire {
			if _, err := io.WriteString(c, w); err != nil {
				t.Errorf("%s: sending the request: %v", what, err)
				return
			}
			time.Sleep(pause)
		}
		rc := &rawConn{c, bufio.NewReader(c)}
		r, err := readReply(rc.br, http.MethodPut)
		if err != nil {
			t.Errorf("%s: reading the answer: %v", what, err)
			return
		}
		checkAnswer(t, what, http.MethodPut, r)
		wantError(t, what, r, http.StatusRequestEntityTooLarge, "error")
		if err := rc.closedWithNothing(time.Now().Add(waitBound)); err != nil {
			t.Errorf("%s: after the 413: %v", what, err)
		}
	})
}

// Request line and headers over 8 KiB answer 431 with a JSON body;
// somewhat under that is served.
func TestHeaderTooLarge(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	for _, tt := range []struct {
		pad  int
		code int
	}{
		{6000, http.StatusOK},
		{9000, http.StatusRequestHeaderFieldsTooLarge},
		{16 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		c := dialRaw(t, ts.addr)
		c.send(t, getRequest("/api/serverStatus", "X-Pad: "+strings.Repeat("p", tt.pad)+"\r\n"))
		r := c.read(t, http.MethodGet)
		if tt.code == http.StatusOK {
			wantBody(t, "a 6000-byte header", r, http.StatusOK, `{}`)
			continue
		}
		wantError(t, "a header of "+strconv.Itoa(tt.pad)+" bytes", r, tt.code, "error")
	}
	// A request line alone over the limit.
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath(strings.Repeat("u", 9000), "0")))
	r := c.read(t, http.MethodGet)
	wantError(t, "a 9000-byte URL", r, http.StatusRequestHeaderFieldsTooLarge, "error")
}

// Bytes that are not HTTP, and a request that stalls half-way, are
// answered with a JSON error and the connection closed.
func TestUnreadableRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(), func(s *server) { s.http.ReadTimeout = 300 * time.Millisecond })
	for _, raw := range []string{
		"NOT HTTP AT ALL\r\n\r\n",
		"GET /api/serverStatus HTTP/1.1\r\nHost: parkd\r\nBad header without colon\r\n\r\n",
		"GET /api/serverStatus HTTP/1.1\r\nHost: parkd\r\nContent-Length: x\r\n\r\n",
		"PUT /api/kill HTTP/1.1\r\nHost: parkd\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		c := dialRaw(t, ts.addr)
		c.send(t, raw)
		r := c.read(t, http.MethodGet)
		wantError(t, "unreadable "+clip([]byte(raw)), r, http.StatusBadRequest, "error")
		c.expectEOF(t)
	}
	// Half a request line, then nothing: cut off after ReadTimeout.
	c := dialRaw(t, ts.addr)
	c.send(t, "GET /api/serverStatus HT")
	r := c.read(t, http.MethodGet)
	wantError(t, "stalled request", r, http.StatusRequestTimeout, "error")
	c.expectEOF(t)
}

// A parked request outlives ReadTimeout: its connection was idle, not
// slow, and stays usable for the next request.
func TestParkOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(), func(s *server) { s.http.ReadTimeout = 100 * time.Millisecond })
	c := dialRaw(t, ts.addr)
	c.send(t, getRequest(parkPath("rt", "0.4")))
	r := c.read(t, http.MethodGet)
	wantBody(t, "park longer than ReadTimeout", r, http.StatusOK, bodyOK)
	c.send(t, getRequest("/api/serverStatus"))
	r = c.read(t, http.MethodGet)
	wantBody(t, "next request on the connection", r, http.StatusOK, `{}`)
}
