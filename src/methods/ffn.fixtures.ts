// The fixture of the methods' construction checks (DIVE, LLaMA-MoE v2): a random tiny LLaMA on the GPU,
// its dense FFNs host-side, ragged calibration windows (several chunks each), and the float64 down_proj
// input a = silu(x·Wgᵀ) ⊙ (x·Wuᵀ) that both methods take their neuron statistics of.
import type { CheckCase } from '../ops/check.ts';
import type { Rng } from '../data/rng.ts';
import { LlamaModel } from '../model/llama.ts';
import type { ModelConfig } from '../model/config.ts';
import { randomModel } from '../model/llama.check.ts';
import { matvec, silu } from '../model/llama.ref.ts';
import type { DenseFfn } from './ladimo/construct.ts';

export async function ffnModelFixture(gpu: Parameters<CheckCase['run']>[0], rng: Rng, c: ModelConfig) {
  const { index, weights } = randomModel(c, rng);
  const model = await LlamaModel.load(gpu, index, { chunk: 5 });
  const ffns: DenseFfn[] = Array.from({ length: c.nLayers }, (_, l) => {
    const w = (n: string) => weights.get(`model.layers.${l}.mlp.${n}.weight`)!;
    return { H: c.dim, I: c.hiddenDim, gate_proj: w('gate_proj'), up_proj: w('up_proj'), down_proj: w('down_proj') };
  });
  const windows = [9, 13, 8].map((n) => Array.from({ length: n }, () => rng.int(c.vocabSize)));
  return { model, weights, ffns, windows, tokens: 30 };
}

/** a [n, I] in float64 for FFN inputs X [n, H]. */
export function downProjInputRef(ffn: DenseFfn, X: Float32Array): Float64Array {
  const { H, I } = ffn;
  const n = X.length / H;
  const a = new Float64Array(n * I);
  const g = new Float64Array(I), u = new Float64Array(I);
  for (let t = 0; t < n; t++) {
    const x = Float64Array.from(X.subarray(t * H, (t + 1) * H));
    matvec(g, x, ffn.gate_proj, I, H);
    matvec(u, x, ffn.up_proj, I, H);
    for (let j = 0; j < I; j++) a[t * I + j] = silu(g[j]) * u[j];
  }
  return a;
}
