package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// readRSS returns the VmRSS of process pid in bytes.
func readRSS(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(data)
}

// parseVmRSS finds "VmRSS:   12345 kB" in the text of /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// Metric names read from /metrics; any that are missing are left out.
const (
	metricGoroutines = "go_goroutines"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
)

// scrapeMetrics fetches GET /metrics on a fresh connection. ok is false when the
// endpoint is absent or unreachable, which callers skip silently.
func scrapeMetrics(ctx context.Context, tgt target, dialTimeout time.Duration) (vals map[string]float64, ok bool) {
	kc := newKAConn(tgt, "", dialTimeout)
	defer kc.close()
	ex, err := kc.do(ctx, appendRequest(nil, "GET", tgt, "/metrics", nil, true), 64<<20)
	if err != nil || ex.resp.status != 200 {
		return nil, false
	}
	return parseMetrics(ex.resp.body, metricGoroutines, metricHeapInuse), true
}

// parseMetrics reads unlabelled samples of the wanted names from Prometheus text.
func parseMetrics(text []byte, names ...string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, n := range names {
			if f[0] == n {
				if v, err := strconv.ParseFloat(f[1], 64); err == nil {
					out[n] = v
				}
			}
		}
	}
	return out
}
