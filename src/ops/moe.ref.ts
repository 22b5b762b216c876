// float64 references for moe.ts: routing (softmax, top-k, dynamic k, renorm), the stable permutation,
// a DENSE block that evaluates every expert on every token and weights it by the routing mask, the
// backward ops and the Switch-Transformer load-balancing loss. Plain loops, no GPU ordering tricks.
import type { RoutingOptions } from './moe.ts';

const NONE = 0xffffffff;
const TILE = 64;

export interface MoeDims { T: number; H: number; I: number; E: number }

export interface RoutingRef {
  probs: Float64Array;    // [T, E]
  topIds: Uint32Array;    // [T, kMax], NONE unused
  topW: Float64Array;     // [T, kMax], 0 unused
  k: Uint32Array;         // [T] experts chosen per token
  kMax: number;
}

export function softmaxRef(z: ArrayLike<number>, T: number, E: number): Float64Array {
  const p = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    let m = -Infinity;
    for (let e = 0; e < E; e++) m = Math.max(m, z[t * E + e]);
    let s = 0;
    for (let e = 0; e < E; e++) s += Math.exp(z[t * E + e] - m);
    for (let e = 0; e < E; e++) p[t * E + e] = Math.exp(z[t * E + e] - m) / s;
  }
  return p;
}

/** Experts of one token ranked by probability, ties to the lower index. */
function ranked(probs: ArrayLike<number>, t: number, E: number): number[] {
  const order = Array.from({ length: E }, (_, e) => e);
  return order.sort((a, b) => probs[t * E + b] - probs[t * E + a] || a - b);
}

function tokenK(wMax: number, opts: RoutingOptions): number {
  if (!opts.dynamic) return opts.topK!;
  const { alpha, beta } = opts.dynamic;
  return wMax >= alpha ? 1 : wMax <= beta ? 3 : 2;
}

export function routeRef(logits: ArrayLike<number>, T: number, E: number, opts: RoutingOptions): RoutingRef {
  const kMax = opts.dynamic ? 3 : opts.topK!;
  const probs = softmaxRef(logits, T, E);
  const topIds = new Uint32Array(T * kMax).fill(NONE);
  const topW = new Float64Array(T * kMax);
  const k = new Uint32Array(T);
  for (let t = 0; t < T; t++) {
    const order = ranked(probs, t, E);
    k[t] = tokenK(probs[t * E + order[0]], opts);
    let sum = 0;
    for (let j = 0; j < k[t]; j++) sum += probs[t * E + order[j]];
    for (let j = 0; j < k[t]; j++) {
      topIds[t * kMax + j] = order[j];
      topW[t * kMax + j] = probs[t * E + order[j]] / (opts.normTopK ? sum : 1);
    }
  }
  return { probs, topIds, topW, k, kMax };
}

/**
 * Per token, the distance in probability to the nearest routing decision: gaps between consecutive
 * ranked experts up to the k-th (which picks, in which order) and, under dynamic k, from the largest
 * weight to alpha and beta. Inputs with a small margin may route differently in f32.
 */
export function routingMarginRef(probs: ArrayLike<number>, T: number, E: number, opts: RoutingOptions): Float64Array {
  const margin = new Float64Array(T).fill(Infinity);
  for (let t = 0; t < T; t++) {
    const order = ranked(probs, t, E);
    const pr = (j: number) => probs[t * E + order[j]];
    const k = tokenK(pr(0), opts);
    let m = Infinity;
    for (let j = 0; j < k && j + 1 < E; j++) m = Math.min(m, pr(j) - pr(j + 1));
    if (opts.dynamic) m = Math.min(m, Math.abs(pr(0) - opts.dynamic.alpha), Math.abs(pr(0) - opts.dynamic.beta));
    margin[t] = m;
  }
  return margin;
}

export interface PermutationRef {
  slotToken: Uint32Array;     // [T·kMax]
  tokenSlot: Uint32Array;     // [T, kMax]
  expertOffsets: Uint32Array; // [E+1]
  tileOffsets: Uint32Array;   // [E+1]
}

/** Slots grouped by expert; within an expert, its assignments in (token, j) order. */
export function permuteRef(topIds: ArrayLike<number>, T: number, E: number, kMax: number): PermutationRef {
  const slotToken = new Uint32Array(T * kMax).fill(NONE);
  const tokenSlot = new Uint32Array(T * kMax).fill(NONE);
  const expertOffsets = new Uint32Array(E + 1);
  const tileOffsets = new Uint32Array(E + 1);
  let slot = 0;
  for (let e = 0; e < E; e++) {
    expertOffsets[e] = slot;
    for (let a = 0; a < T * kMax; a++) {
      if (topIds[a] !== e) continue;
      tokenSlot[a] = slot;
      slotToken[slot++] = Math.floor(a / kMax);
    }
    tileOffsets[e + 1] = tileOffsets[e] + Math.ceil((slot - expertOffsets[e]) / TILE);
  }
  expertOffsets[E] = slot;
  return { slotToken, tokenSlot, expertOffsets, tileOffsets };
}

/** down(silu(gate(x)) ⊙ up(x)) of every expert on every token: [T, E, H]. Wg, Wu: [E, I, H]; Wd: [E, H, I]. */
export function expertOutputsRef(
  x: ArrayLike<number>, Wg: ArrayLike<number>, Wu: ArrayLike<number>, Wd: ArrayLike<number>, d: MoeDims,
): Float64Array {
  const { T, H, I, E } = d;
  const out = new Float64Array(T * E * H);
  const h = new Float64Array(I);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) {
      for (let i = 0; i < I; i++) {
        let g = 0;
        let u = 0;
        for (let c = 0; c < H; c++) {
          g += x[t * H + c] * Wg[(e * I + i) * H + c];
          u += x[t * H + c] * Wu[(e * I + i) * H + c];
        }
        h[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let c = 0; c < H; c++) {
        let s = 0;
        for (let i = 0; i < I; i++) s += h[i] * Wd[(e * H + c) * I + i];
        out[(t * E + e) * H + c] = s;
      }
    }
  }
  return out;
}

/** The routing as a dense [T, E] weight matrix: topW at the selected experts, 0 elsewhere. */
export function routingMaskRef(topIds: ArrayLike<number>, topW: ArrayLike<number>, T: number, E: number, kMax: number): Float64Array {
  const mask = new Float64Array(T * E);
  for (let a = 0; a < T * kMax; a++) {
    if (topIds[a] !== NONE) mask[Math.floor(a / kMax) * E + topIds[a]] = topW[a];
  }
  return mask;
}

/** y[t] = Σ_e mask[t,e] · outs[t,e] over every expert. */
export function mixRef(mask: ArrayLike<number>, outs: ArrayLike<number>, T: number, E: number, H: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) {
      const w = mask[t * E + e];
      for (let c = 0; c < H; c++) y[t * H + c] += w * outs[(t * E + e) * H + c];
    }
  }
  return y;
}

/** The dense block: logits = x·Wrᵀ, routing, every expert on every token, weighted by the routing mask. */
export function moeDenseRef(
  x: ArrayLike<number>, Wr: ArrayLike<number>, Wg: ArrayLike<number>, Wu: ArrayLike<number>, Wd: ArrayLike<number>,
  d: MoeDims, opts: RoutingOptions,
): { logits: Float64Array; routing: RoutingRef; outs: Float64Array; y: Float64Array } {
  const logits = routerLogitsRef(x, Wr, d);
  const routing = routeRef(logits, d.T, d.E, opts);
  const outs = expertOutputsRef(x, Wg, Wu, Wd, d);
  const y = mixRef(routingMaskRef(routing.topIds, routing.topW, d.T, d.E, routing.kMax), outs, d.T, d.E, d.H);
  return { logits, routing, outs, y };
}

/** x·Wrᵀ: [T, E]. */
export function routerLogitsRef(x: ArrayLike<number>, Wr: ArrayLike<number>, d: Pick<MoeDims, 'T' | 'H' | 'E'>): Float64Array {
  const { T, H, E } = d;
  const z = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) {
      let s = 0;
      for (let c = 0; c < H; c++) s += x[t * H + c] * Wr[e * H + c];
      z[t * E + e] = s;
    }
  }
  return z;
}

/** y[t] = Σ_j topW[t,j] · ys[tokenSlot[t,j]]. */
export function combineRef(
  ys: ArrayLike<number>, topW: ArrayLike<number>, tokenSlot: ArrayLike<number>, T: number, H: number, kMax: number,
): Float64Array {
  const y = new Float64Array(T * H);
  for (let a = 0; a < T * kMax; a++) {
    const s = tokenSlot[a];
    if (s === NONE) continue;
    const t = Math.floor(a / kMax);
    for (let c = 0; c < H; c++) y[t * H + c] += topW[a] * ys[s * H + c];
  }
  return y;
}

/** dTopW[t,j] = dy[t]·ys[s_tj]; dys[s_tj] = topW[t,j]·dy[t]; other rows of dys 0. */
export function combineBackwardRef(
  dy: ArrayLike<number>, ys: ArrayLike<number>, topW: ArrayLike<number>, tokenSlot: ArrayLike<number>,
  T: number, H: number, kMax: number,
): { dTopW: Float64Array; dys: Float64Array } {
  const dTopW = new Float64Array(T * kMax);
  const dys = new Float64Array(T * kMax * H);
  for (let a = 0; a < T * kMax; a++) {
    const s = tokenSlot[a];
    if (s === NONE) continue;
    const t = Math.floor(a / kMax);
    let dot = 0;
    for (let c = 0; c < H; c++) {
      dot += dy[t * H + c] * ys[s * H + c];
      dys[s * H + c] = topW[a] * dy[t * H + c];
    }
    dTopW[a] = dot;
  }
  return { dTopW, dys };
}

/** Softmax backward, row by row: dz = p ⊙ (dp − Σ_e p_e·dp_e). */
export function softmaxBackwardRef(p: ArrayLike<number>, dp: ArrayLike<number>, T: number, E: number): Float64Array {
  const dz = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    let pdp = 0;
    for (let e = 0; e < E; e++) pdp += p[t * E + e] * dp[t * E + e];
    for (let e = 0; e < E; e++) dz[t * E + e] = p[t * E + e] * (dp[t * E + e] - pdp);
  }
  return dz;
}

/**
 * dLogits from dTopW through the top-k weights and the softmax. Without renorm w_j = p_{e_j}; with it
 * w_j = p_{e_j}/S, S = Σ_i p_{e_i}, so ∂L/∂p_{e_j} = (dw_j − Σ_i dw_i·w_i)/S. Unselected experts: dp = 0.
 */
export function routerBackwardRef(
  dTopW: ArrayLike<number>, probs: ArrayLike<number>, topIds: ArrayLike<number>,
  T: number, E: number, kMax: number, normTopK: boolean,
): Float64Array {
  const dp = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    const sel: number[] = [];
    for (let j = 0; j < kMax; j++) if (topIds[t * kMax + j] !== NONE) sel.push(j);
    let S = 0;
    for (const j of sel) S += probs[t * E + topIds[t * kMax + j]];
    let c = 0;
    for (const j of sel) c += (dTopW[t * kMax + j] * probs[t * E + topIds[t * kMax + j]]) / S;
    for (const j of sel) {
      const g = dTopW[t * kMax + j];
      dp[t * E + topIds[t * kMax + j]] = normTopK ? (g - c) / S : g;
    }
  }
  return softmaxBackwardRef(probs, dp, T, E);
}

/**
 * Switch Transformer (arXiv 2101.03961) eq. 4–6 with N = E: L_aux = N·Σ_i f_i·P_i, f_i = share of the
 * assignments routed to i (constant), P_i = (1/T)·Σ_t p_{t,i}. dLogits = ∂L_aux/∂z through the softmax,
 * from ∂L_aux/∂p_{t,i} = N·f_i/T.
 */
export function auxLossRef(
  probs: ArrayLike<number>, topIds: ArrayLike<number>, T: number, E: number, kMax: number,
): { loss: number; f: Float64Array; dLogits: Float64Array } {
  const f = new Float64Array(E);
  let assignments = 0;
  for (let a = 0; a < T * kMax; a++) {
    if (topIds[a] === NONE) continue;
    f[topIds[a]]++;
    assignments++;
  }
  for (let e = 0; e < E; e++) f[e] /= assignments;
  let loss = 0;
  for (let e = 0; e < E; e++) {
    let P = 0;
    for (let t = 0; t < T; t++) P += probs[t * E + e];
    loss += f[e] * (P / T);
  }
  const dp = new Float64Array(T * E);
  for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) dp[t * E + e] = (E * f[e]) / T;
  return { loss: E * loss, f, dLogits: softmaxBackwardRef(probs, dp, T, E) };
}

/** softplus(v) = log(1 + e^v), in float64 without overflow. */
const softplus = (v: number) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));

/** Noisy gating: z + ε ⊙ (softplus(m) + epsilon) · invTau, elementwise over [T, E]. */
export function noisyLogitsRef(z: ArrayLike<number>, m: ArrayLike<number>, normals: ArrayLike<number>, epsilon: number, invTau: number): Float64Array {
  return Float64Array.from(z, (v, i) => v + normals[i] * (softplus(m[i]) + epsilon) * invTau);
}

/** dm = dz ⊙ ε ⊙ sigmoid(m) · invTau. */
export function noisyLogitsBackwardRef(dz: ArrayLike<number>, m: ArrayLike<number>, normals: ArrayLike<number>, invTau: number): Float64Array {
  return Float64Array.from(dz, (d, i) => (d * normals[i] * invTau) / (1 + Math.exp(-m[i])));
}
