package main

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// scriptFake is a server on raw TCP that answers every request with one
// script: bytes written in separate writes a little apart, then an end —
// "close" (FIN), "reset" (RST) or "hold" (nothing more until the test ends).
type scriptFake struct {
	ln     net.Listener
	writes []string
	end    string
}

func startScript(t *testing.T, end string, writes ...string) *scriptFake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &scriptFake{ln: ln, writes: writes, end: end}
	done := make(chan struct{})
	held := make(chan net.Conn, 1)
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f.serve(c, held)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	return f
}

func (f *scriptFake) serve(c net.Conn, held chan<- net.Conn) {
	br := bufio.NewReader(c)
	for { // the request: up to its empty line
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return
		}
		if line == "\r\n" {
			break
		}
	}
	for i, w := range f.writes {
		if i > 0 {
			time.Sleep(20 * time.Millisecond) // separate reads, most of the time
		}
		if _, err := c.Write([]byte(w)); err != nil {
			c.Close()
			return
		}
	}
	if len(f.writes) > 0 {
		time.Sleep(20 * time.Millisecond) // the bytes are read before the end comes
	}
	switch f.end {
	case "reset":
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	case "hold":
		held <- c
	default:
		c.Close()
	}
}

const garbage = "\x00\xff\xfeparkd garbage, not HTTP\xfd\xfc\x00\r\n\r\n"

func padTo(json string, n int) string { return json + strings.Repeat(" ", max(0, n-len(json))) }

// A watched request's ending, as seen through a real socket, classified.
func TestWatchEndings(t *testing.T) {
	ok, killed := okJSON, killedJSON
	head := func(code string, length int) string {
		return "HTTP/1.1 " + code + "\r\nServer: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(length) + "\r\n\r\n"
	}
	type check struct {
		action string
		killed bool
		body   int
		right  bool
	}
	cases := []struct {
		name   string
		end    string
		writes []string
		spec   *watchSpec
		kind   string
		word   string
		length int
		bytes  int
		pieces int
		checks []check
	}{
		{name: "reset", end: "reset", kind: seenReset,
			checks: []check{{"reset", false, 0, true}, {"close", false, 0, false}, {"reset", true, 0, true}}},
		{name: "close", end: "close", kind: seenClose,
			checks: []check{{"close", true, 0, true}, {"reset", true, 0, false}, {"garbage", false, 0, false}}},
		{name: "garbage", end: "close", writes: []string{garbage}, kind: seenGarbage,
			checks: []check{{"garbage", true, 0, true}, {"close", false, 0, false}}},
		{name: "garbage in two writes", end: "close", writes: []string{"\x00\xff", "\xfeparkd garbage"}, kind: seenGarbage},
		{name: "too little garbage", end: "close", writes: []string{"\x00abc"}, kind: seenNotHTTP,
			checks: []check{{"garbage", false, 0, false}}},
		{name: "garbage, never closed", end: "hold", writes: []string{garbage}, kind: seenTimeout},
		{name: "a 503, padded", end: "hold", writes: []string{head("503 Service Unavailable", 30) + padTo(ok, 30)},
			kind: "status_503", word: "ok", length: 30, bytes: 30,
			checks: []check{{"503", false, 30, true}, {"503", false, 0, false}, {"503", true, 30, false}, {"502", false, 30, false}}},
		{name: "a killed 500", end: "close", writes: []string{head("500 Internal Server Error", 19) + killed},
			kind: "status_500", word: "killed", length: 19, bytes: 19, checks: []check{{"500", true, 0, true}, {"500", false, 0, false}}},
		{name: "status line in two writes", end: "hold", writes: []string{"HTT", "P/1.1 200 OK\r\nContent-Length: 15\r\n\r\n" + ok},
			kind: "status_200", word: "ok", length: 15, bytes: 15, checks: []check{{"200", false, 0, true}}},
		{name: "a 204", end: "hold", writes: []string{"HTTP/1.1 204 No Content\r\n\r\n"}, kind: "status_204", length: -1,
			checks: []check{{"204", false, 0, true}, {"204", true, 0, true}}},
		{name: "truncate", end: "close", writes: []string{head("200 OK", 40) + padTo(ok, 40)[:19]},
			kind: "truncate_200", length: 40, bytes: 19, checks: []check{{"truncate", false, 40, true}, {"truncate", true, 40, false}}},
		{name: "truncate of a kill", end: "close", writes: []string{head("500 Internal Server Error", 19), killed[:9]},
			kind: "truncate_500", length: 19, bytes: 9, checks: []check{{"truncate", true, 0, true}}},
		{name: "cut, but not below half", end: "close", writes: []string{head("200 OK", 40) + padTo(ok, 40)[:20]},
			kind: "cut_200", length: 40, bytes: 20, checks: []check{{"truncate", false, 40, false}, {"200", false, 40, false}}},
		{name: "bytes, then reset", end: "reset", writes: []string{head("200 OK", 40) + ok}, kind: seenResetAfter, length: 40, bytes: 15,
			checks: []check{{"reset", false, 0, false}}},
		{name: "headers cut", end: "close", writes: []string{"HTTP/1.1 200 OK\r\nContent-Le"}, kind: seenCutHead},
		{name: "bad status line", end: "close", writes: []string{"HTTP/1.1 2x0 OK\r\n\r\n"}, kind: seenBadHead},
		{name: "a body that runs to EOF", end: "close", writes: []string{"HTTP/1.1 200 OK\r\n\r\n" + ok}, kind: seenBadHead, length: -1, bytes: 15},
		{name: "a dripping body", end: "hold", writes: []string{head("200 OK", 15), ok[:5], ok[5:10], ok[10:]},
			spec: &watchSpec{Pieces: 3, BodyLen: 15, Drip: 60 * time.Millisecond}, kind: "status_200", word: "ok", length: 15, bytes: 15, pieces: 3,
			checks: []check{{"200", false, 0, true}}},
		{name: "a dripping body cut short", end: "close", writes: []string{head("200 OK", 15), ok[:5], ok[5:10]},
			spec: &watchSpec{Pieces: 3, BodyLen: 15, Drip: 60 * time.Millisecond}, kind: "cut_200", length: 15, bytes: 10, pieces: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := startScript(t, c.end, c.writes...)
			conn, err := net.Dial("tcp", f.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			clk := newClock()
			sr := sendRec{Sent: clk.now()}
			if _, err := conn.Write([]byte("GET /api/request?connId=a&timeout=0 HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			o := awaitWatched(t.Context(), conn, clk, time.Second, c.spec, sr)
			if o.Kind != c.kind || o.Word != c.word || len(o.Late) != c.pieces {
				t.Fatalf("kind %q word %q pieces %d; want %q %q %d (%+v)", o.Kind, o.Word, len(o.Late), c.kind, c.word, c.pieces, o)
			}
			if c.length != 0 && (o.Length != c.length || o.Bytes != c.bytes) {
				t.Errorf("length %d bytes %d; want %d %d", o.Length, o.Bytes, c.length, c.bytes)
			}
			if o.Kind != seenTimeout && (o.Effect < sr.Sent || o.Effect > o.Done || o.Done == 0) {
				t.Errorf("effect %d not between the request %d and the end %d", o.Effect, sr.Sent, o.Done)
			}
			for _, ch := range c.checks {
				if got := seenRight(o, ch.action, ch.killed, ch.body); got != ch.right {
					t.Errorf("seenRight(%s, killed %v, body %d) = %v, want %v", ch.action, ch.killed, ch.body, got, ch.right)
				}
			}
		})
	}
}

// The same classification with every byte in a read of its own, and an EOF
// at the end.
func TestWatchOneByteReads(t *testing.T) {
	for raw, kind := range map[string]string{
		"":      seenClose,
		garbage: seenGarbage,
		"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n" + okJSON:         "status_200",
		"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + okJSON:         "truncate_200",
		"HTTP/1.1 503 Busy\r\ncontent-length:  19 \r\n\r\n" + killedJSON: "status_503",
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n":                   seenBadHead,
		"HTTP/1.1 200": seenCutHead,
	} {
		w := newWatcher(&watchSpec{Pieces: 15, BodyLen: 15, Drip: time.Second}, 1)
		o := watch(context.Background(), iotest.OneByteReader(strings.NewReader(raw)), newClock(), w)
		if o.Kind != kind {
			t.Errorf("%q: %q, want %q", raw, o.Kind, kind)
		}
		if kind == "status_200" && len(o.Late) != 15 {
			t.Errorf("%q: %d pieces stamped, want 15", raw, len(o.Late))
		}
	}
}

func TestExpectedSeen(t *testing.T) {
	for _, c := range []struct {
		action     string
		killed     bool
		kind, word string
	}{
		{"503", false, "status_503", "ok"}, {"503", true, "status_503", "killed"}, {"204", true, "status_204", ""},
		{"reset", false, "reset", ""}, {"close", true, "close", ""}, {"garbage", true, "garbage", ""},
		{"truncate", false, "truncate_200", ""}, {"truncate", true, "truncate_500", ""},
	} {
		if kind, word := expectedSeen(c.action, c.killed); kind != c.kind || word != c.word {
			t.Errorf("%s killed %v: %s %s, want %s %s", c.action, c.killed, kind, word, c.kind, c.word)
		}
	}
	for _, good := range []string{"200", "599", "reset", "close", "garbage", "truncate"} {
		if _, err := singleAction(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{"", "199", "600", "reset:1", "reset,close", "RESET", "5o3"} {
		if _, err := singleAction(bad); err == nil {
			t.Errorf("%q accepted as one action", bad)
		}
	}
}
