package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

const (
	// fdMargin is kept free for the parent's own sockets, files and the runtime.
	fdMargin = 500
	// maxPerChild keeps each child well under the 20,000 open-file limit.
	maxPerChild = 9000
)

// splitCounts decides how many parked connections each process opens. An empty
// result means the parent holds all n itself; otherwise one child per entry.
// capOverride (> 0) replaces the limit derived from nofile.
func splitCounts(n, capOverride int, nofile uint64) ([]int, error) {
	per := capOverride
	if per <= 0 {
		if uint64(n)+fdMargin <= nofile {
			return nil, nil
		}
		if nofile <= 2*fdMargin {
			return nil, fmt.Errorf("open-file limit %d is too low to split %d connections", nofile, n)
		}
		per = int(min(nofile-fdMargin, maxPerChild))
	} else if n <= per {
		return nil, nil
	}
	k := (n + per - 1) / per
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out, nil
}

// readyMsg and doneMsg carry one worker's records, placed at index first.
type readyMsg struct {
	first int
	sends []sendRec
}

type doneMsg struct {
	first int
	outs  []outRec
	err   error
}

// childEvent is one JSON value a child writes to its stdout.
type childEvent struct {
	Ready []sendRec `json:"ready,omitempty"`
	Done  []outRec  `json:"done,omitempty"`
}

// startLocal runs a worker in this process; it sends exactly one readyMsg and one doneMsg.
func startLocal(ctx context.Context, spec workerSpec, clk clock, readyCh chan<- readyMsg, doneCh chan<- doneMsg) {
	go func() {
		outs := runWorker(ctx, spec, clk, func(s []sendRec) { readyCh <- readyMsg{spec.First, s} })
		doneCh <- doneMsg{first: spec.First, outs: outs}
	}()
}

// startChild runs a worker in a child process; it sends exactly one readyMsg and one
// doneMsg, synthesising failures if the child dies. The child ends with ctx (killed),
// with this process (Pdeathsig), or when its stdin closes.
func startChild(ctx context.Context, exe string, spec workerSpec, stderr io.Writer, readyCh chan<- readyMsg, doneCh chan<- doneMsg) {
	failed := func(kind string, err error, readySent bool) {
		if !readySent {
			s := make([]sendRec, spec.Count)
			for i := range s {
				s[i].Err = kind
			}
			readyCh <- readyMsg{spec.First, s}
		}
		o := make([]outRec, spec.Count)
		for i := range o {
			o[i].Kind = kind
		}
		doneCh <- doneMsg{first: spec.First, outs: o, err: err}
	}
	cmd := exec.CommandContext(ctx, exe, "-child")
	cmd.SysProcAttr = childSysProcAttr()
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err1 := cmd.StdinPipe()
	stdout, err2 := cmd.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		failed("child_failed", err, false)
		return
	}
	if err := cmd.Start(); err != nil {
		failed("child_failed", fmt.Errorf("start child: %w", err), false)
		return
	}
	go func() {
		readySent := false
		var outs []outRec
		// stdin stays open while the child works: its EOF tells the child to stop.
		err := json.NewEncoder(stdin).Encode(spec)
		dec := json.NewDecoder(stdout)
		for err == nil {
			var ev childEvent
			if err = dec.Decode(&ev); err != nil {
				break
			}
			if ev.Ready != nil && !readySent && len(ev.Ready) == spec.Count {
				readySent = true
				readyCh <- readyMsg{spec.First, ev.Ready}
			}
			if ev.Done != nil && readySent {
				outs = ev.Done
			}
		}
		stdin.Close()
		werr := cmd.Wait()
		kind := "child_failed"
		if ctx.Err() != nil {
			kind = "aborted"
		}
		if len(outs) != spec.Count || !readySent {
			failed(kind, fmt.Errorf("child for requests %d…%d: %w", spec.First, spec.First+spec.Count-1, errors.Join(werr, ignoreEOF(err))), readySent)
			return
		}
		doneCh <- doneMsg{first: spec.First, outs: outs}
	}()
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// runChild is the -child mode: read a workerSpec from stdin, park its requests and
// write a ready event, then a done event, to stdout. EOF on stdin (the parent is
// gone or gave up) stops the work early.
func runChild(stdin io.Reader, stdout io.Writer) error {
	clk := newClock()
	dec := json.NewDecoder(stdin)
	var spec workerSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("read child spec: %w", err)
	}
	if spec.Count < 0 || len(spec.Sources) == 0 || (spec.TimeoutsMs != nil && len(spec.TimeoutsMs) != spec.Count) {
		return errors.New("bad child spec")
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.MaxDuration)
	defer cancel()
	// Ends at stdin EOF or with the process, which exits once the work is reported.
	go func() {
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), stdin))
		cancel()
	}()
	enc := json.NewEncoder(stdout)
	var encErr error
	outs := runWorker(ctx, spec, clk, func(s []sendRec) { encErr = enc.Encode(childEvent{Ready: s}) })
	if encErr != nil {
		return encErr
	}
	return enc.Encode(childEvent{Done: outs})
}

// executable is the binary children run.
func executable(cfg *config) (string, error) {
	if cfg.childExe != "" {
		return cfg.childExe, nil
	}
	return os.Executable()
}
