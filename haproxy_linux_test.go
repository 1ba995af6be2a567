package main

// Cluster mode behind a real load balancer: Debian's haproxy, running
// examples/haproxy.cfg with this test's ports, round robin in front of
// three parkd instances (child processes) that share one redis-server.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// haproxyConfig is examples/haproxy.cfg with its ports replaced: the
// frontend on front, the three servers on backends. Each address the
// example names must appear exactly once, so that the example cannot
// drift from what is tested.
func haproxyConfig(t *testing.T, front string, backends []string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("examples", "haproxy.cfg"))
	if err != nil {
		t.Fatalf("read the example: %v", err)
	}
	cfg := string(b)
	subs := [][2]string{{"bind :8080", "bind " + front}}
	for i, addr := range backends {
		subs = append(subs, [2]string{"127.0.0.1:" + strconv.Itoa(8081+i) + "\n", addr + "\n"})
	}
	for _, s := range subs {
		if n := strings.Count(cfg, s[0]); n != 1 {
			t.Fatalf("examples/haproxy.cfg has %q %d times, want once", strings.TrimSpace(s[0]), n)
		}
		cfg = strings.Replace(cfg, s[0], s[1], 1)
	}
	return cfg
}

// startHAProxy runs haproxy in the foreground on cfg until the test ends,
// and stops it by its PID.
func startHAProxy(t *testing.T, cfg string) *syncBuffer {
	t.Helper()
	path := needProgram(t, "haproxy", "haproxy")
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "-c", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	cmd := exec.Command(path, "-db", "-f", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() //nolint:errcheck // it is killed
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // it may have exited
		<-exited
		if t.Failed() {
			t.Logf("haproxy's log (its end):\n%s", lastLines(log.String(), 40))
		}
	})
	return log
}

// lbGet is one GET through the balancer on a new connection, so that
// round robin picks a server for it; it gives the status, the instance
// that answered and the body. Errors of the balancer itself (502, 503)
// come back as they are.
func lbGet(t *testing.T, base, path string) (int, string, []byte) {
	t.Helper()
	c := &http.Client{Timeout: waitBound, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + path)
	if err != nil {
		return 0, "", []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(headerInstance), body
}

// Through haproxy round robin: parks land on different instances,
// serverStatus lists them all, a kill reaches the instance that holds the
// request, and an instance killed with SIGKILL leaves the others serving
// and its entries gone within 3 s.
func TestHAProxyCluster(t *testing.T) {
	t.Parallel()
	needProgram(t, "haproxy", "haproxy")
	r := newRedis(t, redisOptions{})
	var nodes []*clusterChild
	var addrs []string
	for _, name := range []string{"parkd1", "parkd2", "parkd3"} {
		n := startClusterChild(t, r.url(), name)
		nodes = append(nodes, n)
		addrs = append(addrs, n.testServer.addr)
	}
	front := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startHAProxy(t, haproxyConfig(t, front, addrs))
	lb := clientFor(t, front)

	// Every server up: round robin has answered from each.
	seen := map[string]bool{}
	for end := time.Now().Add(waitBound); len(seen) < 3; time.Sleep(20 * time.Millisecond) {
		if code, inst, _ := lbGet(t, lb.base, "/readyz"); code == http.StatusOK {
			seen[inst] = true
		}
		if time.Now().After(end) {
			t.Fatalf("haproxy reached only %v within %v", seen, waitBound)
		}
	}

	// Parks, each on its own connection through haproxy.
	ids := []string{"lb1", "lb2", "lb3", "lb4", "lb5", "lb6"}
	parked := map[string]*rawConn{}
	for _, id := range ids {
		parked[id] = rawPark(t, lb, parkPath(id, "30"))
	}
	es := lb.waitListed(t, ids...)
	if len(es) != len(ids) {
		t.Errorf("serverStatus through haproxy: %v, want exactly %q", es, ids)
	}
	list, _ := lb.requests(t)
	owner := map[string]string{}
	for _, l := range list {
		owner[l.ConnID] = l.Instance
	}
	holders := map[string]bool{}
	for _, id := range ids {
		holders[owner[id]] = true
	}
	if len(holders) < 3 {
		t.Errorf("round robin put the parks on %d instances (%v), want 3", len(holders), owner)
	}
	// Every instance lists them all, whichever one answers.
	for _, n := range nodes {
		n.waitListed(t, ids...)
	}
	// A kill through haproxy reaches the owner, whichever instance it
	// lands on: the killed request's answer comes from its owner.
	answered := map[string]bool{}
	for _, id := range ids[:3] {
		wantBody(t, "kill "+id+" through haproxy", lb.killJSON(t, id), http.StatusOK, bodyOK)
		got := parked[id].read(t, http.MethodGet)
		wantBody(t, "the killed "+id, got, http.StatusInternalServerError, bodyKilled)
		inst := got.header.Get(headerInstance)
		if inst != owner[id] {
			t.Errorf("%s answered by %q, but listed on %q", id, inst, owner[id])
		}
		answered[inst] = true
	}
	if len(answered) < 2 {
		t.Errorf("the killed requests' answers all came from %v: parks did not spread", answered)
	}

	// SIGKILL the instance holding lb4: the others keep serving, and its
	// entries leave every listing within 3 s.
	victim := owner["lb4"]
	var v *clusterChild
	for _, n := range nodes {
		if n.name == victim {
			v = n
		}
	}
	v.signal(t, syscall.SIGKILL)
	killed := time.Now()
	for {
		asked := time.Now()
		code, _, body := lbGet(t, lb.base, "/api/requests")
		var now []listed
		if code == http.StatusOK && json.Unmarshal(body, &now) == nil {
			gone := true
			for _, l := range now {
				gone = gone && l.Instance != victim
			}
			if gone {
				break
			}
		}
		if asked.Sub(killed) > clusterExpiry {
			t.Fatalf("%v after %s was killed, haproxy's answer still lists its requests or fails: %d %s", asked.Sub(killed).Round(time.Millisecond), victim, code, clip(body))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 6 {
		code, inst, body := lbGet(t, lb.base, parkPath("after-"+strconv.Itoa(i), "0"))
		if code != http.StatusOK || inst == victim {
			t.Errorf("park %d through haproxy after %s died: %d from %q %s", i, victim, code, inst, clip(body))
		}
	}
	// The survivors' requests are still there, and killable through haproxy.
	for _, id := range ids[3:] {
		if owner[id] == victim {
			continue
		}
		wantBody(t, "kill "+id+" after the death", lb.killJSON(t, id), http.StatusOK, bodyOK)
		wantBody(t, "the killed "+id, parked[id].read(t, http.MethodGet), http.StatusInternalServerError, bodyKilled)
	}
}
