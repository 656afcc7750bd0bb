// biblio's live dashboard: signs a librarian in (or takes the operator
// token), polls /dashboard/data every second and draws what it answers.
// Requests per second come from the difference of each replica's request
// count between two of its snapshots; the sparklines' history lives only
// in this page, so a reload starts them again.
'use strict';

const TOKEN_KEY = 'biblio.dashboard.token';
const POLL_MS = 1000;
// Three minutes of points at one a second.
const HISTORY = 180;
// The narrowest window a sparkline shows, in points.
const WINDOW = 30;
const TIERS = [
  { name: 'response', label: 'Response', colour: 'var(--response)' },
  { name: 'l1', label: 'L1', colour: 'var(--l1)' },
  { name: 'l2', label: 'L2 (Redis)', colour: 'var(--l2)' },
];
const LOGIN = 'mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { token } }';

const $ = (id) => document.getElementById(id);

/** Sets every element showing `name`: its text, and its raw value for scripts. */
function show(name, text, value) {
  for (const element of document.querySelectorAll(`[data-metric="${name}"]`)) {
    element.textContent = text;
    if (value !== undefined && value !== null) element.dataset.value = String(value);
  }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const format = {
  count: (n) => (n ?? 0).toLocaleString('en-US'),
  rate: (n) => (n === undefined || n === null ? '–' : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')),
  seconds(s) {
    if (s === undefined || s === null) return '–';
    if (s < 0.001) return `${Math.round(s * 1e6)} µs`;
    if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 1)} ms`;
    return `${s.toFixed(2)} s`;
  },
  bytes(n) {
    if (n === undefined || n === null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
  },
  percent: (r) => (r === undefined || r === null ? '–' : `${(r * 100).toFixed(1)}%`),
  uptime(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
    return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
  },
};

/** Milliseconds since the epoch; chrono writes up to nine fraction digits. */
function time(rfc3339) {
  return Date.parse(String(rfc3339).replace(/(\.\d{3})\d+/, '$1'));
}

/** A replica's id as a person tells replicas apart: the end of its UUID v7
 * (the start is a timestamp, shared by replicas started together). */
function shortId(id) {
  return String(id).replace(/-/g, '').slice(-8);
}

/**
 * A sparkline's SVG markup: `series` are { values, colour, fill }; the
 * scale is shared and starts at zero, so a flat line at the bottom means
 * nothing happened.
 */
function sparkline(series, width = 300, height = 46) {
  const max = Math.max(...series.flatMap((s) => s.values.filter((v) => v !== null)), 0) || 1;
  // The newest point at the right edge; the window grows from half a
  // minute to the whole history, so a fresh page is not one thin spike.
  const span = Math.min(HISTORY, Math.max(WINDOW, ...series.map((s) => s.values.length))) - 1;
  const x = (i, n) => width - ((n - 1 - i) / span) * width;
  const y = (v) => height - 2 - (v / (max * 1.1)) * (height - 4);
  let markup = `<line x1="0" y1="${height - 1}" x2="${width}" y2="${height - 1}" stroke="var(--line)" stroke-width="1"/>`;
  for (const { values, colour, fill } of series) {
    const points = values
      .map((v, i) => (v === null ? null : [x(i, values.length), y(v)]))
      .filter(Boolean);
    if (points.length < 2) continue;
    const line = points.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('');
    if (fill) {
      const first = points[0][0].toFixed(1);
      const last = points[points.length - 1][0].toFixed(1);
      markup += `<path d="${line}L${last},${height}L${first},${height}Z" fill="${fill}" stroke="none"/>`;
    }
    markup += `<path d="${line}" fill="none" stroke="${colour}" stroke-width="1.6" vector-effect="non-scaling-stroke" stroke-linejoin="round"/>`;
  }
  return markup;
}

function pill(element, state, text) {
  element.className = `pill ${state}`;
  element.textContent = text;
}

// What the page remembers between polls.
const state = {
  timer: null,
  /** replica id -> { requests, taken } of its last new snapshot */
  last: new Map(),
  /** replica id -> requests per second between its last two snapshots */
  rates: new Map(),
  /** replica id -> requests/s history */
  replicaHistory: new Map(),
  total: { rps: [], p50: [], p99: [], lag: [], l1: [] },
};

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.shift();
}

/** Works out each replica's requests per second from its new snapshots. */
function updateRates(replicas) {
  const present = new Set(replicas.map((r) => r.replica));
  for (const id of [...state.last.keys()]) {
    if (!present.has(id)) {
      state.last.delete(id);
      state.rates.delete(id);
      state.replicaHistory.delete(id);
    }
  }
  for (const replica of replicas) {
    const taken = time(replica.taken_at);
    const previous = state.last.get(replica.replica);
    if (!previous || taken > previous.taken) {
      if (previous) {
        const seconds = (taken - previous.taken) / 1000;
        state.rates.set(replica.replica, Math.max(0, replica.requests - previous.requests) / seconds);
      }
      state.last.set(replica.replica, { requests: replica.requests, taken });
    }
    if (!state.replicaHistory.has(replica.replica)) state.replicaHistory.set(replica.replica, []);
    push(state.replicaHistory.get(replica.replica), state.rates.get(replica.replica) ?? null);
  }
}

function tierOf(figures, name) {
  return figures.tiers.find((tier) => tier.tier === name) ?? { hits: 0, misses: 0, hit_rate: null };
}

function renderTiers(total) {
  $('tiers').innerHTML = TIERS.map(({ name, label, colour }) => {
    const tier = tierOf(total, name);
    const width = ((tier.hit_rate ?? 0) * 100).toFixed(1);
    return `<div class="bar-row">
        <span class="name">${label}</span>
        <div class="track"><div class="fill" style="width: ${width}%; background: ${colour}"></div></div>
        <span class="rate" data-metric="tier.${name}.rate">${format.percent(tier.hit_rate)}</span>
        <span class="counts"><b data-metric="tier.${name}.hits" data-value="${tier.hits}">${format.count(tier.hits)}</b> hits ·
          <span data-metric="tier.${name}.misses" data-value="${tier.misses}">${format.count(tier.misses)}</span> misses</span>
      </div>`;
  }).join('');
}

function renderReplicas(data) {
  const now = time(data.taken_at);
  const replicas = data.deployment.replicas;
  $('replicas').innerHTML = replicas
    .map((replica) => {
      const own = replica.replica === data.replica;
      const age = Math.max(0, (now - time(replica.taken_at)) / 1000);
      const fresh = age < 10;
      const tiers = TIERS.map(({ name, label, colour }) => {
        const tier = tierOf(replica, name);
        return `<div>${label} ${format.percent(tier.hit_rate)}<div class="track"><div class="fill" style="width: ${((tier.hit_rate ?? 0) * 100).toFixed(1)}%; background: ${colour}"></div></div></div>`;
      }).join('');
      const history = state.replicaHistory.get(replica.replica) ?? [];
      return `<div class="panel replica" data-replica="${escapeHtml(replica.replica)}">
        <h3><code title="${escapeHtml(replica.replica)}">${escapeHtml(shortId(replica.replica))}</code>
          ${own ? '<span class="tag">this replica</span>' : ''}
          <span class="pill ${fresh ? 'up' : 'degraded'}">${fresh ? 'live' : 'silent'}</span></h3>
        <div class="meta">v${escapeHtml(replica.version)} · cache ${escapeHtml(replica.mode)} · up ${format.uptime(
          (time(replica.taken_at) - time(replica.started_at)) / 1000,
        )} · snapshot ${age.toFixed(1)} s old</div>
        <div class="row">
          <div>req/s<b data-metric="replica.rps">${format.rate(state.rates.get(replica.replica))}</b></div>
          <div>p50<b>${format.seconds(replica.latency_p50_seconds)}</b></div>
          <div>p99<b>${format.seconds(replica.latency_p99_seconds)}</b></div>
        </div>
        <div class="row" style="margin-top: 6px">
          <div>requests<b data-metric="replica.requests" data-value="${replica.requests}">${format.count(replica.requests)}</b></div>
          <div>L1<b>${format.bytes(replica.l1_bytes)}</b></div>
          <div>last lag<b>${format.seconds(replica.last_invalidation_lag_seconds)}</b></div>
        </div>
        <div class="mini">${tiers}</div>
        <svg class="spark" viewBox="0 0 300 46" preserveAspectRatio="none">${sparkline([
          { values: history, colour: 'var(--accent)', fill: 'var(--accent-soft)' },
        ])}</svg>
      </div>`;
    })
    .join('');
}

function render(data) {
  const deployment = data.deployment;
  const total = deployment.total;
  updateRates(deployment.replicas);
  const known = deployment.replicas.filter((r) => state.rates.has(r.replica));
  const rps = known.length ? known.reduce((sum, r) => sum + state.rates.get(r.replica), 0) : null;
  push(state.total.rps, rps);
  push(state.total.p50, total.latency_p50_seconds ?? null);
  push(state.total.p99, total.latency_p99_seconds ?? null);
  push(state.total.lag, total.invalidation_lag_p99_seconds ?? null);
  push(state.total.l1, total.l1_bytes);

  $('prefix').textContent = `deployment ${deployment.prefix} · ${deployment.replicas.length} replica${deployment.replicas.length === 1 ? '' : 's'}`;
  const health = data.health;
  pill($('status'), { ready: 'up', degraded: 'degraded' }[health.status] ?? 'down', health.status);
  $('updated').textContent = `updated ${new Date(time(data.taken_at)).toLocaleTimeString('en-GB')} · as ${data.reader}`;
  show('replica-count', String(deployment.replicas.length), deployment.replicas.length);

  show('total.rps', format.rate(rps), rps);
  show('total.requests', format.count(total.requests), total.requests);
  show('total.last-minute', format.count(total.requests_last_minute), total.requests_last_minute);
  show('total.p50', format.seconds(total.latency_p50_seconds), total.latency_p50_seconds);
  show('total.p99', format.seconds(total.latency_p99_seconds), total.latency_p99_seconds);
  show('total.lag-p50', format.seconds(total.invalidation_lag_p50_seconds), total.invalidation_lag_p50_seconds);
  show('total.lag-p99', format.seconds(total.invalidation_lag_p99_seconds), total.invalidation_lag_p99_seconds);
  show('total.published', format.count(total.invalidations_published), total.invalidations_published);
  show('total.received', format.count(total.invalidations_received), total.invalidations_received);
  show('total.l1-bytes', format.bytes(total.l1_bytes), total.l1_bytes);
  show('total.l1-entries', format.count(total.l1_entries), total.l1_entries);
  show('total.loads', format.count(total.loads), total.loads);

  // The sparklines: milliseconds for latencies, so the scale reads well.
  const ms = (list) => list.map((v) => (v === null ? null : v * 1000));
  $('spark-rps').innerHTML = sparkline([{ values: state.total.rps, colour: 'var(--accent)', fill: 'var(--accent-soft)' }]);
  $('spark-latency').innerHTML = sparkline([
    { values: ms(state.total.p99), colour: 'var(--p99)' },
    { values: ms(state.total.p50), colour: 'var(--accent)' },
  ]);
  $('spark-lag').innerHTML = sparkline([{ values: ms(state.total.lag), colour: 'var(--l2)', fill: '#d3f4ec' }]);
  $('spark-l1').innerHTML = sparkline([{ values: state.total.l1, colour: 'var(--l1)', fill: '#dbeafb' }]);

  renderTiers(total);

  const redis = deployment.redis;
  const cache = health.checks.cache;
  const redisUp = data.redis_up && cache.status !== 'degraded';
  pill($('redis-state'), redisUp ? 'up' : 'down', redisUp ? 'up' : 'down');
  show('redis.version', redis ? redis.version : '–');
  show('redis.memory', redis ? format.bytes(redis.used_memory_bytes) : '–', redis?.used_memory_bytes);
  show('redis.keys', redis ? `${redis.keys_complete ? '' : '≥ '}${format.count(redis.keys)}` : '–', redis?.keys);
  show('redis.clients', redis ? format.count(redis.connected_clients) : '–', redis?.connected_clients);
  const database = health.checks.database;
  pill($('db-state'), database.status === 'up' ? 'up' : 'down', database.status);
  show('db.in-use', database.pool ? String(database.pool.in_use) : '–', database.pool?.in_use);
  show('db.idle', database.pool ? String(database.pool.idle) : '–', database.pool?.idle);
  show('db.max', database.pool ? String(database.pool.max) : '–', database.pool?.max);
  const topology = cache.topology
    ? ` · ${cache.topology}${cache.primaries.length > 1 ? `, ${cache.primaries.length} primaries` : ''}`
    : '';
  show('cache.subscriber', `${cache.subscriber}${cache.subscriber_node ? ` on ${cache.subscriber_node}` : ''}${topology}${cache.pending_invalidations ? ` · ${cache.pending_invalidations} pending` : ''}`);

  renderReplicas(data);
  $('signin').hidden = true;
  $('board').hidden = false;
  $('signout').hidden = false;
}

function showSignIn(message) {
  clearTimeout(state.timer);
  $('board').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message ?? '';
  pill($('status'), '', 'signed out');
}

async function poll() {
  clearTimeout(state.timer);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return showSignIn();
  try {
    const response = await fetch('/dashboard/data', {
      headers: { authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
    if (response.status === 401 || response.status === 403) {
      const body = await response.json().catch(() => null);
      sessionStorage.removeItem(TOKEN_KEY);
      return showSignIn(body?.errors?.[0]?.message ?? `refused (${response.status})`);
    }
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    render(await response.json());
  } catch (error) {
    pill($('status'), 'down', 'unreachable');
    $('updated').textContent = String(error.message ?? error);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

$('signin').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('signin-error').textContent = '';
  const operator = $('operator').value.trim();
  if (operator) {
    sessionStorage.setItem(TOKEN_KEY, operator);
    return poll();
  }
  if (!$('email').value.trim() || !$('password').value) {
    $('signin-error').textContent = 'give your e-mail and password, or an operator token';
    return;
  }
  try {
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({
        query: LOGIN,
        operationName: 'Login',
        variables: { email: $('email').value.trim(), password: $('password').value },
      }),
    });
    const body = await response.json();
    const token = body?.data?.login?.token;
    if (!token) {
      $('signin-error').textContent = body?.errors?.[0]?.message ?? `sign-in failed (${response.status})`;
      return;
    }
    $('password').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    poll();
  } catch (error) {
    $('signin-error').textContent = `sign-in failed: ${error.message ?? error}`;
  }
});

$('signout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.last.clear();
  state.rates.clear();
  showSignIn();
});

poll();
