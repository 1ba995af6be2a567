package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Park kinds, also the keys of soak_requests.
const (
	skPark      = "park"             // keep-alive park of 0–parkMax
	skParkClose = "park_close"       // the same with Connection: close
	skTarget    = "park_kill_target" // long park published for other clients to kill
	skRace      = "park_kill_race"   // short park published about when it ends: kill races deadline
	skHangup    = "park_hangup"      // long park the client hangs up on
	skPipelined = "park_pipelined"   // park of 0 or 0.1 s inside a pipelined batch
)

// loop starts actions until end, then closes its connection.
func (cl *soakClient) loop(ctx context.Context, end time.Time) {
	defer cl.drop()
	for ctx.Err() == nil && time.Now().Before(end) {
		switch w := cl.rng.IntN(100); {
		case w < 28:
			t := int64(0)
			if cl.rng.IntN(8) != 0 {
				t = cl.between(0, cl.s.o.parkMax)
			}
			kind := skPark
			if cl.rng.IntN(4) == 0 {
				kind = skParkClose
			}
			cl.park(ctx, kind, t, -1)
		case w < 42 && cl.rng.IntN(4) == 0:
			t := cl.between(cl.s.o.raceMin, cl.s.o.raceMax)
			cl.park(ctx, skRace, t, time.Duration(cl.rng.Int64N(t+101))*time.Millisecond)
		case w < 42:
			cl.park(ctx, skTarget, cl.between(cl.s.o.longMin, cl.s.o.longMax), time.Duration(cl.rng.Int64N(cl.s.o.publishMax.Milliseconds()+1))*time.Millisecond)
		case w < 64:
			cl.kill(ctx)
		case w < 72:
			cl.hangup(ctx)
		case w < 84:
			cl.pipeline(ctx)
		default:
			cl.poll(ctx)
		}
	}
}

// park parks one request on the keep-alive connection and waits for its answer.
// A kill target joins the pool publishAfter after it was written (never when
// negative), and stays there after its answer until a kill finds it gone.
func (cl *soakClient) park(ctx context.Context, kind string, timeoutMs int64, publishAfter time.Duration) {
	s := cl.s
	id := cl.nextID("s")
	s.register(id, kind, timeoutMs)
	sc, err := cl.conn(ctx)
	if err != nil {
		s.unsent(id, err)
		return
	}
	closeConn := kind == skParkClose
	sent := time.Now()
	if err := sc.write(cl.req("GET", parkPath(id, timeoutMs), nil, closeConn)); err != nil {
		cl.drop()
		s.lost(id, "write: "+errKind(ctx, err))
		return
	}
	var pub *time.Timer
	if publishAfter >= 0 {
		pub = time.AfterFunc(publishAfter, func() { s.publish(id) })
	}
	resp, err := sc.read(ctx, sent.Add(time.Duration(timeoutMs)*time.Millisecond+s.o.slack))
	got := time.Now()
	if pub != nil {
		pub.Stop()
	}
	if err != nil {
		cl.drop()
		s.lost(id, errKind(ctx, err))
		return
	}
	class := s.answered(id, resp, sent, got)
	if closeConn || resp.close {
		cl.main = nil
		cl.expectClose(ctx, id, sc)
		return
	}
	sc.reused = true
	cl.afterAnswer(ctx, id, class == "killed" || pub != nil || cl.rng.IntN(4) == 0)
}

// expectClose checks that the server closes a connection after the answer that
// said it would, and writes nothing more on it.
func (cl *soakClient) expectClose(ctx context.Context, after string, sc *soakConn) {
	defer sc.c.Close()
	extra, err := sc.readRest(ctx, cl.s.o.slack)
	switch {
	case len(extra) > 0:
		cl.s.violation(violDuplicateAnswer, fmt.Sprintf("%s: %s more after its answer on a closing connection", after, short(extra)))
	case err != nil && ctx.Err() == nil:
		cl.s.violation(violCloseNotHonoured, fmt.Sprintf("%s: connection not closed %s after a closing answer (%s)", after, cl.s.o.slack, errKind(ctx, err)))
	}
}

// afterAnswer checks that nothing but the answer came for a park on the
// keep-alive connection: no bytes beyond it already, and, when probe is set, the
// next answer is the one to a kill of a never-parked id, which echoes that id.
func (cl *soakClient) afterAnswer(ctx context.Context, after string, probe bool) {
	sc := cl.main
	if sc == nil {
		return
	}
	if n := sc.br.Buffered(); n > 0 {
		b, _ := sc.br.Peek(n)
		cl.s.violation(violDuplicateAnswer, fmt.Sprintf("%s: unrequested bytes after its answer: %s", after, short(b)))
		cl.drop()
		return
	}
	if !probe {
		return
	}
	s := cl.s
	nonce := cl.nextID("x")
	body, _ := json.Marshal(map[string]string{"connId": nonce})
	s.mu.Lock()
	s.res.SoakProbes++
	s.mu.Unlock()
	err := sc.write(cl.req("PUT", "/api/kill", body, false))
	var resp response
	if err == nil {
		resp, err = sc.read(ctx, time.Now().Add(ioTimeout))
	}
	if err != nil {
		cl.drop()
		if ctx.Err() == nil {
			s.violation(violRequestFailed, fmt.Sprintf("probe after %s: %s", after, errKind(ctx, err)))
		}
		return
	}
	if st, _ := bodyStatus(resp.body); resp.status != 400 || st != "invalid connection Id : "+nonce {
		s.violation(violDuplicateAnswer, fmt.Sprintf("%s: the next answer on its connection was %d %s, not the probe's 400", after, resp.status, short(resp.body)))
		cl.drop()
		return
	}
	if resp.close {
		cl.drop()
	}
}

// kill kills a random kill target, or polls when there is none.
func (cl *soakClient) kill(ctx context.Context) {
	id, ok := cl.s.pick(cl.rng)
	if !ok {
		cl.poll(ctx)
		return
	}
	cl.killID(ctx, id, "kill")
}

func (cl *soakClient) killID(ctx context.Context, id, kind string) {
	cl.s.count(kind, 1)
	body, _ := json.Marshal(map[string]string{"connId": id})
	resp, retried, err := cl.do(ctx, cl.req("PUT", "/api/kill", body, false))
	if err != nil && cl.s.parent.Err() != nil {
		return
	}
	cl.s.killResult(id, resp, retried, err)
}

// hangup parks on a fresh connection and hangs up after a short delay: a full
// close, or a half-close after which the server must write nothing and close.
func (cl *soakClient) hangup(ctx context.Context) {
	s := cl.s
	id := cl.nextID("s")
	timeoutMs := cl.between(s.o.longMin, s.o.longMax)
	s.register(id, skHangup, timeoutMs)
	sc, err := cl.dial(ctx)
	if err != nil {
		s.unsent(id, err)
		return
	}
	defer sc.c.Close()
	if err := sc.write(cl.req("GET", parkPath(id, timeoutMs), nil, false)); err != nil {
		s.lost(id, "write: "+errKind(ctx, err))
		return
	}
	if !sleepCtx(ctx, time.Duration(cl.rng.Int64N(s.o.hangupMax.Milliseconds()+1))*time.Millisecond) {
		s.lost(id, "aborted before the hang-up")
		return
	}
	tc, half := sc.c.(*net.TCPConn)
	half = half && cl.rng.IntN(2) == 0
	at := time.Now()
	s.mu.Lock()
	s.parks[id].hungUpAt = at
	s.res.SoakHangups++
	if half {
		s.res.SoakHangupsHalfClose++
	}
	s.mu.Unlock()
	var data []byte
	if half {
		if err = tc.CloseWrite(); err == nil {
			data, err = sc.readRest(ctx, s.o.slack)
		}
	} else {
		err = sc.c.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.parks[id]
	if len(data) > 0 {
		resp, perr := readResponse(bufio.NewReader(bytes.NewReader(data)), soakMaxBody)
		if perr == nil && resp.status == 503 { // refused before the hang-up: the server was full
			rec.answer, rec.endedAt = "busy_503", at
			s.res.SoakAnswers["busy_503"]++
			return
		}
		s.violate(violHangupAnswered, fmt.Sprintf("%s: %s written after a half-close into a %d ms park", id, short(data), timeoutMs))
	} else if err != nil && ctx.Err() == nil {
		s.violate(violHangupNotClosed, fmt.Sprintf("%s: connection not closed %s after a half-close (%s)", id, s.o.slack, errKind(ctx, err)))
	}
	rec.answer = "hungup"
	s.res.SoakHungUp++
}

// pipelineItem is one request of a pipelined batch.
type pipelineItem struct {
	kind      string // park, status or healthz
	id        string
	timeoutMs int64
}

// pipeline writes 2–4 requests in one write — a 0.1 s park first, then parks of
// 0.1 s or 0 s, serverStatus and healthz — and reads their answers in order.
func (cl *soakClient) pipeline(ctx context.Context) {
	s := cl.s
	items := make([]pipelineItem, 2+cl.rng.IntN(3))
	var buf []byte
	var names []string
	for i := range items {
		k := 0
		if i > 0 {
			k = cl.rng.IntN(4)
		}
		it := &items[i]
		switch k {
		case 0, 2:
			it.kind, it.id = "park", cl.nextID("s")
			if k == 0 {
				it.timeoutMs = 100
			}
			s.register(it.id, skPipelined, it.timeoutMs)
			buf = append(buf, cl.req("GET", parkPath(it.id, it.timeoutMs), nil, false)...)
			names = append(names, it.id)
		case 1:
			it.kind = "status"
			buf = append(buf, cl.req("GET", "/api/serverStatus", nil, false)...)
			names = append(names, "serverStatus")
		case 3:
			it.kind = "healthz"
			buf = append(buf, cl.req("GET", "/healthz", nil, false)...)
			names = append(names, "healthz")
		}
	}
	batch := "pipeline [" + strings.Join(names, " ") + "]"
	s.mu.Lock()
	s.res.SoakPipelinedBatches++
	s.res.SoakPipelinedRequests += len(items)
	for _, it := range items {
		if it.kind != "park" {
			s.res.SoakRequests[it.kind+"_pipelined"]++
		}
	}
	s.mu.Unlock()
	fail := func(from int, why string) {
		cl.drop()
		for _, it := range items[from:] {
			if it.kind == "park" {
				s.lost(it.id, why)
			} else if s.parent.Err() == nil {
				s.violation(violRequestFailed, fmt.Sprintf("%s: %s: %s", batch, it.kind, why))
			}
		}
	}
	sc, err := cl.conn(ctx)
	if err != nil {
		for _, it := range items {
			if it.kind == "park" {
				s.unsent(it.id, err)
			}
		}
		return
	}
	sent := time.Now()
	if err := sc.write(buf); err != nil {
		fail(0, "write: "+errKind(ctx, err))
		return
	}
	for i, it := range items {
		resp, err := sc.read(ctx, time.Now().Add(time.Duration(it.timeoutMs)*time.Millisecond+s.o.slack))
		if err != nil {
			fail(i, errKind(ctx, err))
			return
		}
		switch it.kind {
		case "park":
			s.answered(it.id, resp, sent, time.Now())
		case "status":
			s.checkStatus(resp, sent, violPipelineMismatch)
		case "healthz":
			if resp.status != 200 {
				s.violation(violPipelineMismatch, fmt.Sprintf("%s: healthz answered %d %s", batch, resp.status, short(resp.body)))
			}
		}
		if resp.close {
			if i < len(items)-1 {
				fail(i+1, "connection closed after answer "+strconv.Itoa(i+1))
				return
			}
			cl.main = nil
			cl.expectClose(ctx, batch, sc)
			return
		}
	}
	sc.reused = true
	cl.afterAnswer(ctx, batch, cl.rng.IntN(4) == 0)
}

// poll reads serverStatus, or 1 time in 4 /api/requests, and checks it.
func (cl *soakClient) poll(ctx context.Context) {
	path, kind := "/api/serverStatus", "status"
	if cl.rng.IntN(4) == 0 {
		path, kind = "/api/requests", "requests"
	}
	cl.s.count(kind, 1)
	cl.s.mu.Lock()
	if kind == "status" {
		cl.s.res.SoakStatusPolls++
	} else {
		cl.s.res.SoakRequestsPolls++
	}
	cl.s.mu.Unlock()
	sent := time.Now()
	resp, _, err := cl.do(ctx, cl.req("GET", path, nil, false))
	switch {
	case err != nil:
		if cl.s.parent.Err() == nil {
			cl.s.violation(violRequestFailed, fmt.Sprintf("GET %s: %s", path, errKind(ctx, err)))
		}
	case kind == "status":
		cl.s.checkStatus(resp, sent, violBadStatusBody)
	default:
		cl.s.checkRequests(resp, sent)
	}
}
