package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parkd/parkd/wire"
)

// Watching a parked request's ending as a client meets it: every read is
// stamped as it returns, so the instant the status line, the first byte, an
// RST or an EOF arrived is known, and so is each piece of a dripping body.
// What was read is then classified (classify) for the section-6 phases.

// watchSpec says what a watched answer's pieces are, so their arrival can be
// stamped. It travels to child processes as JSON.
type watchSpec struct {
	Pieces  int           `json:"pieces,omitempty"`   // stamp each of this many pieces; 0: none
	BodyLen int           `json:"body_len,omitempty"` // the body they make up; piece k ends at byte BodyLen·k/Pieces
	Drip    time.Duration `json:"drip,omitempty"`     // over this long after the deadline
}

// watchMax bounds what one watched answer keeps: the largest body section 6
// allows and its headers.
const watchMax = 1<<20 + 64<<10

// Endings a watched request can see, besides status_CODE (a complete
// answer), truncate_CODE (headers, then less than half of the body, then
// EOF) and cut_CODE (EOF with half of the body or more, but not all).
const (
	seenReset      = "reset"             // an RST, nothing read
	seenClose      = "close"             // EOF, nothing read
	seenGarbage    = "garbage"           // 16 bytes or more that do not start with HTTP/, then EOF
	seenNotHTTP    = "not_http"          // fewer bytes than that, or not followed by EOF
	seenCutHead    = "cut_head"          // a status line but the headers never ended
	seenBadHead    = "bad_response"      // a status line or header that does not parse
	seenResetAfter = "reset_after_bytes" // an RST after some bytes of an answer
	seenTimeout    = "timeout"           // nothing decisive before the read deadline
	seenTooLarge   = "too_large"         // more than watchMax bytes
)

// watcher follows one connection's bytes.
type watcher struct {
	spec  *watchSpec
	due   int64 // stamp of the deadline as the client sees it: request written + timeout
	buf   []byte
	first int64 // stamp of the first byte read
	line  int64 // stamp when the status line had arrived
	head  int   // length of the status line and headers; 0 until they have all arrived
	code  int
	clen  int // Content-Length; -1 when none was sent
	bad   bool
	late  []int64
}

func newWatcher(spec *watchSpec, due int64) *watcher {
	return &watcher{spec: spec, due: due, buf: make([]byte, 0, 512), clen: -1}
}

// notHTTP reports whether what has arrived cannot be the start of an answer.
func (w *watcher) notHTTP() bool {
	n := min(len(w.buf), 5)
	return n > 0 && string(w.buf[:n]) != "HTTP/"[:n]
}

// feed takes note of what the last read brought at stamp now; done means the
// answer is complete (or cannot become one) and reading may stop.
func (w *watcher) feed(now int64) (done bool) {
	if w.first == 0 && len(w.buf) > 0 {
		w.first = now
	}
	if w.notHTTP() {
		return false // read on, to see whether an EOF follows
	}
	if w.line == 0 && bytes.IndexByte(w.buf, '\n') >= 0 {
		w.line = now
	}
	if w.head == 0 {
		i := bytes.Index(w.buf, []byte("\r\n\r\n"))
		if i < 0 {
			return false
		}
		w.head = i + 4
		w.code, w.clen, w.bad = parseHead(w.buf[:i])
		if w.bad {
			return true
		}
	}
	body := len(w.buf) - w.head
	if s := w.spec; s != nil && s.Pieces > 0 {
		for len(w.late) < s.Pieces {
			k := len(w.late) + 1
			if body < s.BodyLen*k/s.Pieces {
				break
			}
			due := w.due + int64(s.Drip)*int64(k)/int64(s.Pieces)
			w.late = append(w.late, (now-due)/int64(time.Microsecond))
		}
	}
	return !hasBody(w.code) || w.clen >= 0 && body >= w.clen
}

// hasBody says whether an answer with code carries a body.
func hasBody(code int) bool { return code >= 200 && code != 204 && code != 304 }

// parseHead reads a status line and headers: the code and Content-Length
// (-1 without one); bad when they do not parse.
func parseHead(head []byte) (code, clen int, bad bool) {
	lines := strings.Split(string(head), "\r\n")
	proto, rest, _ := strings.Cut(lines[0], " ")
	codeStr, _, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if !strings.HasPrefix(proto, "HTTP/1.") || len(codeStr) != 3 || err != nil || code < 100 {
		return 0, -1, true
	}
	clen = -1
	for _, h := range lines[1:] {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return 0, -1, true
		}
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < 0 {
				return 0, -1, true
			}
			clen = n
		}
	}
	return code, clen, false
}

// outcome classifies what was read, ended by err at stamp end (err nil:
// the answer was complete).
func (w *watcher) outcome(ctx context.Context, err error, end int64) outRec {
	o := outRec{Done: end, Effect: w.line, Late: w.late}
	if w.head > 0 {
		o.Bytes = len(w.buf) - w.head
		o.Length = w.clen
	}
	reset, eof := errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF)
	switch {
	case ctx.Err() != nil:
		o.Kind = "aborted"
	case err == nil && len(w.buf) > watchMax:
		o.Kind = seenTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		o.Kind = seenTimeout
	case len(w.buf) == 0 && reset:
		o.Kind, o.Effect = seenReset, end
	case len(w.buf) == 0 && eof:
		o.Kind, o.Effect = seenClose, end
	case len(w.buf) == 0:
		o.Kind, o.Effect = errKind(ctx, err), end
	case w.notHTTP():
		o.Kind, o.Effect = seenNotHTTP, w.first
		if eof && len(w.buf) >= 16 {
			o.Kind = seenGarbage
		}
	case w.bad:
		o.Kind = seenBadHead
	case reset:
		o.Kind = seenResetAfter
	case w.head == 0:
		o.Kind = seenCutHead
	case err == nil:
		o.Kind = "status_" + strconv.Itoa(w.code)
		if hasBody(w.code) {
			o.Word, _ = bodyStatus(w.buf[w.head : w.head+w.clen])
		}
	case !eof:
		o.Kind = errKind(ctx, err)
	case w.clen < 0:
		o.Kind = seenBadHead // a body that runs to EOF: neither server sends one
	case 2*o.Bytes < w.clen:
		o.Kind = "truncate_" + strconv.Itoa(w.code)
	default:
		o.Kind = "cut_" + strconv.Itoa(w.code)
	}
	return o
}

// awaitWatched reads a parked request's ending for at most wait and closes
// its connection.
func awaitWatched(ctx context.Context, conn net.Conn, clk clock, wait time.Duration, spec *watchSpec, sr sendRec) outRec {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	return watch(ctx, conn, clk, newWatcher(spec, sr.Sent+sr.TimeoutMs*int64(time.Millisecond)))
}

// watch reads r into w until the answer is complete, the connection ends,
// or watchMax bytes have come.
func watch(ctx context.Context, r io.Reader, clk clock, w *watcher) outRec {
	for {
		if cap(w.buf)-len(w.buf) < 256 {
			w.buf = append(w.buf, make([]byte, cap(w.buf))...)[:len(w.buf)]
		}
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		now := clk.now()
		w.buf = w.buf[:len(w.buf)+n]
		if n > 0 && w.feed(now) {
			return w.outcome(ctx, nil, now)
		}
		if err == nil && len(w.buf) > watchMax {
			return w.outcome(ctx, nil, now)
		}
		if err != nil {
			return w.outcome(ctx, err, now)
		}
	}
}

// expectedSeen is the ending a client must see when action a is applied:
// at the deadline (killed false) or by a kill. A status code or truncate
// then also needs the body's "status" word (ok or killed).
func expectedSeen(a string, killed bool) (kind, word string) {
	word = "ok"
	if killed {
		word = "killed"
	}
	switch a {
	case "reset", "close", "garbage":
		return a, ""
	case "truncate":
		if killed {
			return "truncate_500", ""
		}
		return "truncate_200", ""
	}
	if code, _ := strconv.Atoi(a); !hasBody(code) {
		word = ""
	}
	return "status_" + a, word
}

// seenRight says whether o is the ending expected for action a, and for a
// complete answer with a body of bodyLen bytes at least (the JSON padded),
// that it came whole with the right word.
func seenRight(o outRec, a string, killed bool, bodyLen int) bool {
	kind, word := expectedSeen(a, killed)
	if o.Kind != kind || o.Word != word {
		return false
	}
	if !strings.HasPrefix(kind, "status_") || word == "" {
		return true
	}
	want := max(bodyLen, len(`{"status":"`+word+`"}`))
	return o.Length == want && o.Bytes == want
}

// singleAction checks that s is one then ACTION: a status code 200–599,
// reset, close, garbage or truncate, without a weight.
func singleAction(s string) (wire.Action, error) {
	t, err := wire.ParseThen(s)
	if err != nil {
		return 0, err
	}
	a, ok := t.Only()
	if !ok || strings.Contains(s, ":") {
		return 0, fmt.Errorf("%q is not one action (a status code 200-599, reset, close, garbage or truncate)", s)
	}
	return a, nil
}
