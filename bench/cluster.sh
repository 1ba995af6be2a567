#!/usr/bin/env bash
# Cluster mode's figures (docs/cluster.md), each against the same build
# standalone in the same run, on loopback:
#
#   bench/cluster.sh                 # about 5 minutes
#   INSTANCES=6 PER=19000 OUT=/tmp/c bench/cluster.sh
#
# 1. standalone: one parkd, PER parked (park, status, kill phases);
# 2. cluster: INSTANCES parkd sharing one redis-server, INSTANCES × PER
#    parked at once, spread round robin over the instances as a load
#    balancer would (parkload -instances, in child processes); the first
#    instance lists them all and kills them, most of them across instances;
#    Redis's used_memory and the parked count in it are sampled every 0.5 s;
#    parks are opened at PARK_RATE a second: on a 2-core machine that the
#    load tool, the instances and Redis share, opening 114,000 as fast as
#    the load tool can starves Redis past parkd's 1 s bound, and the
#    instances turn degraded and refuse parks (bench/README.md);
# 3. timeout=0 throughput on 2 instances, cluster and standalone, one load
#    process per instance, with the CPU time of each process over the run.
#
# Needs redis-server and redis-cli (Debian's redis-server package). The
# processes it starts are stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-6}   # cluster instances in the large run
PER=${PER:-19000}           # parked requests per instance (and standalone)
TIMEOUT=${TIMEOUT:-80}      # seconds: long enough to park, list and kill them all
PARK_RATE=${PARK_RATE:-4000} # parks a second while they are opened (0: as fast as the load tool goes)
SPREAD=${SPREAD:-20s}       # deadlines spread over this long after TIMEOUT
KILLS=${KILLS:-300}
TP=${TP:-10s}               # throughput phase length
TP_CONNS=${TP_CONNS:-64}    # keep-alive connections per instance
CHURN=${CHURN:-0}           # 1: the instances that do not list park and answer ~90 requests/s each
                            #    throughout, so that every listing finds every hash moved
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
for cmd in redis-server redis-cli node curl; do
	command -v "$cmd" >/dev/null || { echo "bench/cluster.sh needs $cmd"; exit 1; }
done
echo "results in $out; open-file limit $(ulimit -n); $(nproc) cores"

bin="$out/bin"
mkdir -p "$bin"
if [ -n "${PARKD_BIN:-}" ]; then cp "$PARKD_BIN" "$bin/parkd"; else go build -o "$bin/parkd" .; fi
go build -o "$bin/parkload" ./bench/parkload

. bench/lib.sh # free_port, wait_port

pids=()
stop_all() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
trap stop_all EXIT

redis_port="" redis_pid=""
start_redis() {
	redis_port=$(free_port)
	redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize no \
		--loglevel warning --logfile "$out/redis.log" &
	redis_pid=$!
	pids+=("$redis_pid")
	wait_port "$redis_port" || exit 1
}
rcli() { redis-cli -p "$redis_port" "$@"; }
used_memory() { rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
# cpu_ticks PID: user + system time in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_parkd NAME [flags...]: sets port and pid.
port="" pid=""
start_parkd() {
	local name=$1
	shift
	port=$(free_port)
	"$bin/parkd" -addr "127.0.0.1:$port" -instance "$name" -log-level warn -grace 1s "$@" 2>>"$out/$name.log" &
	pid=$!
	pids+=("$pid")
	wait_port "$port" || exit 1
}

# lateness NAME...: parkd_answer_lateness_seconds summed over the
# instances' scrapes NAME.metrics, as JSON.
lateness() {
	node - "$out" "$@" <<'EOF'
const path = require('path');
const { answerLateness } = require(path.resolve('bench/lateness.js'));
const [dir, ...names] = process.argv.slice(2);
console.log(JSON.stringify(answerLateness(names.map(n => path.join(dir, `${n}.metrics`))) || {}));
EOF
}

park_flags=(-timeout "$TIMEOUT" -spread "$SPREAD" -park-rate "$PARK_RATE" -phases park,status,kill -kills "$KILLS" -status-samples 10 -settle 0 -park-settle 60s -max-duration 10m)

echo
echo "=== 1. standalone: $PER parked"
start_parkd solo
"$bin/parkload" -url "http://127.0.0.1:$port" -pid "$pid" -n "$PER" "${park_flags[@]}" | tee "$out/standalone.txt"
tail -1 "$out/standalone.txt" >"$out/standalone.json"
curl -s "http://127.0.0.1:$port/metrics" >"$out/solo.metrics"
lateness solo >"$out/standalone-lateness.json"
stop_all

echo
echo "=== 2. cluster: $INSTANCES instances × $PER parked through one Redis"
start_redis
mem_before=$(used_memory)
urls=() ipids=() names=()
for i in $(seq 1 "$INSTANCES"); do
	start_parkd "c$i" -redis "redis://127.0.0.1:$redis_port"
	urls+=("http://127.0.0.1:$port") ipids+=("$pid") names+=("c$i")
done
sleep 1 # every instance joined and heartbeating
mem_idle=$(used_memory)
# Every 0.5 s: time, Redis used_memory, requests in the parked hashes,
# events in the stream, the stream's own memory, then each instance's RSS.
rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
(
	while :; do
		line="$(date +%s.%N) $(used_memory) $(rcli --raw eval "local n=0 for _,k in ipairs(redis.call('keys','parkd:parked:*')) do n=n+redis.call('hlen',k) end return n" 0) $(rcli xlen parkd:events) $(rcli memory usage parkd:events samples 0)"
		for p in "${ipids[@]}"; do line+=" $(rss_kb "$p")"; done
		echo "$line"
		sleep 0.5
	done
) >"$out/redis-memory.txt" 2>/dev/null &
sampler=$!
pids+=("$sampler")
if [ "$CHURN" = 1 ]; then
	# timeout=0 parks: each one claims and releases its connId, which
	# moves its instance's hash between any two listings.
	for i in "${!urls[@]}"; do
		[ "$i" = 0 ] && continue
		u=${urls[$i]}
		(
			k=0
			while :; do
				args=()
				for _ in 1 2 3 4 5; do args+=("$u/api/request?connId=churn-$i-$((k++))&timeout=0"); done
				curl -s "${args[@]}" >/dev/null || true
				sleep 0.05
			done
		) 2>/dev/null &
		pids+=("$!")
	done
fi
also=$(IFS=,; echo "${ipids[*]:1}")
spread_urls=$(IFS=,; echo "${urls[*]}")
"$bin/parkload" -url "${urls[0]}" -instances "$spread_urls" -pid "${ipids[0]}" -also-pid "$also" \
	-n $((INSTANCES * PER)) "${park_flags[@]}" | tee "$out/cluster.txt"
tail -1 "$out/cluster.txt" >"$out/cluster.json"
kill "$sampler" 2>/dev/null || true
for i in "${!urls[@]}"; do curl -s "${urls[$i]}/metrics" >"$out/${names[$i]}.metrics"; done
lateness "${names[@]}" >"$out/cluster-lateness.json"
rcli info memory >"$out/redis-info-memory.txt"
stop_all

# throughput KIND [parkd flags...]: 2 instances, one load process each, at once.
throughput() {
	local kind=$1
	shift
	local tpids=() tports=() lp=()
	for i in 1 2; do
		start_parkd "tp-$kind-$i" "$@"
		tpids+=("$pid") tports+=("$port")
	done
	sleep 1
	local before=()
	for p in "${tpids[@]}" ${redis_pid:+"$redis_pid"}; do before+=("$(cpu_ticks "$p")"); done
	for i in 0 1; do
		"$bin/parkload" -url "http://127.0.0.1:${tports[$i]}" -phases throughput -throughput-duration "$TP" \
			-throughput-conns "$TP_CONNS" -settle 0 >"$out/tp-$kind-$i.txt" &
		lp+=($!)
	done
	for p in "${lp[@]}"; do wait "$p"; done
	local after=()
	for p in "${tpids[@]}" ${redis_pid:+"$redis_pid"}; do after+=("$(cpu_ticks "$p")"); done
	for i in 0 1; do tail -1 "$out/tp-$kind-$i.txt" >"$out/tp-$kind-$i.json"; done
	echo "${before[*]}" >"$out/tp-$kind-cpu-before.txt"
	echo "${after[*]}" >"$out/tp-$kind-cpu-after.txt"
	stop_all
}

echo
echo "=== 3. timeout=0 throughput, 2 instances: standalone, then cluster"
redis_pid=""
throughput standalone
start_redis
throughput cluster -redis "redis://127.0.0.1:$redis_port"

echo
echo "=== cluster mode / standalone"
node - "$out" "$INSTANCES" "$PER" "$mem_before" "$mem_idle" "$(getconf CLK_TCK)" <<'EOF'
const fs = require('fs'), path = require('path');
const [dir, inst, per, memBefore, memIdle, tck] = process.argv.slice(2);
const j = f => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const s = j('standalone.json'), c = j('cluster.json');
const sl = j('standalone-lateness.json'), cl = j('cluster-lateness.json');
// Redis: used_memory when the most requests were parked (the first such
// sample), and the events then in the stream (capped at 2 × -history).
// Each instance's RSS then, against the first sample (nothing parked):
// the first instance also lists all of them (serverStatus) and sends the kills.
let peak = 0, peakParked = -1, peakEvents = 0, streamMem = 0, rssAt = [], rss0 = null;
for (const line of fs.readFileSync(path.join(dir, 'redis-memory.txt'), 'utf8').split('\n')) {
  const [, mem, parked, events, smem, ...rss] = line.split(' ').map(Number);
  if (!(mem > 0)) continue;
  if (rss0 === null) rss0 = rss;
  if (parked > peakParked) [peak, peakParked, peakEvents, streamMem, rssAt] = [mem, parked, events, smem, rss];
}
const perInst = Number(per);
const growth = rssAt.map((v, i) => (v - rss0[i]) * 1024 / perInst);
const holders = growth.slice(1);
const tp = kind => {
  const rps = [0, 1].map(i => j(`tp-${kind}-${i}.json`).tp_rps || 0);
  const b = fs.readFileSync(path.join(dir, `tp-${kind}-cpu-before.txt`), 'utf8').trim().split(' ').map(Number);
  const a = fs.readFileSync(path.join(dir, `tp-${kind}-cpu-after.txt`), 'utf8').trim().split(' ').map(Number);
  const secs = a.map((v, i) => (v - b[i]) / Number(tck));
  const reqs = [0, 1].map(i => j(`tp-${kind}-${i}.json`).tp_ok || 0).reduce((x, y) => x + y, 0);
  return { rps: rps[0] + rps[1], parkdCPU: secs[0] + secs[1], redisCPU: secs[2], reqs };
};
const ts = tp('standalone'), tc = tp('cluster');
const f = v => v === null || v === undefined ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en') : v.toFixed(2)) : String(v);
const rows = [
  ['parked at once (ok + killed), errors', `${f(s.park_ok + s.park_killed)}, ${f(s.park_error_total)}`, `${f(c.park_ok + c.park_killed)}, ${f(c.park_error_total)}`, ''],
  ['listed by serverStatus when all were parked', f(s.park_listed), f(c.park_listed), ''],
  ['parkd RSS per parked request (all instances)', f(s.rss_per_request_bytes) + ' B', f(c.rss_per_request_bytes) + ' B', (c.rss_per_request_bytes / s.rss_per_request_bytes).toFixed(2)],
  ['Redis used_memory: idle → with the most parked (parked, events in the stream)', '', `${f(+memIdle)} → ${f(peak)} B (${f(peakParked)}, ${f(peakEvents)})`, ''],
  ['Redis memory per parked request (that − idle) / parked', '', f((peak - memIdle) / Math.max(1, peakParked)) + ' B', ''],
  ['  of which the event stream (MEMORY USAGE), per parked', '', `${f(streamMem)} B, ${f(streamMem / Math.max(1, peakParked))} B`, ''],
  ['  without the stream, per parked', '', f((peak - memIdle - streamMem) / Math.max(1, peakParked)) + ' B', ''],
  ['RSS growth per parked, each instance (sampled with the most parked)', '', growth.map(g => f(Math.round(g))).join(' / ') + ' B', ''],
  ['  the instances that only hold theirs (2nd…), mean', '', f(Math.round(holders.reduce((a, b) => a + b, 0) / Math.max(1, holders.length))) + ' B', ''],
  ['serverStatus p50 / p99 (entries)', `${f(s.status_p50_ms)} / ${f(s.status_p99_ms)} ms (${f(s.status_entries)})`, `${f(c.status_p50_ms)} / ${f(c.status_p99_ms)} ms (${f(c.status_entries)})`, (c.status_p50_ms / s.status_p50_ms).toFixed(1)],
  ['kill → 500 on the owner: n, p50 / p99', `${f(s.kills_ok)}, ${f(s.kill_p50_ms)} / ${f(s.kill_p99_ms)} ms`, `${f(c.kill_owner_n)}, ${f(c.kill_owner_p50_ms)} / ${f(c.kill_owner_p99_ms)} ms`, ''],
  ['kill → 500 from another instance: n, p50 / p99 / max', '', `${f(c.kill_other_n)}, ${f(c.kill_other_p50_ms)} / ${f(c.kill_other_p99_ms)} / ${f(c.kill_other_max_ms)} ms`, ''],
  ["answers after the deadline, servers' histogram: p99 bucket, ≤ 5 ms, ≤ 50 ms", `≤ ${f(sl.p99Ms)} ms, ${(100 * sl.within5).toFixed(2)} %, ${(100 * sl.within50).toFixed(2)} %`, `≤ ${f(cl.p99Ms)} ms, ${(100 * cl.within5).toFixed(2)} %, ${(100 * cl.within50).toFixed(2)} %`, ''],
  ['lateness p99 as the load tool saw it', f(s.lateness_p99_ms) + ' ms', f(c.lateness_p99_ms) + ' ms', ''],
  ['timeout=0 parks/s, 2 instances', f(Math.round(ts.rps)), f(Math.round(tc.rps)), (tc.rps / ts.rps).toFixed(2)],
  ['CPU per park: parkd / Redis', `${f(ts.parkdCPU / ts.reqs * 1e6)} µs / –`, `${f(tc.parkdCPU / tc.reqs * 1e6)} µs / ${f(tc.redisCPU / tc.reqs * 1e6)} µs`, ''],
  ['CPU used over the throughput run: parkd (2) / Redis', `${f(ts.parkdCPU)} s / –`, `${f(tc.parkdCPU)} s / ${f(tc.redisCPU)} s`, ''],
];
const lines = [['figure', 'standalone', `cluster (${inst} × ${per})`, 'cluster / standalone'], ...rows];
const w = lines[0].map((_, i) => Math.max(...lines.map(l => l[i].length)));
for (const l of lines) console.log('| ' + l.map((x, i) => x.padEnd(w[i])).join(' | ') + ' |');
EOF
echo "results in $out"
