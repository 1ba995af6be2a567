package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
)

// Reading an event stream (GET /api/events, docs/API.md section 7) as a
// client meets it: the HTTP head, then the body, chunked or not, cut into
// Server-Sent Events frames as its bytes arrive. No allocation per frame:
// a subscriber reads tens of thousands of them a second on the load
// tool's one core, next to the parked clients it measures.

// Errors of a stream that does not parse.
const (
	errStreamHead  = wireError("malformed event-stream head")
	errChunkFormat = wireError("malformed chunked body")
)

// streamHead is what the answer to GET /api/events said before its body.
type streamHead struct {
	code        int
	contentType string
	chunked     bool
}

// parseStreamHead reads a status line and headers, without the blank line
// that ends them.
func parseStreamHead(head []byte) (streamHead, error) {
	lines := strings.Split(string(head), "\r\n")
	proto, rest, _ := strings.Cut(lines[0], " ")
	codeStr, _, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if !strings.HasPrefix(proto, "HTTP/1.") || len(codeStr) != 3 || err != nil || code < 100 {
		return streamHead{}, errStreamHead
	}
	h := streamHead{code: code}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return streamHead{}, errStreamHead
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-type":
			h.contentType = value
		case "transfer-encoding":
			codings := strings.Split(value, ",")
			h.chunked = strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked")
		}
	}
	return h, nil
}

// isEventStream says whether a Content-Type is text/event-stream, with or
// without parameters.
func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// States of a chunked body.
const (
	chunkSize     = iota // reading a chunk-size line
	chunkData            // reading a chunk's bytes
	chunkEnd             // reading the CRLF after them
	chunkTrailers        // reading trailers, after the last chunk
	chunkDone            // the body is over
)

// bodyDecoder turns the bytes of a response body, chunked or not, into its
// content, fed as they arrive.
type bodyDecoder struct {
	chunked bool
	state   int
	left    int64  // bytes of the current chunk still to come
	line    []byte // a size, CRLF or trailer line not yet ended
}

// feed passes the content in b to out. io.EOF means the last chunk has
// come: the body is over (what follows it is ignored).
func (d *bodyDecoder) feed(b []byte, out func([]byte)) error {
	if !d.chunked {
		out(b)
		return nil
	}
	for len(b) > 0 {
		switch d.state {
		case chunkData:
			n := int(min(d.left, int64(len(b))))
			out(b[:n])
			b, d.left = b[n:], d.left-int64(n)
			if d.left == 0 {
				d.state = chunkEnd
			}
			continue
		case chunkDone:
			return io.EOF
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if d.line = append(d.line, b...); len(d.line) > maxLine {
				return errChunkFormat
			}
			return nil
		}
		d.line = append(d.line, b[:i]...)
		b = b[i+1:]
		line := bytes.TrimSuffix(d.line, []byte{'\r'})
		switch d.state {
		case chunkSize:
			size, _, _ := bytes.Cut(line, []byte{';'})
			n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 62)
			if err != nil {
				return errChunkFormat
			}
			d.left, d.state = int64(n), chunkData
			if n == 0 {
				d.state = chunkTrailers
			}
		case chunkEnd:
			if len(line) != 0 {
				return errChunkFormat
			}
			d.state = chunkSize
		case chunkTrailers:
			if len(line) == 0 {
				d.state = chunkDone
			}
		}
		d.line = d.line[:0]
	}
	if d.state == chunkDone {
		return io.EOF
	}
	return nil
}

// sseFrame is one dispatched event. Its slices are the parser's and valid
// only during the call that hands it over.
type sseFrame struct {
	event []byte // the event: line's value; empty when there was none
	id    []byte
	hasID bool   // the frame had an id: line of its own
	data  []byte // its data: lines joined by a line feed
}

// sseParser cuts a stream's text into frames by the event-stream grammar
// (the WHATWG HTML standard's, which EventSource follows): lines end in
// CRLF, LF or CR; a line starting with a colon is a comment; "field:
// value" or "field: value" sets a field; a blank line dispatches the frame
// when it has data. A frame keeps the id it carries itself, so that a
// missing id shows (a browser would repeat the last one).
type sseParser struct {
	partial  []byte // a line not yet ended
	afterCR  bool   // the last line ended in CR: a LF first in the next feed belongs to it
	lines    int
	cur      sseFrame
	hasData  bool
	comments int   // comment lines, such as the keep-alive
	retry    int64 // the last retry: value, ms; -1 while none came
	ignored  int   // lines naming a field the grammar ignores
	frame    func(*sseFrame)
}

func newSSEParser(frame func(*sseFrame)) *sseParser {
	return &sseParser{retry: -1, frame: frame}
}

// feed parses b, handing each complete frame to p.frame.
func (p *sseParser) feed(b []byte) {
	for len(b) > 0 {
		if p.afterCR {
			p.afterCR = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			p.partial = append(p.partial, b...)
			return
		}
		line := b[:i]
		if len(p.partial) > 0 {
			p.partial = append(p.partial, line...)
			line = p.partial
		}
		p.afterCR = b[i] == '\r'
		b = b[i+1:]
		p.line(line)
		p.partial = p.partial[:0]
	}
}

// line takes one line, without its end.
func (p *sseParser) line(l []byte) {
	if p.lines++; p.lines == 1 {
		l = bytes.TrimPrefix(l, []byte("\xef\xbb\xbf")) // a byte order mark may open the stream
	}
	if len(l) == 0 {
		p.dispatch()
		return
	}
	if l[0] == ':' {
		p.comments++
		return
	}
	name, value, _ := bytes.Cut(l, []byte{':'})
	value = bytes.TrimPrefix(value, []byte{' '})
	switch string(name) {
	case "event":
		p.cur.event = append(p.cur.event[:0], value...)
	case "data":
		if p.hasData {
			p.cur.data = append(p.cur.data, '\n')
		}
		p.cur.data, p.hasData = append(p.cur.data, value...), true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.cur.id, p.cur.hasID = append(p.cur.id[:0], value...), true
		}
	case "retry":
		if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 && allDigits(value) {
			p.retry = n
		}
	default:
		p.ignored++
	}
}

// dispatch hands over the frame built so far, if it has data, and starts
// the next one.
func (p *sseParser) dispatch() {
	if p.hasData {
		p.frame(&p.cur)
	}
	p.cur.event, p.cur.id, p.cur.data = p.cur.event[:0], p.cur.id[:0], p.cur.data[:0]
	p.cur.hasID, p.hasData = false, false
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// eventID is an event's id as numbers: "17" or "1733112000000-3".
type eventID []uint64

// parseEventID reads an id made of digits and dashes into dst's space:
// parts of digits joined by single dashes, each a number below 2^64.
func parseEventID(dst eventID, b []byte) (eventID, bool) {
	dst = dst[:0]
	for part := range bytes.SplitSeq(b, []byte{'-'}) {
		if !allDigits(part) {
			return dst, false
		}
		n, err := strconv.ParseUint(string(part), 10, 64)
		if err != nil {
			return dst, false
		}
		dst = append(dst, n)
	}
	return dst, true
}

// after says whether id comes after prev, compared part by part as
// numbers, a missing part counting as 0 (the contract's order).
func (id eventID) after(prev eventID) bool {
	for i := range max(len(id), len(prev)) {
		var a, b uint64
		if i < len(id) {
			a = id[i]
		}
		if i < len(prev) {
			b = prev[i]
		}
		if a != b {
			return a > b
		}
	}
	return false
}

// Kinds of event checked, as indices.
const (
	evParked   = 0
	evFinished = 1
)

// The data fields read, each with its opening quote and its value's.
const (
	connIDField    = `"connId":"`
	startedAtField = `"startedAt":"` // a parked event's cause: when the request was parked
	endedAtField   = `"endedAt":"`   // a finished event's: when it ended
)

// eventFields reads an event's connId and its cause (startedAt or endedAt) in Unix
// milliseconds from its data, a flat JSON object. The fast path finds them
// by name, which is safe without a backslash in the data (an escaped quote
// cannot then fake a name); anything else is decoded properly. connID is
// valid as long as data is.
func eventFields(data []byte, kind int) (connID []byte, causeMs int64, ok bool) {
	if bytes.IndexByte(data, '\\') < 0 && len(data) > 0 && data[0] == '{' {
		cause := startedAtField
		if kind == evFinished {
			cause = endedAtField
		}
		id, okID := stringField(data, connIDField)
		at, okAt := stringField(data, cause)
		if okID && okAt {
			ms, ok := parseMillis(at)
			return id, ms, ok
		}
	}
	var v struct {
		ConnID    *string `json:"connId"`
		StartedAt string  `json:"startedAt"`
		EndedAt   string  `json:"endedAt"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.ConnID == nil {
		return nil, 0, false
	}
	at := v.StartedAt
	if kind == evFinished {
		at = v.EndedAt
	}
	ms, ok := parseMillis([]byte(at))
	return []byte(*v.ConnID), ms, ok
}

// stringField finds `"name":"value"` in data, name given with its opening
// and the quote of its value, and returns value.
func stringField(data []byte, nameQuote string) ([]byte, bool) {
	i := bytes.Index(data, []byte(nameQuote))
	if i < 0 {
		return nil, false
	}
	rest := data[i+len(nameQuote):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// parseMillis reads an RFC 3339 time in Unix milliseconds. The contract's
// form, 2026-12-02T07:34:45.766Z, is read by hand (no allocation);
// anything else goes through package time.
func parseMillis(b []byte) (int64, bool) {
	if len(b) == 24 && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' && b[19] == '.' && b[23] == 'Z' {
		num := func(from, to int) int {
			n := 0
			for _, c := range b[from:to] {
				if c < '0' || c > '9' {
					return -1
				}
				n = n*10 + int(c-'0')
			}
			return n
		}
		y, mo, d, h, mi, s, ms := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19), num(20, 23)
		if min(y, mo, d, h, mi, s, ms) >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s < 60 {
			return time.Date(y, time.Month(mo), d, h, mi, s, ms*int(time.Millisecond), time.UTC).UnixMilli(), true
		}
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}
