package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkd/parkd/wire"
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

	// Several instances of one cluster (docs/cluster.md): the park phase
	// spreads its requests over them round robin, as a load balancer would;
	// -url still lists, kills and is scraped.
	parkRate   float64  // parks a second over all processes; 0 = as fast as they go
	spreadURLs []string // base URLs of the instances, -url among them; nil = -url alone
	alsoPids   []int    // pids of the other instances, their RSS added to -pid's

	// The event stream, docs/API.md section 7 (streams.go).
	subscribers     int           // event-stream subscribers opened before each phase that parks a wave
	stuckSubscriber bool          // one more that reads its snapshot and then nothing
	streamGrace     time.Duration // longest wait, after a phase's last answer, for the subscribers to have every event
	stuckWait       time.Duration // longest wait, after the phase, for the server to drop the stuck subscriber
	gaugeWait       time.Duration // longest wait, after the streams closed, for the subscribers gauge to be back
	drainSilence    time.Duration // draining the stuck subscriber: longest wait for its next byte

	// Section 6 of docs/API.md (shape.go).
	dripBody        int           // drip phase: body=B
	dripDur         time.Duration // drip phase: drip=D
	capSteps        []int         // drip-capacity: the counts tried, in order
	capBody         int           // drip-capacity: body=B
	capDrip         time.Duration // drip-capacity: drip=D
	capSpread       time.Duration // drip-capacity: deadlines spread over this long
	capP99          time.Duration // drip-capacity: a step keeps on schedule when the server's piece p99 is at most this
	capAll          bool          // drip-capacity: run every step, also after one missed the schedule
	faultThens      []string      // fault: one wave with then=X for each X
	killThens       []string      // killthen: the kills' then values, round robin over the parked requests
	killthenTimeout time.Duration // killthen: the parks' timeout; every kill must come before it
	killthenBody    int           // killthen: body=B on the parks; 0: plain parks

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
	drip, dripCapacity, fault, killthen  bool // section 6 (shape.go)
}

// phaseNames lists the phases in the order they run.
const phaseNames = "park, status, kill, throughput, soak, drip, drip-capacity, fault, killthen"

// phaseFlag is one phase's switch in a phaseSet and its name.
type phaseFlag struct {
	on   *bool
	name string
}

// flags lists p's switches in the order the phases run.
func (p *phaseSet) flags() []phaseFlag {
	return []phaseFlag{{&p.park, "park"}, {&p.status, "status"}, {&p.kill, "kill"}, {&p.throughput, "throughput"}, {&p.soak, "soak"},
		{&p.drip, "drip"}, {&p.dripCapacity, "drip-capacity"}, {&p.fault, "fault"}, {&p.killthen, "killthen"}}
}

func (p phaseSet) String() string {
	var names []string
	for _, ph := range p.flags() {
		if *ph.on {
			names = append(names, ph.name)
		}
	}
	return strings.Join(names, ",")
}

// waves reports whether a phase parks a batch of requests, one connection each.
func (p phaseSet) waves() bool {
	return p.park || p.drip || p.dripCapacity || p.fault || p.killthen
}

// parsePhases reads a comma-separated list such as "park,status,kill,throughput" or "soak".
func parsePhases(s string) (phaseSet, error) {
	var p phaseSet
	flags := p.flags()
	for _, f := range strings.Split(s, ",") {
		name := strings.TrimSpace(strings.ToLower(f))
		if name == "" {
			continue
		}
		i := slices.IndexFunc(flags, func(ph phaseFlag) bool { return ph.name == name })
		if i < 0 {
			return phaseSet{}, fmt.Errorf("unknown phase %q (known: %s)", f, phaseNames)
		}
		*flags[i].on = true
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
		dripBody:           10,
		dripDur:            10 * time.Second,
		capSteps:           []int{500, 1000, 2000, 5000, 10000, 19000},
		capBody:            100,
		capDrip:            10 * time.Second,
		capSpread:          time.Second,
		capP99:             5 * time.Millisecond,
		faultThens:         []string{"reset", "close"},
		killThens:          []string{"503", "reset", "close", "garbage", "truncate"},
		killthenTimeout:    time.Minute,
		streamGrace:        10 * time.Second,
		stuckWait:          15 * time.Second,
		gaugeWait:          5 * time.Second,
		drainSilence:       20 * time.Second,
	}
}

// largestWave is the most requests one phase parks at once.
func (c *config) largestWave() int {
	n := 0
	if c.phases.park || c.phases.drip || c.phases.fault || c.phases.killthen {
		n = c.n
	}
	if c.phases.dripCapacity && len(c.capSteps) > 0 {
		n = max(n, slices.Max(c.capSteps))
	}
	return n
}

// checkActions says whether every one of list is a single then ACTION.
func checkActions(flag string, list []string) error {
	if len(list) == 0 {
		return fmt.Errorf("%s lists no action", flag)
	}
	for _, a := range list {
		if _, err := singleAction(a); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return nil
}

// maxTimeout is parkd's default maximum; larger timeouts would only measure 400s.
const maxTimeout = time.Hour

// maxSubscribers bounds -subscribers: each is a goroutine and a connection
// of the parent process, inside the reserve it keeps below the open-file limit.
const maxSubscribers = 200

func (c *config) validate() error {
	switch {
	case c.n < 1 && (c.phases.park || c.phases.drip || c.phases.fault || c.phases.killthen):
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
	case c.subscribers < 0 || c.subscribers > maxSubscribers:
		return fmt.Errorf("-subscribers must be from 0 to %d", maxSubscribers)
	case c.streamGrace < 0 || c.stuckWait < 0 || c.gaugeWait < 0 || c.drainSilence <= 0:
		return errors.New("-stream-grace, -stuck-wait and -gauge-wait must not be negative, -drain-silence must be positive")
	case c.throughputDuration < 0 || c.settle < 0 || c.parkSettle < 0 || c.killMinRemaining < 0:
		return errors.New("durations must not be negative")
	case c.phases.kill && !c.phases.park:
		return errors.New("the kill phase needs the park phase")
	case c.phases.throughput && c.throughputConns < 1 && c.throughputDuration > 0:
		return errors.New("-throughput-conns must be at least 1")
	case c.phases.soak && (c.soakDuration <= 0 || c.soakClients < 1):
		return errors.New("-soak-duration must be positive and -soak-clients at least 1")
	case c.dripBody < 0 || c.dripBody > wire.MaxBody || c.capBody < 0 || c.capBody > wire.MaxBody ||
		c.killthenBody < 0 || c.killthenBody > wire.MaxBody:
		return fmt.Errorf("-body, -capacity-body and -killthen-body must be from 0 to %d", wire.MaxBody)
	case c.phases.drip && (c.dripDur < time.Millisecond || c.timeout+c.spread+c.dripDur > maxTimeout):
		return errors.New("-drip must be at least 1ms, and -timeout plus -spread plus -drip at most 1h")
	case c.phases.dripCapacity && (c.capDrip < time.Millisecond || c.capSpread < 0 || c.capP99 <= 0 || c.timeout+c.capSpread+c.capDrip > maxTimeout):
		return errors.New("-capacity-drip must be at least 1ms, -capacity-p99 positive, -capacity-spread not negative, and -timeout plus -capacity-spread plus -capacity-drip at most 1h")
	case c.phases.dripCapacity && (len(c.capSteps) == 0 || c.capSteps[0] < 1 || !slices.IsSorted(c.capSteps)):
		return errors.New("-capacity-steps must list counts of at least 1 in increasing order")
	case c.phases.killthen && (c.killthenTimeout <= 0 || c.killthenTimeout > maxTimeout):
		return errors.New("-killthen-timeout must be positive and at most 1h")
	}
	if c.phases.fault {
		if err := checkActions("-fault-then", c.faultThens); err != nil {
			return err
		}
	}
	if c.phases.killthen {
		if err := checkActions("-kill-then", c.killThens); err != nil {
			return err
		}
	}
	if c.phases == (phaseSet{}) {
		return errors.New("-phases selects nothing")
	}
	if _, err := parseTarget(c.url); err != nil {
		return err
	}
	return c.validateSpread()
}

// validateSpread checks -instances and -also-pid: the instances must include
// -url, which lists and kills, and only the park phase (with status and
// kill) knows how to spread.
func (c *config) validateSpread() error {
	if c.parkRate < 0 {
		return errors.New("-park-rate must not be negative")
	}
	if len(c.alsoPids) > 0 && c.pid <= 0 {
		return errors.New("-also-pid needs -pid")
	}
	for _, p := range c.alsoPids {
		if p <= 0 {
			return errors.New("-also-pid: pids must be positive")
		}
	}
	if c.spreadURLs == nil {
		return nil
	}
	other := c.phases
	other.park, other.status, other.kill = false, false, false
	if !c.phases.park || other != (phaseSet{}) {
		return errors.New("-instances works with the park, status and kill phases only")
	}
	if c.subscribers > 0 || c.stuckSubscriber {
		return errors.New("-instances does not combine with event-stream subscribers")
	}
	if c.spreadIndex() < 0 {
		return fmt.Errorf("-instances must include -url %s", c.url)
	}
	for _, u := range c.spreadURLs {
		if _, err := parseTarget(u); err != nil {
			return fmt.Errorf("-instances: %w", err)
		}
	}
	return nil
}

// spreadIndex is -url's place in -instances: park i goes to instance i mod
// len(spread), so request i is on -url's instance when i mod len == spreadIndex.
func (c *config) spreadIndex() int {
	return slices.Index(c.spreadURLs, c.url)
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

// listFlag is a comma-separated list of words.
type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f listFlag) Set(v string) error {
	*f.l = nil
	for w := range strings.SplitSeq(v, ",") {
		if w = strings.TrimSpace(w); w != "" {
			*f.l = append(*f.l, w)
		}
	}
	return nil
}

// intsFlag is a comma-separated list of whole numbers.
type intsFlag struct{ l *[]int }

func (f intsFlag) String() string {
	if f.l == nil {
		return ""
	}
	parts := make([]string, len(*f.l))
	for i, n := range *f.l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (f intsFlag) Set(v string) error {
	*f.l = nil
	for w := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil {
			return errors.New("want whole numbers separated by commas")
		}
		*f.l = append(*f.l, n)
	}
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
	fs.StringVar(&phases, "phases", phases, "comma-separated phases: "+strings.ReplaceAll(phaseNames, " ", ""))
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
	fs.Var(listFlag{&cfg.spreadURLs}, "instances", "park: spread the parked requests round robin over these base URLs (instances of one cluster, -url among them), as a load balancer would; -url lists, kills and is scraped")
	fs.Float64Var(&cfg.parkRate, "park-rate", 0, "open the parked requests of a wave at most this many a second in all (0: as fast as they go)")
	fs.Var(intsFlag{&cfg.alsoPids}, "also-pid", "pids of the other instances: their RSS is added to -pid's")
	fs.IntVar(&cfg.subscribers, "subscribers", 0, "park, drip, fault, killthen: open this many GET /api/events streams before the phase, check and time every event")
	fs.BoolVar(&cfg.stuckSubscriber, "stuck-subscriber", false, "park, drip, fault, killthen: open one more stream that reads its snapshot and then nothing; the server must drop it")
	fs.Var(secondsFlag{&cfg.streamGrace}, "stream-grace", "longest wait, after a phase's last answer, for every subscriber to have every event")
	fs.Var(secondsFlag{&cfg.stuckWait}, "stuck-wait", "longest wait, after the phase, for the server to drop the stuck subscriber")
	fs.Var(secondsFlag{&cfg.gaugeWait}, "gauge-wait", "longest wait, after the streams closed, for parkd_event_subscribers to be back")
	fs.Var(secondsFlag{&cfg.drainSilence}, "drain-silence", "draining the stuck subscriber after the phase: longest wait for its next byte (a dropped stream ends in EOF)")
	fs.IntVar(&cfg.dripBody, "body", cfg.dripBody, "drip: each request asks body=B (its answer padded to B bytes)")
	fs.Var(secondsFlag{&cfg.dripDur}, "drip", "drip: each request asks drip=D (its body sent over D after the deadline)")
	fs.Var(intsFlag{&cfg.capSteps}, "capacity-steps", "drip-capacity: dripping requests tried, in increasing order, until one step misses the schedule")
	fs.IntVar(&cfg.capBody, "capacity-body", cfg.capBody, "drip-capacity: body=B of each request")
	fs.Var(secondsFlag{&cfg.capDrip}, "capacity-drip", "drip-capacity: drip=D of each request (B=100, D=10s: 100 pieces 100 ms apart)")
	fs.Var(secondsFlag{&cfg.capSpread}, "capacity-spread", "drip-capacity: timeouts are uniform over [timeout, timeout+this]")
	fs.Var(secondsFlag{&cfg.capP99}, "capacity-p99", "drip-capacity: a step keeps on schedule when the server's piece lateness p99 is at most this")
	fs.BoolVar(&cfg.capAll, "capacity-all", false, "drip-capacity: run every step, also after one missed the schedule (the curve, not only the knee)")
	fs.Var(listFlag{&cfg.faultThens}, "fault-then", "fault: one wave of -n requests with then=X for each X listed")
	fs.Var(listFlag{&cfg.killThens}, "kill-then", "killthen: the then of each kill, round robin over the -n parked requests")
	fs.Var(secondsFlag{&cfg.killthenTimeout}, "killthen-timeout", "killthen: timeout of the parked requests; every kill must come before it")
	fs.IntVar(&cfg.killthenBody, "killthen-body", cfg.killthenBody, "killthen: body=B on each park (the killed answer padded to B bytes); 0: plain parks")
	fs.BoolVar(&child, "child", false, "internal: run one worker with a spec read from stdin")
	fs.IntVar(&cfg.perProcessCap, "max-per-process", 0, "internal: parked connections per process before splitting")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
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
