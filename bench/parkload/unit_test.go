package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func parseOne(t *testing.T, raw string) (response, error) {
	t.Helper()
	return readResponse(bufio.NewReaderSize(strings.NewReader(raw), 16), 1<<10)
}

func TestReadResponse(t *testing.T) {
	cases := []struct {
		name   string
		raw    string
		status int
		body   string
		close  bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}", 200, `{"status":"ok"}`, false},
		{"no reason phrase", "HTTP/1.1 500\r\ncontent-length: 19\r\n\r\n{\"status\":\"killed\"}", 500, `{"status":"killed"}`, false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", 200, "{}", false},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"a\"\r\n5\r\n:\"b\"}\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, `{"a":"b"}`, false},
		{"connection close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}", 503, "{}", true},
		{"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", 200, "{}", true},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", 200, "{}", false},
		{"body until EOF", "HTTP/1.1 200 OK\r\n\r\n{\"x\":1}", 200, `{"x":1}`, true},
		{"interim 100 skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 200, "{}", false},
		{"204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := parseOne(t, c.raw)
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if r.status != c.status || string(r.body) != c.body || r.close != c.close {
				t.Fatalf("got %d %q close=%v, want %d %q close=%v", r.status, r.body, r.close, c.status, c.body, c.close)
			}
		})
	}
}

func TestReadResponseKeepAliveSequence(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}" +
		"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(raw))
	a, err := readResponse(br, 1<<10)
	if err != nil || a.status != 200 {
		t.Fatalf("first: %v %v", a, err)
	}
	b, err := readResponse(br, 1<<10)
	if err != nil || b.status != 400 || string(b.body) != "{}" {
		t.Fatalf("second: %v %v", b, err)
	}
	if _, err := readResponse(br, 1<<10); err != io.EOF {
		t.Fatalf("after the last answer: %v, want io.EOF", err)
	}
}

func TestReadResponseErrors(t *testing.T) {
	cases := []struct {
		name, raw string
		want      error
		kind      string
	}{
		{"nothing", "", io.EOF, "closed_before_answer"},
		{"partial status line", "HTTP/1.1 200", io.ErrUnexpectedEOF, "truncated_answer"},
		{"headers cut", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", io.ErrUnexpectedEOF, "truncated_answer"},
		{"body cut", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", io.ErrUnexpectedEOF, "truncated_answer"},
		{"chunk cut", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", io.ErrUnexpectedEOF, "truncated_answer"},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", errMalformed, "bad_response"},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", errMalformed, "bad_response"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", errMalformed, "bad_response"},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", errMalformed, "bad_response"},
		{"header without colon", "HTTP/1.1 200 OK\r\nbogus\r\n\r\n", errMalformed, "bad_response"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", errMalformed, "bad_response"},
		{"too large", "HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n", errTooLarge, "body_too_large"},
		{"too large until EOF", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("x", 2000), errTooLarge, "body_too_large"},
		{"line too long", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxLine) + "\r\n\r\n", errMalformed, "bad_response"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseOne(t, c.raw)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if k := errKind(context.Background(), err); k != c.kind {
				t.Fatalf("kind %q, want %q", k, c.kind)
			}
		})
	}
}

func TestParkedKind(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"status":"ok"}`, "ok"},
		{200, ` {"status" : "ok"}` + "\n", "ok"},
		{500, `{"status":"killed"}`, "killed"},
		{200, `{'status':'ok'}`, "bad_body"},
		{200, `{"status":"killed"}`, "bad_body"},
		{500, `<html>`, "status_500"},
		{503, `{"status":"shutting down"}`, "status_503"},
		{409, `{"status":"error"}`, "status_409"},
	}
	for _, c := range cases {
		if got := parkedKind(response{status: c.status, body: []byte(c.body)}); got != c.want {
			t.Errorf("%d %s: %q, want %q", c.status, c.body, got, c.want)
		}
	}
}

func TestAppendRequest(t *testing.T) {
	tgt := target{host: "127.0.0.1:8080", base: "/pre"}
	got := string(appendRequest(nil, "GET", tgt, "/api/request?connId=a&timeout=1.5", nil, true))
	want := "GET /pre/api/request?connId=a&timeout=1.5 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: parkload\r\nConnection: close\r\n\r\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	got = string(appendRequest(nil, "PUT", tgt, "/api/kill", []byte(`{"connId":"x"}`), false))
	want = "PUT /pre/api/kill HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: parkload\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"connId\":\"x\"}"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestPercentile(t *testing.T) {
	s := make([]float64, 100)
	for i := range s {
		s[i] = float64(i + 1) // 1..100
	}
	for _, c := range []struct{ p, want float64 }{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.5, 1}, {99.5, 100}} {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("p%v of 1..100 = %v, want %v", c.p, got, c.want)
		}
	}
	small := []float64{10, 20, 30}
	for _, c := range []struct{ p, want float64 }{{50, 20}, {99, 30}, {33, 10}, {34, 20}} {
		if got := percentile(small, c.p); got != c.want {
			t.Errorf("p%v of %v = %v, want %v", c.p, small, got, c.want)
		}
	}
	if got := percentile([]float64{7}, 99); got != 7 {
		t.Errorf("single sample: %v", got)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("no samples should be NaN")
	}
	d := summarize([]float64{3, 1, 2})
	if d.n != 3 || *d.p50 != 2 || *d.p99 != 3 || *d.max != 3 || *d.min != 1 {
		t.Errorf("summarize: %+v", d)
	}
	if e := summarize(nil); e.p50 != nil || e.max != nil || e.n != 0 {
		t.Errorf("empty summarize: %+v", e)
	}
}

func TestPlanTimeouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ts := planTimeouts(5000, 2*time.Second, 10*time.Second, rng)
	lo, hi, fractional := int64(math.MaxInt64), int64(0), 0
	buckets := make([]int, 10)
	for _, v := range ts {
		if v < 2000 || v > 12000 {
			t.Fatalf("timeout %d ms outside [2000, 12000]", v)
		}
		lo, hi = min(lo, v), max(hi, v)
		if v%1000 != 0 {
			fractional++
		}
		buckets[min((v-2000)/1000, 9)]++
	}
	if hi-lo < 9000 || fractional < 4000 {
		t.Fatalf("not spread: lo %d hi %d fractional %d", lo, hi, fractional)
	}
	for i, b := range buckets { // uniform: 500 per second-wide bucket expected
		if b < 300 || b > 700 {
			t.Errorf("bucket %d has %d of 5000", i, b)
		}
	}
	for _, v := range planTimeouts(10, 1500*time.Millisecond, 0, rng) {
		if v != 1500 {
			t.Fatalf("no spread: %d", v)
		}
	}
}

func TestSameDeadlineTimeout(t *testing.T) {
	ms := int64(time.Millisecond)
	deadline := int64(1_000_000) * ms
	cases := []struct {
		now, want int64
	}{
		{deadline - 3417*ms, 3417},
		{deadline - 3417*ms - 400_000, 3418}, // 3417.4 ms left: round up, never early
		{deadline - 1, 1},
		{deadline, 0},
		{deadline + 5*ms, 0},
	}
	for _, c := range cases {
		if got := sameDeadlineTimeout(deadline, c.now); got != c.want {
			t.Errorf("deadline-now=%d ns: %d ms, want %d", deadline-c.now, got, c.want)
		}
	}
	// Sent at different instants, every request ends at the same millisecond.
	for now := deadline - 12000*ms; now < deadline; now += 777 * ms {
		if end := now + sameDeadlineTimeout(deadline, now)*ms; end != deadline {
			t.Errorf("sent at %d ends at %d, want %d", now, end, deadline)
		}
	}
}

func TestFormatTimeout(t *testing.T) {
	for ms, want := range map[int64]string{0: "0", 2000: "2", 2500: "2.5", 3417: "3.417", 1001: "1.001", 10: "0.01", 12340: "12.34"} {
		if got := formatTimeout(ms); got != want {
			t.Errorf("%d ms: %q, want %q", ms, got, want)
		}
	}
}

func TestSourceRotation(t *testing.T) {
	want := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.1", "127.0.0.2"}
	for i, w := range want {
		if got := sourceAddr(i, 4); got != w {
			t.Errorf("conn %d: %s, want %s", i, got, w)
		}
	}
	if got := sourceAddr(7, 1); got != "127.0.0.1" {
		t.Errorf("one source: %s", got)
	}
	if got := sourceIPs(3, false); strings.Join(got, ",") != "127.0.0.1,127.0.0.2,127.0.0.3" {
		t.Errorf("sourceIPs: %v", got)
	}
	if got := sourceIPs(4, true); len(got) != 1 || got[0] != "::1" {
		t.Errorf("IPv6 target: %v", got)
	}
}

func TestSplitCounts(t *testing.T) {
	cases := []struct {
		n, capOverride int
		nofile         uint64
		want           []int
	}{
		{1000, 0, 20000, nil},
		{19500, 0, 20000, nil},
		{19501, 0, 20000, []int{6501, 6500, 6500}},
		{30000, 0, 20000, []int{7500, 7500, 7500, 7500}},
		{5000, 0, 4096, []int{2500, 2500}},
		{50, 20, 20000, []int{17, 17, 16}},
		{20, 20, 20000, nil},
	}
	for _, c := range cases {
		got, err := splitCounts(c.n, c.capOverride, c.nofile)
		if err != nil || len(got) != len(c.want) {
			t.Errorf("split(%d, %d, %d) = %v, %v; want %v", c.n, c.capOverride, c.nofile, got, err, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] || got[i] > maxPerChild {
				t.Errorf("split(%d, %d, %d) = %v; want %v", c.n, c.capOverride, c.nofile, got, c.want)
				break
			}
		}
	}
	if _, err := splitCounts(5000, 0, 900); err == nil {
		t.Error("a tiny open-file limit should be refused")
	}
}

func TestLoopbackGuard(t *testing.T) {
	good := map[string]string{
		"http://127.0.0.1:8080":       "127.0.0.1:8080",
		"http://127.0.0.1:8080/":      "127.0.0.1:8080",
		"http://127.5.6.7:1/prefix/":  "127.5.6.7:1",
		"http://localhost:9000":       "127.0.0.1:9000",
		"http://LOCALHOST":            "127.0.0.1:80",
		"http://[::1]:8080":           "[::1]:8080",
		"http://[::ffff:127.0.0.1]:8": "127.0.0.1:8",
	}
	for raw, dial := range good {
		tg, err := parseTarget(raw)
		if err != nil || tg.dial != dial {
			t.Errorf("%s: %+v %v, want dial %s", raw, tg, err, dial)
		}
	}
	if tg, _ := parseTarget("http://127.0.0.1:1/prefix/"); tg.base != "/prefix" || tg.host != "127.0.0.1:1" {
		t.Errorf("base/host: %+v", tg)
	}
	bad := []string{
		"", "127.0.0.1:8080", "http://10.0.0.1:8080", "http://192.168.1.1", "http://8.8.8.8:80",
		"http://0.0.0.0:8080", "http://example.com", "http://localhost.example.com:80",
		"http://127.0.0.1.nip.io:80", "https://127.0.0.1:8443", "http://[::2]:80",
		"http://user:pw@127.0.0.1:80", "http://127.0.0.1:0", "http://127.0.0.1:99999",
		"http://127.0.0.1:80/?a=b", "ftp://127.0.0.1",
	}
	for _, raw := range bad {
		if _, err := parseTarget(raw); err == nil {
			t.Errorf("%q accepted", raw)
		}
	}
	cfg := defaultConfig()
	cfg.url = "http://10.1.2.3:8080"
	if _, err := runPhases(context.Background(), cfg); err == nil {
		t.Error("Run accepted a non-loopback URL")
	}
}

func TestParseFlags(t *testing.T) {
	cfg, child, err := parseFlags([]string{"-url", "http://127.0.0.1:9", "-n", "10", "-timeout", "0.25", "-spread", "1500ms",
		"-phases", "park,status", "-same-deadline", "-max-per-process", "5"}, io.Discard)
	if err != nil || child {
		t.Fatalf("%v %v", err, child)
	}
	if cfg.n != 10 || cfg.timeout != 250*time.Millisecond || cfg.spread != 1500*time.Millisecond || !cfg.sameDeadline ||
		cfg.perProcessCap != 5 || cfg.phases != (phaseSet{park: true, status: true}) {
		t.Fatalf("cfg %+v", cfg)
	}
	if cfg, _, err = parseFlags([]string{"-throughput-duration", "0"}, io.Discard); err != nil || cfg.phases.throughput {
		t.Fatalf("-throughput-duration 0 should skip throughput: %+v %v", cfg.phases, err)
	}
	if _, child, err = parseFlags([]string{"-child"}, io.Discard); err != nil || !child {
		t.Fatalf("-child: %v %v", child, err)
	}
	for _, args := range [][]string{
		{"-url", "http://10.0.0.1"}, {"-phases", "park,bogus"}, {"-phases", "kill"}, {"-timeout", "1e3"},
		{"-timeout", "NaN"}, {"-n", "0"}, {"-sources", "300"}, {"extra"},
	} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestParseMetricsAndRSS(t *testing.T) {
	m := parseMetrics([]byte("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_goroutines_other 1\n"+
		"go_memstats_heap_inuse_bytes 1.5e+06 1700000000\nhttp{code=\"200\"} 9\n"), metricGoroutines, metricHeapInuse)
	if m[metricGoroutines] != 42 || m[metricHeapInuse] != 1.5e6 || len(m) != 2 {
		t.Fatalf("metrics %v", m)
	}
	rss, err := parseVmRSS([]byte("Name:\tparkd\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads: 4\n"))
	if err != nil || rss != 12345*1024 {
		t.Fatalf("rss %d %v", rss, err)
	}
	if _, err := parseVmRSS([]byte("Name: x\n")); err == nil {
		t.Fatal("missing VmRSS accepted")
	}
}
