// Package cluster is what parkd instances share (docs/API.md, section 9):
// which connIds are parked where, the requests other instances hold, a
// way to kill them, and one history and one stream of events for all.
//
// The server calls one Store. Standalone is the in-process Store of a
// parkd alone: nothing is shared, nothing is external, and its calls cost
// a few atomic operations. Connect returns the Store of cluster mode,
// over one Redis. The local registry stays the owner of its requests
// either way: their deadlines, connections and single outcome never
// depend on the Store; the Store is the shared view, and the way to reach
// another instance's request.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parkd/parkd/events"
	"github.com/parkd/parkd/history"
)

// Errors of a Store.
var (
	// ErrTaken: another live instance holds this connId.
	ErrTaken = errors.New("connId is parked on another instance")
	// ErrUnavailable: the shared view cannot be reached; only what this
	// instance holds is known.
	ErrUnavailable = errors.New("cluster store unreachable")
	// ErrNotParked: no live instance holds this connId.
	ErrNotParked = errors.New("no live instance holds this connId")
	// ErrUnreachable: the instance holding the connId is live but did
	// not answer.
	ErrUnreachable = errors.New("instance unreachable")
)

// Unreachable is ErrUnreachable with the instance's name.
type Unreachable struct{ Instance string }

func (e Unreachable) Error() string { return fmt.Sprintf("instance %s unreachable", e.Instance) }
func (e Unreachable) Unwrap() error { return ErrUnreachable }

// Health is how the shared view stands.
type Health uint8

const (
	// Alone: a standalone parkd; there is nothing to share.
	Alone Health = iota
	// Whole: the shared view is reachable and up to date.
	Whole
	// Degraded: the shared view cannot be reached; this instance answers
	// from what it holds alone.
	Degraded
)

// Parked is one parked request as the shared view has it: what a listing
// of it on another instance shows.
type Parked struct {
	ConnID     string
	Instance   string
	RemoteAddr string
	Then       string // the drawn action, as listings show it
	Timeout    time.Duration
	Drip       time.Duration
	Pieces     int // of a dripping body; 0 when it does not drip
	BodyLen    int // the body's length, padding included
	Started    time.Time
	Token      uint64 // tells this park of the connId from another one
}

// Deadline is when the request's timeout elapses.
func (p *Parked) Deadline() time.Time { return p.Started.Add(p.Timeout) }

// End is when its last byte is due: its deadline, or its body's last piece.
func (p *Parked) End() time.Time { return p.Deadline().Add(p.Drip) }

// BodyAt says what the request's schedule has sent of its body by now:
// whether its body has begun (its phase) and how many bytes have left.
func (p *Parked) BodyAt(now time.Time) (begun bool, sent int) {
	deadline := p.Deadline()
	if p.Pieces == 0 || now.Before(deadline) {
		return false, 0
	}
	k := p.Pieces
	if p.Drip > 0 {
		k = min(p.Pieces, int(int64(now.Sub(deadline))*int64(p.Pieces)/int64(p.Drip)))
	}
	return true, p.BodyLen * k / p.Pieces
}

// Store is the shared view as one instance sees it. Its methods are safe
// for concurrent use. None of them waits on anything external for longer
// than its ctx allows, and Release and the Publish methods never wait.
type Store interface {
	// Health says how the shared view stands.
	Health() Health
	// Claim makes p.ConnID this instance's across the cluster before it
	// parks: ErrTaken when another live instance holds it, ErrUnavailable
	// when the view cannot be reached.
	Claim(ctx context.Context, p Parked) error
	// Release gives a claimed connId back once its request has its answer
	// (or did not park after all), waiting up to wait for Redis to have
	// it (0: not at all).
	Release(p Parked, wait time.Duration)
	// Others lists the requests the other live instances hold, a slice
	// per instance, in no particular order. The slices may be shared with
	// other calls: callers only read them.
	Others(ctx context.Context) ([][]Parked, error)
	// Find reads the request another live instance holds as connID:
	// ErrNotParked when none does.
	Find(ctx context.Context, connID string) (Parked, error)
	// Kill kills the request another live instance holds as connID, with
	// then (a then list's text, "" for the default), and returns once its
	// owner has decided it: ErrNotParked when no live instance holds it,
	// Unreachable when its owner does not answer.
	Kill(ctx context.Context, connID, then string) error
	// Publishing says whether an event published now could reach a stream:
	// a parked event is not even written when not. It is one atomic load.
	Publishing() bool
	// PublishParked hands the parked event of connID (data: its resource
	// object) to every event stream of the cluster.
	PublishParked(connID string, data []byte)
	// PublishFinished keeps rec in the history and hands its finished
	// event to every event stream of the cluster.
	PublishFinished(rec history.Record)
	// Subscribe adds an event stream, with the finished records after last
	// that the history still holds when replay is set: every event after
	// those reaches the stream, none of them twice. cut ends a write that
	// has blocked (see events.Hub.Subscribe).
	Subscribe(last history.ID, replay bool, cut func()) (*events.Subscriber, []history.Record, error)
	// History selects finished requests, newest first.
	History(ctx context.Context, f history.Filter) ([]history.Record, error)
	// Close leaves the cluster and releases what the Store holds.
	Close()
}
