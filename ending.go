package main

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/socket"
	"github.com/parkd/parkd/wire"
	"github.com/valyala/fasthttp"
)

// How a parked request ends: the bytes of its answer, and for a request
// that asked for it (section 6 of docs/API.md) the other endings, padded
// bodies and a body that drips. A plain park only ever uses appendHead and
// its body, in one write.

// Bodies of the answers a parked request gets.
const (
	okBody           = `{"status":"ok"}`
	killedBody       = `{"status":"killed"}`
	shuttingDownBody = `{"status":"shutting down"}`
)

// garbageBytes is what then=garbage writes before it closes: always the
// same, so that a test can recognise it, and nothing like an HTTP answer
// (it starts with bytes no status line has).
const garbageBytes = "\x00\xff\xfeparkd garbage, not HTTP\xfd\xfc\x00\r\n\r\n"

// dripPiece is the shortest time between two pieces of a dripping body.
const dripPiece = 100 * time.Millisecond

// Phases of a parked request, as listings show them.
const (
	phaseWaiting uint32 = iota // before its deadline
	phaseBody                  // its headers have left, its body drips
)

// phaseNames are the phases as listings write them.
var phaseNames = [...]string{phaseWaiting: "waiting", phaseBody: "body"}

// ending is how one parked request ended, for its accounting.
type ending struct {
	outcome   registry.Outcome
	then      wire.Action // what was applied; 0 when nothing was (the client left)
	code      int         // the status code written; 0 for none
	bytesSent int64       // body bytes written
	dripped   bool        // its headers left at the deadline, its lateness already counted
}

// shaping is what section 6 asked of one parked request, and where its
// answer stands. A plain park has none.
type shaping struct {
	then    wire.Action // drawn when it parked; a status code by default
	bodyLen int         // the body's length, padding included; JSON bodies shorter than it are padded
	pieces  int         // the pieces its body drips in; 0: it does not drip

	// Guarded by the parkedConn's mu.
	code       int       // the status code of the headers sent
	headerRest []byte    // header bytes the socket has not taken yet
	lastMove   time.Time // when the socket last took a byte
	lastPiece  int       // the last piece whose lateness was counted
	stalled    bool      // the client took nothing for writeTimeout: cut short

	// Read by listings without the lock.
	phase atomic.Uint32
	sent  atomic.Int64 // body bytes the socket has taken
}

// newShaping draws what sh asks of one request: its action and, with
// jitter, its timeout.
func (s *server) newShaping(sh *wire.Shape, timeout time.Duration) (*shaping, time.Duration) {
	s.drawMu.Lock()
	then := sh.Then.Draw(s.draws)
	if sh.Jitter > 0 {
		timeout += time.Duration(s.draws.Int64N(int64(sh.Jitter/time.Millisecond)+1)) * time.Millisecond
	}
	s.drawMu.Unlock()
	if then == 0 {
		then = fasthttp.StatusOK
	}
	shp := &shaping{then: then, bodyLen: sh.Body}
	if sh.Drip > 0 && (then == wire.ActionTruncate || then.IsStatus() && hasBody(int(then))) {
		length := max(len(okBody), sh.Body)
		shp.pieces = min(length, int((sh.Drip+dripPiece-1)/dripPiece))
	}
	return shp, timeout
}

// drawKill is the action a kill draws from its then list: a 500 without
// one.
func (s *server) drawKill(then wire.Then) wire.Action {
	if then.IsZero() {
		return fasthttp.StatusInternalServerError
	}
	if a, ok := then.Only(); ok {
		return a
	}
	s.drawMu.Lock()
	defer s.drawMu.Unlock()
	return then.Draw(s.draws)
}

// holdsConn says whether the action needs the connection itself (a reset,
// a close, bytes of its own) or a body that drips, so that even a zero
// timeout parks.
func (sh *shaping) holdsConn() bool {
	return !sh.then.IsStatus() || sh.pieces > 0
}

// hasBody says whether an answer with code carries a body.
func hasBody(code int) bool {
	return code != fasthttp.StatusNoContent && code != fasthttp.StatusNotModified
}

// bodyLength is the length of json padded as sh asks, or 0 for a code
// without a body.
func (sh *shaping) bodyLength(json string, code int) int {
	if !hasBody(code) {
		return 0
	}
	return max(len(json), sh.bodyLen)
}

// thenText is the action a listing shows: the drawn one, "200" for a
// plain park.
func thenText(sh *shaping) string {
	if sh == nil {
		return "200"
	}
	return sh.then.String()
}

// appendHead writes the status line and headers of an answer, framed as
// fasthttp frames its own: HTTP/1.1, Content-Length (none when length is
// negative), and Connection: keep-alive for an HTTP/1.0 client that keeps
// the connection.
func appendHead(b, date, instance []byte, code, length int, http11, closeAfter bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(code)...)
	b = append(b, "\r\nServer: parkd\r\nDate: "...)
	b = append(b, date...)
	b = append(b, "\r\nParkd-Instance: "...)
	b = append(b, instance...)
	if length >= 0 {
		b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(length), 10)
	}
	switch {
	case closeAfter:
		b = append(b, "\r\nConnection: close"...)
	case !http11:
		b = append(b, "\r\nConnection: keep-alive"...)
	}
	return append(b, "\r\n\r\n"...)
}

// appendBodyParts appends the bytes [from, to) of json padded with spaces,
// as slices of json and of pad (a block of spaces): no copy is made.
func appendBodyParts(bufs [][]byte, json string, from, to int, pad []byte) [][]byte {
	if from < len(json) {
		bufs = append(bufs, []byte(json[from:min(to, len(json))]))
		from = len(json)
	}
	for from < to {
		n := min(to-from, len(pad))
		bufs = append(bufs, pad[:n])
		from += n
	}
	return bufs
}

// writeRest writes what is left of bufs after the first n bytes, blocking
// until deadline at most.
func writeRest(sock *socket.Socket, bufs [][]byte, n int, deadline time.Time) error {
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		if err := sock.WriteAll(b[n:], time.Until(deadline)); err != nil {
			return err
		}
		n = 0
	}
	return nil
}

// dateCache holds the Date header's value for the current second:
// formatting it for each of thousands of answers due at one instant would
// be a tenth of their cost.
type dateCache struct {
	cur atomic.Pointer[dateLine]
}

type dateLine struct {
	sec  int64
	text []byte
}

// now is the Date header's value for this second; never modified.
func (d *dateCache) now() []byte {
	t := time.Now()
	if l := d.cur.Load(); l != nil && l.sec == t.Unix() {
		return l.text
	}
	l := &dateLine{sec: t.Unix(), text: t.UTC().AppendFormat(nil, http.TimeFormat)}
	d.cur.Store(l)
	return l.text
}
