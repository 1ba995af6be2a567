// Command parkload measures a server implementing the parkd API: it parks many
// requests, each on its own TCP connection, and reports lateness, server memory per
// parked request, serverStatus and kill latency, and throughput. It prints a table
// and, as the last line of stdout, one JSON object with every figure.
//
//	go run ./bench/parkload -url http://127.0.0.1:8080 -n 5000 -pid $(pidof parkd)
//
// -phases soak runs a churn soak instead (soak.go) and exits 1 when a check fails:
//
//	go run ./bench/parkload -url http://127.0.0.1:8080 -phases soak -soak-duration 60s -soak-clients 300 -metrics
//
// Four phases measure section 6 of docs/API.md, how a parked request ends
// (shape.go); each exits 1 when a client saw the wrong thing:
//
//   - drip: -n requests, each body=B&drip=D (-body 10 -drip 10s: the 15-byte
//     {"status":"ok"} a byte at a time, 0.67 s apart), deadlines over
//     -timeout + [0, -spread]. Reports the server's RSS
//     per request once parked and at its peak while they drip, each piece's
//     lateness as the client saw it (arrival − (request written + timeout +
//     D·k/n)), the headers' lateness, whether every client got a 200 and its
//     padded body whole, and the server's own parkd_piece_lateness_seconds
//     histogram over the phase (the share within 5 and 50 ms, the buckets of
//     its p99 and max).
//   - drip-capacity: waves of -capacity-steps requests (500, 1000, … 19000),
//     each body=100&drip=10 (100 pieces 100 ms apart), one after another, until
//     a wave's server-side piece lateness p99 (the histogram's growth over the
//     wave) exceeds -capacity-p99 (5 ms) or a client misses its body; reports
//     the last count that kept the schedule.
//   - fault: for each action of -fault-then (reset, close), -n requests with
//     then=ACTION; each client classifies what it saw — RST, FIN with nothing
//     read, or anything else — and the counts must be all of the expected one.
//   - killthen: -n parked requests (-killthen-timeout 60s), each killed with
//     the then of -kill-then (503, reset, close, garbage, truncate) round robin;
//     reports kill→effect latency per action (kill written → the parked client
//     read the status line, met the RST or the EOF, or read the first garbage
//     byte) and checks each effect is the right one.
//
// -subscribers N opens N event streams (GET /api/events, section 7) before
// each phase that parks a wave (park, drip, fault, killthen), reads every
// frame on a goroutine each, and reports per phase (streams.go): events per
// subscriber, whether each got every parked and finished event of the
// requests it parked, once, with ids that increase, and their lateness
// (arrival − startedAt or endedAt, ±1 ms: the server writes whole
// milliseconds). -stuck-subscriber adds one that reads its snapshot and then
// nothing, and reports when the server dropped it. With -pid, every such
// phase reports the server's CPU time over it, so that two runs give the
// CPU per delivered event. A failed check exits 1.
//
// For instance:
//
//	go run ./bench/parkload -url http://127.0.0.1:8080 -pid $(pidof parkd) -n 19000 -phases drip
//	go run ./bench/parkload -url http://127.0.0.1:8080 -phases drip-capacity -max-duration 10m
//	go run ./bench/parkload -url http://127.0.0.1:8080 -n 19000 -phases fault -same-deadline
//	go run ./bench/parkload -url http://127.0.0.1:8080 -n 5000 -phases killthen
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is main with its process state passed in, returning the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, child, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "parkload:", err)
		return 2
	}
	if child {
		if err := runChild(stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "parkload child:", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runPhases(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "parkload:", err)
		return 1
	}
	if err := writeReport(stdout, res); err != nil {
		fmt.Fprintln(stderr, "parkload:", err)
		return 1
	}
	if res.failed() {
		return 1
	}
	return 0
}

// usageText heads -h, above the flags.
const usageText = `Usage: parkload -url http://127.0.0.1:PORT [flags]

Phases (-phases, run in this order):
  park           -n requests parked, one connection each: lateness, server RSS per request
  status         timed serverStatus calls while they are parked
  kill           -kills of them killed: kill→500 latency
  throughput     timeout=0 on keep-alive connections: req/s
  soak           a churn soak checking the contract; exits 1 when a check fails
  drip           -n requests with body=B&drip=D (-body, -drip): RSS per request,
                 piece lateness client- and server-side, every body whole
  drip-capacity  waves of -capacity-steps dripping requests until the server's
                 piece lateness p99 exceeds -capacity-p99: the most kept on schedule
  fault          -n requests per action of -fault-then (reset, close): what each
                 client saw, RST, FIN with nothing read, or other
  killthen       -n parked requests killed with the then of -kill-then round robin:
                 kill→effect latency per action, each effect checked
The section-6 phases (drip … killthen) exit 1 when a client saw the wrong thing.
-subscribers N and -stuck-subscriber watch /api/events during park, drip, fault
and killthen, and exit 1 when an event is lost, repeated or out of order, or the
stuck stream is not dropped.

`
