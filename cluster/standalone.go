package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/parkd/parkd/events"
	"github.com/parkd/parkd/history"
)

// Standalone is the Store of a parkd alone: no other instance, a history
// ring in memory and an event hub in the process. Each event gets its id
// here, a number one above the last, under one mutex held for a short,
// constant time, so that ids, the ring's order and the hub's log agree.
// With no stream subscribed, publishing a parked event costs one atomic
// load.
type Standalone struct {
	mu   sync.Mutex
	seq  uint64 // the last id given
	ring *history.Ring
	hub  *events.Hub
}

// NewStandalone returns the Store of a parkd alone, keeping its history in
// ring and handing events to hub.
func NewStandalone(ring *history.Ring, hub *events.Hub) *Standalone {
	return &Standalone{ring: ring, hub: hub}
}

// Health is Alone.
func (s *Standalone) Health() Health { return Alone }

// Claim has nothing to claim: the local registry alone decides.
func (s *Standalone) Claim(context.Context, Parked) error { return nil }

// Release has nothing to release.
func (s *Standalone) Release(Parked, time.Duration) {}

// Others lists nothing: there are no other instances.
func (s *Standalone) Others(context.Context) ([][]Parked, error) { return nil, nil }

// Find finds nothing elsewhere.
func (s *Standalone) Find(context.Context, string) (Parked, error) { return Parked{}, ErrNotParked }

// Kill kills nothing elsewhere.
func (s *Standalone) Kill(context.Context, string, string) error { return ErrNotParked }

// Publishing says whether the hub has a stream.
func (s *Standalone) Publishing() bool { return s.hub.Wanted() }

// PublishParked hands the event to the hub's streams, if any.
func (s *Standalone) PublishParked(_ string, data []byte) {
	if !s.hub.Wanted() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := history.ID{Major: s.seq}
	s.hub.Publish(events.AppendFrame(make([]byte, 0, len(data)+48), id.AppendText(nil), "parked", data))
}

// PublishFinished numbers rec, keeps it in the ring and hands its event
// to the hub's streams.
func (s *Standalone) PublishFinished(rec history.Record) {
	var data []byte
	if s.hub.Wanted() {
		data = rec.AppendJSON(nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rec.ID = history.ID{Major: s.seq}
	s.ring.Add(rec)
	if data != nil {
		s.hub.Publish(events.AppendFrame(make([]byte, 0, len(data)+48), rec.ID.AppendText(nil), "finished", data))
	}
}

// Subscribe adds a stream to the hub and reads the replay in one step.
func (s *Standalone) Subscribe(last history.ID, replay bool, cut func()) (*events.Subscriber, []history.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.hub.Subscribe(cut)
	if err != nil || !replay {
		return sub, nil, err
	}
	return sub, s.ring.After(nil, last), nil
}

// History selects from the ring.
func (s *Standalone) History(_ context.Context, f history.Filter) ([]history.Record, error) {
	return s.ring.Select(nil, f), nil
}

// Close has nothing to leave; the hub is its owner's to close.
func (s *Standalone) Close() {}
