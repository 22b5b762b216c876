// LaDiMo (arXiv 2408.04278) §4.2–4.3, stage "Distill": train one layer's MoE block alone to mimic the dense
// FFN on the captured pairs (x, f(x)), with L = MSE(f̂(x), f(x)) + α·‖L_mse‖·L_aux and Adam. Mini-batches
// are drawn from a seeded Rng (a fresh permutation of the training rows each epoch) and gathered on the
// GPU; steps are recorded many per submit, and the losses are read only every `logEvery` steps. A run
// stopped at a loss reading resumes bit-identically from its snapshot: weights, Adam moments and step, the
// loss curve so far, and the batch sampler's position.
import type { Tensor } from '../../gpu/tensor.ts';
import { Rng } from '../../data/rng.ts';
import { embedding } from '../../ops/embedding.ts';
import { moeForward, type MoeWeights, type RoutingOptions } from '../../ops/moe.ts';
import { createDistillState, moeDistillStep, releaseDistillState, type DistillState } from '../../ops/moe-train.ts';
import type { CapturedLayer } from './capture.ts';
import { throwIfAborted } from './progress.ts';

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
  /** read the losses every this many steps (one GPU sync each; default logEvery(steps)) */
  logEvery?: number;
  onProgress?: (step: number, steps: number, point: LossPoint) => void;
  /** where an interrupted run stopped (its snapshot); `weights` must already hold the snapshot's weights */
  resume?: DistillResume;
  /**
   * Saves a snapshot. Called at a loss reading when `checkpointSeconds` have passed since the last one
   * (default: 10 s, or ten times the last save's duration if longer, so saving stays under ~10% of the
   * time), and when `signal` aborts, so a cancelled layer loses no steps.
   */
  onCheckpoint?: (snapshot: DistillSnapshot) => Promise<void>;
  checkpointSeconds?: number;
  /** checked at each loss reading, when every recorded step has run; aborting rejects with an AbortError */
  signal?: AbortSignal;
}

/** A layer's training state at a loss reading, from which a run continues bit for bit. */
export interface DistillResume {
  /** Adam steps taken (Adam's t); the batch sampler has drawn as many batches */
  step: number;
  curve: LossPoint[];
  mseBefore: number;
  /** training time so far */
  seconds: number;
  /** Adam's first and second moments of each weight */
  moments: Record<keyof MoeWeights, { m: Float32Array; v: Float32Array }>;
}

export interface DistillSnapshot extends DistillResume {
  weights: Record<keyof MoeWeights, Float32Array>;
}

const WEIGHTS = ['router', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** Loss readings at most every 50 steps, and about 100 of them on short runs, so the curve has a shape. */
function logEvery(steps: number): number {
  return Math.min(50, Math.max(1, Math.ceil(steps / 100)));
}

/** One point of a layer's loss curve (§4.3: L = L_mse + α·‖L_mse‖·L_aux), after `step` steps. */
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
  const { resume, signal } = opts;
  const every = opts.logEvery ?? logEvery(opts.steps);
  // held-out rows are the captured tail: text the training batches never see
  const heldX = gpu.tensor([nHeld, H], 'f32', 'heldOut.x');
  const heldF = gpu.tensor([nHeld, H], 'f32', 'heldOut.fx');
  gpu.copyRows(captured.x, nTrain, heldX);
  gpu.copyRows(captured.fx, nTrain, heldF);
  const T = opts.batchTokens;
  const state = createDistillState(gpu, weights, { ...opts.routing, T, alpha: opts.alpha, lr: opts.lr });
  const bx = gpu.tensor([T, H], 'f32', 'batch.x');
  const bf = gpu.tensor([T, H], 'f32', 'batch.fx');
  try {
    const mseBefore = resume?.mseBefore ?? (await heldOutError(weights, heldX, heldF, opts.routing)).mse;
    const sampler = new BatchSampler(nTrain, T, opts.seed);
    const curve = [...(resume?.curve ?? [])];
    let step = resume?.step ?? 0;
    sampler.skip(step);
    if (resume) {
      for (const k of WEIGHTS) {
        gpu.write(state.moments[k].m, resume.moments[k].m);
        gpu.write(state.moments[k].v, resume.moments[k].v);
      }
      state.step = step;
    }
    const t0 = performance.now();
    const seconds = () => (resume?.seconds ?? 0) + (performance.now() - t0) / 1000;
    let saved = { at: t0, cost: 0 };
    const trainX = captured.x.rows(nTrain);
    const trainF = captured.fx.rows(nTrain);
    while (step < opts.steps) {
      // Indices for a run of steps are uploaded first: an upload submits what is recorded before it.
      const run = Math.min(every, opts.steps - step);
      const idx = Array.from({ length: run }, () => gpu.upload(sampler.next(), [T], 'batch.ids'));
      for (const ids of idx) {
        embedding(trainX, ids, { out: bx });
        embedding(trainF, ids, { out: bf });
        moeDistillStep(state, { x: bx, target: bf });
      }
      step += run;
      const [mse, aux, total] = await Promise.all([state.losses.mse.read(), state.losses.aux.read(), state.losses.total.read()]);
      const point = { step, mse: mse[0], aux: aux[0], total: total[0] };
      curve.push(point);
      for (const t of idx) t.release();
      opts.onProgress?.(step, opts.steps, point);
      if (step === opts.steps) break; // a finished layer is kept, even when the stage is being cancelled
      const due = (performance.now() - saved.at) / 1000 >= (opts.checkpointSeconds ?? Math.max(10, 10 * saved.cost));
      if (opts.onCheckpoint && (due || signal?.aborted)) {
        const t = performance.now();
        await opts.onCheckpoint(await snapshot(state, { step, curve: [...curve], mseBefore, seconds: seconds() }));
        saved = { at: performance.now(), cost: (performance.now() - t) / 1000 };
      }
      throwIfAborted(signal, `distilling layer ${captured.layer}`);
    }
    const trained = seconds();
    const after = await heldOutError(weights, heldX, heldF, opts.routing);
    return { layer: captured.layer, curve, mseBefore, mseFinal: after.mse, relErr: after.relErr, expertLoad: after.expertLoad, seconds: trained };
  } finally {
    releaseDistillState(state);
    [bx, bf, heldX, heldF].forEach((t) => t.release());
  }
}

/** The weights and Adam moments read back, with the rest of the state. */
async function snapshot(state: DistillState, rest: Omit<DistillResume, 'moments'>): Promise<DistillSnapshot> {
  const read = async (t: Tensor) => (await t.read()) as Float32Array;
  const weights = {} as DistillSnapshot['weights'];
  const moments = {} as DistillSnapshot['moments'];
  for (const k of WEIGHTS) {
    weights[k] = await read(state.weights[k]);
    moments[k] = { m: await read(state.moments[k].m), v: await read(state.moments[k].v) };
  }
  return { ...rest, weights, moments };
}

/**
 * Mini-batches of T training-row indices: a fresh seeded permutation of the rows each epoch, drawn from
 * its end. Its state is the number of batches drawn, so a resumed run replays as many to continue the
 * same sequence (host arithmetic only: milliseconds for thousands of steps).
 */
class BatchSampler {
  private readonly rng: Rng;
  private order: number[] = [];

  constructor(private readonly n: number, private readonly T: number, seed: number) {
    this.rng = new Rng(seed);
  }

  next(): Uint32Array {
    const ids = new Uint32Array(this.T);
    for (let i = 0; i < this.T; i++) {
      if (!this.order.length) this.order = permutation(this.n, this.rng);
      ids[i] = this.order.pop()!;
    }
    return ids;
  }

  skip(batches: number): void {
    for (let b = 0; b < batches; b++) this.next();
  }
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
