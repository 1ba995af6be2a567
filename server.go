package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/socket"
	"github.com/puzpuzpuz/xsync/v4"
	"github.com/valyala/fasthttp"
)

// fasthttp settings; README.md says why each has its value.
const (
	// readTimeout bounds reading one request (a client that sends half a
	// request line and stalls is cut off) and, on a new connection, the
	// wait for its first byte.
	readTimeout = 10 * time.Second
	// idleTimeout bounds the wait for the next request on a keep-alive
	// connection.
	idleTimeout = 2 * time.Minute
	// writeTimeout bounds writing one answer to a client that reads nothing.
	writeTimeout = 10 * time.Second
	// readBufferSize is the most a request line plus headers may take.
	readBufferSize = 8 << 10
	// maxBodySize is the contract's limit on a kill body; parkd's other
	// routes take none.
	maxBodySize = 4 << 10
	// idleRelease is how long nothing must be parked before memory goes
	// back to the OS (releaseWhenIdle).
	idleRelease = 2 * time.Second
	// afterDrainTimeout bounds closing keep-alive connections once nothing
	// is parked any more. fasthttp counts a connection it has served for
	// under 5 s as busy, so those take the whole of it.
	afterDrainTimeout = 500 * time.Millisecond
)

// reservedFiles is what the default capacity leaves of the open-file limit
// for everything but parked requests: status, kill, health and metrics
// connections, the listener, logs.
func reservedFiles(limit int) int {
	return max(64, limit/20)
}

// server is one parkd instance: its registry, its hang-up watcher and its
// fasthttp server. Several can run in one process.
type server struct {
	log        *slog.Logger
	reg        *registry.Registry
	sockets    *socket.Poller
	idle       *xsync.Map[*idleConn, struct{}] // keep-alive connections waiting after a parked answer
	maxTimeout time.Duration
	grace      time.Duration
	http       *fasthttp.Server
	metrics    *metrics
	draining   atomic.Bool
	responding atomic.Int64 // parked requests between Park and the end of their answer
	releasing  atomic.Bool  // a memory release is scheduled (releaseWhenIdle)
	dates      dateCache    // the Date header of parked answers
	listings   sync.Pool    // *listing
}

// newServer builds a server from cfg; close releases what it holds.
func newServer(cfg config, log *slog.Logger) (*server, error) {
	files, err := openFileLimit()
	if err != nil {
		return nil, fmt.Errorf("read the open-file limit: %w", err)
	}
	capacity := cfg.capacity
	if capacity == 0 {
		capacity = max(1, files-reservedFiles(files))
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
	}
	s.metrics = newMetrics(s.reg, s.draining.Load, s.idle.Size)
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
		IdleTimeout:        idleTimeout,
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
	return s.sockets.Close()
}

// serve answers on ln until ctx is done, then shuts down gracefully:
// stop accepting, keep serving open connections (readyz says 503), end
// parked requests beyond the grace period at once and let the others run
// out, and return when nothing is parked. It returns the process's exit
// status.
func (s *server) serve(ctx context.Context, ln net.Listener) int {
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(patientListener{ln, s.log}) }()
	select {
	case err := <-served:
		s.log.Error("serving failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "parked", s.reg.Len(), "grace", s.grace.String())
	s.draining.Store(true)
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("closing the listener", "err", err)
	}
	<-served
	s.reg.Shutdown(s.grace)
	<-s.reg.Drained()
	s.awaitAnswers()
	s.idle.Range(func(ic *idleConn, _ struct{}) bool {
		ic.expire()
		return true
	})
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

// releaseWhenIdle gives memory back to the OS once nothing has been parked
// for a moment. A burst of parked requests leaves garbage that no
// allocation will collect on an idle server until the runtime's forced GC
// two minutes later; an operator watching RSS, or a load test checking
// that the server returns to its baseline, should not wait that long. At
// most one release is pending at a time.
func (s *server) releaseWhenIdle() {
	if s.reg.Len() != 0 || !s.releasing.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(idleRelease, func() {
		s.releasing.Store(false)
		if s.reg.Len() == 0 {
			debug.FreeOSMemory()
		}
	})
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
	files, _ := openFileLimit()
	log.Info("parkd listening", "addr", ln.Addr().String(), "capacity", s.reg.Capacity(),
		"open_file_limit", files, "max_timeout", cfg.maxTimeout.String(), "grace", cfg.grace.String())
	return s.serve(ctx, ln)
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
