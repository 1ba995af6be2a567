package main

// Section 5's flags, variables and positional port, through parseConfig and
// run's exit status.

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	def := defaultConfig()
	with := func(f func(*config)) config {
		c := def
		f(&c)
		return c
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, def},
		{"every flag", []string{"-addr", "127.0.0.1:9000", "-max-timeout", "90s", "-capacity", "5", "-grace", "1m", "-log-format", "json", "-log-level", "debug"}, nil,
			config{addr: "127.0.0.1:9000", maxTimeout: 90 * time.Second, capacity: 5, grace: time.Minute, logFormat: "json", logLevel: slog.LevelDebug, idleTimeout: 2 * time.Minute, history: 10_000, redisPrefix: "parkd"}},
		{"double-dash flags", []string{"--addr=:9001", "--log-level=error"}, nil,
			with(func(c *config) { c.addr, c.logLevel = ":9001", slog.LevelError })},
		{"every variable", nil, map[string]string{
			"PARKD_ADDR": "127.0.0.1:9002", "PARKD_MAX_TIMEOUT": "2h", "PARKD_CAPACITY": "7", "PARKD_GRACE": "0s",
			"PARKD_LOG_FORMAT": "json", "PARKD_LOG_LEVEL": "warn"},
			config{addr: "127.0.0.1:9002", maxTimeout: 2 * time.Hour, capacity: 7, grace: 0, logFormat: "json", logLevel: slog.LevelWarn, idleTimeout: 2 * time.Minute, history: 10_000, redisPrefix: "parkd"}},
		{"a flag wins over its variable", []string{"-addr", ":2", "-max-timeout", "1m", "-capacity", "2", "-grace", "2s", "-log-format", "text", "-log-level", "error"},
			map[string]string{"PARKD_ADDR": ":1", "PARKD_MAX_TIMEOUT": "2m", "PARKD_CAPACITY": "1", "PARKD_GRACE": "1s", "PARKD_LOG_FORMAT": "json", "PARKD_LOG_LEVEL": "debug"},
			config{addr: ":2", maxTimeout: time.Minute, capacity: 2, grace: 2 * time.Second, logFormat: "text", logLevel: slog.LevelError, idleTimeout: 2 * time.Minute, history: 10_000, redisPrefix: "parkd"}},
		{"a variable without its flag still counts", []string{"-addr", ":2"}, map[string]string{"PARKD_CAPACITY": "9"},
			with(func(c *config) { c.addr, c.capacity = ":2", 9 })},
		{"an empty variable is unset", nil, map[string]string{"PARKD_ADDR": "", "PARKD_GRACE": ""}, def},
		{"positional port", []string{"9090"}, nil, with(func(c *config) { c.addr = ":9090" })},
		{"positional port replaces the port of -addr", []string{"-addr", "127.0.0.1:1", "9091"}, nil,
			with(func(c *config) { c.addr = "127.0.0.1:9091" })},
		{"positional port replaces the port of PARKD_ADDR", []string{"9092"}, map[string]string{"PARKD_ADDR": "localhost:1"},
			with(func(c *config) { c.addr = "localhost:9092" })},
		{"positional port on an IPv6 address", []string{"-addr", "[::1]:1", "9093"}, nil,
			with(func(c *config) { c.addr = "[::1]:9093" })},
		{"positional port 0", []string{"0"}, nil, with(func(c *config) { c.addr = ":0" })},
		{"positional port 65535", []string{"65535"}, nil, with(func(c *config) { c.addr = ":65535" })},
		{"zero grace", []string{"-grace", "0s"}, nil, with(func(c *config) { c.grace = 0 })},
		{"capacity 0 is the default", []string{"-capacity", "0"}, nil, def},
		{"idle-timeout, instance, seed", []string{"-idle-timeout", "3s", "-instance", "b-2:9", "-seed", "42"}, nil,
			with(func(c *config) { c.idleTimeout, c.instance, c.seed = 3*time.Second, "b-2:9", 42 })},
		{"their variables", nil, map[string]string{"PARKD_IDLE_TIMEOUT": "500ms", "PARKD_INSTANCE": "ünit 1", "PARKD_SEED": "7"},
			with(func(c *config) { c.idleTimeout, c.instance, c.seed = 500*time.Millisecond, "ünit 1", 7 })},
		{"history", []string{"-history", "0"}, map[string]string{"PARKD_HISTORY": "5"}, with(func(c *config) { c.history = 0 })},
		{"PARKD_HISTORY", nil, map[string]string{"PARKD_HISTORY": "5"}, with(func(c *config) { c.history = 5 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, &stderr)
			if err != nil || got != tt.want {
				t.Errorf("parseConfig(%q, %v) = %+v, %v; want %+v", tt.args, tt.env, got, err, tt.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("printed %q for a good configuration", stderr.String())
			}
		})
	}
}

// A bad flag, value, variable or positional argument makes run print a
// one-line reason naming it, then the usage, and return 2 without serving.
func TestRunBadConfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		mention string // the reason line names this
	}{
		{"unknown flag", []string{"-nope"}, nil, "nope"},
		{"flag without its value", []string{"-addr"}, nil, "addr"},
		{"addr without a port", []string{"-addr", "localhost"}, nil, "localhost"},
		{"addr with a port too large", []string{"-addr", ":65536"}, nil, "65536"},
		{"addr with a named port", []string{"-addr", ":http"}, nil, ":http"},
		{"max-timeout without a unit", []string{"-max-timeout", "10"}, nil, "max-timeout"},
		{"max-timeout negative", []string{"-max-timeout", "-1s"}, nil, "max-timeout"},
		{"capacity negative", []string{"-capacity", "-1"}, nil, "capacity"},
		{"capacity not a number", []string{"-capacity", "many"}, nil, "many"},
		{"grace not a duration", []string{"-grace", "soon"}, nil, "soon"},
		{"grace negative", []string{"-grace", "-1s"}, nil, "grace"},
		{"log-format unknown", []string{"-log-format", "xml"}, nil, "xml"},
		{"log-level unknown", []string{"-log-level", "verbose"}, nil, "verbose"},
		{"positional not a number", []string{"http"}, nil, "http"},
		{"positional port too large", []string{"70000"}, nil, "70000"},
		{"positional port negative", []string{"--", "-1"}, nil, "-1"},
		{"two positionals", []string{"8080", "8081"}, nil, "8081"},
		{"PARKD_ADDR bad", nil, map[string]string{"PARKD_ADDR": "nowhere"}, "PARKD_ADDR"},
		{"PARKD_MAX_TIMEOUT bad", nil, map[string]string{"PARKD_MAX_TIMEOUT": "1 hour"}, "PARKD_MAX_TIMEOUT"},
		{"PARKD_CAPACITY bad", nil, map[string]string{"PARKD_CAPACITY": "-3"}, "PARKD_CAPACITY"},
		{"PARKD_GRACE bad", nil, map[string]string{"PARKD_GRACE": "10"}, "PARKD_GRACE"},
		{"PARKD_LOG_FORMAT bad", nil, map[string]string{"PARKD_LOG_FORMAT": "yaml"}, "PARKD_LOG_FORMAT"},
		{"PARKD_LOG_LEVEL bad", nil, map[string]string{"PARKD_LOG_LEVEL": "loud"}, "PARKD_LOG_LEVEL"},
		{"idle-timeout zero", []string{"-idle-timeout", "0s"}, nil, "idle-timeout"},
		{"instance with a control character", []string{"-instance", "a\nb"}, nil, "instance"},
		{"instance empty", []string{"-instance", ""}, nil, "instance"},
		{"PARKD_INSTANCE with a tab", nil, map[string]string{"PARKD_INSTANCE": "a\tb"}, "PARKD_INSTANCE"},
		{"seed not a number", []string{"-seed", "x"}, nil, "seed"},
		{"history negative", []string{"-history", "-1"}, nil, "history"},
		{"PARKD_SEED negative", nil, map[string]string{"PARKD_SEED": "-1"}, "PARKD_SEED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			code := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &stderr)
			out := stderr.String()
			if code != 2 {
				t.Errorf("run(%q, %v) = %d, want 2; output:\n%s", tt.args, tt.env, code, out)
			}
			reason, rest, _ := strings.Cut(out, "\n")
			if !strings.Contains(reason, tt.mention) || strings.Contains(reason, "Usage") {
				t.Errorf("first line %q, want a reason naming %q", reason, tt.mention)
			}
			if !strings.HasPrefix(rest, "Usage: parkd") || !strings.Contains(rest, "-max-timeout") {
				t.Errorf("after the reason %q, want the usage", rest)
			}
			if strings.Contains(out, "listening") {
				t.Errorf("a bad configuration started a server:\n%s", out)
			}
		})
	}
}

// -h prints the usage, naming every flag and its variable, and returns 0.
func TestRunHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, func(string) string { return "" }, &stderr); code != 0 {
			t.Errorf("run(%s) = %d, want 0", arg, code)
		}
		out := stderr.String()
		for _, want := range []string{"Usage: parkd", "[port]",
			"-addr", "-max-timeout", "-capacity", "-grace", "-log-format", "-log-level", "-idle-timeout", "-instance", "-seed",
			"-history", "-redis", "-redis-prefix",
			"PARKD_ADDR", "PARKD_MAX_TIMEOUT", "PARKD_CAPACITY", "PARKD_GRACE", "PARKD_LOG_FORMAT", "PARKD_LOG_LEVEL",
			"PARKD_IDLE_TIMEOUT", "PARKD_INSTANCE", "PARKD_SEED", "PARKD_HISTORY", "PARKD_REDIS", "PARKD_REDIS_PREFIX"} {
			if !strings.Contains(out, want) {
				t.Errorf("run(%s) usage does not mention %s:\n%s", arg, want, out)
			}
		}
	}
}
