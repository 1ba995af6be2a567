package main

// run end to end: flags in, a listening server, logs out, exit status back.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that run's logger and the test may use at
// once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls buf until find returns something other than "".
func waitFor(t *testing.T, what string, buf interface{ String() string }, find func(string) string) string {
	t.Helper()
	end := time.Now().Add(waitBound)
	for {
		if v := find(buf.String()); v != "" {
			return v
		}
		if time.Now().After(end) {
			t.Fatalf("no %s within %v; output so far:\n%s", what, waitBound, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startRun runs run with args and no environment on a goroutine; it gives
// run's stderr and a function that waits (at most waitBound) for run's exit
// status. Cleanup cancels run's context and waits for it.
func startRun(t *testing.T, args ...string) (cancel context.CancelFunc, stderr *syncBuffer, wait func() (int, bool)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncBuffer{}
	done := make(chan struct{})
	var code int
	go func() {
		code = run(ctx, args, func(string) string { return "" }, stderr)
		close(done)
	}()
	wait = func() (int, bool) {
		select {
		case <-done:
			return code, true
		case <-time.After(waitBound):
			return 0, false
		}
	}
	t.Cleanup(func() {
		cancel()
		if _, ok := wait(); !ok {
			t.Errorf("run did not return within %v of its context's end", waitBound)
		}
	})
	return cancel, stderr, wait
}

// jsonLines decodes every line of a JSON log.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %q", l)
			continue
		}
		lines = append(lines, m)
	}
	return lines
}

// In the default text format too, a connId is quoted so that it cannot
// pass for other fields.
func TestRunTextLogQuotesConnID(t *testing.T) {
	t.Parallel()
	_, stderr, _ := startRun(t, "-addr", "127.0.0.1:0")
	addrRE := regexp.MustCompile(`msg="parkd listening".* addr=(\S+)`)
	addr := waitFor(t, "start line", stderr, func(log string) string {
		if m := addrRE.FindStringSubmatch(log); m != nil {
			return m[1]
		}
		return ""
	})
	ts := clientFor(t, addr)
	const id = `x" outcome=killed y=`
	wantBody(t, "park", ts.park(t, id, "0"), http.StatusOK, bodyOK)
	line := waitFor(t, "log line", stderr, func(log string) string {
		for l := range strings.Lines(log) {
			if strings.Contains(l, "connId=") {
				return l
			}
		}
		return ""
	})
	if !strings.Contains(line, `connId="x\" outcome=killed y="`) || !strings.Contains(line, " outcome=ok") {
		t.Errorf("log line %q does not quote the connId %q", line, id)
	}
}

// An address that cannot be listened on fails run with a logged error.
func TestRunListenFails(t *testing.T) {
	t.Parallel()
	taken := startServer(t, testConfig())
	var stderr syncBuffer
	code := run(context.Background(), []string{"-addr", taken.addr, "-log-format", "json"}, func(string) string { return "" }, &stderr)
	if code == 0 || code == 2 {
		t.Errorf("run on a taken address returned %d, want a failure other than a usage error (2)", code)
	}
	lines := jsonLines(t, stderr.String())
	if !slices.ContainsFunc(lines, func(m map[string]any) bool { return m["level"] == "ERROR" && m["addr"] == taken.addr }) {
		t.Errorf("no error line naming %s in the log:\n%s", taken.addr, stderr.String())
	}
}
