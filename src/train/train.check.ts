// Checks of the training path. The whole-model check: the parameter gradients of the training forward
// (llama-train.ts: every op's backward through the tape) on random 2-layer models against central
// differences of the float64 reference forward (src/model/llama.ref.ts) of the same objective, at a seeded
// sample of entries of every trainable tensor; the per-token losses against the reference's too.
// The differences are exact in their inputs: weights are multiples of 2^-12, so w ± 2^-10 and w ± 2^-11
// are f32 values, and LoRA's merged weight W + (α/r)·B·A (A, B multiples of 2^-8, α/r a power of two) is
// one as well (asserted), so the reference sees exactly the perturbed model. Richardson's combination of
// the two spacings leaves an O(h⁴) difference error, far below the 1e-4 bound.
// Also: the GPU global gradient-norm clip (clip.ts) against float64.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { CheckCase, CheckResult } from '../ops/check.ts';
import { TOL, compare, relL2 } from '../ops/check.ts';
import type { Rng } from '../data/rng.ts';
import type { ModelConfig } from '../model/config.ts';
import { LlamaModel } from '../model/llama.ts';
import { llamaForwardRef } from '../model/llama.ref.ts';
import { base, randomModel } from '../model/llama.check.ts';
import { crossEntropyRef, klRef } from '../ops/softmax.ref.ts';
import { GradClip } from './clip.ts';
import { releaseTrainModel, sequenceLoss, trainModel, type TrainModelOptions } from './llama-train.ts';

interface GradCase {
  label: string;
  config: Partial<ModelConfig>;
  /** lengths of the sequences whose gradients add up (micro-batches) */
  lengths: number[];
  model: Omit<TrainModelOptions, 'freeze'> & { only?: string[] };
  teacher?: boolean;
  smoke?: boolean;
}

const gradCases: GradCase[] = [
  {
    label: 'llama, GQA, rotate-half RoPE, tied: every parameter, 2 sequences accumulated',
    config: {}, lengths: [11, 7], model: { recompute: false }, smoke: true,
  },
  {
    label: 'qwen2 biases, interleaved RoPE, untied head, KL to teacher logits, recompute, 4-row loss chunks',
    config: { arch: 'qwen2', qkvBias: true, ropeStyle: 'interleaved', tiedEmbeddings: false, ropeTheta: 1e6 },
    lengths: [10], model: { recompute: true, lossChunkRows: 4 }, teacher: true,
  },
  {
    label: 'LoRA r 4 (α 8) on q_proj, v_proj, down_proj with B ≠ 0; base frozen but the norms',
    config: {}, lengths: [9],
    model: { recompute: false, lora: { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'], seed: 5, field: 'lora' }, only: ['*lora_*', '*norm*'] },
  },
];

/** Sampled entries per trainable tensor, and the larger difference spacing (moe.check.ts uses them too). */
export const PROBES = 6;
const H = 2 ** -10;

/** Rounds to multiples of 2^-bits: few mantissa bits, so the check's perturbations stay exact in f32. */
export function quantize(a: Float32Array, bits: number): Float32Array {
  return a.map((v) => Math.round(v * 2 ** bits) / 2 ** bits);
}

interface HostParams {
  data: Map<string, Float32Array>;
  shape: Map<string, readonly number[]>;
  /** LoRA scale α/r by adapted module */
  lora: Map<string, number>;
}

interface HostSequence {
  ids: number[];
  targets: number[];
  teacher?: Float32Array;
}

/** W + s·B·A in float64: W [out, in], A [r, in], B [out, r]; the quantisation makes it an exact f32 value. */
function merge(p: HostParams, module: string, s: number): Float32Array {
  const W = p.data.get(`${module}.weight`)!, A = p.data.get(`${module}.lora_A.weight`)!, B = p.data.get(`${module}.lora_B.weight`)!;
  const [out, inp] = p.shape.get(`${module}.weight`)!;
  const r = A.length / inp;
  const M = new Float32Array(W.length);
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < inp; j++) {
      let v = W[i * inp + j];
      for (let k = 0; k < r; k++) v += s * B[i * r + k] * A[k * inp + j];
      if (Math.fround(v) !== v) throw new Error(`merge ${module}: W + s·B·A is not an f32 value at [${i}, ${j}]`);
      M[i * inp + j] = v;
    }
  }
  return M;
}

/** The GPU run's objective in float64, Σ_seq Σ_t ceScale·CE_t + klScale·KL_t, and every CE_t. */
function refObjective(c: ModelConfig, p: HostParams, seqs: HostSequence[], ceScale: number, klScale: number): { loss: number; ce: number[] } {
  const weights = new Map(p.data);
  for (const [m, s] of p.lora) weights.set(`${m}.weight`, merge(p, m, s));
  let loss = 0;
  const ce: number[] = [];
  for (const sq of seqs) {
    const T = sq.ids.length;
    const logits = llamaForwardRef(c, weights, sq.ids);
    const rows = crossEntropyRef(logits, sq.targets, T, c.vocabSize);
    const kl = sq.teacher ? klRef(sq.teacher, logits, T, c.vocabSize) : null;
    rows.forEach((v, t) => {
      loss += ceScale * v + (kl ? klScale * kl[t] : 0);
      ce.push(v);
    });
  }
  return { loss, ce };
}

/** ∂loss/∂x[i] by Richardson's combination of central differences at spacings H and H/2 (exact f32 steps). */
export function difference(x: Float32Array, i: number, loss: () => number): number {
  const central = (h: number) => {
    const x0 = x[i];
    for (const v of [x0 + h, x0 - h]) if (Math.fround(v) !== v) throw new Error(`difference: ${x0} ± ${h} is not an f32 value`);
    x[i] = x0 + h;
    const up = loss();
    x[i] = x0 - h;
    const down = loss();
    x[i] = x0;
    return (up - down) / (2 * h);
  };
  return (4 * central(H / 2) - central(H)) / 3;
}

async function gradCase(gpu: Gpu, rng: Rng, k: GradCase): Promise<CheckResult> {
  const c = { ...base, ...k.config };
  const { index, weights } = randomModel(c, rng);
  for (const [n, w] of weights) weights.set(n, quantize(w, 12));
  const model = await LlamaModel.load(gpu, index, { chunk: 1, seqLen: 1 });
  const m = trainModel(model, { ...k.model, freeze: { only: k.model.only ?? [], freeze: [], fields: { only: 'only', freeze: 'freeze' } } });
  const held: Tensor[] = [];
  try {
    for (const a of m.lora.values()) {
      gpu.write(a.A.value, quantize(rng.normals(a.A.value.size, 0.2), 8));
      gpu.write(a.B.value, quantize(rng.normals(a.B.value.size, 0.2), 8));
    }
    const host: HostParams = { data: new Map(), shape: new Map(), lora: new Map([...m.lora].map(([mod, a]) => [mod, a.scale])) };
    for (const p of m.params.all()) {
      host.data.set(p.name, (await p.value.read()) as Float32Array);
      host.shape.set(p.name, p.value.shape);
    }
    const V = c.vocabSize;
    const seqs: HostSequence[] = k.lengths.map((T) => ({
      ids: Array.from({ length: T }, () => rng.int(V)),
      targets: Array.from({ length: T }, () => rng.int(V)),
      teacher: k.teacher ? rng.normals(T * V, 2) : undefined,
    }));
    const N = k.lengths.reduce((a, b) => a + b, 0);
    const ceScale = 1 / N, klScale = k.teacher ? 0.5 / N : 0;
    const ce = gpu.tensor([N], 'f32', 'ce'), kl = k.teacher ? gpu.tensor([N], 'f32', 'kl') : undefined;
    held.push(ce, ...(kl ? [kl] : []));
    const upload = <A extends Float32Array | Uint32Array>(a: A, shape: number[]) => {
      const t = gpu.upload(a, shape);
      held.push(t);
      return t;
    };
    for (const p of m.params.trainable()) p.zeroGrad();
    let offset = 0;
    for (const s of seqs) {
      const T = s.ids.length;
      const seq = {
        ids: upload(Uint32Array.from(s.ids), [T]),
        targets: upload(Uint32Array.from(s.targets), [T]),
        teacherLogits: s.teacher && upload(s.teacher, [T, V]),
      };
      sequenceLoss(m, seq, { train: true, ceScale, klScale, out: { ce, kl, offset } });
      offset += T;
    }
    const outputs: Record<string, number> = {};
    const ref = refObjective(c, host, seqs, ceScale, klScale);
    outputs['CE per token'] = relL2(await ce.read(), ref.ce);
    const loss = () => refObjective(c, host, seqs, ceScale, klScale).loss;
    for (const p of m.params.trainable()) {
      if (!p.grad) throw new Error(`${p.name}: trainable but no gradient was written`);
      const g = (await p.grad.read()) as Float32Array;
      const x = host.data.get(p.name)!;
      const idx = x.length <= PROBES ? [...x.keys()] : Array.from({ length: PROBES }, () => rng.int(x.length));
      outputs[p.name] = relL2(idx.map((i) => g[i]), idx.map((i) => difference(x, i, loss)));
    }
    // the tape allocates no gradient for a frozen parameter: a count, 0 when it holds
    outputs['frozen parameters with a gradient'] = m.params.all().filter((p) => !p.trainable && p.grad).length;
    return { err: Math.max(...Object.values(outputs).map((e) => (Number.isNaN(e) ? Infinity : e))), outputs };
  } finally {
    releaseTrainModel(m);
    model.release();
    for (const t of held) t.release();
  }
}

const gradChecks: CheckCase[] = gradCases.map((k) => ({
  family: 'train',
  name: `whole-model gradients vs float64 differences: ${k.label}`,
  tol: TOL.grad,
  smoke: k.smoke,
  run: (gpu, rng) => gradCase(gpu, rng, k),
}));

// ------------------------------------------------------------------------------------------------- clip

interface ClipCase {
  sizes: number[];
  /** maxNorm as a share of the gradients' norm (0: clipping off) */
  share: number;
}

const clipCases: ClipCase[] = [
  { sizes: [1, 37, 2053, 5000], share: 0.5 },
  { sizes: [64, 300], share: 2 },
  { sizes: [9000], share: 0 },
];

const clipChecks: CheckCase[] = clipCases.map((k) => ({
  family: 'train',
  name: `gradient-norm clip over [${k.sizes.join(', ')}], maxNorm ${k.share ? `${k.share}× the norm` : 'off'}`,
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const G = k.sizes.map((n) => rng.normals(n));
    const norm = Math.sqrt(G.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
    const maxNorm = k.share * norm;
    const coef = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
    const grads = G.map((g) => gpu.upload(g, [g.length], 'grad'));
    const clip = new GradClip(gpu, grads);
    clip.record(maxNorm);
    const outputs: Record<string, [Tensor, ArrayLike<number>]> = { 'norm, coef': [clip.stats, [norm, coef]] };
    grads.forEach((g, i) => (outputs[`grad ${i}`] = [g, G[i].map((v) => v * coef)]));
    const r = await compare(outputs, grads);
    clip.release();
    return r;
  },
}));

export const trainChecks: CheckCase[] = [...gradChecks, ...clipChecks];
