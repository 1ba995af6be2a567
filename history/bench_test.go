package history

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRingMemory measures what a full ring of 10,000 records holds,
// the strings it keeps alive included (a connId of 12 bytes and an
// address, as a parked request leaves them), per record:
//
//	go test -run '^$' -bench RingMemory -benchtime 5x ./history/
func BenchmarkRingMemory(b *testing.B) {
	const n = 10_000
	now := time.Now()
	var perEntry float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := New(n)
		for i := range n {
			r.Add(Record{
				ID:     ID{Major: uint64(i)},
				ConnID: "conn-" + strconv.Itoa(1_000_000+i), Outcome: "ok", Then: "200", Code: 200,
				Timeout: time.Second, Started: now, Ended: now.Add(time.Second), BytesSent: 15,
				RemoteAddr: "127.0.0.1:" + strconv.Itoa(10_000+i), Instance: "host:8080",
			})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(r)
	}
	b.ReportMetric(perEntry, "B/entry")
}
