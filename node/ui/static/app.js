// proofmesh dashboard: hash routes (#/network, #/tasks, #/task/<id>,
// #/submit, #/audit) over the node's HTTP API.

import * as api from './api.js';
import { el, clear, on, shortID, idCell, ago, duration, localTime, badge, table, errorBox } from './dom.js';
import { statusChart, latencyChart } from './charts.js';

const POLL_MS = 2000;
const HISTORY = 180; // samples of the peer chart: 6 minutes at 2 s
const STATUSES = ['online', 'stale', 'offline'];
const STATES = ['pending', 'assigned', 'running', 'proving', 'verifying', 'accepted', 'failed', 'canceled'];
const TERMINAL = new Set(['accepted', 'failed', 'canceled']);

const $ = (id) => document.getElementById(id);

// What the page knows, refreshed by the poller.
const state = {
  node: null,
  peers: [],
  history: [], // {t, counts}
  types: null, // id -> task type
  pollErr: null,
  listeners: new Set(),
  timer: 0,
  started: false,
};

let stopView = () => {};

// CSP violations and unexpected errors reach the console, where the
// browser tests look for them.
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
});

window.addEventListener('DOMContentLoaded', start);

function start() {
  api.takeTokenFromFragment();
  api.onRefused(refused);
  on($('login-form'), 'submit', (e) => {
    e.preventDefault();
    // An empty token is for a loopback node that runs without one.
    const t = $('login-token').value.trim();
    if (t) api.setToken(t); else api.forgetToken();
    $('login-token').value = '';
    $('login').hidden = true;
    boot();
  });
  on($('logout'), 'click', () => {
    api.forgetToken();
    showLogin('');
  });
  on(window, 'hashchange', route);
  // Without a token, ask for one rather than send an unauthenticated
  // request that the node would audit as a failed authentication.
  if (!api.token()) {
    showLogin('this node\'s API needs a token: open the link `proofmesh testnet` prints, or paste the token below');
    return;
  }
  boot();
}

// boot checks the token against GET /api/v1/node before any view.
async function boot() {
  stopAll();
  try {
    state.node = await api.getJSON('/api/v1/node');
  } catch (err) {
    if (err.status !== 401) showLogin('the node did not answer: ' + err.message);
    return; // 401: refused() shows the form
  }
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = !api.token();
  $('whoami').textContent = 'node ' + shortID(state.node.id) + ' · ' + state.node.network;
  $('whoami').title = state.node.id;
  state.started = true;
  poll();
  route();
}

function stopAll() {
  state.started = false;
  clearTimeout(state.timer);
  stopView();
  stopView = () => {};
}

function refused(err) {
  const had = api.token() !== '';
  stopAll();
  showLogin(had ? 'the API refused the token: ' + err.message : 'this node\'s API needs a token: ' + err.message);
}

function showLogin(why) {
  stopAll();
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-why').textContent = why;
  $('login-why').hidden = !why;
  $('login-token').focus();
}

// poll refreshes this node and the peer table every POLL_MS, whatever
// the view, so that the peer chart has a history.
async function poll() {
  if (!state.started) return;
  try {
    const [node, peers] = await Promise.all([api.getJSON('/api/v1/node'), api.getJSON('/api/v1/peers')]);
    state.node = node;
    state.peers = peers || [];
    const counts = {};
    for (const p of state.peers) counts[p.status] = (counts[p.status] || 0) + 1;
    state.history.push({ t: Date.now(), counts });
    if (state.history.length > HISTORY) state.history.shift();
    state.pollErr = null;
  } catch (err) {
    if (err.status === 401) return;
    state.pollErr = err;
  }
  state.listeners.forEach((f) => f());
  if (state.started) state.timer = setTimeout(poll, POLL_MS);
}

async function taskTypes() {
  if (!state.types) {
    const list = await api.getJSON('/api/v1/task-types');
    state.types = Object.fromEntries((list || []).map((t) => [t.id, t]));
  }
  return state.types;
}

function route() {
  if (!state.started) return;
  stopView();
  stopView = () => {};
  const main = clear($('main'));
  const hash = location.hash || '#/network';
  const [, view, arg] = /^#\/([a-z]*)\/?(.*)$/.exec(hash) || [null, 'network', ''];
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === view || (view === 'task' && a.dataset.view === 'tasks'));
  const views = { network: networkView, tasks: tasksView, task: taskView, submit: submitView, audit: auditView };
  const v = views[view] || networkView;
  const ctl = new AbortController();
  const stop = v(main, decodeURIComponent(arg), ctl.signal);
  stopView = () => {
    ctl.abort();
    if (typeof stop === 'function') stop();
  };
}

// ---- Network

function networkView(main) {
  const box = el('div', {});
  main.append(el('h1', {}, 'Network'), box);
  const render = () => renderNetwork(box);
  render();
  state.listeners.add(render);
  return () => state.listeners.delete(render);
}

function renderNetwork(box) {
  const n = state.node;
  clear(box);
  if (state.pollErr) box.append(errorBox(state.pollErr));
  if (!n) return;
  const counts = {};
  for (const p of state.peers) counts[p.status] = (counts[p.status] || 0) + 1;
  box.append(el('p', { class: 'counts', id: 'peer-counts' },
    ['online', 'stale', 'offline', 'deleted', 'incompatible'].map((s) => el('span', { class: 'count' }, badge(s), ' ', el('b', {}, String(counts[s] || 0))))));

  const problems = Array.isArray(n.problems) ? n.problems : [];
  if (problems.length > 0) {
    box.append(el('div', { class: 'problems', id: 'problems' },
      el('h3', {}, 'This node has problems'),
      el('ul', {}, problems.map((p) => el('li', {},
        el('b', { class: 'mono' }, String(p.code || '')), ': ', String(p.message || ''),
        p.since ? el('span', { class: 'muted' }, ' (since ' + localTime(p.since) + ')') : null)))));
  }

  box.append(el('div', { class: 'cols' },
    el('section', { class: 'card' },
      el('h3', {}, 'This node'),
      el('dl', { class: 'kv' },
        el('dt', {}, 'id'), el('dd', { class: 'mono', id: 'node-id' }, n.id),
        el('dt', {}, 'network'), el('dd', {}, n.network),
        el('dt', {}, 'version'), el('dd', {}, n.version),
        el('dt', {}, 'reachability'), el('dd', { id: 'node-reachability' }, n.reachability || 'unknown'),
        el('dt', {}, 'type'), el('dd', {}, n.node_type || ''),
        el('dt', {}, 'serves'), el('dd', {}, (n.task_types || []).join(', ')),
        el('dt', {}, 'heartbeat'), el('dd', {}, duration(n.heartbeat_interval_ms || 0)),
        el('dt', {}, 'started'), el('dd', {}, localTime(n.started), ' (', ago(n.started), ')'),
        el('dt', {}, 'addresses'), el('dd', {}, el('ul', { class: 'addrs mono' }, (n.addrs || []).map((a) => el('li', {}, a)))))),
    el('section', { class: 'card' }, statusChart(state.history, STATUSES))));

  const now = Date.now();
  const peers = [...state.peers].sort((a, b) => a.status.localeCompare(b.status) || a.id.localeCompare(b.id));
  const rows = peers.map((p) => el('tr', { 'data-peer': p.id },
    el('td', {}, idCell(p.id)),
    el('td', {}, badge(p.status)),
    el('td', {}, p.node_type || ''),
    el('td', {}, p.region || ''),
    el('td', {}, capsText(p.capabilities)),
    el('td', { title: p.protocol || '' }, p.version || ''),
    el('td', {}, p.conn || ''),
    el('td', { class: 'num' }, Math.round((p.load || 0) * 100) + ' %'),
    el('td', { class: 'num' }, String(p.verified_results || 0), ' / ', String(p.rejected_results || 0)),
    el('td', { title: localTime(p.last_seen) }, ago(p.last_seen, now))));
  box.append(el('h2', {}, 'Peers (', String(peers.length), ')'),
    peers.length === 0 ? el('p', { class: 'muted' }, 'no peer yet') :
      table(['peer', 'status', 'type', 'region', 'capabilities', 'version', 'connection', 'load', 'verified / rejected', 'last seen'], rows, { id: 'peers', class: 'grid' }));
}

function capsText(c) {
  if (!c) return '';
  const out = [];
  for (const [k, v] of Object.entries(c)) {
    if (k === 'node_type' || k === 'region') continue;
    if (k === 'cpu_cores') out.push(v + ' cores');
    else if (k === 'memory_gb') out.push(v + ' GB');
    else if (k === 'bandwidth_mbps') out.push(v + ' Mbit/s');
    else if (k === 'gpu_available') { if (v) out.push('GPU'); }
    else out.push(k + '=' + (typeof v === 'object' ? JSON.stringify(v) : v));
  }
  return out.join(' · ');
}

// ---- Tasks

function tasksView(main) {
  const filters = { type: '', state: '', after: '' };
  const typeSel = el('select', { id: 'filter-type' }, el('option', { value: '' }, 'all types'));
  const stateSel = el('select', { id: 'filter-state' }, el('option', { value: '' }, 'all states'), STATES.map((s) => el('option', { value: s }, s)));
  const newer = el('button', { type: 'button', hidden: true }, '← newest');
  const older = el('button', { type: 'button', hidden: true }, 'older →');
  const chartBox = el('div', {});
  const list = el('div', {});
  main.append(el('h1', {}, 'Tasks'),
    el('p', { class: 'filters' }, el('label', {}, 'type ', typeSel), ' ', el('label', {}, 'state ', stateSel), ' ', newer, older),
    chartBox, list);
  taskTypes().then((types) => {
    for (const id of Object.keys(types).sort()) typeSel.append(el('option', { value: id }, id));
  }).catch((err) => list.prepend(errorBox(err)));

  let timer = 0, next = '', live = true;
  const load = async () => {
    clearTimeout(timer);
    try {
      const resp = await api.request('GET', '/api/v1/tasks' + api.query({ type: filters.type, state: filters.state, limit: 50, after: filters.after }));
      next = resp.headers.get('X-Next-After') || '';
      renderTasks(list, chartBox, (await resp.json()) || []);
    } catch (err) {
      if (err.status === 401) return;
      clear(list).append(errorBox(err));
    }
    newer.hidden = !filters.after;
    older.hidden = !next;
    // Only the first page follows new tasks.
    if (live && !filters.after) timer = setTimeout(load, POLL_MS);
  };
  const refilter = () => { filters.type = typeSel.value; filters.state = stateSel.value; filters.after = ''; load(); };
  on(typeSel, 'change', refilter);
  on(stateSel, 'change', refilter);
  on(older, 'click', () => { filters.after = next; load(); });
  on(newer, 'click', () => { filters.after = ''; load(); });
  load();
  return () => { live = false; clearTimeout(timer); };
}

// latencyOf is the milliseconds from a task's creation to its final
// state, or undefined while it runs.
function latencyOf(t) {
  if (!TERMINAL.has(t.state) || !t.timeline || t.timeline.length === 0) return undefined;
  const end = new Date(t.timeline[t.timeline.length - 1].time).getTime();
  const ms = end - new Date(t.created).getTime();
  return isFinite(ms) && ms >= 0 ? ms : undefined;
}

function renderTasks(list, chartBox, tasks) {
  clear(chartBox).append(latencyChart(tasks.filter((t) => t.state !== 'canceled').map((t) => ({ id: t.task_id, type: t.type, state: t.state, ms: latencyOf(t) }))));
  clear(list);
  if (tasks.length === 0) {
    list.append(el('p', { class: 'muted' }, 'no task matches'));
    return;
  }
  const now = Date.now();
  const rows = tasks.map((t) => el('tr', { 'data-task': t.task_id },
    el('td', {}, idCell(t.task_id, '#/task/' + encodeURIComponent(t.task_id))),
    el('td', {}, t.type),
    el('td', {}, badge(t.state)),
    el('td', { title: localTime(t.created) }, ago(t.created, now)),
    el('td', {}, latencyOf(t) !== undefined ? duration(latencyOf(t)) : ''),
    el('td', {}, (t.executors || []).map((e) => [idCell(e), ' '])),
    el('td', { class: 'reason' }, t.reason || '')));
  list.append(table(['task', 'type', 'state', 'age', 'took', 'executors', 'reason'], rows, { id: 'tasks', class: 'grid' }));
}

// ---- One task

function taskView(main, id, signal) {
  const head = el('div', {});
  const timeline = el('ol', { class: 'timeline', id: 'timeline' });
  const result = el('div', { id: 'result' });
  main.append(el('h1', {}, 'Task ', el('span', { class: 'mono small' }, id)), head,
    el('h2', {}, 'Timeline'), timeline, result);
  api.getJSON('/api/v1/tasks/' + encodeURIComponent(id)).then((t) => {
    if (signal.aborted) return;
    renderTaskHead(head, t);
    if (TERMINAL.has(t.state)) return; // the stream's end event renders it
    head.append(el('p', {}, el('button', { type: 'button', id: 'cancel' }, 'cancel task')));
    on(head.querySelector('#cancel'), 'click', async (e) => {
      e.target.disabled = true;
      try {
        await api.request('DELETE', '/api/v1/tasks/' + encodeURIComponent(id));
      } catch (err) {
        head.append(errorBox(err));
      }
    });
  }).catch((err) => { if (err.status !== 401) head.append(errorBox(err)); });
  followTask(id, timeline, result, signal, (t) => {
    const c = head.querySelector('#cancel');
    if (c) c.remove();
    renderTaskHead(clear(head), t);
  });
}

function renderTaskHead(head, t) {
  clear(head).append(el('dl', { class: 'kv' },
    el('dt', {}, 'type'), el('dd', {}, t.type),
    el('dt', {}, 'state'), el('dd', {}, badge(t.state)),
    el('dt', {}, 'submitted by'), el('dd', {}, idCell(t.submitter), t.origin ? ' (this node)' : ''),
    el('dt', {}, 'created'), el('dd', {}, localTime(t.created)),
    el('dt', {}, 'deadline'), el('dd', {}, localTime(t.deadline)),
    el('dt', {}, 'replicas'), el('dd', {}, String(t.replicas)),
    el('dt', {}, 'candidates'), el('dd', {}, (t.candidates || []).map((c) => [idCell(c), ' ']))));
}

// followTask streams a task's timeline into ol and, at its end, renders
// the result into result; onEnd gets the final task. A stream that ends
// before the task does (the node restarted, a proxy cut it) is opened
// again: the node replays the timeline, and the entries already shown are
// skipped.
function followTask(id, ol, result, signal, onEnd) {
  const types = taskTypes().catch(() => ({}));
  const note = el('p', { class: 'muted' });
  // What the task waits for, when every candidate at work is listed
  // offline here (the stream's "waiting" event; empty when it no longer
  // waits).
  const waiting = el('p', { class: 'trust', id: 'waiting' });
  let shown = 0, ended = false;
  const open = () => {
    let seen = 0;
    return api.events('/api/v1/tasks/' + encodeURIComponent(id) + '/events', (name, data) => {
      note.remove();
      if (name === 'state') {
        if (seen++ < shown) return;
        shown++;
        ol.append(el('li', { 'data-state': data.state },
          el('time', { title: localTime(data.time) }, new Date(data.time).toLocaleTimeString()), ' ',
          badge(data.state), ' ',
          data.peer ? idCell(data.peer) : '', ' ',
          data.detail ? el('span', { class: 'detail' }, data.detail) : ''));
      } else if (name === 'waiting') {
        if (data.detail) {
          waiting.textContent = '⏳ waiting: ' + data.detail;
          ol.after(waiting);
        } else {
          waiting.remove();
        }
      } else if (name === 'end') {
        ended = true;
        waiting.remove();
        types.then((ts) => {
          if (signal.aborted) return;
          renderResult(result, data, ts[data.type]);
          if (onEnd) onEnd(data);
        });
      }
    }, signal);
  };
  const again = (why) => {
    if (ended || signal.aborted) return;
    note.textContent = why + '; following it again…';
    ol.after(note);
    setTimeout(follow, 2000);
  };
  const follow = () => open().then(() => again('the event stream ended early'), (err) => {
    if (err.status === 401) return;
    if (err.status >= 400 && err.status < 500 && err.status !== 429) {
      result.append(errorBox(err));
      return;
    }
    again(err.message);
  });
  follow();
}

// trustLine says what an accepted result rests on.
function trustLine(t, tt) {
  const kind = tt && tt.verification ? tt.verification.kind : '';
  if (kind === 'groth16') return el('p', { class: 'trust ok', id: 'trust' }, '✓ Groth16 proof verified', el('span', { class: 'muted' }, ' — ' + (t.verification || '')));
  const k = (t.settled || []).length;
  return el('p', { class: 'trust ok', id: 'trust' }, '✓ ' + k + ' replicas agree', el('span', { class: 'muted' }, ' — ' + (t.verification || '')));
}

function renderResult(box, t, tt) {
  clear(box).append(el('h2', {}, 'Result'));
  const path = '/api/v1/tasks/' + encodeURIComponent(t.task_id);
  if (t.state === 'accepted') {
    box.append(trustLine(t, tt));
    box.append(outputBlock(t, tt));
    if (t.files && t.files.length > 0) {
      box.append(el('h3', {}, 'Output files'), el('ul', { class: 'files' }, t.files.map((f) => {
        const b = el('button', { type: 'button', class: 'link' }, 'download');
        on(b, 'click', () => {
          const rel = String(f.path).replace(/^\/+/, '').split('/').map(encodeURIComponent).join('/');
          api.download(path + '/files/' + rel, f.path.split('/').pop()).catch((err) => b.after(errorBox(err)));
        });
        return el('li', {}, el('span', { class: 'mono' }, f.path), ' ', el('span', { class: 'muted' }, f.size + ' bytes, sha256 ' + String(f.hash).slice(0, 12) + '…'), ' ', b);
      })));
    }
    bundleButtons(box, path, t, ' (the signed task, results and proof, for `proofmesh verify` offline)');
  } else {
    box.append(el('p', { class: 'trust bad' }, badge(t.state), ' ', t.reason || ''));
    if (t.failure) {
      const f = t.failure;
      box.append(el('dl', { class: 'kv' },
        el('dt', {}, 'exit code'), el('dd', {}, String(f.exit_code ?? '')),
        el('dt', {}, 'trap'), el('dd', {}, String(f.trap || '')),
        el('dt', {}, 'stderr'), el('dd', {}, el('pre', {}, decodeText(f.stderr) ?? ''))));
      // A failure its executors confirmed has a bundle: their equal
      // signed reports.
      if (t.settled && t.settled.length > 0) {
        bundleButtons(box, path, t, ' (the signed task and the failure reports that confirmed it, for `proofmesh verify` offline)');
      }
    }
  }
  if (t.results && t.results.length > 0) {
    box.append(el('h3', {}, 'What each executor reported'), table(['executor', 'outcome', 'exit', 'trap', 'wall', 'fuel', 'settled', 'stderr'],
      t.results.map((r) => el('tr', {},
        el('td', {}, idCell(r.executor)), el('td', { class: 'mono' }, shortID(r.outcome)),
        el('td', {}, String(r.exit_code)), el('td', {}, r.trap || ''), el('td', {}, duration(r.wall_ms || 0)),
        el('td', { class: 'num' }, String(r.fuel_used || 0)), el('td', {}, r.settled ? '✓' : ''),
        el('td', {}, r.stderr ? el('pre', { class: 'stderr' }, decodeText(r.stderr) ?? '(binary)') : ''))), { class: 'grid' }));
  }
}

// bundleButtons appends a task's "download bundle" and "verify" buttons
// and the place of the verify report to box.
function bundleButtons(box, path, t, what) {
  const dl = el('button', { type: 'button', id: 'bundle' }, 'download bundle');
  const verify = el('button', { type: 'button', id: 'verify' }, 'verify');
  const report = el('div', { id: 'verify-report' });
  on(dl, 'click', () => api.download(path + '/bundle', 'bundle-' + t.task_id.slice(0, 12) + '.json').catch((err) => report.append(errorBox(err))));
  on(verify, 'click', async () => {
    verify.disabled = true;
    clear(report).append(el('p', { class: 'muted' }, 'verifying…'));
    try {
      const bundle = await (await api.request('GET', path + '/bundle')).text();
      const resp = await fetchVerify(bundle);
      renderReport(report, resp);
    } catch (err) {
      clear(report).append(errorBox(err));
    }
    verify.disabled = false;
  });
  box.append(el('p', {}, dl, ' ', verify, el('span', { class: 'muted' }, what)), report);
}

async function fetchVerify(bundle) {
  try {
    return await (await api.request('POST', '/api/v1/proofs/verify', bundle, 'application/json')).json();
  } catch (err) {
    // 422 carries the report of an invalid bundle.
    if (err.status === 422) return { valid: false, error: err.message, checks: [] };
    throw err;
  }
}

function renderReport(box, rep) {
  clear(box).append(el('p', { class: 'trust ' + (rep.valid ? 'ok' : 'bad'), id: 'verify-verdict' },
    rep.valid ? (rep.failure ? '✓ bundle valid: a confirmed failure' : '✓ bundle valid') : '✗ bundle invalid', rep.error ? ': ' + rep.error : ''),
  rep.trust ? el('p', {}, rep.trust) : '',
  el('ul', { class: 'checks' }, (rep.checks || []).map((c) => el('li', {}, c))));
}

// decodeBase64 returns the bytes of a base64 string.
function decodeBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// decodeText returns base64 bytes as text when they are printable UTF-8,
// else null.
function decodeText(b64) {
  if (!b64) return '';
  let bytes;
  try { bytes = decodeBase64(b64); } catch (_) { return null; }
  return printable(bytes);
}

function printable(bytes) {
  let text;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch (_) { return null; }
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u0008\u000b\u000e-\u001f\u007f]/.test(text) ? null : text;
}

function outputBlock(t, tt) {
  const kind = tt && tt.verification ? tt.verification.kind : '';
  if (t.output === undefined || t.output === null) return el('p', { class: 'muted' }, 'no output');
  if (kind === 'groth16' && typeof t.output !== 'string') {
    return el('div', {}, el('h3', {}, 'Output'), el('pre', { id: 'output' }, JSON.stringify(t.output, null, 2)));
  }
  let bytes;
  try { bytes = decodeBase64(String(t.output)); } catch (_) { bytes = new TextEncoder().encode(JSON.stringify(t.output)); }
  const text = printable(bytes);
  if (text !== null) return el('div', {}, el('h3', {}, 'Output (', String(bytes.length), ' bytes)'), el('pre', { id: 'output' }, text));
  const b = el('button', { type: 'button', id: 'output-download' }, 'download output');
  on(b, 'click', () => api.saveBlob(new Blob([bytes], { type: 'application/octet-stream' }), 'output-' + t.task_id.slice(0, 12) + '.bin'));
  return el('div', {}, el('h3', {}, 'Output'), el('p', {}, 'binary, ' + bytes.length + ' bytes ', b));
}

// ---- Submit

const EXAMPLES = {
  'mimc.chain.v1': '{"x": "42"}',
  'mlp.infer.v1': '{"x": [12, -7, 33, 0, 5, -128, 127, 9, -1, 44, -60, 3, 8, -19, 25, 70]}',
};

function submitView(main, arg, signal) {
  const typeSel = el('select', { id: 'submit-type', name: 'type' });
  const form = el('form', { id: 'submit-form', autocomplete: 'off' });
  const progress = el('div', { id: 'progress' });
  main.append(el('h1', {}, 'Submit a task'), el('p', {}, el('label', {}, 'type ', typeSel)), form, progress);
  taskTypes().then((types) => {
    const ids = Object.keys(types).sort();
    for (const id of ids) typeSel.append(el('option', { value: id }, id));
    if (arg && types[arg]) typeSel.value = arg;
    const build = () => buildForm(form, types[typeSel.value], progress, signal);
    on(typeSel, 'change', build);
    build();
  }).catch((err) => { if (err.status !== 401) main.append(errorBox(err)); });
}

function field(label, input, hint) {
  return el('p', { class: 'field' }, el('label', {}, el('span', { class: 'lbl' }, label), input), hint ? el('span', { class: 'muted hint' }, hint) : '');
}

function buildForm(form, tt, progress, signal) {
  clear(form);
  const isJob = !tt.module_hash; // wasm.exec.v1: the module comes with the task
  const replicas = el('input', { type: 'number', name: 'replicas', min: 1, max: tt.max_replicas, value: tt.default_replicas });
  const verify = tt.verification || {};
  form.append(el('p', { class: 'muted' }, verify.kind === 'groth16'
    ? 'Proven with Groth16 (circuit ' + verify.circuit + '): any node verifies the proof before it accepts the result.'
    : 'Checked by replicas: ' + (verify.quorum || '?') + ' agreeing results settle it.'));
  let read;
  if (!isJob) {
    const input = el('textarea', { name: 'input', rows: 3, cols: 70, id: 'submit-input' });
    input.value = EXAMPLES[tt.id] || '{}';
    form.append(field('input (JSON)', input));
    read = async () => {
      let parsed;
      try { parsed = JSON.parse(input.value); } catch (e) { throw new Error('the input is not JSON: ' + e.message); }
      return { type: tt.id, input: parsed };
    };
  } else {
    const module = el('input', { type: 'file', name: 'module', accept: '.wasm,application/wasm', id: 'submit-module', required: true });
    const input = el('textarea', { name: 'input', rows: 3, cols: 70, id: 'submit-input' });
    const inputFile = el('input', { type: 'file', name: 'input-file', id: 'submit-input-file' });
    const args = el('textarea', { name: 'args', rows: 2, cols: 40 });
    const env = el('textarea', { name: 'env', rows: 2, cols: 40 });
    const outputs = el('textarea', { name: 'outputs', rows: 2, cols: 40 });
    form.append(field('module (.wasm)', module),
      field('input (text, its stdin)', input), field('or input file', inputFile, 'replaces the text'),
      field('arguments', args, 'one per line'), field('environment', env, 'KEY=VALUE, one per line'),
      field('output files', outputs, 'paths under /out, one per line'));
    read = async () => {
      if (!module.files[0]) throw new Error('choose a .wasm module');
      const mod = new Uint8Array(await module.files[0].arrayBuffer());
      const inBytes = inputFile.files[0] ? new Uint8Array(await inputFile.files[0].arrayBuffer()) : new TextEncoder().encode(input.value);
      const req = { type: tt.id, input: toBase64(inBytes), module: toBase64(mod) };
      const lines = (ta) => ta.value.split('\n').map((s) => s.trim()).filter((s) => s !== '');
      if (lines(args).length) req.args = lines(args);
      if (lines(env).length) {
        req.env = {};
        for (const kv of lines(env)) {
          const i = kv.indexOf('=');
          if (i <= 0) throw new Error('environment line "' + kv + '" is not KEY=VALUE');
          req.env[kv.slice(0, i)] = kv.slice(i + 1);
        }
      }
      if (lines(outputs).length) req.outputs = lines(outputs);
      return req;
    };
  }
  form.append(field('replicas', replicas, '1..' + tt.max_replicas));
  const button = el('button', { type: 'submit', id: 'submit-button' }, 'Submit ' + tt.id);
  form.append(el('p', {}, button));
  on(form, 'submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    clear(progress);
    try {
      const req = await read();
      const r = parseInt(replicas.value, 10);
      if (r && r !== tt.default_replicas) req.replicas = r;
      const { task_id: id } = await api.postJSON('/api/v1/tasks', req);
      const ol = el('ol', { class: 'timeline' });
      const result = el('div', {});
      progress.append(el('p', { id: 'submitted' }, 'task ', el('a', { href: '#/task/' + encodeURIComponent(id), class: 'mono' }, id)), ol, result);
      followTask(id, ol, result, signal, () => { button.disabled = false; });
    } catch (err) {
      if (err.status !== 401) progress.append(errorBox(err));
      button.disabled = false;
    }
  });
}

function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

// ---- Audit

function auditView(main, arg, signal) {
  const status = el('div', { id: 'audit-status' });
  const cp = el('div', { id: 'audit-checkpoint' });
  const entries = el('div', { id: 'audit-entries' });
  main.append(el('h1', {}, 'Audit log'), status, el('h2', {}, 'Checkpoint'), cp, el('h2', {}, 'Latest entries'), entries);
  const fail = (box) => (err) => { if (err.status !== 401) clear(box).append(errorBox(err)); };
  api.getJSON('/api/v1/audit/verify').then(async (v) => {
    if (signal.aborted) return;
    clear(status).append(el('p', { class: 'trust ' + (v.intact ? 'ok' : 'bad') },
      v.intact ? '✓ chain intact' : '✗ chain broken', ' — ', String(v.entries), ' entries', v.error ? ': ' + v.error : ''));
    const from = Math.max(0, v.entries - 49);
    const es = (await api.getJSON('/api/v1/audit' + api.query({ from, limit: 50 }))) || [];
    if (signal.aborted) return;
    clear(entries).append(table(['seq', 'time', 'kind', 'actor', 'subject', 'detail', 'hash'], es.reverse().map((e) => el('tr', {},
      el('td', { class: 'num' }, String(e.seq)), el('td', {}, localTime(e.time)), el('td', {}, e.kind),
      el('td', {}, idCell(e.actor || '')), el('td', {}, idCell(e.subject || '')), el('td', { class: 'detail' }, e.detail || ''),
      el('td', { class: 'mono', title: e.hash }, String(e.hash).slice(0, 12) + '…'))), { class: 'grid', id: 'audit' }));
  }).catch(fail(status));
  api.getJSON('/api/v1/audit/checkpoint').then((c) => {
    if (signal.aborted) return;
    const save = el('button', { type: 'button' }, 'download checkpoint');
    on(save, 'click', () => api.saveBlob(new Blob([JSON.stringify(c, null, 2)], { type: 'application/json' }), 'checkpoint-' + c.seq + '.json'));
    clear(cp).append(el('dl', { class: 'kv' },
      el('dt', {}, 'node'), el('dd', { class: 'mono' }, c.node_id),
      el('dt', {}, 'head'), el('dd', {}, 'entry ', String(c.seq), ' ', el('span', { class: 'mono' }, c.hash)),
      el('dt', {}, 'signed at'), el('dd', {}, localTime(c.time))),
    el('p', {}, save, el('span', { class: 'muted' }, ' keep it away from the node; `proofmesh audit verify --checkpoint FILE` checks the chain still holds it')));
  }).catch(fail(cp));
}
