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
// its state, which moves once from parked to decided.
type Entry struct {
	reg        *Registry
	connID     string
	remoteAddr string
	timeout    time.Duration
	deadline   time.Time // carries a monotonic reading: remaining time ignores wall-clock jumps
	due        int64     // deadline as nanoseconds since the registry's epoch: the sort key
	deliver    func(Outcome)
	state      atomic.Uint32
}

// Abandon decides Abandoned for e (its client went away) and delivers it;
// false if e already had its outcome.
func (e *Entry) Abandon() bool {
	return e.reg.finish(e, Abandoned)
}

// ConnID is the connId e was parked with.
func (e *Entry) ConnID() string { return e.connID }

// RemoteAddr is the address of e's client.
func (e *Entry) RemoteAddr() string { return e.remoteAddr }

// Timeout is how long e was parked for.
func (e *Entry) Timeout() time.Duration { return e.timeout }

// Deadline is when e's timeout elapses.
func (e *Entry) Deadline() time.Time {
	return e.deadline
}

// info is e's description, Remaining aside.
func (e *Entry) info() Info {
	return Info{
		ConnID:     e.connID,
		Timeout:    e.timeout,
		Started:    e.deadline.Add(-e.timeout),
		Deadline:   e.deadline,
		RemoteAddr: e.remoteAddr,
	}
}

func (e *Entry) ordered() ordered {
	return ordered{due: e.due, id: e.connID, e: e}
}
