package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// config describes one run. runPhases takes it whole, so tests drive the tool without a
// subprocess and the flags are only a thin layer over it.
type config struct {
	url                string
	phases             phaseSet
	n                  int
	timeout            time.Duration // base timeout of a parked request
	spread             time.Duration // timeouts are drawn from [timeout, timeout+spread]
	sameDeadline       bool          // every parked request ends at phase start + timeout + spread
	sources            int           // local addresses 127.0.0.1 … 127.0.0.sources
	dialConcurrency    int
	dialTimeout        time.Duration
	maxDuration        time.Duration
	pid                int // server process whose VmRSS is read; 0 = none
	statusSamples      int
	kills              int
	killMinRemaining   time.Duration
	throughputDuration time.Duration
	throughputConns    int
	soakDuration       time.Duration // actions of the churn soak are started for this long
	soakClients        int
	metrics            bool
	settle             time.Duration // wait before the final RSS and /metrics readings
	parkSettle         time.Duration // longest wait for serverStatus to list the parked requests
	seed               uint64        // 0 = random
	samplesOut         string        // CSV file for one row per parked request; "" = none

	// perProcessCap forces the parked connections of one process below the
	// open-file limit, so tests can exercise the child-process split with small n.
	perProcessCap int
	// childExe is the binary re-executed as a child; empty means os.Executable().
	childExe string
	// log receives progress lines; nil means none.
	log io.Writer
}

// phaseSet selects which parts of a run happen.
type phaseSet struct {
	park, status, kill, throughput, soak bool
}

func (p phaseSet) String() string {
	var names []string
	for _, ph := range []struct {
		on   bool
		name string
	}{{p.park, "park"}, {p.status, "status"}, {p.kill, "kill"}, {p.throughput, "throughput"}, {p.soak, "soak"}} {
		if ph.on {
			names = append(names, ph.name)
		}
	}
	return strings.Join(names, ",")
}

// parsePhases reads a comma-separated list such as "park,status,kill,throughput" or "soak".
func parsePhases(s string) (phaseSet, error) {
	var p phaseSet
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(strings.ToLower(f)) {
		case "park":
			p.park = true
		case "status":
			p.status = true
		case "kill":
			p.kill = true
		case "throughput":
			p.throughput = true
		case "soak":
			p.soak = true
		case "":
		default:
			return phaseSet{}, fmt.Errorf("unknown phase %q (known: park, status, kill, throughput, soak)", f)
		}
	}
	return p, nil
}

// defaultConfig holds the defaults of the command-line flags.
func defaultConfig() config {
	return config{
		url:                "http://127.0.0.1:8080",
		phases:             phaseSet{park: true, status: true, kill: true, throughput: true},
		n:                  1000,
		timeout:            2 * time.Second,
		spread:             10 * time.Second,
		sources:            4,
		dialConcurrency:    200,
		dialTimeout:        10 * time.Second,
		maxDuration:        5 * time.Minute,
		statusSamples:      20,
		kills:              200,
		killMinRemaining:   3 * time.Second,
		throughputDuration: 10 * time.Second,
		throughputConns:    32,
		soakDuration:       time.Minute,
		soakClients:        300,
		settle:             2 * time.Second,
		parkSettle:         time.Second,
	}
}

// maxTimeout is parkd's default maximum; larger timeouts would only measure 400s.
const maxTimeout = time.Hour

func (c *config) validate() error {
	switch {
	case c.n < 1 && c.phases.park:
		return errors.New("-n must be at least 1")
	case c.timeout < 0 || c.spread < 0:
		return errors.New("-timeout and -spread must not be negative")
	case c.timeout+c.spread > maxTimeout:
		return errors.New("-timeout plus -spread must not exceed 1h")
	case c.sources < 1 || c.sources > 254:
		return errors.New("-sources must be between 1 and 254")
	case c.dialConcurrency < 1:
		return errors.New("-dial-concurrency must be at least 1")
	case c.dialTimeout <= 0 || c.maxDuration <= 0:
		return errors.New("-dial-timeout and -max-duration must be positive")
	case c.pid < 0:
		return errors.New("-pid must not be negative")
	case c.statusSamples < 0 || c.kills < 0 || c.throughputConns < 0 || c.perProcessCap < 0:
		return errors.New("counts must not be negative")
	case c.throughputDuration < 0 || c.settle < 0 || c.parkSettle < 0 || c.killMinRemaining < 0:
		return errors.New("durations must not be negative")
	case c.phases.kill && !c.phases.park:
		return errors.New("the kill phase needs the park phase")
	case c.phases.throughput && c.throughputConns < 1 && c.throughputDuration > 0:
		return errors.New("-throughput-conns must be at least 1")
	case c.phases.soak && (c.soakDuration <= 0 || c.soakClients < 1):
		return errors.New("-soak-duration must be positive and -soak-clients at least 1")
	}
	if c.phases == (phaseSet{}) {
		return errors.New("-phases selects nothing")
	}
	_, err := parseTarget(c.url)
	return err
}

// target is where requests go: the address dialled, the Host header and a path prefix.
type target struct {
	dial string
	host string
	base string
	ipv6 bool
}

// parseTarget accepts only loopback targets: this tool opens tens of thousands of
// connections and must never aim them at another machine.
func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("-url: %v", err)
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("-url %q: only http:// is supported", raw)
	}
	if u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
		return target{}, fmt.Errorf("-url %q: give scheme, host, port and at most a path", raw)
	}
	host := u.Hostname()
	var ip net.IP
	if strings.EqualFold(host, "localhost") {
		ip = net.IPv4(127, 0, 0, 1)
	} else {
		ip = net.ParseIP(host)
	}
	if ip == nil || !ip.IsLoopback() {
		return target{}, fmt.Errorf("-url %q: host must be loopback (127.0.0.0/8, ::1 or localhost)", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return target{}, fmt.Errorf("-url %q: bad port", raw)
	}
	v6 := ip.To4() == nil
	if !v6 {
		ip = ip.To4()
	}
	return target{
		dial: net.JoinHostPort(ip.String(), port),
		host: u.Host,
		base: strings.TrimRight(u.EscapedPath(), "/"),
		ipv6: v6,
	}, nil
}

// sourceIPs lists the local addresses to spread connections over. Every 127.x
// address is loopback on Linux, and each brings its own ~28k ephemeral ports.
func sourceIPs(k int, ipv6 bool) []string {
	if ipv6 {
		return []string{"::1"}
	}
	out := make([]string, k)
	for i := range out {
		out[i] = sourceAddr(i, k)
	}
	return out
}

// sourceAddr is the local address of the i-th connection: a round robin over k.
func sourceAddr(i, k int) string {
	return "127.0.0." + strconv.Itoa(i%k+1)
}

// secondsFlag accepts a Go duration ("2s", "1500ms") or decimal seconds ("2", "0.25").
type secondsFlag struct{ d *time.Duration }

func (s secondsFlag) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s secondsFlag) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil && !strings.ContainsAny(v, "eEnNiI") {
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration like 2s or decimal seconds like 0.25")
	}
	*s.d = d
	return nil
}

// hiddenFlag reports the internal flags left out of the usage: -child runs one
// worker for a parent, -max-per-process forces the split in tests.
func hiddenFlag(name string) bool {
	return name == "child" || name == "max-per-process"
}

// parseFlags turns argv into a config; child reports the hidden -child mode.
func parseFlags(args []string, stderr io.Writer) (cfg config, child bool, err error) {
	cfg = defaultConfig()
	fs := flag.NewFlagSet("parkload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	phases := cfg.phases.String()
	fs.StringVar(&cfg.url, "url", cfg.url, "server base URL; loopback only")
	fs.StringVar(&phases, "phases", phases, "comma-separated phases: park,status,kill,throughput,soak")
	fs.IntVar(&cfg.n, "n", cfg.n, "parked requests, one TCP connection each")
	fs.Var(secondsFlag{&cfg.timeout}, "timeout", "base timeout of a parked request (duration or seconds)")
	fs.Var(secondsFlag{&cfg.spread}, "spread", "timeouts are uniform over [timeout, timeout+spread], in ms steps")
	fs.BoolVar(&cfg.sameDeadline, "same-deadline", false, "give every parked request one absolute deadline: phase start + timeout + spread")
	fs.IntVar(&cfg.sources, "sources", cfg.sources, "local source addresses 127.0.0.1 … 127.0.0.K")
	fs.IntVar(&cfg.dialConcurrency, "dial-concurrency", cfg.dialConcurrency, "parked connections being opened at once")
	fs.Var(secondsFlag{&cfg.dialTimeout}, "dial-timeout", "give up on one connect after this long")
	fs.Var(secondsFlag{&cfg.maxDuration}, "max-duration", "bound on the whole run")
	fs.IntVar(&cfg.pid, "pid", 0, "server pid: report its RSS from /proc/PID/status")
	fs.IntVar(&cfg.statusSamples, "status-samples", cfg.statusSamples, "timed GET /api/serverStatus calls while parked")
	fs.IntVar(&cfg.kills, "kills", cfg.kills, "parked requests to kill with PUT /api/kill")
	fs.Var(secondsFlag{&cfg.killMinRemaining}, "kill-min-remaining", "only kill requests with at least this long left")
	fs.Var(secondsFlag{&cfg.throughputDuration}, "throughput-duration", "length of the throughput phase; 0 skips it")
	fs.IntVar(&cfg.throughputConns, "throughput-conns", cfg.throughputConns, "keep-alive connections in the throughput phase")
	fs.Var(secondsFlag{&cfg.soakDuration}, "soak-duration", "how long the soak phase starts new actions")
	fs.IntVar(&cfg.soakClients, "soak-clients", cfg.soakClients, "concurrent clients of the soak phase, two connections each at most")
	fs.BoolVar(&cfg.metrics, "metrics", false, "scrape GET /metrics before, once all are parked (the peak), and after -settle")
	fs.Var(secondsFlag{&cfg.settle}, "settle", "wait before the final RSS and metrics readings")
	fs.Var(secondsFlag{&cfg.parkSettle}, "park-settle", "longest wait for serverStatus to list every parked request")
	fs.Uint64Var(&cfg.seed, "seed", 0, "random seed for timeouts and kill choice; 0 = random")
	fs.StringVar(&cfg.samplesOut, "samples-out", "", "write one CSV row per parked request to this file (times in ms from phase start)")
	fs.BoolVar(&child, "child", false, "internal: run one worker with a spec read from stdin")
	fs.IntVar(&cfg.perProcessCap, "max-per-process", 0, "internal: parked connections per process before splitting")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: parkload -url http://127.0.0.1:PORT [flags]\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlag(f.Name) {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if _, ok := f.Value.(secondsFlag); ok {
				name = "duration|seconds"
			}
			fmt.Fprintf(stderr, "  -%s\n    \t%s (default %s)\n", strings.TrimSpace(f.Name+" "+name), usage, f.DefValue)
		})
	}
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if child {
		return cfg, true, nil
	}
	if cfg.phases, err = parsePhases(phases); err != nil {
		return cfg, false, err
	}
	if cfg.throughputDuration == 0 {
		cfg.phases.throughput = false
	}
	cfg.log = os.Stderr
	return cfg, false, cfg.validate()
}
