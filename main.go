// Command parkd is an HTTP server that parks requests: a client asks for a
// request that lasts N seconds, anyone can list what is parked with the time
// each has left, and anyone can kill a parked request by its id.
//
//	parkd [flags] [port]
//
// See README.md and docs/API.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
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

// run is the whole program but for signal handling: it reads the
// configuration, listens, serves until ctx is done and returns the exit
// status.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	log := newLogger(cfg, stderr)
	s, err := newServer(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer s.close()
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.addr, "err", err)
		return 1
	}
	s.setInstance(ln.Addr())
	log.Info("parkd listening", "addr", ln.Addr().String(), "instance", s.name, "capacity", s.reg.Capacity(),
		"open_file_limit", s.openFiles, "max_timeout", cfg.maxTimeout.String(), "grace", cfg.grace.String())
	return s.serve(ctx, ln)
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
