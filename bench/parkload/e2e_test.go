package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testConfig is a small, fast run against url. No test asserts a latency bound:
// these machines are noisy, so only counts and shapes are checked.
func testConfig(url string) config {
	cfg := defaultConfig()
	cfg.url = url
	cfg.n = 50
	cfg.timeout = 600 * time.Millisecond
	cfg.spread = 400 * time.Millisecond
	cfg.dialConcurrency = 10
	cfg.statusSamples = 5
	cfg.kills = 5
	cfg.killMinRemaining = 200 * time.Millisecond
	cfg.throughputDuration = 300 * time.Millisecond
	cfg.throughputConns = 4
	cfg.settle = 50 * time.Millisecond
	cfg.maxDuration = 60 * time.Second
	return cfg
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkParkCounts asserts that every parked request and every kill is accounted
// for exactly once.
func checkParkCounts(t *testing.T, res *result, n int) {
	t.Helper()
	if res.Aborted {
		t.Fatalf("aborted: %+v", res)
	}
	if res.ParkN != n || res.ParkWritten != n {
		t.Fatalf("park_n %d, written %d; want %d", res.ParkN, res.ParkWritten, n)
	}
	if res.ParkErrorTotal != 0 || sum(res.ParkErrors) != 0 {
		t.Fatalf("park errors: %v", res.ParkErrors)
	}
	if res.ParkOK+res.ParkKilled != n {
		t.Fatalf("ok %d + killed %d != %d", res.ParkOK, res.ParkKilled, n)
	}
	if res.KillsAttempted > res.KillsRequested || res.KillsOK+sum(res.KillErrors) != res.KillsAttempted {
		t.Fatalf("kills: requested %d attempted %d ok %d errors %v", res.KillsRequested, res.KillsAttempted, res.KillsOK, res.KillErrors)
	}
	if res.ParkKilled != res.KillsOK {
		t.Fatalf("parked answered killed %d times, kills ok %d", res.ParkKilled, res.KillsOK)
	}
	// Every request killed or targeted by a kill is left out of the lateness figures.
	if res.LatenessSamples > res.ParkOK || res.LatenessSamples < res.ParkOK-res.KillsAttempted+res.KillsOK {
		t.Fatalf("lateness samples %d, ok %d, kills attempted %d", res.LatenessSamples, res.ParkOK, res.KillsAttempted)
	}
	if (res.LatenessP50Ms == nil) != (res.LatenessSamples == 0) || (res.KillP50Ms == nil) != (res.KillsOK == 0) {
		t.Fatalf("percentiles present without samples or missing with them: %+v", res)
	}
}

func TestRunInProcess(t *testing.T) {
	srv := startFake(t)
	cfg := testConfig(srv.URL)
	cfg.pid = os.Getpid() // the fake server runs in this process
	cfg.metrics = true
	cfg.samplesOut = filepath.Join(t.TempDir(), "samples.csv")
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkParkCounts(t, res, cfg.n)
	f, err := os.Open(cfg.samplesOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != cfg.n+1 || rows[0][0] != "index" || len(rows[1]) != 8 {
		t.Fatalf("samples CSV: %d rows, %v", len(rows), err)
	}
	if res.Children != 0 {
		t.Fatalf("children %d, want 0", res.Children)
	}
	if res.StatusSamples != 5 || res.StatusOK+sum(res.StatusErrors) != 5 || res.StatusOK == 0 || res.StatusEntries == nil {
		t.Fatalf("status: %d samples, %d ok, errors %v, entries %v", res.StatusSamples, res.StatusOK, res.StatusErrors, res.StatusEntries)
	}
	if res.ParkListed == nil || *res.ParkListed > cfg.n {
		t.Fatalf("park_listed %v", res.ParkListed)
	}
	if res.TpOK == 0 || res.TpRequests != res.TpOK+sum(res.TpErrors) || res.TpRPS == nil || res.TpConns != 4 {
		t.Fatalf("throughput: requests %d ok %d errors %v rps %v", res.TpRequests, res.TpOK, res.TpErrors, res.TpRPS)
	}
	for name, v := range map[string]*int64{"before": res.RSSBeforeBytes, "parked": res.RSSParkedBytes, "peak": res.RSSPeakBytes, "after": res.RSSAfterBytes} {
		if v == nil || *v <= 0 {
			t.Fatalf("rss %s missing", name)
		}
	}
	if res.RSSPerRequestBytes == nil || res.RSSPerRequestKB == nil {
		t.Fatal("rss per request missing")
	}
	if !res.MetricsAvailable || res.GoroutinesBefore == nil || res.GoroutinesPeak == nil || res.GoroutinesAfter == nil ||
		res.HeapInuseBeforeBytes == nil || *res.HeapInuseBeforeBytes != 1<<20 {
		t.Fatalf("metrics: %+v", res)
	}
	if *res.GoroutinesPeak < *res.GoroutinesBefore {
		t.Fatalf("goroutines peak %v below before %v", *res.GoroutinesPeak, *res.GoroutinesBefore)
	}

	// The report ends with one JSON line holding every key, even unmeasured ones.
	var buf bytes.Buffer
	if err := writeReport(&buf, res); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, buf.String())
	}
	typ := reflect.TypeFor[result]()
	if len(got) != typ.NumField() {
		t.Fatalf("JSON has %d keys, result %d fields", len(got), typ.NumField())
	}
	for i := range typ.NumField() {
		key := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		if _, ok := got[key]; !ok {
			t.Errorf("key %q missing", key)
		}
		if strings.ToLower(key) != key || strings.ContainsAny(key, " -") {
			t.Errorf("key %q is not snake_case", key)
		}
	}
	if len(lines) < 10 || !strings.Contains(buf.String(), "lateness") {
		t.Fatalf("table too short:\n%s", buf.String())
	}
}

func TestRunSameDeadlineNoMetrics(t *testing.T) {
	srv := startFake(t)
	cfg := testConfig(srv.URL)
	cfg.sameDeadline = true
	cfg.sources = 1
	cfg.metrics = true // the fake has /metrics, but a 404 is what is checked below
	cfg.url = srv.URL + "/nothing-here"
	cfg.phases = phaseSet{throughput: true}
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.MetricsAvailable || res.GoroutinesBefore != nil || res.TpOK != 0 || res.TpErrors["status_404"] == 0 {
		t.Fatalf("a 404 /metrics must be skipped silently and throughput must count 404s: %+v", res)
	}

	cfg.url = srv.URL
	cfg.phases = phaseSet{park: true, status: true}
	cfg.metrics = false
	res, err = runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkParkCounts(t, res, cfg.n)
	if !res.ParkSameDeadline || res.KillsRequested != 0 || res.TpDurationS != nil || res.RSSBeforeBytes != nil || res.MetricsAvailable {
		t.Fatalf("phases not honoured: %+v", res)
	}
}

// buildTool compiles this package, so the child-process split runs the real binary.
func buildTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parkload")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestChildProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildTool(t)
	srv := startFake(t)

	t.Run("core", func(t *testing.T) {
		cfg := testConfig(srv.URL)
		cfg.childExe = bin
		cfg.perProcessCap = 20 // 50 requests → 3 children
		cfg.phases.throughput = false
		res, err := runPhases(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Children != 3 {
			t.Fatalf("children %d, want 3", res.Children)
		}
		checkParkCounts(t, res, cfg.n)
	})

	t.Run("cli", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), bin, "-url", srv.URL, "-n", "30", "-timeout", "0.3", "-spread", "0.2",
			"-phases", "park,status", "-status-samples", "3", "-max-per-process", "20", "-settle", "0")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
		var got struct {
			ParkN    int            `json:"park_n"`
			ParkOK   int            `json:"park_ok"`
			Children int            `json:"children"`
			Errors   map[string]int `json:"park_errors"`
			Status   int            `json:"status_samples"`
			TpDur    *float64       `json:"tp_duration_s"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
			t.Fatalf("last line: %v\n%s", err, stdout.String())
		}
		if got.ParkN != 30 || got.ParkOK != 30 || got.Children != 2 || len(got.Errors) != 0 || got.Status != 3 || got.TpDur != nil {
			t.Fatalf("report %+v\n%s", got, stdout.String())
		}
	})

	t.Run("section 6", func(t *testing.T) {
		cfg := shapeConfig(srv.URL, phaseSet{drip: true, fault: true, killthen: true})
		cfg.childExe = bin
		cfg.perProcessCap = 20 // 50 requests → 3 children, each watching its answers
		cfg.n = 50
		cfg.faultThens = []string{"reset"}
		res, err := runPhases(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Children != 3 || res.DripVerdict != soakPass || res.DripOK != 50 || res.DripPieceSamples != 250 ||
			res.FaultVerdict != soakPass || res.KtVerdict != soakPass {
			t.Fatalf("children %d drip %s (%d whole, %d pieces, errors %v) fault %s killthen %s %+v", res.Children, res.DripVerdict,
				res.DripOK, res.DripPieceSamples, res.DripErrors, res.FaultVerdict, res.KtVerdict, res.KtActions)
		}
	})

	t.Run("max-duration ends children", func(t *testing.T) {
		cfg := testConfig(srv.URL)
		cfg.childExe = bin
		cfg.perProcessCap = 20
		cfg.n = 30
		cfg.timeout, cfg.spread = 20*time.Second, 0 // would outlive the run
		cfg.maxDuration = 1500 * time.Millisecond
		cfg.phases = phaseSet{park: true}
		res, err := runPhases(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Aborted || res.ParkOK != 0 || res.ParkErrors["aborted"] != cfg.n {
			t.Fatalf("aborted %v ok %d errors %v", res.Aborted, res.ParkOK, res.ParkErrors)
		}
	})
}

// -instances sends park i to instance i mod len, as a round-robin load
// balancer would, in this process and in child processes alike; -url
// still lists and kills, and the kills are told apart by owner.
func TestSpreadOverInstances(t *testing.T) {
	for _, perProcess := range []int{0, 20} {
		var parksA, parksB atomic.Int64
		a, b := startFakeCounting(t, "", &parksA), startFakeCounting(t, "", &parksB)
		cfg := testConfig(b.URL)
		cfg.spreadURLs = []string{a.URL, b.URL}
		cfg.perProcessCap = perProcess
		cfg.parkRate = 400 // paced, and every park still accounted for
		cfg.phases = phaseSet{park: true, kill: true}
		cfg.parkSettle = 300 * time.Millisecond // b lists only its half
		cfg.kills = 10
		cfg.pid = os.Getpid()
		cfg.alsoPids = []int{os.Getpid()}
		if perProcess > 0 {
			if testing.Short() {
				continue // builds the binary
			}
			cfg.childExe = buildTool(t)
		}
		res, err := runPhases(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := [2]int64{parksA.Load(), parksB.Load()}, [2]int64{25, 25}; got != want {
			t.Errorf("max %d per process: parks on a, b = %v, want %v", perProcess, got, want)
		}
		if res.Instances != 2 || res.ParkListed == nil || *res.ParkListed != 25 {
			t.Errorf("instances %d, listed by -url %v; want 2 and 25", res.Instances, res.ParkListed)
		}
		// The fakes are no cluster: only b's own requests can be killed.
		if res.KillsOK == 0 || res.KillOwnerN != res.KillsOK || res.KillOtherN != 0 {
			t.Errorf("kills ok %d, on the owner %d, from another %d", res.KillsOK, res.KillOwnerN, res.KillOtherN)
		}
		if res.RSSBeforeBytes == nil || res.RSSParkedBytes == nil {
			t.Errorf("rss: %v %v", res.RSSBeforeBytes, res.RSSParkedBytes)
		}
	}
}

func TestSpreadFlags(t *testing.T) {
	u := "http://127.0.0.1:1"
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-url", u, "-instances", u + ",http://127.0.0.1:2", "-phases", "park,status,kill"}, true},
		{[]string{"-url", u, "-instances", "http://127.0.0.1:2,http://127.0.0.1:3", "-phases", "park"}, false}, // -url not among them
		{[]string{"-url", u, "-instances", u + ",http://10.0.0.1:2", "-phases", "park"}, false},                // not loopback
		{[]string{"-url", u, "-instances", u + ",http://127.0.0.1:2", "-phases", "park,throughput"}, false},
		{[]string{"-url", u, "-also-pid", "1"}, false}, // without -pid
		{[]string{"-url", u, "-park-rate", "-1"}, false},
		{[]string{"-url", u, "-park-rate", "2500"}, true},
	} {
		cfg, _, err := parseFlags(c.args, io.Discard)
		if err == nil {
			err = cfg.validate()
		}
		if (err == nil) != c.ok {
			t.Errorf("%v: %v, want ok %v", c.args, err, c.ok)
		}
	}
}
