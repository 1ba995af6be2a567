package registry

import (
	"sync/atomic"
	"time"
)

const (
	parked uint32 = iota
	decided
)

// Entry is one parked request. Its fields never change after Park, but for
// its state, which moves once from parked to decided, and a dripping
// request's next step, which only the registry moves, under its order's
// lock.
type Entry struct {
	reg        *Registry
	connID     string
	remoteAddr string
	timeout    time.Duration
	due        int64 // the end (deadline, or last step) as nanoseconds since the registry's epoch: the sort key
	owner      Owner
	drip       *drip // nil unless the request drips
	state      atomic.Uint32
}

// drip is a dripping request's schedule and where it stands in it.
type drip struct {
	span   time.Duration // from the deadline to the last step
	pieces int32
	next   int32 // the next step to call, 0…pieces
	at     int64 // its due, on the registry's clock; -1 while none is in the steps tree
}

// Abandon decides Abandoned for e (its client went away) and delivers it;
// false if e already had its outcome.
func (e *Entry) Abandon() bool {
	return e.reg.finish(e, Abandoned, 0)
}

// ConnID is the connId e was parked with.
func (e *Entry) ConnID() string { return e.connID }

// RemoteAddr is the address of e's client.
func (e *Entry) RemoteAddr() string { return e.remoteAddr }

// Timeout is how long e was parked for.
func (e *Entry) Timeout() time.Duration { return e.timeout }

// Deadline is when e's timeout elapses. It carries a monotonic reading, so
// time left ignores wall-clock jumps.
func (e *Entry) Deadline() time.Time {
	return e.reg.epoch.Add(time.Duration(e.due) - e.dripSpan())
}

func (e *Entry) dripSpan() time.Duration {
	if e.drip == nil {
		return 0
	}
	return e.drip.span
}

// Info describes e now.
func (e *Entry) Info() Info {
	in := e.info()
	in.Remaining = time.Duration(e.due - int64(time.Since(e.reg.epoch)))
	return in
}

// info is e's description, Remaining aside.
func (e *Entry) info() Info {
	deadline := e.Deadline()
	return Info{
		ConnID:     e.connID,
		Timeout:    e.timeout,
		Drip:       e.dripSpan(),
		Started:    deadline.Add(-e.timeout),
		Deadline:   deadline,
		RemoteAddr: e.remoteAddr,
		Owner:      e.owner,
	}
}

func (e *Entry) ordered() ordered {
	return ordered{due: e.due, id: e.connID, e: e}
}

// step is e's place in the steps tree.
func (e *Entry) step() ordered {
	return ordered{due: e.drip.at, id: e.connID, e: e}
}
