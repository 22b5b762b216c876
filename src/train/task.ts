// `moefy train SPEC.json`: whole-model training of the spec's dense checkpoint on the spec's text, end to
// end and host-agnostic (files through HostIO, the GPU given): load → tokenize → LoRA and freezing → train
// (resuming from checkpoint.dir) → held-out loss and perplexity before and after, and the loss curve.
import type { Gpu } from '../gpu/device.ts';
import type { HostIO } from '../cli/io.ts';
import { openCheckpoint } from '../model/load.ts';
import type { Checkpoint } from '../model/weights.ts';
import { LlamaModel } from '../model/llama.ts';
import { checkTokenizer } from '../model/tokenizer.ts';
import { textDataFromFiles, type TextData } from '../methods/ladimo/data.ts';
import { FIELDS, type RunSpec, type SpecKey } from '../state/spec.ts';
import { latestSnapshot, saveSnapshot } from './checkpoint.ts';
import { trainTokens, type TrainTokens } from './data.ts';
import { releaseTrainModel, trainModel, type TrainModel, type TrainAttentionMoeLayer, type TrainMoeLayer } from './llama-train.ts';
import { patternList } from './params.ts';
import type { Param } from './tape.ts';
import { train, type EvalPoint, type StepPoint, type TrainOptions, type TrainProgress, type TrainResult, type TrainSnapshot } from './trainer.ts';

export interface TrainMetrics {
  params: { total: number; trainable: number };
  seq_len: number;
  micro_batches: number;
  steps: number;
  tokens: number;
  /** training time of this invocation's steps (evaluation excluded) */
  seconds: number;
  tokens_per_s: number;
  /** held-out mean cross-entropy and perplexity before the first step and after the last */
  loss_before: number;
  loss_after: number;
  ppl_before: number;
  ppl_after: number;
  curve: StepPoint[];
  evals: EvalPoint[];
  resumed_from: number | null;
  /** a digest of every frozen parameter before and after training (equal: the frozen weights did not change) */
  frozen_digest: { before: string; after: string } | null;
  /** GPU memory held at the first and the last loss reading (equal: steps allocate nothing once warm) */
  gpu_bytes: { first: number; last: number };
  device: string;
}

/** Fields that change nothing a snapshot holds: how often the loop reads back and snapshots. */
const NEUTRAL = new Set<SpecKey>(['train.checkpointEvery', 'train.logEvery']);
/** train.* fields of LaDiMo's layer-wise distillation, which whole-model training does not read. */
const DISTILL_ONLY = new Set<SpecKey>(['train.alpha', 'train.topK', 'train.normTopK', 'train.heldOut']);

/**
 * What a run's snapshots depend on: the sources, the seed, the held-out windows and the training fields.
 * An allow-list, so that other methods' fields never make a snapshot "another run's"; a method that trains
 * adds the keys of its own fields that its pieces depend on (`methodFields`).
 */
export function trainIdentity(spec: RunSpec, ...methodFields: RegExp[]): Record<string, unknown> {
  const reads = (k: SpecKey) => ['method', 'model', 'tokenizer', 'data', 'seed', 'eval.maxWindows'].includes(k) ||
    (k.startsWith('train.') && !NEUTRAL.has(k) && !DISTILL_ONLY.has(k)) || methodFields.some((re) => re.test(k));
  return Object.fromEntries(FIELDS.filter((f) => reads(f.key)).map((f) => [f.key, spec[f.key]]));
}

/** Sequences per step: train.batchTokens / train.seqLen, which must divide. */
export function microBatches(spec: RunSpec): number {
  const n = spec['train.batchTokens'] / spec['train.seqLen'];
  if (!Number.isInteger(n)) throw new Error(`train.batchTokens: ${spec['train.batchTokens']} is not a multiple of train.seqLen ${spec['train.seqLen']} (a step is whole sequences)`);
  return n;
}

/** The loop's settings from the spec's train.* fields (methods that train through train() share them). */
export function loopOptions(spec: RunSpec): Omit<TrainOptions, 'teacher' | 'objective' | 'resume' | 'onCheckpoint' | 'onProgress' | 'signal'> {
  return {
    steps: spec['train.steps'],
    seqLen: spec['train.seqLen'],
    microBatches: microBatches(spec),
    schedule: { kind: spec['train.schedule'], lr: spec['train.lr'], warmup: spec['train.warmup'], minLrRatio: spec['train.minLr'] },
    adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: spec['train.weightDecay'], clip: spec['train.clip'] },
    evalEvery: spec['train.evalEvery'],
    logEvery: spec['train.logEvery'],
    checkpointEvery: spec['train.checkpointEvery'],
    seed: spec.seed,
  };
}

/** The spec's training text: windows of train.seqLen from train.domains of `data`, eval.maxWindows held out. */
export function specTrainTokens(spec: RunSpec, ckpt: Pick<Checkpoint, 'config' | 'tokenizer'>, data: TextData): Promise<TrainTokens> {
  const seqLen = spec['train.seqLen'];
  if (seqLen > ckpt.config.maxSeqLen) throw new Error(`train.seqLen: ${seqLen} exceeds the model's ${ckpt.config.maxSeqLen} positions`);
  const domains = spec['train.domains'] === 'all' ? 'all' : patternList(spec['train.domains']);
  return trainTokens(data, domains, ckpt.tokenizer, seqLen, spec['eval.maxWindows'], 'train.domains');
}

/** `model` as the spec trains it: its LoRA adapters (train.lora.*), trainable set (train.only, train.freeze), recompute; `moe`: layers whose FFN is a MoE block, `attention`: those whose attention is an attention MoE. */
export function specTrainModel(
  model: LlamaModel, spec: RunSpec, moe?: ReadonlyMap<number, TrainMoeLayer>, attention?: ReadonlyMap<number, TrainAttentionMoeLayer>,
): TrainModel {
  const rank = spec['train.lora.rank'];
  return trainModel(model, {
    moe,
    attention,
    lora: rank > 0 ? { rank, alpha: spec['train.lora.alpha'], targets: patternList(spec['train.lora.targets']), seed: spec.seed, field: 'train.lora.targets' } : undefined,
    freeze: { only: patternList(spec['train.only']), freeze: patternList(spec['train.freeze']), fields: { only: 'train.only', freeze: 'train.freeze' } },
    recompute: spec['train.recompute'],
  });
}

/** A finished run's metrics (all but the frozen-weight digest): `bytes` are the GPU memory readings of its progress reports. */
export function trainMetrics(spec: RunSpec, m: TrainModel, r: TrainResult, resume: TrainSnapshot | null, bytes: number[]): Omit<TrainMetrics, 'frozen_digest'> {
  const gpu = m.params.get('model.embed_tokens.weight').value.gpu;
  const [first, last] = [r.evals[0], r.evals.at(-1)!];
  return {
    params: m.params.counts(), seq_len: spec['train.seqLen'], micro_batches: microBatches(spec), steps: r.step, tokens: r.tokens,
    seconds: r.seconds - (resume?.seconds ?? 0), tokens_per_s: r.tokensPerS,
    loss_before: first.loss, loss_after: last.loss, ppl_before: first.ppl, ppl_after: last.ppl,
    curve: r.curve, evals: r.evals, resumed_from: r.resumedFrom,
    gpu_bytes: { first: bytes[0] ?? gpu.bytesAllocated, last: bytes.at(-1) ?? gpu.bytesAllocated },
    device: gpu.describe(),
  };
}

export async function trainTask(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO, signal?: AbortSignal): Promise<TrainMetrics> {
  if (spec.method !== 'train') throw new Error(`method: '${spec.method}'; moefy train runs specs whose method is 'train'`);
  if (spec['export.dir']) throw new Error("export.dir: method 'train' trains the model in place and exports nothing; leave it empty");
  const seqLen = spec['train.seqLen'];
  const ckpt = await openCheckpoint(await io.open(spec.tokenizer ? [spec.model, spec.tokenizer] : [spec.model]));
  checkTokenizer(ckpt.tokenizer, ckpt.config, { allowPadded: true });
  const data = await textDataFromFiles(await io.open([spec.data]), spec.data);
  const tokens = await specTrainTokens(spec, ckpt, data);
  progress(`${tokens.train.length} training tokens from ${tokens.domains.join(', ')}; ${tokens.valid.length} held-out windows of ${seqLen + 1}`);
  // the student's forward is the training one: its inference run state is kept to the minimum
  const model = await LlamaModel.load(gpu, ckpt.weights, { chunk: 1, seqLen: 1 });
  const opened: { release(): void }[] = [model];
  try {
    const teacher = spec['train.teacher'] ? await loadTeacher(gpu, spec, seqLen, io) : undefined;
    if (teacher) opened.push(teacher);
    const m = specTrainModel(model, spec);
    opened.unshift({ release: () => releaseTrainModel(m) });
    const counts = m.params.counts();
    progress(`training ${counts.trainable} of ${counts.total} parameters (${m.params.trainable().length} tensors${m.lora.size ? `, LoRA r ${spec['train.lora.rank']} on ${m.lora.size} layers` : ''}) on ${gpu.describe()}`);
    const frozen = m.params.all().filter((p) => !p.trainable);
    const before = frozen.length ? await digest(frozen) : null;
    const identity = trainIdentity(spec);
    const dir = spec['checkpoint.dir'];
    const resume = dir ? await latestSnapshot(io, dir, identity) : null;
    if (resume) progress(`resuming from ${dir} at step ${resume.step}`);
    const bytes: number[] = [];
    const print = throttle(progress, 5000);
    const r = await train(m, tokens, {
      ...loopOptions(spec),
      teacher: teacher && { model: teacher, klWeight: spec['train.klWeight'] },
      resume: resume ?? undefined,
      onCheckpoint: dir ? (s) => saveSnapshot(io, dir, s, identity) : undefined,
      onProgress: (p) => {
        bytes.push(p.gpuBytes);
        print(p);
      },
      signal,
    });
    const after = frozen.length ? await digest(frozen) : null;
    return { ...trainMetrics(spec, m, r, resume, bytes), frozen_digest: before && after ? { before, after } : null };
  } finally {
    for (const x of opened) x.release();
  }
}

/** The teacher of train.teacher, run by the inference forward one sequence at a time. */
async function loadTeacher(gpu: Gpu, spec: RunSpec, seqLen: number, io: HostIO): Promise<LlamaModel> {
  const ckpt = await openCheckpoint(await io.open([spec['train.teacher']]));
  return LlamaModel.load(gpu, ckpt.weights, { chunk: seqLen, seqLen });
}

/** A text line per progress report, at most every `ms` (and always the last). */
export function throttle(line: (m: string) => void, ms: number): (p: TrainProgress) => void {
  let last = -Infinity;
  return (p) => {
    const now = performance.now();
    if (now - last < ms && p.step < p.steps) return;
    last = now;
    const q = p.point;
    const eta = p.etaSeconds !== null && p.step < p.steps ? `, ETA ${p.etaSeconds.toFixed(0)} s` : '';
    line(`train: step ${p.step}/${p.steps}, loss ${q.loss.toFixed(4)}${q.kl !== undefined ? `, kl ${q.kl.toFixed(4)}` : ''}, lr ${q.lr.toExponential(2)}, ` +
      `grad norm ${q.gradNorm.toFixed(3)}, held-out ${p.eval.loss.toFixed(4)} (step ${p.eval.step}), ${p.tokensPerS.toFixed(1)} tokens/s${eta}`);
  };
}

/** FNV-1a over the f32 words of the parameters (two 32-bit lanes): equal digests, equal weights. */
async function digest(params: readonly Param[]): Promise<string> {
  let a = 0x811c9dc5, b = 0x9747b28c;
  for (const p of params) {
    const words = new Uint32Array((await p.value.read()).buffer);
    for (const w of words) {
      a = Math.imul(a ^ w, 0x01000193) >>> 0;
      b = Math.imul(b ^ w, 0x5bd1e995) >>> 0;
    }
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}
