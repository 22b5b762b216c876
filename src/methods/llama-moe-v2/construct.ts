// LLaMA-MoE v2 (arXiv 2411.15708), MLP MoE construction from a dense SwiGLU FFN
//   f(x) = Wd (silu(Wg x) ⊙ Wu x),  intermediate neurons j = 0..I−1.
// Two kinds:
//   vanilla:  the I neurons partitioned into N routed experts E_1..E_N;
//   residual: the S most-used neurons (stats.ts: activation frequency or mean magnitude) form an
//             always-on shared expert E_S; the other I − S are partitioned into N routed experts.
// The block is y = E_S(x) + s · Σ_{e ∈ top-k} p_e(x) E_e(x), p the router's softmax (src/moe/block.ts,
// src/train/moe.ts). The scale factor s is folded into the routed experts' down_proj (s·Wd_e): with
// s = N, a router giving every expert the same weight 1/N with all N active sums the experts with weight 1,
// which is the dense FFN exactly (Σ_e E_e = the dense neurons not in E_S); for N a power of two the
// multiplication by N is exact in f32. Post-training then starts from experts at the dense scale.
// Partition of the routed neurons: 'cluster' (balanced k-means of the neurons' unit gate_proj rows: the
// gate row decides on which inputs a neuron fires, so neurons with close gate rows fire together; a proxy
// for co-activation that needs no per-token activations on the host) or 'random' (LLaMA-MoE's random split).
// Reuses LaDiMo's construction helpers (src/methods/ladimo/construct.ts): gatherExperts, expertSizes,
// randomPartition, balancedKmeans.
import { Rng } from '../../data/rng.ts';
import {
  balancedKmeans, expertSizes, gatherExperts, randomPartition, type DenseFfn, type ExpertWeights,
} from '../ladimo/construct.ts';
import type { NeuronStats } from './stats.ts';

export type MlpKind = 'vanilla' | 'residual';
export type NeuronPartition = 'cluster' | 'random';

export interface MlpMoeOptions {
  kind: MlpKind;
  /** routed experts N */
  nExperts: number;
  /** residual: neurons in the shared expert, 1..I − N */
  sharedNeurons?: number;
  /** residual: the neuron statistics the shared expert is chosen by */
  stats?: NeuronStats;
  /** residual: which statistic ranks the neurons (default 'frequency') */
  sharedBy?: SharedBy;
  partition: NeuronPartition;
  /** scale factor s folded into the routed experts' down_proj; default N (see above) */
  scale?: number;
  seed?: number;
  /** balanced k-means iterations at most (default 50) */
  maxIters?: number;
}

export interface MlpMoe {
  /** the routed experts, down_proj already scaled by `scale` */
  experts: ExpertWeights;
  /** residual: the shared expert, a dense SwiGLU over `sharedNeurons`; vanilla: null */
  shared: DenseFfn | null;
  /** dense neuron of each shared-expert slot, ascending */
  sharedNeurons: number[];
  scale: number;
}

/** What ranks the neurons for the shared expert: activation frequency (ties by magnitude) or mean magnitude (ties by frequency). */
export type SharedBy = 'frequency' | 'magnitude';

/** The S neurons used most by `by`, then lower index on full ties; ascending. */
export function mostUsedNeurons(stats: NeuronStats, S: number, by: SharedBy = 'frequency'): number[] {
  const I = stats.frequency.length;
  if (stats.magnitude.length !== I) throw new Error(`neuron stats: ${I} frequencies but ${stats.magnitude.length} magnitudes`);
  if (!Number.isInteger(S) || S < 0 || S > I) throw new Error(`shared neurons: expected an integer in [0, ${I}], got ${S}`);
  const order = Array.from({ length: I }, (_, j) => j);
  if (by !== 'frequency' && by !== 'magnitude') throw new Error(`v2.sharedBy: unknown ${JSON.stringify(by)} (frequency, magnitude)`);
  const [first, second] = by === 'frequency' ? [stats.frequency, stats.magnitude] : [stats.magnitude, stats.frequency];
  order.sort((a, b) => first[b] - first[a] || second[b] - second[a] || a - b);
  return order.slice(0, S).sort((a, b) => a - b);
}

/** Partitions `neurons` (dense indices) into N routed experts of expertSizes(|neurons|, N). */
export function partitionNeurons(ffn: DenseFfn, neurons: readonly number[], N: number, how: NeuronPartition, rng: Rng, maxIters = 50): number[][] {
  const m = neurons.length;
  if (how === 'random') return randomPartition(m, N, rng).map((p) => p.map((i) => neurons[i]));
  if (how !== 'cluster') throw new Error(`neuron partition: unknown ${JSON.stringify(how)} (cluster, random)`);
  const { H } = ffn;
  const P = new Float32Array(m * H); // unit gate_proj rows of the neurons
  neurons.forEach((j, i) => {
    const row = ffn.gate_proj.subarray(j * H, (j + 1) * H);
    const norm = Math.hypot(...row);
    for (let h = 0; h < H; h++) P[i * H + h] = norm > 0 ? row[h] / norm : 0;
  });
  const { assign } = balancedKmeans(P, m, H, expertSizes(m, N), rng, maxIters);
  const groups: number[][] = Array.from({ length: N }, () => []);
  for (let i = 0; i < m; i++) groups[assign[i]].push(neurons[i]);
  for (const g of groups) g.sort((a, b) => a - b);
  // largest first, ties by the smallest neuron: expert e has expertSizes(m, N)[e] neurons as in LaDiMo's splits
  return groups.sort((a, b) => b.length - a.length || a[0] - b[0]);
}

/** The vanilla or residual MLP MoE of one dense FFN. */
export function constructMlpMoe(ffn: DenseFfn, o: MlpMoeOptions): MlpMoe {
  const { I, H } = ffn;
  const N = o.nExperts;
  if (!Number.isInteger(N) || N < 1) throw new Error(`v2.experts: expected a positive integer, got ${N}`);
  const scale = o.scale ?? N;
  if (!Number.isFinite(scale) || scale <= 0) throw new Error(`MLP MoE scale factor: expected a finite number > 0, got ${scale}`);
  const rng = new Rng(o.seed ?? 0);
  let sharedNeurons: number[] = [];
  if (o.kind === 'residual') {
    const S = o.sharedNeurons;
    if (S === undefined || !Number.isInteger(S) || S < 1 || S > I - N) {
      throw new Error(`residual MLP MoE: shared neurons must be an integer in [1, ${I - N}] (round(v2.sharedRatio · I), I = ${I}, N = ${N} routed experts of ≥ 1 neuron), got ${S}`);
    }
    if (!o.stats) throw new Error('residual MLP MoE: needs the neuron statistics (stats.ts) to choose the shared expert');
    if (o.stats.frequency.length !== I) throw new Error(`residual MLP MoE: neuron statistics for ${o.stats.frequency.length} neurons, the FFN has ${I}`);
    sharedNeurons = mostUsedNeurons(o.stats, S, o.sharedBy);
  } else if (o.kind !== 'vanilla') {
    throw new Error(`v2.mlp: unknown MLP MoE kind ${JSON.stringify(o.kind)} (vanilla, residual)`);
  }
  const inShared = new Set(sharedNeurons);
  const routed = Array.from({ length: I }, (_, j) => j).filter((j) => !inShared.has(j));
  if (N > routed.length) throw new Error(`v2.experts ${N} > the ${routed.length} routed neurons: some expert would have no neurons`);
  const experts = gatherExperts(ffn, partitionNeurons(ffn, routed, N, o.partition, rng, o.maxIters));
  for (let i = 0; i < experts.down_proj.length; i++) experts.down_proj[i] *= scale;
  let shared: DenseFfn | null = null;
  if (sharedNeurons.length) {
    const one = gatherExperts(ffn, [sharedNeurons]);
    shared = { H, I: sharedNeurons.length, gate_proj: one.gate_proj, up_proj: one.up_proj, down_proj: one.down_proj };
  }
  return { experts, shared, sharedNeurons, scale };
}

/**
 * Activated FFN parameters per token of an MLP MoE with top-k routing, as a share of the dense FFN's 3·H·I:
 * (S + k·I_e) / I, the router's N·H aside.
 */
export function activatedShare(moe: MlpMoe, I: number, topK: number): number {
  return (moe.sharedNeurons.length + topK * moe.experts.expertDim) / I;
}
