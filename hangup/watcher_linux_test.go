//go:build linux

package hangup

import (
	"errors"
	"net"
	"testing"
	"time"
)

// pair returns the server side and the client side of a real loopback TCP
// connection.
func pair(t *testing.T) (server net.Conn, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s, c.(*net.TCPConn)
}

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// quiet is how long a test waits to see that nothing happens; it can only
// make a broken watcher pass by luck, never a good one fail.
const quiet = 200 * time.Millisecond

func TestHangupFires(t *testing.T) {
	tests := []struct {
		name string
		act  func(c *net.TCPConn)
	}{
		{"close", func(c *net.TCPConn) { c.Close() }},
		{"half-close", func(c *net.TCPConn) { c.CloseWrite() }},
		{"reset", func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
		{"data then close", func(c *net.TCPConn) { c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); c.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatcher(t)
			s, c := pair(t)
			fired := make(chan struct{}, 2)
			h, err := w.Watch(s, func() { fired <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			defer h.Stop()
			tt.act(c)
			select {
			case <-fired:
			case <-time.After(10 * time.Second):
				t.Fatal("no hang-up reported")
			}
			select {
			case <-fired:
				t.Fatal("hang-up reported twice")
			case <-time.After(quiet):
			}
		})
	}
}

func TestHangupAlreadyHappened(t *testing.T) {
	w := newWatcher(t)
	s, c := pair(t)
	c.Close()
	time.Sleep(50 * time.Millisecond) // let the FIN arrive before the watch starts
	fired := make(chan struct{}, 1)
	h, err := w.Watch(s, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("a hang-up before Watch was not reported")
	}
}

func TestPipelinedBytesDoNotFire(t *testing.T) {
	w := newWatcher(t)
	s, c := pair(t)
	fired := make(chan struct{}, 1)
	h, err := w.Watch(s, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET /next HTTP/1.1\r\nHost: x\r\n\r\n"))
	select {
	case <-fired:
		t.Fatal("bytes from a live client reported as a hang-up")
	case <-time.After(quiet):
	}
	h.Stop()
	// The bytes are still there for whoever reads next.
	buf := make([]byte, 64)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := s.Read(buf); err != nil || string(buf[:4]) != "GET " {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestStopPreventsCallback(t *testing.T) {
	w := newWatcher(t)
	s, c := pair(t)
	fired := make(chan struct{}, 1)
	h, err := w.Watch(s, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	h.Stop()
	h.Stop() // twice is fine
	c.Close()
	select {
	case <-fired:
		t.Fatal("callback ran after Stop")
	case <-time.After(quiet):
	}
	// The connection can be watched again after Stop.
	h2, err := w.Watch(s, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Stop()
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("second watch did not fire")
	}
}

func TestManyWatches(t *testing.T) {
	w := newWatcher(t)
	const n = 200
	fired := make(chan int, n)
	var clients []*net.TCPConn
	for i := range n {
		s, c := pair(t)
		h, err := w.Watch(s, func() { fired <- i })
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		clients = append(clients, c)
	}
	for i, c := range clients {
		if i%2 == 0 {
			c.Close()
		}
	}
	seen := map[int]bool{}
	for range n / 2 {
		select {
		case i := <-fired:
			if i%2 != 0 || seen[i] {
				t.Fatalf("unexpected hang-up of connection %d", i)
			}
			seen[i] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d hang-ups reported", len(seen), n/2)
		}
	}
}

func TestUnsupportedAndClosed(t *testing.T) {
	w := newWatcher(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := w.Watch(a, func() {}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Watch(pipe) = %v, want ErrUnsupported", err)
	}
	s, _ := pair(t)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Watch(s, func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close = %v, want ErrClosed", err)
	}
}

// TestCallbackMayWatchAndStop: a callback calling back into the watcher
// must not deadlock, also while Close runs.
func TestCallbackMayWatchAndStop(t *testing.T) {
	w := newWatcher(t)
	s1, c1 := pair(t)
	s2, _ := pair(t)
	done := make(chan error, 1)
	h1, err := w.Watch(s1, func() {
		h2, err := w.Watch(s2, func() {})
		h2.Stop()
		done <- err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Stop()
	c1.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("callback did not finish")
	}
}
