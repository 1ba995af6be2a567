package main

// A subscriber that stops reading is dropped, and costs nothing after:
// the others, and parking, go on. Linux only: it shrinks the subscriber's
// receive buffer.

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEventStreamDropsASubscriberThatStopsReading(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig())
	stuck := ts.subscribe(t, "")
	stuck.nextEvent(t) // the snapshot; then it reads no more
	stuck.Conn.(*net.TCPConn).SetReadBuffer(4096)
	live := ts.subscribe(t, "")
	live.nextEvent(t)
	// More than the 10,000 a subscriber may fall behind, besides what its
	// socket buffers and its writer hold.
	const n = 20_000
	received := make(chan int, 1)
	ts.goAsync(t, func() {
		got := 0
		for got < n {
			ev, err := live.next(t, waitBound)
			if err != nil {
				break
			}
			if ev.event == "finished" {
				got++
			}
		}
		received <- got
	})
	each(n, 8, func(i int) { ts.park(t, "flood-"+strconv.Itoa(i), "0") })
	if got := <-received; got != n {
		t.Errorf("the subscriber that reads got %d events of %d", got, n)
	}
	// Dropped for falling behind, or at the latest 10 s after its writer
	// blocked.
	for end := time.Now().Add(2 * waitBound); ; time.Sleep(50 * time.Millisecond) {
		text := scrape(t, ts)
		dropped, _ := metricSum(t, text, "parkd_event_subscribers_dropped_total")
		subs, _ := metricSum(t, text, "parkd_event_subscribers")
		if dropped == 1 && subs == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("after the flood: %v dropped, %v subscribers; want 1 and 1", dropped, subs)
		}
	}
	// The dropped one's connection is closed on the server's side: its
	// socket has sent its FIN after what it had queued (the client would
	// read it once it has read all that, which on a small window is slow).
	for end := time.Now().Add(waitBound); !serverClosed(t, stuck.Conn); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the dropped subscriber's connection is still open on the server's side")
		}
	}
	wantBody(t, "a park after the drop", ts.park(t, "after", "0"), 200, bodyOK)
}

// serverClosed reports whether the server's end of the client connection
// c has been closed: gone from /proc/net/tcp, or past its FIN (FIN_WAIT1,
// FIN_WAIT2, TIME_WAIT, CLOSE, LAST_ACK, CLOSING).
func serverClosed(t *testing.T, c net.Conn) bool {
	t.Helper()
	hexAddr := func(a net.Addr) string {
		ta := a.(*net.TCPAddr)
		ip := ta.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port)
	}
	local, remote := hexAddr(c.RemoteAddr()), hexAddr(c.LocalAddr()) // the server's view
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == local && f[2] == remote {
			switch f[3] {
			case "04", "05", "06", "07", "09", "0B":
				return true
			}
			return false
		}
	}
	return true
}
