#!/usr/bin/env bash
# bench/run.sh: parkd against its net/http twin, side by side in one run, on
# loopback only. Each measurement starts a fresh server, so RSS growth is
# the server's own. Prints each run's table, then the ratios parkd / twin.
#
#   bench/run.sh                    # the full comparison (about 5 minutes)
#   N=2000 bench/run.sh             # a smaller parked count
#   PARKD_BIN=/tmp/old-parkd bench/run.sh   # measure another parkd build
#
# Needs Go and Node (for the summary). The per-process open-file limit must
# allow N connections plus a reserve: parkd's default capacity is the limit
# minus 5%, so with 20,000 files N=19,000 is the most it holds.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-19000}          # parked requests in the large runs
SMALL=${SMALL:-1000}   # parked requests in the small runs
SPREAD=${SPREAD:-10s}  # deadlines spread over this long
TP=${TP:-10s}          # throughput phase length
out=${OUT:-$(mktemp -d)}
# With two cores or more, the server runs on core 0 and the load tool on
# core 1, so neither steals the other's CPU and a figure is the server's
# own; PIN=0 lets both float.
server_cpu=() client_cpu=()
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi
mkdir -p "$out"
echo "results in $out; open-file limit $(ulimit -n); $(nproc) cores; pinned: ${server_cpu[*]:-no}"

bin="$out/bin"
mkdir -p "$bin"
if [ -n "${PARKD_BIN:-}" ]; then cp "$PARKD_BIN" "$bin/parkd"; else go build -o "$bin/parkd" .; fi
go build -o "$bin/twin" ./bench/twin
go build -o "$bin/parkload" ./bench/parkload

# free_port picks an unused loopback port below the ephemeral range (so no
# client socket holds it), checked with bash's /dev/tcp: refused = free.
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# start_server KIND PORT: runs parkd or the twin quietly (no per-request
# logs: the twin writes none either) and waits until it answers.
start_server() {
	local kind=$1 port=$2
	case $kind in
	parkd) "${server_cpu[@]}" "$bin/parkd" -addr "127.0.0.1:$port" -log-level warn -grace 1s 2>>"$out/$kind.log" & ;;
	twin) "${server_cpu[@]}" "$bin/twin" -addr "127.0.0.1:$port" 2>>"$out/$kind.log" & ;;
	esac
	pid=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return; fi
		sleep 0.05
	done
	echo "$kind did not start" >&2
	exit 1
}

stop_server() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap stop_server EXIT

# measure NAME KIND [parkload flags...]: one fresh server, one parkload run;
# the JSON line goes to $out/NAME-KIND.json.
measure() {
	local name=$1 kind=$2
	shift 2
	local port
	port=$(free_port)
	start_server "$kind" "$port"
	echo
	echo "=== $name on $kind (pid $pid)"
	"${client_cpu[@]}" "$bin/parkload" -url "http://127.0.0.1:$port" -pid "$pid" -max-duration 3m "$@" | tee "$out/$name-$kind.txt"
	tail -1 "$out/$name-$kind.txt" >"$out/$name-$kind.json"
	# parkd's own view of lateness: when each answer left, not when the
	# load tool (sharing the machine) got to read it.
	curl -s "http://127.0.0.1:$port/metrics" >"$out/$name-$kind.metrics" 2>/dev/null || true
	stop_server
}

for kind in parkd twin; do
	measure small "$kind" -n "$SMALL" -spread "$SPREAD" -phases park,status,kill -metrics -settle 12s
	measure large "$kind" -n "$N" -spread "$SPREAD" -phases park,status,kill -metrics -settle 12s
	measure same-deadline "$kind" -n "$N" -timeout 8s -spread 0 -same-deadline -phases park
	measure throughput "$kind" -phases throughput -throughput-duration "$TP" -throughput-conns 32
done

echo
echo "=== parkd / twin (N=$N unless noted; lower is better but for req/s)"
node - "$out" <<'EOF'
const fs = require('fs'), path = require('path');
const dir = process.argv[2];
const get = (name, kind) => JSON.parse(fs.readFileSync(path.join(dir, `${name}-${kind}.json`), 'utf8'));
const rows = [
  ['parked ok + killed, small', 'small', r => r.park_ok + r.park_killed, 'count'],
  ['errors, small', 'small', r => r.park_error_total, 'count'],
  ['RSS per parked request, small', 'small', r => r.rss_per_request_bytes, 'B'],
  ['parked ok + killed', 'large', r => r.park_ok + r.park_killed, 'count'],
  ['errors', 'large', r => r.park_error_total, 'count'],
  ['RSS per parked request', 'large', r => r.rss_per_request_bytes, 'B'],
  ['lateness p50', 'large', r => r.lateness_p50_ms, 'ms'],
  ['lateness p99', 'large', r => r.lateness_p99_ms, 'ms'],
  ['lateness max', 'large', r => r.lateness_max_ms, 'ms'],
  ['serverStatus p50', 'large', r => r.status_p50_ms, 'ms'],
  ['serverStatus entries', 'large', r => r.status_entries, 'count'],
  ['kill→500 p50', 'large', r => r.kill_p50_ms, 'ms'],
  ['kill→500 p99', 'large', r => r.kill_p99_ms, 'ms'],
  ['kill→500 max', 'large', r => r.kill_max_ms, 'ms'],
  ['goroutines before / peak / after', 'large', r => r.metrics_available ? `${r.goroutines_before} / ${r.goroutines_peak} / ${r.goroutines_after}` : null, ''],
  ['heap in use before / after', 'large', r => r.metrics_available ? `${(r.heap_inuse_before_bytes/1048576).toFixed(1)} / ${(r.heap_inuse_after_bytes/1048576).toFixed(1)} MiB` : null, ''],
  ['same deadline: answered ok', 'same-deadline', r => r.park_ok, 'count'],
  ['same deadline: lateness p99', 'same-deadline', r => r.lateness_p99_ms, 'ms'],
  ['same deadline: lateness max', 'same-deadline', r => r.lateness_max_ms, 'ms'],
  ['timeout=0 keep-alive req/s', 'throughput', r => r.tp_rps, 'req/s'],
  ['timeout=0 p99', 'throughput', r => r.tp_p99_ms, 'ms'],
];
// serverLateness reads parkd's parkd_answer_lateness_seconds histogram:
// the share of answers that left within 5 ms and within 50 ms of their
// deadline, and the bucket holding the 99th percentile.
const serverLateness = name => {
  let text = '';
  try { text = fs.readFileSync(path.join(dir, `${name}-parkd.metrics`), 'utf8'); } catch { return null; }
  const b = {};
  for (const m of text.matchAll(/^parkd_answer_lateness_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) b[m[1]] = Number(m[2]);
  const total = b['+Inf'];
  if (!total) return null;
  const les = Object.keys(b).filter(k => k !== '+Inf').map(Number).sort((x, y) => x - y);
  const p99 = les.find(le => b[String(le)] >= 0.99 * total);
  return { within5: b['0.005'] / total, within50: b['0.05'] / total, p99: p99 === undefined ? '> 1 s' : `≤ ${p99 * 1000} ms` };
};
const fmt = v => v === null || v === undefined ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v);
const lines = [['figure', 'unit', 'parkd', 'twin', 'parkd/twin']];
const summary = {};
for (const [label, name, f, unit] of rows) {
  const p = f(get(name, 'parkd')), t = f(get(name, 'twin'));
  const ratio = typeof p === 'number' && typeof t === 'number' && t !== 0 ? (p / t).toFixed(3) : '–';
  lines.push([label, unit, fmt(p), fmt(t), ratio]);
  summary[label] = { parkd: p, twin: t };
}
for (const name of ['large', 'same-deadline']) {
  const l = serverLateness(name);
  if (l) lines.push([`${name}: parkd's own lateness p99 / ≤5 ms / ≤50 ms`, '', `${l.p99} / ${(100 * l.within5).toFixed(2)}% / ${(100 * l.within50).toFixed(2)}%`, '–', '–']);
}
const w = lines[0].map((_, i) => Math.max(...lines.map(l => l[i].length)));
for (const l of lines) console.log('| ' + l.map((c, i) => c.padEnd(w[i])).join(' | ') + ' |');
fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify(summary) + '\n');
EOF
echo "results in $out"
