package main

// Cluster mode (docs/API.md, section 9), through real parkd instances — in
// this process, or child processes where a test kills or signals one —
// sharing a real redis-server that each test starts on a loopback port of
// its own. Waits are bounded by waitBound; the only times checked are the
// contract's own bounds (3 s, 2 s, 1 s), by polling.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of section 9.
const (
	clusterExpiry  = 3 * time.Second // a dead instance leaves the view; a stopped Redis turns parks away
	clusterWhole   = 2 * time.Second // whole again after Redis is back
	clusterParkMax = time.Second     // the longest a park waits on Redis
)

// newRedis starts a redis-server for t that dies with the test binary.
func newRedis(t *testing.T, opts redisOptions) *redisServer {
	t.Helper()
	opts.procAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return startRedis(t, opts)
}

// stop freezes the redis-server (SIGSTOP): it keeps its sockets and
// answers nothing, as a hung host would. A cleanup lets it run again
// before the instances' cleanups, which leave the cluster through it.
func (r *redisServer) stop(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(r.pid(), syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP redis-server: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(r.pid(), syscall.SIGCONT) }) //nolint:errcheck // it may be gone
}

// cont lets a stopped redis-server run again (SIGCONT).
func (r *redisServer) cont(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(r.pid(), syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT redis-server: %v", err)
	}
}

// startCluster starts one in-process instance per name on r.
func startCluster(t *testing.T, r *redisServer, names ...string) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, len(names))
	for i, name := range names {
		nodes[i] = startClusterNode(t, clusterConfigFor(r, name))
	}
	return nodes
}

// clusterChild is an instance in a child process, for the tests that kill
// or signal it, with a client for it.
type clusterChild struct {
	*child
	*testServer
	name string
}

// startClusterChild starts parkd in a child process as instance name of
// the cluster at redisURL (no grace period unless args set one) and waits
// until it has joined.
func startClusterChild(t *testing.T, redisURL, name string, args ...string) *clusterChild {
	t.Helper()
	c := startChild(t, append([]string{"-redis", redisURL, "-instance", name, "-grace", "0s"}, args...)...)
	waitFor(t, "joined the cluster", c.stderr, func(log string) string {
		if logHas(log, "joined the cluster") {
			return "yes"
		}
		return ""
	})
	return &clusterChild{child: c, testServer: clientFor(t, c.addr), name: name}
}

// logHas says whether a JSON log has a line whose msg is msg.
func logHas(log, msg string) bool {
	for l := range strings.Lines(log) {
		var m struct{ Msg string }
		if json.Unmarshal([]byte(l), &m) == nil && m.Msg == msg {
			return true
		}
	}
	return false
}

// listed is one object of /api/requests.
type listed struct {
	ConnID      string `json:"connId"`
	TimeoutMs   int64  `json:"timeoutMs"`
	RemainingMs int64  `json:"remainingMs"`
	StartedAt   string `json:"startedAt"`
	Deadline    string `json:"deadline"`
	RemoteAddr  string `json:"remoteAddr"`
	Then        string `json:"then"`
	Phase       string `json:"phase"`
	BytesSent   int64  `json:"bytesSent"`
	Instance    string `json:"instance"`
}

// requests reads /api/requests.
func (ts *testServer) requests(t *testing.T) ([]listed, reply) {
	t.Helper()
	r := ts.get(t, "/api/requests")
	var out []listed
	if r.code != http.StatusOK || json.Unmarshal(r.body, &out) != nil {
		t.Fatalf("GET /api/requests: %v", r)
	}
	return out, r
}

// statusOf reads serverStatus with its answer, for the header.
func (ts *testServer) statusOf(t *testing.T) ([]entry, reply) {
	t.Helper()
	r := ts.get(t, "/api/serverStatus")
	es, err := orderedStrings(r.body)
	if r.code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/serverStatus: %v (%v)", r, err)
	}
	return es, r
}

func idsOfStatus(es []entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.id
	}
	return out
}

// pendingBytes is how many bytes wait unread on c's socket: after the
// answer to a kill, the killed request's answer must already be there.
func pendingBytes(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ierr != nil {
		t.Fatalf("SIOCINQ: %v %v", err, ierr)
	}
	return n
}

// checkStoreRefusal checks a park refused because Redis cannot be reached.
func checkStoreRefusal(t *testing.T, what string, r reply) {
	t.Helper()
	wantBody(t, what, r, http.StatusServiceUnavailable, `{"status":"error","error":"cluster store unreachable"}`)
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("%s: Retry-After %q, want 1", what, got)
	}
}

// A connId parked on one instance is a 409 on every other, for any
// timeout; it is free everywhere as soon as its answer has arrived —
// after a deadline, a zero timeout, a kill on the owner or a kill from
// another instance — and a request whose client hung up leaves every
// listing within a second.
func TestClusterConnIDUnique(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	n := startCluster(t, r, "a", "b")
	a, b := n[0], n[1]

	held := a.parkAsync(t, "u;1", "30")
	b.waitListed(t, "u;1")
	for _, ts := range []*clusterNode{b, a} {
		for _, timeout := range []string{"5", "0"} {
			wantBody(t, ts.name+" timeout "+timeout, ts.park(t, "u;1", timeout), http.StatusConflict,
				`{"status":"error","error":"connId u;1 is already running"}`)
		}
	}
	wantBody(t, "kill from b", b.killJSON(t, "u;1"), http.StatusOK, bodyOK)
	wantBody(t, "the killed park", await(t, "park u;1", held), http.StatusInternalServerError, bodyKilled)

	// Each way a request ends, then at once the same id on the other
	// instance, and back: many rounds, so that a release racing the next
	// claim shows.
	ends := []struct {
		name string
		end  func(t *testing.T, owner, other *clusterNode, id string)
	}{
		{"deadline", func(t *testing.T, owner, _ *clusterNode, id string) {
			wantBody(t, "park", owner.park(t, id, "0.02"), http.StatusOK, bodyOK)
		}},
		{"zero timeout", func(t *testing.T, owner, _ *clusterNode, id string) {
			wantBody(t, "park", owner.park(t, id, "0"), http.StatusOK, bodyOK)
		}},
		{"kill on the owner", func(t *testing.T, owner, _ *clusterNode, id string) {
			ch := owner.parkAsync(t, id, "30")
			owner.waitListed(t, id)
			wantBody(t, "kill", owner.killJSON(t, id), http.StatusOK, bodyOK)
			wantBody(t, "park", await(t, "park", ch), http.StatusInternalServerError, bodyKilled)
		}},
		{"kill from the other", func(t *testing.T, owner, other *clusterNode, id string) {
			ch := owner.parkAsync(t, id, "30")
			other.waitListed(t, id)
			if k := other.killJSON(t, id); k.code != http.StatusOK {
				t.Errorf("kill from %s of a request it lists: %v, want 200", other.name, k)
				owner.killJSON(t, id)
			}
			wantBody(t, "park", await(t, "park", ch), http.StatusInternalServerError, bodyKilled)
		}},
		{"delete from the other", func(t *testing.T, owner, other *clusterNode, id string) {
			ch := owner.parkAsync(t, id, "30")
			other.waitListed(t, id)
			if r := other.do(t, http.MethodDelete, "/api/requests/"+url.PathEscape(id), nil); r.code != http.StatusNoContent {
				t.Errorf("DELETE from %s of a request it lists: %v, want 204", other.name, r)
				owner.killJSON(t, id)
			}
			wantBody(t, "park", await(t, "park", ch), http.StatusInternalServerError, bodyKilled)
		}},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			conflicts := 0
			for i := range 20 {
				id := fmt.Sprintf("%s %d", e.name, i)
				owner, other := a, b
				if i%2 == 1 {
					owner, other = b, a
				}
				e.end(t, owner, other, id)
				// The answer has arrived: the id is free on the other
				// instance right now.
				if r := other.park(t, id, "0"); r.code != http.StatusOK {
					conflicts++
					t.Errorf("round %d: park of %q on %s right after its answer on %s: %v, want 200", i, id, other.name, owner.name, r)
				}
			}
			if conflicts > 0 {
				t.Logf("%d of 20 re-parks refused", conflicts)
			}
		})
	}

	// What a listing shows, another instance can kill: also a request
	// caught the moment it appears.
	t.Run("listed means killable", func(t *testing.T) {
		refused := 0
		for i := range 30 {
			id := fmt.Sprintf("seen %d", i)
			c := rawPark(t, b.testServer, parkPath(id, "30"))
			for end := time.Now().Add(waitBound); ; {
				if _, in := lookup(a.status(t), id); in {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("%q never listed on a", id)
				}
			}
			if k := a.killJSON(t, id); k.code != http.StatusOK {
				refused++
				t.Errorf("round %d: kill from a of %q, just listed on a: %v, want 200", i, id, k)
				b.killJSON(t, id)
			}
			c.Close()
		}
		if refused > 0 {
			t.Logf("%d of 30 kills of a just-listed request refused", refused)
		}
	})

	t.Run("client hangs up", func(t *testing.T) {
		c := rawPark(t, a.testServer, parkPath("gone", "30"))
		b.waitListed(t, "gone")
		c.Close()
		closed := time.Now()
		b.waitGone(t, "gone", closed, time.Second)
		wantBody(t, "park after the hang-up", b.park(t, "gone", "0"), http.StatusOK, bodyOK)
	})
}

// Every instance lists every live instance's requests, in one deadline
// order, in serverStatus and /api/requests; objects name their instance;
// GET /api/requests/{connId} finds a request from any instance; every
// listing answer says Parkd-Cluster: ok.
func TestClusterListings(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	n := startCluster(t, r, "a", "b", "c")
	parks := []struct {
		node        int
		id, timeout string
		query       string
	}{
		{0, "p1", "30", ""}, {1, "p2", "20", ""}, {2, "p3", "25", ""}, {0, "p4", "15", ""}, {1, "p5", "35", ""},
		{2, "p6", "12", "&then=503&body=100&drip=2"}, {1, `p7 "é"`, "22", ""},
	}
	owner := map[string]string{}
	var ids []string
	for _, p := range parks {
		rawPark(t, n[p.node].testServer, parkPath(p.id, p.timeout)+p.query)
		n[p.node].waitListed(t, p.id) // one at a time: deadlines differ by more than a millisecond
		owner[p.id] = n[p.node].name
		ids = append(ids, p.id)
	}
	for _, node := range n {
		es, sr := node.statusOf(t)
		clusterHeader(t, node.name+" serverStatus", sr, "ok")
		list, lr := node.requests(t)
		clusterHeader(t, node.name+" /api/requests", lr, "ok")
		if got := idsOfStatus(es); !slices.Equal(sortedCopy(got), sortedCopy(ids)) {
			t.Errorf("%s serverStatus lists %q, want %q", node.name, got, ids)
		}
		var order []string
		for i, l := range list {
			order = append(order, l.ConnID)
			if l.Instance != owner[l.ConnID] {
				t.Errorf("%s lists %q on instance %q, want %q", node.name, l.ConnID, l.Instance, owner[l.ConnID])
			}
			// One listing has one "now": the time left orders it as the
			// end (deadline, or last byte of a drip) does.
			if i > 0 {
				if prev := list[i-1]; prev.RemainingMs > l.RemainingMs || prev.RemainingMs == l.RemainingMs && prev.ConnID > l.ConnID {
					t.Errorf("%s /api/requests out of order: %q (%d ms left) before %q (%d ms left)", node.name, prev.ConnID, prev.RemainingMs, l.ConnID, l.RemainingMs)
				}
			}
		}
		if !slices.Equal(order, idsOfStatus(es)) {
			t.Errorf("%s: /api/requests order %q, serverStatus order %q", node.name, order, idsOfStatus(es))
		}
		for _, e := range es {
			secs, err := strconv.Atoi(e.secs)
			if err != nil || secs < 1 || secs > 37 {
				t.Errorf("%s serverStatus %q: %q seconds", node.name, e.id, e.secs)
			}
		}
		if i := slices.IndexFunc(list, func(l listed) bool { return l.ConnID == "p6" }); i < 0 || list[i].Then != "503" || list[i].Phase != "waiting" {
			t.Errorf("%s lists p6 (then=503, drip) as %+v", node.name, list)
		}
		for _, id := range ids {
			g := node.get(t, "/api/requests/"+url.PathEscape(id))
			clusterHeader(t, node.name+" GET "+id, g, "ok")
			var l listed
			if g.code != http.StatusOK || json.Unmarshal(g.body, &l) != nil || l.ConnID != id || l.Instance != owner[id] {
				t.Errorf("%s GET /api/requests/%s: %v, want it on %s", node.name, id, g, owner[id])
			}
		}
		g := node.get(t, "/api/requests/none")
		wantError(t, node.name+" GET of an id nobody holds", g, http.StatusNotFound, "not found")
		clusterHeader(t, node.name+" GET of an id nobody holds", g, "ok")
		h := node.get(t, "/api/history")
		clusterHeader(t, node.name+" /api/history", h, "ok")
	}
	s := n[1].subscribe(t, "")
	if got := s.header.Get(headerCluster); got != "ok" {
		t.Errorf("/api/events: %s %q, want ok", headerCluster, got)
	}
	if ev := s.nextEvent(t); ev.event != "snapshot" || !strings.Contains(ev.data, `"instance":"c"`) {
		t.Errorf("the snapshot of b's stream does not show c's requests: %v", ev)
	}
}

// A listing reads another instance's hash again only when that hash has
// changed: listings of a cluster that has stayed still send no HGETALL,
// and a request that ends or parks elsewhere is shown as it is at the
// next listing all the same.
func TestClusterListingRereadsWhatMoved(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	n := startCluster(t, r, "a", "b")
	a, b := n[0], n[1]
	hgetalls := func() int {
		info, _ := r.doT(t, "INFO", "commandstats").(string)
		for line := range strings.Lines(info) {
			if rest, ok := strings.CutPrefix(line, "cmdstat_hgetall:calls="); ok {
				calls, _, _ := strings.Cut(rest, ",")
				c, _ := strconv.Atoi(calls)
				return c
			}
		}
		return 0
	}
	rawPark(t, a.testServer, parkPath("m1", "30"))
	b.waitListed(t, "m1")
	// A hash that moved since the last listing is read but not kept; the
	// listing after it finds it still and keeps it.
	b.status(t)
	before := hgetalls()
	for range 3 {
		if _, in := lookup(b.status(t), "m1"); !in {
			t.Fatalf("b's serverStatus lost m1 while nothing moved")
		}
	}
	if after := hgetalls(); after != before {
		t.Errorf("3 listings of an unchanged cluster sent %d HGETALL, want none", after-before)
	}
	// A kill on the owner, then a park there: b shows both at once.
	wantBody(t, "kill m1 on a", a.killJSON(t, "m1"), http.StatusOK, bodyOK)
	b.waitGone(t, "m1", time.Now(), time.Second)
	rawPark(t, a.testServer, parkPath("m2", "30"))
	a.waitListed(t, "m2")
	b.waitListed(t, "m2")
	// Another instance joins: its requests are read, a's are not again.
	c := startCluster(t, r, "c")[0]
	rawPark(t, c.testServer, parkPath("m3", "30"))
	c.waitListed(t, "m3")
	before = hgetalls()
	es := b.waitListed(t, "m2", "m3")
	if got := hgetalls() - before; got < 1 {
		t.Errorf("b listed c's new request with %d HGETALL", got)
	}
	if len(es) != 2 {
		t.Errorf("b's serverStatus: %v, want m2 and m3", es)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// A kill in every form of section 3 and 6, and DELETE, from an instance
// that does not hold the request, reaches its owner: the killed request
// gets the kill's ending, and the kill answers only once that answer has
// been written. An id that no live instance holds is a 400 / 404.
func TestClusterKillFromAnyInstance(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	n := startCluster(t, r, "a", "b")
	a, b := n[0], n[1]
	form := "application/x-www-form-urlencoded"
	cases := []struct {
		name, id       string
		method, path   string
		body, ctype    string
		wantKill       int
		wantCode       int    // the killed request's status; 0: a reset
		wantKilledBody string // "" for none checked
	}{
		{"JSON number", "101", http.MethodPut, "/api/kill", `{"connId":101}`, "application/json", 200, 500, bodyKilled},
		{"JSON string", "k-2", http.MethodPut, "/api/kill", `{"connId":"k-2"}`, "", 200, 500, bodyKilled},
		{"seed's curl form", "12", http.MethodPut, "/api/kill", `{connId=12}`, form, 200, 500, bodyKilled},
		{"seed's literal", "13", http.MethodPut, "/api/kill", `{"connId"=13}`, "", 200, 500, bodyKilled},
		{"form body", "k 5", http.MethodPut, "/api/kill", `connId=k+5`, form, 200, 500, bodyKilled},
		{"query", "k/6", http.MethodPut, "/api/kill?connId=k%2F6", ``, "", 200, 500, bodyKilled},
		{"JSON then", "t1", http.MethodPut, "/api/kill", `{"connId":"t1","then":503}`, "application/json", 200, 503, bodyKilled},
		{"form then", "t2", http.MethodPut, "/api/kill", `connId=t2&then=202`, form, 200, 202, bodyKilled},
		{"query then", "t3", http.MethodPut, "/api/kill?connId=t3&then=504", ``, "", 200, 504, bodyKilled},
		{"DELETE", "d1", http.MethodDelete, "/api/requests/d1", ``, "", 204, 500, bodyKilled},
		{"DELETE then", "d2", http.MethodDelete, "/api/requests/d2?then=200", ``, "", 204, 200, bodyKilled},
		{"DELETE then reset", "d3", http.MethodDelete, "/api/requests/d3?then=reset", ``, "", 204, 0, ""},
		{"kill then reset", "d4", http.MethodPut, "/api/kill", `{"connId":"d4","then":"reset"}`, "", 200, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parked := rawPark(t, a.testServer, parkPath(c.id, "30"))
			b.waitListed(t, c.id)
			var k reply
			if c.ctype != "" {
				k = b.do(t, c.method, c.path, strings.NewReader(c.body), "Content-Type", c.ctype)
			} else {
				k = b.do(t, c.method, c.path, strings.NewReader(c.body))
			}
			// The owner wrote its answer before the kill answered.
			pending := pendingBytes(t, parked.Conn)
			if k.code != c.wantKill {
				t.Fatalf("kill from b: %v, want %d", k, c.wantKill)
			}
			if c.wantKill == http.StatusOK {
				wantBody(t, "kill from b", k, http.StatusOK, bodyOK)
			}
			if c.wantCode == 0 {
				parked.SetReadDeadline(time.Now().Add(waitBound))
				if _, err := parked.br.ReadByte(); !errorsIsReset(err) {
					t.Errorf("the killed request: %v, want a reset", err)
				}
				return
			}
			if pending == 0 {
				t.Errorf("the kill answered %d before the owner's answer to %q had been written", k.code, c.id)
			}
			got := parked.read(t, http.MethodGet)
			if got.code != c.wantCode || string(got.body) != c.wantKilledBody {
				t.Errorf("the killed request: %v, want %d %s", got, c.wantCode, c.wantKilledBody)
			}
			if inst := got.header.Get(headerInstance); inst != "a" {
				t.Errorf("the killed request answered by %q, want a", inst)
			}
			// Gone everywhere: a second kill is a 400.
			wantBody(t, "a second kill", b.killJSON(t, c.id), http.StatusBadRequest, `{"status":"invalid connection Id : `+c.id+`"}`)
		})
	}
	t.Run("nobody holds it", func(t *testing.T) {
		for _, ts := range n {
			wantBody(t, ts.name+" kill", ts.killJSON(t, "ghost"), http.StatusBadRequest, `{"status":"invalid connection Id : ghost"}`)
			wantBody(t, ts.name+" kill by query", ts.put(t, "/api/kill?connId=ghost", "", ""), http.StatusBadRequest, `{"status":"invalid connection Id : ghost"}`)
			wantError(t, ts.name+" DELETE", ts.do(t, http.MethodDelete, "/api/requests/ghost", nil), http.StatusNotFound, "not found")
			wantError(t, ts.name+" GET", ts.get(t, "/api/requests/ghost"), http.StatusNotFound, "not found")
		}
	})
}

func errorsIsReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// History and events are the cluster's: a stream on one instance gets
// another's events with cluster-wide ids; a client that reconnects to
// another instance with Last-Event-ID misses nothing; /api/history is one
// ring for all, each entry naming its instance, and keeps an instance's
// entries after it left.
func TestClusterHistoryAndEvents(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	a := startClusterChild(t, r.url(), "a", "-history", "5")
	bcfg := clusterConfigFor(r, "b")
	bcfg.history = 5
	b := startClusterNode(t, bcfg)
	byName := map[string]*testServer{"a": a.testServer, "b": b.testServer}

	sb := b.subscribe(t, "")
	if ev := sb.nextEvent(t); ev.event != "snapshot" {
		t.Fatalf("first event %v, want the snapshot", ev)
	}
	wantBody(t, "park h1 on a", a.park(t, "h1", "0.05"), http.StatusOK, bodyOK)
	parked, finished := sb.nextEvent(t), sb.nextEvent(t)
	if parked.event != "parked" || !strings.Contains(parked.data, `"connId":"h1"`) || !strings.Contains(parked.data, `"instance":"a"`) {
		t.Errorf("b's stream: %v, want a's parked event of h1", parked)
	}
	if finished.event != "finished" || !strings.Contains(finished.data, `"connId":"h1"`) || !strings.Contains(finished.data, `"instance":"a"`) {
		t.Errorf("b's stream: %v, want a's finished event of h1", finished)
	}
	checkEventIDs(t, parked.id, finished.id)
	sb.Close()

	// While the client is away, requests end on both instances.
	var order []string
	for i, on := range []string{"b", "a", "b", "a", "b", "a"} {
		id := fmt.Sprintf("h%d", i+2)
		wantBody(t, "park "+id+" on "+on, byName[on].park(t, id, "0"), http.StatusOK, bodyOK)
		order = append(order, id)
	}
	// Endings reach the shared ring a moment after their answers: resume
	// once h7's is in it, so that the ring is the one the test expects.
	waitHistoryHead(t, a.testServer, order[len(order)-1])
	sa := a.subscribe(t, finished.id)
	if got := sa.header.Get(headerCluster); got != "ok" {
		t.Errorf("a's stream: %s %q, want ok", headerCluster, got)
	}
	if ev := sa.nextEvent(t); ev.event != "snapshot" {
		t.Fatalf("first event of the resumed stream %v, want the snapshot", ev)
	}
	// h1 and h2 have left the ring of 5 (h3 … h7 are in it): the replay
	// is what the ring still holds, as on one instance.
	last := finished.id
	for _, want := range order[1:] {
		ev := sa.nextEvent(t)
		if ev.event != "finished" || !strings.Contains(ev.data, `"connId":"`+want+`"`) {
			t.Fatalf("resumed on a after %s: %v, want the finished event of %s", finished.id, ev, want)
		}
		checkEventIDs(t, last, ev.id)
		last = ev.id
	}
	// And then live: an event of b's reaches a's stream.
	wantBody(t, "park live on b", b.park(t, "live", "0"), http.StatusOK, bodyOK)
	if ev := sa.nextEvent(t); ev.event != "finished" || !strings.Contains(ev.data, `"connId":"live"`) || !strings.Contains(ev.data, `"instance":"b"`) {
		t.Errorf("a's stream after the replay: %v, want b's finished event of live", ev)
	}
	sa.Close()

	// One ring of 5 for the cluster, newest first.
	want := []string{"live", "h7", "h6", "h5", "h4"}
	for name, ts := range byName {
		checkHistory(t, name, ts, want)
	}
	// a leaves; what it did stays in the history.
	a.closeIdle()
	a.signal(t, syscall.SIGTERM)
	if code := a.exitCode(t); code != 0 {
		t.Errorf("a exited %d", code)
	}
	checkHistory(t, "b after a left", b.testServer, want)
}

// With -history 0 the cluster keeps nothing: the history is [] and a
// resumed stream replays nothing, though the stream still holds events.
func TestClusterHistoryOff(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	cfg := clusterConfigFor(r, "a")
	cfg.history = 0
	a := startClusterNode(t, cfg)
	sa := a.subscribe(t, "")
	if ev := sa.nextEvent(t); ev.event != "snapshot" {
		t.Fatalf("first event %v, want the snapshot", ev)
	}
	wantBody(t, "park h1", a.park(t, "h1", "0.05"), http.StatusOK, bodyOK)
	if ev := sa.nextEvent(t); ev.event != "parked" {
		t.Fatalf("live stream: %v, want the parked event of h1", ev)
	}
	first := sa.nextEvent(t)
	if first.event != "finished" {
		t.Fatalf("live stream: %v, want the finished event of h1", first)
	}
	// h2 finishes while sa still listens, so that its events have passed
	// through the stream before the resumed subscriber joins: what that one
	// sees next can then only be a replay or h3.
	wantBody(t, "park h2", a.park(t, "h2", "0"), http.StatusOK, bodyOK)
	// A park answered at once has only its finished event.
	if ev := sa.nextEvent(t); ev.event != "finished" || !strings.Contains(ev.data, `"connId":"h2"`) {
		t.Fatalf("live stream: %v, want the finished event of h2", ev)
	}
	sa.Close()

	h := a.get(t, "/api/history")
	clusterHeader(t, "/api/history", h, "ok")
	if h.code != http.StatusOK || strings.TrimSpace(string(h.body)) != "[]" {
		t.Errorf("/api/history with -history 0: %v, want []", h)
	}
	resumed := a.subscribe(t, first.id)
	defer resumed.Close()
	if ev := resumed.nextEvent(t); ev.event != "snapshot" {
		t.Fatalf("first event of the resumed stream %v, want the snapshot", ev)
	}
	// Nothing is replayed: the next event is the live one of h3.
	wantBody(t, "park h3", a.park(t, "h3", "0.05"), http.StatusOK, bodyOK)
	if ev := resumed.nextEvent(t); ev.event != "parked" || !strings.Contains(ev.data, `"connId":"h3"`) {
		t.Errorf("resumed stream with -history 0: %v, want the parked event of h3 (no replay of h2)", ev)
	}
}

// waitHistoryHead waits until ts's /api/history starts with id.
func waitHistoryHead(t *testing.T, ts *testServer, id string) {
	t.Helper()
	var last reply
	for end := time.Now().Add(waitBound); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		last = ts.get(t, "/api/history?limit=1")
		if last.code == http.StatusOK && strings.Contains(string(last.body), `"connId":"`+id+`"`) {
			return
		}
	}
	t.Fatalf("/api/history never started with %s: last %v", id, last)
}

// checkHistory reads /api/history and compares the ids, newest first, and
// that each record names the instance that held it.
func checkHistory(t *testing.T, what string, ts *testServer, want []string) {
	t.Helper()
	h := ts.get(t, "/api/history")
	clusterHeader(t, what+" /api/history", h, "ok")
	var recs []struct{ ConnID, Instance, Outcome string }
	if h.code != http.StatusOK || json.Unmarshal(h.body, &recs) != nil {
		t.Fatalf("%s /api/history: %v", what, h)
	}
	var got []string
	for _, rec := range recs {
		got = append(got, rec.ConnID)
		n, _ := strconv.Atoi(strings.TrimPrefix(rec.ConnID, "h"))
		wantInst := "a"
		if rec.ConnID == "live" || n%2 == 0 {
			wantInst = "b"
		}
		if rec.Instance != wantInst {
			t.Errorf("%s: history record of %s names %q, want %q", what, rec.ConnID, rec.Instance, wantInst)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s /api/history: %q, want %q", what, got, want)
	}
}

var eventIDPattern = regexp.MustCompile(`^[0-9]+(-[0-9]+)*$`)

// checkEventIDs checks that both are event ids and that later comes after
// earlier, compared part by part as numbers.
func checkEventIDs(t *testing.T, earlier, later string) {
	t.Helper()
	for _, id := range []string{earlier, later} {
		if !eventIDPattern.MatchString(id) {
			t.Errorf("event id %q is not digits and dashes", id)
			return
		}
	}
	if compareEventIDs(earlier, later) >= 0 {
		t.Errorf("event id %q does not come after %q", later, earlier)
	}
}

func compareEventIDs(x, y string) int {
	xs, ys := strings.Split(x, "-"), strings.Split(y, "-")
	for i := range max(len(xs), len(ys)) {
		var a, b uint64
		if i < len(xs) {
			a, _ = strconv.ParseUint(xs[i], 10, 64)
		}
		if i < len(ys) {
			b, _ = strconv.ParseUint(ys[i], 10, 64)
		}
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	return 0
}

// An instance killed with SIGKILL leaves the cluster's view within 3 s:
// its requests are no longer listed, found or killable, and their connIds
// are free; the other instance's requests go on.
func TestClusterInstanceKilled(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	a := startClusterChild(t, r.url(), "a")
	b := startClusterNode(t, clusterConfigFor(r, "b"))
	mine := b.parkAsync(t, "mine", "4")
	ids := []string{"x1", "x2", "x3"}
	for _, id := range ids {
		rawPark(t, a.testServer, parkPath(id, "30"))
	}
	b.waitListed(t, append(ids, "mine")...)
	a.signal(t, syscall.SIGKILL)
	killed := time.Now()
	for _, id := range ids {
		b.waitGone(t, id, killed, clusterExpiry)
	}
	for _, id := range ids {
		wantError(t, "GET "+id, b.get(t, "/api/requests/"+id), http.StatusNotFound, "not found")
		wantBody(t, "kill "+id, b.killJSON(t, id), http.StatusBadRequest, `{"status":"invalid connection Id : `+id+`"}`)
		wantBody(t, "park "+id+" on b", b.park(t, id, "0"), http.StatusOK, bodyOK)
	}
	if _, in := lookup(b.status(t), "mine"); !in {
		t.Errorf("b's own request is no longer listed")
	}
	wantBody(t, "b's own request", await(t, "mine", mine), http.StatusOK, bodyOK)
	if rz := b.get(t, "/readyz"); rz.code != http.StatusOK {
		t.Errorf("b /readyz: %v", rz)
	}
}

// A second instance of a live name waits for it to expire and exits 1
// with a message that says why; the name of an instance that died is free
// again within 3 s.
func TestClusterDuplicateName(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	first := startClusterNode(t, clusterConfigFor(r, "dup"))

	t.Run("live name", func(t *testing.T) {
		start := time.Now()
		c := startChild(t, "-redis", r.url(), "-instance", "dup")
		code := c.exitCode(t)
		took := time.Since(start)
		if code != 1 {
			t.Errorf("exit status %d, want 1; log:\n%s", code, c.stderr.String())
		}
		if took > clusterExpiry+2*time.Second {
			t.Errorf("exited %v after its start, want about %v", took.Round(time.Millisecond), clusterExpiry)
		}
		log := c.stderr.String()
		if !strings.Contains(log, `\"dup\"`) || !strings.Contains(log, "-instance") || !strings.Contains(log, "taken") {
			t.Errorf("the log does not say that the name dup is taken:\n%s", log)
		}
		first.waitJoined(t) // the first one is not disturbed
	})

	t.Run("name of a dead instance", func(t *testing.T) {
		old := startClusterChild(t, r.url(), "reborn")
		rawPark(t, old.testServer, parkPath("old", "30"))
		first.waitListed(t, "old")
		old.signal(t, syscall.SIGKILL)
		died := time.Now()
		again := startClusterChild(t, r.url(), "reborn")
		if took := time.Since(died); took > clusterExpiry+2*time.Second {
			t.Errorf("the name was free %v after its instance died, want within about %v", took.Round(time.Millisecond), clusterExpiry)
		}
		first.waitGone(t, "old", died, clusterExpiry)
		wantBody(t, "park on the new one", again.park(t, "old", "0"), http.StatusOK, bodyOK)
	})
}

// An instance that cannot reach Redis at start retries for 5 s, then
// exits 1; one whose Redis comes up within those 5 s joins.
func TestClusterNoRedisAtStart(t *testing.T) {
	t.Parallel()
	t.Run("never", func(t *testing.T) {
		t.Parallel()
		needProgram(t, "redis-server", "redis-server")
		port := freePort(t)
		start := time.Now()
		c := startChild(t, "-redis", "redis://:secret-word@127.0.0.1:"+strconv.Itoa(port))
		code := c.exitCode(t)
		took := time.Since(start)
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		if took < 4*time.Second || took > 5*time.Second+3*time.Second {
			t.Errorf("exited after %v, want after about 5 s of retries", took.Round(time.Millisecond))
		}
		log := c.stderr.String()
		if !strings.Contains(log, "cannot join the cluster") || !strings.Contains(log, "127.0.0.1:"+strconv.Itoa(port)) {
			t.Errorf("the log does not say which Redis it could not reach:\n%s", log)
		}
		if strings.Contains(log, "secret-word") {
			t.Errorf("the log shows the password:\n%s", log)
		}
	})
	t.Run("late", func(t *testing.T) {
		t.Parallel()
		needProgram(t, "redis-server", "redis-server")
		r := &redisServer{t: t, path: needProgram(t, "redis-server", "redis-server"), port: freePort(t),
			opts: redisOptions{procAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}}}
		t.Cleanup(r.kill)
		c := startChild(t, "-redis", r.url(), "-instance", "late")
		time.Sleep(1500 * time.Millisecond)
		if err := r.start(); err != nil {
			t.Fatalf("redis-server: %v", err)
		}
		waitFor(t, "joined the cluster", c.stderr, func(log string) string {
			if logHas(log, "joined the cluster") {
				return "yes"
			}
			return ""
		})
		ts := clientFor(t, c.addr)
		ts.waitJoined(t)
	})
}

// Redis frozen (SIGSTOP) for 5 s: requests already parked answer on time
// and a kill on their own instance works; from at most 3 s after the stop
// new parks are 503 + Retry-After: 1 and wait at most 1 s; listings answer
// from the instance alone, marked degraded; a kill, GET or DELETE of an id
// the instance does not hold is a 503; /readyz is 503. After SIGCONT the
// cluster is whole within 2 s.
func TestClusterRedisStopped(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	n := startCluster(t, r, "a", "b")
	a, b := n[0], n[1]
	onTime := a.parkAsync(t, "on-time", "4")
	parkedAt := time.Now()
	ownKill := a.parkAsync(t, "own", "30")
	other := b.parkAsync(t, "other", "30")
	a.waitListed(t, "on-time", "own", "other")

	r.stop(t)
	stopped := time.Now()

	// New parks: each waits at most 1 s on Redis, and from 3 s after the
	// stop every one is refused. Once the first is, the instance answers
	// from what it holds alone.
	degraded := false
	for i := 0; ; i++ {
		sent := time.Now()
		p := a.park(t, fmt.Sprintf("new-%d", i), "0")
		took := time.Since(sent)
		if took > clusterParkMax+500*time.Millisecond {
			t.Errorf("a park waited %v on a stopped Redis, want at most %v", took.Round(time.Millisecond), clusterParkMax)
		}
		if p.code == http.StatusOK {
			if sent.Sub(stopped) > clusterExpiry {
				t.Errorf("a park sent %v after Redis stopped was taken: %v", sent.Sub(stopped).Round(time.Millisecond), p)
			}
			continue
		}
		checkStoreRefusal(t, "park while Redis is stopped", p)
		if !degraded {
			degraded = true
			checkDegraded(t, a)
		}
		if sent.Sub(stopped) > clusterExpiry {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, ts := range n {
		if rz := ts.get(t, "/readyz"); rz.code != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz 3 s after Redis stopped: %v, want 503", ts.name, rz)
		}
	}
	wantBody(t, "kill on the owner", a.killJSON(t, "own"), http.StatusOK, bodyOK)
	wantBody(t, "the killed request", await(t, "own", ownKill), http.StatusInternalServerError, bodyKilled)
	ot := await(t, "on-time", onTime)
	wantBody(t, "a request due while Redis is stopped", ot, http.StatusOK, bodyOK)
	if late := time.Since(parkedAt) - 4*time.Second; late < 0 {
		t.Errorf("on-time answered %v early", -late)
	}
	if wait := 5*time.Second - time.Since(stopped); wait > 0 {
		time.Sleep(wait)
	}

	r.cont(t)
	resumed := time.Now()
	waitWhole(t, resumed, n, map[string]string{"other": "b"})
	// Re-registered what they hold, and only that: a holds nothing now,
	// whatever its refused parks sent Redis while it was stopped.
	waitHeld(t, r, "parkd", map[string][]string{"a": nil, "b": {"other"}})
	wantBody(t, "kill across instances after", a.killJSON(t, "other"), http.StatusOK, bodyOK)
	wantBody(t, "b's request", await(t, "other", other), http.StatusInternalServerError, bodyKilled)
}

// checkDegraded checks a's answers while Redis is stopped: listings of
// its own requests (on-time, own), marked degraded; 503 for what it does
// not hold, and from /readyz.
func checkDegraded(t *testing.T, a *clusterNode) {
	t.Helper()
	if rz := a.get(t, "/readyz"); rz.code != http.StatusServiceUnavailable {
		t.Errorf("a /readyz with Redis stopped: %v, want 503", rz)
	}
	es, sr := a.statusOf(t)
	clusterHeader(t, "a serverStatus", sr, "degraded")
	if got := idsOfStatus(es); !slices.Equal(got, []string{"on-time", "own"}) {
		t.Errorf("a serverStatus with Redis stopped: %q, want a's own [on-time own]", got)
	}
	list, lr := a.requests(t)
	clusterHeader(t, "a /api/requests", lr, "degraded")
	if len(list) != 2 {
		t.Errorf("a /api/requests with Redis stopped: %+v, want a's two", list)
	}
	g := a.get(t, "/api/requests/own")
	clusterHeader(t, "a GET own", g, "degraded")
	if g.code != http.StatusOK {
		t.Errorf("a GET of its own request: %v", g)
	}
	clusterHeader(t, "a /api/history", a.get(t, "/api/history"), "degraded")
	if s := a.subscribe(t, ""); s.header.Get(headerCluster) != "degraded" {
		t.Errorf("a /api/events: %s %q, want degraded", headerCluster, s.header.Get(headerCluster))
	}
	for _, q := range []reply{
		a.killJSON(t, "other"),
		a.get(t, "/api/requests/other"),
		a.do(t, http.MethodDelete, "/api/requests/other", nil),
		a.killJSON(t, "nobody"),
	} {
		if q.code != http.StatusServiceUnavailable {
			t.Errorf("a kill/GET/DELETE of an id it does not hold, Redis stopped: %v, want 503", q)
		}
	}
}

// waitWhole polls every instance until it is whole — ready, its listing
// marked ok and holding want (connId → instance), and taking parks —
// failing if a probe asked more than 2 s after since still finds one that
// is not.
func waitWhole(t *testing.T, since time.Time, n []*clusterNode, want map[string]string) {
	t.Helper()
	for _, ts := range n {
		for i := 0; ; i++ {
			asked := time.Now()
			why := wholeNow(t, ts, want, fmt.Sprintf("whole-%s-%d", ts.name, i))
			if why == "" {
				break
			}
			if asked.Sub(since) > clusterWhole {
				t.Fatalf("%s is not whole %v after Redis came back: %s", ts.name, asked.Sub(since).Round(time.Millisecond), why)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// wholeNow says what is not whole about ts, or "".
func wholeNow(t *testing.T, ts *clusterNode, want map[string]string, probe string) string {
	t.Helper()
	if rz := ts.get(t, "/readyz"); rz.code != http.StatusOK {
		return "readyz " + rz.String()
	}
	list, lr := ts.requests(t)
	if lr.header.Get(headerCluster) != "ok" {
		return "listing " + lr.header.Get(headerCluster)
	}
	for id, inst := range want {
		i := slices.IndexFunc(list, func(l listed) bool { return l.ConnID == id })
		if i < 0 || list[i].Instance != inst {
			return fmt.Sprintf("%q not listed on %s: %+v", id, inst, list)
		}
	}
	if p := ts.park(t, probe, "0"); p.code != http.StatusOK {
		return "park " + p.String()
	}
	return ""
}

// Redis killed and restarted empty: within 2 s every instance has
// re-registered what it holds — listed from the others, unique again —
// and takes parks.
func TestClusterRedisRestartedEmpty(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	n := startCluster(t, r, "a", "b")
	a, b := n[0], n[1]
	want := map[string]string{}
	for i := range 3 {
		for _, ts := range n {
			id := fmt.Sprintf("%s-%d", ts.name, i)
			rawPark(t, ts.testServer, parkPath(id, "30"))
			want[id] = ts.name
		}
	}
	for _, ts := range n {
		ts.waitListed(t, slices.Collect(maps.Keys(want))...)
	}
	r.restart(t)
	back := time.Now()
	// While the instances re-register, one that cannot tell yet must not
	// say that nobody holds a request a live instance holds, nor let its
	// id park twice.
	for time.Since(back) < clusterWhole {
		if g := b.get(t, "/api/requests/a-0"); g.code == http.StatusNotFound {
			t.Errorf("%v after the restart, b says nobody holds a's a-0: %v", time.Since(back).Round(time.Millisecond), g)
			break
		}
		if p := b.park(t, "a-1", "0"); p.code == http.StatusOK {
			t.Errorf("%v after the restart, b parked a-1, which a holds: %v", time.Since(back).Round(time.Millisecond), p)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitWhole(t, back, n, want)
	for id, inst := range want {
		other := a
		if inst == "a" {
			other = b
		}
		wantBody(t, "park of "+id+" on "+other.name, other.park(t, id, "0"), http.StatusConflict,
			`{"status":"error","error":"connId `+id+` is already running"}`)
	}
	// What Redis holds now is what the instances hold, and only that.
	held := map[string][]string{}
	for id, inst := range want {
		held[inst] = append(held[inst], id)
	}
	waitHeld(t, r, "parkd", held)
}

// waitHeld polls until each instance's hash in Redis holds exactly the
// ids given, and fails after 2 s.
func waitHeld(t *testing.T, r *redisServer, prefix string, want map[string][]string) {
	t.Helper()
	end := time.Now().Add(clusterWhole)
	for name, ids := range want {
		for {
			held := sortedCopy(respStrings(r.doT(t, "HKEYS", prefix+":parked:"+name)))
			if slices.Equal(held, sortedCopy(ids)) {
				break
			}
			if time.Now().After(end) {
				t.Errorf("%s:parked:%s holds %q, want %q", prefix, name, held, ids)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// An instance shut down gracefully stays in the cluster's view through
// its grace: its requests are listed and killable from another instance,
// whose own requests go on; it leaves the view within 3 s of its exit.
func TestClusterGracefulShutdown(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	a := startClusterChild(t, r.url(), "a", "-grace", "10s")
	b := startClusterNode(t, clusterConfigFor(r, "b"))
	finishes := rawPark(t, a.testServer, parkPath("finishes", "3"))
	killed := rawPark(t, a.testServer, parkPath("killed", "8"))
	beyond := rawPark(t, a.testServer, parkPath("beyond", "60"))
	mine := b.parkAsync(t, "mine", "6")
	b.waitListed(t, "finishes", "killed", "beyond", "mine")
	a.closeIdle()

	a.signal(t, syscall.SIGTERM)
	wantBody(t, "beyond the grace", beyond.read(t, http.MethodGet), http.StatusServiceUnavailable, bodyShuttingDown)
	b.waitGone(t, "beyond", time.Now(), time.Second)
	b.waitListed(t, "finishes", "killed", "mine")
	g := b.get(t, "/api/requests/killed")
	var l listed
	if g.code != http.StatusOK || json.Unmarshal(g.body, &l) != nil || l.Instance != "a" {
		t.Errorf("b GET of a's request during a's grace: %v", g)
	}
	k := b.killJSON(t, "killed")
	wantBody(t, "kill from b during a's grace", k, http.StatusOK, bodyOK)
	if k.code == http.StatusOK {
		wantBody(t, "the killed request", killed.read(t, http.MethodGet), http.StatusInternalServerError, bodyKilled)
	}
	wantBody(t, "due within the grace", finishes.read(t, http.MethodGet), http.StatusOK, bodyOK)
	if code := a.exitCode(t); code != 0 {
		t.Errorf("a exited %d; log:\n%s", code, a.stderr.String())
	}
	exited := time.Now()
	b.waitGone(t, "finishes", exited, clusterExpiry)
	b.waitGone(t, "killed", exited, clusterExpiry)
	wantBody(t, "b's own request", await(t, "mine", mine), http.StatusOK, bodyOK)
	wantBody(t, "park of a's id on b", b.park(t, "killed", "0"), http.StatusOK, bodyOK)
}

// Two prefixes on one Redis are two clusters: the same connId parks in
// both, neither lists the other's, and every key starts with its prefix.
func TestClusterPrefixes(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	cfg := func(name, prefix string) config {
		c := clusterConfigFor(r, name)
		c.redisPrefix = prefix
		return c
	}
	one := startClusterNode(t, cfg("a", "one"))
	oneB := startClusterNode(t, cfg("b", "one"))
	two := startClusterNode(t, cfg("a", "two")) // the same name in another cluster
	rawPark(t, one.testServer, parkPath("same", "30"))
	rawPark(t, two.testServer, parkPath("same", "30"))
	rawPark(t, two.testServer, parkPath("only-two", "30"))
	oneB.waitListed(t, "same")
	two.waitListed(t, "same", "only-two")
	if _, in := lookup(oneB.status(t), "only-two"); in {
		t.Errorf("cluster one lists cluster two's request")
	}
	wantBody(t, "park in one", oneB.park(t, "same", "0"), http.StatusConflict, `{"status":"error","error":"connId same is already running"}`)
	wantBody(t, "park of two's id in one", oneB.park(t, "only-two", "0"), http.StatusOK, bodyOK)
	for _, k := range respStrings(r.doT(t, "KEYS", "*")) {
		if !strings.HasPrefix(k, "one:") && !strings.HasPrefix(k, "two:") {
			t.Errorf("key %q has neither prefix", k)
		}
	}
}

// A password in the URL works, and a wrong one is refused without the log
// showing it.
func TestClusterRedisPassword(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{password: "s3cret/+"})
	n := startCluster(t, r, "a", "b")
	rawPark(t, n[0].testServer, parkPath("pw", "30"))
	n[1].waitListed(t, "pw")
	wantBody(t, "park across", n[1].park(t, "pw", "0"), http.StatusConflict, `{"status":"error","error":"connId pw is already running"}`)

	bad := "redis://:wrong-word@" + r.addr()
	c := startChild(t, "-redis", bad, "-instance", "bad")
	if code := c.exitCode(t); code != 1 {
		t.Errorf("a wrong password: exit status %d, want 1", code)
	}
	if log := c.stderr.String(); strings.Contains(log, "wrong-word") || !strings.Contains(log, "cannot join the cluster") {
		t.Errorf("a wrong password: the log shows it, or not why it stopped:\n%s", log)
	}
}

// rediss:// (TLS) works, the instance trusting the Redis's CA through the
// system pool (SSL_CERT_FILE). Not parallel: it sets the environment of
// the children.
func TestClusterRedisTLS(t *testing.T) {
	needProgram(t, "redis-server", "redis-server")
	files := writeTestCA(t)
	r := newRedis(t, redisOptions{tls: files})
	t.Setenv("SSL_CERT_FILE", files.caFile)
	a := startClusterChild(t, r.url(), "a")
	b := startClusterChild(t, r.url(), "b")
	rawPark(t, a.testServer, parkPath("tls", "30"))
	b.waitListed(t, "tls")
	wantBody(t, "park across", b.park(t, "tls", "0"), http.StatusConflict, `{"status":"error","error":"connId tls is already running"}`)
	// Without the CA the certificate is not trusted: no join.
	t.Setenv("SSL_CERT_FILE", filepath.Join(t.TempDir(), "none.pem"))
	c := startChild(t, "-redis", r.url(), "-instance", "untrusting")
	if code := c.exitCode(t); code != 1 || !strings.Contains(c.stderr.String(), "certificate") {
		t.Errorf("an instance that does not trust the CA: exit %d, want 1 with a word on the certificate; log:\n%s", code, c.stderr.String())
	}
}

// writeTestCA makes a CA and a server certificate for 127.0.0.1 signed by
// it, in files for redis-server, and a client configuration that trusts
// the CA.
func writeTestCA(t *testing.T) *redisTLS {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parkd test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := &redisTLS{certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server.key"), caFile: filepath.Join(dir, "ca.pem")}
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{files.certFile, "CERTIFICATE", der}, {files.keyFile, "EC PRIVATE KEY", keyDER}, {files.caFile, "CERTIFICATE", caDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	files.client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return files
}

// Capacity is per instance: each instance takes its own -capacity.
func TestClusterCapacityPerInstance(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	var n []*clusterNode
	for _, name := range []string{"a", "b"} {
		cfg := clusterConfigFor(r, name)
		cfg.capacity = 1
		n = append(n, startClusterNode(t, cfg))
	}
	rawPark(t, n[0].testServer, parkPath("c1", "30"))
	rawPark(t, n[1].testServer, parkPath("c2", "30"))
	n[0].waitListed(t, "c1", "c2")
	full := n[0].park(t, "c3", "30")
	wantError(t, "a third park on a full instance", full, http.StatusServiceUnavailable, "error")
	if full.header.Get("Retry-After") != "1" {
		t.Errorf("the capacity's 503 has Retry-After %q", full.header.Get("Retry-After"))
	}
	// The refused park left no claim behind.
	n[0].waitGone(t, "c3", time.Now(), time.Second)
}

// gateProxy is a TCP proxy between one instance and Redis that can cut
// the instance off, as a partition would: while cut, nothing passes in
// either direction; when healed, the connections that lived through the
// cut are closed, as a long partition ends them, and new ones pass.
type gateProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	healed chan struct{}
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, healed: make(chan struct{})}
	close(p.healed)
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.heal()
		p.wg.Wait()
	})
	return p
}

func (p *gateProxy) addr() string { return p.ln.Addr().String() }

func (p *gateProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() {
			p.gate()
			up, err := net.DialTimeout("tcp", p.target, time.Second)
			if err != nil {
				c.Close()
				return
			}
			p.track(c, up)
			p.wg.Go(func() { p.pipe(up, c) })
			p.pipe(c, up)
		})
	}
}

// track keeps both ends for heal to close.
func (p *gateProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

// gate blocks while the proxy is cut.
func (p *gateProxy) gate() {
	p.mu.Lock()
	ch := p.healed
	p.mu.Unlock()
	<-ch
}

// pipe copies from src to dst, holding what it read while the proxy is
// cut; a cut connection is closed at the heal, and what it held goes with
// it.
func (p *gateProxy) pipe(src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut, ch := p.cut, p.healed
			p.mu.Unlock()
			if cut {
				<-ch
				return // it lived through the cut: heal closed it
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutOff stops everything passing.
func (p *gateProxy) cutOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		p.cut, p.healed = true, make(chan struct{})
	}
}

// heal closes every connection that lived through the cut and lets new
// ones pass.
func (p *gateProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	if p.cut {
		p.cut = false
		close(p.healed)
	}
}

// An instance cut off from Redis for longer than 3 s, while another parks
// one of its connIds: the other keeps it; the cut-off instance's request
// of that id runs to its own outcome, listed in its own degraded view
// only, and the instance logs a warning when it is whole again.
func TestClusterPartitionedInstance(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	proxy := startGateProxy(t, r.addr())
	acfg := clusterConfigFor(r, "a")
	acfg.redis = "redis://" + proxy.addr()
	a := startClusterNode(t, acfg)
	b := startClusterNode(t, clusterConfigFor(r, "b"))

	aSame := rawPark(t, a.testServer, parkPath("same", "10"))
	aSameAt := time.Now()
	rawPark(t, a.testServer, parkPath("a-only", "30"))
	b.waitListed(t, "same", "a-only")

	proxy.cutOff()
	cut := time.Now()
	b.waitGone(t, "same", cut, clusterExpiry+clusterParkMax) // a's key lapses 3 s after its last beat
	bSame := rawPark(t, b.testServer, parkPath("same", "30"))
	b.waitListed(t, "same")

	es, sr := a.statusOf(t)
	clusterHeader(t, "a cut off", sr, "degraded")
	if got := idsOfStatus(es); !slices.Equal(sortedCopy(got), []string{"a-only", "same"}) {
		t.Errorf("a's degraded view: %q, want its own [a-only same]", got)
	}

	// Whether b's heartbeat has dropped a's lapsed hash yet decides which
	// way a finds its way back; both must end the same.
	left, _ := r.doT(t, "HEXISTS", "parkd:parked:a", "same").(int64)
	t.Logf("a's lapsed hash still names same when the cut heals: %v", left == 1)
	proxy.heal()
	healed := time.Now()
	waitWhole(t, healed, []*clusterNode{a, b}, map[string]string{"same": "b", "a-only": "a"})
	list, _ := a.requests(t)
	if c := countID(list, "same"); c != 1 {
		t.Errorf("a lists %q %d times once whole: %+v", "same", c, list)
	}
	list, _ = b.requests(t)
	if c := countID(list, "same"); c != 1 {
		t.Errorf("b lists %q %d times: %+v", "same", c, list)
	}
	waitFor(t, "a warning about same", a.log, func(log string) string {
		for l := range strings.Lines(log) {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "connId=same") && strings.Contains(l, "instance=b") {
				return l
			}
		}
		return ""
	})
	// Uniqueness holds: the id is b's for the cluster.
	wantBody(t, "park same on a", a.park(t, "same", "0"), http.StatusConflict, `{"status":"error","error":"connId same is already running"}`)
	// b's request is killed from b; a's runs to its deadline.
	wantBody(t, "kill b's same", b.killJSON(t, "same"), http.StatusOK, bodyOK)
	wantBody(t, "b's same", bSame.read(t, http.MethodGet), http.StatusInternalServerError, bodyKilled)
	got := aSame.read(t, http.MethodGet)
	wantBody(t, "a's same, at its own deadline", got, http.StatusOK, bodyOK)
	if early := 10*time.Second - time.Since(aSameAt); early > 0 {
		t.Errorf("a's same answered %v before its deadline", early)
	}
}

func countID(list []listed, id string) int {
	n := 0
	for _, l := range list {
		if l.ConnID == id {
			n++
		}
	}
	return n
}

// The owner of a request is live but does not answer (SIGSTOP): a kill or
// DELETE of its request from another instance answers 503 naming it
// within about 1 s.
func TestClusterOwnerUnreachable(t *testing.T) {
	t.Parallel()
	r := newRedis(t, redisOptions{})
	a := startClusterChild(t, r.url(), "a")
	b := startClusterNode(t, clusterConfigFor(r, "b"))
	frozen := rawPark(t, a.testServer, parkPath("frozen", "30"))
	b.waitListed(t, "frozen")
	a.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) }) //nolint:errcheck // it may be gone
	for _, k := range []func() reply{
		func() reply { return b.killJSON(t, "frozen") },
		func() reply { return b.do(t, http.MethodDelete, "/api/requests/frozen", nil) },
	} {
		sent := time.Now()
		got := k()
		wantBody(t, "kill of a frozen owner's request", got, http.StatusServiceUnavailable, `{"status":"error","error":"instance a unreachable"}`)
		if took := time.Since(sent); took > clusterParkMax+500*time.Millisecond {
			t.Errorf("the kill waited %v for a frozen owner, want about %v", took.Round(time.Millisecond), clusterParkMax)
		}
	}
	// Frozen for a second or two, a may have lapsed meanwhile: once it
	// runs again it is back in the view, and its request killable.
	a.signal(t, syscall.SIGCONT)
	// The kills that answered 503 must not land once a runs again.
	if r, got, _ := frozen.answerOrClose(http.MethodGet, time.Now().Add(time.Second)); got {
		t.Errorf("a kill that answered 503 (owner unreachable) still killed the request once its owner ran again: it answered %v", r)
		return
	}
	b.waitListed(t, "frozen")
	wantBody(t, "kill once the owner runs again", b.killJSON(t, "frozen"), http.StatusOK, bodyOK)
}

// Without -redis nothing of this shows: no Parkd-Cluster header, no
// instance in resource objects.
func TestClusterStandaloneUnchanged(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	rawPark(t, ts, parkPath("alone", "30"))
	ts.waitListed(t, "alone")
	for _, path := range []string{"/api/serverStatus", "/api/requests", "/api/requests/alone", "/api/history"} {
		r := ts.get(t, path)
		if h := r.header.Get(headerCluster); h != "" {
			t.Errorf("%s alone: %s %q, want none", path, headerCluster, h)
		}
		if strings.Contains(string(r.body), `"instance"`) && path != "/api/history" {
			t.Errorf("%s alone names an instance: %s", path, clip(r.body))
		}
	}
}

// ---- the fault runs of docs/reliability.md ----

// TestClusterFaults runs the fault runs recorded in docs/reliability.md:
// three instances (child processes) on one Redis, a few thousand parked
// across them plus a steady stream of new parks and kills, then a fault:
// Redis frozen for 5 s, Redis killed and restarted empty, or one
// instance killed. It reports parked requests lost and answered twice
// (both want 0), answers later than 50 ms after their deadline, parks
// refused while Redis was gone, and how long until the cluster was whole
// again. Only with PARKD_CLUSTER_FAULTS=1: it takes about two minutes.
func TestClusterFaults(t *testing.T) {
	if os.Getenv("PARKD_CLUSTER_FAULTS") != "1" {
		t.Skip("PARKD_CLUSTER_FAULTS=1 runs the cluster's fault runs (about two minutes)")
	}
	bulk := 3000
	if v, err := strconv.Atoi(os.Getenv("PARKD_CLUSTER_FAULTS_BULK")); err == nil && v > 0 {
		bulk = v
	}
	for _, sc := range []struct {
		name  string
		fault func(t *testing.T, d *faultDriver) (recovered time.Time)
	}{
		{"redis SIGSTOP 5s", func(t *testing.T, d *faultDriver) time.Time {
			d.r.stop(t)
			time.Sleep(5 * time.Second)
			d.r.cont(t)
			return time.Now()
		}},
		{"redis SIGKILL, restarted empty", func(t *testing.T, d *faultDriver) time.Time {
			d.r.restart(t)
			return time.Now()
		}},
		{"instance SIGKILL", func(t *testing.T, d *faultDriver) time.Time {
			d.victim.Store(2)
			d.nodes[2].signal(t, syscall.SIGKILL)
			return time.Now()
		}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			d := newFaultDriver(t)
			d.run(t, bulk, sc.fault)
		})
	}
}

// faultDriver loads a cluster of three and keeps what every request got.
type faultDriver struct {
	r      *redisServer
	nodes  []*clusterChild
	victim atomic.Int32 // the instance the fault killed, or -1

	mu    sync.Mutex
	parks []*faultPark
	live  map[string]*faultPark // parked and not answered yet
	seq   int
	wg    sync.WaitGroup

	refusedWhileGone, conflicts, otherRefusals int
	kills                                      map[int]int // kill answers by status
	faultAt, recoveredAt                       time.Time
}

// faultPark is one park and what it got.
type faultPark struct {
	id       string
	node     int
	timeout  time.Duration
	sent     time.Time
	answered time.Time
	code     int
	err      error
	doubled  bool
	killed   int // kills of it that answered 200
}

func newFaultDriver(t *testing.T) *faultDriver {
	t.Helper()
	d := &faultDriver{r: newRedis(t, redisOptions{}), live: map[string]*faultPark{}, kills: map[int]int{}}
	d.victim.Store(-1)
	for _, name := range []string{"a", "b", "c"} {
		d.nodes = append(d.nodes, startClusterChild(t, d.r.url(), name))
	}
	return d
}

// dead is the instance the fault killed, or -1.
func (d *faultDriver) dead() int { return int(d.victim.Load()) }

// park parks id on node on a connection of its own (Connection: close, so
// that anything after the answer is a second one) and keeps what it got.
func (d *faultDriver) park(node int, timeout time.Duration) {
	d.mu.Lock()
	d.seq++
	p := &faultPark{id: "f" + strconv.Itoa(d.seq), node: node, timeout: timeout}
	d.parks = append(d.parks, p)
	d.mu.Unlock()
	d.wg.Go(func() {
		c, err := net.DialTimeout("tcp", d.nodes[node].testServer.addr, waitBound)
		if err != nil {
			p.err = err
			return
		}
		defer c.Close()
		p.sent = time.Now()
		d.mu.Lock()
		d.live[p.id] = p
		d.mu.Unlock()
		defer func() {
			d.mu.Lock()
			delete(d.live, p.id)
			d.mu.Unlock()
		}()
		secs := strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
		if _, err := io.WriteString(c, getRequest(parkPath(p.id, secs), "Connection: close\r\n")); err != nil {
			p.err = err
			return
		}
		c.SetReadDeadline(p.sent.Add(timeout + 20*time.Second))
		br := bufio.NewReader(c)
		r, err := readReply(br, http.MethodGet)
		p.answered = time.Now()
		if err != nil {
			p.err = err
			return
		}
		p.code = r.code
		c.SetReadDeadline(time.Now().Add(time.Second))
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			p.doubled = true
		}
	})
}

// kill kills a random live request from instance node.
func (d *faultDriver) kill(node int, client *http.Client) {
	d.mu.Lock()
	var p *faultPark
	for _, p = range d.live { // map order is random enough
		break
	}
	d.mu.Unlock()
	if p == nil || p.timeout < time.Second {
		return
	}
	req, _ := http.NewRequest(http.MethodPut, d.nodes[node].base+"/api/kill", strings.NewReader(`{"connId":"`+p.id+`"}`))
	resp, err := client.Do(req)
	code := 0
	if err == nil {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the code counts
		resp.Body.Close()
		code = resp.StatusCode
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kills[code]++
	if code == http.StatusOK {
		p.killed++
	}
}

// steady parks about 200 a second (0.2–2 s) and kills about 20 a second
// until stop is closed; a park refused with 503 while Redis is gone is
// counted.
func (d *faultDriver) steady(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	rnd := mathrand.New(mathrand.NewPCG(1, 2))
	client := &http.Client{Timeout: waitBound, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		node := i % len(d.nodes)
		if node == d.dead() {
			node = (node + 1) % len(d.nodes)
		}
		d.park(node, time.Duration(200+rnd.IntN(1800))*time.Millisecond)
		if i%10 == 0 {
			killer := rnd.IntN(len(d.nodes))
			if killer == d.dead() {
				killer = (killer + 1) % len(d.nodes)
			}
			d.wg.Go(func() { d.kill(killer, client) })
		}
	}
}

// run parks bulk requests (8–25 s) across the instances, starts the
// steady load, lets fault do its harm, measures the return to whole, and
// checks and reports every answer once all have come.
func (d *faultDriver) run(t *testing.T, bulk int, fault func(*testing.T, *faultDriver) time.Time) {
	rnd := mathrand.New(mathrand.NewPCG(3, 4))
	for i := range bulk {
		d.park(i%len(d.nodes), time.Duration(8000+rnd.IntN(17000))*time.Millisecond)
	}
	stop, steadyDone := make(chan struct{}), make(chan struct{})
	go d.steady(stop, steadyDone)
	time.Sleep(3 * time.Second)
	listed := len(d.nodes[0].status(t))
	d.faultAt = time.Now()
	d.recoveredAt = fault(t, d)
	wholeIn := d.waitWhole(t)
	time.Sleep(5 * time.Second)
	close(stop)
	<-steadyDone
	waited := make(chan struct{})
	go func() { d.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		t.Fatalf("parks still unanswered 60 s after the load stopped")
	}
	d.report(t, bulk, listed, wholeIn)
}

// waitWhole polls the surviving instances until each is whole: ready, its
// listing marked ok and without the victim's requests, and taking parks.
func (d *faultDriver) waitWhole(t *testing.T) time.Duration {
	t.Helper()
	probe := &http.Client{Timeout: 2 * time.Second}
	defer probe.CloseIdleConnections()
	victim := ""
	if d.dead() >= 0 {
		victim = `"instance":"` + d.nodes[d.dead()].name + `"`
	}
	var whole time.Duration // the latest of the instances' first whole probes, from the start of that probe
	for i, n := range d.nodes {
		if i == d.dead() {
			continue
		}
		for k := 0; ; k++ {
			asked := time.Now()
			if time.Since(d.recoveredAt) > waitBound {
				t.Fatalf("%s not whole %v after the fault ended", n.name, waitBound)
			}
			resp, err := probe.Get(n.base + "/readyz")
			if err != nil || resp.StatusCode != http.StatusOK {
				if err == nil {
					resp.Body.Close()
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			resp.Body.Close()
			resp, err = probe.Get(n.base + "/api/requests")
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Header.Get(headerCluster) != "ok" || victim != "" && strings.Contains(string(body), victim) {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			resp, err = probe.Get(n.base + parkPath(fmt.Sprintf("probe-%s-%d", n.name, k), "0"))
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				whole = max(whole, asked.Sub(d.recoveredAt))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return whole
}

// report checks every park and logs the run's figures.
func (d *faultDriver) report(t *testing.T, bulk, listed int, wholeIn time.Duration) {
	var lost, doubled, late, ok, killedOK, killMismatch, victims, early int
	var worst, last time.Duration
	var first time.Time
	lateness := make([]time.Duration, 0, len(d.parks))
	for _, p := range d.parks {
		if p.node == d.dead() {
			victims++
			continue
		}
		if p.doubled {
			doubled++
		}
		switch {
		case p.err != nil || p.code == 0:
			lost++
			if lost <= 5 {
				t.Errorf("park %s on %s (%v): no answer: %v", p.id, d.nodes[p.node].name, p.timeout, p.err)
			}
		case p.code == http.StatusOK:
			ok++
			l := p.answered.Sub(p.sent.Add(p.timeout))
			if l < 0 {
				early++
			}
			lateness = append(lateness, l)
			worst = max(worst, l)
			if l > 50*time.Millisecond {
				late++
			}
			if p.killed > 0 {
				killMismatch++
			}
		case p.code == http.StatusInternalServerError:
			killedOK++
			if p.killed != 1 {
				killMismatch++
			}
		case p.code == http.StatusServiceUnavailable:
			if !p.sent.Before(d.faultAt.Add(-time.Second)) && p.sent.Before(d.recoveredAt.Add(clusterWhole)) {
				d.refusedWhileGone++
				if first.IsZero() || p.answered.Before(first) {
					first = p.answered
				}
				last = max(last, p.sent.Sub(d.recoveredAt))
			} else {
				d.otherRefusals++
			}
		case p.code == http.StatusConflict:
			d.conflicts++
		default:
			d.otherRefusals++
		}
	}
	slices.Sort(lateness)
	p99 := time.Duration(0)
	if len(lateness) > 0 {
		p99 = lateness[len(lateness)*99/100]
	}
	// Nothing is parked any more: every listing is empty, and Redis holds
	// no request.
	ghosts := 0
	for i, n := range d.nodes {
		if i == d.dead() {
			continue
		}
		if es := n.status(t); len(es) > 0 {
			ghosts += len(es)
			t.Errorf("%s still lists %d requests after every answer came: %v", n.name, len(es), es[:min(5, len(es))])
		}
	}
	for i, name := range []string{"a", "b", "c"} {
		held := respStrings(d.r.doT(t, "HKEYS", "parkd:parked:"+name))
		if len(held) == 0 {
			continue
		}
		t.Errorf("Redis still holds %d requests of %s after every answer came: %q", len(held), name, held[:min(5, len(held))])
		other := d.nodes[(i+1)%len(d.nodes)]
		if (i+1)%len(d.nodes) == d.dead() {
			other = d.nodes[(i+2)%len(d.nodes)]
		}
		if p := other.park(t, held[0], "0"); p.code != http.StatusOK {
			t.Errorf("and a park of %s on %s now: %v", held[0], other.name, p)
		}
	}
	// The servers' own view of lateness: their histograms, without the
	// load client's scheduling.
	var answers, over5ms, over50ms float64
	for i, n := range d.nodes {
		if i == d.dead() {
			continue
		}
		for _, m := range parseMetrics(t, scrape(t, n.testServer))["parkd_answer_lateness_seconds"].GetMetric() {
			h := m.GetHistogram()
			answers += float64(h.GetSampleCount())
			for _, b := range h.GetBucket() {
				switch b.GetUpperBound() {
				case 0.005:
					over5ms += float64(h.GetSampleCount()) - float64(b.GetCumulativeCount())
				case 0.05:
					over50ms += float64(h.GetSampleCount()) - float64(b.GetCumulativeCount())
				}
			}
		}
	}
	t.Logf("server side: %.0f answers at their deadline, %.0f later than 5 ms, %.0f later than 50 ms", answers, over5ms, over50ms)
	if lost > 0 || doubled > 0 || killMismatch > 0 || d.conflicts > 0 || early > 0 {
		t.Errorf("lost %d, doubled %d, kill/answer mismatches %d, 409s %d, early %d", lost, doubled, killMismatch, d.conflicts, early)
	}
	if !first.IsZero() {
		t.Logf("the first park refused with 503 answered %v after the fault began; the last refused one was sent %v after it ended",
			first.Sub(d.faultAt).Round(time.Millisecond), last.Round(time.Millisecond))
	}
	t.Logf("parks %d (bulk %d, %d listed before the fault), on the victim %d; ok %d, killed %d; lost %d, doubled %d, "+
		"late >50ms %d (p99 %v, worst %v); refused 503 while gone %d, other refusals %d, 409 %d; kills %v; "+
		"whole %v after the fault ended; listed after the drain %d",
		len(d.parks), bulk, listed, victims, ok, killedOK, lost, doubled, late, p99.Round(time.Millisecond), worst.Round(time.Millisecond),
		d.refusedWhileGone, d.otherRefusals, d.conflicts, d.kills, wholeIn.Round(time.Millisecond), ghosts)
}
