// MoE conversion inside the whole forward, tied to an identity of the paper (LaDiMo §4.1): experts that
// split the dense FFN's neurons (contiguous, random, co-activation), all N active with weight 1, give the
// dense model's logits. A zero router makes every routing weight 1/N, so down_proj is scaled by N.
import type { CheckCase } from '../ops/check.ts';
import { TOL, relL2 } from '../ops/check.ts';
import { LlamaModel } from '../model/llama.ts';
import { base, randomModel } from '../model/llama.check.ts';
import { constructExperts, type SplitMethod } from '../methods/ladimo/construct.ts';
import { convertLayers, uploadMoeWeights, type MoeLayer } from './block.ts';

const splits: [SplitMethod, number][] = [['contiguous', 4], ['random', 3], ['coactivation', 4]];

export const moeBlockChecks: CheckCase[] = splits.map(([method, N]) => ({
  family: 'moe-model',
  name: `all ${N} experts at weight 1 = dense logits (${method} split, every layer)`,
  tol: TOL.gemm,
  smoke: method === 'contiguous',
  async run(gpu, rng) {
    const c = { ...base, hiddenDim: 42 };
    const { index, weights } = randomModel(c, rng);
    const ids = Array.from({ length: 7 }, () => rng.int(c.vocabSize));
    const model = await LlamaModel.load(gpu, index);
    const dense = (await model.forward(ids).read()) as Float32Array;
    const layers = new Map<number, MoeLayer>();
    const X = rng.normals(64 * c.dim); // co-activation statistics need some FFN inputs
    for (let l = 0; l < c.nLayers; l++) {
      const w = (n: string) => weights.get(`model.layers.${l}.mlp.${n}.weight`)!;
      const ex = constructExperts({ H: c.dim, I: c.hiddenDim, gate_proj: w('gate_proj'), up_proj: w('up_proj'), down_proj: w('down_proj') }, { nExperts: N, method, seed: l, X });
      const moe = uploadMoeWeights(gpu, { ...ex, router: new Float32Array(N * c.dim), down_proj: ex.down_proj.map((v) => v * N) }, N, c.dim, ex.expertDim);
      layers.set(l, { weights: moe, routing: { topK: N, normTopK: false } });
    }
    const blocks = convertLayers(model, layers);
    model.reset();
    const moe = (await model.forward(ids).read()) as Float32Array;
    for (let l = 0; l < c.nLayers; l++) model.restoreDense(l);
    model.reset();
    const restored = (await model.forward(ids).read()) as Float32Array;
    for (const b of blocks.values()) b.release();
    for (const L of layers.values()) Object.values(L.weights).forEach((t) => t.release());
    model.release();
    const e = relL2(moe, dense);
    const same = restored.every((v, i) => Object.is(v, dense[i])) ? 0 : Infinity;
    return { err: Math.max(e, same), outputs: { 'MoE vs dense logits': e, 'restored dense bit-identical': same } };
  },
}));
