// DIVE (arXiv 2506.09351), "Pruning-based Expert Reconstruction": every expert is the dense FFN pruned
// with FLAP (An et al., "Fluctuation-based Adaptive Structured Pruning", arXiv 2312.11983) calibrated on
// one cluster's data. This file: FLAP's channel importance, pruning and bias compensation for the SwiGLU
// FFN, whose down_proj input is X = silu(gate_proj h) ⊙ up_proj h [tokens, I]:
//   S_j = Var_n(X_{n,j}) · ‖W_down[:, j]‖²          (the fluctuation metric; variance with 1/(n−1))
//   keep the round(r·I) channels of highest S_j     (per layer: FLAP's uniform-structure variant, as the
//                                                     issue asks for a kept ratio per layer)
//   b = Σ_{j pruned} W_down[:, j] · mean_n(X_{n,j})  (bias compensation: the pruned channels' mean output)
// so the pruned FFN's mean output over the calibration tokens equals the dense FFN's exactly.
// The statistics are taken on the GPU (ops/moments.ts) while the calibration text streams through the
// dense model: FLAP's own code also feeds each layer the dense layer outputs, never pruned ones.
import type { Tensor } from '../../gpu/tensor.ts';
import type { LlamaModel } from '../../model/llama.ts';
import { swiglu } from '../../ops/activation.ts';
import { matmul } from '../../ops/matmul.ts';
import { columnMoments } from '../../ops/moments.ts';
import type { DenseFfn } from '../ladimo/construct.ts';

/** Per-channel moments of one layer's down_proj input over n calibration tokens. */
export interface ChannelStats {
  n: number;
  /** mean_n X_{n,j}: [I] */
  mean: Float64Array;
  /** Σ_n (X_{n,j} − mean_j)²: [I] */
  m2: Float64Array;
}

/** A FLAP-pruned FFN: the channels kept (ascending) and the compensating down_proj bias [H]. */
export interface PrunedFfn {
  kept: number[];
  bias: Float32Array;
}

// ---------------------------------------------------------------------------------------------- statistics

/**
 * Runs the dense model over `windows` (each from position 0) until `tokens` tokens have passed, and
 * returns every layer's channel statistics. The model must be dense: each layer's FFN slot computes the
 * dense SwiGLU FFN itself and merges X into running moments on the GPU; the dense slots are back when
 * this returns.
 */
export async function channelStats(model: LlamaModel, windows: readonly number[][], tokens: number): Promise<ChannelStats[]> {
  const { gpu, config: c } = model;
  const I = c.hiddenDim;
  const total = Math.min(tokens, windows.reduce((s, w) => s + w.length, 0));
  if (total < 2) throw new Error(`FLAP statistics: ${total} calibration tokens; the variance needs at least 2`);
  const scratch = ['gate', 'up', 'X'].map((n) => gpu.tensor([model.chunk, I], 'f32', `flap.${n}`));
  const S = model.weights.layers.map((_, l) => gpu.tensor([2, I], 'f32', `flap.moments.${l}`));
  let n = 0; // tokens merged before the chunk being recorded
  try {
    model.weights.layers.forEach((L, l) => {
      model.ffn[l] = (x, out) => {
        const [gate, up, X] = scratch.map((t) => t.rows(x.shape[0]));
        matmul(x, L.gate_proj, { transB: true, out: gate });
        matmul(x, L.up_proj, { transB: true, out: up });
        swiglu(gate, up, { out: X });
        columnMoments(X, S[l], n);
        matmul(X, L.down_proj, { transB: true, out });
      };
    });
    for (let w = 0; w < windows.length && n < total; w++) {
      model.reset();
      for (let start = 0; start < windows[w].length && n < total; start += model.chunk) {
        const ids = windows[w].slice(start, Math.min(start + model.chunk, start + total - n));
        model.forward(ids);
        n += ids.length;
      }
      await gpu.flush();
    }
    const out: ChannelStats[] = [];
    for (const s of S) {
      const v = (await s.read()) as Float32Array;
      out.push({ n, mean: Float64Array.from(v.subarray(0, I)), m2: Float64Array.from(v.subarray(I)) });
    }
    return out;
  } finally {
    model.weights.layers.forEach((_, l) => model.restoreDense(l));
    for (const t of [...scratch, ...S] as Tensor[]) t.release();
  }
}

/** Unbiased per-channel variance M2/(n − 1): [I]. */
export function variance(s: ChannelStats): Float64Array {
  if (s.n < 2) throw new Error(`variance: ${s.n} tokens; needs at least 2`);
  return s.m2.map((v) => v / (s.n - 1));
}

/** The statistics of the union of the parts' tokens (Chan et al.'s pairwise merge, in float64). */
export function poolStats(parts: readonly ChannelStats[]): ChannelStats {
  if (!parts.length) throw new Error('poolStats: no statistics to pool');
  const I = parts[0].mean.length;
  const mean = new Float64Array(I);
  const m2 = new Float64Array(I);
  let n = 0;
  for (const p of parts) {
    if (p.mean.length !== I) throw new Error(`poolStats: ${p.mean.length} channels where the first part has ${I}`);
    for (let j = 0; j < I; j++) {
      const delta = p.mean[j] - mean[j];
      mean[j] += (delta * p.n) / (n + p.n);
      m2[j] += p.m2[j] + (delta * delta * n * p.n) / (n + p.n);
    }
    n += p.n;
  }
  return { n, mean, m2 };
}

// ---------------------------------------------------------------------------------------------- FLAP

/** S_j = Var_n(X_{n,j}) · ‖W_down[:, j]‖²: [I]. down_proj: [H, I]. */
export function flapScores(stats: ChannelStats, down_proj: Float32Array, H: number, I: number): Float64Array {
  if (down_proj.length !== H * I) throw new Error(`down_proj: expected [${H}, ${I}], got ${down_proj.length} values`);
  if (stats.mean.length !== I) throw new Error(`channel statistics: ${stats.mean.length} channels, the FFN has ${I}`);
  const S = variance(stats);
  for (let j = 0; j < I; j++) {
    let norm = 0;
    for (let h = 0; h < H; h++) norm += down_proj[h * I + j] ** 2;
    S[j] *= norm;
  }
  return S;
}

/** Channels a kept ratio r leaves of I: round(r·I), at least 1. */
export function keptCount(I: number, ratio: number): number {
  if (!(ratio > 0 && ratio <= 1)) throw new Error(`kept ratio must be in (0, 1], got ${ratio}`);
  return Math.max(1, Math.round(ratio * I));
}

/** The k channels of highest score (ties to the lower index), ascending. */
export function topChannels(scores: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: scores.length }, (_, j) => j).sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/** b_h = Σ_{j not kept} W_down[h, j] · mean_j: [H], summed in float64. */
export function compensationBias(down_proj: Float32Array, H: number, I: number, kept: readonly number[], mean: ArrayLike<number>): Float32Array {
  const pruned = new Uint8Array(I).fill(1);
  for (const j of kept) pruned[j] = 0;
  const b = new Float32Array(H);
  for (let h = 0; h < H; h++) {
    let s = 0;
    for (let j = 0; j < I; j++) if (pruned[j]) s += down_proj[h * I + j] * mean[j];
    b[h] = s;
  }
  return b;
}

/** FLAP on one FFN: keep round(ratio·I) channels by S_j and compensate the rest with a bias. */
export function flapPrune(ffn: DenseFfn, stats: ChannelStats, ratio: number): PrunedFfn {
  const kept = topChannels(flapScores(stats, ffn.down_proj, ffn.H, ffn.I), keptCount(ffn.I, ratio));
  return { kept, bias: compensationBias(ffn.down_proj, ffn.H, ffn.I, kept, stats.mean) };
}
