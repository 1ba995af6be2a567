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
	timer      atomic.Pointer[time.Timer]
}

// Abandon decides Abandoned for e (its client went away) and delivers it;
// false if e already had its outcome.
func (e *Entry) Abandon() bool {
	return e.reg.finish(e, Abandoned)
}

// Deadline is when e's timeout elapses.
func (e *Entry) Deadline() time.Time {
	return e.deadline
}

// expire is the timer's function.
func (e *Entry) expire() {
	e.reg.finish(e, OK)
}

func (e *Entry) info(now time.Time) Info {
	return Info{
		ConnID:     e.connID,
		Timeout:    e.timeout,
		Started:    e.deadline.Add(-e.timeout),
		Deadline:   e.deadline,
		Remaining:  e.deadline.Sub(now),
		RemoteAddr: e.remoteAddr,
	}
}
