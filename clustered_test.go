package main

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// listedOrder sorts like the plain definition (end, then connId) for
// every kind of input: ties, one item, none, and ranges too wide for
// its packed keys.
func TestListedOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		ends []int64
	}{
		{"none", nil},
		{"one", []int64{5}},
		{"all tied", []int64{7, 7, 7, 7, 7}},
		{"distinct", []int64{30, 10, 20}},
		{"negative and wide", []int64{-1 << 62, 1 << 62, 0, 0, -5}},
		{"random with ties", func() []int64 {
			e := make([]int64, 5000)
			for i := range e {
				e[i] = 1_796_214_000_000 + rng.Int64N(800)
			}
			return e
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids := make([]string, len(tc.ends))
			for i := range ids {
				ids[i] = "id" + strconv.Itoa(rng.IntN(100_000))
			}
			connID := func(i int) string { return ids[i] }
			got := listedOrder(nil, tc.ends, connID)
			want := make([]uint64, len(tc.ends))
			for i := range want {
				want[i] = uint64(i)
			}
			slices.SortStableFunc(want, func(a, b uint64) int {
				return cmp.Or(cmp.Compare(tc.ends[a], tc.ends[b]), strings.Compare(ids[a], ids[b]))
			})
			if len(got) != len(want) {
				t.Fatalf("%d items ordered, want %d", len(got), len(want))
			}
			for i := range got {
				// Equal ends and equal connIds may come in either order.
				if a, b := got[i], want[i]; tc.ends[a] != tc.ends[b] || ids[a] != ids[b] {
					t.Fatalf("item %d: %d (%d %s), want %d (%d %s)", i, a, tc.ends[a], ids[a], b, tc.ends[b], ids[b])
				}
			}
			seen := map[uint64]bool{}
			for _, i := range got {
				if seen[i] {
					t.Fatalf("item %d listed twice", i)
				}
				seen[i] = true
			}
		})
	}
}
