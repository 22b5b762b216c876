// LaDiMo (arXiv 2408.04278) §4.2–4.3, stage "Distill": train one layer's MoE block alone to mimic the dense
// FFN on the captured pairs (x, f(x)), with L = MSE(f̂(x), f(x)) + α·‖L_mse‖·L_aux and Adam. Mini-batches
// are drawn from a seeded Rng (a fresh permutation of the training rows each epoch) and gathered on the
// GPU; steps are recorded many per submit, and the losses are read only every `logEvery` steps.
import type { Tensor } from '../../gpu/tensor.ts';
import { Rng } from '../../data/rng.ts';
import { embedding } from '../../ops/embedding.ts';
import { moeForward, type MoeWeights, type RoutingOptions } from '../../ops/moe.ts';
import { createDistillState, moeDistillStep, releaseDistillState } from '../../ops/moe-train.ts';
import type { CapturedLayer } from './capture.ts';

export interface DistillOptions {
  steps: number;
  batchTokens: number;
  lr: number;
  /** α of the adaptive auxiliary loss (§4.3) */
  alpha: number;
  routing: RoutingOptions;
  /** share of the captured rows (the last ones) held out for the before/after error */
  heldOut: number;
  seed: number;
  /** read the losses every this many steps (one GPU sync each) */
  logEvery?: number;
  onProgress?: (step: number, steps: number, mse: number) => void;
}

export interface LossPoint {
  step: number;
  mse: number;
  aux: number;
  total: number;
}

export interface DistillResult {
  layer: number;
  curve: LossPoint[];
  /** held-out MSE of the block before and after training */
  mseBefore: number;
  mseFinal: number;
  /** ‖f̂ − f‖ / ‖f‖ on the held-out rows after training */
  relErr: number;
  /** share of held-out (token, slot) assignments each expert received */
  expertLoad: number[];
  seconds: number;
}

/** Held-out error of the block as it stands: MSE, relative error and expert load. */
async function heldOutError(weights: MoeWeights, x: Tensor, fx: Tensor, routing: RoutingOptions) {
  const r = moeForward(x, weights, routing);
  const [y, f, ids] = await Promise.all([r.y.read(), fx.read(), r.topIds.read()]);
  let se = 0, ff = 0;
  for (let i = 0; i < y.length; i++) {
    se += (y[i] - f[i]) ** 2;
    ff += f[i] * f[i];
  }
  const E = weights.router.shape[0];
  const load = new Array<number>(E).fill(0);
  let assigned = 0;
  for (const e of ids) {
    if (e < E) {
      load[e]++;
      assigned++;
    }
  }
  for (const t of Object.values(r)) if (typeof t === 'object') (t as Tensor).release();
  return { mse: se / y.length, relErr: Math.sqrt(se / ff), expertLoad: load.map((n) => n / assigned) };
}

export async function distillLayer(captured: CapturedLayer, weights: MoeWeights, opts: DistillOptions): Promise<DistillResult> {
  const gpu = captured.x.gpu;
  const [N, H] = captured.x.shape;
  const nHeld = Math.max(1, Math.round(N * opts.heldOut));
  const nTrain = N - nHeld;
  if (nTrain < opts.batchTokens) throw new Error(`distill layer ${captured.layer}: ${nTrain} training rows, fewer than a ${opts.batchTokens}-token batch`);
  // held-out rows are the captured tail: text the training batches never see
  const heldX = gpu.tensor([nHeld, H], 'f32', 'heldOut.x');
  const heldF = gpu.tensor([nHeld, H], 'f32', 'heldOut.fx');
  gpu.copyRows(captured.x, nTrain, heldX);
  gpu.copyRows(captured.fx, nTrain, heldF);
  const before = await heldOutError(weights, heldX, heldF, opts.routing);

  const t0 = performance.now();
  const T = opts.batchTokens;
  const state = createDistillState(gpu, weights, { ...opts.routing, T, alpha: opts.alpha, lr: opts.lr });
  const trainX = captured.x.rows(nTrain);
  const trainF = captured.fx.rows(nTrain);
  const bx = gpu.tensor([T, H], 'f32', 'batch.x');
  const bf = gpu.tensor([T, H], 'f32', 'batch.fx');
  const rng = new Rng(opts.seed);
  let order: number[] = [];
  const nextBatch = (): Uint32Array => {
    const ids = new Uint32Array(T);
    for (let i = 0; i < T; i++) {
      if (!order.length) order = permutation(nTrain, rng);
      ids[i] = order.pop()!;
    }
    return ids;
  };
  const logEvery = opts.logEvery ?? 50;
  const curve: LossPoint[] = [];
  for (let step = 0; step < opts.steps; ) {
    // Indices for a run of steps are uploaded first: an upload submits what is recorded before it.
    const run = Math.min(logEvery, opts.steps - step);
    const idx = Array.from({ length: run }, () => gpu.upload(nextBatch(), [T], 'batch.ids'));
    for (const ids of idx) {
      embedding(trainX, ids, { out: bx });
      embedding(trainF, ids, { out: bf });
      moeDistillStep(state, { x: bx, target: bf });
    }
    step += run;
    const [mse, aux, total] = await Promise.all([state.losses.mse.read(), state.losses.aux.read(), state.losses.total.read()]);
    curve.push({ step, mse: mse[0], aux: aux[0], total: total[0] });
    for (const t of idx) t.release();
    opts.onProgress?.(step, opts.steps, mse[0]);
  }
  releaseDistillState(state);
  [bx, bf].forEach((t) => t.release());
  const seconds = (performance.now() - t0) / 1000;
  const after = await heldOutError(weights, heldX, heldF, opts.routing);
  [heldX, heldF].forEach((t) => t.release());
  return { layer: captured.layer, curve, mseBefore: before.mse, mseFinal: after.mse, relErr: after.relErr, expertLoad: after.expertLoad, seconds };
}

/** A seeded Fisher–Yates permutation of 0..n−1. */
function permutation(n: number, rng: Rng): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
