// Small SVG charts for the console, drawn with DOM calls (no library, no inline style: the
// colours come from classes in hearth.css). Each chart is an <svg role="img"> with a title
// that states what it shows, and a legend list; the numbers are also in the table above it.

import { el } from './hearth.js';

const WIDTH = 640;
const HEIGHT = 260;
const PAD = { left: 48, right: 12, top: 12, bottom: 34 };

/** Ticks for an axis from 0 to `max`: about four round steps. */
function ticks(max) {
  if (!(max > 0)) return [0, 1];
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const out = [];
  for (let v = 0; v <= max + step / 2; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

function frame(title, labels, top, format) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const x = (i) => PAD.left + (plotW * (i + 0.5)) / Math.max(labels.length, 1);
  const svg = el('svg', { class: 'chart', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': title },
    el('title', {}, title));
  for (const t of ticks(top)) {
    if (t > top) continue;
    svg.append(el('line', { class: 'grid-line', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(t), y2: y(t) }));
    svg.append(el('text', { x: PAD.left - 6, y: y(t) + 4, 'text-anchor': 'end' }, format(t)));
  }
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + plotH }));
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: WIDTH - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH }));
  // Every other day label on long charts, so they do not collide; the last (today) always.
  const every = labels.length > 8 ? 2 : 1;
  labels.forEach((label, i) => {
    if ((labels.length - 1 - i) % every === 0) {
      svg.append(el('text', { x: x(i), y: HEIGHT - 14, 'text-anchor': 'middle' }, label.slice(5)));
    }
  });
  return { svg, x, y, plotW };
}

function legend(series) {
  return el('ul', { class: 'legend' }, series.map((s, i) => el('li', { class: `series-${i % 5}` }, s.name)));
}

/**
 * Grouped bars: one group per label, one bar per series. `series` is
 * `[{name, values: [number|null per label]}]`.
 */
export function barChart(title, labels, series, format = String) {
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  const t = ticks(max);
  const top = t[t.length - 1];
  const { svg, x, y, plotW } = frame(title, labels, top, format);
  const group = plotW / Math.max(labels.length, 1);
  const bar = Math.max(1, (group * 0.8) / Math.max(series.length, 1));
  series.forEach((s, si) => {
    s.values.forEach((v, i) => {
      if (v === null || v === 0) return;
      const left = x(i) - (bar * series.length) / 2 + si * bar;
      svg.append(el('rect', { class: `series-${si % 5}`, x: left, y: y(v), width: bar, height: y(0) - y(v) },
        el('title', {}, `${s.name}, ${labels[i]}: ${format(v)}`)));
    });
  });
  return el('div', {}, svg, legend(series));
}

/** Lines with a dot per value; a null value breaks the line. `reference` draws a dashed level. */
export function lineChart(title, labels, series, format = String, reference = null) {
  const max = Math.max(reference ?? 0, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  const t = ticks(max);
  const top = t[t.length - 1];
  const { svg, x, y } = frame(title, labels, top, format);
  if (reference !== null) {
    svg.append(el('line', { class: 'axis', 'stroke-dasharray': '4 4', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(reference), y2: y(reference) }));
  }
  series.forEach((s, si) => {
    let run = [];
    const flush = () => {
      if (run.length > 1) svg.append(el('polyline', { class: `series-${si % 5}`, points: run.join(' ') }));
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null) { flush(); return; }
      run.push(`${x(i)},${y(v)}`);
      svg.append(el('circle', { class: `series-${si % 5}`, cx: x(i), cy: y(v), r: 3 },
        el('title', {}, `${s.name}, ${labels[i]}: ${format(v)}`)));
    });
    flush();
  });
  return el('div', {}, svg, legend(series));
}
