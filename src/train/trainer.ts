// The training loop, the same in the worker and the CLI: seeded windows of text, micro-batches whose
// gradients add up, AdamW with clipping and a warm-up + cosine schedule, held-out loss every evalEvery
// steps, checkpoints that resume exactly, AbortSignal cancel and structured progress. As LaDiMo's
// distillation loop (methods/ladimo/distill.ts), steps are recorded many per submit: the token ids of a run
// of steps are uploaded at once, each step's loss and gradient norm are copied into a log on the GPU, and
// the log is read once per run (logEvery steps). Every buffer is allocated before the first step.
import type { Gpu } from '../gpu/device.ts';
import { Tensor } from '../gpu/tensor.ts';
import type { LlamaModel } from '../model/llama.ts';
import { reduceAll } from '../ops/reduce.ts';
import { throwIfAborted } from '../methods/ladimo/progress.ts';
import { WindowSampler, type TrainTokens } from './data.ts';
import { sequenceLoss, type Sequence, type SequenceLossOptions, type TrainModel } from './llama-train.ts';
import { AdamW, learningRate, type AdamWOptions, type Schedule } from './optim.ts';

export interface TrainOptions {
  steps: number;
  /** tokens per sequence (each sequence predicts seqLen next tokens) */
  seqLen: number;
  /** sequences per step; their gradients add up before the update */
  microBatches: number;
  schedule: Omit<Schedule, 'steps'>;
  adamw: AdamWOptions;
  /** held-out loss every this many steps (0: before and after training only) */
  evalEvery: number;
  /** read the losses back every this many steps (one GPU sync each) */
  logEvery: number;
  /** snapshot every this many steps (0: at the end only), through onCheckpoint */
  checkpointEvery: number;
  /** seeds the training windows */
  seed: number;
  /** distillation: the objective is (1 − klWeight)·CE + klWeight·KL(teacher ‖ student) */
  teacher?: { model: LlamaModel; klWeight: number };
  /**
   * An objective other than the model's own next-token loss (the Mixture-of-Depths ensemble,
   * methods/mod): `loss` records one sequence as sequenceLoss does, and a step minimises
   * weights.ce·CE + weights.kl·KL per token, its KL logged as a teacher's is.
   */
  objective?: Objective;
  /** where an interrupted run stopped; the parameters are restored from it */
  resume?: TrainSnapshot;
  onCheckpoint?: (s: TrainSnapshot) => Promise<void>;
  onProgress?: (p: TrainProgress) => void;
  /** checked after each run of steps; aborting saves a snapshot (with onCheckpoint) and rejects with an AbortError */
  signal?: AbortSignal;
}

export interface Objective {
  loss: (m: TrainModel, s: Sequence, o: SequenceLossOptions) => void;
  weights: { ce: number; kl: number };
}

/** One optimizer step, after `step` updates. */
export interface StepPoint {
  step: number;
  /** mean cross-entropy of the step's tokens */
  loss: number;
  /** mean KL(teacher ‖ student) of the step's tokens, when distilling */
  kl?: number;
  lr: number;
  /** global gradient norm before clipping */
  gradNorm: number;
}

/** Held-out loss after `step` updates: mean cross-entropy over the held-out windows, and its exp. */
export interface EvalPoint {
  step: number;
  loss: number;
  ppl: number;
}

export interface TrainProgress {
  step: number;
  steps: number;
  point: StepPoint;
  /** the latest held-out point */
  eval: EvalPoint;
  tokensPerS: number;
  etaSeconds: number | null;
  /** GPU memory held (live tensors and the pool): the same at every reading once the first steps ran */
  gpuBytes: number;
}

/** Where a run stands at a log reading: enough to continue it bit for bit. */
export interface TrainState {
  step: number;
  /** training windows drawn by the sampler */
  windowsDrawn: number;
  curve: StepPoint[];
  evals: EvalPoint[];
  /** training time so far (evaluation excluded) */
  seconds: number;
}

export interface TrainSnapshot extends TrainState {
  /** each trainable parameter's value and AdamW moments, by parameter name */
  tensors: Record<string, { shape: number[]; value: Float32Array; m: Float32Array; v: Float32Array }>;
}

export interface TrainResult extends TrainState {
  tokens: number;
  tokensPerS: number;
  /** the step a resumed run started from; null for a fresh run */
  resumedFrom: number | null;
}

/** Trains `m` in place on `tokens`. */
export async function train(m: TrainModel, tokens: TrainTokens, o: TrainOptions): Promise<TrainResult> {
  const c = m.config;
  const { steps, seqLen: T, microBatches: M, logEvery: L, teacher } = o;
  const int = (name: string, v: number, lo: number, hi = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`train: ${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  };
  int('steps', steps, 0);
  int('seqLen', T, 1, c.maxSeqLen);
  int('microBatches', M, 1);
  int('logEvery', L, 1);
  int('evalEvery', o.evalEvery, 0);
  int('checkpointEvery', o.checkpointEvery, 0);
  if (teacher) {
    const tc = teacher.model.config;
    if (tc.vocabSize !== c.vocabSize) throw new Error(`train: the teacher's vocabulary (${tc.vocabSize}) is not the student's (${c.vocabSize})`);
    if (teacher.model.chunk < T) throw new Error(`train: the teacher takes ${teacher.model.chunk} tokens per forward, fewer than seqLen ${T}`);
    if (!(teacher.klWeight >= 0 && teacher.klWeight <= 1)) throw new Error(`train: klWeight must be in [0, 1], got ${teacher.klWeight}`);
  }
  const params = m.params.trainable();
  const gpu = params[0].value.gpu;
  const schedule: Schedule = { ...o.schedule, steps };
  const opt = new AdamW(gpu, params, o.adamw);
  if (teacher && o.objective) throw new Error('train: a teacher and an objective of its own exclude each other');
  const lossOf = o.objective?.loss ?? sequenceLoss;
  const b = new Buffers(gpu, T, M, L, tokens.valid.length, !!teacher || !!o.objective);
  const sampler = new WindowSampler(tokens.train, T + 1, o.seed);
  const klWeight = teacher?.klWeight ?? 0;
  const weights = o.objective?.weights ?? { ce: 1 - klWeight, kl: klWeight };
  const ceScale = weights.ce / (M * T), klScale = weights.kl / (M * T);
  const state: TrainState = o.resume
    ? { step: o.resume.step, windowsDrawn: o.resume.windowsDrawn, curve: [...o.resume.curve], evals: [...o.resume.evals], seconds: o.resume.seconds }
    : { step: 0, windowsDrawn: 0, curve: [], evals: [], seconds: 0 };
  try {
    if (o.resume) restore(gpu, opt, o.resume);
    sampler.skip(state.windowsDrawn);
    b.upload(b.evalIds, b.evalTargets, tokens.valid);
    const evaluate = async (step: number): Promise<EvalPoint> => {
      for (let w = 0; w < tokens.valid.length; w++) {
        gpu.copyRows(b.evalIds, w, b.ids.view([1, T]));
        gpu.copyRows(b.evalTargets, w, b.targets.view([1, T]));
        lossOf(m, { ids: b.ids, targets: b.targets }, { train: false, ceScale: 0, klScale: 0, out: { ce: b.evalCe, offset: w * T } });
      }
      reduceAll(b.evalCe, 'mean', { out: b.evalMean });
      const [loss] = await b.evalMean.read();
      return { step, loss, ppl: Math.exp(loss) };
    };
    if (!o.resume) state.evals.push(await evaluate(0));
    const due = (step: number, every: number) => every > 0 && step % every === 0;
    while (state.step < steps) {
      const next = (every: number) => (every > 0 ? (Math.floor(state.step / every) + 1) * every : steps);
      const run = Math.min(steps, next(L), next(o.evalEvery), next(o.checkpointEvery)) - state.step;
      const windows = Array.from({ length: run * M }, () => sampler.next());
      b.upload(b.runIds, b.runTargets, windows);
      const t0 = performance.now();
      const lrs: number[] = [];
      for (let i = 0; i < run; i++) {
        opt.zeroGrad();
        for (let j = 0; j < M; j++) {
          gpu.copyRows(b.runIds, i * M + j, b.ids.view([1, T]));
          gpu.copyRows(b.runTargets, i * M + j, b.targets.view([1, T]));
          // the teacher's logits [T, vocab] stay valid until its next forward, after this sequence's loss
          const teacherLogits = teacher && (teacher.model.reset(), teacher.model.forward(Array.from(windows[i * M + j].subarray(0, T))));
          // the key: the window's index in the sampler's stream, the same after a resume
          const key = state.windowsDrawn + i * M + j;
          lossOf(m, { ids: b.ids, targets: b.targets, teacherLogits, key }, { train: true, ceScale, klScale, out: { ce: b.stepCe, kl: b.stepKl ?? undefined, offset: j * T } });
        }
        // log row i: mean CE, mean KL, gradient norm, clip coefficient
        reduceAll(b.stepCe, 'mean', { out: b.mean });
        gpu.copy(b.mean, b.log, 4 * i);
        if (b.stepKl) {
          reduceAll(b.stepKl, 'mean', { out: b.mean });
          gpu.copy(b.mean, b.log, 4 * i + 1);
        }
        lrs.push(learningRate(schedule, state.step + i + 1));
        opt.update(lrs[i]);
        gpu.copy(opt.gradStats, b.log, 4 * i + 2);
      }
      const log = (await b.log.read()) as Float32Array;
      const seconds = (performance.now() - t0) / 1000;
      state.seconds += seconds;
      for (let i = 0; i < run; i++) {
        const point: StepPoint = { step: state.step + i + 1, loss: log[4 * i], lr: lrs[i], gradNorm: log[4 * i + 2] };
        if (b.stepKl) point.kl = log[4 * i + 1];
        if (!Number.isFinite(point.loss) || !Number.isFinite(point.gradNorm)) {
          throw new Error(`train: the loss diverged at step ${point.step} (loss ${point.loss}, gradient norm ${point.gradNorm}); lower train.lr or clip the gradient norm (train.clip)`);
        }
        state.curve.push(point);
      }
      state.step += run;
      state.windowsDrawn = sampler.drawn;
      if (due(state.step, o.evalEvery) || state.step === steps) state.evals.push(await evaluate(state.step));
      const rate = (run * M * T) / seconds;
      o.onProgress?.({
        step: state.step, steps, point: state.curve.at(-1)!, eval: state.evals.at(-1)!, tokensPerS: rate,
        etaSeconds: rate > 0 ? ((steps - state.step) * M * T) / rate : null, gpuBytes: gpu.bytesAllocated,
      });
      // a finished run is kept even when cancelled at its last reading
      const aborted = o.signal?.aborted === true && state.step < steps;
      if (o.onCheckpoint && (due(state.step, o.checkpointEvery) || state.step === steps || aborted)) await o.onCheckpoint(await snapshot(opt, state));
      if (state.step < steps) throwIfAborted(o.signal, `training at step ${state.step}`);
    }
    const trained = (state.step - (o.resume?.step ?? 0)) * M * T;
    return {
      ...state,
      tokens: state.step * M * T,
      tokensPerS: state.seconds > 0 ? trained / (state.seconds - (o.resume?.seconds ?? 0)) : 0,
      resumedFrom: o.resume ? o.resume.step : null,
    };
  } finally {
    b.release();
    opt.release();
  }
}

/** Every buffer a step and an evaluation use, allocated once. */
class Buffers {
  readonly ids: Tensor;          // [T] u32, one sequence
  readonly targets: Tensor;      // [T] u32
  readonly runIds: Tensor;       // [L·M, T] u32, a run of steps' sequences
  readonly runTargets: Tensor;   // [L·M, T] u32
  readonly stepCe: Tensor;       // [M·T] a step's per-token cross-entropy
  readonly stepKl: Tensor | null;  // [M·T] and KL
  readonly mean: Tensor;         // [1]
  readonly log: Tensor;          // [L, 4] per step: CE, KL, gradient norm, clip coefficient
  readonly evalIds: Tensor;      // [W, T] u32, the held-out windows
  readonly evalTargets: Tensor;  // [W, T] u32
  readonly evalCe: Tensor;       // [W·T]
  readonly evalMean: Tensor;     // [1]

  constructor(private readonly gpu: Gpu, private readonly T: number, M: number, L: number, W: number, kl: boolean) {
    const u32 = (shape: number[], label: string) => gpu.tensor(shape, 'u32', `train.${label}`);
    const f32 = (shape: number[], label: string) => gpu.tensor(shape, 'f32', `train.${label}`);
    this.ids = u32([T], 'ids');
    this.targets = u32([T], 'targets');
    this.runIds = u32([L * M, T], 'runIds');
    this.runTargets = u32([L * M, T], 'runTargets');
    this.stepCe = f32([M * T], 'stepCe');
    this.stepKl = kl ? f32([M * T], 'stepKl') : null;
    this.mean = f32([1], 'mean');
    this.log = f32([L, 4], 'log');
    this.evalIds = u32([W, T], 'evalIds');
    this.evalTargets = u32([W, T], 'evalTargets');
    this.evalCe = f32([W * T], 'evalCe');
    this.evalMean = f32([1], 'evalMean');
  }

  /** Windows of T + 1 tokens → their first T tokens into `ids` and last T into `targets`, rows in order (the rest zero). */
  upload(ids: Tensor, targets: Tensor, windows: readonly ArrayLike<number>[]): void {
    const T = this.T;
    const a = new Uint32Array(ids.size), t = new Uint32Array(targets.size);
    windows.forEach((w, r) => {
      for (let i = 0; i < T; i++) {
        a[r * T + i] = w[i];
        t[r * T + i] = w[i + 1];
      }
    });
    this.gpu.write(ids, a);
    this.gpu.write(targets, t);
  }

  release(): void {
    for (const t of Object.values(this)) if (t instanceof Tensor) t.release();
  }
}

/** The trainable parameters' values and moments read back, with the loop's state. */
async function snapshot(opt: AdamW, state: TrainState): Promise<TrainSnapshot> {
  const read = async (t: Tensor) => (await t.read()) as Float32Array;
  const tensors: TrainSnapshot['tensors'] = {};
  for (const [p, { m, v }] of opt.moments) tensors[p.name] = { shape: [...p.value.shape], value: await read(p.value), m: await read(m), v: await read(v) };
  return { ...state, curve: [...state.curve], evals: [...state.evals], tensors };
}

/** Puts a snapshot's values and moments back, and the optimizer's step. */
function restore(gpu: Gpu, opt: AdamW, s: TrainSnapshot): void {
  const names = new Set(Object.keys(s.tensors));
  for (const [p, { m, v }] of opt.moments) {
    const t = s.tensors[p.name];
    if (!t) throw new Error(`resume: the snapshot has no ${p.name} (it trains ${[...names].slice(0, 3).join(', ')}, …)`);
    if (t.value.length !== p.value.size) throw new Error(`resume: ${p.name} has ${t.value.length} values in the snapshot, ${p.value.size} in the model`);
    gpu.write(p.value, t.value);
    gpu.write(m, t.m);
    gpu.write(v, t.v);
    names.delete(p.name);
  }
  if (names.size) throw new Error(`resume: the snapshot trains parameters this run does not (${[...names].slice(0, 3).join(', ')})`);
  opt.step = s.step;
}
