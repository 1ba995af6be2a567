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
	if res.SoakVerdict == soakFail {
		return 1
	}
	return 0
}
