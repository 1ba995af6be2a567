// k6 load test for parkd (or any server implementing the API of docs/API.md).
//
// Run:
//   k6 run -e BASE_URL=http://127.0.0.1:8080 loadtest/k6.js
//
// Every parker holds one TCP connection for its whole timeout, so the machine that
// runs k6 needs `ulimit -n` above PARKERS plus the pollers' and killers' VUs and a
// margin (e.g. `ulimit -n 8192` for the default 2000 parkers); the server needs the
// same. Only loopback targets are accepted: this is a local load test.
//
// Knobs (all optional, via -e NAME=value):
//   BASE_URL   server base URL             default http://127.0.0.1:8080
//   PARKERS    parked requests at the peak default 2000 (VUs of the parkers scenario)
//   RAMP_S     seconds to ramp parkers up  default 30
//   HOLD_S     seconds to hold the peak    default 60
//   POLL_RATE  serverStatus polls / second default 10
//   KILL_RATE  kills / second              default 20
//
// Scenarios: parkers park requests with random fractional timeouts (1–10 s) and
// unique connIds; pollers poll /api/serverStatus; killers pick a listed connId of
// this test and kill it. A kill may lose the race against the deadline, so a 400
// "invalid connection Id : …" is an accepted answer.

import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const PARKERS = intEnv('PARKERS', 2000);
const RAMP_S = intEnv('RAMP_S', 30);
const HOLD_S = intEnv('HOLD_S', 60);
const POLL_RATE = intEnv('POLL_RATE', 10);
const KILL_RATE = intEnv('KILL_RATE', 20);

// The longest parked request, plus slack, so ramp-down lets parked requests finish.
const MAX_TIMEOUT_S = 10;
const GRACE = `${MAX_TIMEOUT_S + 5}s`;

if (!/^http:\/\/(127(\.\d{1,3}){3}|localhost|\[::1\])(:\d+)?(\/|$)/i.test(BASE_URL)) {
  throw new Error(`BASE_URL ${BASE_URL} is not a loopback http:// URL`);
}

function intEnv(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') {
    return def;
  }
  const n = parseInt(v, 10);
  if (!(n >= 0)) {
    throw new Error(`${name} must be a non-negative integer, got ${v}`);
  }
  return n;
}

export const options = {
  scenarios: {
    parkers: {
      executor: 'ramping-vus',
      exec: 'parkers',
      startVUs: 0,
      stages: [
        { duration: `${RAMP_S}s`, target: PARKERS },
        { duration: `${HOLD_S}s`, target: PARKERS },
        { duration: '10s', target: 0 },
      ],
      gracefulRampDown: GRACE,
      gracefulStop: GRACE,
    },
    pollers: {
      executor: 'constant-arrival-rate',
      exec: 'pollers',
      rate: POLL_RATE,
      timeUnit: '1s',
      duration: `${RAMP_S + HOLD_S}s`,
      preAllocatedVUs: 5,
      maxVUs: 50,
    },
    killers: {
      executor: 'constant-arrival-rate',
      exec: 'killers',
      rate: KILL_RATE,
      timeUnit: '1s',
      startTime: '5s',
      duration: `${Math.max(RAMP_S + HOLD_S - 5, 1)}s`,
      preAllocatedVUs: 5,
      maxVUs: 50,
    },
  },
  thresholds: {
    checks: ['rate>0.99'],
    http_req_failed: ['rate<0.01'],
    'http_req_duration{name:serverStatus}': ['p(99)<100'],
    'http_req_duration{name:kill}': ['p(99)<50'],
  },
};

// connIds of this test look like "<vu>-<iter>-<random>"; killers only kill those.
const OWN_ID = /^\d+-\d+-[a-z0-9]+$/;

function randomToken() {
  return Math.random().toString(36).slice(2, 10) || 'x';
}

function jsonBody(r) {
  try {
    return JSON.parse(r.body);
  } catch (e) {
    return undefined;
  }
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Parks one request and checks its outcome: ok after the timeout, or killed.
export function parkers() {
  const connId = `${__VU}-${__ITER}-${randomToken()}`;
  const timeout = (1 + Math.random() * (MAX_TIMEOUT_S - 1)).toFixed(3);
  const r = http.get(
    `${BASE_URL}/api/request?connId=${encodeURIComponent(connId)}&timeout=${timeout}`,
    {
      timeout: `${MAX_TIMEOUT_S + 30}s`,
      tags: { name: 'park' },
      responseCallback: http.expectedStatuses(200, 500),
    },
  );
  const body = jsonBody(r);
  check(r, {
    'park: status 200 or 500': (res) => res.status === 200 || res.status === 500,
    'park: 200 is {"status":"ok"}, 500 is {"status":"killed"}': (res) =>
      isObject(body) &&
      ((res.status === 200 && body.status === 'ok') || (res.status === 500 && body.status === 'killed')),
  });
}

// Fetches serverStatus, tagged so its latency has a threshold of its own.
function fetchStatus() {
  const r = http.get(`${BASE_URL}/api/serverStatus`, {
    tags: { name: 'serverStatus' },
    responseCallback: http.expectedStatuses(200),
  });
  return { r, body: jsonBody(r) };
}

// Polls serverStatus and checks it is a JSON object of string values.
export function pollers() {
  const { r, body } = fetchStatus();
  check(r, {
    'status: 200': (res) => res.status === 200,
    'status: JSON object of strings': () =>
      isObject(body) && Object.keys(body).every((k) => typeof body[k] === 'string'),
  });
}

// Kills one parked request of this test, chosen at random from serverStatus.
export function killers() {
  const { r, body } = fetchStatus();
  if (r.status !== 200 || !isObject(body)) {
    return;
  }
  const ids = Object.keys(body).filter((id) => OWN_ID.test(id));
  if (ids.length === 0) {
    sleep(0.1);
    return;
  }
  const connId = ids[Math.floor(Math.random() * ids.length)];
  const k = http.put(`${BASE_URL}/api/kill`, JSON.stringify({ connId }), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'kill' },
    responseCallback: http.expectedStatuses(200, 400),
  });
  const kb = jsonBody(k);
  check(k, {
    'kill: 200 {"status":"ok"} or 400 invalid connection Id': (res) =>
      isObject(kb) &&
      ((res.status === 200 && kb.status === 'ok') ||
        (res.status === 400 && kb.status === `invalid connection Id : ${connId}`)),
  });
}

// k6 requires a default function; the scenarios above name their own.
export default function () {
  parkers();
}
