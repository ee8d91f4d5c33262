// DOM helpers. Every string that came from the network goes into the page
// as a text node (textContent), never as HTML: peers' heartbeat strings
// and task outputs are untrusted.

// el builds an element: attrs sets attributes (on* handlers are refused:
// listeners are added with addEventListener), children are nodes or
// strings (text nodes).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (/^on/i.test(k) || k === 'style') throw new Error('el: attribute ' + k + ' is not allowed');
    if (k === 'href' && !/^#/.test(String(v))) throw new Error('el: only in-page links');
    e.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(e, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties a node.
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function on(node, ev, f) { node.addEventListener(ev, f); return node; }

// shortID shortens a peer or task id for tables (the full id on hover).
export function shortID(id) {
  if (!id) return '';
  return id.length > 14 ? id.slice(0, 6) + '…' + id.slice(-6) : id;
}

export function idCell(id, route) {
  const text = shortID(id);
  const inner = route ? el('a', { href: route, title: id, class: 'mono' }, text) : el('span', { title: id, class: 'mono' }, text);
  return inner;
}

// ago says how long ago a time was ("3 s ago").
export function ago(t, now) {
  const ms = (now || Date.now()) - new Date(t).getTime();
  if (!isFinite(ms)) return '';
  return duration(Math.max(0, ms)) + ' ago';
}

export function duration(ms) {
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
  const m = s / 60;
  if (m < 60) return Math.round(m) + ' min';
  const h = m / 60;
  if (h < 48) return h.toFixed(1) + ' h';
  return Math.round(h / 24) + ' d';
}

export function localTime(t) {
  const d = new Date(t);
  return isNaN(d) ? '' : d.toLocaleString();
}

export function badge(text, kind) {
  return el('span', { class: 'badge ' + (kind || String(text)) }, text);
}

// table builds a table from headers and rows of cells.
export function table(heads, rows, attrs) {
  return el('table', attrs || {},
    el('thead', {}, el('tr', {}, heads.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

export function errorBox(err) {
  return el('p', { class: 'error' }, err && err.message ? err.message : String(err));
}
