// Small inline SVG charts, drawn from data the page already has.

import { svg, el } from './dom.js';

const W = 560, H = 160, PAD = { l: 36, r: 8, t: 10, b: 22 };

function frame(title, legend) {
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
  return { root, figure: el('figure', { class: 'chart-box' }, el('figcaption', {}, title, legend || []), root) };
}

// niceMax rounds a chart's top up so that its ticks are round numbers;
// counts get whole ticks.
function niceMax(max, whole) {
  if (whole && max <= 4) return Math.max(1, Math.ceil(max));
  const step = Math.pow(10, Math.floor(Math.log10(max / 4)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step * 4 >= max && (!whole || Number.isInteger(m * step))) return m * step * 4;
  return max;
}

function yAxis(root, max, unit, whole) {
  const ticks = whole && max <= 4 ? max : 4;
  for (let i = 0; i <= ticks; i++) {
    const v = (max * i) / ticks;
    const y = PAD.t + (H - PAD.t - PAD.b) * (1 - i / ticks);
    root.appendChild(svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: 'grid' }));
    root.appendChild(svg('text', { x: PAD.l - 4, y: y + 4, class: 'tick', 'text-anchor': 'end' },
      String(Number.isInteger(v) ? v : +v.toFixed(2)) + (i === ticks && unit ? ' ' + unit : '')));
  }
}

// statusChart draws, for each status, the count of peers over time.
// samples: [{t, counts: {online, stale, offline}}].
export function statusChart(samples, statuses) {
  const legend = statuses.map((s) => el('span', { class: 'legend ' + s }, s));
  const { root, figure } = frame('Peers by status (this tab, every 2 s) ', legend);
  const max = niceMax(Math.max(1, ...samples.flatMap((s) => statuses.map((k) => s.counts[k] || 0))), true);
  yAxis(root, max, '', true);
  if (samples.length < 2) {
    root.appendChild(svg('text', { x: W / 2, y: H / 2, class: 'tick', 'text-anchor': 'middle' }, 'collecting samples…'));
    return figure;
  }
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t;
  const x = (t) => PAD.l + ((W - PAD.l - PAD.r) * (t - t0)) / Math.max(1, t1 - t0);
  const y = (v) => PAD.t + (H - PAD.t - PAD.b) * (1 - v / max);
  for (const k of statuses) {
    const pts = samples.map((s) => x(s.t).toFixed(1) + ',' + y(s.counts[k] || 0).toFixed(1)).join(' ');
    root.appendChild(svg('polyline', { points: pts, class: 'series ' + k }));
  }
  root.appendChild(svg('text', { x: PAD.l, y: H - 6, class: 'tick' }, new Date(t0).toLocaleTimeString()));
  root.appendChild(svg('text', { x: W - PAD.r, y: H - 6, class: 'tick', 'text-anchor': 'end' }, new Date(t1).toLocaleTimeString()));
  return figure;
}

// latencyChart draws one bar per finished task: seconds from creation to
// its end, oldest on the left; failed tasks in their own colour.
export function latencyChart(tasks) {
  const legend = [el('span', { class: 'legend accepted' }, 'accepted'), el('span', { class: 'legend failed' }, 'failed')];
  const { root, figure } = frame('Task latency, created → final state ', legend);
  const done = tasks.filter((t) => t.ms !== undefined).slice(0, 40).reverse();
  const maxMs = 1000 * niceMax(Math.max(1000, ...done.map((t) => t.ms)) / 1000, false);
  yAxis(root, maxMs / 1000, 's', false);
  if (done.length === 0) {
    root.appendChild(svg('text', { x: W / 2, y: H / 2, class: 'tick', 'text-anchor': 'middle' }, 'no finished task yet'));
    return figure;
  }
  const slot = (W - PAD.l - PAD.r) / Math.max(done.length, 10);
  done.forEach((t, i) => {
    const h = ((H - PAD.t - PAD.b) * t.ms) / maxMs;
    const bar = svg('rect', {
      x: (PAD.l + i * slot + slot * 0.15).toFixed(1), y: (H - PAD.b - h).toFixed(1),
      width: (slot * 0.7).toFixed(1), height: Math.max(1, h).toFixed(1), class: 'bar ' + t.state,
    }, svg('title', {}, `${t.type} ${t.id.slice(0, 12)}: ${(t.ms / 1000).toFixed(2)} s, ${t.state}`));
    root.appendChild(bar);
  });
  return figure;
}
