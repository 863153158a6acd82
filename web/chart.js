// The throughput chart: tasks per second over a job's life, as SVG bars
// drawn from GET /api/jobs/{id}/throughput. Hand-written: a bar chart of
// at most 120 buckets needs no library.

import * as fmt from './fmt.js';

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text != null) el.textContent = text;
  return el;
}

// A round number >= v for the top of the axis: 1, 2, 2.5, 5 times a power
// of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Draws data into el (replacing what was there). Returns a one-line
// summary for a caption.
export function draw(el, data) {
  const counts = data.counts || [];
  const bucket = data.bucket_s || 1;
  const total = counts.reduce((a, b) => a + b, 0);
  const life = Math.max((Date.parse(data.end) - Date.parse(data.start)) / 1000, 0);
  el.replaceChildren();
  if (!counts.length || !total || (counts.length === 1 && !data.live && life < bucket)) {
    const p = document.createElement('p');
    p.className = 'chart-empty';
    p.textContent = !total ? (data.live ? 'No task has finished yet.' : 'No task finished.')
      : `All ${fmt.int(total)} tasks finished within ${fmt.duration(Math.max(life, 0.001), { ms: true })}: too quick to chart.`;
    el.append(p);
    return '';
  }
  const W = Math.max(el.clientWidth || 600, 240);
  const H = 150;
  const pad = { l: 48, r: 8, t: 10, b: 22 };
  const pw = W - pad.l - pad.r, ph = H - pad.t - pad.b;
  // The last bucket ends at "end": still filling for a live job, cut
  // short for a finished one. Its rate counts the time it covers (at least
  // a second, to tame the first moments).
  const lastSpan = Math.min(Math.max(life - bucket * (counts.length - 1), 1), bucket);
  const rates = counts.map((c, i) => c / (i === counts.length - 1 ? lastSpan : bucket));
  const top = niceMax(Math.max(...rates));
  const avg = total / Math.max(life, 1);
  const root = svg('svg', {
    width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `Throughput: ${fmt.int(total)} tasks in ${fmt.duration(life)}, average ${fmt.rate(avg)}, peak ${fmt.rate(Math.max(...rates))}`,
  });
  for (const f of [0, 0.5, 1]) {
    const y = pad.t + ph - f * ph;
    root.append(svg('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y, y2: y }));
    root.append(svg('text', { class: 'axis', x: pad.l - 6, y: y + 4, 'text-anchor': 'end' },
      f ? fmt.rate(top * f) : '0'));
  }
  const bw = pw / counts.length;
  const gap = bw > 4 ? 1 : 0;
  rates.forEach((r, i) => {
    const h = Math.max(r / top * ph, r > 0 ? 1 : 0);
    const partial = data.live && i === counts.length - 1;
    const rect = svg('rect', {
      class: partial ? 'col partial' : 'col',
      x: (pad.l + i * bw + gap / 2).toFixed(2), y: (pad.t + ph - h).toFixed(2),
      width: Math.max(bw - gap, 0.5).toFixed(2), height: h.toFixed(2),
    });
    rect.append(svg('title', {}, `${fmt.duration(i * bucket)}–${fmt.duration((i + 1) * bucket)}: ` +
      `${fmt.int(counts[i])} tasks, ${fmt.rate(r)}${partial ? ' (so far)' : ''}`));
    root.append(rect);
  });
  if (avg > 0) {
    const y = pad.t + ph - Math.min(avg / top, 1) * ph;
    root.append(svg('line', { class: 'avg', x1: pad.l, x2: W - pad.r, y1: y, y2: y }));
  }
  root.append(svg('text', { class: 'axis', x: pad.l, y: H - 6 }, '0s'));
  root.append(svg('text', { class: 'axis', x: W - pad.r, y: H - 6, 'text-anchor': 'end' },
    fmt.duration(life)));
  el.append(root);
  return `avg ${fmt.rate(avg)} · peak ${fmt.rate(Math.max(...rates))} · ${fmt.duration(bucket)} buckets`;
}
