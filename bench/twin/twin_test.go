package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// start serves a twin on a real loopback socket.
func start(t *testing.T, capacity int) string {
	t.Helper()
	srv := httptest.NewServer(newTwin(time.Hour, capacity))
	t.Cleanup(srv.Close)
	return srv.URL
}

type answer struct {
	code   int
	body   string
	header http.Header
}

func do(t *testing.T, method, u, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, u, err)
		return answer{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading the body: %v", method, u, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, u, ct)
	}
	return answer{resp.StatusCode, string(b), resp.Header}
}

func park(t *testing.T, base, id, timeout string) answer {
	return do(t, "GET", base+"/api/request?connId="+url.QueryEscape(id)+"&timeout="+timeout, "")
}

func status(t *testing.T, base string) string {
	return do(t, "GET", base+"/api/serverStatus", "").body
}

// waitStatus polls serverStatus until it contains (or, with present false,
// lacks) want, for at most limit.
func waitStatus(t *testing.T, base, want string, present bool, limit time.Duration) {
	t.Helper()
	end := time.Now().Add(limit)
	for {
		s := status(t, base)
		if strings.Contains(s, want) == present {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("serverStatus %s: after %v, want it %s %s", s, limit, map[bool]string{true: "to hold", false: "not to hold"}[present], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func expect(t *testing.T, what string, got answer, code int, body string) {
	t.Helper()
	if got.code != code || got.body != body {
		t.Errorf("%s: got %d %s, want %d %s", what, got.code, got.body, code, body)
	}
}

func TestParkOK(t *testing.T) {
	base := start(t, 100)
	began := time.Now()
	expect(t, "park 0.2 s", park(t, base, "a", "0.2"), 200, `{"status":"ok"}`)
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("answered after %v, before the 0.2 s timeout", took)
	}
	expect(t, "park 0 s", park(t, base, "a", "0"), 200, `{"status":"ok"}`)
	if s := status(t, base); s != "{}" {
		t.Errorf("serverStatus after: %s, want {}", s)
	}
	got := park(t, base, "a", "1e3")
	if got.code != 400 || !strings.HasPrefix(got.body, `{"status":"error","error":"invalid timeout`) {
		t.Errorf("timeout 1e3: got %d %s, want 400 invalid timeout", got.code, got.body)
	}
}

func TestStatusOrderAndRounding(t *testing.T) {
	tw := newTwin(time.Hour, 100)
	srv := httptest.NewServer(tw)
	defer srv.Close()
	if s := status(t, srv.URL); s != "{}" {
		t.Errorf("serverStatus, nothing parked: %s, want {}", s)
	}
	// Entries put in directly, so two can share a deadline.
	now := time.Now()
	tw.mu.Lock()
	for id, left := range map[string]time.Duration{
		"late": 4 * time.Second, "soon": 1500 * time.Millisecond, "b": 3 * time.Second, "a": 3 * time.Second,
		"past": -time.Millisecond, "<&>": 6200 * time.Millisecond,
	} {
		tw.parked[id] = &entry{deadline: now.Add(left), killed: make(chan struct{})}
	}
	tw.mu.Unlock()
	want := `{"past":"1","soon":"2","a":"3","b":"3","late":"4","\u003c\u0026\u003e":"7"}`
	if s := status(t, srv.URL); s != want {
		t.Errorf("serverStatus: %s, want %s", s, want)
	}
}

func TestKill(t *testing.T) {
	base := start(t, 100)
	parked := make(chan answer)
	go func() { parked <- park(t, base, "12", "30") }()
	waitStatus(t, base, `"12":"30"`, true, time.Second)
	// The seed's literal curl -d {"connId"=12}: the shell sends {connId=12}.
	expect(t, "kill", do(t, "PUT", base+"/api/kill", `{connId=12}`), 200, `{"status":"ok"}`)
	select {
	case got := <-parked:
		expect(t, "killed request", got, 500, `{"status":"killed"}`)
	case <-time.After(time.Second):
		t.Fatal("the killed request did not answer within 1 s")
	}
	expect(t, "kill again", do(t, "PUT", base+"/api/kill", `{"connId":12}`), 400, `{"status":"invalid connection Id : 12"}`)
	expect(t, "kill, 4097 bytes", do(t, "PUT", base+"/api/kill", strings.Repeat(" ", 4097)), 413,
		`{"status":"error","error":"the body is larger than 4096 bytes"}`)
	if s := status(t, base); s != "{}" {
		t.Errorf("serverStatus after: %s, want {}", s)
	}
}

func TestHangUpForgets(t *testing.T) {
	base := start(t, 100)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /api/request?connId=gone&timeout=30 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitStatus(t, base, `"gone"`, true, time.Second)
	conn.Close()
	waitStatus(t, base, `"gone"`, false, time.Second)
	// The id is free again.
	expect(t, "park again", park(t, base, "gone", "0"), 200, `{"status":"ok"}`)
}

func TestDuplicate409(t *testing.T) {
	base := start(t, 100)
	first := make(chan answer)
	go func() { first <- park(t, base, `"x"`, "0.5") }()
	waitStatus(t, base, `"\"x\""`, true, time.Second)
	expect(t, "duplicate", park(t, base, `"x"`, "5"), 409, `{"status":"error","error":"connId \"x\" is already running"}`)
	expect(t, "duplicate, timeout 0", park(t, base, `"x"`, "0"), 409, `{"status":"error","error":"connId \"x\" is already running"}`)
	expect(t, "first", <-first, 200, `{"status":"ok"}`)
}

func TestCapacity503(t *testing.T) {
	base := start(t, 1)
	first := make(chan answer)
	go func() { first <- park(t, base, "one", "30") }()
	waitStatus(t, base, `"one"`, true, time.Second)
	for _, timeout := range []string{"5", "0"} {
		got := park(t, base, "two", timeout)
		if got.code != 503 || got.header.Get("Retry-After") != "1" || !strings.HasPrefix(got.body, `{"status":"error","error":"all 1 places`) {
			t.Errorf("park at capacity, timeout %s: got %d Retry-After %q %s, want 503 with Retry-After 1",
				timeout, got.code, got.header.Get("Retry-After"), got.body)
		}
	}
	expect(t, "kill", do(t, "PUT", base+"/api/kill?connId=one", ""), 200, `{"status":"ok"}`)
	expect(t, "first", <-first, 500, `{"status":"killed"}`)
	expect(t, "park after", park(t, base, "two", "0"), 200, `{"status":"ok"}`)
}

func TestRoutes(t *testing.T) {
	base := start(t, 100)
	got := do(t, "POST", base+"/api/kill", "")
	if got.code != 405 || got.header.Get("Allow") != "PUT" || got.header.Get("Server") != "parkd-twin" {
		t.Errorf("POST /api/kill: got %d Allow %q Server %q", got.code, got.header.Get("Allow"), got.header.Get("Server"))
	}
	if got := do(t, "GET", base+"/api/nope", ""); got.code != 404 || !strings.HasPrefix(got.body, `{"status":"not found"`) {
		t.Errorf("GET /api/nope: got %d %s, want a JSON 404", got.code, got.body)
	}
}

// TestKillRacesDeadline kills requests at about their deadline: each must
// have exactly one outcome, and the kill's answer must agree with it.
func TestKillRacesDeadline(t *testing.T) {
	base := start(t, 1000)
	var wg sync.WaitGroup
	for i := range 50 {
		id := fmt.Sprint("race", i)
		parked := make(chan answer, 1)
		wg.Go(func() { parked <- park(t, base, id, "0.1") })
		wg.Go(func() {
			time.Sleep(100*time.Millisecond + time.Duration(i%5)*time.Millisecond)
			k := do(t, "PUT", base+"/api/kill", "connId="+id)
			p := <-parked
			switch {
			case k.code == 200 && p.code == 500, k.code == 400 && p.code == 200:
			default:
				t.Errorf("%s: kill answered %d %s, parked request %d %s", id, k.code, k.body, p.code, p.body)
			}
		})
	}
	wg.Wait()
	if s := status(t, base); s != "{}" {
		t.Errorf("serverStatus after: %s, want {}", s)
	}
}

// TestKeepAlive parks twice on one connection.
func TestKeepAlive(t *testing.T) {
	base := start(t, 100)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for i := range 2 {
		fmt.Fprintf(conn, "GET /api/request?connId=ka&timeout=0.05 HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != `{"status":"ok"}` {
			t.Errorf("answer %d: %d %s", i, resp.StatusCode, b)
		}
	}
}
