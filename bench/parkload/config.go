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

// Config describes one run. Run takes it whole, so tests drive the tool without a
// subprocess and the flags are only a thin layer over it.
type Config struct {
	URL                string
	Phases             Phases
	N                  int
	Timeout            time.Duration // base timeout of a parked request
	Spread             time.Duration // timeouts are drawn from [Timeout, Timeout+Spread]
	SameDeadline       bool          // every parked request ends at phase start + Timeout + Spread
	Sources            int           // local addresses 127.0.0.1 … 127.0.0.Sources
	DialConcurrency    int
	DialTimeout        time.Duration
	MaxDuration        time.Duration
	PID                int // server process whose VmRSS is read; 0 = none
	StatusSamples      int
	Kills              int
	KillMinRemaining   time.Duration
	ThroughputDuration time.Duration
	ThroughputConns    int
	SoakDuration       time.Duration // actions of the churn soak are started for this long
	SoakClients        int
	Metrics            bool
	Settle             time.Duration // wait before the final RSS and /metrics readings
	ParkSettle         time.Duration // longest wait for serverStatus to list the parked requests
	Seed               uint64        // 0 = random
	SamplesOut         string        // CSV file for one row per parked request; "" = none

	// PerProcessCap forces the parked connections of one process below the
	// open-file limit, so tests can exercise the child-process split with small N.
	PerProcessCap int
	// ChildExe is the binary re-executed as a child; empty means os.Executable().
	ChildExe string
	// Log receives progress lines; nil means none.
	Log io.Writer
}

// Phases selects which parts of a run happen.
type Phases struct {
	Park, Status, Kill, Throughput, Soak bool
}

func (p Phases) String() string {
	var names []string
	for _, ph := range []struct {
		on   bool
		name string
	}{{p.Park, "park"}, {p.Status, "status"}, {p.Kill, "kill"}, {p.Throughput, "throughput"}, {p.Soak, "soak"}} {
		if ph.on {
			names = append(names, ph.name)
		}
	}
	return strings.Join(names, ",")
}

// ParsePhases reads a comma-separated list such as "park,status,kill,throughput" or "soak".
func ParsePhases(s string) (Phases, error) {
	var p Phases
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(strings.ToLower(f)) {
		case "park":
			p.Park = true
		case "status":
			p.Status = true
		case "kill":
			p.Kill = true
		case "throughput":
			p.Throughput = true
		case "soak":
			p.Soak = true
		case "":
		default:
			return Phases{}, fmt.Errorf("unknown phase %q (known: park, status, kill, throughput, soak)", f)
		}
	}
	return p, nil
}

// DefaultConfig holds the defaults of the command-line flags.
func DefaultConfig() Config {
	return Config{
		URL:                "http://127.0.0.1:8080",
		Phases:             Phases{Park: true, Status: true, Kill: true, Throughput: true},
		N:                  1000,
		Timeout:            2 * time.Second,
		Spread:             10 * time.Second,
		Sources:            4,
		DialConcurrency:    200,
		DialTimeout:        10 * time.Second,
		MaxDuration:        5 * time.Minute,
		StatusSamples:      20,
		Kills:              200,
		KillMinRemaining:   3 * time.Second,
		ThroughputDuration: 10 * time.Second,
		ThroughputConns:    32,
		SoakDuration:       time.Minute,
		SoakClients:        300,
		Settle:             2 * time.Second,
		ParkSettle:         time.Second,
	}
}

// maxTimeout is parkd's default maximum; larger timeouts would only measure 400s.
const maxTimeout = time.Hour

func (c *Config) validate() error {
	switch {
	case c.N < 1 && c.Phases.Park:
		return errors.New("-n must be at least 1")
	case c.Timeout < 0 || c.Spread < 0:
		return errors.New("-timeout and -spread must not be negative")
	case c.Timeout+c.Spread > maxTimeout:
		return errors.New("-timeout plus -spread must not exceed 1h")
	case c.Sources < 1 || c.Sources > 254:
		return errors.New("-sources must be between 1 and 254")
	case c.DialConcurrency < 1:
		return errors.New("-dial-concurrency must be at least 1")
	case c.DialTimeout <= 0 || c.MaxDuration <= 0:
		return errors.New("-dial-timeout and -max-duration must be positive")
	case c.PID < 0:
		return errors.New("-pid must not be negative")
	case c.StatusSamples < 0 || c.Kills < 0 || c.ThroughputConns < 0 || c.PerProcessCap < 0:
		return errors.New("counts must not be negative")
	case c.ThroughputDuration < 0 || c.Settle < 0 || c.ParkSettle < 0 || c.KillMinRemaining < 0:
		return errors.New("durations must not be negative")
	case c.Phases.Kill && !c.Phases.Park:
		return errors.New("the kill phase needs the park phase")
	case c.Phases.Throughput && c.ThroughputConns < 1 && c.ThroughputDuration > 0:
		return errors.New("-throughput-conns must be at least 1")
	case c.Phases.Soak && (c.SoakDuration <= 0 || c.SoakClients < 1):
		return errors.New("-soak-duration must be positive and -soak-clients at least 1")
	}
	if c.Phases == (Phases{}) {
		return errors.New("-phases selects nothing")
	}
	_, err := parseTarget(c.URL)
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

// parseFlags turns argv into a Config; child reports the hidden -child mode.
func parseFlags(args []string, stderr io.Writer) (cfg Config, child bool, err error) {
	cfg = DefaultConfig()
	fs := flag.NewFlagSet("parkload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	phases := cfg.Phases.String()
	fs.StringVar(&cfg.URL, "url", cfg.URL, "server base URL; loopback only")
	fs.StringVar(&phases, "phases", phases, "comma-separated phases: park,status,kill,throughput,soak")
	fs.IntVar(&cfg.N, "n", cfg.N, "parked requests, one TCP connection each")
	fs.Var(secondsFlag{&cfg.Timeout}, "timeout", "base timeout of a parked request (duration or seconds)")
	fs.Var(secondsFlag{&cfg.Spread}, "spread", "timeouts are uniform over [timeout, timeout+spread], in ms steps")
	fs.BoolVar(&cfg.SameDeadline, "same-deadline", false, "give every parked request one absolute deadline: phase start + timeout + spread")
	fs.IntVar(&cfg.Sources, "sources", cfg.Sources, "local source addresses 127.0.0.1 … 127.0.0.K")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", cfg.DialConcurrency, "parked connections being opened at once")
	fs.Var(secondsFlag{&cfg.DialTimeout}, "dial-timeout", "give up on one connect after this long")
	fs.Var(secondsFlag{&cfg.MaxDuration}, "max-duration", "bound on the whole run")
	fs.IntVar(&cfg.PID, "pid", 0, "server pid: report its RSS from /proc/PID/status")
	fs.IntVar(&cfg.StatusSamples, "status-samples", cfg.StatusSamples, "timed GET /api/serverStatus calls while parked")
	fs.IntVar(&cfg.Kills, "kills", cfg.Kills, "parked requests to kill with PUT /api/kill")
	fs.Var(secondsFlag{&cfg.KillMinRemaining}, "kill-min-remaining", "only kill requests with at least this long left")
	fs.Var(secondsFlag{&cfg.ThroughputDuration}, "throughput-duration", "length of the throughput phase; 0 skips it")
	fs.IntVar(&cfg.ThroughputConns, "throughput-conns", cfg.ThroughputConns, "keep-alive connections in the throughput phase")
	fs.Var(secondsFlag{&cfg.SoakDuration}, "soak-duration", "how long the soak phase starts new actions")
	fs.IntVar(&cfg.SoakClients, "soak-clients", cfg.SoakClients, "concurrent clients of the soak phase, two connections each at most")
	fs.BoolVar(&cfg.Metrics, "metrics", false, "scrape GET /metrics before, once all are parked (the peak), and after -settle")
	fs.Var(secondsFlag{&cfg.Settle}, "settle", "wait before the final RSS and metrics readings")
	fs.Var(secondsFlag{&cfg.ParkSettle}, "park-settle", "longest wait for serverStatus to list every parked request")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed for timeouts and kill choice; 0 = random")
	fs.StringVar(&cfg.SamplesOut, "samples-out", "", "write one CSV row per parked request to this file (times in ms from phase start)")
	fs.BoolVar(&child, "child", false, "internal: run one worker with a spec read from stdin")
	fs.IntVar(&cfg.PerProcessCap, "max-per-process", 0, "internal: parked connections per process before splitting")
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
	if cfg.Phases, err = ParsePhases(phases); err != nil {
		return cfg, false, err
	}
	if cfg.ThroughputDuration == 0 {
		cfg.Phases.Throughput = false
	}
	cfg.Log = os.Stderr
	return cfg, false, cfg.validate()
}
