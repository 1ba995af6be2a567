package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// frameText is a frame as a test compares it.
func frameText(f *sseFrame) string {
	id := "-"
	if f.hasID {
		id = string(f.id)
	}
	return fmt.Sprintf("%s|%s|%s", f.event, id, f.data)
}

// parseAll feeds text to a parser in pieces of size n (0: whole).
func parseAll(text string, n int) (*sseParser, []string) {
	var got []string
	p := newSSEParser(func(f *sseFrame) { got = append(got, frameText(f)) })
	if n == 0 {
		n = len(text)
	}
	for len(text) > 0 {
		k := min(n, len(text))
		p.feed([]byte(text[:k]))
		text = text[k:]
	}
	return p, got
}

func TestSSEParser(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		comments int
		retry    int64
	}{
		{"parkd's frames", "retry: 1000\n\nevent: snapshot\ndata: []\n\nid: 1\nevent: parked\ndata: {\"connId\":\"a\"}\n\n: keep-alive\n\n",
			[]string{"snapshot|-|[]", `parked|1|{"connId":"a"}`}, 1, 1000},
		{"CRLF and CR line ends", "id: 7\r\nevent: finished\r\ndata: x\r\n\r\nid: 8\revent: parked\rdata: y\r\r",
			[]string{"finished|7|x", "parked|8|y"}, 0, -1},
		{"data lines joined, no space after the colon", "data:a\ndata: b\ndata\n\n", []string{"|-|a\nb\n"}, 0, -1},
		{"no data, no frame; the id stays its own", "id: 3\nevent: parked\n\nevent: finished\ndata: z\n\n", []string{"finished|-|z"}, 0, -1},
		{"a byte order mark, unknown fields, a bad retry", "\xef\xbb\xbfevent: e\nfoo: bar\nretry: 5x\ndata: d\n\n", []string{"e|-|d"}, 0, -1},
		{"an id with a NUL is ignored", "id: 1\x002\ndata: d\n\n", []string{"|-|d"}, 0, -1},
		{"a frame without its blank line is not dispatched", "event: parked\ndata: d\n", nil, 0, -1},
	}
	for _, tt := range tests {
		for _, n := range []int{0, 1, 2, 3, 7} {
			p, got := parseAll(tt.in, n)
			if !reflect.DeepEqual(got, tt.want) || p.comments != tt.comments || p.retry != tt.retry {
				t.Errorf("%s, pieces of %d: frames %q, comments %d, retry %d; want %q, %d, %d", tt.name, n, got, p.comments, p.retry, tt.want, tt.comments, tt.retry)
			}
		}
	}
}

func TestBodyDecoder(t *testing.T) {
	chunked := "4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nTrailer: x\r\n\r\nafter the body"
	for _, n := range []int{1, 2, 5, len(chunked)} {
		d := bodyDecoder{chunked: true}
		var got []byte
		var err error
		for b := []byte(chunked); len(b) > 0 && err == nil; {
			k := min(n, len(b))
			err = d.feed(b[:k], func(c []byte) { got = append(got, c...) })
			b = b[k:]
		}
		if string(got) != "abcdefg" || err != io.EOF {
			t.Errorf("pieces of %d: %q, %v; want abcdefg, EOF", n, got, err)
		}
	}
	for _, bad := range []string{"zz\r\nab", "2\r\nabX\r\n", strings.Repeat("1", maxLine+1)} {
		d := bodyDecoder{chunked: true}
		if err := d.feed([]byte(bad), func([]byte) {}); !errors.Is(err, errChunkFormat) {
			t.Errorf("%.20q: %v, want a chunk error", bad, err)
		}
	}
	d := bodyDecoder{}
	var got []byte
	if err := d.feed([]byte("as is"), func(c []byte) { got = append(got, c...) }); err != nil || string(got) != "as is" {
		t.Errorf("not chunked: %q, %v", got, err)
	}
}

func TestEventIDs(t *testing.T) {
	tests := []struct {
		id, prev string
		after    bool
	}{
		{"10", "9", true}, // as numbers, not as text
		{"9", "10", false},
		{"17", "17", false},
		{"1733112000000-3", "1733112000000-2", true},
		{"1733112000001-0", "1733112000000-9", true},
		{"5-0", "5", false}, // a missing part counts as 0
		{"5-1", "5", true},
		{"6", "5-99", true},
	}
	for _, tt := range tests {
		id, ok1 := parseEventID(nil, []byte(tt.id))
		prev, ok2 := parseEventID(nil, []byte(tt.prev))
		if !ok1 || !ok2 || id.after(prev) != tt.after {
			t.Errorf("%s after %s: %v (parsed %v %v), want %v", tt.id, tt.prev, id.after(prev), ok1, ok2, tt.after)
		}
	}
	for _, bad := range []string{"", "-", "1-", "-1", "1--2", "a", "1 ", "18446744073709551616"} {
		if _, ok := parseEventID(nil, []byte(bad)); ok {
			t.Errorf("id %q parsed", bad)
		}
	}
}

func TestEventFields(t *testing.T) {
	tests := []struct {
		data   string
		kind   int
		id     string
		ms     int64
		wantOK bool
	}{
		{`{"connId":"ab-p1","timeoutMs":500,"startedAt":"2026-12-02T07:34:45.766Z","deadline":"2026-12-02T07:34:46.266Z"}`, evParked, "ab-p1", 1796196885766, true},
		{`{"connId":"ab-p1","outcome":"ok","startedAt":"2026-12-02T07:34:45.766Z","endedAt":"2026-12-02T07:34:46.267Z"}`, evFinished, "ab-p1", 1796196886267, true},
		// A connId that holds a field's name in quotes is decoded properly.
		{`{"connId":"x\",\"startedAt\":\"2000-01-01T00:00:00.000Z","startedAt":"2026-12-02T07:34:45.766+01:00"}`, evParked, `x","startedAt":"2000-01-01T00:00:00.000Z`, 1796196885766 - 3600000, true},
		{`{"connId":"a","startedAt":"yesterday"}`, evParked, "", 0, false},
		{`{"connId":"a","endedAt":"2026-12-02T07:34:45.766Z"}`, evParked, "", 0, false}, // a parked event counts from startedAt
		{`{"startedAt":"2026-12-02T07:34:45.766Z"}`, evParked, "", 0, false},
		{`not JSON`, evParked, "", 0, false},
	}
	for _, tt := range tests {
		id, ms, ok := eventFields([]byte(tt.data), tt.kind)
		if ok != tt.wantOK || ok && (string(id) != tt.id || ms != tt.ms) {
			t.Errorf("%s: %q %d %v; want %q %d %v", tt.data, id, ms, ok, tt.id, tt.ms, tt.wantOK)
		}
	}
	want := time.Date(2026, 2, 28, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	if ms, ok := parseMillis([]byte("2026-02-28T23:59:59.999Z")); !ok || ms != want {
		t.Errorf("parseMillis: %d %v, want %d", ms, ok, want)
	}
	for _, bad := range []string{"2026-13-01T00:00:00.000Z", "2026-02-28T24:00:00.000Z", "2026-02-28T23:59:59.9x9Z"} {
		if _, ok := parseMillis([]byte(bad)); ok {
			t.Errorf("parseMillis(%q) ok", bad)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// The command may hold spaces and parentheses; the times follow the last ")".
	stat := "4242 (odd (name) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 125 0 0 20 0 9 0 100 1000000 500 18446744073709551615"
	if v, err := parseProcStat([]byte(stat)); err != nil || v != 3.75 {
		t.Fatalf("parseProcStat: %v, %v; want 3.75 s", v, err)
	}
	for _, bad := range []string{"4242 no command", "4242 (x) S 1 2", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 eleven 12"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if v, err := readCPU(os.Getpid()); err != nil && !errors.Is(err, os.ErrNotExist) || err == nil && v < 0 {
		t.Fatalf("readCPU: %v, %v", v, err)
	}
}

// streamText is an event stream as parkd answers it: the head, then the
// frames in chunks.
func streamText(frames ...string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
	for _, f := range frames {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(f), f)
	}
	return b.String()
}

func parked(id int, connID string) string {
	return fmt.Sprintf("id: %d\nevent: parked\ndata: {\"connId\":%q,\"startedAt\":\"2026-12-02T07:34:45.766Z\"}\n\n", id, connID)
}

func finished(id int, connID string) string {
	return fmt.Sprintf("id: %d\nevent: finished\ndata: {\"connId\":%q,\"endedAt\":\"2026-12-02T07:34:46.000Z\"}\n\n", id, connID)
}

// subscriberSaw runs a stream's bytes through a subscriber of one wave of
// three requests, prefix "r-p", as if they had all arrived at stamp.
func subscriberSaw(t *testing.T, text string, stamp int64) *subscriber {
	t.Helper()
	s := newSubscriber([]waveKey{{"r-p", 3}})
	s.c = &sseConn{p: newSSEParser(s.frame)}
	for len(text) > 0 { // in pieces of 5 bytes: frames and chunks cut anywhere
		k := min(5, len(text))
		s.c.stamp = stamp
		if err := s.c.take([]byte(text[:k])); err != nil {
			t.Fatalf("take: %v", err)
		}
		text = text[k:]
	}
	return s
}

func TestSubscriberChecks(t *testing.T) {
	snapshot := "retry: 1000\n\nevent: snapshot\ndata: []\n\n"
	stamp := time.Date(2026, 12, 2, 7, 34, 46, 10e6, time.UTC).UnixNano()
	good := []string{snapshot, parked(1, "r-p0"), parked(2, "r-p1"), finished(3, "r-p0"), parked(4, "other"), finished(5, "r-p1"), finished(6, "r-p2")}
	s := subscriberSaw(t, streamText(good...), stamp)
	if len(s.errs) != 0 || !s.snapshot || s.runSeen != [2]int{2, 3} || s.foreign != 1 || s.got.Load() != 5 {
		t.Fatalf("a good stream: errors %v, snapshot %v, seen %v, foreign %d, got %d", s.errs, s.snapshot, s.runSeen, s.foreign, s.got.Load())
	}
	if s.waves[0].seen[0] != seenParked|seenFinished || s.waves[0].seen[2] != seenFinished {
		t.Fatalf("seen %v", s.waves[0].seen)
	}
	// Lateness: arrival − startedAt for parked (244 ms), − endedAt for finished (10 ms).
	if !reflect.DeepEqual(s.late[evParked], []float64{244, 244}) || !reflect.DeepEqual(s.late[evFinished], []float64{10, 10, 10}) {
		t.Fatalf("lateness %v", s.late)
	}

	broken := []struct {
		name   string
		frames []string
		kind   string
	}{
		{"ids not increasing", []string{snapshot, parked(5, "r-p0"), finished(5, "r-p0"), parked(10, "r-p1"), finished(9, "r-p1")}, "id_not_increasing"},
		{"an id missing", []string{snapshot, "event: parked\ndata: {\"connId\":\"r-p0\",\"startedAt\":\"2026-12-02T07:34:45.766Z\"}\n\n"}, "missing_id"},
		{"a bad id", []string{snapshot, parked(1, "r-p0"), strings.Replace(finished(2, "r-p0"), "id: 2", "id: 2a", 1)}, "bad_id"},
		{"an event twice", []string{snapshot, parked(1, "r-p0"), parked(2, "r-p0")}, "duplicate_parked"},
		{"no snapshot first", []string{parked(1, "r-p0"), snapshot}, "snapshot_missing"},
		{"a snapshot with an id", []string{"id: 1\nevent: snapshot\ndata: []\n\n"}, "snapshot_with_id"},
		{"a snapshot not an array", []string{"event: snapshot\ndata: {}\n\n"}, "snapshot_bad_data"},
		{"an unknown event", []string{snapshot, "id: 1\nevent: ended\ndata: {}\n\n"}, "unknown_event"},
		{"data without a time", []string{snapshot, "id: 1\nevent: finished\ndata: {\"connId\":\"r-p0\"}\n\n"}, "bad_data"},
	}
	for _, b := range broken {
		s := subscriberSaw(t, streamText(b.frames...), stamp)
		if s.errs[b.kind] == 0 {
			t.Errorf("%s: errors %v, want %s", b.name, s.errs, b.kind)
		}
	}

	c := &sseConn{p: newSSEParser(func(*sseFrame) {})}
	if err := c.take([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")); !errors.Is(err, errNotEventStream) {
		t.Errorf("text/plain: %v", err)
	}
	c = &sseConn{p: newSSEParser(func(*sseFrame) {})}
	if err := c.take([]byte("HTTP/1.1 404 Not Found\r\nContent-Type: text/event-stream\r\n\r\n")); streamErrKind(t.Context(), err) != "status_404" {
		t.Errorf("404: %v", err)
	}
}

// TestSessionCountsLoss checks the tally of a phase: what each subscriber
// must have seen, against what it saw.
func TestSessionCountsLoss(t *testing.T) {
	snapshot := "event: snapshot\ndata: []\n\n"
	stamp := time.Date(2026, 12, 2, 7, 34, 46, 0, time.UTC).UnixNano()
	all := subscriberSaw(t, streamText(snapshot, parked(1, "r-p0"), parked(2, "r-p1"), finished(3, "r-p0"), finished(4, "r-p1"), finished(5, "r-p2")), stamp)
	lossy := subscriberSaw(t, streamText(snapshot, parked(1, "r-p0"), finished(3, "r-p0"), parked(4, "r-p2"), finished(5, "r-p2")), stamp)
	ss := &streamSession{fig: &streamFigures{Subscribers: 2, Opened: 2, Errors: map[string]int{}, Examples: []string{}}, subs: []*subscriber{all, lossy}}
	// r-p0 and r-p1 were parked; r-p2 had a zero timeout: only finished.
	ss.tally([][]int8{{seenParked | seenFinished, seenParked | seenFinished, seenFinished}})
	ss.judge()
	f := ss.fig
	if f.LostParked != 1 || f.LostFinished != 1 || f.Unexpected != 1 || *f.NoLoss || f.Verdict != soakFail || f.Errors["lost"] != 1 {
		t.Fatalf("lost %d/%d, unexpected %d, no loss %v, verdict %s, errors %v", f.LostParked, f.LostFinished, f.Unexpected, *f.NoLoss, f.Verdict, f.Errors)
	}
	if *f.ParkedMin != 2 || *f.ParkedMax != 2 || *f.FinishedMin != 2 || *f.FinishedMax != 3 || f.Delivered != 9 || f.LateSamples != 9 {
		t.Fatalf("per subscriber: parked %d…%d, finished %d…%d, delivered %d, samples %d", *f.ParkedMin, *f.ParkedMax, *f.FinishedMin, *f.FinishedMax, f.Delivered, f.LateSamples)
	}

	ss = &streamSession{fig: &streamFigures{Subscribers: 1, Opened: 1, Errors: map[string]int{}, Examples: []string{}}, subs: []*subscriber{all}}
	ss.tally([][]int8{{seenParked | seenFinished, seenParked | seenFinished, expectUnknown}})
	ss.judge()
	if f := ss.fig; !*f.NoLoss || f.Verdict != soakPass {
		t.Fatalf("a whole stream: no loss %v, verdict %s, errors %v", *f.NoLoss, f.Verdict, f.Errors)
	}
}

// streamConfig is a park phase with event-stream subscribers against url.
func streamConfig(url string, n, subscribers int, stuck bool) config {
	cfg := testConfig(url)
	cfg.phases = phaseSet{park: true, status: true, kill: true}
	cfg.n, cfg.subscribers, cfg.stuckSubscriber = n, subscribers, stuck
	cfg.pid = os.Getpid() // the fake runs in this process
	// A drain waits for the server's retransmissions, which back off for
	// seconds once the stuck stream's small buffer dropped their segments.
	cfg.streamGrace, cfg.stuckWait, cfg.gaugeWait, cfg.drainSilence = 5*time.Second, 4*fakeStall, 5*time.Second, 20*time.Second
	return cfg
}

func onlyStreams(t *testing.T, res *result) *streamFigures {
	t.Helper()
	if len(res.Streams) != 1 || res.Streams[0].Phase != "park" {
		t.Fatalf("streams: %+v", res.Streams)
	}
	return res.Streams[0]
}

func TestStreamsAgainstFake(t *testing.T) {
	srv := startFake(t)
	// 300 parked requests make 600 events, more than the stuck stream's
	// socket buffers hold: the fake's writes to it stall, and it drops it.
	cfg := streamConfig(srv.URL, 300, 3, true)
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkParkCounts(t, res, cfg.n)
	s := onlyStreams(t, res)
	if s.Verdict != soakPass || res.failed() || len(s.Errors) != 0 {
		t.Fatalf("verdict %s, errors %v, examples %q, stuck %+v", s.Verdict, s.Errors, s.Examples, s.Stuck)
	}
	if s.Opened != 3 || s.ExpectedParked != cfg.n || s.ExpectedFinished != cfg.n || !*s.NoLoss ||
		*s.ParkedMin != cfg.n || *s.FinishedMax != cfg.n || s.Delivered != 3*2*cfg.n || s.LateSamples != s.Delivered {
		t.Fatalf("figures: %+v", s)
	}
	if s.CPUS == nil || s.WallS == nil || s.LateP99Ms == nil || s.RetryMs == nil || *s.RetryMs != 1000 || s.KeepAlives != 3 {
		t.Fatalf("cpu %v, wall %v, p99 %v, retry %v, comments %d", s.CPUS, s.WallS, s.LateP99Ms, s.RetryMs, s.KeepAlives)
	}
	st := s.Stuck
	if st == nil || !st.Opened || !st.Dropped || st.End != "eof" || st.DropAfterS == nil || st.Received >= 2*cfg.n || st.Verdict != soakPass ||
		st.ServerState == "ESTABLISHED" {
		t.Fatalf("stuck: %+v", st)
	}
	if *s.DroppedAfter-*s.DroppedBefore != 1 || *s.SubscribersAfter != *s.SubscribersBefore || s.GaugeBackS == nil {
		t.Fatalf("server: dropped %v → %v, subscribers %v → %v", *s.DroppedBefore, *s.DroppedAfter, *s.SubscribersBefore, *s.SubscribersAfter)
	}
	var out strings.Builder
	if err := writeReport(&out, res); err != nil || !strings.Contains(out.String(), "events: park") {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
}

// TestStreamsWithoutSubscribers: -pid alone reads the server's CPU time
// over the phase, for the run a run with subscribers is compared with.
func TestStreamsWithoutSubscribers(t *testing.T) {
	srv := startFake(t)
	res, err := runPhases(t.Context(), streamConfig(srv.URL, 20, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	s := onlyStreams(t, res)
	if s.CPUS == nil || s.Verdict != "" || s.Stuck != nil || res.failed() {
		t.Fatalf("figures: %+v", s)
	}
}

func TestStreamsCatchBrokenServers(t *testing.T) {
	tests := []struct {
		broken string
		n      int
		stuck  bool
		check  func(s *streamFigures) bool
	}{
		{"ids_not_increasing", 30, false, func(s *streamFigures) bool { return s.Errors["id_not_increasing"] > 0 }},
		{"lost_event", 30, false, func(s *streamFigures) bool {
			return s.LostFinished == 2 && s.LostParked == 0 && !*s.NoLoss && s.Errors["lost"] == 1
		}},
		{"parked_for_zero", 30, false, func(s *streamFigures) bool { return s.Unexpected > 0 }},
		{"not_event_stream", 10, false, func(s *streamFigures) bool { return s.Opened == 0 && s.Errors["not_event_stream"] == 2 }},
		{"keeps_stuck", 200, true, func(s *streamFigures) bool {
			return s.Stuck != nil && !s.Stuck.Dropped && s.Stuck.End == "still_open" && s.Errors["dropped_count"] == 1 &&
				(s.Stuck.ServerState == "" || s.Stuck.ServerState == "ESTABLISHED")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			srv := startBrokenFake(t, tt.broken)
			cfg := streamConfig(srv.URL, tt.n, 2, tt.stuck)
			cfg.stuckWait, cfg.drainSilence = fakeStall/4, time.Second // a stream that stays open ends the drain in silence
			if tt.broken == "parked_for_zero" {
				cfg.timeout, cfg.spread = 0, 0 // zero timeouts: no parked event is due
				cfg.phases.kill = false
			}
			if tt.broken == "lost_event" {
				cfg.streamGrace = time.Second // the lost event never comes
			}
			res, err := runPhases(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := onlyStreams(t, res)
			if s.Verdict != soakFail || !res.failed() || !tt.check(s) {
				t.Fatalf("verdict %s, errors %v, examples %q, figures %+v, stuck %+v", s.Verdict, s.Errors, s.Examples, s, s.Stuck)
			}
		})
	}
}

// TestStreamsInFaultPhase: a section-6 phase with several waves checks
// each wave's events.
func TestStreamsInFaultPhase(t *testing.T) {
	srv := startFake(t)
	cfg := shapeConfig(srv.URL, phaseSet{fault: true})
	cfg.n, cfg.subscribers = 20, 2
	res, err := runPhases(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Streams) != 1 || res.FaultVerdict != soakPass {
		t.Fatalf("streams %d, fault verdict %s", len(res.Streams), res.FaultVerdict)
	}
	s := res.Streams[0]
	waves := len(cfg.faultThens)
	if s.Phase != "fault" || s.Verdict != soakPass || s.ExpectedParked != waves*cfg.n || *s.FinishedMin != waves*cfg.n {
		t.Fatalf("figures %+v, errors %v", s, s.Errors)
	}
}

func TestStreamFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"-subscribers", "20", "-stuck-subscriber", "-stream-grace", "3", "-stuck-wait", "1500ms", "-gauge-wait", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.subscribers != 20 || !cfg.stuckSubscriber || cfg.streamGrace != 3*time.Second || cfg.stuckWait != 1500*time.Millisecond || cfg.gaugeWait != 2*time.Second {
		t.Fatalf("%+v", cfg)
	}
	if d := defaultConfig(); d.subscribers != 0 || d.stuckSubscriber {
		t.Fatalf("defaults: %d subscribers, stuck %v", d.subscribers, d.stuckSubscriber)
	}
	for _, args := range [][]string{{"-subscribers", "-1"}, {"-subscribers", "201"}, {"-stuck-wait", "-1s"}, {"-stream-grace", "x"}} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestFindSocket(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:46A2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3994851 1
   1: 0100007F:46A2 0100007F:9C40 04 0039B2CC:00000000 03:00000094 00000000     0        0 0 1
   2: 0100007F:9C40 0100007F:46A2 01 00000000:00000000 00:00000000 00000000     0        0 3994852 1
`
	for _, tt := range []struct {
		local, remote, state string
		tx                   int64
	}{
		{"0100007F:46A2", "0100007F:9C40", "FIN_WAIT1", 0x39B2CC},
		{"0100007f:9c40", "0100007F:46A2", "ESTABLISHED", 0},
		{"0100007F:46A2", "0100007F:9C41", "gone", 0},
	} {
		got, err := findSocket(strings.NewReader(table), tt.local, tt.remote)
		if err != nil || got.state != tt.state || got.txQueue != tt.tx {
			t.Errorf("%s → %s: %+v, %v; want %s, %d", tt.local, tt.remote, got, err, tt.state, tt.tx)
		}
	}
}

// TestPeerSocket looks up real loopback connections: open, then closed by
// the server's side.
func TestPeerSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := peerSocket(client)
	if errors.Is(err, errNoSocketTable) {
		t.Skip("no kernel socket table here:", err)
	}
	if err != nil || sock.state != "ESTABLISHED" {
		t.Fatalf("open: %+v, %v", sock, err)
	}
	server.Close()
	if _, err := client.Read(make([]byte, 1)); err != io.EOF { // the FIN has come: the server's side is closed
		t.Fatalf("read after the server closed: %v", err)
	}
	if sock, err = peerSocket(client); err != nil || sock.state == "ESTABLISHED" {
		t.Fatalf("closed: %+v, %v", sock, err)
	}
}
