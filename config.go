package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parkd/parkd/wire"
)

// config is what the flags and PARKD_* variables set.
type config struct {
	addr        string
	maxTimeout  time.Duration
	capacity    int // 0: the open-file limit minus a reserve
	grace       time.Duration
	logFormat   string
	logLevel    slog.Level
	idleTimeout time.Duration
	instance    string // "": the host name, ':' and the bound port
	seed        uint64 // 0: random
	history     int    // finished requests kept; 0 keeps none
	redis       string // cluster mode's Redis URL; "": this process alone
	redisPrefix string
}

// option is one flag and its environment variable.
type option struct {
	flag, env, usage string
	value            flag.Value
}

func (c *config) options() []option {
	return []option{
		{"addr", "PARKD_ADDR", "listen `address`; a positional port replaces its port", addrValue{&c.addr}},
		{"max-timeout", "PARKD_MAX_TIMEOUT", "largest accepted timeout, a Go `duration`", durationValue{&c.maxTimeout, false}},
		{"capacity", "PARKD_CAPACITY", "most requests parked at once; 0 = open-file limit minus a reserve (5%, at least 64)", capacityValue{&c.capacity}},
		{"grace", "PARKD_GRACE", "how long shutdown lets parked requests finish, a Go `duration`", durationValue{&c.grace, true}},
		{"log-format", "PARKD_LOG_FORMAT", "log `format`: text or json", choiceValue{&c.logFormat, []string{"text", "json"}}},
		{"log-level", "PARKD_LOG_LEVEL", "log `level`: debug, info, warn or error", levelValue{&c.logLevel}},
		{"idle-timeout", "PARKD_IDLE_TIMEOUT", "how long a keep-alive connection may sit idle between requests, a Go `duration`", durationValue{&c.idleTimeout, false}},
		{"instance", "PARKD_INSTANCE", "this instance's `name`, sent as Parkd-Instance on every answer (default: host name:port)", instanceValue{&c.instance}},
		{"seed", "PARKD_SEED", "seed of the random draws of then and jitter, for runs that repeat; 0 = random", seedValue{&c.seed}},
		{"history", "PARKD_HISTORY", "how many finished requests /api/history keeps; 0 keeps none", capacityValue{&c.history}},
		{"redis", "PARKD_REDIS", "cluster mode: the `URL` of the Redis all instances share, redis:// or rediss://[user:password@]host:port[/db]; empty: this process alone", redisValue{&c.redis}},
		{"redis-prefix", "PARKD_REDIS_PREFIX", "the `prefix` of every key parkd writes in Redis, so that two clusters can share one", prefixValue{&c.redisPrefix}},
	}
}

func defaultConfig() config {
	return config{
		addr:        ":8080",
		maxTimeout:  time.Hour,
		grace:       10 * time.Second,
		logFormat:   "text",
		logLevel:    slog.LevelInfo,
		idleTimeout: 2 * time.Minute,
		history:     10_000,
		redisPrefix: "parkd",
	}
}

// parseConfig reads args and the environment. A flag wins over its
// variable. On a bad value it prints the reason and the usage to stderr
// and returns an error; on -h it prints the usage and returns flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("parkd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := c.options()
	for _, o := range opts {
		fs.Var(o.value, o.flag, o.usage+" ($"+o.env+")")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: parkd [flags] [port]\n\n"+
			"parkd parks HTTP requests: GET /api/request?connId=ID&timeout=SECONDS answers after the timeout,\n"+
			"GET /api/serverStatus lists what is parked, PUT /api/kill ends one. Flags (and their variables):\n\n")
		fs.PrintDefaults()
	}
	fail := func(format string, a ...any) (config, error) {
		err := fmt.Errorf(format, a...)
		fmt.Fprintln(stderr, "parkd:", err)
		fs.Usage()
		return config{}, err
	}
	for _, o := range opts {
		if v := getenv(o.env); v != "" {
			if err := o.value.Set(v); err != nil {
				return fail("invalid value %q for %s: %v", v, o.env, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err // the flag package printed the reason and the usage
	}
	switch rest := fs.Args(); len(rest) {
	case 0:
	case 1:
		port, err := strconv.ParseUint(rest[0], 10, 16)
		if err != nil {
			return fail("invalid port %q: want a number from 0 to 65535", rest[0])
		}
		host, _, _ := net.SplitHostPort(c.addr) // checked by addrValue
		c.addr = net.JoinHostPort(host, strconv.FormatUint(port, 10))
	default:
		return fail("too many arguments %q: want at most a port", rest)
	}
	return c, nil
}

type addrValue struct{ p *string }

func (v addrValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v addrValue) Set(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port, e.g. :8080 or 127.0.0.1:8080")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("the port must be a number from 0 to 65535")
	}
	*v.p = s
	return nil
}

type durationValue struct {
	p         *time.Duration
	zeroValid bool
}

func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return errors.New("want a Go duration such as 90s, 10m or 1h")
	case d < 0 || d == 0 && !v.zeroValid:
		return errors.New("want a positive duration")
	}
	*v.p = d
	return nil
}

type capacityValue struct{ p *int }

func (v capacityValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v capacityValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("want a whole number ≥ 0")
	}
	*v.p = n
	return nil
}

type choiceValue struct {
	p       *string
	choices []string
}

func (v choiceValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(v.choices, ", "))
}

type levelValue struct{ p *slog.Level }

func (v levelValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

func (v levelValue) Set(s string) error {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if strings.EqualFold(s, l.String()) {
			*v.p = l
			return nil
		}
	}
	return errors.New("want debug, info, warn or error")
}

type instanceValue struct{ p *string }

func (v instanceValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// Set takes a name of 1 to 128 bytes of UTF-8 without control characters:
// it goes into a header line and into logs.
func (v instanceValue) Set(s string) error {
	if err := wire.CheckConnID(s); err != nil {
		return errors.New("want 1 to 128 bytes of UTF-8 without control characters")
	}
	*v.p = s
	return nil
}

type seedValue struct{ p *uint64 }

func (v seedValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatUint(*v.p, 10)
}

func (v seedValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return errors.New("want a whole number from 0 to 18446744073709551615")
	}
	*v.p = n
	return nil
}

type redisValue struct{ p *string }

func (v redisValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// Set takes a redis:// or rediss:// URL with a host and port, or nothing.
func (v redisValue) Set(s string) error {
	if s == "" {
		*v.p = ""
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "redis" && u.Scheme != "rediss" || u.Hostname() == "" {
		return errors.New("want redis://[user:password@]host:port[/db] or rediss://…")
	}
	*v.p = s
	return nil
}

type prefixValue struct{ p *string }

func (v prefixValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// Set takes 1 to 64 bytes of letters, digits and -_.:{} — nothing a key
// pattern or a log would misread.
func (v prefixValue) Set(s string) error {
	ok := len(s) >= 1 && len(s) <= 64
	for _, c := range s {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:{}", c))
	}
	if !ok {
		return errors.New("want 1 to 64 letters, digits or -_.:{}")
	}
	*v.p = s
	return nil
}
