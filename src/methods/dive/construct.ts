// DIVE (arXiv 2506.09351), "Pruning-based Expert Reconstruction" and MoE assembly: each layer's FFN is
// pruned once per domain cluster with FLAP (importance.ts) on that cluster's pooled calibration data,
// giving N experts of round(r·I) kept channels, each with its compensating down_proj bias; a fresh noisy
// top-k router (LLaMA-MoE's TopKBalancedNoisyGate, Zhu et al. arXiv 2406.16554, with a linear gate)
// chooses among them. Embeddings, attention and norms stay as they are.
// The baselines are built the same way, so only what the paper varies differs:
//   FLAP          one pruned FFN calibrated on all the data (a single expert, always taken);
//   random split  LLaMA-MoE: each expert keeps random channels (drawn per expert, so experts overlap
//                 when N·r > 1, as the paper's equal-activation comparison needs), compensated with the
//                 bias of all the data;
//   DIVE w/o affinity mining   the clusters are the domains grouped by name (cluster.ts labelClusters).
// The output is what the later retraining stages train (router first, then the experts with LoRA):
// per layer the experts, their biases and the router with its noise weights.
import { Rng } from '../../data/rng.ts';
import type { Gpu } from '../../gpu/device.ts';
import type { MoeLayer } from '../../moe/block.ts';
import { gatherExperts, initRouter, type DenseFfn, type ExpertWeights } from '../ladimo/construct.ts';
import { compensationBias, flapPrune, keptCount, poolStats, type ChannelStats } from './importance.ts';

/**
 * LLaMA-MoE's noisy top-k gate with a linear gate network. While training, the logits are
 * x·weightᵀ + ε ⊙ (softplus(x·noiseᵀ) + epsilon), ε ~ N(0, 1); evaluated, they are x·weightᵀ alone,
 * so the constructed model's perplexity before retraining has no noise in it.
 */
export interface NoisyRouter {
  /** [N, H], N(0, 0.02²) (HF initializer_range) */
  weight: Float32Array;
  /** [N, H], zeros: LLaMA-MoE starts its noise weights at zero, so the noise starts at `epsilon` */
  noise: Float32Array;
  /** the noise's floor (LLaMA-MoE's noise_epsilon) */
  epsilon: number;
  /** seeds the noise ε of each training sequence (src/train/moe.ts gateNormals) */
  seed: number;
}

/** One MoE layer as constructed, host-side (HF layouts, as ladimo/construct.ts's ExpertWeights). */
export interface ConstructedLayer {
  experts: ExpertWeights;
  /** each expert's down_proj bias: [N, H] */
  bias: Float32Array;
  /** null for the FLAP baseline's single expert, which every token takes with weight 1 */
  router: NoisyRouter | null;
  topK: number;
}

/** A fresh router for N experts over hidden size H. */
export function freshRouter(N: number, H: number, epsilon: number, seed: number): NoisyRouter {
  if (!(epsilon >= 0)) throw new Error(`router noise epsilon must be ≥ 0, got ${epsilon}`);
  return { weight: initRouter({ nExperts: N, H, method: 'random', seed }), noise: new Float32Array(N * H), epsilon, seed };
}

/** Experts pruned from one FFN, one per set of statistics, with their biases. */
export function prunedExperts(ffn: DenseFfn, stats: readonly ChannelStats[], ratio: number): { experts: ExpertWeights; bias: Float32Array } {
  const pruned = stats.map((s) => flapPrune(ffn, s, ratio));
  return stackBiases(gatherExperts(ffn, pruned.map((p) => p.kept)), pruned.map((p) => p.bias));
}

/** The FLAP baseline's layer: one FFN pruned with all the calibration data. */
export function flapLayer(ffn: DenseFfn, all: ChannelStats, ratio: number): ConstructedLayer {
  return { ...prunedExperts(ffn, [all], ratio), router: null, topK: 1 };
}

/**
 * DIVE's layer: expert c is the FFN pruned with the pooled statistics of the domains labelled c
 * (labels: cluster of each domain, 0..N−1, every cluster non-empty).
 */
export function clusterLayer(
  ffn: DenseFfn, domainStats: readonly ChannelStats[], labels: readonly number[], ratio: number, topK: number, router: NoisyRouter,
): ConstructedLayer {
  if (labels.length !== domainStats.length) throw new Error(`clusters: ${labels.length} labels for ${domainStats.length} domains`);
  const N = Math.max(...labels) + 1;
  const pooled: ChannelStats[] = [];
  for (let c = 0; c < N; c++) {
    const members = domainStats.filter((_, d) => labels[d] === c);
    if (!members.length) throw new Error(`clusters: cluster ${c} of ${N} has no domain`);
    pooled.push(poolStats(members));
  }
  return { ...prunedExperts(ffn, pooled, ratio), router, topK };
}

/** LLaMA-MoE's random split at DIVE's sizes: N experts of random channels, biases from all the data. */
export function randomLayer(ffn: DenseFfn, all: ChannelStats, N: number, ratio: number, topK: number, router: NoisyRouter, rng: Rng): ConstructedLayer {
  const k = keptCount(ffn.I, ratio);
  const parts = Array.from({ length: N }, () => {
    const perm = Array.from({ length: ffn.I }, (_, j) => j);
    for (let j = 0; j < k; j++) {
      const r = j + rng.int(ffn.I - j);
      [perm[j], perm[r]] = [perm[r], perm[j]];
    }
    return perm.slice(0, k).sort((a, b) => a - b);
  });
  const biases = parts.map((kept) => compensationBias(ffn.down_proj, ffn.H, ffn.I, kept, all.mean));
  return { ...stackBiases(gatherExperts(ffn, parts), biases), router, topK };
}

/** The layer on the GPU as a MoE block's weights: top-k with the selected weights renormalised (LLaMA-MoE's softmax over the top-k logits). */
export function uploadLayer(gpu: Gpu, L: ConstructedLayer): MoeLayer {
  const { nExperts: N, H, expertDim: Ie } = L.experts;
  return {
    weights: {
      router: gpu.upload(L.router?.weight ?? new Float32Array(N * H), [N, H], 'dive.router'),
      gate_proj: gpu.upload(L.experts.gate_proj, [N, Ie, H], 'dive.experts.gate_proj'),
      up_proj: gpu.upload(L.experts.up_proj, [N, Ie, H], 'dive.experts.up_proj'),
      down_proj: gpu.upload(L.experts.down_proj, [N, H, Ie], 'dive.experts.down_proj'),
    },
    bias: gpu.upload(L.bias, [N, H], 'dive.experts.down_bias'),
    routing: { topK: L.topK, normTopK: true },
  };
}

/** Frees what uploadLayer put on the GPU. */
export function releaseLayer(L: MoeLayer): void {
  for (const t of [...Object.values(L.weights), L.bias]) t?.release();
}

function stackBiases(experts: ExpertWeights, biases: Float32Array[]): { experts: ExpertWeights; bias: Float32Array } {
  const bias = new Float32Array(biases.length * experts.H);
  biases.forEach((b, e) => bias.set(b, e * experts.H));
  return { experts, bias };
}
