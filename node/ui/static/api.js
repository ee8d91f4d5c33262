// The API client of the dashboard: the token lives in sessionStorage and
// travels only in the Authorization header, never in a URL.

const KEY = 'proofmesh.token';

// takeTokenFromFragment moves a token given as #token=… (the link that
// `proofmesh demo` prints) into sessionStorage and removes it from the
// address bar, so it stays out of history and bookmarks.
// A route may come before the token, the two joined by "&": the link
// "#/task/<id>", "&", "token=…" opens that task.
export function takeTokenFromFragment() {
  const parts = location.hash.replace(/^#/, '').split('&');
  const i = parts.findIndex((p) => p.startsWith('token='));
  if (i < 0) return;
  setToken(decodeURIComponent(parts[i].slice('token='.length)));
  parts.splice(i, 1);
  const rest = parts.join('&');
  history.replaceState(null, '', location.pathname + (rest.startsWith('/') ? '#' + rest : '#/network'));
}

export function token() { return sessionStorage.getItem(KEY) || ''; }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function forgetToken() { sessionStorage.removeItem(KEY); }

// APIError is an answer other than 2xx: status, the API's error word and
// its message.
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Listeners told when the API refuses the token (401).
const refusedHandlers = [];
export function onRefused(f) { refusedHandlers.push(f); }

function headers(extra) {
  const h = new Headers(extra || {});
  const t = token();
  if (t) h.set('Authorization', 'Bearer ' + t);
  return h;
}

async function failure(resp) {
  let code = 'http_' + resp.status, message = resp.statusText || ('HTTP ' + resp.status);
  try {
    const body = await resp.json();
    if (body && typeof body.error === 'string') code = body.error;
    if (body && typeof body.message === 'string') message = body.message;
  } catch (_) { /* not JSON */ }
  const err = new APIError(resp.status, code, message);
  if (resp.status === 401) refusedHandlers.forEach((f) => f(err));
  return err;
}

// request calls the API; path starts with /api/v1/ and must never carry
// the token. It returns the Response of a 2xx answer, else throws APIError.
export async function request(method, path, body, contentType) {
  const init = { method, headers: headers(contentType ? { 'Content-Type': contentType } : {}), cache: 'no-store' };
  if (body !== undefined) init.body = body;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, 'unreachable', 'the node did not answer: ' + e.message);
  }
  if (!resp.ok) throw await failure(resp);
  return resp;
}

export async function getJSON(path) {
  return (await request('GET', path)).json();
}

export async function postJSON(path, value) {
  return (await request('POST', path, JSON.stringify(value), 'application/json')).json();
}

// download fetches path with the token and saves it as name.
export async function download(path, name) {
  const blob = await (await request('GET', path)).blob();
  saveBlob(blob, name);
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// events reads a server-sent event stream with fetch (EventSource cannot
// send the Authorization header) and calls onEvent(name, data) per event.
// It resolves when the stream ends; abort it with signal.
export async function events(path, onEvent, signal) {
  let resp;
  try {
    resp = await fetch(path, { headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store', signal });
  } catch (e) {
    if (signal && signal.aborted) return;
    throw new APIError(0, 'unreachable', 'the node did not answer: ' + e.message);
  }
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = frameEnd(buf)) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut).replace(/^(\r?\n){2}/, '');
        dispatch(frame, onEvent);
      }
    }
  } catch (e) {
    if (signal && signal.aborted) return;
    throw new APIError(0, 'stream', 'the event stream broke: ' + e.message);
  }
}

function frameEnd(buf) {
  const a = buf.indexOf('\n\n'), b = buf.indexOf('\r\n\r\n');
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

// dispatch parses one SSE frame: "event:" and "data:" lines; comments
// (": keepalive") are ignored.
function dispatch(frame, onEvent) {
  let name = 'message';
  const data = [];
  for (const line of frame.split(/\r?\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return;
  let parsed;
  try { parsed = JSON.parse(data.join('\n')); } catch (_) { parsed = data.join('\n'); }
  onEvent(name, parsed);
}

// query builds "?k=v&…" from the non-empty values (never the token).
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}
