// LaDiMo: Layer-wise Distillation Inspired MoEfier. S. Kim, Y. Kim, K. Moon, M. Jang (Samsung SDS),
// arXiv:2408.04278. This file: §4.1 "Continued Pre-training", expert construction. The dense SwiGLU FFN
//   f(x) = (x·Wu ⊙ Swish(x·Wg))·Wd                                                     (eq. 2)
// is split into N experts, the i-th keeping the neurons I_i of the intermediate dimension:
//   f_i(x) = (x·Wu^(i) ⊙ Swish(x·Wg^(i)))·Wd^(i),  I_i = {(i−1)d'+1, …, i·d'},  d' = d_i / N   (eq. 3)
// so Σ_i f_i(x) = f(x): every expert active with weight 1 reproduces the dense FFN (the identity the
// tests check). Besides the paper's contiguous split: LLaMA-MoE's random split (Zhu et al. 2024,
// arXiv:2406.16554), a MoEfication-style co-activation split (Zhang et al. 2022, arXiv:2110.01786) and
// sparse upcycling's copies (Komatsuzaki et al. 2022, arXiv:2212.05055). Also the router's initial
// weights: random, or k-means centroids of captured FFN inputs.
//
// Layouts are HF's (out × in): dense gate_proj/up_proj (Wg, Wu) [I, H], down_proj (Wd) [H, I]; experts
// gate_proj/up_proj [N, I_e, H], down_proj [N, H, I_e] (MoeWeights in src/ops/moe.ts); router [N, H].
// Host-side, Float32Array in and out, deterministic for a seed (src/data/rng.ts).
//
// Ragged splits: when N does not divide I, expert e holds floor(I/N) + (e < I mod N ? 1 : 0) neurons
// (the first I mod N experts take one extra, as numpy.array_split), and every expert is padded to
// I_e = ceil(I/N) with zero neurons: zero rows of gate_proj and up_proj and a zero column of down_proj.
// A zero neuron computes silu(0)·0 = 0 and its down_proj column is 0, so it adds exactly 0 to the output
// (in f32 and f64 alike); `neurons[e][s]` is −1 for such slots.
import { Rng } from '../../data/rng.ts';

// ---------------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------------

/** One dense SwiGLU FFN (a LLaMA layer's `mlp`), HF layouts. */
export interface DenseFfn {
  /** hidden_size */
  H: number;
  /** intermediate_size */
  I: number;
  /** Wg: [I, H] */
  gate_proj: Float32Array;
  /** Wu: [I, H] */
  up_proj: Float32Array;
  /** Wd: [H, I] */
  down_proj: Float32Array;
}

/** The experts of one MoE block (MoeWeights' expert tensors, host-side). */
export interface ExpertWeights {
  nExperts: number;
  H: number;
  /** I_e: intermediate neurons per expert, padding included */
  expertDim: number;
  /** [N, I_e, H] */
  gate_proj: Float32Array;
  /** [N, I_e, H] */
  up_proj: Float32Array;
  /** [N, H, I_e] */
  down_proj: Float32Array;
  /** neurons[e][s]: the dense neuron in slot s of expert e, −1 for a zero (padding) neuron. [N][I_e] */
  neurons: number[][];
}

export type SplitMethod = 'contiguous' | 'random' | 'coactivation' | 'copy';

export interface CoactivationOptions {
  /**
   * A neuron's activation profile over the captured tokens: 'abs' = |a| (default), 'binary' =
   * [|a| > threshold]. Either is centred and scaled to unit length, so the co-activation similarity of
   * two neurons (the dot product of their profiles) is the Pearson correlation of |a| (or the phi
   * coefficient of the firing indicators) across tokens.
   */
  profile?: 'abs' | 'binary';
  /** 'binary' only: firing threshold on |a|; default the median of |a| over all (token, neuron) pairs. */
  threshold?: number;
  /** Balanced k-means iterations at most (default 50); stops earlier when the assignment repeats. */
  maxIters?: number;
}

export interface ConstructOptions {
  nExperts: number;
  method: SplitMethod;
  /** 'random' and 'coactivation' (k-means++ seeding). Default 0. */
  seed?: number;
  /**
   * 'coactivation': captured FFN inputs X [n, H] (the post_attention_layernorm output), from which the
   * activations a = silu(X·Wgᵀ) ⊙ (X·Wuᵀ) are computed; or give `activations` directly.
   */
  X?: Float32Array;
  /** 'coactivation': precomputed activations a [n, I] (e.g. from the GPU FFN tap), instead of X. */
  activations?: Float32Array;
  coactivation?: CoactivationOptions;
}

// ---------------------------------------------------------------------------------------------------
// Construction: partition the neurons, then gather each expert's rows/columns
// ---------------------------------------------------------------------------------------------------

/** From a dense FFN, the N experts of §4.1 by the chosen split. */
export function constructExperts(ffn: DenseFfn, opts: ConstructOptions): ExpertWeights {
  checkFfn(ffn);
  const { nExperts: N, method } = opts;
  checkExperts(N, ffn.I);
  const seed = opts.seed ?? 0;
  let neurons: number[][];
  switch (method) {
    case 'contiguous':
      neurons = contiguousPartition(ffn.I, N);
      break;
    case 'random':
      neurons = randomPartition(ffn.I, N, new Rng(seed));
      break;
    case 'coactivation': {
      let act = opts.activations;
      let n: number;
      if (act) {
        if (act.length % ffn.I !== 0 || act.length === 0) throw new Error(`activations: length ${act.length} is not a positive multiple of I = ${ffn.I}`);
        n = act.length / ffn.I;
      } else if (opts.X) {
        n = rowsOf(opts.X, ffn.H, 'X');
        act = ffnActivations(ffn, opts.X);
      } else {
        throw new Error("method 'coactivation' needs captured inputs X [n, H] or activations [n, I]");
      }
      neurons = coactivationPartition(act, n, ffn.I, N, new Rng(seed), opts.coactivation);
      break;
    }
    case 'copy':
      neurons = Array.from({ length: N }, () => Array.from({ length: ffn.I }, (_, j) => j));
      break;
    default:
      throw new Error(`unknown split method ${JSON.stringify(method)} (contiguous, random, coactivation, copy)`);
  }
  return gatherExperts(ffn, neurons);
}

/** Neurons per expert before padding: floor(I/N), plus one for each of the first I mod N experts. */
export function expertSizes(I: number, N: number): number[] {
  checkExperts(N, I);
  const base = Math.floor(I / N);
  const extra = I % N;
  return Array.from({ length: N }, (_, e) => base + (e < extra ? 1 : 0));
}

/** The paper's split (eq. 3): expert e holds neurons [start_e, start_e + size_e), in order. */
export function contiguousPartition(I: number, N: number): number[][] {
  const out: number[][] = [];
  let start = 0;
  for (const size of expertSizes(I, N)) {
    out.push(Array.from({ length: size }, (_, s) => start + s));
    start += size;
  }
  return out;
}

/** LLaMA-MoE's random split: a seeded Fisher–Yates permutation cut into expertSizes, each part sorted. */
export function randomPartition(I: number, N: number, rng: Rng): number[][] {
  const perm = Array.from({ length: I }, (_, j) => j);
  for (let j = I - 1; j > 0; j--) {
    const k = rng.int(j + 1);
    [perm[j], perm[k]] = [perm[k], perm[j]];
  }
  const out: number[][] = [];
  let start = 0;
  for (const size of expertSizes(I, N)) {
    out.push(perm.slice(start, start + size).sort((a, b) => a - b));
    start += size;
  }
  return out;
}

/**
 * Copies each expert's neurons out of the dense FFN and pads every expert to I_e = the largest part
 * (zero rows of gate_proj/up_proj, zero columns of down_proj; slot −1 in `neurons`). Parts may repeat
 * neurons ('copy'); each part must be non-empty and name neurons in [0, I).
 */
export function gatherExperts(ffn: DenseFfn, parts: number[][]): ExpertWeights {
  checkFfn(ffn);
  const { H, I } = ffn;
  const N = parts.length;
  if (N === 0) throw new Error('gatherExperts: no experts');
  const Ie = Math.max(...parts.map((p) => p.length));
  if (Ie === 0) throw new Error('gatherExperts: every expert is empty');
  const gate_proj = new Float32Array(N * Ie * H); // [N, I_e, H]
  const up_proj = new Float32Array(N * Ie * H);   // [N, I_e, H]
  const down_proj = new Float32Array(N * H * Ie); // [N, H, I_e]
  const neurons: number[][] = [];
  for (let e = 0; e < N; e++) {
    const part = parts[e];
    if (part.length === 0) throw new Error(`gatherExperts: expert ${e} has no neurons`);
    const slots = new Array<number>(Ie).fill(-1);
    for (let s = 0; s < part.length; s++) {
      const j = part[s];
      if (!Number.isInteger(j) || j < 0 || j >= I) throw new Error(`gatherExperts: expert ${e} names neuron ${j}, outside [0, ${I})`);
      slots[s] = j;
      gate_proj.set(ffn.gate_proj.subarray(j * H, (j + 1) * H), (e * Ie + s) * H);
      up_proj.set(ffn.up_proj.subarray(j * H, (j + 1) * H), (e * Ie + s) * H);
      for (let h = 0; h < H; h++) down_proj[(e * H + h) * Ie + s] = ffn.down_proj[h * I + j];
    }
    neurons.push(slots);
  }
  return { nExperts: N, H, expertDim: Ie, gate_proj, up_proj, down_proj, neurons };
}

// ---------------------------------------------------------------------------------------------------
// Co-activation split (MoEfication, adapted to SwiGLU)
//   a = silu(X·Wgᵀ) ⊙ (X·Wuᵀ)                      [n, I]
//   p_j = unit(centre(|a[:, j]|))  (or of the indicators |a| > threshold)   [I, n]
//   S_jk = p_j · p_k                              co-activation similarity (never materialised)
//   balanced k-means on p: neuron j joins the cluster e maximising p_j · c_e = mean_{k ∈ e} S_jk
//   (c_e = mean profile of e's members), under capacities expertSizes(I, N).
// ---------------------------------------------------------------------------------------------------

/** SwiGLU activations a = silu(X·Wgᵀ) ⊙ (X·Wuᵀ) of captured inputs X [n, H]: [n, I] (f64 sums). */
export function ffnActivations(ffn: DenseFfn, X: Float32Array): Float32Array {
  checkFfn(ffn);
  const { H, I } = ffn;
  const n = rowsOf(X, H, 'X');
  const a = new Float32Array(n * I);
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < I; j++) {
      let g = 0;
      let u = 0;
      for (let h = 0; h < H; h++) {
        g += X[t * H + h] * ffn.gate_proj[j * H + h];
        u += X[t * H + h] * ffn.up_proj[j * H + h];
      }
      a[t * I + j] = silu(g) * u;
    }
  }
  return a;
}

/** Each neuron's co-activation profile over the n tokens, centred and unit-length (zero if constant): [I, n]. */
export function coactivationProfiles(act: Float32Array, n: number, I: number, opts: CoactivationOptions = {}): Float32Array {
  if (act.length !== n * I) throw new Error(`activations: expected ${n}×${I} = ${n * I} values, got ${act.length}`);
  const profile = opts.profile ?? 'abs';
  let threshold = 0;
  if (profile === 'binary') threshold = opts.threshold ?? median(act);
  const P = new Float32Array(I * n); // [I, n]
  const col = new Float64Array(n);
  for (let j = 0; j < I; j++) {
    let mean = 0;
    for (let t = 0; t < n; t++) {
      const v = Math.abs(act[t * I + j]);
      col[t] = profile === 'binary' ? (v > threshold ? 1 : 0) : v;
      mean += col[t];
    }
    mean /= n;
    let sq = 0;
    for (let t = 0; t < n; t++) {
      col[t] -= mean;
      sq += col[t] * col[t];
    }
    const inv = sq > 0 ? 1 / Math.sqrt(sq) : 0;
    for (let t = 0; t < n; t++) P[j * n + t] = col[t] * inv;
  }
  return P;
}

/** S = P·Pᵀ, the neuron × neuron co-activation similarity (correlation) matrix: [I, I]. For charts and small I. */
export function coactivationSimilarity(P: Float32Array, I: number, n: number): Float64Array {
  const S = new Float64Array(I * I);
  for (let j = 0; j < I; j++) {
    for (let k = j; k < I; k++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += P[j * n + t] * P[k * n + t];
      S[j * I + k] = s;
      S[k * I + j] = s;
    }
  }
  return S;
}

/**
 * The co-activation split: balanced k-means of the neuron profiles into N groups of expertSizes(I, N)
 * neurons. Groups are then ordered by size (largest first), ties by their smallest neuron, so expert e
 * has expertSizes(I, N)[e] neurons as in the other splits; neurons within a group are sorted.
 */
export function coactivationPartition(
  act: Float32Array, n: number, I: number, N: number, rng: Rng, opts: CoactivationOptions = {},
): number[][] {
  checkExperts(N, I);
  const P = coactivationProfiles(act, n, I, opts);
  const sizes = expertSizes(I, N);
  const { assign } = balancedKmeans(P, I, n, sizes, rng, opts.maxIters ?? 50);
  const groups: number[][] = Array.from({ length: N }, () => []);
  for (let j = 0; j < I; j++) groups[assign[j]].push(j); // ascending j: each group sorted
  return groups.sort((a, b) => b.length - a.length || a[0] - b[0]);
}

export interface BalancedKmeansResult {
  /** cluster of each point: [m] */
  assign: Int32Array;
  iters: number;
  /** the assignment repeated before maxIters */
  converged: boolean;
}

/**
 * Balanced k-means on points P [m, d] into clusters of exactly `sizes[c]` points (Σ sizes = m):
 * k-means++ seeds (from `rng`), then repeat { greedy assignment: all (point, cluster) pairs by
 * similarity p·c descending (ties: lower point, then lower cluster), a pair taken while the point is
 * free and the cluster has room; centroids = member means } until the assignment repeats or maxIters.
 * Deterministic for a seed.
 */
export function balancedKmeans(P: Float32Array, m: number, d: number, sizes: readonly number[], rng: Rng, maxIters = 50): BalancedKmeansResult {
  const k = sizes.length;
  if (sizes.reduce((s, v) => s + v, 0) !== m) throw new Error(`balancedKmeans: sizes sum to ${sizes.reduce((s, v) => s + v, 0)}, not ${m}`);
  const C = new Float64Array(k * d); // [k, d]
  kmeansPlusPlus(P, m, d, k, rng).forEach((p, c) => {
    for (let i = 0; i < d; i++) C[c * d + i] = P[p * d + i];
  });
  const assign = new Int32Array(m).fill(-1);
  const sim = new Float64Array(m * k);
  const order = new Int32Array(m * k);
  let iters = 0;
  let converged = false;
  while (iters < maxIters) {
    iters++;
    // ---- similarities of every point to every centroid
    for (let p = 0; p < m; p++) {
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += P[p * d + i] * C[c * d + i];
        sim[p * k + c] = s;
      }
    }
    // ---- greedy capacity-constrained assignment
    for (let a = 0; a < m * k; a++) order[a] = a;
    order.sort((a, b) => sim[b] - sim[a] || a - b); // a = p·k + c: ties to the lower point, then cluster
    const next = new Int32Array(m).fill(-1);
    const room = sizes.slice();
    let left = m;
    for (let o = 0; o < m * k && left > 0; o++) {
      const p = Math.floor(order[o] / k);
      const c = order[o] % k;
      if (next[p] >= 0 || room[c] === 0) continue;
      next[p] = c;
      room[c]--;
      left--;
    }
    const same = next.every((c, p) => c === assign[p]);
    assign.set(next);
    if (same) {
      converged = true;
      break;
    }
    // ---- centroids: member means
    C.fill(0);
    for (let p = 0; p < m; p++) {
      const c = assign[p];
      for (let i = 0; i < d; i++) C[c * d + i] += P[p * d + i];
    }
    for (let c = 0; c < k; c++) for (let i = 0; i < d; i++) C[c * d + i] /= sizes[c];
  }
  return { assign, iters, converged };
}

// ---------------------------------------------------------------------------------------------------
// k-means (router init) and k-means++ seeding
// ---------------------------------------------------------------------------------------------------

/**
 * k-means++ (Arthur & Vassilvitskii 2007): the first seed uniform, each next one drawn with
 * probability ∝ squared distance to the nearest seed so far (uniform over the points not yet chosen
 * when all distances are 0). Returns k distinct point indices.
 */
export function kmeansPlusPlus(P: ArrayLike<number>, m: number, d: number, k: number, rng: Rng): number[] {
  if (k > m) throw new Error(`k-means++: k = ${k} seeds from only ${m} points`);
  const seeds = [rng.int(m)];
  const D = new Float64Array(m).fill(Infinity);
  while (seeds.length < k) {
    const last = seeds[seeds.length - 1];
    let total = 0;
    for (let p = 0; p < m; p++) {
      let s = 0;
      for (let i = 0; i < d; i++) {
        const v = P[p * d + i] - P[last * d + i];
        s += v * v;
      }
      if (s < D[p]) D[p] = s;
      total += D[p];
    }
    let pick = -1;
    if (total > 0) {
      let r = rng.uniform() * total;
      for (let p = 0; p < m; p++) {
        if (D[p] === 0) continue;
        pick = p;
        r -= D[p];
        if (r < 0) break;
      }
    } else {
      const free = Array.from({ length: m }, (_, p) => p).filter((p) => !seeds.includes(p));
      pick = free[rng.int(free.length)];
    }
    seeds.push(pick);
  }
  return seeds;
}

export interface KmeansOptions {
  /** Lloyd iterations at most (default 100); stops earlier when the assignment repeats. */
  maxIters?: number;
  /**
   * 'euclidean': nearest centroid, centroid = mean. 'cosine' (spherical k-means): points scaled to unit
   * length, largest x̂·c, centroid = unit-length mean.
   */
  metric?: 'euclidean' | 'cosine';
}

export interface KmeansResult {
  /** [k, d] */
  centroids: Float64Array;
  /** [m] */
  assign: Int32Array;
  iters: number;
  converged: boolean;
}

/**
 * Lloyd's k-means of X [m, d] with k-means++ seeding from `rng`. Ties go to the lower cluster; a
 * cluster left empty is re-seeded with the point farthest from (least similar to) its centroid
 * (lowest index on ties). Deterministic for a seed.
 */
export function kmeans(X: Float32Array, d: number, k: number, rng: Rng, opts: KmeansOptions = {}): KmeansResult {
  const m = rowsOf(X, d, 'X');
  const metric = opts.metric ?? 'euclidean';
  const maxIters = opts.maxIters ?? 100;
  const P = new Float64Array(X); // [m, d]
  if (metric === 'cosine') for (let p = 0; p < m; p++) normaliseRow(P, p, d, 1);
  const C = new Float64Array(k * d);
  kmeansPlusPlus(P, m, d, k, rng).forEach((p, c) => C.set(P.subarray(p * d, (p + 1) * d), c * d));
  // score: higher is closer (−squared distance, or cosine)
  const score = (p: number, c: number): number => {
    let s = 0;
    if (metric === 'cosine') {
      for (let i = 0; i < d; i++) s += P[p * d + i] * C[c * d + i];
      return s;
    }
    for (let i = 0; i < d; i++) {
      const v = P[p * d + i] - C[c * d + i];
      s += v * v;
    }
    return -s;
  };
  const assign = new Int32Array(m).fill(-1);
  const best = new Float64Array(m);
  let iters = 0;
  let converged = false;
  while (iters < maxIters) {
    iters++;
    let changed = false;
    for (let p = 0; p < m; p++) {
      let bc = 0;
      let bs = score(p, 0);
      for (let c = 1; c < k; c++) {
        const s = score(p, c);
        if (s > bs) {
          bs = s;
          bc = c;
        }
      }
      best[p] = bs;
      if (assign[p] !== bc) changed = true;
      assign[p] = bc;
    }
    if (!changed) {
      converged = true;
      break;
    }
    // ---- update; an empty cluster takes the worst-served point
    C.fill(0);
    const count = new Int32Array(k);
    for (let p = 0; p < m; p++) {
      count[assign[p]]++;
      for (let i = 0; i < d; i++) C[assign[p] * d + i] += P[p * d + i];
    }
    for (let c = 0; c < k; c++) {
      if (count[c] === 0) {
        let worst = -1;
        for (let p = 0; p < m; p++) if (count[assign[p]] > 1 && (worst < 0 || best[p] < best[worst])) worst = p;
        if (worst < 0) continue;
        const from = assign[worst];
        count[from]--;
        for (let i = 0; i < d; i++) C[from * d + i] -= P[worst * d + i];
        assign[worst] = c;
        best[worst] = Infinity;
        count[c] = 1;
        for (let i = 0; i < d; i++) C[c * d + i] = P[worst * d + i];
      }
    }
    for (let c = 0; c < k; c++) {
      if (metric === 'cosine') normaliseRow(C, c, d, 1);
      else for (let i = 0; i < d; i++) C[c * d + i] /= count[c];
    }
  }
  return { centroids: C, assign, iters, converged };
}

// ---------------------------------------------------------------------------------------------------
// Router init
// ---------------------------------------------------------------------------------------------------

export interface RouterInitOptions {
  nExperts: number;
  H: number;
  method: 'random' | 'kmeans';
  /** std of the random init; k-means rows are scaled to its expected row norm std·√H. Default 0.02 (HF initializer_range). */
  std?: number;
  seed?: number;
  /** 'kmeans': captured FFN inputs (post_attention_layernorm outputs) X [n, H], n ≥ nExperts */
  X?: Float32Array;
  /** 'kmeans': Lloyd iterations at most (default 100) */
  maxIters?: number;
}

/**
 * The router weight [N, H]. 'random': N(0, std²) entries. 'kmeans': spherical k-means (k = N) of the
 * captured states, k-means++ seeds from the Rng; row e = unit centroid e × std·√H. Spherical, and every
 * row the same norm, so that on the captured states argmax_e x·router[e] is exactly the k-means
 * cluster of x (at convergence): the router starts by sending each state to its cluster's expert, at
 * the logit scale of a random init.
 */
export function initRouter(opts: RouterInitOptions): Float32Array {
  const { nExperts: N, H } = opts;
  if (!Number.isInteger(N) || N < 1) throw new Error(`nExperts: expected a positive integer, got ${N}`);
  const std = opts.std ?? 0.02;
  const rng = new Rng(opts.seed ?? 0);
  if (opts.method === 'random') return rng.normals(N * H, std);
  if (opts.method !== 'kmeans') throw new Error(`router init: unknown method ${JSON.stringify(opts.method)} (random, kmeans)`);
  if (!opts.X) throw new Error("router init 'kmeans' needs captured hidden states X [n, H]");
  const { centroids } = kmeans(opts.X, H, N, rng, { metric: 'cosine', maxIters: opts.maxIters });
  for (let e = 0; e < N; e++) normaliseRow(centroids, e, H, std * Math.sqrt(H));
  return new Float32Array(centroids);
}

// ---------------------------------------------------------------------------------------------------
// float64 references (the §4.1 identity)
// ---------------------------------------------------------------------------------------------------

/** The dense FFN (eq. 2) on one token x [H], in float64: [H]. */
export function ffnRef(ffn: DenseFfn, x: ArrayLike<number>): Float64Array {
  return swigluRef(ffn.gate_proj, ffn.up_proj, ffn.down_proj, 0, ffn.I, ffn.H, x);
}

/** Expert e (eq. 3) on one token x [H], in float64: [H]. */
export function expertRef(ex: ExpertWeights, e: number, x: ArrayLike<number>): Float64Array {
  return swigluRef(ex.gate_proj, ex.up_proj, ex.down_proj, e, ex.expertDim, ex.H, x);
}

function swigluRef(
  Wg: Float32Array, Wu: Float32Array, Wd: Float32Array, e: number, I: number, H: number, x: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(H);
  for (let j = 0; j < I; j++) {
    let g = 0;
    let u = 0;
    for (let h = 0; h < H; h++) {
      g += x[h] * Wg[(e * I + j) * H + h];
      u += x[h] * Wu[(e * I + j) * H + h];
    }
    const a = silu(g) * u;
    for (let h = 0; h < H; h++) out[h] += Wd[(e * H + h) * I + j] * a;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------

function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

function normaliseRow(A: Float64Array, r: number, d: number, norm: number): void {
  let s = 0;
  for (let i = 0; i < d; i++) s += A[r * d + i] * A[r * d + i];
  if (s === 0) return;
  const f = norm / Math.sqrt(s);
  for (let i = 0; i < d; i++) A[r * d + i] *= f;
}

function median(a: Float32Array): number {
  const s = Float64Array.from(a, Math.abs).sort();
  const m = s.length;
  return m % 2 ? s[(m - 1) / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
}

function rowsOf(X: Float32Array, d: number, name: string): number {
  if (X.length === 0 || X.length % d !== 0) throw new Error(`${name}: length ${X.length} is not a positive multiple of ${d}`);
  return X.length / d;
}

function checkFfn(f: DenseFfn): void {
  const { H, I } = f;
  if (!Number.isInteger(H) || H < 1 || !Number.isInteger(I) || I < 1) throw new Error(`dense FFN: bad dims H = ${H}, I = ${I}`);
  if (f.gate_proj.length !== I * H) throw new Error(`gate_proj: expected [${I}, ${H}], got ${f.gate_proj.length} values`);
  if (f.up_proj.length !== I * H) throw new Error(`up_proj: expected [${I}, ${H}], got ${f.up_proj.length} values`);
  if (f.down_proj.length !== H * I) throw new Error(`down_proj: expected [${H}, ${I}], got ${f.down_proj.length} values`);
}

function checkExperts(N: number, I: number): void {
  if (!Number.isInteger(N) || N < 1) throw new Error(`nExperts: expected a positive integer, got ${N}`);
  if (N > I) throw new Error(`nExperts ${N} > intermediate_size ${I}: some expert would have no neurons`);
}
