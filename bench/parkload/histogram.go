package main

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The server's own view of lateness: a Prometheus histogram scraped from
// GET /metrics before and after a phase, the difference being the phase's
// samples. Both parkd and the twin expose parkd_piece_lateness_seconds and
// parkd_answer_lateness_seconds with the same buckets.

// Histograms read from /metrics.
const (
	histPieceLateness  = "parkd_piece_lateness_seconds"
	histAnswerLateness = "parkd_answer_lateness_seconds"
)

// histogram is the cumulative buckets of one histogram: counts[i] samples
// were at most les[i] seconds; the last bound is +Inf.
type histogram struct {
	les    []float64
	counts []float64
}

// parseHistogram reads name's buckets from Prometheus text; ok is false when
// it has none.
func parseHistogram(text []byte, name string) (h histogram, ok bool) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), name+"_bucket{")
		if !found {
			continue
		}
		labels, value, found := strings.Cut(rest, "} ")
		_, le, hasLE := strings.Cut(labels, `le="`)
		le, _, _ = strings.Cut(le, `"`)
		if !found || !hasLE {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		n, err2 := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err1 == nil && err2 == nil {
			bs = append(bs, bucket{bound, n})
		}
	}
	if len(bs) == 0 || !math.IsInf(slices.MaxFunc(bs, func(a, b bucket) int { return cmpFloat(a.le, b.le) }).le, 1) {
		return histogram{}, false
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmpFloat(a.le, b.le) })
	for _, b := range bs {
		h.les, h.counts = append(h.les, b.le), append(h.counts, b.n)
	}
	return h, true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// since is h less the samples of before, an earlier reading of the same
// histogram; a bucket before lacks counts whole.
func (h histogram) since(before histogram) histogram {
	out := histogram{les: h.les, counts: slices.Clone(h.counts)}
	for i, le := range h.les {
		if j := slices.Index(before.les, le); j >= 0 {
			out.counts[i] -= before.counts[j]
		}
	}
	return out
}

// total is the number of samples.
func (h histogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// within is the share of samples at most d, read at the largest bound not
// above d; nil without samples or such a bound.
func (h histogram) within(d time.Duration) *float64 {
	total := h.total()
	if total == 0 {
		return nil
	}
	var share *float64
	for i, le := range h.les {
		if le <= d.Seconds() {
			share = ptr(math.Round(h.counts[i]/total*1e6) / 1e6)
		}
	}
	return share
}

// quantileBound is the upper bound, in ms, of the bucket holding the q-th
// quantile (0 < q ≤ 1): the smallest bound with at least q of the samples at
// or below it. nil without samples or when that is only +Inf.
func (h histogram) quantileBound(q float64) *float64 {
	total := h.total()
	if total == 0 {
		return nil
	}
	for i, le := range h.les {
		if h.counts[i] >= q*total {
			if math.IsInf(le, 1) {
				return nil
			}
			return ptr(round3(le * 1000))
		}
	}
	return nil
}

// histFigures summarise one histogram's samples over a phase.
type histFigures struct {
	Count      float64  `json:"count"`
	Within5ms  *float64 `json:"within_5ms"`  // share of samples at most 5 ms late
	Within50ms *float64 `json:"within_50ms"` // at most 50 ms
	P99LeMs    *float64 `json:"p99_le_ms"`   // bound of the bucket holding the 99th percentile; null: above the last finite bound
	MaxLeMs    *float64 `json:"max_le_ms"`   // bound of the bucket holding the largest; null likewise
}

func (h histogram) figures() *histFigures {
	return &histFigures{
		Count:     h.total(),
		Within5ms: h.within(5 * time.Millisecond), Within50ms: h.within(50 * time.Millisecond),
		P99LeMs: h.quantileBound(0.99), MaxLeMs: h.quantileBound(1),
	}
}

// scrapeHistograms reads the lateness histograms from GET /metrics; ok is
// false when the endpoint cannot be read. A histogram the server lacks is
// missing from the map.
func scrapeHistograms(ctx context.Context, tgt target, dialTimeout time.Duration) (map[string]histogram, bool) {
	kc := newKAConn(tgt, "", dialTimeout)
	defer kc.close()
	ex, err := kc.do(ctx, appendRequest(nil, "GET", tgt, "/metrics", nil, true), 64<<20)
	if err != nil || ex.resp.status != 200 {
		return nil, false
	}
	out := map[string]histogram{}
	for _, name := range []string{histPieceLateness, histAnswerLateness} {
		if h, ok := parseHistogram(ex.resp.body, name); ok {
			out[name] = h
		}
	}
	return out, true
}

// histDelta is the figures of name over a phase, from readings before and
// after it; nil when either lacks it.
func histDelta(before, after map[string]histogram, name string) *histFigures {
	a, okA := after[name]
	b, okB := before[name]
	if !okA || !okB {
		return nil
	}
	return a.since(b).figures()
}
