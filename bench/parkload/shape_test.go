package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	text := []byte(`# TYPE parkd_piece_lateness_seconds histogram
parkd_piece_lateness_seconds_bucket{le="0.05"} 99
parkd_piece_lateness_seconds_bucket{le="0.001"} 50
parkd_piece_lateness_seconds_bucket{le="0.005"} 90
parkd_piece_lateness_seconds_bucket{instance="a",le="1"} 100
parkd_piece_lateness_seconds_bucket{le="+Inf"} 100
parkd_piece_lateness_seconds_sum 1.5
parkd_piece_lateness_seconds_count 100
parkd_answer_lateness_seconds_bucket{le="0.005"} 7
`)
	h, ok := parseHistogram(text, histPieceLateness)
	if !ok || !slices.Equal(h.counts, []float64{50, 90, 99, 100, 100}) || h.total() != 100 {
		t.Fatalf("parsed %+v %v", h, ok)
	}
	if _, ok := parseHistogram(text, histAnswerLateness); ok {
		t.Error("a histogram without +Inf accepted")
	}
	if _, ok := parseHistogram(text, "nothing"); ok {
		t.Error("a missing histogram found")
	}
	f := h.figures()
	if f.Count != 100 || *f.Within5ms != 0.9 || *f.Within50ms != 0.99 || *f.P99LeMs != 50 || *f.MaxLeMs != 1000 {
		t.Errorf("figures %+v", f)
	}
	if w := h.within(3 * time.Millisecond); *w != 0.5 { // read at the largest bound below: 1 ms
		t.Errorf("within 3 ms: %v", *w)
	}
	if h.within(500*time.Microsecond) != nil {
		t.Error("within a bound below every bucket should be unknown")
	}

	// Over a phase: the later reading less the earlier.
	later := histogram{les: h.les, counts: []float64{60, 100, 110, 130, 140}}
	d := later.since(h)
	if !slices.Equal(d.counts, []float64{10, 10, 11, 30, 40}) {
		t.Fatalf("since: %v", d.counts)
	}
	df := d.figures()
	if df.Count != 40 || *df.Within5ms != 0.25 || df.P99LeMs != nil || df.MaxLeMs != nil {
		t.Errorf("phase figures %+v: 10 samples above 1 s put p99 and max past the last bound", df)
	}
	if e := (histogram{les: h.les, counts: make([]float64, 5)}).figures(); e.Count != 0 || e.Within5ms != nil || e.P99LeMs != nil {
		t.Errorf("no samples: %+v", e)
	}
	before := map[string]histogram{histPieceLateness: h}
	after := map[string]histogram{histPieceLateness: later}
	if histDelta(before, after, histPieceLateness).Count != 40 || histDelta(before, map[string]histogram{}, histPieceLateness) != nil {
		t.Error("histDelta")
	}
}

func TestDripShape(t *testing.T) {
	for _, c := range []struct {
		body           int
		drip           time.Duration
		length, pieces int
	}{
		{10, 10 * time.Second, 15, 15}, {100, 10 * time.Second, 100, 100}, {1000, time.Second, 1000, 10},
		{0, 120 * time.Second, 15, 15}, {30, 250 * time.Millisecond, 30, 3}, {30, time.Millisecond, 30, 1},
	} {
		if l, p := dripShape(c.body, c.drip); l != c.length || p != c.pieces {
			t.Errorf("body %d drip %v: %d bytes in %d pieces, want %d in %d", c.body, c.drip, l, p, c.length, c.pieces)
		}
	}
	if q := dripQuery(10, 1500*time.Millisecond); q != "&body=10&drip=1.5" {
		t.Errorf("query %q", q)
	}
}

// shapeConfig is a small section-6 run against url; nothing below asserts a
// duration.
func shapeConfig(url string, phases phaseSet) config {
	cfg := testConfig(url)
	cfg.phases = phases
	cfg.n = 20
	cfg.timeout, cfg.spread = 300*time.Millisecond, 200*time.Millisecond
	cfg.parkSettle = 200 * time.Millisecond
	cfg.settle = 0
	cfg.dripBody, cfg.dripDur = 40, 500*time.Millisecond
	cfg.killthenTimeout = 20 * time.Second
	return cfg
}

func TestDripPhase(t *testing.T) {
	t.Parallel()
	cfg := shapeConfig(startFake(t).URL, phaseSet{drip: true})
	cfg.pid = os.Getpid() // the fake runs in this process
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.DripVerdict != soakPass || res.DripOK != 20 || res.DripErrorTotal != 0 || res.DripWritten != 20 || res.DripPieces != 5 {
		t.Fatalf("verdict %s ok %d errors %v written %d pieces %d", res.DripVerdict, res.DripOK, res.DripErrors, res.DripWritten, res.DripPieces)
	}
	if res.DripPieceSamples != 100 || res.DripPieceP99Ms == nil || res.DripHeadP50Ms == nil {
		t.Errorf("client figures: %d piece samples, p99 %v, headers p50 %v", res.DripPieceSamples, fnum(res.DripPieceP99Ms), fnum(res.DripHeadP50Ms))
	}
	if p, h := res.DripServerPieces, res.DripServerHeads; p == nil || p.Count != 100 || p.Within5ms == nil || h == nil || h.Count != 20 {
		t.Errorf("server figures: pieces %+v, headers %+v", p, h)
	}
	if res.DripRSSBeforeBytes == nil || res.DripRSSParkedBytes == nil || res.DripRSSPeakBytes == nil || res.DripRSSPerRequestBytes == nil ||
		res.DripRSSPeakPerRequestBytes == nil {
		t.Errorf("rss figures missing: %+v", res)
	}

	cfg = shapeConfig(startBrokenFake(t, "short_drip").URL, phaseSet{drip: true})
	if res, err = runPhases(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if res.DripVerdict != soakFail || res.DripOK != 0 || res.DripErrors["cut_200"] != 20 || !res.failed() {
		t.Errorf("a body one byte short: verdict %s ok %d errors %v", res.DripVerdict, res.DripOK, res.DripErrors)
	}
}

func TestDripCapacityPhase(t *testing.T) {
	t.Parallel()
	// The fake records every piece 100 ms late once more than 10 drip at once.
	cfg := shapeConfig(startBrokenFake(t, "late_when_busy").URL, phaseSet{dripCapacity: true})
	cfg.capSteps = []int{4, 30, 60}
	cfg.capBody, cfg.capDrip, cfg.capSpread = 20, 400*time.Millisecond, 0
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.CapSteps) != 2 || res.CapBasis != "server" || res.CapMaxN == nil || *res.CapMaxN != 4 || res.CapFirstMissN == nil || *res.CapFirstMissN != 30 {
		t.Fatalf("steps %+v basis %s max %s first miss %s", res.CapSteps, res.CapBasis, inum(res.CapMaxN), inum(res.CapFirstMissN))
	}
	good, bad := res.CapSteps[0], res.CapSteps[1]
	if !good.OnSchedule || good.OK != 4 || good.Server.Count != 16 || *good.WithinLimit != 1 || bad.OnSchedule || bad.OK != 30 || *bad.WithinLimit >= 0.99 {
		t.Errorf("steps: %+v %+v within %s, %+v %+v within %s", good, *good.Server, fnum(good.WithinLimit), bad, *bad.Server, fnum(bad.WithinLimit))
	}
	if res.CapPieces != 4 || res.CapLimitMs != 5 || res.failed() {
		t.Errorf("pieces %d limit %v failed %v: a capacity search never fails the run", res.CapPieces, res.CapLimitMs, res.failed())
	}

	// With -capacity-all every step runs; the first miss still decides.
	cfg.capAll, cfg.capSteps = true, []int{30, 4}
	if _, err = runPhases(t.Context(), cfg); err == nil {
		t.Fatal("steps out of order accepted")
	}
	cfg.capSteps = []int{4, 30, 31}
	if res, err = runPhases(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if len(res.CapSteps) != 3 || !res.CapSteps[0].OnSchedule || res.CapSteps[2].OnSchedule || *res.CapMaxN != 4 || *res.CapFirstMissN != 30 {
		t.Errorf("-capacity-all: steps %d, max %s, first miss %s", len(res.CapSteps), inum(res.CapMaxN), inum(res.CapFirstMissN))
	}
}

func TestFaultPhase(t *testing.T) {
	t.Parallel()
	thens := []string{"reset", "close", "garbage", "truncate", "503"}
	cfg := shapeConfig(startFake(t).URL, phaseSet{fault: true})
	cfg.faultThens, cfg.sameDeadline = thens, true
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.FaultVerdict != soakPass || len(res.FaultActions) != len(thens) || !res.FaultSameDeadline {
		t.Fatalf("verdict %s actions %+v", res.FaultVerdict, res.FaultActions)
	}
	for i, fa := range res.FaultActions {
		rst, fin := map[string]int{"reset": 20}[fa.Then], map[string]int{"close": 20}[fa.Then]
		if fa.Then != thens[i] || fa.Expected != 20 || fa.Written != 20 || fa.RST != rst || fa.FIN != fin || fa.Other != 20-rst-fin || fa.P99Ms == nil ||
			fa.Server == nil || fa.Server.Count != 20 {
			t.Errorf("then=%s: %+v", fa.Then, fa)
		}
	}

	cfg = shapeConfig(startBrokenFake(t, "close_as_reset").URL, phaseSet{fault: true})
	cfg.faultThens = []string{"reset", "close"}
	if res, err = runPhases(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if res.FaultVerdict != soakFail || len(res.FaultActions) != 2 || res.FaultActions[0].Expected != 20 ||
		res.FaultActions[1].Expected != 0 || res.FaultActions[1].RST != 20 || res.FaultActions[1].Seen[seenReset] != 20 {
		t.Errorf("close answered with resets: verdict %s, %+v", res.FaultVerdict, res.FaultActions)
	}
}

func TestKillthenPhase(t *testing.T) {
	t.Parallel()
	cfg := shapeConfig(startFake(t).URL, phaseSet{killthen: true})
	cfg.killthenBody = 30
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.KtVerdict != soakPass || res.KtWritten != 20 || res.KtListed == nil || *res.KtListed != 20 || len(res.KtActions) != 5 {
		t.Fatalf("verdict %s written %d listed %s actions %+v", res.KtVerdict, res.KtWritten, inum(res.KtListed), res.KtActions)
	}
	for _, a := range res.KtActions {
		kind, _ := expectedSeen(a.Then, true)
		if a.Kills != 4 || a.KillsOK != 4 || a.Right != 4 || a.Seen[kind] != 4 || a.P99Ms == nil || len(a.KillErrors) != 0 {
			t.Errorf("then=%s: %+v", a.Then, a)
		}
	}

	cfg = shapeConfig(startBrokenFake(t, "kill_ignores_then").URL, phaseSet{killthen: true})
	cfg.killThens = []string{"reset", "500"}
	if res, err = runPhases(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if res.KtVerdict != soakFail || res.KtActions[0].Right != 0 || res.KtActions[0].Seen["status_500"] != 10 || res.KtActions[1].Right != 10 {
		t.Errorf("kills that ignore then: verdict %s, %+v", res.KtVerdict, res.KtActions)
	}
}

// TestShapeCommandLine runs a fault phase through the command's entry point
// against a server that resets instead of closing: exit status 1, the JSON
// saying why.
func TestShapeCommandLine(t *testing.T) {
	t.Parallel()
	srv := startBrokenFake(t, "close_as_reset")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-url", srv.URL, "-phases", "fault", "-fault-then", "close", "-n", "10", "-timeout", "0.2", "-spread", "0",
		"-settle", "0"}, nil, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	var got struct {
		Verdict string        `json:"fault_verdict"`
		Actions []faultAction `json:"fault_actions"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line: %v\n%s", err, stdout.String())
	}
	if got.Verdict != soakFail || len(got.Actions) != 1 || got.Actions[0].RST != 10 || got.Actions[0].Then != "close" {
		t.Fatalf("report %+v", got)
	}
	if !strings.Contains(stdout.String(), "then=close") || !strings.Contains(stdout.String(), "VERDICT") {
		t.Fatalf("table:\n%s", stdout.String())
	}
}

func TestShapeFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"-phases", "drip,drip-capacity,fault,killthen", "-n", "7", "-body", "100", "-drip", "2.5",
		"-capacity-steps", "10,20", "-capacity-body", "50", "-capacity-drip", "5s", "-capacity-spread", "0", "-capacity-p99", "2ms", "-capacity-all",
		"-fault-then", "reset, 503", "-kill-then", "garbage", "-killthen-timeout", "30", "-killthen-body", "64"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := phaseSet{drip: true, dripCapacity: true, fault: true, killthen: true}
	if cfg.phases != want || cfg.phases.String() != "drip,drip-capacity,fault,killthen" || cfg.n != 7 || cfg.dripBody != 100 ||
		cfg.dripDur != 2500*time.Millisecond || !slices.Equal(cfg.capSteps, []int{10, 20}) || cfg.capBody != 50 ||
		cfg.capDrip != 5*time.Second || cfg.capSpread != 0 || cfg.capP99 != 2*time.Millisecond || !cfg.capAll ||
		!slices.Equal(cfg.faultThens, []string{"reset", "503"}) || !slices.Equal(cfg.killThens, []string{"garbage"}) ||
		cfg.killthenTimeout != 30*time.Second || cfg.killthenBody != 64 || cfg.largestWave() != 20 {
		t.Fatalf("%+v", cfg)
	}
	d := defaultConfig()
	if d.dripBody != 10 || d.dripDur != 10*time.Second || !slices.Equal(d.capSteps, []int{500, 1000, 2000, 5000, 10000, 19000}) ||
		d.capBody != 100 || d.capP99 != 5*time.Millisecond || !slices.Equal(d.faultThens, []string{"reset", "close"}) ||
		!slices.Equal(d.killThens, []string{"503", "reset", "close", "garbage", "truncate"}) || d.phases.drip {
		t.Fatalf("defaults %+v", d)
	}
	for _, args := range [][]string{
		{"-phases", "drip", "-drip", "0"}, {"-phases", "drip", "-body", "1048577"}, {"-phases", "drip", "-drip", "3599", "-spread", "1"},
		{"-phases", "drip-capacity", "-capacity-steps", "5,3"}, {"-phases", "drip-capacity", "-capacity-steps", "0,3"},
		{"-phases", "drip-capacity", "-capacity-steps", "a"}, {"-phases", "drip-capacity", "-capacity-p99", "0"},
		{"-phases", "fault", "-fault-then", "reset:2"}, {"-phases", "fault", "-fault-then", "bogus"}, {"-phases", "fault", "-fault-then", ""},
		{"-phases", "killthen", "-kill-then", "600"}, {"-phases", "killthen", "-killthen-timeout", "0"}, {"-phases", "fault", "-n", "0"},
		{"-phases", "dripping"},
	} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	var usage bytes.Buffer
	if _, _, err := parseFlags([]string{"-h"}, &usage); err == nil {
		t.Fatal("-h should return flag.ErrHelp")
	}
	for _, s := range []string{"drip-capacity", "-fault-then", "-kill-then", "-capacity-steps", "-body", "-drip duration|seconds"} {
		if !strings.Contains(usage.String(), s) {
			t.Errorf("usage lacks %q", s)
		}
	}
}
