// Command parkd is an HTTP server that parks requests: a client asks for a
// request that lasts N seconds, anyone can list what is parked with the time
// each has left, and anyone can kill a parked request by its id.
//
//	parkd [flags] [port]
//
// See README.md and ../shared/spec/API.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT/SIGTERM starts a graceful shutdown; a second one
	// exits at once.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, stop := context.WithCancel(context.Background())
	go func() {
		<-signals
		stop()
		<-signals
		fmt.Fprintln(os.Stderr, "parkd: second signal, exiting now")
		os.Exit(1)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}
