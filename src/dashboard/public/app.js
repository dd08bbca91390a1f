/* global document, window, location, history, ResizeObserver */
// The dashboard page: polls /api/snapshot and draws it. Plain DOM (text only, never HTML from
// the server) and uPlot served from the dashboard itself: no build step, nothing from a CDN.
import uPlot from '/vendor/uPlot.esm.js';

const COLORS = { LEGACY: '#c2410c', PGBOSS: '#1d4ed8' };
const ENGINES = ['LEGACY', 'PGBOSS'];
const ENGINE_NAMES = { LEGACY: 'legacy', PGBOSS: 'pg-boss' };
const TOKEN_KEY = 'cutover-dashboard-token';

let session = { writes: false, csrfToken: null, refreshSeconds: 5, pgbossDashboardUrl: null };
let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
const charts = {};
/** Per type, the write controls: built once so a refresh never wipes what is being typed. */
const controls = new Map();

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'className') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof window.Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (selector) => document.querySelector(selector);
const fill = (tbody, rows) => tbody.replaceChildren(...rows);
const percent = (value) => `${Number(value).toLocaleString('en', { maximumFractionDigits: 2 })} %`;
const count = (value) => Number(value ?? 0).toLocaleString('en');
const time = (iso) => new Date(iso).toLocaleString('en-GB', { hour12: false });
const ago = (iso, now) => {
  const seconds = Math.max(0, Math.round((Date.parse(now) - Date.parse(iso)) / 1000));
  return seconds < 90 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
};

// ---- the token: from the printed #token= link once, then this tab's session storage ----
function takeTokenFromLink() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return;
  token = decodeURIComponent(match[1]);
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, '', location.pathname + location.search);
}

function showTokenState() {
  $('#token-state').textContent = token ? 'a token is set for this tab' : 'no token: writes will be refused';
}

function setupWrites() {
  document.body.classList.toggle('writes', session.writes);
  $('#writes').hidden = !session.writes;
  $('#mode').textContent = session.writes ? 'writes allowed' : 'read-only';
  $('#mode').className = `badge ${session.writes ? 'warn' : 'ok'}`;
  if (!session.writes) return;
  showTokenState();
  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token = $('#token').value.trim();
    $('#token').value = '';
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    showTokenState();
  });
  $('#forget-token').addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });
}

function writeStatus(text, kind) {
  const status = $('#write-status');
  status.textContent = text;
  status.className = kind;
}

/** Sends a write; the server decides (token, CSRF, same origin) and says why it refused. */
async function post(path, body, done) {
  const headers = { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken ?? '' };
  if (token) headers.authorization = `Bearer ${token}`;
  writeStatus('sending…', 'muted');
  try {
    const response = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin' });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) writeStatus(`refused (${response.status}): ${answer.error ?? response.statusText}`, 'refused');
    else writeStatus(done(answer), 'done');
  } catch (error) {
    writeStatus(`not sent: ${error.message}`, 'refused');
  }
  await refresh();
}

function controlsFor(type) {
  let entry = controls.get(type);
  if (entry) return entry;
  const input = el('input', { type: 'number', min: 0, max: 100, step: 0.01, 'aria-label': `percent of ${type} to pg-boss`, dataset: { type } });
  const set = el('button', { type: 'button', dataset: { action: 'percent', type } }, 'Set %');
  const kill = el('button', { type: 'button', className: 'danger', dataset: { action: 'kill', type } }, 'Kill switch');
  const abort = el('button', { type: 'button', className: 'danger', dataset: { action: 'abort', type } }, 'Abort plan');
  set.addEventListener('click', () =>
    post('/api/flags/percent', { type, percent: input.value }, (answer) => `${type}: ${answer.flag.basisPoints / 100} % of new jobs to pg-boss`),
  );
  kill.addEventListener('click', () => {
    const on = kill.dataset.on !== 'true';
    return post('/api/flags/kill', { type, on }, (answer) => `${type}: kill switch ${answer.flag.killSwitch ? 'ON, every new job goes to legacy' : 'released'}`);
  });
  abort.addEventListener('click', () => {
    if (!window.confirm(`Abort the rollout plan of ${type}? The kill switch goes on and its pg-boss jobs move back to legacy.`)) return undefined;
    return post('/api/plans/abort', { type }, (answer) => `plan ${answer.plan} ${answer.state}: kill switch on, jobs rolled back`);
  });
  entry = { node: el('div', { className: 'controls' }, input, set, kill, abort), input, kill, abort };
  controls.set(type, entry);
  return entry;
}

// ---- tables ----
function gatesList(plan, now) {
  if (plan.gatesError) return el('p', { className: 'gate-fail' }, `gates not measured: ${plan.gatesError}`);
  if (!plan.gates) return null;
  return el(
    'div',
    {},
    el('span', { className: `gate-${plan.gates.status}` }, `gates ${plan.gates.status}`),
    el('span', { className: 'muted' }, ` (measured ${ago(plan.gates.measuredAt, now)})`),
    el('ul', { className: 'gates' }, plan.gates.results.map((gate) => el('li', { className: `gate-${gate.status}`, dataset: { gate: gate.gate } }, `${gate.gate}: ${gate.status} — ${gate.detail}`))),
  );
}

function planCell(plan, now) {
  if (!plan) return el('td', { className: 'muted' }, '—');
  return el(
    'td',
    { dataset: { plan: plan.name } },
    el('span', { className: 'plan-state' }, `${plan.name}: ${plan.state}`),
    ` step ${plan.step}/${plan.steps}, ${plan.does}`,
    plan.controlled ? '' : el('div', { className: 'muted' }, 'no controller attached: it moves only by hand (cutover plan run)'),
    plan.reason ? el('div', { className: 'muted' }, plan.reason) : null,
    gatesList(plan, now),
  );
}

function renderRouting(snapshot) {
  fill(
    $('#routing tbody'),
    snapshot.types.map((row) => {
      const flag = row.flag;
      const cells = [
        el('td', {}, el('code', {}, row.jobType)),
        el('td', { className: 'num', dataset: { cell: `${row.jobType}/route` } }, row.route ? percent(row.route.percent) : '—'),
        el('td', { className: 'muted' }, row.route ? row.route.decidedBy : 'default for types without a flag of their own'),
        el('td', { className: 'num', dataset: { cell: `${row.jobType}/flag` } }, flag ? `${percent(flag.percent)}${flag.finalized ? ' (finalized)' : ''}` : 'none'),
        el('td', { dataset: { cell: `${row.jobType}/kill` } }, el('span', { className: `pill ${flag?.killSwitch ? 'on' : 'off'}` }, flag?.killSwitch ? 'ON' : 'off')),
        el('td', {}, flag ? (flag.fallbackToLegacy ? 'on' : 'off') : '—'),
        planCell(row.plan, snapshot.at),
      ];
      if (session.writes) {
        const entry = controlsFor(row.jobType);
        entry.kill.dataset.on = String(Boolean(flag?.killSwitch));
        entry.kill.textContent = flag?.killSwitch ? 'Release kill switch' : 'Kill switch';
        entry.abort.hidden = !row.plan;
        cells.push(el('td', { className: 'write-only' }, entry.node));
      }
      return el('tr', { dataset: { type: row.jobType } }, cells);
    }),
  );
}

function renderCounts(snapshot) {
  const minutes = Math.round(snapshot.window.seconds / 60);
  $('#completed-head').textContent = `completed (${minutes} min)`;
  $('#failed-head').textContent = `failed (${minutes} min)`;
  const types = snapshot.types.map((row) => row.jobType).filter((type) => type !== '*');
  for (const row of snapshot.live) if (!types.includes(row.type)) types.push(row.type);
  const rows = [];
  for (const type of types) {
    for (const engine of ENGINES) {
      const live = snapshot.live.find((row) => row.type === type && row.engine === engine) ?? { waiting: 0, running: 0 };
      const done = snapshot.activity.totals.find((row) => row.type === type && row.engine === engine) ?? { completed: 0, failed: 0 };
      const dlq = snapshot.queues.find((queue) => queue.type === type && queue.deadLetter);
      const cell = (name, value, title) => el('td', { className: 'num', dataset: { cell: `${type}/${engine}/${name}` }, title }, value);
      rows.push(
        el(
          'tr',
          { className: engine === 'LEGACY' ? 'engine-first' : '' },
          el('td', {}, engine === 'LEGACY' ? el('code', {}, type) : ''),
          el('td', { className: `engine-${engine}` }, ENGINE_NAMES[engine]),
          cell('waiting', count(live.waiting)),
          cell('running', count(live.running)),
          cell('completed', count(done.completed)),
          cell('failed', count(done.failed), 'failed for good: a legacy attempt that was retried is not counted'),
          engine === 'PGBOSS'
            ? cell('dead-lettered', dlq ? count(dlq.created + dlq.retry) : '0', 'waiting in the dead letter queue (cutover dlq list)')
            : cell('dead-lettered', '—', 'legacy has no dead letter queue: its final failures are its failed rows'),
        ),
      );
    }
  }
  fill($('#counts tbody'), rows);
}

function renderQueues(snapshot) {
  const link = session.pgbossDashboardUrl;
  fill(
    $('#queues tbody'),
    snapshot.queues.map((queue) =>
      el(
        'tr',
        {},
        el('td', {}, link ? el('a', { href: `${link}/queues/${encodeURIComponent(queue.queue)}`, target: '_blank', rel: 'noopener noreferrer' }, queue.queue) : el('code', {}, queue.queue)),
        el('td', { className: 'num' }, count(queue.created)),
        el('td', { className: 'num' }, count(queue.retry)),
        el('td', { className: 'num' }, count(queue.active)),
      ),
    ),
  );
  const note = $('#pgboss-link');
  if (!snapshot.pgbossInstalled) note.textContent = 'pg-boss is not installed in this database yet: the first pg-boss worker installs it.';
  else if (link) note.replaceChildren('Per-job detail in ', el('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, "pg-boss's own dashboard"), '.');
  else note.replaceChildren('Per-job detail: run ', el('code', {}, 'npx pg-boss-dashboard'), ' (@pg-boss/dashboard) on this database and pass its address with ', el('code', {}, '--pgboss-dashboard <url>'), '.');
}

function renderReconcile(snapshot) {
  const last = snapshot.reconcile;
  const box = $('#reconcile');
  if (!last) {
    box.replaceChildren('Never run here: ', el('code', {}, 'cutover reconcile'), ' compares both systems.');
    return;
  }
  box.className = '';
  const classes = Object.entries(last.byClass);
  box.replaceChildren(
    ...[
    el('p', {}, el('span', { className: `badge ${last.findings ? 'bad' : 'ok'}`, dataset: { findings: last.findings } }, `${last.findings} finding${last.findings === 1 ? '' : 's'}`), ` at ${time(last.at)} (${ago(last.at, snapshot.at)})`),
    el('table', {}, el('tbody', {}, classes.map(([name, n]) => el('tr', {}, el('td', {}, name), el('td', { className: 'num', dataset: { finding: name } }, count(n)))))),
    last.fixed ? el('p', { className: 'muted' }, `fixed by that run: ${Object.entries(last.fixed).map(([name, n]) => `${name} ${n}`).join(', ')}`) : null,
    ].filter(Boolean),
  );
}

function renderEvents(snapshot) {
  fill(
    $('#events tbody'),
    snapshot.events.map((event) =>
      el(
        'tr',
        { dataset: { event: event.id, actor: event.actor, action: event.action } },
        el('td', {}, time(event.at)),
        el('td', {}, event.actor),
        el('td', {}, el('code', {}, event.action)),
        el('td', {}, event.jobType ?? '—'),
        el('td', {}, event.change),
        el('td', { className: 'muted' }, event.reason ?? ''),
      ),
    ),
  );
}

// ---- charts ----
function minutesOf(snapshot) {
  const last = Math.floor(Date.parse(snapshot.at) / 60_000) * 60;
  const n = Math.round(snapshot.window.seconds / 60);
  return Array.from({ length: n }, (_, i) => last - (n - 1 - i) * 60);
}

function seriesOf(snapshot, xs, engine, value) {
  const byMinute = new Map(snapshot.activity.minutes.filter((m) => m.engine === engine).map((m) => [m.minute, m]));
  return xs.map((x) => (byMinute.has(x) ? value(byMinute.get(x)) : value(null)));
}

function drawChart(id, series, data, yLabel) {
  const container = document.getElementById(id);
  // What the chart holds, for anyone checking it draws something (tests, a quick look in devtools).
  container.dataset.points = String(data.slice(1).reduce((n, values) => n + values.filter((v) => v !== null && v !== 0).length, 0));
  if (charts[id]) {
    charts[id].setData(data);
    return;
  }
  const options = {
    width: Math.max(280, container.clientWidth),
    height: 220,
    series: [{}, ...series],
    // From zero: a failure rate of 16 % drawn from 15 % would look like a disaster.
    scales: { y: { range: (_chart, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [{}, { label: yLabel, size: 55 }],
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
  charts[id] = new uPlot(options, data, container);
  new ResizeObserver(() => charts[id].setSize({ width: Math.max(280, container.clientWidth), height: 220 })).observe(container);
}

function renderCharts(snapshot) {
  const xs = minutesOf(snapshot);
  const line = (engine, label, dash) => ({ label, stroke: COLORS[engine], width: 2, dash, spanGaps: false, points: { show: true, size: 4 } });
  // Side by side, one bar per engine and minute: equal counts on lines would hide one another.
  const bars = (engine, align) => ({ label: ENGINE_NAMES[engine], stroke: COLORS[engine], fill: COLORS[engine], width: 0, paths: uPlot.paths.bars({ size: [0.4, 12], align }), points: { show: false } });
  drawChart(
    'chart-completions',
    [bars('LEGACY', -1), bars('PGBOSS', 1)],
    [xs, ...ENGINES.map((engine) => seriesOf(snapshot, xs, engine, (m) => (m ? m.completed : 0)))],
    'jobs',
  );
  drawChart(
    'chart-failures',
    ENGINES.map((engine) => line(engine, ENGINE_NAMES[engine])),
    [xs, ...ENGINES.map((engine) => seriesOf(snapshot, xs, engine, (m) => (m && m.completed + m.failed ? (100 * m.failed) / (m.completed + m.failed) : null)))],
    '%',
  );
  drawChart(
    'chart-latency',
    ENGINES.flatMap((engine) => [line(engine, `${ENGINE_NAMES[engine]} p50`), line(engine, `${ENGINE_NAMES[engine]} p95`, [6, 4])]),
    [xs, ...ENGINES.flatMap((engine) => [seriesOf(snapshot, xs, engine, (m) => m?.p50 ?? null), seriesOf(snapshot, xs, engine, (m) => m?.p95 ?? null)])],
    'seconds',
  );
}

// ---- the loop ----
function render(snapshot) {
  $('#updated').textContent = `updated ${time(snapshot.at)} · read in ${Math.round(snapshot.seconds * 1000)} ms · every ${session.refreshSeconds} s`;
  const env = snapshot.envOverride ?? {};
  const overridden = env.usePgboss === false ? 'USE_PGBOSS=false' : env.percent !== undefined ? `PGBOSS_ROLLOUT_PERCENTAGE=${env.percent}` : '';
  $('#env').hidden = !overridden;
  $('#env').textContent = overridden ? `environment override of this process: ${overridden}` : '';
  renderRouting(snapshot);
  renderCounts(snapshot);
  renderCharts(snapshot);
  renderQueues(snapshot);
  renderReconcile(snapshot);
  renderEvents(snapshot);
}

let timer;
async function refresh() {
  window.clearTimeout(timer);
  try {
    const response = await fetch('/api/snapshot', { credentials: 'same-origin' });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ?? response.statusText);
    render(body);
    $('#error').hidden = true;
    document.body.dataset.loaded = 'true';
  } catch (error) {
    $('#error').hidden = false;
    $('#error').textContent = `refresh failed, retrying: ${error.message}`;
  } finally {
    timer = window.setTimeout(refresh, session.refreshSeconds * 1000);
  }
}

async function start() {
  takeTokenFromLink();
  try {
    const response = await fetch('/api/session', { credentials: 'same-origin' });
    if (!response.ok) throw new Error(response.statusText);
    session = await response.json();
  } catch (error) {
    $('#error').hidden = false;
    $('#error').textContent = `cannot reach the dashboard: ${error.message}; reload to try again`;
    return;
  }
  setupWrites();
  window.addEventListener('hashchange', () => {
    takeTokenFromLink();
    if (session.writes) showTokenState();
  });
  await refresh();
}

void start();
