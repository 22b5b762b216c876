// LaDiMo: Layer-wise Distillation Inspired MoEfier. S. Kim, Y. Kim, K. Moon, M. Jang (Samsung SDS),
// arXiv:2408.04278. This file: §4.4 / Appendix A "Adaptive Router", the training-free layer-wise top-k
// policy decided from profiled maximal routing weights w_m = max_e softmax(router·x)_e.
//   1. global quantiles over all MoE layers' pooled samples:  P(w_m ≥ α) = pU,   P(w_m ≤ β) = pE
//   2. local quantiles per layer i, the same way:              P_i(w_m ≥ αI) = pU, P_i(w_m ≤ βI) = pE
//   3. Table 1:             αI < α    αI > α
//                βI > β     top-2     top-1
//                βI < β     top-3     dynamic (token-wise: top-1 if w_m ≥ αI, top-3 if w_m ≤ βI, else top-2)
//
// Quantile definition: the empirical quantile with linear interpolation between order statistics
// (Hyndman & Fan type 7, numpy's default 'linear'): for sorted x_0 ≤ … ≤ x_{m−1},
//   Q(q) = x_⌊h⌋ + (h − ⌊h⌋)(x_⌊h⌋+1 − x_⌊h⌋),  h = (m − 1)·q,
// and α = Q(1 − pU), β = Q(pE) (αI, βI likewise on one layer's samples). pU = pE = 0.25 gives the third
// and first quartiles, as in the paper's example. The pooled samples weigh every (token, layer) sample
// equally, so a layer profiled on more tokens weighs more in α, β.
//
// The four thresholds are rounded to f32 (Math.fround) so that they are the exact values the GPU
// router compares its f32 w_m with (RoutingOptions.dynamic in src/ops/moe.ts).
//
// Ties: the paper's inequalities are strict. Here a layer is "relatively uneven" only if αI > α and
// "relatively even" only if βI < β, strictly; αI == α counts as αI < α and βI == β as βI > β. A tie
// therefore never moves a layer off the top-2 default towards top-1/top-3/dynamic. (A single profiled
// layer has αI = α and βI = β, so it gets top-2.)

export type LayerPolicy = 'top1' | 'top2' | 'top3' | 'dynamic';

export interface PolicyOptions {
  /** share of extremely uneven routing distributions: P(w_m ≥ α) = pU, in [0, 1] */
  pU: number;
  /** share of extremely even routing distributions: P(w_m ≤ β) = pE, in [0, 1] */
  pE: number;
  /** model layer index of each sample array (default 0, 1, 2, …) */
  layers?: readonly number[];
}

export interface LayerDecision {
  /** model layer index */
  layer: number;
  /** local quantile: P_i(w_m ≥ alphaI) = pU */
  alphaI: number;
  /** local quantile: P_i(w_m ≤ betaI) = pE */
  betaI: number;
  policy: LayerPolicy;
  /**
   * Share of this layer's profiled tokens that the policy sends to 1, 2 and 3 experts ([0, 1, 0] for
   * top-2; for 'dynamic' the measured split at alphaI, betaI). Input to params.ts' expected k.
   */
  kShare: [number, number, number];
  /** samples profiled for this layer */
  samples: number;
}

export interface RouterPolicy {
  pU: number;
  pE: number;
  /** global quantile over all layers' pooled samples: P(w_m ≥ alpha) = pU */
  alpha: number;
  /** global quantile: P(w_m ≤ beta) = pE */
  beta: number;
  layers: LayerDecision[];
}

/** Appendix A steps 1–3: global α, β, local αI, βI and each layer's Table 1 policy. wMax: per layer, its samples of w_m. */
export function decideRouterPolicy(wMax: readonly Float32Array[], opts: PolicyOptions): RouterPolicy {
  const { pU, pE } = opts;
  if (!(pU >= 0 && pU <= 1)) throw new Error(`pU: expected a share in [0, 1], got ${pU}`);
  if (!(pE >= 0 && pE <= 1)) throw new Error(`pE: expected a share in [0, 1], got ${pE}`);
  if (wMax.length === 0) throw new Error('no layers profiled');
  const ids = opts.layers ?? wMax.map((_, i) => i);
  if (ids.length !== wMax.length) throw new Error(`layers: ${ids.length} ids for ${wMax.length} sample arrays`);

  // ---- 1. global quantiles over the pooled samples
  const sortedPerLayer = wMax.map((w, i) => sortedSamples(w, `layer ${ids[i]}`));
  const pooled = new Float64Array(sortedPerLayer.reduce((s, w) => s + w.length, 0));
  let off = 0;
  for (const w of sortedPerLayer) {
    pooled.set(w, off);
    off += w.length;
  }
  pooled.sort();
  const alpha = Math.fround(quantileSorted(pooled, 1 - pU));
  const beta = Math.fround(quantileSorted(pooled, pE));

  // ---- 2–3. local quantiles and Table 1
  const layers = sortedPerLayer.map((sorted, i): LayerDecision => {
    const alphaI = Math.fround(quantileSorted(sorted, 1 - pU));
    const betaI = Math.fround(quantileSorted(sorted, pE));
    const policy = tablePolicy(alphaI, betaI, alpha, beta);
    return { layer: ids[i], alphaI, betaI, policy, kShare: policyKShare(wMax[i], policy, alphaI, betaI), samples: sorted.length };
  });
  return { pU, pE, alpha, beta, layers };
}

/** Table 1, with ties (αI == α, βI == β) on the top-2 side: see the file header. */
export function tablePolicy(alphaI: number, betaI: number, alpha: number, beta: number): LayerPolicy {
  const uneven = alphaI > alpha; // relatively many uneven distributions
  const even = betaI < beta;     // relatively many even distributions
  if (uneven && even) return 'dynamic';
  if (uneven) return 'top1';
  if (even) return 'top3';
  return 'top2';
}

/** The token-wise rule of a 'dynamic' layer: 1 if w_m ≥ αI, else 3 if w_m ≤ βI, else 2 (as tokenK in src/ops/moe.ref.ts). */
export function dynamicK(wm: number, alphaI: number, betaI: number): 1 | 2 | 3 {
  return wm >= alphaI ? 1 : wm <= betaI ? 3 : 2;
}

/** Share of the samples w routed to 1, 2 and 3 experts under `policy`. */
export function policyKShare(w: ArrayLike<number>, policy: LayerPolicy, alphaI: number, betaI: number): [number, number, number] {
  if (policy !== 'dynamic') {
    const k = policy === 'top1' ? 0 : policy === 'top2' ? 1 : 2;
    const s: [number, number, number] = [0, 0, 0];
    s[k] = 1;
    return s;
  }
  const c = [0, 0, 0];
  for (let t = 0; t < w.length; t++) c[dynamicK(w[t], alphaI, betaI) - 1]++;
  const n = Math.max(w.length, 1);
  return [c[0] / n, c[1] / n, c[2] / n];
}

/** The type-7 empirical quantile of unsorted samples (see the file header). */
export function quantile(w: ArrayLike<number>, q: number): number {
  return quantileSorted(sortedSamples(w, 'samples'), q);
}

/** The type-7 empirical quantile of ascending samples, q in [0, 1]. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const m = sorted.length;
  if (m === 0) throw new Error('quantile of no samples');
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile: q = ${q} outside [0, 1]`);
  const h = (m - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, m - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

// ---------------------------------------------------------------------------------------------------
// Histogram (Figures 8–10: the distribution of w_m per layer, with α, β, αI, βI marked)
// ---------------------------------------------------------------------------------------------------

export interface Histogram {
  /** bin edges on [0, 1]: [bins + 1] */
  edges: number[];
  /** samples per bin: bin b is [edges[b], edges[b+1]), the last bin also holds 1 */
  counts: number[];
  /** counts / (samples in range · bin width): integrates to 1 over [0, 1] */
  density: number[];
  /** samples counted (in [0, 1]) */
  total: number;
  /** samples outside [0, 1] or NaN, not counted */
  outOfRange: number;
}

/** Fixed-width histogram of w on [0, 1] (default 20 bins). */
export function histogram(w: ArrayLike<number>, bins = 20): Histogram {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`histogram: bins = ${bins}, expected a positive integer`);
  const counts = new Array<number>(bins).fill(0);
  let total = 0;
  let outOfRange = 0;
  for (let t = 0; t < w.length; t++) {
    const v = w[t];
    if (!(v >= 0 && v <= 1)) {
      outOfRange++;
      continue;
    }
    counts[Math.min(Math.floor(v * bins), bins - 1)]++;
    total++;
  }
  const edges = Array.from({ length: bins + 1 }, (_, b) => b / bins);
  const density = counts.map((c) => (total ? (c * bins) / total : 0));
  return { edges, counts, density, total, outOfRange };
}

function sortedSamples(w: ArrayLike<number>, name: string): Float64Array {
  if (w.length === 0) throw new Error(`${name}: no samples of w_m`);
  const s = Float64Array.from(w as ArrayLike<number>);
  for (let t = 0; t < s.length; t++) if (!Number.isFinite(s[t])) throw new Error(`${name}: sample ${t} is ${s[t]}`);
  return s.sort();
}
