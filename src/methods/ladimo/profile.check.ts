// Expert load (profile.ts countingRoutes) is tallied on the GPU while a pass runs; it must equal the
// count of the selections themselves (routeTokens reads them), across windows and chunks, with a
// dynamic-k router whose unused slots are not assignments.
import type { CheckCase } from '../../ops/check.ts';
import { TOL } from '../../ops/check.ts';
import { LlamaModel } from '../../model/llama.ts';
import { base, randomModel } from '../../model/llama.check.ts';
import { convertLayers, uploadMoeWeights, type MoeLayer } from '../../moe/block.ts';
import { constructExperts } from './construct.ts';
import { countingRoutes, routeTokens } from './profile.ts';

export const profileChecks: CheckCase[] = [
  {
    family: 'ladimo',
    name: 'expert load counted on the GPU over windows and chunks = the selections, dynamic k',
    tol: TOL.elementwise,
    async run(gpu, rng) {
      const c = base, E = 4;
      const { index, weights } = randomModel(c, rng);
      const model = await LlamaModel.load(gpu, index, { chunk: 5 });
      const layers = new Map<number, MoeLayer>();
      for (let l = 0; l < c.nLayers; l++) {
        const w = (n: string) => weights.get(`model.layers.${l}.mlp.${n}.weight`)!;
        const ex = constructExperts({ H: c.dim, I: c.hiddenDim, gate_proj: w('gate_proj'), up_proj: w('up_proj'), down_proj: w('down_proj') }, { nExperts: E, method: 'contiguous', seed: l });
        // a sharp random router, so the largest weight spreads over both thresholds
        const router = rng.normals(E * c.dim, 3 / Math.sqrt(c.dim));
        layers.set(l, { weights: uploadMoeWeights(gpu, { ...ex, router }, E, c.dim, ex.expertDim), routing: { dynamic: { alpha: 0.7, beta: 0.4 } } });
      }
      const blocks = convertLayers(model, layers);
      const windows = [12, 7].map((n) => Array.from({ length: n }, () => rng.int(c.vocabSize)));
      const [, shares] = await countingRoutes(blocks, async () => {
        for (const ids of windows) {
          model.reset();
          for (let i = 0; i < ids.length; i += model.chunk) model.forward(ids.slice(i, i + model.chunk));
        }
      });
      const want = new Map<number, number[]>([...blocks.keys()].map((l) => [l, new Array<number>(E).fill(0)]));
      const ks = new Set<number>();
      for (const ids of windows) {
        for (const [l, r] of await routeTokens(model, blocks, ids)) {
          for (const experts of r.experts) {
            ks.add(experts.length);
            for (const e of experts) want.get(l)![e]++;
          }
        }
      }
      for (const b of blocks.values()) b.release();
      for (const L of layers.values()) Object.values(L.weights).forEach((t) => t.release());
      model.release();
      const outputs: Record<string, number> = {};
      for (const [l, counts] of want) {
        const total = counts.reduce((a, b) => a + b, 0);
        const got = shares.get(l) ?? [];
        outputs[`layer ${l} shares`] = got.length === E ? Math.max(...counts.map((n, e) => Math.abs(got[e] - n / total))) : Infinity;
      }
      // the case means something only if tokens took different numbers of experts
      outputs['k took 1, 2 and 3'] = ks.size === 3 ? 0 : Infinity;
      return { err: Math.max(...Object.values(outputs)), outputs };
    },
  },
];
