package main

// Signals, on the real process: the test binary re-executed as parkd (see
// TestMain).

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// child is parkd running as a child process.
type child struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	addr   string
	exited chan struct{} // closed once the process has exited
	err    error         // Wait's result, once exited is closed
}

// startChild starts parkd with args and reads the address it listens on
// from its JSON log. Cleanup kills it if it is still running.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	args = append([]string{"-addr", "127.0.0.1:0", "-log-format", "json"}, args...)
	cmd := exec.Command(os.Args[0], args...)
	gorace := "atexit_sleep_ms=0" // a -race binary otherwise sleeps a second on exit
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "PARKD_"):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMainEnv+"=1", "GORACE="+gorace)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	go func() {
		// Read the log to its end (the process's), then reap the process.
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			c.stderr.Write(append(sc.Bytes(), '\n'))
		}
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			cmd.Process.Kill()
			<-c.exited
		}
	})
	c.addr = waitFor(t, "start line", c.stderr, func(log string) string {
		for l := range strings.Lines(log) {
			var m struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &m) == nil && m.Msg == "parkd listening" {
				return m.Addr
			}
		}
		return ""
	})
	return c
}

func (c *child) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// exitCode waits (at most waitBound) for the process to exit.
func (c *child) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(waitBound):
		t.Fatalf("parkd did not exit within %v; log:\n%s", waitBound, c.stderr.String())
	}
	var exit *exec.ExitError
	if errors.As(c.err, &exit) {
		return exit.ExitCode()
	}
	if c.err != nil {
		t.Fatalf("wait: %v", c.err)
	}
	return 0
}

// With nothing parked, SIGTERM or SIGINT ends the process with status 0.
func TestSignalIdleExitsZero(t *testing.T) {
	t.Parallel()
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			c := startChild(t)
			ts := clientFor(t, c.addr)
			wantBody(t, "park", ts.park(t, "1", "0.05"), http.StatusOK, bodyOK)
			ts.closeIdle()
			c.signal(t, sig)
			if code := c.exitCode(t); code != 0 {
				t.Errorf("exit status %d, want 0; log:\n%s", code, c.stderr.String())
			}
		})
	}
}

// After SIGTERM the process drains: /readyz says 503 on a connection
// already open, and a request due within the grace period stays parked. A
// second SIGTERM exits at once with status 1.
func TestSignalDrainThenSecondSignal(t *testing.T) {
	t.Parallel()
	c := startChild(t, "-grace", "30s")
	ts := clientFor(t, c.addr)
	open := dialRaw(t, c.addr)
	open.send(t, getRequest("/readyz"))
	if r := open.read(t, http.MethodGet); r.code != http.StatusOK {
		t.Fatalf("readyz before the signal: %v", r)
	}
	parked := dialRaw(t, c.addr)
	parked.send(t, getRequest(parkPath("stays", "20")))
	ts.waitListed(t, "stays")
	ts.closeIdle()

	c.signal(t, syscall.SIGTERM)
	end := time.Now().Add(waitBound)
	for {
		open.send(t, getRequest("/readyz"))
		r := open.read(t, http.MethodGet)
		if r.code == http.StatusServiceUnavailable {
			break
		}
		if r.code != http.StatusOK || time.Now().After(end) {
			t.Fatalf("readyz after SIGTERM: %v, want 503 within %v", r, waitBound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	open.send(t, getRequest("/api/serverStatus"))
	r := open.read(t, http.MethodGet)
	if es, err := orderedStrings(r.body); err != nil || len(es) != 1 || es[0].id != "stays" {
		t.Errorf("serverStatus while draining: %v, want the parked request still listed", r)
	}
	select {
	case <-c.exited:
		t.Fatalf("parkd exited with a request parked within the grace; log:\n%s", c.stderr.String())
	case <-time.After(quiet):
	}

	c.signal(t, syscall.SIGTERM)
	if code := c.exitCode(t); code != 1 { // bounded by waitBound, far before the 20 s deadline
		t.Errorf("exit status after a second signal %d, want 1", code)
	}
	if !strings.Contains(c.stderr.String(), "second signal") {
		t.Errorf("log does not say why it exited:\n%s", c.stderr.String())
	}
	// The parked request got no answer: the process is gone.
	parked.SetReadDeadline(time.Now().Add(waitBound))
	if r, err := readReply(parked.br, http.MethodGet); err == nil {
		t.Errorf("the parked request got an answer %v after the process exited", r)
	}
}

// After SIGTERM a request due within the grace period still answers 200,
// and then the process exits 0 by itself.
func TestSignalDrainsThenExitsZero(t *testing.T) {
	t.Parallel()
	c := startChild(t, "-grace", "30s")
	ts := clientFor(t, c.addr)
	parked := dialRaw(t, c.addr)
	sent := time.Now()
	parked.send(t, getRequest(parkPath("drains", "0.5")))
	ts.waitListed(t, "drains")
	ts.closeIdle()
	c.signal(t, syscall.SIGTERM)
	r := parked.read(t, http.MethodGet)
	wantBody(t, "request due within the grace", r, http.StatusOK, bodyOK)
	if d := time.Since(sent); d < 500*time.Millisecond {
		t.Errorf("answered after %v, want no earlier than 0.5s", d)
	}
	if code := c.exitCode(t); code != 0 {
		t.Errorf("exit status %d, want 0; log:\n%s", code, c.stderr.String())
	}
}
