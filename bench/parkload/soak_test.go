package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// soakFake is a parkd-like server on raw TCP, small enough to read: one reader
// goroutine per connection parses requests (so pipelined ones queue and a close
// or half-close is seen while a request is parked) and one handler answers them
// in order. fault makes it break the contract on purpose.
type soakFake struct {
	ln    net.Listener
	fault string // "", "double_kill", "lose_kill" or "leave_entry"

	mu       sync.Mutex
	parked   map[string]*fakeSoakEntry
	outcomes map[string]int
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

type fakeSoakEntry struct {
	deadline time.Time
	timeout  time.Duration
	killed   chan struct{} // closed by a kill, under mu, once the entry is gone
}

type fakeReq struct {
	method, path string
	query        url.Values
	body         []byte
	close        bool
}

func startSoakFake(t *testing.T, fault string) *soakFake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &soakFake{ln: ln, fault: fault, parked: map[string]*fakeSoakEntry{}, outcomes: map[string]int{}, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			f.wg.Add(1)
			go f.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *soakFake) url() string { return "http://" + f.ln.Addr().String() }

func (f *soakFake) serve(c net.Conn) {
	defer f.wg.Done()
	defer func() {
		c.Close()
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	reqs := make(chan fakeReq, 16)
	gone := make(chan struct{})
	go func() {
		br := bufio.NewReader(c)
		defer close(reqs)
		defer close(gone)
		for {
			r, err := readFakeReq(br)
			if err != nil {
				return
			}
			select {
			case reqs <- r:
			case <-time.After(10 * time.Second):
				return
			}
		}
	}()
	for r := range reqs {
		if !f.handle(c, r, gone) || r.close {
			return
		}
	}
}

func readFakeReq(br *bufio.Reader) (fakeReq, error) {
	var r fakeReq
	line, err := readLine(br)
	if err != nil {
		return r, err
	}
	parts := strings.Fields(line)
	if len(parts) != 3 {
		return r, errMalformed
	}
	u, err := url.ParseRequestURI(parts[1])
	if err != nil {
		return r, err
	}
	r.method, r.path, r.query = parts[0], u.Path, u.Query()
	length := 0
	for {
		h, err := readLine(br)
		if err != nil {
			return r, err
		}
		if h == "" {
			break
		}
		name, value, _ := strings.Cut(h, ":")
		switch strings.ToLower(name) {
		case "content-length":
			length, _ = strconv.Atoi(strings.TrimSpace(value))
		case "connection":
			r.close = strings.EqualFold(strings.TrimSpace(value), "close")
		}
	}
	r.body = make([]byte, length)
	_, err = io.ReadFull(br, r.body)
	return r, err
}

func (f *soakFake) write(c net.Conn, code int, body string, closeConn bool) bool {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", code, len(body))
	if closeConn {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n" + body)
	_, err := c.Write(b.Bytes())
	return err == nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// handle answers one request; false means close the connection.
func (f *soakFake) handle(c net.Conn, r fakeReq, gone <-chan struct{}) bool {
	switch {
	case r.method == "GET" && r.path == "/api/request":
		return f.park(c, r, gone)
	case r.method == "GET" && r.path == "/api/serverStatus":
		now := time.Now()
		f.mu.Lock()
		var parts []string
		for id, e := range f.parked {
			parts = append(parts, jsonString(id)+`:"`+strconv.Itoa(max(1, int(math.Ceil(e.deadline.Sub(now).Seconds()))))+`"`)
		}
		f.mu.Unlock()
		return f.write(c, 200, "{"+strings.Join(parts, ",")+"}", r.close)
	case r.method == "GET" && r.path == "/api/requests":
		f.mu.Lock()
		var parts []string
		for id := range f.parked {
			parts = append(parts, `{"connId":`+jsonString(id)+`}`)
		}
		f.mu.Unlock()
		return f.write(c, 200, "["+strings.Join(parts, ",")+"]", r.close)
	case r.method == "PUT" && r.path == "/api/kill":
		var body struct {
			ConnID string `json:"connId"`
		}
		_ = json.Unmarshal(r.body, &body)
		f.mu.Lock()
		e, ok := f.parked[body.ConnID]
		if ok {
			delete(f.parked, body.ConnID)
			f.outcomes["killed"]++
			close(e.killed)
		}
		f.mu.Unlock()
		if !ok {
			return f.write(c, 400, `{"status":`+jsonString("invalid connection Id : "+body.ConnID)+`}`, r.close)
		}
		return f.write(c, 200, `{"status":"ok"}`, r.close)
	case r.method == "GET" && r.path == "/healthz":
		return f.write(c, 200, `{"status":"ok"}`, r.close)
	case r.method == "GET" && r.path == "/metrics":
		f.mu.Lock()
		var b strings.Builder
		fmt.Fprintf(&b, "# TYPE go_goroutines gauge\ngo_goroutines %d\ngo_memstats_heap_inuse_bytes 4.194304e+06\n", 10+len(f.conns))
		fmt.Fprintf(&b, "go_memstats_heap_objects 20000\nparkd_parked_requests %d\n", len(f.parked))
		for _, o := range []string{"ok", "killed", "abandoned", "shutdown", "rejected"} {
			fmt.Fprintf(&b, "parkd_outcomes_total{outcome=%q} %d\n", o, f.outcomes[o])
		}
		f.mu.Unlock()
		return f.write(c, 200, b.String(), r.close)
	}
	return f.write(c, 404, `{"status":"not found"}`, r.close)
}

// park holds a request until its timeout, a kill, or the client leaving.
func (f *soakFake) park(c net.Conn, r fakeReq, gone <-chan struct{}) bool {
	id := r.query.Get("connId")
	secs, err := strconv.ParseFloat(r.query.Get("timeout"), 64)
	if id == "" || err != nil || secs < 0 {
		return f.write(c, 400, `{"status":"error"}`, r.close)
	}
	d := time.Duration(math.Round(secs*1000)) * time.Millisecond
	e := &fakeSoakEntry{deadline: time.Now().Add(d), timeout: d, killed: make(chan struct{})}
	f.mu.Lock()
	if _, dup := f.parked[id]; dup {
		f.mu.Unlock()
		return f.write(c, 409, `{"status":"error","error":"already running"}`, r.close)
	}
	if d == 0 {
		f.outcomes["ok"]++
		f.mu.Unlock()
		return f.write(c, 200, `{"status":"ok"}`, r.close)
	}
	f.parked[id] = e
	f.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	killed := func() bool {
		switch f.fault {
		case "double_kill":
			f.write(c, 500, `{"status":"killed"}`, false)
		case "lose_kill":
			<-gone
			return false
		}
		return f.write(c, 500, `{"status":"killed"}`, r.close)
	}
	select {
	case <-timer.C:
		f.mu.Lock()
		mine := f.parked[id] == e
		if mine && f.fault != "leave_entry" {
			delete(f.parked, id)
		}
		if mine {
			f.outcomes["ok"]++
		}
		f.mu.Unlock()
		if !mine { // a kill won the race
			return killed()
		}
		return f.write(c, 200, `{"status":"ok"}`, r.close)
	case <-e.killed:
		return killed()
	case <-gone:
		f.mu.Lock()
		if f.parked[id] == e {
			delete(f.parked, id)
			f.outcomes["abandoned"]++
		}
		f.mu.Unlock()
		return false
	}
}

// testSoakOptions is a short soak against url; nothing below asserts a duration.
func testSoakOptions(url string, d time.Duration, clients int) (target, soakOptions) {
	tgt, err := parseTarget(url)
	if err != nil {
		panic(err)
	}
	return tgt, soakOptions{
		duration: d, clients: clients,
		parkMax: 800 * time.Millisecond, longMin: 1500 * time.Millisecond, longMax: 2500 * time.Millisecond,
		publishMax: 100 * time.Millisecond, raceMin: 100 * time.Millisecond, raceMax: 500 * time.Millisecond, hangupMax: 200 * time.Millisecond,
		slack: 5 * time.Second, drain: 10 * time.Second, emptyWait: 2 * time.Second, // only a broken server waits them out
		settle: 50 * time.Millisecond, idleWait: 2 * time.Second, metrics: true,
		dialTimeout: 5 * time.Second, sources: sourceIPs(2, false), seed: 7, prefix: "t0-",
	}
}

func TestSoakPassesAgainstAGoodServer(t *testing.T) {
	t.Parallel()
	f := startSoakFake(t, "")
	tgt, o := testSoakOptions(f.url(), 3*time.Second, 20)
	res := newResult()
	runSoak(t.Context(), tgt, o, res)
	if res.SoakVerdict != soakPass || res.SoakViolationTotal != 0 {
		t.Fatalf("verdict %s, violations %v, examples %v, notes %v", res.SoakVerdict, res.SoakViolations, res.SoakViolationExamples, res.SoakNotes)
	}
	for name, c := range res.SoakChecks {
		if c != "pass" {
			t.Errorf("check %s: %s", name, c)
		}
	}
	// Every action happened.
	for _, k := range []string{skPark, skParkClose, skTarget, skRace, skHangup, skPipelined, "kill", "status"} {
		if res.SoakRequests[k] == 0 {
			t.Errorf("no %s requests: %v", k, res.SoakRequests)
		}
	}
	if res.SoakPipelinedBatches == 0 || res.SoakPipelinedRequests < 2*res.SoakPipelinedBatches || res.SoakStatusPolls == 0 ||
		res.SoakHangups == 0 || res.SoakProbes == 0 {
		t.Errorf("batches %d requests %d polls %d hang-ups %d probes %d", res.SoakPipelinedBatches, res.SoakPipelinedRequests,
			res.SoakStatusPolls, res.SoakHangups, res.SoakProbes)
	}
	// Every park is accounted for exactly once.
	parks := 0
	for _, k := range []string{skPark, skParkClose, skTarget, skRace, skHangup, skPipelined} {
		parks += res.SoakRequests[k]
	}
	if got := sum(res.SoakAnswers) + res.SoakHungUp + res.SoakLost; got != parks {
		t.Errorf("answers %v + hung up %d + lost %d = %d, parks %d", res.SoakAnswers, res.SoakHungUp, res.SoakLost, got, parks)
	}
	if res.SoakHungUp != res.SoakHangups || res.SoakLost != 0 || res.SoakAnswers["ok"] == 0 {
		t.Errorf("hung up %d of %d hang-ups, lost %d, answers %v", res.SoakHungUp, res.SoakHangups, res.SoakLost, res.SoakAnswers)
	}
	// Kills and killed answers match, and so do the server's counters.
	if res.SoakKillsOK != res.SoakAnswers["killed"] || res.SoakKillsOK == 0 {
		t.Errorf("kills ok %d, killed answers %d", res.SoakKillsOK, res.SoakAnswers["killed"])
	}
	if res.SoakServerKilled == nil || int(*res.SoakServerKilled) != res.SoakAnswers["killed"] ||
		int(*res.SoakServerOK+*res.SoakServerAbandoned) != res.SoakAnswers["ok"]+res.SoakHungUp {
		t.Errorf("server ok %v killed %v abandoned %v; clients %v, hung up %d", fptr(res.SoakServerOK), fptr(res.SoakServerKilled),
			fptr(res.SoakServerAbandoned), res.SoakAnswers, res.SoakHungUp)
	}
	if res.SoakEndEmptyAfterS == nil || res.SoakGoroutinesAfter == nil || res.SoakParkedAfter == nil || *res.SoakParkedAfter != 0 {
		t.Errorf("end: empty after %v, goroutines %v, parked %v", fptr(res.SoakEndEmptyAfterS), fptr(res.SoakGoroutinesAfter), fptr(res.SoakParkedAfter))
	}
	if res.SoakRequestTotal < parks+res.SoakProbes || res.SoakDurationS == nil {
		t.Errorf("total %d, parks %d, duration %v", res.SoakRequestTotal, parks, fptr(res.SoakDurationS))
	}
}

func fptr(v *float64) string { return fnum(v) }

// TestSoakCatchesBrokenServers runs short soaks against fakes that break the
// contract in one way each, and expects FAIL naming that violation.
func TestSoakCatchesBrokenServers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		fault string
		want  []violationKind // must be reported
	}{
		{"lose_kill", []violationKind{violLostAnswer, violKillOKNotKilled}},
		{"leave_entry", []violationKind{violStatusNotEmpty, violServerNotIdle}},
	} {
		t.Run(c.fault, func(t *testing.T) {
			t.Parallel()
			f := startSoakFake(t, c.fault)
			tgt, o := testSoakOptions(f.url(), time.Second, 8)
			// A lost answer is given up on after its timeout and slack; keep both short.
			o.longMin, o.longMax, o.slack = 800*time.Millisecond, 1200*time.Millisecond, time.Second
			o.emptyWait, o.idleWait = time.Second, 500*time.Millisecond
			res := newResult()
			runSoak(t.Context(), tgt, o, res)
			if res.SoakVerdict != soakFail {
				t.Fatalf("verdict %s against %s: %v", res.SoakVerdict, c.fault, res.SoakViolations)
			}
			for _, k := range c.want {
				if res.SoakViolations[k] == 0 || len(res.SoakViolationExamples[k]) == 0 || res.SoakChecks[soakCheck(k)] != "fail" {
					t.Errorf("%s: no %s violation: %v %v", c.fault, k, res.SoakViolations, res.SoakChecks)
				}
			}
			t.Logf("%s: drain %s s: %v, e.g. %v", c.fault, fnum(res.SoakDrainS), res.SoakViolations, res.SoakViolationExamples[c.want[0]])
		})
	}
}

// TestSoakCommandLine runs the soak through the command's entry point against a
// server that answers killed requests twice: the report says FAIL with duplicate
// answers, its JSON keys are snake_case soak_*, and the exit status is 1.
func TestSoakCommandLine(t *testing.T) {
	t.Parallel()
	f := startSoakFake(t, "double_kill")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-url", f.url(), "-phases", "soak", "-soak-duration", "1.5s", "-soak-clients", "8", "-metrics",
		"-settle", "0", "-seed", "3"}, nil, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line: %v\n%s", err, stdout.String())
	}
	var soakKeys []string
	for k := range got {
		if strings.HasPrefix(k, "soak_") {
			soakKeys = append(soakKeys, k)
		}
		if strings.ToLower(k) != k || strings.ContainsAny(k, " -") {
			t.Errorf("key %q is not snake_case", k)
		}
	}
	if len(soakKeys) < 30 || got["soak_verdict"] != soakFail || got["phases"] != "soak" {
		t.Fatalf("soak keys %v, verdict %v, phases %v", soakKeys, got["soak_verdict"], got["phases"])
	}
	v, _ := got["soak_violations"].(map[string]any)
	if n, _ := v[string(violDuplicateAnswer)].(float64); n == 0 {
		t.Fatalf("no %s: %v\n%s", violDuplicateAnswer, v, stdout.String())
	}
	if !strings.Contains(stdout.String(), "VERDICT") || !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, string(violDuplicateAnswer)) }) {
		t.Fatalf("table lacks the verdict or the examples:\n%s", stdout.String())
	}
}

func TestSoakFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"-phases", "soak", "-soak-duration", "90s", "-soak-clients", "12", "-seed", "5"}, io.Discard)
	if err != nil || cfg.phases != (phaseSet{soak: true}) || cfg.soakDuration != 90*time.Second || cfg.soakClients != 12 || cfg.seed != 5 {
		t.Fatalf("%+v %v", cfg, err)
	}
	if d := defaultConfig(); d.soakDuration != time.Minute || d.soakClients != 300 || d.phases.soak {
		t.Fatalf("defaults %v %v %v", d.soakDuration, d.soakClients, d.phases)
	}
	for _, args := range [][]string{{"-phases", "soak", "-soak-clients", "0"}, {"-phases", "soak", "-soak-duration", "0"}} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
