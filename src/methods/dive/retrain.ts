// DIVE (arXiv 2506.09351) §3.3, the two retraining stages, both with the LM loss on the calibration
// domains' training text; embeddings and attention stay frozen throughout:
//   stage 1  only the routers train (each a noisy gate: its weight and its noise weights), with every
//            expert active through p = softmax(z / t) ("all experts activated … softmax with a
//            temperature t": the paper's t is 0.05 for 1 of 8, 0.5 for 2 of 8), so each router learns from
//            every expert's output before it has to choose;
//   stage 2  top-k routing (renormalised, as constructed); LoRA adapters on every expert projection and
//            the RMSNorm weights train, the routers stay as stage 1 left them.
// The FLAP baseline's single expert has no choice to learn: it gets stage 2 alone, with the same steps.
// The experts' FLAP biases stay constants. After each stage every weight is compared bit for bit with its
// value before the stage: what changed must be exactly the stage's trainable set.
// The routers are LLaMA-MoE's noisy top-k gates: in both stages every training sequence routes on
// x·Wrᵀ + ε ⊙ (softplus(x·Wnᵀ) + eps), ε ~ N(0, 1) per sequence (src/train/moe.ts); held-out readings and
// the served model route on x·Wrᵀ alone.
// The retrained model is then evaluated as it would be served: the adapters merged into the experts
// (W + s·B·A), the inference forward, perplexity per domain and the routing analysis (the share of each
// domain's tokens each expert receives per layer; DIVE asks whether math tokens reach the math experts).
// The training forward's perplexity is kept beside it as a check of the merge.
import type { Tensor } from '../../gpu/tensor.ts';
import type { LlamaModel } from '../../model/llama.ts';
import { convertLayers, type MoeLayer } from '../../moe/block.ts';
import { matmul } from '../../ops/matmul.ts';
import { countingRoutes } from '../ladimo/profile.ts';
import { perplexity } from '../../eval/perplexity.ts';
import type { TrainTokens } from '../../train/data.ts';
import { releaseTrainModel, trainModel, type TrainModel, type TrainMoeLayer } from '../../train/llama-train.ts';
import type { MoeRouting } from '../../train/moe.ts';
import { moeParamNames } from '../../train/params.ts';
import { windowsPerplexity } from '../../train/perplexity.ts';
import { train, type TrainOptions, type TrainProgress } from '../../train/trainer.ts';
import { releaseLayer, uploadLayer, type ConstructedLayer } from './construct.ts';
import { snapshotOptions, type StageSnapshots } from '../ladimo/checkpoint.ts';

export interface RetrainOptions {
  /** experts per token in stage 2 and at evaluation */
  topK: number;
  /** stage 1's softmax temperature t */
  temperature: number;
  stage1Steps: number;
  stage2Steps: number;
  /** stage 2's adapters on the experts' gate, up and down projections */
  lora: { rank: number; alpha: number };
  /** the loop's settings (train.* of the spec), steps aside */
  loop: Omit<TrainOptions, 'steps' | 'onProgress' | 'resume' | 'onCheckpoint'>;
  onProgress?: (stage: 1 | 2, p: TrainProgress) => void;
  /** each stage resumes from its latest snapshot here and saves them (a finished stage's restores without training) */
  snapshots?: StageSnapshots;
  onLog?: (message: string) => void;
}

/** One stage's run, and the bit-for-bit check of what it changed. */
export interface StageReport {
  steps: number;
  tokens: number;
  seconds: number;
  /** held-out loss (train.* held-out windows) before and after the stage */
  loss_before: number;
  loss_after: number;
  /** the stage's trainable set, as globs over parameter names */
  trainable: string[];
  trainable_params: number;
  /** weight tensors compared bit for bit (the experts' biases included); a change outside the trainable set throws */
  tensors_compared: number;
  tensors_changed: number;
  /** trainable tensors: tensors_changed equals it when every trainable weight moved */
  tensors_trainable: number;
}

export interface RetrainResult {
  /** null: the single-expert FLAP baseline, which has no router */
  stage1: StageReport | null;
  stage2: StageReport;
  /** perplexity on each set of windows after stage 2, by the inference forward with the adapters merged */
  ppl: number[];
  /** the same by the training forward with the adapters apart (agrees with ppl when the merge is right) */
  ppl_training_forward: number[];
  /** routing analysis: [set][layer][expert], the share of the set's token assignments each expert receives */
  expert_share: number[][][];
}

const ROUTERS = ['*.mlp.gate.weight', '*.mlp.gate.weight_noise.weight'];
const EXPERT_LORA = ['experts.gate_proj', 'experts.up_proj', 'experts.down_proj'];
const STAGE2 = ['*lora_*', '*norm.weight'];

/**
 * Retrains `model` with `layers` (one per model layer) in place of its FFNs, then measures perplexity and
 * routing on each of `evalSets`. The model's norms are trained in place: load a fresh one per construction,
 * with a run state that holds an evaluation window.
 */
export async function retrain(
  model: LlamaModel, layers: readonly ConstructedLayer[], tokens: TrainTokens, evalSets: readonly number[][][], o: RetrainOptions,
): Promise<RetrainResult> {
  const gpu = model.gpu;
  if (layers.length !== model.config.nLayers) throw new Error(`retrain: ${layers.length} layers for a model of ${model.config.nLayers}`);
  const uploaded = layers.map((L) => uploadLayer(gpu, L));
  // the noisy gates' Wn: trained in stage 1, then kept for stage 2's noise; not part of the served router
  const noise = layers.map((L) => L.router && { weight: gpu.upload(L.router.noise, [L.experts.nExperts, L.experts.H], 'dive.router.noise'), epsilon: L.router.epsilon, seed: L.router.seed });
  const moe = (routing: MoeRouting) => new Map<number, TrainMoeLayer>(uploaded.map((L, l) => {
    const n = noise[l];
    return [l, { weights: { ...L.weights, bias: L.bias, noise: n?.weight }, routing: n ? { ...routing, noise: { epsilon: n.epsilon, seed: n.seed } } : routing }];
  }));
  const E = layers[0].experts.nExperts;
  const freeze = (only: string[]) => ({ only, freeze: [], fields: { only: 'dive retraining', freeze: 'dive retraining' } });
  try {
    let stage1: StageReport | null = null;
    if (E > 1) {
      const m1 = trainModel(model, { moe: moe({ topK: E, temperature: o.temperature }), freeze: freeze(ROUTERS), recompute: false });
      try {
        stage1 = await runStage(m1, tokens, o, 1, o.stage1Steps, ROUTERS);
      } finally {
        releaseTrainModel(m1);
      }
    }
    const m2 = trainModel(model, {
      moe: moe({ topK: o.topK, normTopK: true }),
      lora: { ...o.lora, targets: EXPERT_LORA, seed: o.loop.seed, field: 'train.lora.rank' },
      freeze: freeze(STAGE2),
      recompute: false,
    });
    try {
      const stage2 = await runStage(m2, tokens, o, 2, o.stage2Steps, STAGE2);
      const ppl_training_forward: number[] = [];
      for (const windows of evalSets) ppl_training_forward.push((await windowsPerplexity(m2, windows)).ppl);
      return { stage1, stage2, ppl_training_forward, ...(await servedEvaluation(model, m2, uploaded, o.topK, evalSets)) };
    } finally {
      releaseTrainModel(m2);
    }
  } finally {
    for (const L of uploaded) releaseLayer(L);
    for (const n of noise) n?.weight.release();
  }
}

async function runStage(m: TrainModel, tokens: TrainTokens, o: RetrainOptions, stage: 1 | 2, steps: number, trainable: string[]): Promise<StageReport> {
  // every weight the forward reads: the parameters and the experts' constant biases
  const tensors = new Map<string, Tensor>(m.params.all().map((p) => [p.name, p.value]));
  for (const [l, b] of m.moeBias) tensors.set(moeParamNames(l).bias, b);
  const before = await readAll(tensors);
  const r = await train(m, tokens, {
    ...o.loop, steps, ...(await snapshotOptions(o.snapshots?.(stage), `stage ${stage}`, steps, o.onLog)), onProgress: o.onProgress && ((p) => o.onProgress!(stage, p)),
  });
  const after = await readAll(tensors);
  const shouldChange = new Set(m.params.trainable().map((p) => p.name));
  const changed = [...tensors.keys()].filter((n) => !bitEqual(before.get(n)!, after.get(n)!));
  const stray = changed.filter((n) => !shouldChange.has(n));
  if (stray.length) throw new Error(`dive retraining, stage ${stage}: ${stray.length} weights outside the trainable set changed (${stray.slice(0, 3).join(', ')}, …)`);
  return {
    steps: r.step, tokens: r.tokens, seconds: r.seconds,
    loss_before: r.evals[0].loss, loss_after: r.evals.at(-1)!.loss,
    trainable, trainable_params: m.params.counts().trainable,
    tensors_compared: tensors.size, tensors_changed: changed.length, tensors_trainable: shouldChange.size,
  };
}

async function readAll(tensors: ReadonlyMap<string, Tensor>): Promise<Map<string, Uint32Array>> {
  const out = new Map<string, Uint32Array>();
  for (const [n, t] of tensors) {
    const v = (await t.read()) as Float32Array;
    out.set(n, new Uint32Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)));
  }
  return out;
}

function bitEqual(a: Uint32Array, b: Uint32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The retrained layers as served (adapters merged, top-k renormalised): perplexity and expert shares per set. */
async function servedEvaluation(
  model: LlamaModel, m: TrainModel, uploaded: readonly MoeLayer[], topK: number, evalSets: readonly number[][][],
): Promise<{ ppl: number[]; expert_share: number[][][] }> {
  const merged: Tensor[] = [];
  const mergedWeight = (l: number, proj: 'gate_proj' | 'up_proj' | 'down_proj', W: Tensor): Tensor => {
    const a = m.lora.get(`model.layers.${l}.mlp.experts.${proj}`);
    if (!a) return W;
    const out = W.gpu.tensor(W.shape, 'f32', `dive.merged.${proj}`);
    merged.push(out);
    W.gpu.copy(W, out);
    return matmul(a.B.value, a.A.value, { alpha: a.scale, accumulate: true, out });
  };
  const layers = new Map(uploaded.map((L, l): [number, MoeLayer] => [l, {
    weights: { router: L.weights.router, gate_proj: mergedWeight(l, 'gate_proj', L.weights.gate_proj), up_proj: mergedWeight(l, 'up_proj', L.weights.up_proj), down_proj: mergedWeight(l, 'down_proj', L.weights.down_proj) },
    bias: L.bias,
    routing: { topK, normTopK: true },
  }]));
  const blocks = convertLayers(model, layers);
  try {
    const ppl: number[] = [];
    const expert_share: number[][][] = [];
    for (const windows of evalSets) {
      const [p, shares] = await countingRoutes(blocks, () => perplexity(model, windows));
      ppl.push(p.ppl);
      expert_share.push(uploaded.map((_, l) => shares.get(l)!));
    }
    return { ppl, expert_share };
  } finally {
    for (let l = 0; l < uploaded.length; l++) model.restoreDense(l);
    for (const b of blocks.values()) b.release();
    for (const t of merged) t.release();
  }
}
