// answerLateness reads parkd_answer_lateness_seconds from /metrics scrapes
// (one file each, summed: the instances of a cluster) and returns how many
// answers it counts, the share that left within 5 ms and within 50 ms of
// their deadline, and the upper bound in ms of the bucket holding the 99th
// percentile (null past the largest bucket); null when no file has answers.
// Used by bench/run.sh and bench/cluster.sh.
const fs = require('fs');

exports.answerLateness = files => {
  const b = {};
  for (const f of files) {
    let text;
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const m of text.matchAll(/^parkd_answer_lateness_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) b[m[1]] = (b[m[1]] || 0) + Number(m[2]);
  }
  const total = b['+Inf'];
  if (!total) return null;
  const les = Object.keys(b).filter(k => k !== '+Inf').map(Number).sort((x, y) => x - y);
  const p99 = les.find(le => b[String(le)] >= 0.99 * total);
  return { answers: total, within5: b['0.005'] / total, within50: b['0.05'] / total, p99Ms: p99 === undefined ? null : p99 * 1000 };
};
