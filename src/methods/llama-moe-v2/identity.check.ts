// LLaMA-MoE v2's construction (arXiv 2411.15708: attention MoE, MLP MoE, router initialisation) against its identities, on random tiny models:
//   - the neuron statistics taken on the GPU (stats.ts) equal float64 ones recomputed from the captured FFN
//     inputs (frequency counts may differ only for activations within 1e-4 of the threshold τ);
//   - vanilla and residual MLP MoE in every layer, built as a run builds them (capture → GPU statistics →
//     split → hidden-state k-means router → upload), then all experts active under a zero router (weights
//     1/N, scale factor N folded into the routed down_proj), reproduce the dense model's logits;
//   - attention MoE in every layer (one expert per KV head group), all groups active under a zero router
//     (scale factor G), alone and with the residual MLP MoE, reproduces the dense model's logits;
//   - the attention inputs its router init clusters are captured exactly;
//   - training reads the constructed layers as they are: training forward = inference forward.
import type { CheckCase } from '../../ops/check.ts';
import { TOL, relL2 } from '../../ops/check.ts';
import type { Rng } from '../../data/rng.ts';
import { LlamaModel } from '../../model/llama.ts';
import { base, randomModel } from '../../model/llama.check.ts';
import { convertLayers } from '../../moe/block.ts';
import { captureFfn } from '../ladimo/capture.ts';
import type { DenseFfn } from '../ladimo/construct.ts';
import { downProjInputRef, ffnModelFixture } from '../ffn.fixtures.ts';
import { constructMlpLayers, inferenceLayers, sharedNeuronCount, trainLayers, type ConstructedLayer, type MlpMoeSpec } from './build.ts';
import type { MlpKind } from './construct.ts';
import { mlpMoeLayer, releaseMlpMoe } from './layer.ts';
import { convertAttention, uploadAttentionRouter } from '../../moe/attention.ts';
import { attentionRouters, captureAttentionInputs } from './attention-init.ts';
import { releaseTrainModel, sequenceLogits, trainModel } from '../../train/llama-train.ts';
import { neuronStatistics, type NeuronStats } from './stats.ts';

const c = { ...base, hiddenDim: 44 };

const setup = (gpu: Parameters<CheckCase['run']>[0], rng: Rng) => ffnModelFixture(gpu, rng, c);

/** The logits [T, vocab] of every chunk of ids from position 0 (prefill keeps only the last chunk's). */
async function allLogits(model: LlamaModel, ids: number[]): Promise<Float32Array> {
  model.reset();
  const V = model.config.vocabSize;
  const out = new Float32Array(ids.length * V);
  for (let i = 0; i < ids.length; i += model.chunk) out.set((await model.forward(ids.slice(i, i + model.chunk)).read()) as Float32Array, i * V);
  return out;
}

/** Each layer's neuron statistics over the captured FFN inputs (GPU blocks of 7 rows: ragged). */
async function layerStats(model: LlamaModel, windows: number[][], tokens: number) {
  const layers = Array.from({ length: c.nLayers }, (_, l) => l);
  const cap = await captureFfn(model, windows, layers, tokens);
  const stats: NeuronStats[] = [];
  const xs: Float32Array[] = [];
  for (const l of layers) {
    const { x, fx } = cap.layers.get(l)!;
    stats.push(await neuronStatistics(x, model.weights.layers[l], 7));
    xs.push((await x.read()) as Float32Array);
    [x, fx].forEach((t) => t.release());
  }
  return { stats, xs };
}

/** |{firing count} outside [count of |a| > τ(1+1e-4), count of |a| > τ(1−1e-4)]| summed, over n. */
function statsError(ffn: DenseFfn, X: Float32Array, s: NeuronStats): Record<string, number> {
  const { H, I } = ffn;
  const n = X.length / H;
  const mag = new Float64Array(I), lo = new Float64Array(I), hi = new Float64Array(I);
  const acts = Array.from(downProjInputRef(ffn, X), Math.abs);
  const tau = acts.reduce((a, b) => a + b, 0) / (n * I);
  acts.forEach((a, i) => {
    const j = i % I;
    mag[j] += a / n;
    if (a > tau * (1 + 1e-4)) lo[j]++;
    if (a > tau * (1 - 1e-4)) hi[j]++;
  });
  let outside = 0;
  s.frequency.forEach((f, j) => {
    const count = f * n;
    outside += Math.max(0, lo[j] - count, count - hi[j]);
  });
  return { magnitude: relL2(s.magnitude, mag), threshold: Math.abs(s.threshold - tau) / tau, 'frequency outside the τ band': outside / n, tokens: s.n === n ? 0 : Infinity };
}

function identityCase(kind: MlpKind, N: number, sharedRatio: number): CheckCase {
  const spec: MlpMoeSpec = {
    'v2.mlp': kind, 'v2.experts': N, 'v2.sharedRatio': sharedRatio, 'v2.sharedBy': 'frequency', 'v2.partition': 'cluster',
    'v2.routerInit': 'hidden-kmeans', 'v2.routerTokens': 16, seed: 5,
  };
  const S = kind === 'residual' ? sharedNeuronCount(spec, c.hiddenDim) : 0;
  return {
    family: 'llama-moe-v2',
    name: `${kind} MLP MoE, N = ${N}${S ? `, shared ${S} of ${c.hiddenDim} neurons` : ''}, every layer, all experts active = dense logits`,
    tol: TOL.gemm,
    smoke: kind === 'residual',
    async run(gpu, rng) {
      const { model, windows, tokens } = await setup(gpu, rng);
      const ids = windows[1];
      const dense = await allLogits(model, ids);
      const cap = await captureFfn(model, windows, Array.from({ length: c.nLayers }, (_, l) => l), tokens);
      const built = await constructMlpLayers(model, cap, spec);
      for (const { x, fx } of cap.layers.values()) [x, fx].forEach((t) => t.release());
      // a zero router: softmax gives every expert 1/N, which the scale factor N cancels
      for (const L of built.values()) gpu.write(L.weights.router, new Float32Array(N * c.dim));
      const sharedOk = [...built.values()].every((L) => (L.moe.shared?.I ?? 0) === S) ? 0 : Infinity;
      const blocks = convertLayers(model, new Map([...built].map(([l, L]) => [l, mlpMoeLayer(L.weights, { topK: N })])));
      const moe = await allLogits(model, ids);
      for (const b of blocks.values()) b.release();
      for (const L of built.values()) releaseMlpMoe(L.weights);
      model.release();
      const e = { 'logits vs dense': relL2(moe, dense), [`shared expert of ${S} neurons`]: sharedOk };
      return { err: Math.max(...Object.values(e)), outputs: e };
    },
  };
}

/** Attention MoE in every layer (one expert per KV head group), all groups active under a zero router (s = G). */
function attentionCase(nKvHeads: number, withMlp: boolean): CheckCase {
  const cfg = { ...c, nKvHeads };
  return {
    family: 'llama-moe-v2',
    name: `attention MoE, ${nKvHeads} KV groups of ${cfg.nHeads / nKvHeads} heads${withMlp ? ' + residual MLP MoE' : ''}, every layer, all experts active = dense logits`,
    tol: TOL.gemm,
    smoke: !withMlp,
    async run(gpu, rng) {
      const { index } = randomModel(cfg, rng);
      const model = await LlamaModel.load(gpu, index, { chunk: 5 });
      const windows = [9, 13, 8].map((n) => Array.from({ length: n }, () => rng.int(cfg.vocabSize)));
      const ids = windows[1];
      const dense = await allLogits(model, ids);
      const layers = Array.from({ length: cfg.nLayers }, (_, l) => l);
      let mlp = new Map<number, ConstructedLayer>();
      if (withMlp) {
        const cap = await captureFfn(model, windows, layers, 30);
        mlp = await constructMlpLayers(model, cap, {
          'v2.mlp': 'residual', 'v2.experts': 8, 'v2.sharedRatio': 0.27, 'v2.sharedBy': 'magnitude', 'v2.partition': 'random',
          'v2.routerInit': 'random', 'v2.routerTokens': 1, seed: 3,
        });
        for (const { x, fx } of cap.layers.values()) [x, fx].forEach((t) => t.release());
      }
      for (const L of mlp.values()) gpu.write(L.weights.router, new Float32Array(8 * cfg.dim));
      const blocks = convertLayers(model, new Map([...mlp].map(([l, L]) => [l, mlpMoeLayer(L.weights, { topK: 8 })])));
      const routers = layers.map(() => uploadAttentionRouter(gpu, new Float32Array(nKvHeads * cfg.dim), nKvHeads, cfg.dim));
      const attn = convertAttention(model, new Map(layers.map((l) => [l, { router: routers[l], topK: nKvHeads }])));
      const moe = await allLogits(model, ids);
      for (const a of attn.values()) a.release();
      for (const b of blocks.values()) b.release();
      for (const L of mlp.values()) releaseMlpMoe(L.weights);
      routers.forEach((r) => r.release());
      model.release();
      const e = { 'logits vs dense': relL2(moe, dense) };
      return { err: e['logits vs dense'], outputs: e };
    },
  };
}

/**
 * The constructed layers serve training as they are: the training forward (src/train/llama-train.ts, the
 * `moe` op plus the shared expert) gives the inference forward's logits, with hidden-state k-means routers
 * and top-2 routing (no identity to lean on: real routing on both sides).
 */
const trainSide: CheckCase = {
  family: 'llama-moe-v2',
  name: 'residual MLP MoE with k-means routers, top-2: training forward = inference forward logits',
  tol: TOL.gemm,
  async run(gpu, rng) {
    const { model, windows, tokens } = await setup(gpu, rng);
    const layers = Array.from({ length: c.nLayers }, (_, l) => l);
    const cap = await captureFfn(model, windows, layers, tokens);
    const built = await constructMlpLayers(model, cap, {
      'v2.mlp': 'residual', 'v2.experts': 8, 'v2.sharedRatio': 0.27, 'v2.sharedBy': 'frequency', 'v2.partition': 'cluster',
      'v2.routerInit': 'hidden-kmeans', 'v2.routerTokens': tokens, seed: 1,
    });
    for (const { x, fx } of cap.layers.values()) [x, fx].forEach((t) => t.release());
    const ids = windows[1];
    const dense = await allLogits(model, ids);
    const routing = { 'v2.topK': 2, 'v2.balance': 0.01 };
    const blocks = convertLayers(model, inferenceLayers(built, routing));
    const inference = await allLogits(model, ids);
    const freeze = { only: [], freeze: [], fields: { only: 'only', freeze: 'freeze' } };
    const m = trainModel(model, { recompute: false, freeze, moe: trainLayers(built, routing) });
    const idsT = gpu.upload(Uint32Array.from(ids), [ids.length], 'ids');
    const logits = gpu.tensor([ids.length, c.vocabSize], 'f32', 'logits');
    sequenceLogits(m, idsT, logits);
    const training = (await logits.read()) as Float32Array;
    releaseTrainModel(m);
    for (const b of blocks.values()) b.release();
    for (const L of built.values()) releaseMlpMoe(L.weights);
    for (const t of [idsT, logits]) t.release();
    model.release();
    // top-2 of 8 must move the logits away from the dense ones, or the two sides compared nothing routed
    const e = { 'training vs inference logits': relL2(training, inference), 'routed (MoE differs from dense by > 1e-3)': relL2(inference, dense) > 1e-3 ? 0 : Infinity };
    return { err: Math.max(...Object.values(e)), outputs: e };
  },
};

/**
 * The attention routers' hidden states: layer 0's captured attention inputs are the float64 RMSNorm of the
 * tokens' embeddings (input_layernorm), the budget ending inside a window; the capture leaves the gate
 * slots as it found them; hidden-kmeans routers have one row per KV group, each at the random init's norm.
 */
const attentionCapture: CheckCase = {
  family: 'llama-moe-v2',
  name: 'attention inputs captured through the gate slot = float64 input_layernorm(embedding); k-means attention routers',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const { index, weights } = randomModel(c, rng);
    const model = await LlamaModel.load(gpu, index, { chunk: 5 });
    const windows = [9, 13, 8].map((n) => Array.from({ length: n }, () => rng.int(c.vocabSize)));
    const rows = 25;
    const got = (await captureAttentionInputs(model, windows, [0, 1], rows)).get(0)!;
    const routers = await attentionRouters(model, windows, [0, 1], { 'v2.routerInit': 'hidden-kmeans', 'v2.routerTokens': rows, seed: 2 });
    const slotsBack = model.attnGate.every((g) => g === undefined) ? 0 : Infinity;
    model.release();
    const H = c.dim;
    const E = weights.get('model.embed_tokens.weight')!;
    const g = weights.get('model.layers.0.input_layernorm.weight')!;
    const want = new Float64Array(rows * H);
    windows.flat().slice(0, rows).forEach((id, t) => {
      let ss = 0;
      for (let h = 0; h < H; h++) ss += E[id * H + h] ** 2;
      const inv = 1 / Math.sqrt(ss / H + c.normEps);
      for (let h = 0; h < H; h++) want[t * H + h] = E[id * H + h] * inv * g[h];
    });
    let normErr = 0;
    for (const R of routers.values()) {
      if (R.length !== c.nKvHeads * H) normErr = Infinity;
      for (let e = 0; e < c.nKvHeads; e++) normErr = Math.max(normErr, Math.abs(Math.hypot(...R.subarray(e * H, (e + 1) * H)) / (0.02 * Math.sqrt(H)) - 1));
    }
    const e = { 'layer 0 attention inputs': relL2(got, want), 'gate slots restored': slotsBack, 'router rows at norm 0.02·√H': normErr };
    return { err: Math.max(...Object.values(e)), outputs: e };
  },
};

export const llamaMoeV2Checks: CheckCase[] = [
  {
    family: 'llama-moe-v2',
    name: 'neuron statistics on the GPU (frequency of |a| > τ, mean |a|, τ) = float64 from the captured FFN inputs',
    tol: TOL.elementwise,
    async run(gpu, rng) {
      const { model, ffns, windows, tokens } = await setup(gpu, rng);
      const { stats, xs } = await layerStats(model, windows, tokens - 4); // the budget ends inside the last window
      model.release();
      const errs: Record<string, number> = {};
      stats.forEach((s, l) => {
        for (const [k, v] of Object.entries(statsError(ffns[l], xs[l], s))) errs[`layer ${l} ${k}`] = v;
      });
      return { err: Math.max(...Object.values(errs)), outputs: errs };
    },
  },
  identityCase('vanilla', 4, 0),
  identityCase('residual', 8, 0.27),
  attentionCase(2, false),
  attentionCase(4, true),
  attentionCapture,
  trainSide,
];
