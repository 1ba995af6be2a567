package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// A subscriber to GET /api/events: its connection, read as bytes arrive,
// and the checks of every frame it gets (streams.go runs them for a phase).

// Errors a stream's head can show.
const (
	errStreamStatus    = wireError("the event stream did not answer 200")
	errNotEventStream  = wireError("the event stream's Content-Type is not text/event-stream")
	errNoSnapshot      = wireError("the event stream sent no snapshot")
	errStreamBodyEnded = wireError("the event stream's body ended")
)

// sseConn is one connection to GET /api/events, parsed as its bytes come:
// the head, then the body's frames, each handed over with the stamp of the
// read that completed it.
type sseConn struct {
	conn   net.Conn
	clk    clock
	buf    []byte
	head   []byte // the head, until it has all come
	hd     streamHead
	inBody bool
	body   bodyDecoder
	p      *sseParser
	stamp  int64 // when the read being parsed returned
	bytes  int64 // bytes read, head included
	over   bool  // the body's last chunk came
}

// dialStream connects to the server and asks for the event stream;
// rcvBuf > 0 sets the socket's receive buffer before the request goes.
func dialStream(ctx context.Context, tgt target, timeout time.Duration, rcvBuf int, clk clock, frame func(*sseFrame)) (*sseConn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", tgt.dial)
	if err != nil {
		return nil, dialError{err}
	}
	if tc, ok := conn.(*net.TCPConn); ok && rcvBuf > 0 {
		_ = tc.SetReadBuffer(rcvBuf)
	}
	c := &sseConn{conn: conn, clk: clk, buf: make([]byte, 64<<10), p: newSSEParser(frame)}
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(appendRequest(nil, "GET", tgt, "/api/events", nil, false)); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return c, nil
}

// readSome reads once and parses what came.
func (c *sseConn) readSome() error {
	n, err := c.conn.Read(c.buf)
	c.stamp = c.clk.now()
	c.bytes += int64(n)
	if n > 0 {
		if perr := c.take(c.buf[:n]); perr != nil {
			return perr
		}
	}
	return err
}

// take parses b: the head until it has all come, then the body.
func (c *sseConn) take(b []byte) error {
	if !c.inBody {
		c.head = append(c.head, b...)
		i := bytes.Index(c.head, []byte("\r\n\r\n"))
		if i < 0 {
			if len(c.head) > 64<<10 {
				return errStreamHead
			}
			return nil
		}
		hd, err := parseStreamHead(c.head[:i])
		switch {
		case err != nil:
			return err
		case hd.code != 200:
			return fmt.Errorf("%w: %d", errStreamStatus, hd.code)
		case !isEventStream(hd.contentType):
			return fmt.Errorf("%w: %q", errNotEventStream, hd.contentType)
		}
		c.hd, c.inBody, c.body.chunked = hd, true, hd.chunked
		b = c.head[i+4:]
	}
	if c.over {
		return nil
	}
	err := c.body.feed(b, c.p.feed)
	if err == io.EOF {
		c.over = true
		return nil
	}
	return err
}

// until reads until done says so or the read fails, within timeout.
func (c *sseConn) until(timeout time.Duration, done func() bool) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{}) //nolint:errcheck // only clears it
	for !done() {
		if err := c.readSome(); err != nil {
			return err
		}
		if c.over && !done() {
			return errStreamBodyEnded
		}
	}
	return nil
}

// streamErrKind names why a stream failed or ended.
func streamErrKind(ctx context.Context, err error) string {
	var code int
	switch {
	case ctx.Err() != nil:
		return "aborted"
	case errors.Is(err, errStreamStatus):
		if _, after, ok := strings.Cut(err.Error(), ": "); ok {
			code, _ = strconv.Atoi(after)
		}
		return "status_" + strconv.Itoa(code)
	case errors.Is(err, errNotEventStream):
		return "not_event_stream"
	case errors.Is(err, errStreamHead):
		return "bad_head"
	case errors.Is(err, errChunkFormat):
		return "bad_chunk"
	case errors.Is(err, errNoSnapshot):
		return "no_snapshot"
	case errors.Is(err, errStreamBodyEnded):
		return "body_ended"
	case errors.Is(err, io.EOF):
		return "server_closed"
	case errors.Is(err, syscall.ECONNRESET):
		return "server_reset"
	}
	return errKind(ctx, err)
}

// waveKey names the requests of one wave: connIds prefix + index, index
// below n.
type waveKey struct {
	prefix string
	n      int
}

// What a subscriber must see of one request, as bits: its parked event,
// its finished event. expectUnknown: the client cannot tell whether the
// request was parked (it failed), so its events are not checked.
const (
	seenParked    = 1 << evParked
	seenFinished  = 1 << evFinished
	expectUnknown = -1
)

// waveSeen is what a subscriber saw of one wave's requests.
type waveSeen struct {
	prefix []byte
	seen   []uint8 // seenParked | seenFinished, by index
}

// subscriber is one client of the event stream during a phase. Its fields
// are its reading goroutine's until that goroutine has returned, but for
// got, done and closing.
type subscriber struct {
	c        *sseConn
	waves    []waveSeen
	frames   int
	events   int  // parked and finished frames, the run's or not
	snapshot bool // the first frame was a good snapshot
	last     eventID
	lastText []byte
	idBuf    eventID
	runSeen  [2]int       // the run's events, first sightings, by kind
	late     [2][]float64 // their lateness, ms
	foreign  int          // events of requests not in the phase's waves
	errs     map[string]int
	examples []string
	ended    string // why the stream ended before the tool closed it; "" when it did not

	got     atomic.Int64 // the run's events so far
	done    atomic.Bool  // the reading goroutine returned
	closing atomic.Bool  // the tool is closing the stream
}

func newSubscriber(waves []waveKey) *subscriber {
	s := &subscriber{errs: map[string]int{}}
	for _, w := range waves {
		s.waves = append(s.waves, waveSeen{prefix: []byte(w.prefix), seen: make([]uint8, w.n)})
	}
	return s
}

// open connects and reads the stream's head and its snapshot.
func (s *subscriber) open(ctx context.Context, tgt target, timeout time.Duration, rcvBuf int, clk clock) error {
	c, err := dialStream(ctx, tgt, timeout, rcvBuf, clk, s.frame)
	if err != nil {
		return err
	}
	s.c = c
	if err := c.until(timeout, func() bool { return s.frames > 0 }); err != nil {
		c.conn.Close()
		return err
	}
	if !s.snapshot {
		c.conn.Close()
		return errNoSnapshot
	}
	return nil
}

// fail counts one problem of kind, keeping the first few examples.
func (s *subscriber) fail(kind, format string, args ...any) {
	s.errs[kind]++
	if len(s.examples) < 5 {
		s.examples = append(s.examples, kind+": "+fmt.Sprintf(format, args...))
	}
}

// frame checks and records one frame; it runs on the reading goroutine.
func (s *subscriber) frame(f *sseFrame) {
	s.frames++
	kind := evParked
	switch string(f.event) {
	case "snapshot":
		switch {
		case s.frames != 1:
			s.fail("snapshot_not_first", "a snapshot as frame %d", s.frames)
		case f.hasID:
			s.fail("snapshot_with_id", "the snapshot has id %q", f.id)
		case len(f.data) == 0 || f.data[0] != '[' || !json.Valid(f.data):
			s.fail("snapshot_bad_data", "the snapshot's data is not a JSON array: %.80q", f.data)
		default:
			s.snapshot = true
		}
		return
	case "parked":
	case "finished":
		kind = evFinished
	default:
		s.fail("unknown_event", "event %q, frame %d", f.event, s.frames)
		return
	}
	s.events++
	if s.frames == 1 {
		s.fail("snapshot_missing", "the first frame is %s", f.event)
	}
	s.checkID(f)
	id, cause, ok := eventFields(f.data, kind)
	if !ok {
		s.fail("bad_data", "%s %q: no connId or time in %.120q", f.event, f.id, f.data)
		return
	}
	w, i, ok := s.match(id)
	if !ok {
		s.foreign++
		return
	}
	bit := uint8(1) << kind
	if w.seen[i]&bit != 0 {
		s.fail("duplicate_"+string(f.event), "%s %q of %s again", f.event, f.id, id)
		return
	}
	w.seen[i] |= bit
	s.runSeen[kind]++
	s.late[kind] = append(s.late[kind], nsToMs(s.c.stamp-causeMs(cause)))
	s.got.Add(1)
}

// causeMs turns Unix milliseconds into a stamp.
func causeMs(ms int64) int64 { return ms * int64(time.Millisecond) }

// checkID checks that f has an id and that it comes after the last one.
func (s *subscriber) checkID(f *sseFrame) {
	if !f.hasID {
		s.fail("missing_id", "a %s event without an id, after %q", f.event, s.lastText)
		return
	}
	id, ok := parseEventID(s.idBuf, f.id)
	s.idBuf = id
	if !ok {
		s.fail("bad_id", "id %q of a %s event", f.id, f.event)
		return
	}
	if len(s.last) > 0 && !id.after(s.last) {
		s.fail("id_not_increasing", "id %q after %q", f.id, s.lastText)
	}
	s.last, s.lastText = append(s.last[:0], id...), append(s.lastText[:0], f.id...)
}

// match finds the wave and index of connID.
func (s *subscriber) match(connID []byte) (*waveSeen, int, bool) {
	for k := range s.waves {
		w := &s.waves[k]
		rest, ok := bytes.CutPrefix(connID, w.prefix)
		if !ok || !allDigits(rest) || len(rest) > 9 {
			continue
		}
		i := 0
		for _, c := range rest {
			i = i*10 + int(c-'0')
		}
		if i < len(w.seen) {
			return w, i, true
		}
	}
	return nil, 0, false
}

// run reads the stream until it ends, or the tool closes it.
func (s *subscriber) run(ctx context.Context) {
	defer s.done.Store(true)
	for {
		err := s.c.readSome()
		if err == nil && s.c.over {
			err = errStreamBodyEnded
		}
		if err != nil {
			if !s.closing.Load() && ctx.Err() == nil {
				s.ended = streamErrKind(ctx, err)
			}
			return
		}
	}
}

// close ends the stream from the tool's side.
func (s *subscriber) close() {
	s.closing.Store(true)
	s.c.conn.Close()
}
