// Package history keeps the last finished parked requests in a bounded
// ring, newest first on the way out, for GET /api/history and for the
// replay of an event stream (docs/API.md, section 7).
//
// A Ring is safe for concurrent use: Add and the readers take one mutex,
// Add for a constant time (it overwrites the oldest record when full), a
// reader for a walk over the records it returns or filters. Records are
// values: what a reader gets is its own copy.
package history

import (
	"slices"
	"sync"
	"time"
)

// Record is one finished parked request, as the history shows it. Its
// strings are shared with the caller, not copied: a parked request's
// connId and address, the instance's name.
type Record struct {
	ID         ID // the id of its finished event
	ConnID     string
	Outcome    string // ok, killed, abandoned or shutdown
	Then       string // the action applied; "" for none
	Code       int    // the status code written; 0 for none
	Timeout    time.Duration
	Started    time.Time
	Ended      time.Time // for an abandoned request, when its client left
	BytesSent  int64
	RemoteAddr string
	Instance   string
}

// Filter selects records: by connId, by outcome ("" for any of each),
// and at most Limit of them, newest first (0 for all).
type Filter struct {
	ConnID  string
	Outcome string
	Limit   int
}

func (f Filter) match(r *Record) bool {
	return (f.ConnID == "" || r.ConnID == f.ConnID) && (f.Outcome == "" || r.Outcome == f.Outcome)
}

// Ring holds the last Cap records added. The zero Ring holds none; make
// one with New.
type Ring struct {
	mu    sync.Mutex
	recs  []Record // a circle: recs[next-1] is the newest once full
	next  int      // where the next record goes
	count int      // how many are held, ≤ len(recs)
}

// New returns a Ring that keeps the last n records; 0 keeps none.
func New(n int) *Ring {
	return &Ring{recs: make([]Record, n)}
}

// Cap is how many records the ring keeps.
func (r *Ring) Cap() int { return len(r.recs) }

// Add keeps rec, dropping the oldest record when the ring is full. Records
// must be added in the order of their ids.
func (r *Ring) Add(rec Record) {
	if len(r.recs) == 0 {
		return
	}
	r.mu.Lock()
	r.recs[r.next] = rec
	r.next = (r.next + 1) % len(r.recs)
	r.count = min(r.count+1, len(r.recs))
	r.mu.Unlock()
}

// Len is how many records the ring holds now.
func (r *Ring) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Select appends to dst, newest first, the records that f selects.
func (r *Ring) Select(dst []Record, f Filter) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.count {
		rec := &r.recs[(r.next-1-i+2*len(r.recs))%len(r.recs)]
		if f.match(rec) {
			dst = append(dst, *rec)
			if f.Limit > 0 && len(dst) >= f.Limit {
				break
			}
		}
	}
	return dst
}

// After appends to dst, oldest first, the records whose ids come after
// id: what a stream reconnecting with that Last-Event-ID has missed.
func (r *Ring) After(dst []Record, id ID) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := len(dst)
	for i := range r.count {
		rec := &r.recs[(r.next-1-i+2*len(r.recs))%len(r.recs)]
		if !id.Less(rec.ID) {
			break // ids grow with the ring: the rest are older
		}
		dst = append(dst, *rec)
	}
	slices.Reverse(dst[start:])
	return dst
}
