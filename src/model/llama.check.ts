// The GPU forward (llama.ts) against the float64 reference forward (llama.ref.ts) on random tiny models
// covering what the test checkpoints do not: Qwen2 q/k/v biases, both RoPE styles, untied heads, GQA and
// full multi-head attention, head dims that are not dim/heads, and prefill split over several chunks.
// Also: FFN taps leave the logits bit-identical and see exactly the FFN's input x and output f(x).
import type { CheckCase } from '../ops/check.ts';
import { TOL, relL2 } from '../ops/check.ts';
import type { Rng } from '../data/rng.ts';
import type { ModelConfig } from './config.ts';
import { expectedShapes, type WeightIndex } from './weights.ts';
import { LlamaModel } from './llama.ts';
import { llamaForwardRef, matvec, silu } from './llama.ref.ts';

export function randomModel(c: ModelConfig, rng: Rng): { index: WeightIndex; weights: Map<string, Float32Array> } {
  const shapes = expectedShapes(c);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    // norms near 1, projections scaled like a trained model so activations stay O(1)
    weights.set(name, name.endsWith('norm.weight') ? rng.uniforms(n, 0.8, 1.2) : rng.normals(n, 1 / Math.sqrt(shape.at(-1)!)));
  }
  const index: WeightIndex = {
    config: c,
    names: () => [...shapes.keys()],
    shape: (name) => [...shapes.get(name)!],
    dtype: () => 'F32',
    read: async (name) => weights.get(name)!,
    f32Bytes: () => [...weights.values()].reduce((s, w) => s + w.byteLength, 0),
  };
  return { index, weights };
}

export const base: ModelConfig = {
  arch: 'llama', dim: 32, hiddenDim: 44, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8, vocabSize: 61, maxSeqLen: 32,
  normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'half', tiedEmbeddings: true, qkvBias: false, bosId: 1, eosId: 2,
};

const variants: [string, Partial<ModelConfig>, number?][] = [
  ['llama, GQA, rotate-half RoPE, tied', {}],
  ['qwen2: q/k/v biases, θ 1e6, untied', { arch: 'qwen2', qkvBias: true, ropeTheta: 1e6, tiedEmbeddings: false }],
  ['llama2.c: interleaved RoPE, full multi-head', { ropeStyle: 'interleaved', nKvHeads: 4 }],
  ['head dim 12 ≠ dim/heads, one KV head, 3 layers', { headDim: 12, nKvHeads: 1, nLayers: 3 }],
  ['prefill over chunks of 4 (decode path)', {}, 4],
];

const forwardChecks: CheckCase[] = variants.map(([label, over, chunk]) => ({
  family: 'model',
  name: `forward vs float64: ${label}`,
  tol: TOL.gemm,
  smoke: label.startsWith('qwen2'),
  async run(gpu, rng) {
    const c = { ...base, ...over };
    const { index, weights } = randomModel(c, rng);
    const ids = Array.from({ length: 11 }, () => rng.int(c.vocabSize));
    const model = await LlamaModel.load(gpu, index, { chunk: chunk ?? 16 });
    const got = new Float32Array(ids.length * c.vocabSize);
    for (let i = 0; i < ids.length; i += model.chunk) got.set((await model.forward(ids.slice(i, i + model.chunk)).read()) as Float32Array, i * c.vocabSize);
    model.release();
    const err = relL2(got, llamaForwardRef(c, weights, ids));
    return { err, outputs: { logits: err } };
  },
}));

const tapCheck: CheckCase = {
  family: 'model',
  name: 'FFN taps: logits unchanged, taps see x and f(x) = down(silu(gate x) ⊙ up x)',
  tol: TOL.gemm,
  async run(gpu, rng) {
    const c = base;
    const { index, weights } = randomModel(c, rng);
    const ids = Array.from({ length: 9 }, () => rng.int(c.vocabSize));
    const model = await LlamaModel.load(gpu, index);
    const plain = (await model.forward(ids).read()) as Float32Array;
    model.reset();
    const taps: { x: Float32Array; fx: Float32Array }[] = [];
    const copies = Array.from({ length: c.nLayers }, () => [gpu.tensor([ids.length, c.dim]), gpu.tensor([ids.length, c.dim])]);
    const tapped = (await model.forward(ids, (l, x, fx) => { gpu.copy(x, copies[l][0]); gpu.copy(fx, copies[l][1]); }).read()) as Float32Array;
    for (const [x, fx] of copies) taps.push({ x: (await x.read()) as Float32Array, fx: (await fx.read()) as Float32Array });
    model.release();
    copies.flat().forEach((t) => t.release());
    const same = plain.every((v, i) => Object.is(v, tapped[i])) ? 0 : Infinity;
    // f(x) recomputed in float64 from the tapped x, per layer and row
    let worst = 0;
    for (const [l, { x, fx }] of taps.entries()) {
      const w = (n: string) => weights.get(`model.layers.${l}.mlp.${n}.weight`)!;
      const want = new Float64Array(fx.length);
      const g = new Float64Array(c.hiddenDim), u = new Float64Array(c.hiddenDim), out = new Float64Array(c.dim);
      for (let t = 0; t < ids.length; t++) {
        const xt = Float64Array.from(x.subarray(t * c.dim, (t + 1) * c.dim));
        matvec(g, xt, w('gate_proj'), c.hiddenDim, c.dim);
        matvec(u, xt, w('up_proj'), c.hiddenDim, c.dim);
        const h = g.map((gi, i) => silu(gi) * u[i]);
        matvec(out, h, w('down_proj'), c.dim, c.hiddenDim);
        want.set(out, t * c.dim);
      }
      worst = Math.max(worst, relL2(fx, want));
    }
    return { err: Math.max(same, worst), outputs: { 'logits bit-identical': same, 'f(x) vs float64': worst } };
  },
};

export const modelChecks: CheckCase[] = [...forwardChecks, tapCheck];
