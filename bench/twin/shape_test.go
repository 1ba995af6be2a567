package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Section 6 through real sockets: each request is written by hand on a
// connection of its own and everything the twin sends is read until it
// closes, so an ending that is not HTTP (a reset, a close, garbage, a cut
// body) is seen as a client sees it. No timing is asserted.

// seen is everything a client read on one connection, and how it ended.
type seen struct {
	data []byte
	end  string // "eof", "reset" or what else the read failed with
}

// dialPark writes GET /api/request?query on a new connection.
func dialPark(t *testing.T, base, query string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /api/request?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", query)
	return conn
}

// readToEnd reads conn until EOF or an error, for at most 10 s.
func readToEnd(conn net.Conn) seen {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, err := io.ReadAll(conn)
	s := seen{data: data, end: "eof"}
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		s.end = "reset"
	case err != nil:
		s.end = err.Error()
	}
	return s
}

// answerOf splits raw bytes into status code, Content-Length and body; code
// 0 means they do not start with an HTTP status line and headers.
func answerOf(raw []byte) (code, length int, body []byte) {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	if !ok || !strings.HasPrefix(lines[0], "HTTP/1.1 ") || len(lines[0]) < 12 {
		return 0, -1, nil
	}
	code, _ = strconv.Atoi(lines[0][9:12])
	length = -1
	for _, l := range lines[1:] {
		if v, ok := strings.CutPrefix(strings.ToLower(l), "content-length: "); ok {
			length, _ = strconv.Atoi(v)
		}
	}
	return code, length, body
}

// want is what a client must see: an answer with code, length and body, or
// (code 0) exactly the bytes raw and then the end.
type want struct {
	code   int
	length int
	body   string
	raw    string
	end    string
}

func (w want) check(t *testing.T, what string, got seen) {
	t.Helper()
	if got.end != w.end {
		t.Errorf("%s: the connection ended with %s after %q, want %s", what, got.end, got.data, w.end)
		return
	}
	if w.code == 0 {
		if string(got.data) != w.raw {
			t.Errorf("%s: read %q, want %q", what, got.data, w.raw)
		}
		return
	}
	code, length, body := answerOf(got.data)
	if code != w.code || length != w.length || string(body) != w.body {
		t.Errorf("%s: got %d, Content-Length %d, body %q; want %d, %d, %q (all read: %q)",
			what, code, length, body, w.code, w.length, w.body, got.data)
	}
}

func pad(json string, n int) string { return json + strings.Repeat(" ", max(0, n-len(json))) }

// metricValue reads one sample of GET /metrics; -1 when it is absent.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := httpGet(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(resp, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	return -1
}

func httpGet(u string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestDeadlineEndings(t *testing.T) {
	base := start(t, 100)
	ok := `{"status":"ok"}`
	cases := []struct {
		name, query string
		want        want
		pieces      int    // pieces of a dripping body, counted by the histogram
		timeout     string // 0.05 when empty
	}{
		{"503", "then=503", want{code: 503, length: 15, body: ok, end: "eof"}, 0, ""},
		{"204 has no body", "then=204", want{code: 204, length: -1, body: "", end: "eof"}, 0, ""},
		{"padded", "then=503&body=40", want{code: 503, length: 40, body: pad(ok, 40), end: "eof"}, 0, ""},
		{"body smaller than the JSON", "body=3", want{code: 200, length: 15, body: ok, end: "eof"}, 0, ""},
		{"reset", "then=reset", want{end: "reset"}, 0, ""},
		{"reset at once", "then=reset", want{end: "reset"}, 0, "0"},
		{"close", "then=close", want{end: "eof"}, 0, ""},
		{"garbage", "then=garbage", want{raw: garbageBytes, end: "eof"}, 0, ""},
		{"truncate", "then=truncate&body=40", want{code: 200, length: 40, body: ok[:15] + "    ", end: "eof"}, 0, ""},
		{"truncate of the bare JSON", "then=truncate", want{code: 200, length: 15, body: ok[:7], end: "eof"}, 0, ""},
		{"drip", "body=30&drip=0.3", want{code: 200, length: 30, body: pad(ok, 30), end: "eof"}, 3, ""},
		{"drip of a 503", "then=503&drip=0.25", want{code: 503, length: 15, body: ok, end: "eof"}, 3, ""},
		{"drip, a byte a piece", "body=4&drip=2", want{code: 200, length: 15, body: ok, end: "eof"}, 15, ""},
		{"drip of truncate stops before half", "then=truncate&body=40&drip=0.3", want{code: 200, length: 40, body: ok[:15] + "    ", end: "eof"}, 2, ""},
		{"drip of a reset is a reset", "then=reset&drip=1", want{end: "reset"}, 0, ""},
		{"drip of a 204 has nothing to drip", "then=204&drip=1", want{code: 204, length: -1, body: "", end: "eof"}, 0, ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := metricValue(t, base, "parkd_piece_lateness_seconds_count")
			timeout := cmp.Or(c.timeout, "0.05")
			conn := dialPark(t, base, "connId=d"+strconv.Itoa(i)+"&timeout="+timeout+"&"+c.query)
			c.want.check(t, c.query, readToEnd(conn))
			if got := metricValue(t, base, "parkd_piece_lateness_seconds_count") - before; got != float64(c.pieces) {
				t.Errorf("%s: %v pieces counted, want %d", c.query, got, c.pieces)
			}
		})
	}
	if s := status(t, base); s != "{}" {
		t.Errorf("serverStatus after: %s, want {}", s)
	}
	if got := metricValue(t, base, `parkd_endings_total{then="reset"}`); got != 3 {
		t.Errorf("endings reset: %v, want 3", got)
	}
}

// parkWaiting parks id for 30 s on a connection of its own and waits until
// serverStatus lists it.
func parkWaiting(t *testing.T, base, id, extra string) net.Conn {
	t.Helper()
	conn := dialPark(t, base, "connId="+id+"&timeout=30"+extra)
	waitStatus(t, base, `"`+id+`"`, true, 2*time.Second)
	return conn
}

func TestKillThen(t *testing.T) {
	base := start(t, 100)
	killed := `{"status":"killed"}`
	cases := []struct {
		name, extra, query, body string
		want                     want
	}{
		{"default 500", "", "", `{"connId":"%s"}`, want{code: 500, length: 19, body: killed, end: "eof"}},
		{"JSON reset", "", "", `{"connId":"%s","then":"reset"}`, want{end: "reset"}},
		{"JSON number", "&body=30", "", `{"connId":"%s","then":503}`, want{code: 503, length: 30, body: pad(killed, 30), end: "eof"}},
		{"form close", "", "", `connId=%s&then=close`, want{end: "eof"}},
		{"query garbage", "", "?connId=%s&then=garbage", "", want{raw: garbageBytes, end: "eof"}},
		{"truncate", "", "", `{"connId":"%s","then":"truncate"}`, want{code: 500, length: 19, body: killed[:9], end: "eof"}},
		{"truncate padded", "&body=41", "", `{"connId":"%s","then":"truncate"}`, want{code: 500, length: 41, body: killed + " ", end: "eof"}},
		{"same then twice", "", "?then=502", `{"connId":"%s","then":"502"}`, want{code: 502, length: 19, body: killed, end: "eof"}},
		{"the park's own then is not the kill's", "&then=reset", "", `{"connId":"%s"}`, want{code: 500, length: 19, body: killed, end: "eof"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "k" + strconv.Itoa(i)
			conn := parkWaiting(t, base, id, c.extra)
			q, b := c.query, c.body
			if strings.Contains(q, "%s") {
				q = fmt.Sprintf(q, id)
			}
			if strings.Contains(b, "%s") {
				b = fmt.Sprintf(b, id)
			}
			expect(t, "kill", do(t, "PUT", base+"/api/kill"+q, b), 200, `{"status":"ok"}`)
			c.want.check(t, c.name, readToEnd(conn))
		})
	}
	if s := status(t, base); s != "{}" {
		t.Errorf("serverStatus after: %s, want {}", s)
	}
}

func TestBadShapes(t *testing.T) {
	base := start(t, 100)
	conn := parkWaiting(t, base, "x", "")
	for _, q := range []string{
		"connId=b&timeout=1&then=bogus", "connId=b&timeout=1&then=600", "connId=b&timeout=1&then=503:0",
		"connId=b&timeout=1&then=503&then=503", "connId=b&timeout=1&body=1048577", "connId=b&timeout=1&body=-1",
		"connId=b&timeout=3600&jitter=1", "connId=b&timeout=3599&jitter=0.5&drip=0.6", "connId=b&timeout=1&drip=1e3",
	} {
		got := do(t, "GET", base+"/api/request?"+q, "")
		if got.code != 400 || !strings.HasPrefix(got.body, `{"status":"error","error":"`) {
			t.Errorf("%s: %d %s, want a 400", q, got.code, got.body)
		}
	}
	for _, b := range []string{`{"connId":"x","then":"bogus"}`, `{"connId":"x","then":true}`, `connId=x&then=`} {
		if got := do(t, "PUT", base+"/api/kill", b); got.code != 400 {
			t.Errorf("kill %s: %d %s, want a 400", b, got.code, got.body)
		}
	}
	if got := do(t, "PUT", base+"/api/kill?then=503", `{"connId":"x","then":"reset"}`); got.code != 400 {
		t.Errorf("two thens: %d %s, want a 400", got.code, got.body)
	}
	if s := status(t, base); s != `{"x":"30"}` {
		t.Errorf("serverStatus: %s, want only x, still parked", s)
	}
	expect(t, "kill", do(t, "PUT", base+"/api/kill?connId=x", ""), 200, `{"status":"ok"}`)
	want{code: 500, length: 19, body: `{"status":"killed"}`, end: "eof"}.check(t, "x", readToEnd(conn))
}

// dripping parks a 100-byte body dripping over 20 s from now and reads
// until its headers and first piece have arrived.
func dripping(t *testing.T, base, id string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn := dialPark(t, base, "connId="+id+"&timeout=0&body=100&drip=20")
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("headers: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	if b, err := br.ReadByte(); err != nil || b != '{' {
		t.Fatalf("first piece: %q %v", b, err)
	}
	return conn, br
}

func TestKillWhileDripping(t *testing.T) {
	base := start(t, 100)
	for _, c := range []struct {
		then, end string
	}{
		{"reset", "reset"}, {"503", "eof"}, {"close", "eof"}, {"garbage", "eof"}, {"reset:1,reset:5", "reset"},
	} {
		t.Run(c.then, func(t *testing.T) {
			conn, br := dripping(t, base, "drip")
			// Listed until its last byte, about 20 s away.
			waitStatus(t, base, `"drip":"2`, true, time.Second)
			expect(t, "kill", do(t, "PUT", base+"/api/kill", `{"connId":"drip","then":"`+c.then+`"}`), 200, `{"status":"ok"}`)
			rest, err := io.ReadAll(br)
			end := "eof"
			if errors.Is(err, syscall.ECONNRESET) {
				end = "reset"
			} else if err != nil {
				end = err.Error()
			}
			if end != c.end || len(rest) >= 99 || strings.Trim(string(rest), `"satuok:} `) != "" {
				t.Errorf("after the kill: %q then %s; want part of the body, then %s", rest, end, c.end)
			}
			conn.Close()
			if s := status(t, base); s != "{}" {
				t.Errorf("serverStatus after the kill: %s", s)
			}
		})
	}
}

func TestHangUpWhileDripping(t *testing.T) {
	base := start(t, 100)
	conn, _ := dripping(t, base, "gone")
	conn.Close()
	waitStatus(t, base, `"gone"`, false, 2*time.Second)
	expect(t, "the id is free again", park(t, base, "gone", "0"), 200, `{"status":"ok"}`)
}

func TestWeightedThen(t *testing.T) {
	base := start(t, 100)
	codes := map[int]int{}
	for i := range 60 {
		got := do(t, "GET", base+"/api/request?connId=w"+strconv.Itoa(i)+"&timeout=0&then=503:1,504:1,200:1", "")
		codes[got.code]++
	}
	// Each is drawn with probability 1/3: all three miss one in 10^10 runs.
	if len(codes) != 3 || codes[503] == 0 || codes[504] == 0 || codes[200] == 0 {
		t.Errorf("codes drawn: %v, want 503, 504 and 200", codes)
	}
}

func TestMetricsExposition(t *testing.T) {
	base := start(t, 100)
	conn := dialPark(t, base, "connId=m&timeout=0&body=20&drip=0.2")
	if got := readToEnd(conn); got.end != "eof" {
		t.Fatalf("drip: %s", got.end)
	}
	text, err := httpGet(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`parkd_piece_lateness_seconds_bucket{le="0.005"}`, `parkd_piece_lateness_seconds_bucket{le="+Inf"} 2`,
		"parkd_piece_lateness_seconds_count 2", `parkd_answer_lateness_seconds_bucket{le="0.05"}`,
		"parkd_answer_lateness_seconds_count 1", `parkd_endings_total{then="200"} 1`, "go_goroutines ",
	} {
		if !strings.Contains(text, "\n"+line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
