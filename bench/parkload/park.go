package main

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// planTimeouts draws n timeouts, in milliseconds, uniformly from [base, base+spread].
func planTimeouts(n int, base, spread time.Duration, rng *rand.Rand) []int64 {
	baseMs, spreadMs := base.Milliseconds(), spread.Milliseconds()
	out := make([]int64, n)
	for i := range out {
		out[i] = baseMs + rng.Int64N(spreadMs+1)
	}
	return out
}

// sameDeadlineTimeout is the timeout, in whole milliseconds rounded up, that makes a
// request sent at stamp now end at stamp deadline; 0 once the deadline has passed.
func sameDeadlineTimeout(deadline, now int64) int64 {
	d := deadline - now
	if d <= 0 {
		return 0
	}
	return (d + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

// formatTimeout writes milliseconds as the decimal seconds of the API grammar:
// 2000 → "2", 2500 → "2.5", 3417 → "3.417".
func formatTimeout(ms int64) string {
	s := strconv.FormatInt(ms/1000, 10)
	frac := ms % 1000
	if frac == 0 {
		return s
	}
	f := strconv.FormatInt(1000+frac, 10)[1:]
	for f[len(f)-1] == '0' {
		f = f[:len(f)-1]
	}
	return s + "." + f
}

// parkID is the connId of the i-th parked request of a run.
func parkID(prefix string, i int) string { return prefix + "p" + strconv.Itoa(i) }

// workerSpec is the share of the parked requests one process opens. It travels to
// a child process as JSON.
type workerSpec struct {
	Dial            string        `json:"dial"`
	Host            string        `json:"host"`
	Base            string        `json:"base"`
	Prefix          string        `json:"prefix"`
	First           int           `json:"first"`
	Count           int           `json:"count"`
	TimeoutsMs      []int64       `json:"timeouts_ms,omitempty"`
	DeadlineStamp   int64         `json:"deadline_stamp,omitempty"` // same-deadline mode
	Sources         []string      `json:"sources"`
	DialConcurrency int           `json:"dial_concurrency"`
	DialTimeout     time.Duration `json:"dial_timeout"`
	ReadSlack       time.Duration `json:"read_slack"`
	MaxDuration     time.Duration `json:"max_duration"`
	// Query is appended to every park's query string: section 6's then,
	// body and drip.
	Query string `json:"query,omitempty"`
	// Watch, when set, reads each answer byte by byte as it arrives
	// (watch.go) instead of parsing one HTTP answer.
	Watch *watchSpec `json:"watch,omitempty"`
	// Rate, when positive, paces this worker's parks at Rate a second.
	Rate float64 `json:"rate,omitempty"`
	// Spread, when set, replaces Dial, Host and Base: request i goes to
	// Spread[i mod len(Spread)] (-instances).
	Spread []spreadTarget `json:"spread,omitempty"`
}

// spreadTarget is one instance a spread park phase sends to.
type spreadTarget struct {
	Dial string `json:"dial"`
	Host string `json:"host"`
	Base string `json:"base"`
}

// sendRec is what is known once a parked request was written (or failed to be).
type sendRec struct {
	TimeoutMs int64  `json:"t"`
	Sent      int64  `json:"s,omitempty"` // stamp as the request was written; 0 if it never was
	Err       string `json:"e,omitempty"` // why it was not written
}

// outRec is how a parked request ended. A watched request (watch.go) fills
// the fields after Kind as well.
type outRec struct {
	Done int64  `json:"d,omitempty"` // stamp when the whole answer had arrived
	Kind string `json:"k"`           // "ok", "killed" or an error kind; for a watched request, its ending

	Effect int64   `json:"x,omitempty"` // stamp when the ending was first seen: status line, first byte, RST or EOF
	Word   string  `json:"w,omitempty"` // the "status" of a complete JSON answer
	Length int     `json:"l,omitempty"` // its Content-Length
	Bytes  int     `json:"b,omitempty"` // body bytes received
	Late   []int64 `json:"p,omitempty"` // each piece's arrival after its due time, µs
}

// readSlack is how much longer than its timeout a parked request may take.
const readSlack = 30 * time.Second

// runWorker opens spec.Count parked requests, at most DialConcurrency being opened
// at a time, calls ready once every one was written or failed, and returns when
// every answer has arrived, failed, or ctx ended.
func runWorker(ctx context.Context, s workerSpec, clk clock, ready func([]sendRec)) []outRec {
	sends := make([]sendRec, s.Count)
	outs := make([]outRec, s.Count)
	dialers := make([]net.Dialer, len(s.Sources))
	for i, src := range s.Sources {
		dialers[i] = net.Dialer{Timeout: s.DialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Control: bindNoPort}
	}
	sem := make(chan struct{}, max(1, s.DialConcurrency))
	var written, finished sync.WaitGroup
	start := time.Now()
	for j := range s.Count {
		if s.Rate > 0 {
			due := start.Add(time.Duration(float64(j) / s.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 && !sleepCtx(ctx, d) {
				for k := j; k < s.Count; k++ {
					sends[k].Err, outs[k].Kind = "aborted", "aborted"
				}
				break
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			for k := j; k < s.Count; k++ {
				sends[k].Err, outs[k].Kind = "aborted", "aborted"
			}
			break
		}
		written.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			d := &dialers[(s.First+j)%len(dialers)]
			conn := sendPark(ctx, &s, d, clk, s.First+j, j, &sends[j])
			<-sem
			written.Done()
			if conn == nil {
				outs[j].Kind = sends[j].Err
				return
			}
			wait := time.Duration(sends[j].TimeoutMs)*time.Millisecond + s.ReadSlack
			if s.Watch != nil {
				outs[j] = awaitWatched(ctx, conn, clk, wait+s.Watch.Drip, s.Watch, sends[j])
				return
			}
			outs[j] = awaitPark(ctx, conn, clk, wait)
		}()
	}
	written.Wait()
	ready(sends)
	finished.Wait()
	return outs
}

// sendPark connects and writes one parked request; nil means it failed (sr.Err says how).
func sendPark(ctx context.Context, s *workerSpec, d *net.Dialer, clk clock, i, j int, sr *sendRec) net.Conn {
	to := spreadTarget{Dial: s.Dial, Host: s.Host, Base: s.Base}
	if len(s.Spread) > 0 {
		to = s.Spread[i%len(s.Spread)]
	}
	conn, err := d.DialContext(ctx, "tcp", to.Dial)
	if err != nil {
		sr.Err = errKind(ctx, dialError{err})
		return nil
	}
	_ = conn.SetWriteDeadline(time.Now().Add(s.ReadSlack))
	// The stamp is taken before the write: the server cannot start the timeout
	// earlier, so lateness is never understated by a delay in this process.
	sent := clk.now()
	if s.TimeoutsMs != nil {
		sr.TimeoutMs = s.TimeoutsMs[j]
	} else {
		sr.TimeoutMs = sameDeadlineTimeout(s.DeadlineStamp, sent)
	}
	path := "/api/request?connId=" + url.QueryEscape(parkID(s.Prefix, i)) + "&timeout=" + formatTimeout(sr.TimeoutMs) + s.Query
	req := appendRequest(make([]byte, 0, 160+len(to.Host)+len(to.Base)+len(s.Query)), "GET", target{host: to.Host, base: to.Base}, path, nil, true)
	if _, err = conn.Write(req); err != nil {
		conn.Close()
		sr.Err = "write_" + errKind(ctx, err)
		return nil
	}
	sr.Sent = sent
	return conn
}

// awaitPark reads the answer of a parked request and closes its connection.
func awaitPark(ctx context.Context, conn net.Conn, clk clock, wait time.Duration) outRec {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := readResponse(bufio.NewReaderSize(conn, 1024), 64<<10)
	done := clk.now()
	if err != nil {
		return outRec{Done: done, Kind: errKind(ctx, err)}
	}
	return outRec{Done: done, Kind: parkedKind(resp)}
}

// parkedKind classifies the answer to a parked request.
func parkedKind(r response) string {
	st, ok := bodyStatus(r.body)
	switch {
	case r.status == 200 && ok && st == "ok":
		return "ok"
	case r.status == 500 && ok && st == "killed":
		return "killed"
	case r.status == 200:
		return "bad_body"
	}
	return "status_" + strconv.Itoa(r.status)
}
