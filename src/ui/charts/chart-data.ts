// Pure data shaping shared by the charts: log-axis ticks, thinning a long curve, histogram bins, number labels.
import type { Histogram } from '../../worker/pipeline-types.ts';

/**
 * A log axis over [min, max] (both > 0) on the 1-2-5 ladder (0.05, 0.1, 0.2, 0.5, …; decades only once the
 * data spans more than two decades): the domain runs from the last rung ≤ min to the first rung ≥ max.
 */
export function logAxis(min: number, max: number): { domain: [number, number]; ticks: number[] } {
  if (!(min > 0 && max >= min)) throw new Error(`logAxis: expected 0 < min ≤ max, got ${min}, ${max}`);
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const mantissas = Math.log10(max / min) > 2 ? [1] : [1, 2, 5];
  // toPrecision: m × 10^k in floating point drifts (5 × 10^-2 = 0.05000000000000001); the labels must not.
  const ladder: number[] = [];
  for (let k = lo; k <= hi; k++) for (const m of mantissas) ladder.push(Number((m * 10 ** k).toPrecision(12)));
  const first = ladder.findLastIndex((t) => t <= min);
  let last = ladder.findIndex((t) => t >= max);
  if (last <= first) last = first + 1;
  const ticks = ladder.slice(first, last + 1);
  return { domain: [ticks[0], ticks[ticks.length - 1]], ticks };
}

/**
 * A linear axis over [lo, hi] with about `target` intervals of a round step (1, 2, 2.5 or 5 × 10^k), the
 * domain snapped out to whole steps; `decimals` is what a label needs to show the step exactly.
 */
export function linearAxis(lo: number, hi: number, target = 5): { domain: [number, number]; ticks: number[]; step: number; decimals: number } {
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi >= lo)) throw new Error(`linearAxis: expected lo ≤ hi, got ${lo}, ${hi}`);
  const raw = (hi > lo ? hi - lo : Math.abs(lo) || 1) / target;
  const k = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * k).find((c) => c >= raw * (1 - 1e-9))!;
  // 1e-9: a bound that is a whole step already (0.2 / 0.05 = 4.000000000000001) stays put
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.max(first + 1, Math.ceil(hi / step - 1e-9));
  const ticks = Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toPrecision(12)));
  return { domain: [ticks[0], ticks[ticks.length - 1]], ticks, step, decimals: decimalsFor(step) };
}

/** Digits after the point that write v exactly (up to 6): 0.25 → 2, 5 → 0. */
function decimalsFor(v: number): number {
  for (let d = 0; d < 6; d++) if (Math.abs(Math.round(v * 10 ** d) - v * 10 ** d) < 1e-6) return d;
  return 6;
}

/** At most `max` rows, evenly spaced, the first and the last always kept (a live chart stays cheap to draw). */
export function thin<T>(rows: readonly T[], max: number): T[] {
  if (rows.length <= max) return [...rows];
  const out: T[] = [];
  const stride = (rows.length - 1) / (max - 1);
  for (let i = 0; i < max; i++) out.push(rows[Math.round(i * stride)]);
  return out;
}

/** Bin i of a histogram over [0, 1] as its edges and the share of samples in it. */
export interface Bin {
  start: number;
  end: number;
  count: number;
  share: number;
}

export function histogramBins(h: Histogram): Bin[] {
  const n = h.counts.length;
  return h.counts.map((count, i) => ({ start: i / n, end: (i + 1) / n, count, share: h.samples > 0 ? count / h.samples : 0 }));
}

/**
 * Step-plot rows for histograms over the same bins: one row per bin start plus a closing row at w = 1, each
 * with the share of samples of every series (a stepAfter line through them draws the histogram's outline).
 */
export function histogramSteps(series: readonly { key: string; histogram: Histogram }[]): Record<string, number>[] {
  if (series.length === 0) return [];
  const bins = series[0].histogram.counts.length;
  for (const s of series) {
    if (s.histogram.counts.length !== bins) throw new Error(`histogram '${s.key}' has ${s.histogram.counts.length} bins, expected ${bins}`);
  }
  const shares = series.map((s) => histogramBins(s.histogram).map((b) => b.share));
  const rows: Record<string, number>[] = [];
  for (let i = 0; i <= bins; i++) {
    const row: Record<string, number> = { w: i / bins };
    series.forEach((s, j) => (row[s.key] = shares[j][Math.min(i, bins - 1)]));
    rows.push(row);
  }
  return rows;
}

/** 3 significant digits, no exponent for the values charts show: 0.0612, 1.23, 845. */
export function fmtSig(v: number, digits = 3): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-4 || a >= 1e6) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}

/** A share as a percentage: 0.0312 → '3.1%'. */
export function fmtPct(v: number, decimals = 1): string {
  return `${(100 * v).toFixed(decimals)}%`;
}

/** A relative change as a signed percentage: 1.042 → '+4.2%', 0.97 → '−3.0%'. */
export function fmtChange(ratio: number, decimals = 1): string {
  const pct = 100 * (ratio - 1);
  const s = Math.abs(pct).toFixed(decimals);
  return `${pct < 0 && Number(s) !== 0 ? '−' : '+'}${s}%`;
}

/** Unicode subscript digits for a layer index: 12 → '₁₂' (α₁₂ in a chart label). */
export function subscript(n: number): string {
  return String(n).replace(/\d/g, (d) => String.fromCharCode(0x2080 + Number(d)));
}
