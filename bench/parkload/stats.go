package main

import (
	"math"
	"slices"
	"time"
)

// clock stamps instants as Unix nanoseconds read from the wall clock once per
// process and advanced by the monotonic clock since. Stamps from the parent and
// its children thus compare (kill→500 spans two processes) while a wall-clock step
// during the run cannot distort a measured interval.
type clock struct {
	base time.Time
	wall int64
}

func newClock() clock {
	t := time.Now()
	return clock{base: t, wall: t.UnixNano()}
}

// now is the stamp of the present instant.
func (c clock) now() int64 { return c.at(time.Now()) }

// at is the stamp of t, a reading taken with time.Now in this process.
func (c clock) at(t time.Time) int64 { return c.wall + int64(t.Sub(c.base)) }

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted samples:
// the smallest sample with at least p% of the samples at or below it.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p * float64(n) / 100))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// dist summarises samples; nil fields mean there were none.
type dist struct {
	n                  int
	p50, p99, max, min *float64
}

// summarize sorts samples in place and takes the figures reported for them.
func summarize(samples []float64) dist {
	d := dist{n: len(samples)}
	if len(samples) == 0 {
		return d
	}
	slices.Sort(samples)
	d.p50 = ptr(round3(percentile(samples, 50)))
	d.p99 = ptr(round3(percentile(samples, 99)))
	d.max = ptr(round3(samples[len(samples)-1]))
	d.min = ptr(round3(samples[0]))
	return d
}

// round3 keeps three decimals: microseconds when the unit is milliseconds.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func ptr[T any](v T) *T { return &v }

// nsToMs converts a stamp difference to milliseconds.
func nsToMs(ns int64) float64 { return float64(ns) / 1e6 }
