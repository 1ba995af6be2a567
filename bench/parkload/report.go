package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// result holds every figure of a run. It is printed as a table and then, as the
// last line of stdout, as one JSON object whose keys never change: a figure that
// was not measured is null, an error table with no errors is {}.
type result struct {
	URL       string  `json:"url"`
	Phases    string  `json:"phases"`
	RunPrefix string  `json:"run_prefix"`
	Seed      uint64  `json:"seed"`
	Children  int     `json:"children"`
	Instances int     `json:"instances"` // the park phase spread over this many (-instances), else 1
	Aborted   bool    `json:"aborted"`
	DurationS float64 `json:"duration_s"`

	ParkN            int            `json:"park_n"`
	ParkSameDeadline bool           `json:"park_same_deadline"`
	ParkWritten      int            `json:"park_written"`
	ParkWriteS       *float64       `json:"park_write_s"` // phase start until every request was written
	ParkListed       *int           `json:"park_listed"`  // run's entries in serverStatus once parked
	ParkOK           int            `json:"park_ok"`
	ParkKilled       int            `json:"park_killed"`
	ParkErrorTotal   int            `json:"park_error_total"`
	ParkErrors       map[string]int `json:"park_errors"`
	LatenessSamples  int            `json:"lateness_samples"`
	LatenessP50Ms    *float64       `json:"lateness_p50_ms"`
	LatenessP99Ms    *float64       `json:"lateness_p99_ms"`
	LatenessMaxMs    *float64       `json:"lateness_max_ms"`
	LatenessMinMs    *float64       `json:"lateness_min_ms"`

	RSSBeforeBytes     *int64   `json:"rss_before_bytes"`
	RSSParkedBytes     *int64   `json:"rss_parked_bytes"`
	RSSPeakBytes       *int64   `json:"rss_peak_bytes"` // largest of the 250 ms polls during the park phase
	RSSAfterBytes      *int64   `json:"rss_after_bytes"`
	RSSGrowthBytes     *int64   `json:"rss_growth_bytes"`
	RSSPerRequestBytes *float64 `json:"rss_per_request_bytes"` // growth / park_n
	RSSPerRequestKB    *float64 `json:"rss_per_request_kb"`
	RSSPerListedBytes  *float64 `json:"rss_per_listed_bytes"` // growth / park_listed

	StatusSamples    int            `json:"status_samples"`
	StatusOK         int            `json:"status_ok"`
	StatusP50Ms      *float64       `json:"status_p50_ms"`
	StatusP99Ms      *float64       `json:"status_p99_ms"`
	StatusMaxMs      *float64       `json:"status_max_ms"`
	StatusEntries    *int           `json:"status_entries"`     // entries in the last answer
	StatusRunEntries *int           `json:"status_run_entries"` // of those, this run's parked requests
	StatusErrors     map[string]int `json:"status_errors"`

	KillsRequested int            `json:"kills_requested"`
	KillsAttempted int            `json:"kills_attempted"`
	KillsOK        int            `json:"kills_ok"` // kill answered 200 ok and the parked request 500 killed
	KillErrors     map[string]int `json:"kill_errors"`
	KillP50Ms      *float64       `json:"kill_p50_ms"`
	KillP99Ms      *float64       `json:"kill_p99_ms"`
	KillMaxMs      *float64       `json:"kill_max_ms"`
	// With -instances: the kills of requests on -url's instance, and of those
	// parked on another instance (killed across the cluster).
	KillOwnerN     int      `json:"kill_owner_n"`
	KillOwnerP50Ms *float64 `json:"kill_owner_p50_ms"`
	KillOwnerP99Ms *float64 `json:"kill_owner_p99_ms"`
	KillOwnerMaxMs *float64 `json:"kill_owner_max_ms"`
	KillOtherN     int      `json:"kill_other_n"`
	KillOtherP50Ms *float64 `json:"kill_other_p50_ms"`
	KillOtherP99Ms *float64 `json:"kill_other_p99_ms"`
	KillOtherMaxMs *float64 `json:"kill_other_max_ms"`

	TpDurationS *float64       `json:"tp_duration_s"`
	TpConns     int            `json:"tp_conns"`
	TpRequests  int            `json:"tp_requests"`
	TpOK        int            `json:"tp_ok"`
	TpRPS       *float64       `json:"tp_rps"`
	TpP50Ms     *float64       `json:"tp_p50_ms"`
	TpP99Ms     *float64       `json:"tp_p99_ms"`
	TpMaxMs     *float64       `json:"tp_max_ms"`
	TpErrors    map[string]int `json:"tp_errors"`

	MetricsAvailable     bool     `json:"metrics_available"`
	GoroutinesBefore     *float64 `json:"goroutines_before"`
	GoroutinesPeak       *float64 `json:"goroutines_peak"` // read once all requests are parked
	GoroutinesAfter      *float64 `json:"goroutines_after"`
	HeapInuseBeforeBytes *float64 `json:"heap_inuse_before_bytes"`
	HeapInusePeakBytes   *float64 `json:"heap_inuse_peak_bytes"`
	HeapInuseAfterBytes  *float64 `json:"heap_inuse_after_bytes"`

	SoakDurationS            *float64                   `json:"soak_duration_s"` // while actions were started
	SoakDrainS               *float64                   `json:"soak_drain_s"`    // then until every client was done
	SoakClients              int                        `json:"soak_clients"`
	SoakRequestTotal         int                        `json:"soak_request_total"`
	SoakRequests             map[string]int             `json:"soak_requests"` // by kind
	SoakAnswers              map[string]int             `json:"soak_answers"`  // park answers by class
	SoakLost                 int                        `json:"soak_lost"`
	SoakKillsOK              int                        `json:"soak_kills_ok"`
	SoakKillsFinished        int                        `json:"soak_kills_already_finished"` // 400 invalid connection Id
	SoakKillsUnknown         int                        `json:"soak_kills_unknown"`          // failed, or answered neither
	SoakHangups              int                        `json:"soak_hangups"`
	SoakHangupsHalfClose     int                        `json:"soak_hangups_half_close"`
	SoakHungUp               int                        `json:"soak_hung_up"` // hang-ups that got no answer
	SoakPipelinedBatches     int                        `json:"soak_pipelined_batches"`
	SoakPipelinedRequests    int                        `json:"soak_pipelined_requests"`
	SoakStatusPolls          int                        `json:"soak_status_polls"`
	SoakRequestsPolls        int                        `json:"soak_requests_polls"`
	SoakProbes               int                        `json:"soak_probes"` // kills of unknown ids checking a connection's next answer
	SoakConnects             int                        `json:"soak_connects"`
	SoakStaleRetries         int                        `json:"soak_stale_retries"`
	SoakEndEmptyAfterS       *float64                   `json:"soak_end_empty_after_s"` // serverStatus was {} this long after the clients were done
	SoakMetricsAvailable     bool                       `json:"soak_metrics_available"`
	SoakGoroutinesBefore     *float64                   `json:"soak_goroutines_before"`
	SoakGoroutinesAfter      *float64                   `json:"soak_goroutines_after"`
	SoakHeapInuseBeforeBytes *float64                   `json:"soak_heap_inuse_before_bytes"`
	SoakHeapInuseAfterBytes  *float64                   `json:"soak_heap_inuse_after_bytes"`
	SoakHeapObjectsBefore    *float64                   `json:"soak_heap_objects_before"`
	SoakHeapObjectsAfter     *float64                   `json:"soak_heap_objects_after"`
	SoakParkedBefore         *float64                   `json:"soak_parked_before"`
	SoakParkedAfter          *float64                   `json:"soak_parked_after"`
	SoakServerOK             *float64                   `json:"soak_server_ok"` // outcome counters' growth over the soak
	SoakServerKilled         *float64                   `json:"soak_server_killed"`
	SoakServerAbandoned      *float64                   `json:"soak_server_abandoned"`
	SoakServerRejected       *float64                   `json:"soak_server_rejected"`
	SoakServerShutdown       *float64                   `json:"soak_server_shutdown"`
	SoakChecks               map[string]string          `json:"soak_checks"` // pass, fail or skipped
	SoakViolationTotal       int                        `json:"soak_violation_total"`
	SoakViolations           map[violationKind]int      `json:"soak_violations"`
	SoakViolationExamples    map[violationKind][]string `json:"soak_violation_examples"` // up to 5 per kind
	SoakNotes                []string                   `json:"soak_notes"`
	SoakVerdict              string                     `json:"soak_verdict"` // PASS, FAIL, or "" without a soak

	// The drip phase (shape.go).
	DripN                      int            `json:"drip_n"`
	DripBody                   int            `json:"drip_body"`
	DripS                      float64        `json:"drip_s"`
	DripPieces                 int            `json:"drip_pieces"`
	DripWritten                int            `json:"drip_written"`
	DripListed                 *int           `json:"drip_listed"`
	DripOK                     int            `json:"drip_ok"` // a 200 and the padded body whole, valid JSON
	DripErrorTotal             int            `json:"drip_error_total"`
	DripErrors                 map[string]int `json:"drip_errors"`
	DripHeadP50Ms              *float64       `json:"drip_head_p50_ms"` // status line arrived − (request written + timeout)
	DripHeadP99Ms              *float64       `json:"drip_head_p99_ms"`
	DripHeadMaxMs              *float64       `json:"drip_head_max_ms"`
	DripPieceSamples           int            `json:"drip_piece_samples"`
	DripPieceP50Ms             *float64       `json:"drip_piece_p50_ms"` // piece k arrived − (request written + timeout + D·k/n)
	DripPieceP99Ms             *float64       `json:"drip_piece_p99_ms"`
	DripPieceMaxMs             *float64       `json:"drip_piece_max_ms"`
	DripRSSBeforeBytes         *int64         `json:"drip_rss_before_bytes"`
	DripRSSParkedBytes         *int64         `json:"drip_rss_parked_bytes"`
	DripRSSPeakBytes           *int64         `json:"drip_rss_peak_bytes"`
	DripRSSPerRequestBytes     *float64       `json:"drip_rss_per_request_bytes"`      // (parked − before) / n
	DripRSSPeakPerRequestBytes *float64       `json:"drip_rss_peak_per_request_bytes"` // (peak − before) / n
	DripServerPieces           *histFigures   `json:"drip_server_pieces"`              // parkd_piece_lateness_seconds over the phase
	DripServerHeads            *histFigures   `json:"drip_server_heads"`               // parkd_answer_lateness_seconds over the phase
	DripVerdict                string         `json:"drip_verdict"`

	// The drip-capacity phase.
	CapBody       int       `json:"cap_body"`
	CapDripS      float64   `json:"cap_drip_s"`
	CapPieces     int       `json:"cap_pieces"`
	CapLimitMs    float64   `json:"cap_limit_ms"`
	CapBasis      string    `json:"cap_basis"` // "server": its histogram decided; "client": it had none
	CapSteps      []capStep `json:"cap_steps"`
	CapMaxN       *int      `json:"cap_max_n"`        // the most dripping requests kept on schedule
	CapFirstMissN *int      `json:"cap_first_miss_n"` // the first count that was not
	CapNotes      []string  `json:"cap_notes"`

	// The fault phase.
	FaultN            int           `json:"fault_n"`
	FaultSameDeadline bool          `json:"fault_same_deadline"`
	FaultActions      []faultAction `json:"fault_actions"`
	FaultVerdict      string        `json:"fault_verdict"`

	// The killthen phase.
	KtN        int        `json:"kt_n"`
	KtWritten  int        `json:"kt_written"`
	KtListed   *int       `json:"kt_listed"`
	KtTimeoutS float64    `json:"kt_timeout_s"`
	KtBody     int        `json:"kt_body"`
	KtActions  []ktAction `json:"kt_actions"`
	KtVerdict  string     `json:"kt_verdict"`

	// The event stream and the server's CPU time, one entry per phase
	// that parked a wave with -subscribers, -stuck-subscriber or -pid
	// (streams.go).
	Streams []*streamFigures `json:"streams"`
}

// failed reports whether a phase that checks what it saw failed.
func (r *result) failed() bool {
	for _, v := range []string{r.SoakVerdict, r.DripVerdict, r.FaultVerdict, r.KtVerdict} {
		if v == soakFail {
			return true
		}
	}
	for _, s := range r.Streams {
		if s.Verdict == soakFail {
			return true
		}
	}
	return false
}

func newResult() *result {
	return &result{
		ParkErrors:   map[string]int{},
		StatusErrors: map[string]int{},
		KillErrors:   map[string]int{},
		TpErrors:     map[string]int{},

		SoakRequests:          map[string]int{},
		SoakAnswers:           map[string]int{},
		SoakChecks:            map[string]string{},
		SoakViolations:        map[violationKind]int{},
		SoakViolationExamples: map[violationKind][]string{},

		DripErrors:   map[string]int{},
		CapSteps:     []capStep{},
		CapNotes:     []string{},
		FaultActions: []faultAction{},
		KtActions:    []ktAction{},
		Streams:      []*streamFigures{},
	}
}

// writeReport prints the table and then the JSON object as the last line.
func writeReport(w io.Writer, r *result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(section, figure, value string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", section, figure, value) }
	row("run", "url", r.URL)
	row("", "phases", r.Phases)
	row("", "prefix / seed", r.RunPrefix+" / "+strconv.FormatUint(r.Seed, 10))
	row("", "children", strconv.Itoa(r.Children))
	row("", "duration", fmt.Sprintf("%.2f s", r.DurationS))
	if r.Aborted {
		row("", "ABORTED", "max-duration or signal ended the run early")
	}
	if r.ParkN > 0 {
		row("park", "requests", fmt.Sprintf("%d (same deadline: %v)", r.ParkN, r.ParkSameDeadline))
		row("", "written", fmt.Sprintf("%d in %s s", r.ParkWritten, fnum(r.ParkWriteS)))
		row("", "listed by serverStatus", inum(r.ParkListed))
		row("", "ok / killed / errors", fmt.Sprintf("%d / %d / %d", r.ParkOK, r.ParkKilled, r.ParkErrorTotal))
		row("", "errors by kind", kinds(r.ParkErrors))
		row("", "lateness p50/p99/max ms", triple(r.LatenessP50Ms, r.LatenessP99Ms, r.LatenessMaxMs)+fmt.Sprintf("  (min %s, %d samples)", fnum(r.LatenessMinMs), r.LatenessSamples))
	}
	if r.RSSBeforeBytes != nil {
		row("server rss", "before / parked / peak / after", strings.Join([]string{mb(r.RSSBeforeBytes), mb(r.RSSParkedBytes), mb(r.RSSPeakBytes), mb(r.RSSAfterBytes)}, " / "))
		row("", "growth per parked request", fmt.Sprintf("%s B = %s KB (per listed: %s B)", fnum(r.RSSPerRequestBytes), fnum(r.RSSPerRequestKB), fnum(r.RSSPerListedBytes)))
	}
	if r.StatusSamples > 0 {
		row("status", "samples ok", fmt.Sprintf("%d of %d", r.StatusOK, r.StatusSamples))
		row("", "latency p50/p99/max ms", triple(r.StatusP50Ms, r.StatusP99Ms, r.StatusMaxMs))
		row("", "entries (this run)", inum(r.StatusEntries)+" ("+inum(r.StatusRunEntries)+")")
		row("", "errors by kind", kinds(r.StatusErrors))
	}
	if r.KillsRequested > 0 {
		row("kill", "requested / attempted / ok", fmt.Sprintf("%d / %d / %d", r.KillsRequested, r.KillsAttempted, r.KillsOK))
		row("", "kill→500 p50/p99/max ms", triple(r.KillP50Ms, r.KillP99Ms, r.KillMaxMs))
		if r.KillOwnerN+r.KillOtherN > 0 {
			row("", "on the owner: n, p50/p99/max ms", fmt.Sprintf("%d, %s", r.KillOwnerN, triple(r.KillOwnerP50Ms, r.KillOwnerP99Ms, r.KillOwnerMaxMs)))
			row("", "from another instance: n, p50/p99/max ms", fmt.Sprintf("%d, %s", r.KillOtherN, triple(r.KillOtherP50Ms, r.KillOtherP99Ms, r.KillOtherMaxMs)))
		}
		row("", "errors by kind", kinds(r.KillErrors))
	}
	if r.TpDurationS != nil {
		row("throughput", "conns / duration", fmt.Sprintf("%d / %s s", r.TpConns, fnum(r.TpDurationS)))
		row("", "requests / ok", fmt.Sprintf("%d / %d", r.TpRequests, r.TpOK))
		row("", "req/s", fnum(r.TpRPS))
		row("", "latency p50/p99/max ms", triple(r.TpP50Ms, r.TpP99Ms, r.TpMaxMs))
		row("", "errors by kind", kinds(r.TpErrors))
	}
	if r.MetricsAvailable {
		row("metrics", "goroutines before/peak/after", triple(r.GoroutinesBefore, r.GoroutinesPeak, r.GoroutinesAfter))
		row("", "heap in use before/peak/after", strings.Join([]string{mbf(r.HeapInuseBeforeBytes), mbf(r.HeapInusePeakBytes), mbf(r.HeapInuseAfterBytes)}, " / "))
	}
	if r.SoakVerdict != "" {
		soakRows(row, r)
	}
	shapeRows(row, r)
	for _, s := range r.Streams {
		streamRows(row, s)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}

// soakRows prints the soak's figures, violations with examples, and its verdict.
func soakRows(row func(section, figure, value string), r *result) {
	row("soak", "clients / duration / drain", fmt.Sprintf("%d / %s s / %s s", r.SoakClients, fnum(r.SoakDurationS), fnum(r.SoakDrainS)))
	row("", "requests", fmt.Sprintf("%d: %s probes=%d", r.SoakRequestTotal, kinds(r.SoakRequests), r.SoakProbes))
	row("", "park answers", kinds(r.SoakAnswers)+fmt.Sprintf("  (lost %d)", r.SoakLost))
	row("", "kills ok / already finished / unknown", fmt.Sprintf("%d / %d / %d", r.SoakKillsOK, r.SoakKillsFinished, r.SoakKillsUnknown))
	row("", "hang-ups (half-close) / unanswered", fmt.Sprintf("%d (%d) / %d", r.SoakHangups, r.SoakHangupsHalfClose, r.SoakHungUp))
	row("", "pipelined batches / requests", fmt.Sprintf("%d / %d", r.SoakPipelinedBatches, r.SoakPipelinedRequests))
	row("", "polls serverStatus / requests", fmt.Sprintf("%d / %d", r.SoakStatusPolls, r.SoakRequestsPolls))
	row("", "connects / stale retries", fmt.Sprintf("%d / %d", r.SoakConnects, r.SoakStaleRetries))
	row("", "serverStatus {} after", fnum(r.SoakEndEmptyAfterS)+" s")
	if r.SoakMetricsAvailable {
		row("", "server goroutines before/after", fnum(r.SoakGoroutinesBefore)+" / "+fnum(r.SoakGoroutinesAfter))
		row("", "server heap in use before/after", mbf(r.SoakHeapInuseBeforeBytes)+" / "+mbf(r.SoakHeapInuseAfterBytes))
		row("", "server heap objects before/after", fnum(r.SoakHeapObjectsBefore)+" / "+fnum(r.SoakHeapObjectsAfter))
		row("", "server parked before/after", fnum(r.SoakParkedBefore)+" / "+fnum(r.SoakParkedAfter))
		row("", "server ok/killed/abandoned/rejected/shutdown", strings.Join([]string{fnum(r.SoakServerOK), fnum(r.SoakServerKilled),
			fnum(r.SoakServerAbandoned), fnum(r.SoakServerRejected), fnum(r.SoakServerShutdown)}, " / "))
		row("", "client ok/killed/hung up/503", fmt.Sprintf("%d / %d / %d / %d", r.SoakAnswers["ok"], r.SoakAnswers["killed"], r.SoakHungUp, r.SoakAnswers["busy_503"]))
	}
	var checks []string
	for _, k := range slices.Sorted(maps.Keys(r.SoakChecks)) {
		checks = append(checks, k+"="+r.SoakChecks[k])
	}
	row("", "checks", strings.Join(checks, " "))
	row("", "violations", fmt.Sprintf("%d: %s", r.SoakViolationTotal, kinds(r.SoakViolations)))
	for _, k := range slices.Sorted(maps.Keys(r.SoakViolationExamples)) {
		for _, ex := range r.SoakViolationExamples[k] {
			row("", "  "+string(k), ex)
		}
	}
	for _, n := range r.SoakNotes {
		row("", "note", n)
	}
	row("", "VERDICT", r.SoakVerdict)
}

func fnum(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', -1, 64)
}

func inum(v *int) string {
	if v == nil {
		return "-"
	}
	return strconv.Itoa(*v)
}

func triple(a, b, c *float64) string { return fnum(a) + " / " + fnum(b) + " / " + fnum(c) }

func mb(v *int64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f MB", float64(*v)/(1<<20))
}

func mbf(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f MB", *v/(1<<20))
}

func kinds[K ~string](m map[K]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// shapeRows prints the figures of the section-6 phases that ran.
func shapeRows(row func(section, figure, value string), r *result) {
	if r.DripVerdict != "" {
		row("drip", "requests / body / drip / pieces", fmt.Sprintf("%d / %d B / %s s / %d", r.DripN, r.DripBody, strconv.FormatFloat(r.DripS, 'f', -1, 64), r.DripPieces))
		row("", "written / listed", fmt.Sprintf("%d / %s", r.DripWritten, inum(r.DripListed)))
		row("", "whole / errors", fmt.Sprintf("%d / %d: %s", r.DripOK, r.DripErrorTotal, kinds(r.DripErrors)))
		row("", "headers late p50/p99/max ms", triple(r.DripHeadP50Ms, r.DripHeadP99Ms, r.DripHeadMaxMs))
		row("", "pieces late p50/p99/max ms", triple(r.DripPieceP50Ms, r.DripPieceP99Ms, r.DripPieceMaxMs)+fmt.Sprintf("  (%d samples)", r.DripPieceSamples))
		if r.DripRSSBeforeBytes != nil {
			row("", "rss before / parked / peak", strings.Join([]string{mb(r.DripRSSBeforeBytes), mb(r.DripRSSParkedBytes), mb(r.DripRSSPeakBytes)}, " / "))
			row("", "rss per request parked / peak", fnum(r.DripRSSPerRequestBytes)+" B / "+fnum(r.DripRSSPeakPerRequestBytes)+" B")
		}
		row("", "server: pieces late", histRow(r.DripServerPieces))
		row("", "server: headers late", histRow(r.DripServerHeads))
		row("", "VERDICT", r.DripVerdict)
	}
	if r.CapBasis != "" || len(r.CapSteps) > 0 {
		row("drip-capacity", "body / drip / pieces / limit", fmt.Sprintf("%d B / %s s / %d / p99 ≤ %s ms (%s side)", r.CapBody,
			strconv.FormatFloat(r.CapDripS, 'f', -1, 64), r.CapPieces, fnum(&r.CapLimitMs), r.CapBasis))
		for _, st := range r.CapSteps {
			row("", fmt.Sprintf("n=%d", st.N), fmt.Sprintf("on schedule %v; whole %d, errors %s; within limit %s; server %s; client p50/p99/max %s ms",
				st.OnSchedule, st.OK, kinds(st.Errors), fnum(st.WithinLimit), histRow(st.Server), triple(st.ClientP50Ms, st.ClientP99Ms, st.ClientMaxMs)))
		}
		row("", "most kept on schedule / first missed", inum(r.CapMaxN)+" / "+inum(r.CapFirstMissN))
		for _, n := range r.CapNotes {
			row("", "note", n)
		}
	}
	if r.FaultVerdict != "" {
		row("fault", "requests per action / same deadline", fmt.Sprintf("%d / %v", r.FaultN, r.FaultSameDeadline))
		for _, fa := range r.FaultActions {
			row("", "then="+fa.Then, fmt.Sprintf("expected %d of %d (written %d): rst %d, fin_empty %d, other %d; seen %s",
				fa.Expected, fa.N, fa.Written, fa.RST, fa.FIN, fa.Other, kinds(fa.Seen)))
			row("", "  seen late p50/p99/max", triple(fa.P50Ms, fa.P99Ms, fa.MaxMs)+" ms (client side)")
			row("", "  server: applied late", histRow(fa.Server))
		}
		row("", "VERDICT", r.FaultVerdict)
	}
	if r.KtVerdict != "" {
		row("killthen", "requests / written / listed", fmt.Sprintf("%d / %d / %s (timeout %s s, body %d)", r.KtN, r.KtWritten, inum(r.KtListed),
			strconv.FormatFloat(r.KtTimeoutS, 'f', -1, 64), r.KtBody))
		for _, a := range r.KtActions {
			row("", "then="+a.Then, fmt.Sprintf("right %d of %d (kills ok %d, errors %s); seen %s; kill→effect p50/p99/max %s ms",
				a.Right, a.Kills, a.KillsOK, kinds(a.KillErrors), kinds(a.Seen), triple(a.P50Ms, a.P99Ms, a.MaxMs)))
		}
		row("", "VERDICT", r.KtVerdict)
	}
}

// histRow shows a server histogram's figures over a phase.
func histRow(h *histFigures) string {
	if h == nil {
		return "- (no histogram in /metrics)"
	}
	pct := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(100**v, 'f', 2, 64) + "%"
	}
	bound := func(v *float64) string {
		if v == nil {
			return "> last bucket"
		}
		return "≤ " + fnum(v) + " ms"
	}
	if h.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("%.0f samples, %s ≤ 5 ms, %s ≤ 50 ms, p99 %s, max %s", h.Count, pct(h.Within5ms), pct(h.Within50ms), bound(h.P99LeMs), bound(h.MaxLeMs))
}

// streamRows prints one phase's event-stream figures and the server's CPU
// time over it.
func streamRows(row func(section, figure, value string), s *streamFigures) {
	sec := "events: " + s.Phase
	row(sec, "server CPU over the phase", fnum(s.CPUS)+" s in "+fnum(s.WallS)+" s")
	if s.Verdict == "" {
		return
	}
	if s.Subscribers > 0 {
		row("", "subscribers open", fmt.Sprintf("%d of %d (retry %s ms, keep-alives %d)", s.Opened, s.Subscribers, i64num(s.RetryMs), s.KeepAlives))
		row("", "expected per subscriber", fmt.Sprintf("%d parked, %d finished (%d requests unknown)", s.ExpectedParked, s.ExpectedFinished, s.UnknownRequests))
		row("", "seen per subscriber", fmt.Sprintf("parked %s…%s, finished %s…%s; %d delivered, %d foreign",
			inum(s.ParkedMin), inum(s.ParkedMax), inum(s.FinishedMin), inum(s.FinishedMax), s.Delivered, s.Foreign))
		row("", "lost parked / finished / unexpected", fmt.Sprintf("%d / %d / %d; no loss: %s", s.LostParked, s.LostFinished, s.Unexpected, boolStr(s.NoLoss)))
		row("", "lateness p50/p99/max ms (±1)", triple(s.LateP50Ms, s.LateP99Ms, s.LateMaxMs)+
			fmt.Sprintf("  (min %s; parked p99 %s, finished p99 %s; %d samples)", fnum(s.LateMinMs), fnum(s.ParkedP99Ms), fnum(s.FinishedP99Ms), s.LateSamples))
		row("", "caught up after last answer", fnum(s.CaughtUpS)+" s")
	}
	if st := s.Stuck; st != nil {
		row("", "stuck subscriber", fmt.Sprintf("opened %v, dropped %v (%s), %d events received, %d bytes", st.Opened, st.Dropped, st.End, st.Received, st.DrainedBytes))
		row("", "  dropped after phase start", fmt.Sprintf("%s…%s s; %s published by then, lag %s", fnum(st.DropAfterLowS), fnum(st.DropAfterS), fnum(st.PublishedAtDrop), fnum(st.LagAtDrop)))
		row("", "  server side before the drain", fmt.Sprintf("%s, %s bytes unsent; drain took %s s", st.ServerState, i64num(st.ServerUnsent), fnum(st.DrainS)))
	}
	row("", "server subscribers before/after", fmt.Sprintf("%s / %s (back after %s s)", fnum(s.SubscribersBefore), fnum(s.SubscribersAfter), fnum(s.GaugeBackS)))
	row("", "server dropped before/after", fnum(s.DroppedBefore)+" / "+fnum(s.DroppedAfter))
	row("", "server published before/after", fnum(s.PublishedBefore)+" / "+fnum(s.PublishedAfter))
	row("", "server goroutines before/after", fnum(s.GoroutinesBefore)+" / "+fnum(s.GoroutinesAfter))
	row("", "problems", fmt.Sprintf("%d: %s", s.Problems, kinds(s.Errors)))
	for _, ex := range s.Examples {
		row("", "  example", ex)
	}
	row("", "VERDICT", s.Verdict)
}

func i64num(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func boolStr(v *bool) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatBool(*v)
}
