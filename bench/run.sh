#!/usr/bin/env bash
# bench/run.sh: parkd against its net/http twin, side by side in one run, on
# loopback only. Each measurement starts a fresh server, so RSS growth is
# the server's own. Prints each run's table, then the ratios parkd / twin.
#
#   bench/run.sh                    # the full comparison (about 5 minutes)
#   N=2000 bench/run.sh             # a smaller parked count
#   PARKD_BIN=/tmp/old-parkd bench/run.sh   # measure another parkd build
#   SECTION6=1 bench/run.sh         # also section 6, how a parked request ends
#                                   # (about 6 minutes more); SECTION6=only: it alone
#   SSE=1 bench/run.sh              # also the event stream (parkd only, about
#                                   # 2 minutes more); SSE=only: it alone
#
# Section 6 (docs/API.md), each on a fresh server of each kind: N requests
# dripping body=10&drip=10 (the 15-byte answer a byte every 0.67 s) with
# deadlines over SPREAD (drip); the most dripping requests kept on schedule
# at 10 pieces a second each (drip-capacity, steps CAP_STEPS); N requests
# with then=reset and then=close due at one instant (fault; FAULT_SPREAD=1
# spreads them over SPREAD); KT_N parked requests killed with then=503,
# reset, close, garbage and truncate in turn (killthen).
#
# The event stream (docs/API.md section 7), parkd only (the twin has none),
# each on a fresh server: the large run's park phase (N parked, deadlines
# over SPREAD, kills, serverStatus samples) without subscribers, then with
# SSE_SUBS subscribers to /api/events reading every event, then with them
# and one more subscriber that reads its snapshot and then nothing (the
# server must drop it). Prints the parking figures side by side with the
# ratio with / without, the events' lateness, the server's CPU per
# delivered event (CPU over the phase with − without, over the events
# delivered), and what became of the stuck subscriber.
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
SECTION6=${SECTION6:-0}             # 1: also measure section 6; only: section 6 alone
CAP_STEPS=${CAP_STEPS:-500,1000,2000,5000,10000,19000}  # drip-capacity's steps
KT_N=${KT_N:-$N}                    # killthen's parked requests
SSE=${SSE:-0}                       # 1: also the event stream; only: it alone
SSE_SUBS=${SSE_SUBS:-20}            # event-stream subscribers
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

. bench/lib.sh # free_port, wait_port

# start_server KIND PORT: runs parkd or the twin quietly (no per-request
# logs: the twin writes none either) and waits until it answers.
start_server() {
	local kind=$1 port=$2
	case $kind in
	parkd) "${server_cpu[@]}" "$bin/parkd" -addr "127.0.0.1:$port" -log-level warn -grace 1s 2>>"$out/$kind.log" & ;;
	twin) "${server_cpu[@]}" "$bin/twin" -addr "127.0.0.1:$port" 2>>"$out/$kind.log" & ;;
	esac
	pid=$!
	wait_port "$port" || { echo "$kind did not start" >&2; exit 1; }
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
	local port rc=0
	port=$(free_port)
	start_server "$kind" "$port"
	echo
	echo "=== $name on $kind (pid $pid)"
	"${client_cpu[@]}" "$bin/parkload" -url "http://127.0.0.1:$port" -pid "$pid" -max-duration 3m "$@" | tee "$out/$name-$kind.txt" || rc=$?
	tail -1 "$out/$name-$kind.txt" >"$out/$name-$kind.json"
	# parkd's own view of lateness: when each answer left, not when the
	# load tool (sharing the machine) got to read it.
	curl -s "http://127.0.0.1:$port/metrics" >"$out/$name-$kind.metrics" 2>/dev/null || true
	stop_server
	return "$rc"
}

# measure6 NAME KIND [parkload flags...]: measure, but a section-6 phase
# that saw a wrong ending (parkload exits 1) is reported, not fatal, so the
# other measurements still run.
measure6() {
	measure "$@" || echo "!!! $1 on $2: parkload reported a failure (exit $?); see $out/$1-$2.txt"
}

# measure_checked NAME KIND [parkload flags...]: measure, but a phase whose
# checks failed (parkload exits 1) is reported, not fatal.
measure_checked() {
	measure "$@" || echo "!!! $1 on $2: parkload reported a failure (exit $?); see $out/$1-$2.txt"
}

if [ "$SECTION6" != only ] && [ "$SSE" != only ]; then
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
const { answerLateness } = require(path.resolve('bench/lateness.js'));
const serverLateness = name => {
  const l = answerLateness([path.join(dir, `${name}-parkd.metrics`)]);
  return l && { within5: l.within5, within50: l.within50, p99: l.p99Ms === null ? '> 1 s' : `≤ ${l.p99Ms} ms` };
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
fi

if [ "$SECTION6" != 0 ] && [ "$SSE" != only ]; then
fault_when=(-same-deadline)
if [ "${FAULT_SPREAD:-0}" = 1 ]; then fault_when=(-spread "$SPREAD"); fi
for kind in parkd twin; do
	measure6 drip "$kind" -n "$N" -spread "$SPREAD" -phases drip -body 10 -drip 10s -settle 0
	measure6 drip-capacity "$kind" -phases drip-capacity -capacity-steps "$CAP_STEPS" -capacity-all -settle 0 -max-duration 10m
	measure6 fault "$kind" -n "$N" "${fault_when[@]}" -phases fault -fault-then reset,close -settle 0
	measure6 killthen "$kind" -n "$KT_N" -phases killthen -kill-then 503,reset,close,garbage,truncate -settle 0
done

echo
echo "=== section 6: parkd / twin (N=$N; killthen $KT_N; lower is better)"
node - "$out" <<'EOF'
const fs = require('fs'), path = require('path');
const dir = process.argv[2];
const get = (name, kind) => {
  try { return JSON.parse(fs.readFileSync(path.join(dir, `${name}-${kind}.json`), 'utf8')); } catch { return null; }
};
const pct = v => v === null || v === undefined ? '–' : `${(100 * v).toFixed(2)}%`;
const le = v => v === null || v === undefined ? '> 1 s' : `≤ ${v} ms`;
const hist = h => h ? `${pct(h.within_5ms)} / ${pct(h.within_50ms)} / p99 ${le(h.p99_le_ms)} / max ${le(h.max_le_ms)}` : '–';
const act = (list, then) => (list || []).find(a => a.then === then) || null;
const rows = [
  ['drip: whole bodies / requests', 'drip', r => `${r.drip_ok} / ${r.drip_n}`, ''],
  ['drip: verdict', 'drip', r => r.drip_verdict, ''],
  ['drip: RSS per request, all parked', 'drip', r => r.drip_rss_per_request_bytes, 'B'],
  ['drip: RSS per request, peak while dripping', 'drip', r => r.drip_rss_peak_per_request_bytes, 'B'],
  ['drip: piece lateness p50 (client)', 'drip', r => r.drip_piece_p50_ms, 'ms'],
  ['drip: piece lateness p99 (client)', 'drip', r => r.drip_piece_p99_ms, 'ms'],
  ['drip: piece lateness max (client)', 'drip', r => r.drip_piece_max_ms, 'ms'],
  ['drip: headers lateness p99 (client)', 'drip', r => r.drip_head_p99_ms, 'ms'],
  ['drip: server pieces ≤5 ms / ≤50 ms / p99 / max', 'drip', r => hist(r.drip_server_pieces), ''],
  ['drip: server headers ≤5 ms / ≤50 ms / p99 / max', 'drip', r => hist(r.drip_server_heads), ''],
  ['drip-capacity: most kept on schedule', 'drip-capacity', r => r.cap_max_n, 'requests'],
  ['drip-capacity: first count missed', 'drip-capacity', r => r.cap_first_miss_n, 'requests'],
];
for (const then of ['reset', 'close']) {
  rows.push([`fault ${then}: expected / rst / fin_empty / other`, 'fault', r => { const a = act(r.fault_actions, then); return a && `${a.expected} / ${a.rst} / ${a.fin_empty} / ${a.other}`; }, '']);
  rows.push([`fault ${then}: seen after the deadline p99`, 'fault', r => { const a = act(r.fault_actions, then); return a && a.p99_ms; }, 'ms']);
}
rows.push(['fault: verdict', 'fault', r => r.fault_verdict, '']);
for (const then of ['503', 'reset', 'close', 'garbage', 'truncate']) {
  rows.push([`killthen ${then}: right / kills`, 'killthen', r => { const a = act(r.kt_actions, then); return a && `${a.right} / ${a.kills}`; }, '']);
  rows.push([`killthen ${then}: kill→effect p50 / p99 / max`, 'killthen', r => { const a = act(r.kt_actions, then); return a && `${a.p50_ms ?? '–'} / ${a.p99_ms ?? '–'} / ${a.max_ms ?? '–'}`; }, 'ms']);
}
rows.push(['killthen: verdict', 'killthen', r => r.kt_verdict, '']);
const fmt = v => v === null || v === undefined ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v);
const lines = [['figure', 'unit', 'parkd', 'twin', 'parkd/twin']];
const summary = {};
for (const [label, name, f, unit] of rows) {
  const pr = get(name, 'parkd'), tr = get(name, 'twin');
  const p = pr ? f(pr) : null, t = tr ? f(tr) : null;
  const ratio = typeof p === 'number' && typeof t === 'number' && t !== 0 ? (p / t).toFixed(3) : '–';
  lines.push([label, unit, fmt(p), fmt(t), ratio]);
  summary[label] = { parkd: p, twin: t };
}
const w = lines[0].map((_, i) => Math.max(...lines.map(l => l[i].length)));
for (const l of lines) console.log('| ' + l.map((c, i) => c.padEnd(w[i])).join(' | ') + ' |');
fs.writeFileSync(path.join(dir, 'summary6.json'), JSON.stringify(summary) + '\n');
EOF
fi
if [ "$SSE" != 0 ]; then
# The large run's park phase, as above, three times on fresh parkd servers.
sse_flags=(-n "$N" -spread "$SPREAD" -phases park,status,kill -metrics -settle 12s)
measure_checked sse-without parkd "${sse_flags[@]}"
measure_checked sse-with parkd "${sse_flags[@]}" -subscribers "$SSE_SUBS"
measure_checked sse-stuck parkd "${sse_flags[@]}" -subscribers "$SSE_SUBS" -stuck-subscriber

echo
echo "=== event stream: parkd with $SSE_SUBS subscribers / without (N=$N; lower is better)"
node - "$out" "$SSE_SUBS" <<'EOF'
const fs = require('fs'), path = require('path');
const [dir, subs] = process.argv.slice(2);
const get = name => {
  try { return JSON.parse(fs.readFileSync(path.join(dir, `${name}-parkd.json`), 'utf8')); } catch { return null; }
};
const park = r => (r && (r.streams || []).find(s => s.phase === 'park')) || null;
// serverLateness reads parkd_answer_lateness_seconds: the bound of the
// bucket holding the 99th percentile, in ms, and the share within 5 ms.
const { answerLateness } = require(path.resolve('bench/lateness.js'));
const serverLateness = name => {
  const l = answerLateness([path.join(dir, `${name}-parkd.metrics`)]);
  return l && { p99: l.p99Ms, within5: l.within5 };
};
const fmt = v => v === null || v === undefined ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v);
const without = get('sse-without'), withSubs = get('sse-with'), stuck = get('sse-stuck');
const s0 = park(without), sw = park(withSubs), sk = park(stuck);
const l0 = serverLateness('sse-without'), lw = serverLateness('sse-with');
const rows = [
  ['parked ok + killed', 'count', r => r.park_ok + r.park_killed],
  ['errors', 'count', r => r.park_error_total],
  ['RSS per parked request', 'B', r => r.rss_per_request_bytes],
  ['lateness p99 as parkd measures it (bucket bound)', 'ms', (r, l) => l && l.p99],
  ['lateness within 5 ms as parkd measures it', 'share', (r, l) => l && l.within5],
  ['serverStatus p50', 'ms', r => r.status_p50_ms],
  ['kill→500 p99', 'ms', r => r.kill_p99_ms],
  ['lateness p99 as the client saw it', 'ms', r => r.lateness_p99_ms],
  ['server CPU over the park phase', 's', r => park(r) && park(r).cpu_s],
];
const lines = [['figure', 'unit', 'without', `with ${subs}`, 'with/without']];
const summary = {};
for (const [label, unit, f] of rows) {
  const a = without ? f(without, l0) : null, b = withSubs ? f(withSubs, lw) : null;
  const ratio = typeof a === 'number' && typeof b === 'number' && a !== 0 ? (b / a).toFixed(3) : '–';
  lines.push([label, unit, fmt(a), fmt(b), ratio]);
  summary[label] = { without: a, with: b };
}
// CPU per delivered event: what the subscribers added to the phase's CPU
// time, over the events they were sent (each event once per subscriber).
const cpuPer = sw && s0 && sw.cpu_s !== null && s0.cpu_s !== null && sw.delivered > 0 ? (sw.cpu_s - s0.cpu_s) / sw.delivered * 1e6 : null;
const extra = [
  ['events expected per subscriber (parked / finished)', '', sw && `${sw.expected_parked} / ${sw.expected_finished}`],
  ['events seen per subscriber, parked min…max', '', sw && `${sw.parked_min}…${sw.parked_max}`],
  ['events seen per subscriber, finished min…max', '', sw && `${sw.finished_min}…${sw.finished_max}`],
  ['events delivered, all subscribers', 'count', sw && sw.delivered],
  ['no loss (every subscriber every event, once)', '', sw && sw.no_loss],
  ['event lateness p50 (±1 ms)', 'ms', sw && sw.lateness_p50_ms],
  ['event lateness p99 (±1 ms)', 'ms', sw && sw.lateness_p99_ms],
  ['event lateness max (±1 ms)', 'ms', sw && sw.lateness_max_ms],
  ['event lateness p99, parked / finished', 'ms', sw && `${fmt(sw.parked_p99_ms)} / ${fmt(sw.finished_p99_ms)}`],
  ['server CPU per delivered event', 'µs', cpuPer],
  ['subscribers check', '', sw && sw.verdict],
];
for (const [label, unit, v] of extra) { lines.push([label, unit, '', fmt(v), '']); summary[label] = v; }
const st = sk && sk.stuck;
const stuckRows = [
  ['stuck subscriber: dropped (how)', '', st && `${st.dropped} (${st.end})`],
  ['stuck subscriber: dropped after the first park, between', 's', st && `${fmt(st.drop_after_low_s)} and ${fmt(st.drop_after_s)}`],
  ['stuck subscriber: events it had been sent / lag at the drop', '', st && `${st.received} / ${fmt(st.lag_at_drop)}`],
  ["stuck subscriber: the server's socket after the phase / bytes unsent", '', st && `${st.server_state || '–'} / ${fmt(st.server_unsent)}`],
  ['server dropped subscribers before / after', '', sk && `${fmt(sk.dropped_before)} / ${fmt(sk.dropped_after)}`],
  ['server subscribers gauge before / after (back after)', '', sk && `${fmt(sk.subscribers_before)} / ${fmt(sk.subscribers_after)} (${fmt(sk.gauge_back_s)} s)`],
  ['server goroutines before / once the gauge was back / 12 s later', '', sk && `${fmt(sk.goroutines_before)} / ${fmt(sk.goroutines_after)} / ${fmt(stuck.goroutines_after)}`],
  [`the other ${subs}: no loss / event lateness p99`, '', sk && `${sk.no_loss} / ${fmt(sk.lateness_p99_ms)} ms`],
  ['stuck run check', '', sk && sk.verdict],
];
for (const [label, unit, v] of stuckRows) { lines.push([label, unit, '', fmt(v), '']); summary[label] = v; }
const w = lines[0].map((_, i) => Math.max(...lines.map(l => l[i].length)));
for (const l of lines) console.log('| ' + l.map((c, i) => c.padEnd(w[i])).join(' | ') + ' |');
fs.writeFileSync(path.join(dir, 'summary-sse.json'), JSON.stringify(summary) + '\n');
EOF
fi
echo "results in $out"
