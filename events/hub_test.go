package events

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func frame(i int) []byte { return []byte("id: " + strconv.Itoa(i) + "\n\n") }

func collect(t *testing.T, s *Subscriber, n int) []string {
	t.Helper()
	var got []string
	end := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(end) {
		fs, err := s.Next(make([][]byte, 0, 256), 100*time.Millisecond)
		if err != nil {
			t.Fatalf("Next: %v after %d", err, len(got))
		}
		for _, f := range fs {
			got = append(got, string(f))
		}
	}
	return got
}

// A subscriber gets every frame published after it subscribed, in order;
// one that subscribed later starts later.
func TestHubOrder(t *testing.T) {
	h := New()
	defer h.Close()
	if h.Wanted() {
		t.Fatal("Wanted with no subscriber")
	}
	h.Publish(frame(0)) // nobody: not kept
	a, _ := h.Subscribe(nil)
	defer h.Unsubscribe(a)
	if !h.Wanted() || h.Subscribers() != 1 {
		t.Fatal("a subscriber is not counted")
	}
	h.Publish(frame(1))
	b, _ := h.Subscribe(nil)
	defer h.Unsubscribe(b)
	for i := 2; i <= 5; i++ {
		h.Publish(frame(i))
	}
	if got := fmt.Sprint(collect(t, a, 5)); got != fmt.Sprint([]string{"id: 1\n\n", "id: 2\n\n", "id: 3\n\n", "id: 4\n\n", "id: 5\n\n"}) {
		t.Errorf("a got %q", got)
	}
	if got := collect(t, b, 4); len(got) != 4 || got[0] != "id: 2\n\n" {
		t.Errorf("b got %q, want 2 to 5", got)
	}
	if h.Published() != 5 {
		t.Errorf("Published %d, want 5 (the one without subscribers aside)", h.Published())
	}
}

// Next waits for a frame, returns nothing after its wait, and ErrDropped
// once the subscriber is gone.
func TestHubNextWaits(t *testing.T) {
	h := New()
	defer h.Close()
	s, _ := h.Subscribe(nil)
	if fs, err := s.Next(nil, 20*time.Millisecond); err != nil || len(fs) != 0 {
		t.Errorf("Next with nothing published: %v, %v", fs, err)
	}
	go func() { time.Sleep(20 * time.Millisecond); h.Publish(frame(1)) }()
	if fs, err := s.Next(nil, 10*time.Second); err != nil || len(fs) != 1 {
		t.Errorf("Next: %v, %v; want the frame published while it waited", fs, err)
	}
	h.Unsubscribe(s)
	if _, err := s.Next(nil, time.Second); !errors.Is(err, ErrDropped) {
		t.Errorf("Next after Unsubscribe: %v", err)
	}
}

// A subscriber more than MaxBehind events behind is dropped, counted, and
// never slows publishing; the others go on.
func TestHubDropsLaggard(t *testing.T) {
	h := New()
	defer h.Close()
	slow, _ := h.Subscribe(nil)
	fast, _ := h.Subscribe(nil)
	defer h.Unsubscribe(fast)
	var got atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			fs, err := fast.Next(make([][]byte, 0, 256), 10*time.Millisecond)
			if err != nil {
				t.Errorf("the fast subscriber was dropped: %v", err)
				return
			}
			got.Add(int64(len(fs)))
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	for i := range MaxBehind + 500 {
		h.Publish(frame(i))
	}
	for end := time.Now().Add(10 * time.Second); got.Load() < MaxBehind+500 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if _, err := slow.Next(nil, 0); !errors.Is(err, ErrDropped) {
		t.Errorf("the slow subscriber: %v, want ErrDropped", err)
	}
	h.Unsubscribe(slow)
	if h.Dropped() != 1 || h.Subscribers() != 1 {
		t.Errorf("Dropped %d Subscribers %d, want 1 and 1", h.Dropped(), h.Subscribers())
	}
}

// A write that lasts StallTimeout is cut and its subscriber dropped.
func TestHubCutsStalledWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for StallTimeout")
	}
	h := New()
	defer h.Close()
	cut := make(chan struct{})
	s, _ := h.Subscribe(func() { close(cut) })
	s.Writing(true) // and never done
	select {
	case <-cut:
	case <-time.After(StallTimeout + 5*time.Second):
		t.Fatal("a stalled write was not cut")
	}
	if _, err := s.Next(nil, 0); !errors.Is(err, ErrDropped) || h.Dropped() != 1 {
		t.Errorf("after the cut: %v, Dropped %d", err, h.Dropped())
	}
	h.Unsubscribe(s)
}

// Close ends every subscriber's Next at once and cuts their writes.
func TestHubClose(t *testing.T) {
	h := New()
	var cuts atomic.Int64
	var wg sync.WaitGroup
	for i := range 3 {
		s, _ := h.Subscribe(func() { cuts.Add(1) })
		if i == 0 {
			s.Writing(true) // blocked in a write: cut
		}
		wg.Go(func() {
			if _, err := s.Next(nil, time.Hour); !errors.Is(err, ErrDropped) {
				t.Errorf("Next after Close: %v", err)
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
	h.Close()
	wg.Wait()
	if cuts.Load() != 1 {
		t.Errorf("%d writes cut, want the one under way", cuts.Load())
	}
	if _, err := h.Subscribe(nil); !errors.Is(err, ErrDropped) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	h.Publish(frame(1)) // does nothing
	h.Close()           // twice is fine
}
