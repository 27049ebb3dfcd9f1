// Small hand-written canvas plots for the Sinew dashboard: a strip chart over a sliding time window and a bar
// histogram. No library: the data are a few series at 30 Hz, and the page must work offline.
'use strict';

class StripChart {
  // series: [{label, color, dash}], windowS: seconds shown, capacity: samples kept per series.
  constructor(canvas, series, windowS = 10, capacity = 2048) {
    this.canvas = canvas;
    this.series = series;
    this.windowS = windowS;
    this.capacity = capacity;
    this.t = new Float64Array(capacity);
    this.values = series.map(() => new Float64Array(capacity));
    this.count = 0;
    this.next = 0;
    this.limits = null; // [min, max] drawn as dashed lines when given
    this.samplesPushed = 0;
  }

  clear() { this.count = 0; this.next = 0; }

  push(t, values) {
    if (this.count > 0) {
      const last = this.t[(this.next - 1 + this.capacity) % this.capacity];
      if (t < last) this.clear(); // a new loop segment (after recovery) restarts its clock
    }
    this.t[this.next] = t;
    for (let s = 0; s < this.series.length; s++) this.values[s][this.next] = values[s];
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
    this.samplesPushed++;
  }

  draw() {
    const c = this.canvas, g = c.getContext('2d');
    const w = c.width, h = c.height, left = 52, right = 8, top = 8, bottom = 18;
    g.clearRect(0, 0, w, h);
    g.font = '11px system-ui, sans-serif';
    if (this.count === 0) {
      g.fillStyle = '#8893a3';
      g.fillText('waiting for data…', left + 6, h / 2);
      return;
    }
    const newest = this.t[(this.next - 1 + this.capacity) % this.capacity];
    const t0 = newest - this.windowS;
    let lo = Infinity, hi = -Infinity;
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let k = 0; k < this.count; k++) {
      const i = (start + k) % this.capacity;
      if (this.t[i] < t0) continue;
      for (let s = 0; s < this.series.length; s++) {
        const v = this.values[s][i];
        if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
      }
    }
    if (!Number.isFinite(lo)) { lo = -1; hi = 1; }
    if (hi - lo < 1e-3) { const m = (hi + lo) / 2; lo = m - 5e-4; hi = m + 5e-4; }
    const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
    const x = t => left + (t - t0) / this.windowS * (w - left - right);
    const y = v => top + (hi - v) / (hi - lo) * (h - top - bottom);
    // Grid and labels.
    g.strokeStyle = '#2c3340'; g.fillStyle = '#8893a3'; g.lineWidth = 1; g.setLineDash([]);
    const step = niceStep((hi - lo) / 4);
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
      g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke();
      g.fillText(formatTick(v, step), 4, y(v) + 4);
    }
    for (let s = Math.ceil(t0); s <= newest; s += 2) {
      g.beginPath(); g.moveTo(x(s), top); g.lineTo(x(s), h - bottom); g.stroke();
      g.fillText(s.toFixed(0) + ' s', x(s) - 8, h - 4);
    }
    if (this.limits) {
      g.strokeStyle = '#b3261e'; g.setLineDash([2, 4]);
      for (const v of this.limits) {
        if (v > lo && v < hi) { g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke(); }
      }
    }
    for (let s = 0; s < this.series.length; s++) {
      const sr = this.series[s];
      g.strokeStyle = sr.color; g.lineWidth = sr.width || 1.5; g.setLineDash(sr.dash || []);
      g.beginPath();
      let pen = false;
      for (let k = 0; k < this.count; k++) {
        const i = (start + k) % this.capacity;
        const v = this.values[s][i];
        if (this.t[i] < t0 || !Number.isFinite(v)) { pen = false; continue; }
        if (pen) g.lineTo(x(this.t[i]), y(v)); else { g.moveTo(x(this.t[i]), y(v)); pen = true; }
      }
      g.stroke();
    }
    g.setLineDash([]);
    let lx = left + 6;
    for (const sr of this.series) {
      g.fillStyle = sr.color; g.fillRect(lx, top + 2, 10, 3);
      g.fillStyle = '#d8dee9'; g.fillText(sr.label, lx + 14, top + 8);
      lx += 20 + g.measureText(sr.label).width;
    }
  }
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

function formatTick(v, step) {
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  return v.toFixed(Math.min(digits, 4));
}

// Bars over labelled buckets: edges are the buckets' upper bounds, counts has one more (beyond the last edge).
function drawHistogram(canvas, edges, counts, unit) {
  const g = canvas.getContext('2d'), w = canvas.width, h = canvas.height;
  const left = 40, bottom = 30, top = 22;
  g.clearRect(0, 0, w, h);
  g.font = '11px system-ui, sans-serif';
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) { g.fillStyle = '#8893a3'; g.fillText('no ticks yet', left, h / 2); return; }
  const max = Math.max(...counts.map(c => c / total));
  const bw = (w - left - 8) / counts.length;
  for (let i = 0; i < counts.length; i++) {
    const f = counts[i] / total;
    const bh = f / max * (h - top - bottom);
    g.fillStyle = i >= counts.length - 3 ? '#d9822b' : '#4c9be8';
    g.fillRect(left + i * bw + 2, h - bottom - bh, bw - 4, bh);
    g.fillStyle = '#8893a3';
    const short = v => (v >= 1000 ? v / 1000 + 'k' : String(v));
    const label = i < edges.length ? '≤' + short(edges[i]) : '>' + short(edges[edges.length - 1]);
    g.fillText(label, left + i * bw + 2, h - bottom + 13);
    if (f > 0) g.fillText((100 * f).toFixed(f < 0.01 ? 2 : 1) + '%', left + i * bw + 2, h - bottom - bh - 3);
  }
  g.fillText(unit, left, h - 4);
  g.fillText('share of ticks', 2, 12);
}
