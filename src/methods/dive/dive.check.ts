// DIVE's construction (arXiv 2506.09351) against its identities, on random tiny models:
//   - the channel statistics taken on the GPU during the forward equal float64 moments of the down_proj
//     input recomputed from the FFN inputs the forward feeds each layer;
//   - FLAP at a 100% kept ratio, a single expert always taken, reproduces the dense model's logits
//     (no channel pruned, so the compensation bias is exactly 0);
//   - FLAP's bias compensation: a pruned FFN's mean output over the calibration tokens equals the dense
//     FFN's, since b = Σ_{pruned j} W_down[:, j]·mean(X_j) is exactly the pruned channels' mean output.
import type { CheckCase } from '../../ops/check.ts';
import { TOL, relL2 } from '../../ops/check.ts';
import type { Rng } from '../../data/rng.ts';
import { base } from '../../model/llama.check.ts';
import { columnMomentsRef } from '../../ops/moments.ref.ts';
import { MoeBlock, convertLayers } from '../../moe/block.ts';
import { captureFfn } from '../ladimo/capture.ts';
import { downProjInputRef, ffnModelFixture } from '../ffn.fixtures.ts';
import { flapLayer, releaseLayer, uploadLayer } from './construct.ts';
import { channelStats } from './importance.ts';

const c = { ...base, hiddenDim: 42 };

const setup = (gpu: Parameters<CheckCase['run']>[0], rng: Rng) => ffnModelFixture(gpu, rng, c);

/** Row means of a [rows, H] array, in float64. */
function rowMean(A: Float32Array, H: number): Float64Array {
  const m = new Float64Array(H);
  const rows = A.length / H;
  for (let t = 0; t < rows; t++) for (let h = 0; h < H; h++) m[h] += A[t * H + h] / rows;
  return m;
}

export const diveChecks: CheckCase[] = [
  {
    family: 'dive',
    name: 'FLAP channel statistics on the GPU = float64 moments of silu(gate x) ⊙ up x',
    tol: TOL.gemm,
    async run(gpu, rng) {
      const { model, ffns, windows, tokens } = await setup(gpu, rng);
      const stats = await channelStats(model, windows, tokens - 4); // the budget ends inside the last window
      const cap = await captureFfn(model, windows, [1], tokens - 4);
      const X = (await cap.layers.get(1)!.x.read()) as Float32Array;
      for (const t of [cap.layers.get(1)!.x, cap.layers.get(1)!.fx]) t.release();
      model.release();
      const { H, I } = ffns[1];
      const n = X.length / H;
      const act = downProjInputRef(ffns[1], X);
      const want = columnMomentsRef(act, n, I);
      const e = { mean: relL2(stats[1].mean, want.mean), M2: relL2(stats[1].m2, want.m2), count: stats[1].n === n && n === tokens - 4 ? 0 : Infinity };
      return { err: Math.max(e.mean, e.M2, e.count), outputs: e };
    },
  },
  {
    family: 'dive',
    name: 'FLAP at 100% kept, one expert always taken = dense logits (every layer)',
    tol: TOL.gemm,
    smoke: true,
    async run(gpu, rng) {
      const { model, ffns, windows, tokens } = await setup(gpu, rng);
      const stats = await channelStats(model, windows, tokens);
      const ids = windows[1];
      model.reset();
      const dense = (await model.prefill(ids).read()) as Float32Array;
      const constructed = ffns.map((f, l) => flapLayer(f, stats[l], 1));
      const zeroBias = constructed.every((L) => L.bias.every((b) => b === 0) && L.experts.expertDim === c.hiddenDim) ? 0 : Infinity;
      const layers = new Map(constructed.map((L, l) => [l, uploadLayer(gpu, L)]));
      const blocks = convertLayers(model, layers);
      model.reset();
      const pruned = (await model.prefill(ids).read()) as Float32Array;
      for (const b of blocks.values()) b.release();
      for (const L of layers.values()) releaseLayer(L);
      model.release();
      const e = { 'logits vs dense': relL2(pruned, dense), 'bias exactly 0, all channels kept': zeroBias };
      return { err: Math.max(...Object.values(e)), outputs: e };
    },
  },
  {
    family: 'dive',
    name: 'FLAP bias compensation: pruned FFN mean output = dense mean output on the calibration tokens',
    tol: TOL.elementwise,
    async run(gpu, rng) {
      const { model, ffns, windows, tokens } = await setup(gpu, rng);
      const errs: Record<string, number> = {};
      const stats = await channelStats(model, windows, tokens);
      const cap = await captureFfn(model, windows, [0, 1], tokens);
      for (const l of [0, 1]) {
        const { x, fx } = cap.layers.get(l)!;
        for (const ratio of [0.5, 0.25]) {
          const layer = uploadLayer(gpu, flapLayer(ffns[l], stats[l], ratio));
          const block = new MoeBlock(layer);
          const y = gpu.tensor(x.shape, 'f32', 'pruned.y');
          block.ffn(x, y);
          const meanPruned = rowMean((await y.read()) as Float32Array, c.dim);
          errs[`layer ${l}, kept ${ratio}`] = relL2(meanPruned, rowMean((await fx.read()) as Float32Array, c.dim));
          y.release();
          block.release();
          releaseLayer(layer);
        }
        [x, fx].forEach((t) => t.release());
      }
      model.release();
      return { err: Math.max(...Object.values(errs)), outputs: errs };
    },
  },
];
