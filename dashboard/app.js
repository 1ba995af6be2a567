// parkd's dashboard (docs/API.md, section 8): the parked requests live,
// fed by the event stream /api/events, with a kill button on each row, a
// form that parks a test request, the outcome counters of /metrics, the
// recent history and a chart of the parked count.
//
// Everything the server sends is untrusted text (a connId may be HTML): it
// reaches the page only through textContent, value and title, never as
// HTML. The page sends a Content-Security-Policy that runs this file alone
// and requires Trusted Types, so an HTML sink would throw, not parse.
//
// With tens of thousands parked it stays usable: the parked requests are a
// Map keyed by connId, events only change that model, and the page renders
// at most five times a second, drawing only the rows that fit the list's
// viewport (fixed row height, a spacer for the rest).

const RENDER_EVERY_MS = 200; // at most 5 renders a second, whatever the event rate
const METRICS_EVERY_MS = 5000;
const HISTORY_FETCH = 50; // asked of /api/history at start and on each reconnect
const HISTORY_KEEP = 100; // shown, newest first
const CHART_SECONDS = 300; // one sample a second
const CHART_MIN_SECONDS = 60; // the narrowest span the chart shows
const MINE_MAX_OPEN = 3; // a browser opens 6 connections to one server: leave some for the page
const MINE_KEEP = 8;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 15000;
const KILL_THENS = ['500', '503', '200', '502', 'reset', 'close', 'garbage', 'truncate'];
const OUTCOMES = ['ok', 'killed', 'abandoned', 'shutdown', 'rejected'];
const DRIP_MIN_MS = 50; // a gap between headers and last byte below this is no drip

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function str(v) {
  return v === null || v === undefined ? '' : String(v);
}

function num(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}

// fmtLeft shows a time left: tenths of a second under a minute, then m:ss
// or h:mm:ss; rounded up, so that 0 means it is over.
function fmtLeft(ms) {
  if (ms <= 0) return '0.0 s';
  if (ms < 60000) return (Math.ceil(ms / 100) / 10).toFixed(1) + ' s';
  const s = Math.ceil(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return (h > 0 ? h + ':' + pad(m) : String(m)) + ':' + pad(s % 60);
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '–';
  const n = num(ms);
  return n < 1000 ? n + ' ms' : (n / 1000).toFixed(n < 10000 ? 3 : 1) + ' s';
}

function fmtClock(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return str(iso);
  const d = new Date(t);
  return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
}

// ---- the model ----

const model = {
  parked: new Map(), // connId → entry
  // Every entry in order, soonest last byte first. Renders keep it up to
  // date by merging in what was added (few) and dropping what was
  // removed, in one pass: no sort of tens of thousands per render.
  sorted: [],
  added: [], // entries added since the last merge
  resort: true, // sort all again (a snapshot replaced the model)
  live: false, // a snapshot arrived on the current stream
  skew: null, // browser clock minus server clock (ms), from parked events
  history: [], // newest first
  historyKeys: new Set(),
  historySeq: 0,
  withInstance: false,
  killChoice: new Map(), // connId → the then picked in its row
  structure: true, // membership or order changed since the last render
  historyChanged: true,
  events: 0,
};

// entryOf turns a resource object into the page's entry. Times are kept on
// the page's monotonic clock: the countdown is the remainingMs the server
// sent, counted down from when it arrived, so the two clocks need not agree.
function entryOf(r, now) {
  const remaining = Math.max(0, num(r.remainingMs));
  const end = now + remaining; // when its last byte leaves
  let headers = end; // when its headers leave (before end only with drip)
  const deadline = Date.parse(r.deadline);
  if (!Number.isNaN(deadline)) {
    const serverNow = Date.now() - (model.skew ?? 0);
    headers = Math.min(end, now + Math.max(0, deadline - serverNow));
  }
  if (r.phase === 'body') headers = Math.min(headers, now);
  const id = str(r.connId);
  return {
    id,
    lower: id.toLowerCase(),
    then: str(r.then),
    phase: str(r.phase),
    bytes: num(r.bytesSent),
    remote: str(r.remoteAddr),
    instance: str(r.instance),
    startedAt: str(r.startedAt),
    end,
    headers,
  };
}

// phaseOf is the phase the server sent, moved to "body" once the headers
// of a dripping answer must have left: no event says so.
function phaseOf(e, now) {
  if (e.phase === 'waiting' && e.end - e.headers >= DRIP_MIN_MS && now >= e.headers) return 'body';
  return e.phase;
}

function compareEntries(a, b) {
  return a.end - b.end || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function noteInstance(e) {
  if (e.instance && !model.withInstance) {
    model.withInstance = true;
    $('list').classList.add('with-instance');
  }
}

function onSnapshot(ev) {
  const list = JSON.parse(ev.data);
  const now = performance.now();
  const parked = new Map();
  for (const r of list) {
    const e = entryOf(r, now);
    parked.set(e.id, e);
    noteInstance(e);
  }
  for (const e of model.parked.values()) e.removed = true;
  model.parked = parked;
  model.resort = true;
  for (const id of model.killChoice.keys()) if (!parked.has(id)) model.killChoice.delete(id);
  model.live = true;
  model.structure = true;
  setConn('live');
  loadHistory();
}

function onParked(ev) {
  const r = JSON.parse(ev.data);
  // A parked event leaves as the request parks, so its startedAt is the
  // server's clock then: the smallest difference seen is the best guess
  // of the skew between the clocks.
  const started = Date.parse(r.startedAt);
  if (!Number.isNaN(started)) {
    const d = Date.now() - started;
    if (model.skew === null || d < model.skew) model.skew = d;
  }
  addEntry(entryOf(r, performance.now()));
}

function addEntry(e) {
  const old = model.parked.get(e.id);
  if (old) old.removed = true;
  model.parked.set(e.id, e);
  model.added.push(e);
  noteInstance(e);
  model.structure = true;
}

function removeEntry(e) {
  e.removed = true;
  model.parked.delete(e.id);
  model.killChoice.delete(e.id);
  model.structure = true;
}

// mergeSorted brings model.sorted up to date.
function mergeSorted() {
  if (model.resort) {
    model.sorted = [...model.parked.values()].sort(compareEntries);
    model.added = [];
    model.resort = false;
    return;
  }
  const add = model.added.filter((e) => !e.removed).sort(compareEntries);
  model.added = [];
  const old = model.sorted;
  const out = [];
  let i = 0;
  let j = 0;
  while (i < old.length || j < add.length) {
    if (i < old.length && old[i].removed) i++;
    else if (j >= add.length || (i < old.length && compareEntries(old[i], add[j]) <= 0)) out.push(old[i++]);
    else out.push(add[j++]);
  }
  model.sorted = out; // a new array: a held list keeps the one it shows
}

function onFinished(ev) {
  const h = JSON.parse(ev.data);
  const id = str(h.connId);
  const cur = model.parked.get(id);
  // A replayed finished event may be of an earlier park of the same
  // connId: only the one with its start leaves the list.
  if (cur && (!h.startedAt || cur.startedAt === h.startedAt)) removeEntry(cur);
  addHistory([h]);
}

function historyKey(h) {
  return str(h.connId) + '\u0000' + str(h.startedAt) + '\u0000' + str(h.endedAt) + '\u0000' + str(h.outcome);
}

// addHistory merges records (newest first) into the history, newest
// first, each once: the history fetched on a reconnect and the events that
// follow overlap. Of two that ended in the same millisecond, the one that
// came later is shown first.
function addHistory(records) {
  let added = false;
  for (let i = records.length - 1; i >= 0; i--) {
    const h = records[i];
    const k = historyKey(h);
    if (model.historyKeys.has(k)) continue;
    model.historyKeys.add(k);
    model.history.push({ rec: h, at: Date.parse(h.endedAt) || 0, seq: ++model.historySeq, key: k });
    added = true;
  }
  if (!added) return;
  model.history.sort((a, b) => b.at - a.at || b.seq - a.seq);
  for (const old of model.history.splice(HISTORY_KEEP)) model.historyKeys.delete(old.key);
  model.historyChanged = true;
}

async function loadHistory() {
  try {
    const res = await fetch('/api/history?limit=' + HISTORY_FETCH, { cache: 'no-store' });
    if (!res.ok) throw new Error('answered ' + res.status);
    const list = await res.json();
    if (Array.isArray(list)) addHistory(list);
  } catch (err) {
    notice('could not read the history: ' + err.message, true);
  }
}

// ---- the event stream ----

const stream = { es: null, retry: RETRY_MIN_MS };

function setConn(state) {
  const c = $('conn');
  const text = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', down: 'disconnected, retrying…' };
  if (c.dataset.state !== state) {
    c.dataset.state = state;
    c.textContent = text[state] ?? state;
    $('list').classList.toggle('stale', state !== 'live');
  }
}

// guarded runs an event handler; a malformed event is shown, not thrown.
function guarded(fn) {
  return (ev) => {
    model.events++;
    try {
      fn(ev);
    } catch (err) {
      notice('a malformed ' + ev.type + ' event from the server: ' + err.message, true);
    }
  };
}

function connect() {
  setConn('connecting');
  const es = new EventSource('/api/events');
  stream.es = es;
  es.addEventListener('snapshot', guarded(onSnapshot));
  es.addEventListener('parked', guarded(onParked));
  es.addEventListener('finished', guarded(onFinished));
  es.addEventListener('open', () => {
    stream.retry = RETRY_MIN_MS;
  });
  es.addEventListener('error', () => {
    model.live = false;
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an answer that is not an event stream): a
      // new EventSource, later, with a growing pause.
      setConn('down');
      es.close();
      setTimeout(connect, stream.retry);
      stream.retry = Math.min(stream.retry * 2, RETRY_MAX_MS);
    } else {
      setConn('reconnecting'); // EventSource retries by itself
    }
  });
}

// ---- the parked list: a virtual list ----

const list = {
  viewport: $('viewport'),
  spacer: $('spacer'),
  rows: [], // the pool of row elements, reused
  rowHeight: 0,
  order: [], // entries shown, soonest last byte first
  filter: '',
  refilter: false, // the filter changed: redraw even a held list
  hover: false,
  selectFocus: false,
};

function frozen() {
  return list.hover || list.selectFocus;
}

function newRow() {
  const r = { el: el('div', 'row'), id: null, startedAt: null };
  r.el.setAttribute('role', 'row');
  r.idEl = el('span', 'id');
  r.left = el('span', 'left num');
  r.then = el('span', 'then');
  r.phase = el('span', 'phase');
  r.bytes = el('span', 'bytes num');
  r.remote = el('span', 'remote');
  r.inst = el('span', 'inst');
  const killCell = el('span', 'kill');
  r.select = el('select', 'kill-then');
  r.select.setAttribute('aria-label', 'then of the kill');
  for (const t of KILL_THENS) r.select.append(new Option(t, t));
  r.button = el('button', 'kill-button', 'kill');
  r.button.type = 'button';
  killCell.append(r.select, r.button);
  const cells = [r.idEl, r.left, r.then, r.phase, r.bytes, r.remote, r.inst, killCell];
  for (const c of cells) c.setAttribute('role', 'cell');
  r.el.append(...cells);
  r.select.addEventListener('change', () => {
    if (r.id !== null) model.killChoice.set(r.id, r.select.value);
  });
  r.button.addEventListener('click', () => {
    if (r.id !== null) kill(r.id, r.startedAt, r.select.value);
  });
  list.spacer.append(r.el);
  return r;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function rebuildOrder() {
  mergeSorted();
  const f = list.filter;
  list.order = f === '' ? model.sorted : model.sorted.filter((e) => e.lower.includes(f));
  model.structure = false;
  list.refilter = false;
}

function bindRow(r, e, index, now) {
  if (r.id !== e.id || r.startedAt !== e.startedAt) {
    r.id = e.id;
    r.startedAt = e.startedAt;
    setText(r.idEl, e.id);
    r.idEl.title = e.id;
    setText(r.then, e.then);
    setText(r.remote, e.remote);
    r.remote.title = e.remote;
    setText(r.inst, e.instance);
    r.select.value = model.killChoice.get(e.id) ?? '500';
    r.button.title = 'kill ' + e.id;
  }
  const cur = model.parked.get(e.id);
  const gone = !cur || cur.startedAt !== e.startedAt;
  r.el.classList.toggle('gone', gone);
  r.el.classList.toggle('odd', index % 2 === 1);
  r.button.disabled = gone || e.killing === true;
  const phase = phaseOf(e, now);
  setText(r.left, gone ? 'ended' : fmtLeft(e.end - now));
  setText(r.phase, phase);
  r.phase.classList.toggle('dripping', phase === 'body');
  setText(r.bytes, String(e.bytes));
  r.el.style.transform = 'translateY(' + index * list.rowHeight + 'px)';
  r.el.hidden = false;
}

function renderList(now) {
  if ((model.structure && !frozen()) || list.refilter) rebuildOrder();
  const n = list.order.length;
  if (list.rowHeight === 0) list.rowHeight = measureRow();
  const h = list.rowHeight;
  list.spacer.style.height = n * h + 'px';
  const top = list.viewport.scrollTop;
  const first = Math.max(0, Math.floor(top / h) - 2);
  const last = Math.min(n, Math.ceil((top + list.viewport.clientHeight) / h) + 2);
  while (list.rows.length < last - first) list.rows.push(newRow());
  let k = 0;
  for (let i = first; i < last; i++, k++) bindRow(list.rows[k], list.order[i], i, now);
  for (; k < list.rows.length; k++) {
    const r = list.rows[k];
    if (!r.el.hidden) {
      r.el.hidden = true;
      r.id = null;
      r.startedAt = null;
    }
  }
  $('empty').hidden = n > 0;
  const total = model.parked.size;
  setText($('parked-count'), list.filter === '' ? '(' + total + ')' : '(' + n + ' of ' + total + ' match)');
  setText($('count-parked'), String(total));
  $('paused').hidden = !frozen();
}

// measureRow reads the row height from the style sheet, which owns it.
function measureRow() {
  const probe = newRow();
  list.rows.push(probe);
  const h = probe.el.getBoundingClientRect().height;
  probe.el.hidden = true;
  return h > 0 ? h : 28;
}

function initList() {
  const vp = list.viewport;
  vp.addEventListener('scroll', () => requestRender());
  // While the pointer is on the list (or a row's select is open) its
  // order holds still, so that a kill hits the row aimed at.
  vp.addEventListener('pointerenter', () => {
    list.hover = true;
  });
  vp.addEventListener('pointerleave', () => {
    list.hover = false;
    requestRender();
  });
  vp.addEventListener('focusin', (ev) => {
    list.selectFocus = ev.target instanceof HTMLSelectElement;
  });
  vp.addEventListener('focusout', () => {
    list.selectFocus = false;
    requestRender();
  });
  $('filter').addEventListener('input', (ev) => {
    list.filter = ev.target.value.trim().toLowerCase();
    list.refilter = true;
    requestRender();
  });
}

async function kill(id, startedAt, then) {
  const e = model.parked.get(id);
  if (e) e.killing = true;
  requestRender();
  try {
    const res = await fetch('/api/kill', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ connId: id, then }),
      cache: 'no-store',
    });
    let answer = {};
    try {
      answer = await res.json();
    } catch {
      // the status code says enough
    }
    if (res.ok) {
      notice('killed ' + id + ' with ' + then);
      // It has ended: out of the list at once, even a held one; the
      // finished event brings it to the history.
      const cur = model.parked.get(id);
      if (cur && cur.startedAt === startedAt) removeEntry(cur);
      list.order = list.order.filter((x) => !(x.id === id && x.startedAt === startedAt));
    } else {
      if (e) e.killing = false;
      notice('kill ' + id + ': ' + (answer.status ?? 'answered ' + res.status), true);
    }
  } catch (err) {
    if (e) e.killing = false;
    notice('kill ' + id + ': ' + err.message, true);
  }
  requestRender();
}

// ---- the history ----

function renderHistory() {
  if (!model.historyChanged) return;
  model.historyChanged = false;
  const body = $('history');
  const rows = [];
  for (const { rec: h } of model.history) {
    const tr = el('tr', 'outcome-' + (OUTCOMES.includes(h.outcome) ? h.outcome : 'other'));
    tr.append(
      el('td', 'id', str(h.connId)),
      el('td', 'outcome', str(h.outcome)),
      el('td', 'then', h.then === null || h.then === undefined ? '–' : str(h.then)),
      el('td', 'code num', h.code === null || h.code === undefined ? '–' : str(h.code)),
      el('td', 'duration num', fmtDuration(h.durationMs)),
      el('td', 'bytes num', str(h.bytesSent)),
      el('td', 'ended', fmtClock(h.endedAt)),
    );
    tr.firstChild.title = str(h.connId) + (h.instance ? ' on ' + str(h.instance) : '');
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $('history-empty').hidden = rows.length > 0;
}

// ---- outcome counters from /metrics ----

// parseOutcomes reads parkd_outcomes_total{outcome="…"} N lines of the
// Prometheus text format, adding up series that differ in other labels.
function parseOutcomes(text) {
  const prefix = 'parkd_outcomes_total{';
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const close = line.indexOf('}');
    if (close < 0) continue;
    const m = /(?:^|,)\s*outcome="([^"\\]*)"/.exec(line.slice(prefix.length, close));
    const v = Number(line.slice(close + 1).trim().split(/\s+/)[0]);
    if (m && Number.isFinite(v)) out[m[1]] = (out[m[1]] ?? 0) + v;
  }
  return out;
}

async function loadMetrics() {
  const counters = $('counters');
  try {
    const res = await fetch('/metrics', { cache: 'no-store' });
    if (!res.ok) throw new Error('answered ' + res.status);
    const got = parseOutcomes(await res.text());
    for (const o of OUTCOMES) setText($('count-' + o), o in got ? String(got[o]) : '–');
    counters.classList.remove('stale');
  } catch {
    counters.classList.add('stale');
  }
}

// ---- the chart ----

const chart = { samples: [], changed: true };

// sample records the parked count once a second; while the stream is down
// the count is unknown, and the chart shows a gap.
function sample() {
  chart.samples.push(model.live ? model.parked.size : null);
  if (chart.samples.length > CHART_SECONDS) chart.samples.shift();
  chart.changed = true;
}

function drawChart() {
  const c = $('chart');
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(c.clientWidth * dpr));
  const h = Math.max(1, Math.round(c.clientHeight * dpr));
  if (c.width !== w || c.height !== h) {
    c.width = w;
    c.height = h;
  }
  const g = c.getContext('2d');
  const css = getComputedStyle(c);
  g.clearRect(0, 0, w, h);
  const pad = 16 * dpr;
  const top = pad;
  const bottom = h - pad;
  let max = 0;
  for (const v of chart.samples) if (v !== null && v > max) max = v;
  const scale = max > 0 ? max : 1;
  // The axis spans the samples there are, at least a minute: a page open
  // for 20 s shows them over a third of the width, not a 15th.
  const span = Math.min(CHART_SECONDS, Math.max(CHART_MIN_SECONDS, chart.samples.length));
  const x = (i) => w - ((span - 1 - i) * w) / (span - 1);
  const offset = span - chart.samples.length;
  g.strokeStyle = css.getPropertyValue('--grid').trim() || '#ccc';
  g.lineWidth = dpr;
  g.beginPath();
  g.moveTo(0, bottom);
  g.lineTo(w, bottom);
  g.moveTo(0, top);
  g.lineTo(w, top);
  g.stroke();
  g.strokeStyle = css.color;
  g.fillStyle = css.getPropertyValue('--fill').trim() || 'rgba(0,0,0,0.1)';
  g.lineWidth = 1.5 * dpr;
  // One path per run of samples: a gap (no stream) breaks the line.
  let run = [];
  const flush = () => {
    if (run.length === 0) return;
    g.beginPath();
    run.forEach(([px, py], j) => (j === 0 ? g.moveTo(px, py) : g.lineTo(px, py)));
    g.stroke();
    g.lineTo(run[run.length - 1][0], bottom);
    g.lineTo(run[0][0], bottom);
    g.closePath();
    g.fill();
    run = [];
  };
  chart.samples.forEach((v, i) => {
    if (v === null) return flush();
    run.push([x(i + offset), bottom - (v / scale) * (bottom - top)]);
  });
  flush();
  g.fillStyle = css.color;
  g.font = 11 * dpr + 'px ' + css.fontFamily;
  g.textBaseline = 'top';
  g.textAlign = 'left';
  g.fillText('max ' + max, 2 * dpr, 1 * dpr);
  g.textBaseline = 'bottom';
  g.fillText(Math.round(span / 60) + ' min ago', 2 * dpr, h - 1 * dpr);
  g.textAlign = 'right';
  g.fillText('now: ' + (model.live ? model.parked.size : '?'), w - 2 * dpr, h - 1 * dpr);
}

// ---- your requests: parks from the form ----

const mine = { items: [] };

function randomId() {
  const b = new Uint8Array(4);
  crypto.getRandomValues(b);
  return 'web-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function openMine() {
  return mine.items.filter((m) => !m.done).length;
}

async function parkMine(ev) {
  ev.preventDefault();
  if (openMine() >= MINE_MAX_OPEN) {
    notice('at most ' + MINE_MAX_OPEN + ' of your requests at once: the browser needs its other connections for this page', true);
    return;
  }
  const form = ev.target;
  const q = new URLSearchParams();
  const id = $('f-connId').value;
  q.set('connId', id);
  q.set('timeout', $('f-timeout').value.trim());
  for (const k of ['then', 'jitter', 'body', 'drip']) {
    const v = $('f-' + k).value.trim();
    if (v !== '') q.set(k, v);
  }
  const item = {
    id,
    started: performance.now(),
    done: false,
    ctrl: new AbortController(),
    li: el('li', 'pending'),
  };
  const head = el('div', 'mine-head');
  item.idEl = el('span', 'id', id);
  item.state = el('div', 'state', 'parked');
  item.abandon = el('button', 'abandon', 'abandon');
  item.abandon.type = 'button';
  item.abandon.title = 'close this request: the server sees the client leave';
  item.abandon.addEventListener('click', () => item.ctrl.abort());
  head.append(item.idEl, item.abandon);
  const params = [];
  for (const [k, v] of q) if (k !== 'connId') params.push(k + '=' + v);
  item.answer = el('div', 'answer');
  item.li.append(head, item.state, el('div', 'params muted', params.join(' ')), item.answer);
  mine.items.unshift(item);
  $('mine').prepend(item.li);
  $('mine-empty').hidden = true;
  for (const old of mine.items.splice(MINE_KEEP)) {
    old.ctrl.abort();
    old.li.remove();
  }
  $('f-connId').value = randomId();
  form.querySelector('button[type=submit]').blur();

  let status = '';
  try {
    const res = await fetch('/api/request?' + q.toString(), { cache: 'no-store', signal: item.ctrl.signal });
    status = res.status + (res.statusText ? ' ' + res.statusText : '');
    const body = await res.text();
    finishMine(item, res.ok ? 'ok' : 'http-error', status, body);
  } catch (err) {
    if (err.name === 'AbortError') {
      finishMine(item, 'abandoned', status || 'abandoned', 'you closed the request');
    } else {
      // reset, close, garbage or truncate: the browser only says the
      // network failed (after the headers, for a cut body).
      finishMine(item, 'neterr', status ? status + ', body cut short' : 'network error', err.message);
    }
  }
}

function finishMine(item, kind, status, body) {
  item.done = true;
  item.li.classList.remove('pending');
  item.li.classList.add(kind);
  item.li.dataset.kind = kind;
  const secs = ((performance.now() - item.started) / 1000).toFixed(2) + ' s';
  setText(item.state, status + ' after ' + secs);
  item.abandon.remove();
  const shown = body.trimEnd();
  item.answer.textContent = shown.length > 300 ? shown.slice(0, 300) + '…' : shown;
  if (body.length !== shown.length) item.answer.title = body.length + ' bytes (padded with spaces)';
}

function renderMine(now) {
  for (const m of mine.items) {
    if (!m.done) setText(m.state, 'parked ' + ((now - m.started) / 1000).toFixed(1) + ' s');
  }
}

// ---- notices and the render loop ----

const notices = { timer: 0 };

function notice(text, bad = false) {
  const n = $('notice');
  n.textContent = text;
  n.classList.toggle('bad', bad);
  n.hidden = false;
  clearTimeout(notices.timer);
  notices.timer = setTimeout(() => {
    n.hidden = true;
  }, 6000);
}

const loop = { pending: false, renders: 0, spent: 0, longest: 0, since: performance.now() };

function requestRender() {
  if (loop.pending) return;
  loop.pending = true;
  requestAnimationFrame(render);
}

function render() {
  loop.pending = false;
  const t0 = performance.now();
  renderList(t0);
  renderHistory();
  renderMine(t0);
  if (chart.changed) {
    chart.changed = false;
    drawChart();
  }
  const t1 = performance.now();
  loop.renders++;
  loop.spent += t1 - t0;
  loop.longest = Math.max(loop.longest, t1 - t0);
  // What rendering costs, over 2 s windows: shown at the foot of the page.
  if (t1 - loop.since >= 2000) {
    const rate = (loop.renders * 1000) / (t1 - loop.since);
    const each = loop.spent / loop.renders;
    const events = (model.events * 1000) / (t1 - loop.since);
    const stats = $('stats');
    stats.textContent =
      rate.toFixed(1) + ' renders/s, ' + each.toFixed(1) + ' ms each (longest ' + loop.longest.toFixed(1) + ' ms); ' +
      events.toFixed(0) + ' events/s';
    stats.dataset.renders = rate.toFixed(2);
    stats.dataset.renderMs = each.toFixed(2);
    stats.dataset.renderMaxMs = loop.longest.toFixed(2);
    stats.dataset.events = events.toFixed(0);
    loop.renders = 0;
    loop.spent = 0;
    loop.longest = 0;
    model.events = 0;
    loop.since = t1;
  }
}

function start() {
  $('f-connId').value = randomId();
  $('park-form').addEventListener('submit', parkMine);
  initList();
  connect();
  loadMetrics();
  setInterval(loadMetrics, METRICS_EVERY_MS);
  // The clock of the page: countdowns tick and events are drawn at this
  // pace, never once per event.
  setInterval(requestRender, RENDER_EVERY_MS);
  setInterval(sample, 1000);
  window.addEventListener('resize', () => {
    chart.changed = true;
    requestRender();
  });
  requestRender();
}

start();
