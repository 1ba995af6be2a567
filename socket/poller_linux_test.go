//go:build linux

package socket

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// detached returns a detached Socket for the server side of a fresh pair.
func detached(t *testing.T, p *Poller) (*Socket, *net.TCPConn) {
	t.Helper()
	srv, cl := pair(t)
	s := p.Detach(srv)
	if s.fd < 0 {
		t.Fatal("a TCP connection was not detached")
	}
	t.Cleanup(func() { s.Close() })
	return s, cl
}

// quiet is how long a test waits to see that nothing happens; it can only
// make a broken poller pass by luck, never a good one fail.
const quiet = 200 * time.Millisecond

func waitEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return 0
	}
}

func expectNone(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %v", ev)
	case <-time.After(quiet):
	}
}

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
			p := newPoller(t)
			s, c := detached(t, p)
			fired := make(chan Event, 2)
			if err := s.Watch(Hangup, func(ev Event) { fired <- ev }); err != nil {
				t.Fatal(err)
			}
			tt.act(c)
			if ev := waitEvent(t, fired); ev&Hangup == 0 {
				t.Fatalf("event %v, want Hangup", ev)
			}
			expectNone(t, fired) // oneshot
		})
	}
}

func TestHangupBeforeWatch(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	c.Close()
	time.Sleep(50 * time.Millisecond) // let the FIN arrive before the watch starts
	fired := make(chan Event, 1)
	if err := s.Watch(Hangup, func(ev Event) { fired <- ev }); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fired)
	if !s.PeekClosed() {
		t.Fatal("PeekClosed after the peer closed = false")
	}
}

func TestPipelinedBytesWakeOnlyReadable(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	fired := make(chan Event, 1)
	if err := s.Watch(Hangup, func(ev Event) { fired <- ev }); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET /next HTTP/1.1\r\nHost: x\r\n\r\n"))
	expectNone(t, fired) // bytes from a live client are no hang-up
	if s.PeekClosed() {
		t.Fatal("PeekClosed with bytes waiting = true")
	}
	if err := s.Watch(Readable, func(ev Event) { fired <- ev }); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, fired); ev != Readable {
		t.Fatalf("event %v, want Readable alone", ev)
	}
	// The bytes are still there for whoever reads next: Go's poller, again.
	conn, err := s.Conn()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("GET /next")) {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestStopAndReplace(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	first := make(chan Event, 1)
	second := make(chan Event, 1)
	if err := s.Watch(Hangup, func(ev Event) { first <- ev }); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Stop() // twice is fine
	if err := s.Watch(Hangup|Readable, func(ev Event) { second <- ev }); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitEvent(t, second)
	expectNone(t, first)
}

func TestWriteAllAndResume(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	if err := s.WriteAll([]byte("answer"), time.Second); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if n, err := io.ReadAtLeast(c, buf, 6); err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	conn, err := s.Conn()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c.Write([]byte("ping"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.ReadAtLeast(conn, buf, 4); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("resumed conn read %q, %v", buf[:n], err)
	}
	if _, err := s.Conn(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Conn: %v, want ErrClosed", err)
	}
	if err := s.Watch(Hangup, func(Event) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Conn: %v, want ErrClosed", err)
	}
}

// TestWriteAllSlowReader: a client that reads nothing fills the send
// buffer; WriteAll finishes through Go's poller once the client reads, and
// gives up after its timeout when it never does.
func TestWriteAllSlowReader(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	big := bytes.Repeat([]byte("x"), 8<<20) // more than any socket buffer here
	rest, err := s.TryWrite(big)
	if err != nil || len(rest) == 0 || len(rest) == len(big) {
		t.Fatalf("TryWrite of %d bytes left %d, %v; want a part written, the rest returned", len(big), len(rest), err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WriteAll(rest, 10*time.Second) }()
	time.Sleep(50 * time.Millisecond)
	n, err := io.Copy(io.Discard, io.LimitReader(c, int64(len(big))))
	if err != nil || n != int64(len(big)) {
		t.Fatalf("client read %d of %d: %v", n, len(big), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WriteAll: %v", err)
	}
	if s.fd >= 0 {
		t.Fatal("socket still detached after a write that could not finish at once")
	}

	s2, _ := detached(t, p)
	if err := s2.WriteAll(big, 100*time.Millisecond); err == nil {
		t.Fatal("WriteAll to a client that reads nothing succeeded")
	}
}

func TestCloseReleasesDescriptor(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	fired := make(chan Event, 1)
	if err := s.Watch(Hangup, func(ev Event) { fired <- ev }); err != nil {
		t.Fatal(err)
	}
	fd := s.fd
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat("/proc/self/fd/" + strconv.Itoa(fd)); err == nil && !fdReused(fd) {
		t.Fatalf("descriptor %d still open after Close", fd)
	}
	// The client sees the connection end, and no watch fires for it.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read %d, %v after Close; want EOF", n, err)
	}
	expectNone(t, fired)
	if p.watches.Size() != 0 {
		t.Fatalf("%d watches left after Close", p.watches.Size())
	}
}

// fdReused reports whether the number fd now names something other than a
// socket of ours (another test's file, say).
func fdReused(fd int) bool {
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return err == nil && !strings.HasPrefix(target, "socket:")
}

// TestDetachFreesGoConn: the net.Conn is closed by Detach, the socket
// lives on: a detached connection still talks both ways.
func TestDetachFreesGoConn(t *testing.T) {
	p := newPoller(t)
	srv, c := pair(t)
	s := p.Detach(srv)
	defer s.Close()
	if _, err := srv.Write([]byte("x")); err == nil {
		t.Fatal("the net.Conn still writes after Detach")
	}
	if err := s.WriteAll([]byte("still here"), time.Second); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 32)
	if n, err := io.ReadAtLeast(c, buf, 10); err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestManyWatches(t *testing.T) {
	p := newPoller(t)
	const n = 200
	fired := make(chan int, n)
	var clients []*net.TCPConn
	for i := range n {
		s, c := detached(t, p)
		if err := s.Watch(Hangup, func(Event) { fired <- i }); err != nil {
			t.Fatal(err)
		}
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

func TestConnModeAndClosedPoller(t *testing.T) {
	p := newPoller(t)
	a, b := net.Pipe()
	defer b.Close()
	s := p.Detach(a)
	if err := s.Watch(Hangup, func(Event) {}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Watch(pipe) = %v, want ErrUnsupported", err)
	}
	go io.Copy(io.Discard, b)
	if err := s.WriteAll([]byte("through the pipe"), time.Second); err != nil {
		t.Fatalf("WriteAll in conn mode: %v", err)
	}
	if c, err := s.Conn(); err != nil || c != a {
		t.Fatalf("Conn in conn mode = %v, %v; want the pipe", c, err)
	}

	s2, _ := detached(t, p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s2.Watch(Hangup, func(Event) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after the poller closed = %v, want ErrClosed", err)
	}
}

// TestWatchFromWatchFunction: a watch function calling back into its
// Socket and the Poller must not deadlock.
func TestWatchFromWatchFunction(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	done := make(chan error, 1)
	if err := s.Watch(Readable, func(Event) {
		err := s.Watch(Hangup, func(Event) {})
		s.Stop()
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch function did not finish")
	}
}

// TestDetachedCostsLittle: what the package is for. Held as net.Conns,
// connections cost a netFD with its addresses on the heap (and a pollDesc
// off it, which Go recycles and so cannot be measured in a test process
// reliably); detached, only a Socket. The clients here are raw descriptors
// outside Go's poller, so only the server sides count. Compared in one run:
// detached must cost less than half the heap.
func TestDetachedCostsLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	p := newPoller(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	const n = 500
	measure := func(detach bool) (perConn int64) {
		var clients []int
		var keep []any
		defer func() {
			for _, k := range keep {
				k.(io.Closer).Close()
			}
			for _, fd := range clients {
				unix.Close(fd)
			}
		}()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, fd)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
			srv, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			if detach {
				keep = append(keep, p.Detach(srv))
			} else {
				keep = append(keep, srv)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		return (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	}
	det := measure(true) // first: Go's pollDesc cache is then empty for the held run
	held := measure(false)
	t.Logf("per server connection: held %d B, detached %d B", held, det)
	if det*2 > held {
		t.Fatalf("detaching saved too little: held %d B, detached %d B per connection", held, det)
	}
}

// TestDetachAgainAfterConn: a keep-alive connection parks, goes back to Go,
// parks again; its old epoll registration must not be in the way.
func TestDetachAgainAfterConn(t *testing.T) {
	p := newPoller(t)
	s, c := detached(t, p)
	for round := range 3 {
		if err := s.Watch(Hangup, func(Event) {}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		conn, err := s.Conn()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		s = p.Detach(conn)
		t.Cleanup(func() { s.Close() })
	}
	fired := make(chan Event, 1)
	if err := s.Watch(Hangup, func(ev Event) { fired <- ev }); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitEvent(t, fired)
}

// Reset ends a detached connection with a TCP reset: the peer's read fails
// with ECONNRESET, not a clean EOF, even with the peer's bytes unread.
func TestResetSendsRST(t *testing.T) {
	p := newPoller(t)
	for _, unread := range []bool{false, true} {
		s, cl := detached(t, p)
		if unread {
			if _, err := cl.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := s.Reset(); err != nil {
			t.Fatalf("Reset: %v", err)
		}
		cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := cl.Read(make([]byte, 16))
		if n != 0 || !errors.Is(err, unix.ECONNRESET) {
			t.Errorf("peer read after Reset (peer bytes unread: %v): %d, %v; want ECONNRESET", unread, n, err)
		}
		if err := s.Reset(); err != nil || s.Close() != nil {
			t.Errorf("Reset or Close after Reset: want nothing done")
		}
	}
}

// A TCP connection in conn mode is reset too; one that is not TCP is
// closed.
func TestResetConnMode(t *testing.T) {
	p := newPoller(t)
	srv, cl := pair(t)
	s := &Socket{p: p, fd: -1, conn: srv} // as Detach leaves one it cannot take out
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	cl.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cl.Read(make([]byte, 16)); !errors.Is(err, unix.ECONNRESET) {
		t.Errorf("peer read after a conn-mode Reset: %v, want ECONNRESET", err)
	}
	a, b := net.Pipe()
	defer b.Close()
	piped := p.Detach(a)
	if err := piped.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("pipe read after Reset: %v, want EOF", err)
	}
}

// TryWriteBuffers sends its buffers in order and says how much it sent:
// everything to a reading peer, a part once the peer's window is full.
func TestTryWriteBuffers(t *testing.T) {
	p := newPoller(t)
	s, cl := detached(t, p)
	n, err := s.TryWriteBuffers([][]byte{[]byte("HTTP/1.1 200 OK\r\n"), []byte("\r\n"), []byte("{}")})
	if err != nil || n != 21 {
		t.Fatalf("TryWriteBuffers = %d, %v; want 21", n, err)
	}
	got := make([]byte, 21)
	cl.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(cl, got); err != nil || string(got) != "HTTP/1.1 200 OK\r\n\r\n{}" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	total := 0
	for range 64 { // the peer reads nothing: the socket fills
		n, err := s.TryWriteBuffers([][]byte{big})
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < len(big) {
			break
		}
	}
	if total >= 64<<20 {
		t.Fatalf("64 MiB taken by a socket whose peer reads nothing")
	}
	s.Close()
	if _, err := s.TryWriteBuffers([][]byte{big}); !errors.Is(err, ErrClosed) {
		t.Errorf("TryWriteBuffers after Close: %v, want ErrClosed", err)
	}
}
