package cluster

import (
	"testing"
	"time"
)

// What one instance writes in its hash, another reads back whole, and a
// damaged record is refused rather than half read.
func TestParkedRecordRoundTrip(t *testing.T) {
	start := time.UnixMilli(1_796_214_000_123)
	for _, p := range []Parked{
		{ConnID: "12", Instance: "a", Token: 7, Started: start, Timeout: 4 * time.Second, Then: "200", RemoteAddr: "127.0.0.1:5000"},
		{ConnID: "d", Instance: "b", Token: 1 << 40, Started: start, Timeout: 1500 * time.Millisecond, Drip: time.Second,
			Pieces: 10, BodyLen: 1000, Then: "503", RemoteAddr: "[::1]:6000|odd"},
		{ConnID: "z", Instance: "c", Started: start, Then: "", RemoteAddr: ""},
	} {
		got, ok := decodeParked(p.ConnID, p.Instance, encodeParked(&p))
		if !ok || got != p {
			t.Errorf("round trip of %+v: %+v, %v", p, got, ok)
		}
	}
	for _, bad := range []string{"", "1|2|3|4|5|6", "1|2|3|4|5|x|200|addr", "1|2|3|4|5|6200addr", "a|2|3|4|5|6|200|addr"} {
		if p, ok := decodeParked("id", "a", bad); ok {
			t.Errorf("decodeParked(%q) = %+v, want refused", bad, p)
		}
	}
}
