package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkd/parkd/events"
	"github.com/parkd/parkd/history"
	"github.com/redis/rueidis"
)

// BenchmarkOthers reads what 5 other instances hold, 19,000 requests
// each, from a real redis-server: the cost a cluster-wide serverStatus
// pays for the requests of other instances (bench/README.md).
//
//	go test -run '^$' -bench Others -benchmem ./cluster/
func BenchmarkOthers(b *testing.B) {
	const instances, perInstance = 5, 19_000
	url := benchRedis(b)
	r, err := Connect(context.Background(), Config{URL: url, Prefix: "bench", Instance: "me", History: 100,
		Log: slog.New(slog.DiscardHandler), Ring: history.New(100), Hub: events.New(),
		Local: func() []Parked { return nil }, KillLocal: func(string, string) bool { return false }})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	start := time.Now()
	for i := range instances {
		name := "other" + strconv.Itoa(i)
		cmds := rueidis.Commands{
			r.client.B().Set().Key(r.keys.inst(name)).Value("live").PxMilliseconds(time.Hour.Milliseconds()).Build(),
			r.client.B().Set().Key(r.keys.version(name)).Value("1").Build(),
			r.client.B().Sadd().Key(r.keys.instances).Member(name).Build(),
		}
		for j := 0; j < perInstance; j += 1000 {
			h := r.client.B().Hset().Key(r.keys.parked(name)).FieldValue()
			for k := j; k < j+1000; k++ {
				p := Parked{ConnID: fmt.Sprintf("%s-%d", name, k), Token: uint64(k), Started: start,
					Timeout: time.Duration(k) * time.Millisecond, Then: "200", RemoteAddr: "127.0.0.1:40000"}
				h = h.FieldValue(p.ConnID, encodeParked(&p))
			}
			cmds = append(cmds, h.Build())
		}
		for _, res := range r.client.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("every hash moved", func(b *testing.B) {
		bump := make(rueidis.Commands, instances)
		r.client.Do(ctx, r.client.B().ConfigResetstat().Build())
		for b.Loop() {
			b.StopTimer()
			for i := range bump {
				bump[i] = r.client.B().Incr().Key(r.keys.version("other" + strconv.Itoa(i))).Build()
			}
			r.client.DoMulti(ctx, bump...)
			b.StartTimer()
			readOthers(b, r, instances*perInstance)
		}
		reportRedisTime(b, r, "hgetall")
	})
	b.Run("none moved", func(b *testing.B) {
		// The first read finds every hash moved since the last one (it reads
		// them without keeping them), the second finds them still and keeps
		// them.
		readOthers(b, r, instances*perInstance)
		readOthers(b, r, instances*perInstance)
		r.client.Do(ctx, r.client.B().ConfigResetstat().Build())
		for b.Loop() {
			readOthers(b, r, instances*perInstance)
		}
		reportRedisTime(b, r, "hgetall")
	})
}

func readOthers(b *testing.B, r *Redis, want int) {
	ps, err := r.Others(context.Background())
	n := 0
	for _, p := range ps {
		n += len(p)
	}
	if err != nil || n != want {
		b.Fatalf("Others: %d, %v", n, err)
	}
}

// reportRedisTime reports Redis's own time per operation (it serves the
// hashes one after another on its one thread), and the calls of cmd.
func reportRedisTime(b *testing.B, r *Redis, cmd string) {
	info, _ := r.client.Do(context.Background(), r.client.B().Info().Section("commandstats").Build()).ToString()
	var usec, calls float64
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
			k, v, _ := strings.Cut(field, "=")
			n, _ := strconv.ParseFloat(v, 64)
			switch {
			case k == "usec":
				usec += n
			case k == "calls" && name == cmd:
				calls += n
			}
		}
	}
	b.ReportMetric(usec/float64(b.N)/1000, "redis-ms/op")
	b.ReportMetric(calls/float64(b.N), cmd+"/op")
}

// benchRedis starts a redis-server without persistence on a free loopback
// port, stopped when the benchmark ends.
func benchRedis(b *testing.B) string {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal("redis-server is not installed: .ci/run installs Debian's redis-server")
		}
		b.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "redis://" + addr
		}
		if time.Now().After(end) {
			b.Fatal("redis-server did not start")
		}
	}
}
