package history

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func rec(n int, id, outcome string) Record {
	return Record{ID: ID{Major: uint64(n)}, ConnID: id, Outcome: outcome}
}

func ids(rs []Record) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID.String()+":"+r.ConnID)
	}
	return fmt.Sprint(s)
}

// The ring keeps the last Cap records and lists them newest first, by
// connId, by outcome and up to a limit; After gives those after an id,
// oldest first.
func TestRing(t *testing.T) {
	r := New(4)
	for i, id := range []string{"a", "b", "a", "c", "a", "d"} {
		outcome := "ok"
		if i%2 == 1 {
			outcome = "killed"
		}
		r.Add(rec(i+1, id, outcome))
	}
	tests := []struct {
		f    Filter
		want string
	}{
		{Filter{}, "[6:d 5:a 4:c 3:a]"},
		{Filter{Limit: 2}, "[6:d 5:a]"},
		{Filter{Limit: 100}, "[6:d 5:a 4:c 3:a]"},
		{Filter{ConnID: "a"}, "[5:a 3:a]"},
		{Filter{ConnID: "a", Limit: 1}, "[5:a]"},
		{Filter{Outcome: "killed"}, "[6:d 4:c]"},
		{Filter{ConnID: "a", Outcome: "killed"}, "[]"},
		{Filter{ConnID: "b"}, "[]"}, // dropped out of the ring
	}
	for _, tt := range tests {
		if got := ids(r.Select(nil, tt.f)); got != tt.want {
			t.Errorf("Select(%+v) = %s, want %s", tt.f, got, tt.want)
		}
	}
	if r.Len() != 4 || r.Cap() != 4 {
		t.Errorf("Len %d Cap %d, want 4 4", r.Len(), r.Cap())
	}
	for _, tt := range []struct {
		after ID
		want  string
	}{
		{ID{}, "[3:a 4:c 5:a 6:d]"}, {ID{Major: 4}, "[5:a 6:d]"}, {ID{Major: 6}, "[]"}, {ID{Major: 9}, "[]"},
		{ID{Major: 4, Minor: 1, HasMinor: true}, "[5:a 6:d]"},
	} {
		if got := ids(r.After(nil, tt.after)); got != tt.want {
			t.Errorf("After(%v) = %s, want %s", tt.after, got, tt.want)
		}
	}
}

// A ring of 0 keeps nothing.
func TestRingZero(t *testing.T) {
	r := New(0)
	r.Add(rec(1, "a", "ok"))
	if got := r.Select(nil, Filter{}); len(got) != 0 || r.Len() != 0 {
		t.Errorf("a ring of 0 holds %v", got)
	}
}

// Adds and reads from many goroutines see whole records, newest first.
func TestRingConcurrent(t *testing.T) {
	r := New(100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				mu.Lock()
				next++
				r.Add(rec(next, strconv.Itoa(next), "ok"))
				mu.Unlock()
				got := r.Select(nil, Filter{Limit: 10})
				for i := 1; i < len(got); i++ {
					if !got[i].ID.Less(got[i-1].ID) || got[i].ConnID != got[i].ID.String() {
						t.Errorf("out of order or torn: %s", ids(got))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if r.Len() != 100 {
		t.Errorf("Len %d, want 100", r.Len())
	}
}

func TestID(t *testing.T) {
	for _, tt := range []struct {
		s  string
		ok bool
	}{{"17", true}, {"1733112000000-3", true}, {"0", true}, {"", false}, {"-1", false}, {"1-", false},
		{"a", false}, {"1-2-3", false}, {"+1", false}, {"1 ", false}, {"99999999999999999999", false}} {
		id, ok := ParseID(tt.s)
		if ok != tt.ok || ok && id.String() != tt.s {
			t.Errorf("ParseID(%q) = %v, %v; want ok %v", tt.s, id, ok, tt.ok)
		}
	}
	a, _ := ParseID("1733112000000-3")
	b, _ := ParseID("1733112000000-10")
	c, _ := ParseID("1733112000001")
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Errorf("ids do not compare part by part as numbers")
	}
}
