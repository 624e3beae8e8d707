// raftkv's live dashboard (plain browser JavaScript, no build step; uPlot is loaded before it).
// Every POLL_MS it fetches /cluster from the member that served the page; that member gathers the others
// (src/server/cluster-view.ts). If that member stops answering, the page moves on to another member's
// /cluster, through the metrics URLs the last answer listed, and says so; it comes back when its own answers.
'use strict';

const POLL_MS = 1000; // one gather a second: a failover shows within about a second
const HISTORY_POINTS = 300; // five minutes of chart points
const FETCH_TIMEOUT_MS = 2000; // a member slower than this is treated as gone for this poll

const state = {
  own: '', // '' = the origin that served the page
  source: '', // the base URL polled now
  lastMembers: [],
  series: { t: [], rps: [], p50: [], p99: [] },
  charts: {},
};

const $ = (id) => document.getElementById(id);
const fmt = (v, digits = 0) => (v === undefined || v === null ? '–' : Number(v).toFixed(digits));
const clock = (ms) => new Date(ms).toLocaleTimeString(undefined, { hour12: false });

function makeChart(el, series) {
  const opts = {
    width: 520,
    height: 200,
    series: [{}, ...series],
    axes: [{}, { size: 50 }],
    scales: { x: { time: true } },
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

function setupCharts() {
  if (typeof uPlot === 'undefined') return; // the page still works without charts
  state.charts.rps = makeChart($('chart-rps'), [{ label: 'requests/s', stroke: '#1565c0', width: 2 }]);
  state.charts.latency = makeChart($('chart-latency'), [
    { label: 'p50', stroke: '#2e7d32', width: 2 },
    { label: 'p99', stroke: '#c62828', width: 2 },
  ]);
}

async function fetchCluster(base) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const res = await fetch(`${base}/cluster`, { signal: ctl.signal, cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await res.json();
  } finally {
    clearTimeout(timer);
  }
}

/** Own member first, then the others that were up at the last answer. */
async function poll() {
  const candidates = [state.own, ...state.lastMembers.filter((m) => m.up && m.metricsUrl !== '' && m.metricsUrl !== location.origin).map((m) => m.metricsUrl)];
  const seen = new Set();
  for (const base of candidates) {
    if (seen.has(base)) continue;
    seen.add(base);
    try {
      const snap = await fetchCluster(base);
      state.source = base;
      render(snap);
      return;
    } catch (err) {
      $('poll-state').textContent = `${base || location.origin}: ${err.message}`;
    }
  }
  $('poll-state').textContent = 'no member answers';
  for (const row of document.querySelectorAll('#members tbody tr')) {
    row.className = 'down';
    row.dataset.up = 'false';
  }
}

function render(snap) {
  $('leader').textContent = snap.leaderId === 0 ? 'none' : `member ${snap.leaderId}`;
  $('leader').dataset.leader = String(snap.leaderId);
  $('term').textContent = String(snap.term);
  $('served-by').textContent = String(snap.servedBy);
  $('timeline-source').textContent = String(snap.servedBy);
  $('source-note').textContent = state.source === state.own ? '' : `(the page's own member does not answer: showing ${state.source})`;
  $('poll-state').textContent = `updated ${clock(snap.atMs)}`;
  state.lastMembers = snap.members;
  renderMembers(snap);
  renderProgress(snap);
  renderCharts(snap);
  renderTimeline(snap);
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function badge(text, cls) {
  const td = document.createElement('td');
  td.className = 'text';
  const b = document.createElement('span');
  b.className = `badge ${cls}`;
  b.textContent = text;
  td.appendChild(b);
  return td;
}

function renderMembers(snap) {
  const body = document.querySelector('#members tbody');
  body.replaceChildren();
  for (const m of snap.members) {
    const tr = document.createElement('tr');
    tr.dataset.memberId = String(m.id);
    tr.dataset.up = String(m.up);
    tr.dataset.role = m.role ?? 'down';
    tr.className = !m.up ? 'down' : m.role === 'leader' ? 'leader' : '';
    const r = m.requests;
    tr.append(
      cell(`member ${m.id}`),
      m.up ? badge('up', 'up') : badge('down', 'down'),
      m.up ? (m.role === 'leader' ? badge('leader', 'leader') : cell(m.role, 'text')) : cell(m.error ?? 'unreachable', 'text error'),
      cell(fmt(m.term)),
      cell(m.leaderId === 0 ? 'none' : fmt(m.leaderId)),
      cell(fmt(m.commitIndex)),
      cell(fmt(m.appliedIndex)),
      cell(fmt(m.applyLagEntries)),
      cell(fmt(m.replicationLagEntries)),
      cell(r ? fmt(r.readsPerSecond, 1) : '–'),
      cell(r ? fmt(r.writesPerSecond, 1) : '–'),
      cell(r ? fmt(r.p50Ms, 2) : '–'),
      cell(r ? fmt(r.p99Ms, 2) : '–'),
      cell(m.clientAddress, 'text'),
    );
    body.appendChild(tr);
  }
}

function renderProgress(snap) {
  const el = $('progress');
  const leader = snap.members.find((m) => m.up && m.role === 'leader');
  if (!leader || !leader.progress) {
    el.textContent = 'no leader';
    el.className = 'muted';
    return;
  }
  el.className = '';
  el.replaceChildren();
  const last = Math.max(1, leader.lastLogIndex ?? 1);
  for (const p of leader.progress) {
    const row = document.createElement('div');
    row.className = 'bar';
    row.dataset.follower = String(p.id);
    const label = document.createElement('span');
    label.textContent = `member ${p.id}`;
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${Math.min(100, (100 * p.match) / last).toFixed(1)}%`;
    track.appendChild(fill);
    const text = document.createElement('span');
    text.textContent = `match ${p.match} of ${leader.lastLogIndex} (${p.lagEntries} behind, ${p.state})`;
    row.append(label, track, text);
    el.appendChild(row);
  }
}

function renderCharts(snap) {
  const s = state.series;
  const up = snap.members.filter((m) => m.up && m.requests);
  s.t.push(snap.atMs / 1000);
  s.rps.push(up.reduce((n, m) => n + m.requests.readsPerSecond + m.requests.writesPerSecond, 0));
  s.p50.push(up.reduce((n, m) => Math.max(n, m.requests.p50Ms), 0));
  s.p99.push(up.reduce((n, m) => Math.max(n, m.requests.p99Ms), 0));
  for (const k of Object.keys(s)) if (s[k].length > HISTORY_POINTS) s[k].shift();
  if (state.charts.rps) state.charts.rps.setData([s.t, s.rps]);
  if (state.charts.latency) state.charts.latency.setData([s.t, s.p50, s.p99]);
}

function describe(e) {
  switch (e.type) {
    case 'leader':
      return e.previousLeader === 0 && e.withoutLeaderMs === 0
        ? `member ${e.leader} leads (term ${e.term})`
        : `new leader: member ${e.leader} (term ${e.term})` + (e.withoutLeaderMs > 0 ? `; failover: ${e.withoutLeaderMs} ms without a leader` : ', handed over directly');
    case 'leader-lost':
      return `lost leader ${e.previousLeader === 0 ? '' : `member ${e.previousLeader} `}(term ${e.term})`;
    case 'member-down':
      return `member ${e.member} down: ${e.error}`;
    case 'member-up':
      return `member ${e.member} up`;
    default:
      return JSON.stringify(e);
  }
}

function renderTimeline(snap) {
  const list = $('timeline');
  list.replaceChildren();
  for (const e of [...snap.events].reverse()) {
    const li = document.createElement('li');
    li.className = e.type;
    li.dataset.type = e.type;
    li.textContent = `${clock(e.atMs)}  ${describe(e)}`;
    list.appendChild(li);
  }
}

function loop() {
  poll().finally(() => setTimeout(loop, POLL_MS));
}

setupCharts();
loop();
