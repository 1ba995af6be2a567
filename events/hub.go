// Package events hands what happens to parked requests to the clients of
// an event stream (Server-Sent Events, docs/API.md section 7).
//
// A Hub keeps the last events in a log, each already written as an SSE
// frame; every subscriber reads the log at its own pace, from where it
// started. Publishing is a non-blocking hand-off whatever the subscribers
// do: it appends one frame under a mutex held for a constant time and
// wakes the readers, and with no subscriber it does not even write the
// frame. A subscriber that falls more than MaxBehind events behind — the
// log has moved on past what it has yet to send — is dropped, and so is
// one that takes no byte for StallTimeout; neither ever slows a publisher.
//
// Each subscriber is served by one goroutine, its stream's writer (the
// caller's), which ends when the client leaves, when it is dropped, or
// when the Hub closes. The Hub's own goroutine, started by New and ended
// by Close, checks the subscribers' lag and sends the keep-alive comment.
package events

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of a subscriber.
const (
	// MaxBehind is how many events a subscriber may have yet to send.
	MaxBehind = 10_000
	// StallTimeout is how long a subscriber may take no byte.
	StallTimeout = 10 * time.Second
	// KeepAlive is how often a quiet stream gets a comment line, so that
	// proxies do not close it.
	KeepAlive = 15 * time.Second
)

// logSize is the number of frames the log holds: enough for MaxBehind,
// and a power of two.
const logSize = 1 << 14

// ErrDropped: the subscriber fell behind, or the Hub closed.
var ErrDropped = errors.New("subscriber dropped")

// Hub is the log of recent events and its subscribers. Its methods are
// safe for concurrent use.
type Hub struct {
	mu      sync.Mutex
	frames  [logSize][]byte // frame of event seq at frames[seq%logSize]
	next    uint64          // seq of the next event
	wake    chan struct{}   // closed and replaced at each publish: readers wait on it
	subs    map[*Subscriber]struct{}
	closed  bool
	count   atomic.Int64 // subscribers now: publishers read it without the lock
	stopped chan struct{}
	done    chan struct{} // closed when the Hub's goroutine has returned

	published atomic.Uint64 // events published with a subscriber to read them
	dropped   atomic.Uint64 // subscribers dropped for lag or a stall
}

// New starts a Hub; Close stops it.
func New() *Hub {
	h := &Hub{
		wake:    make(chan struct{}),
		subs:    map[*Subscriber]struct{}{},
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go h.watch()
	return h
}

// Subscribers is how many subscribers there are now.
func (h *Hub) Subscribers() int { return int(h.count.Load()) }

// Published is how many events have been published while someone
// subscribed.
func (h *Hub) Published() uint64 { return h.published.Load() }

// Dropped is how many subscribers were dropped for falling behind or
// stalling.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Wanted says whether an event published now would reach anyone: a
// publisher skips writing the frame when not. It is one atomic load.
func (h *Hub) Wanted() bool { return h.count.Load() > 0 }

// Publish appends frame, an SSE frame that must not be modified, for
// every subscriber to send. It never waits for a subscriber.
func (h *Hub) Publish(frame []byte) {
	h.mu.Lock()
	if h.closed || len(h.subs) == 0 {
		h.mu.Unlock()
		return
	}
	h.frames[h.next%logSize] = frame
	h.next++
	wake := h.wake
	h.wake = make(chan struct{})
	h.mu.Unlock()
	h.published.Add(1)
	close(wake)
}

// Subscriber is one stream's place in the log. Only its writer calls
// Next; the Hub may drop it at any time.
type Subscriber struct {
	h       *Hub
	cursor  uint64 // seq of the next event to send; the writer's alone
	dropped chan struct{}
	once    sync.Once
	// writing is when the writer began the write under way (unix
	// nanoseconds), or 0 while it is not writing: the Hub's stall check
	// reads it.
	writing atomic.Int64
	lagged  atomic.Bool // dropped for falling behind or stalling: nothing more is sent
	cut     func()      // ends a blocked write; nil when there is none to end
}

// Subscribe adds a subscriber that gets every event published from now
// on. cut, if not nil, is called (once, from the Hub's goroutine) to end a
// write that has blocked for StallTimeout, such as by setting the
// connection's write deadline to now. Unsubscribe must be called when the
// stream ends.
func (h *Hub) Subscribe(cut func()) (*Subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrDropped
	}
	s := &Subscriber{h: h, cursor: h.next, dropped: make(chan struct{}), cut: cut}
	h.subs[s] = struct{}{}
	h.count.Add(1)
	return s, nil
}

// Unsubscribe removes s; its writer calls it once the stream is over.
func (h *Hub) Unsubscribe(s *Subscriber) {
	h.mu.Lock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.count.Add(-1)
		if len(h.subs) == 0 {
			clear(h.frames[:]) // nobody will read them: their memory goes
		}
	}
	h.mu.Unlock()
	s.drop(false)
}

// drop ends s's stream: for lagging (it fell behind or stalled, which the
// Hub counts) or because the stream is over anyway.
func (s *Subscriber) drop(lagging bool) {
	s.once.Do(func() {
		if lagging {
			s.lagged.Store(true)
			s.h.dropped.Add(1)
		}
		close(s.dropped)
	})
}

// Next appends to dst the frames published since the last call, at most
// cap(dst) of them (so that what the writer has yet to send shows as
// lag), waiting up to wait for at least one; none after wait is not an
// error (the caller sends its keep-alive). It fails with ErrDropped once
// s fell behind or the Hub closed.
func (s *Subscriber) Next(dst [][]byte, wait time.Duration) ([][]byte, error) {
	limit := max(cap(dst), len(dst)+1)
	h := s.h
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		h.mu.Lock()
		if s.lagged.Load() || h.next-s.cursor > MaxBehind {
			h.mu.Unlock()
			s.drop(true)
			return dst, ErrDropped
		}
		// What was published before the Hub closed, or before s was let go
		// for any other reason than lagging, is still sent: a stream that
		// ends at shutdown ends with the drain's last events.
		for ; s.cursor < h.next && len(dst) < limit; s.cursor++ {
			dst = append(dst, h.frames[s.cursor%logSize])
		}
		closed, wake := h.closed, h.wake
		h.mu.Unlock()
		if len(dst) > 0 {
			return dst, nil
		}
		if closed {
			return dst, ErrDropped
		}
		select {
		case <-wake:
		case <-s.dropped:
			return dst, ErrDropped
		case <-timer.C:
			return dst, nil
		}
	}
}

// Writing tells the Hub that s's writer is about to write (true) — a
// piece of its stream, small enough that a client taking bytes finishes
// it well within StallTimeout — or is done writing (false): a write that
// lasts StallTimeout is cut.
func (s *Subscriber) Writing(on bool) {
	if on {
		s.writing.Store(time.Now().UnixNano())
	} else {
		s.writing.Store(0)
	}
}

// watch runs on the Hub's own goroutine until Close: it drops the
// subscribers that fell behind (their writers may be blocked in a write
// and not notice) and cuts writes that have stalled.
func (h *Hub) watch() {
	defer close(h.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.stopped:
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		var cut []*Subscriber
		h.mu.Lock()
		for s := range h.subs {
			started := s.writing.Load()
			stalled := started != 0 && now-started > int64(StallTimeout)
			if h.next-s.cursor > MaxBehind || stalled {
				cut = append(cut, s)
			}
		}
		h.mu.Unlock()
		for _, s := range cut {
			// Dropped before its write is cut, so that the writer, woken
			// by the cut, finds its stream over.
			s.drop(true)
			if s.cut != nil {
				s.cut()
			}
		}
	}
}

// DropAll ends every stream now open, as Close does, but the Hub goes on:
// the clients reconnect (an EventSource does by itself), to a view that
// changed under them.
func (h *Hub) DropAll() {
	h.mu.Lock()
	subs := h.listLocked()
	h.mu.Unlock()
	endAll(subs)
}

// listLocked lists the subscribers; h.mu is held.
func (h *Hub) listLocked() []*Subscriber {
	subs := make([]*Subscriber, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	return subs
}

// endAll ends the streams of subs: a waiting writer ends its stream
// cleanly, and one blocked in a write has it cut.
func endAll(subs []*Subscriber) {
	for _, s := range subs {
		s.drop(false)
		if s.cut != nil && s.writing.Load() != 0 {
			s.cut()
		}
	}
}

// Close drops every subscriber, so that every writer returns (one blocked
// in a write has it cut), and stops the Hub's goroutine. Publish does
// nothing after it.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	subs := h.listLocked()
	wake := h.wake
	h.mu.Unlock()
	close(wake)
	endAll(subs)
	close(h.stopped)
	<-h.done
}

// AppendFrame writes one SSE event: its id (none when empty), its name and
// its data, which holds no line break.
func AppendFrame(b []byte, id []byte, event string, data []byte) []byte {
	if len(id) > 0 {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
