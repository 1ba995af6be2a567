package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkd/parkd/cluster"
	"github.com/parkd/parkd/events"
	"github.com/parkd/parkd/history"
	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/socket"
	"github.com/puzpuzpuz/xsync/v4"
	"github.com/valyala/fasthttp"
)

// server is one parkd instance: its registry, its hang-up watcher and its
// fasthttp server. Several can run in one process.
type server struct {
	log        *slog.Logger
	reg        *registry.Registry              // the parked requests; decides each one's outcome
	sockets    *socket.Poller                  // parked and idle sockets, outside Go's poller
	idle       *xsync.Map[*idleConn, struct{}] // keep-alive connections waiting after a parked answer
	maxTimeout time.Duration                   // the largest timeout a park may ask for
	grace      time.Duration                   // how long shutdown lets parked requests run
	openFiles  int                             // the open-file limit, read once at the start
	http       *fasthttp.Server                // serves every connection that is not parked or idle
	metrics    *metrics
	store      cluster.Store                // the shared view: connIds, other instances, history and events
	hub        *events.Hub                  // the event streams of this instance's clients
	draining   atomic.Bool                  // shutdown has begun: readyz says 503, answers close
	responding atomic.Int64                 // parked requests between Park and the end of their answer
	releasing  atomic.Bool                  // a memory release is scheduled (releaseWhenIdle)
	dates      dateCache                    // the Date header of parked answers
	listings   sync.Pool                    // *listing: scratch space of serverStatus and the resource API
	instance   []byte                       // the Parkd-Instance header's value; set before serving
	name       string                       // cfg.instance: "" for the host name and the bound port
	cluster    clusterConfig                // cluster mode's settings; no URL: this process alone
	claiming   *xsync.Map[string, struct{}] // cluster mode: connIds claimed in Redis, not yet in the registry
	ring       *history.Ring                // this instance's finished requests
	pad        []byte                       // spaces, never written to: padded bodies are sent from it
	drawMu     sync.Mutex                   // guards draws
	draws      *rand.Rand                   // the random draws of then and jitter
}

// newServer builds a server from cfg; close releases what it holds. It
// reads the open-file limit, which bounds connections and, by default,
// the capacity.
func newServer(cfg config, log *slog.Logger) (*server, error) {
	files, err := openFileLimit()
	if err != nil {
		return nil, fmt.Errorf("read the open-file limit: %w", err)
	}
	capacity := cfg.capacity
	if capacity == 0 {
		capacity = max(1, files-reservedFiles(files))
	}
	seed := cfg.seed
	for seed == 0 {
		seed = rand.Uint64()
	}
	sockets, err := socket.NewPoller()
	if err != nil {
		return nil, fmt.Errorf("start the socket poller: %w", err)
	}
	s := &server{
		log:        log,
		reg:        registry.New(capacity),
		sockets:    sockets,
		idle:       xsync.NewMap[*idleConn, struct{}](),
		maxTimeout: cfg.maxTimeout,
		grace:      cfg.grace,
		openFiles:  files,
		claiming:   xsync.NewMap[string, struct{}](),
		name:       cfg.instance,
		pad:        bytes.Repeat([]byte{' '}, 64<<10),
		draws:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	s.hub = events.New()
	s.ring = history.New(cfg.history)
	s.store = cluster.NewStandalone(s.ring, s.hub)
	s.cluster = clusterConfig{url: cfg.redis, prefix: cfg.redisPrefix, history: cfg.history}
	s.metrics = newMetrics(s.reg, s.hub, s.draining.Load, s.idle.Size, routePark)
	s.http = &fasthttp.Server{
		Handler:      s.routes(),
		ErrorHandler: s.requestError,
		Name:         "parkd",
		// Connections are bounded by the open-file limit already; fasthttp's
		// default of 256k would only hide that.
		Concurrency:        files,
		ReadBufferSize:     readBufferSize,
		ReadTimeout:        readTimeout,
		WriteTimeout:       writeTimeout,
		IdleTimeout:        cfg.idleTimeout,
		MaxRequestBodySize: maxBodySize,
		// Idle workers of fasthttp's pool go after 2 s, not 10: a burst of
		// parks leaves no crowd of goroutines behind for long.
		MaxIdleWorkerDuration:        2 * time.Second,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		// A parked request's connection is hijacked and kept (park.go);
		// parkd closes it or hands it back with ServeConn.
		KeepHijackedConns: true,
		// Buffers go back to their pools between requests, so an idle
		// keep-alive connection holds none, and a hijacked one leaves none
		// behind (fasthttp never takes back a hijacked conn's reader).
		ReduceMemoryUsage: true,
		Logger:            fasthttpLogger{log},
	}
	return s, nil
}

func (s *server) close() error {
	s.store.Close()
	s.hub.Close()
	return s.sockets.Close()
}

// serve answers on ln until ctx is done, then shuts down gracefully:
// stop accepting, keep serving open connections (readyz says 503), end
// parked requests beyond the grace period at once and let the others run
// out, and return when nothing is parked. It returns the process's exit
// status.
func (s *server) serve(ctx context.Context, ln net.Listener) int {
	if s.instance == nil {
		s.setInstance(ln.Addr())
	}
	if err := s.joinCluster(ctx); err != nil {
		s.log.Error("cannot join the cluster", "err", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(patientListener{ln, s.log}) }()
	select {
	case err := <-served:
		s.log.Error("serving failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "parked", s.reg.Len(), "grace", s.grace.String())
	// Draining and the registry's sweep come before anything else, so that
	// from the moment readyz says 503 no new park is taken.
	s.draining.Store(true)
	s.reg.Shutdown(s.grace)
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("closing the listener", "err", err)
	}
	<-served
	<-s.reg.Drained()
	s.awaitAnswers()
	// Event streams followed the drain; with nothing left to show they end,
	// so that fasthttp's shutdown does not wait for them.
	s.hub.Close()
	s.closeIdle()
	// Nothing is parked; close idle keep-alive connections and give busy
	// ones a moment to finish their answer.
	shutCtx, cancel := context.WithTimeout(context.Background(), afterDrainTimeout)
	defer cancel()
	err := s.http.ShutdownWithContext(shutCtx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("closing connections", "err", err)
	}
	s.log.Info("stopped")
	return 0
}

// setInstance names this instance for the Parkd-Instance header: the
// -instance flag, or the host name, ':' and the port it listens on.
func (s *server) setInstance(addr net.Addr) {
	name := s.name
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "parkd"
		}
		_, port, _ := net.SplitHostPort(addr.String())
		name = host + ":" + port
	}
	s.name, s.instance = name, []byte(name)
}

// awaitAnswers waits for the answers of requests whose outcome is decided
// to be written: the registry is drained once the last outcome is decided,
// which is a moment before its answer has left. A client that reads
// nothing holds it at most writeTimeout.
func (s *server) awaitAnswers() {
	limit := time.Now().Add(writeTimeout + time.Second)
	for s.responding.Load() > 0 && time.Now().Before(limit) {
		time.Sleep(10 * time.Millisecond)
	}
}

// fasthttpLogger sends fasthttp's own messages to slog: a connection
// that ended in an error is the client's doing (debug); the rest, such as
// accept failures, deserve an operator's look (warn).
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	level := slog.LevelWarn
	if strings.HasPrefix(format, "error when serving connection") {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...), "source", "fasthttp")
}
