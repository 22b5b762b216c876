// `moefy run` for method 'mod': Mixture-of-Depths ensemble tuning (Luo & Specia 2024, arXiv:2410.13077)
// compared as §3 of the paper does, on one task, budget and seed: the base model untuned; LoRA alone;
// MoD alone (the late layers' norms and the router train, the base is frozen: the paper's "replace the
// tuning method with MoD" setting); MoD + LoRA. Each variant starts from the checkpoint as loaded, trains
// on the arithmetic problems' training text, and is scored by exact match of its greedy answers on the
// held-out problems, perplexity on prose (eval.domain), tokens/s of its forward with the head, and (MoD)
// the router's weight per member and token type. Host-agnostic: runMod opens the spec's files for the CLI;
// modRun takes a checkpoint and text already open (the workbench's loaded model and Data stage), reports as
// a TaskControl and keeps each finished variant in a PieceMemo (checkpoint.dir, or the browser's store),
// so a stopped run resumes at the next variant, and mid-training from its last snapshot.
import type { Gpu } from '../../gpu/device.ts';
import type { HostIO } from '../../cli/io.ts';
import { LlamaModel } from '../../model/llama.ts';
import { checkTokenizer } from '../../model/tokenizer.ts';
import type { Checkpoint } from '../../model/weights.ts';
import { SpecError, type RunSpec } from '../../state/spec.ts';
import { trainTokens, type TrainTokens } from '../../train/data.ts';
import { releaseTrainModel, trainModel, type TrainModel } from '../../train/llama-train.ts';
import { patternList } from '../../train/params.ts';
import { loopOptions, throttle, trainIdentity } from '../../train/task.ts';
import { train, type EvalPoint, type StepPoint } from '../../train/trainer.ts';
import { keptPiece, openPiecesRun, snapshotOptions, type PieceMemo, type TrainSnapshots } from '../ladimo/checkpoint.ts';
import { evaluationWindows, type TextData } from '../ladimo/data.ts';
import { meter, throwIfAborted, type TaskControl } from '../ladimo/progress.ts';
import { addModHead, modSequenceLoss, type ModHead } from './ensemble.ts';
import { exactMatch, prosePerplexity, type RoutingAnalysis } from './evaluate.ts';
import { modPairs, VARIANTS, type Variant } from './report.ts';
import { builtinProblemDomain, parseProblems, type Problem } from './task-data.ts';

export interface VariantMetrics {
  variant: Variant;
  /** every parameter (adapters and the MoD head included) and the trained ones */
  params: { total: number; trainable: number };
  /** exact match of the greedy answer on the held-out problems */
  accuracy: number;
  correct: number;
  scored: number;
  /** perplexity of the variant's prediction on eval.domain's held-out prose */
  ppl_prose: number;
  /** forward tokens/s of the tuned model with its head, over the prose windows (nothing recorded) */
  tokens_per_s: number;
  /** held-out loss on the problems' valid text before and after training (null: not trained) */
  train: { steps: number; tokens: number; seconds: number; tokens_per_s: number; evals: EvalPoint[]; kl_last: number | null; curve: StepPoint[] } | null;
  samples: { prompt: string; answer: number; greedy: number | null }[];
  routing: RoutingAnalysis | null;
  eval_seconds: number;
}

export interface ModMetrics {
  device: string;
  k: number;
  mix: string;
  lambda: number;
  /** the late layers whose predictions join the final one */
  layers: number[];
  problems: { source: string; train_tokens: number; scored: number };
  prose: { domain: string; windows: number; tokens: number };
  variants: VariantMetrics[];
  /** MoD's trainable parameters as a share of LoRA's (when both ran) */
  mod_share_of_lora_params: number | null;
  /** accuracy differences (percentage points) of the MoD variants over base and LoRA, where both ran */
  accuracy_gain: Record<string, number>;
}

/** The variants a spec names, checked. */
export function specVariants(spec: RunSpec): Variant[] {
  const names = patternList(spec['mod.variants']);
  if (!names.length) throw new Error(`mod.variants: name at least one of ${VARIANTS.join(', ')}`);
  for (const n of names) if (!(VARIANTS as readonly string[]).includes(n)) throw new Error(`mod.variants: '${n}' is not one of ${VARIANTS.join(', ')}`);
  return VARIANTS.filter((v) => names.includes(v));
}

/** Each variant's finished result, in checkpoint.dir (or the browser's store) as `mod-variant-<name>.json`. */
export const MOD_PIECES = 'mod-';

/** What a run's variants depend on: the training loop's fields, the seed, the sources, and the mod.* and eval.* fields. */
export function modIdentity(spec: RunSpec): Record<string, unknown> {
  return trainIdentity(spec, /^(mod|eval)\./);
}

/** `moefy run` with method 'mod': the spec's model and data opened through the host; finished variants kept in checkpoint.dir when set. */
export async function runMod(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<ModMetrics> {
  const { ckpt, data, memo } = await openPiecesRun(io, spec, modIdentity(spec), MOD_PIECES);
  return modRun(gpu, ckpt, data, spec, { onLog: progress }, memo);
}

/**
 * The comparison on an open checkpoint and text (the CLI's files, or the workbench's loaded model and Data
 * stage). Each variant is a piece of `memo`: a stopped run reads back the finished ones, and the one under
 * way resumes from its last training snapshot.
 */
export async function modRun(gpu: Gpu, ckpt: Checkpoint, data: TextData, spec: RunSpec, control: TaskControl, memo?: PieceMemo): Promise<ModMetrics> {
  if (spec.method !== 'mod') throw new SpecError('method', `'${spec.method}'; this runs specs whose method is 'mod'`);
  const variants = specVariants(spec);
  const usesLora = variants.some((v) => v.endsWith('lora'));
  if (usesLora && spec['train.lora.rank'] < 1) throw new SpecError('train.lora.rank', `the variants ${variants.filter((v) => v.endsWith('lora')).join(', ')} need LoRA adapters (rank ≥ 1), got ${spec['train.lora.rank']}`);
  if (variants.some((v) => v.startsWith('mod')) && spec['mod.k'] < 1) throw new SpecError('mod.k', '0 late layers leave MoD nothing to mix or train; set k ≥ 1 or drop mod and mod+lora from mod.variants');
  const progress = (m: string) => control.onLog?.(m);
  checkTokenizer(ckpt.tokenizer, ckpt.config, { allowPadded: true });
  const tok = ckpt.tokenizer;
  const seqLen = spec['train.seqLen'];
  if (seqLen > ckpt.config.maxSeqLen) throw new SpecError('train.seqLen', `${seqLen} exceeds the model's ${ckpt.config.maxSeqLen} positions`);
  const math = spec['mod.problems'] === 'builtin' ? builtinProblemDomain(spec.seed) : data.domains.find((d) => d.name === spec['mod.domain']);
  if (!math) throw new SpecError('mod.domain', `no domain '${spec['mod.domain']}' in ${data.label} (domains: ${data.domains.map((d) => d.name).join(', ')}); or set mod.problems to 'builtin'`);
  const mathData: TextData = { label: spec['mod.problems'] === 'builtin' ? 'built-in generator' : data.label, domains: [math] };
  const tokens = await trainTokens(mathData, [math.name], tok, seqLen, spec['eval.maxWindows'], 'mod.domain');
  const problems = parseProblems(await math.text('valid'), `${mathData.label} ${math.name} valid`).slice(0, spec['mod.evalProblems']);
  const prose = await evaluationWindows(data, spec, tok, spec['eval.window']);
  if (!prose.length) throw new SpecError('eval.domain', `${spec['eval.domain']}'s held-out text is shorter than one window of ${spec['eval.window']} tokens`);
  progress(`${tokens.train.length} training tokens of ${math.name} (${mathData.label}); ${problems.length} held-out problems; ${prose.length} prose windows of ${spec['eval.domain']}`);

  // progress counts training steps and scored problems, each variant's in turn
  const steps = spec['train.steps'];
  const work = (v: Variant) => (v === 'base' ? 0 : steps) + problems.length;
  const tick = meter(control, 'mod', 'steps + problems', variants.reduce((s, v) => s + work(v), 0));
  let done = 0;
  const out: VariantMetrics[] = [];
  for (const v of variants) {
    throwIfAborted(control.signal, `the ${v} variant`);
    out.push(await keptPiece(memo, `variant-${v}`, (snapshots) => tuneAndScore(gpu, ckpt, spec, v, { tokens, problems, prose }, {
      onLog: control.onLog, signal: control.signal, snapshots: snapshots?.(1), tick: (n, detail) => tick(done + n, detail),
    })));
    done += work(v);
    tick(done, `${v}: done`);
  }
  // the k layers before the final one (ensemble.ts addModHead)
  const first = ckpt.config.nLayers - 1 - spec['mod.k'];
  const [mod, lora] = [out.find((v) => v.variant === 'mod'), out.find((v) => v.variant === 'lora')];
  const usesMod = variants.some((v) => v.startsWith('mod'));
  return {
    device: gpu.describe(), k: spec['mod.k'], mix: spec['mod.mix'], lambda: spec['mod.lambda'],
    layers: usesMod ? Array.from({ length: spec['mod.k'] }, (_, i) => first + i) : [],
    problems: { source: `${mathData.label}: ${math.name}`, train_tokens: tokens.train.length, scored: problems.length },
    prose: { domain: spec['eval.domain'], windows: prose.length, tokens: prose.reduce((s, w) => s + w.length - 1, 0) },
    variants: out,
    mod_share_of_lora_params: mod && lora ? mod.params.trainable / lora.params.trainable : null,
    accuracy_gain: Object.fromEntries(modPairs(out).map(([key, x, y]) => [key, 100 * (x.accuracy - y.accuracy)])),
  };
}

interface Inputs {
  tokens: TrainTokens;
  problems: Problem[];
  prose: number[][];
}

/** One variant on a fresh copy of the model: trained (not the base), then scored; `tick(n)` counts its steps, then its problems. */
async function tuneAndScore(
  gpu: Gpu, ckpt: Checkpoint, spec: RunSpec, v: Variant, { tokens, problems, prose }: Inputs,
  control: Pick<TaskControl, 'onLog' | 'signal'> & { snapshots?: TrainSnapshots; tick: (n: number, detail: string) => void },
): Promise<VariantMetrics> {
  const progress = (m: string) => control.onLog?.(m);
  const model = await LlamaModel.load(gpu, ckpt.weights, { chunk: 1, seqLen: 1 });
  let m: TrainModel | null = null;
  let head: ModHead | null = null;
  try {
    m = variantModel(model, spec, v);
    head = addModHead(m, { k: v.startsWith('mod') ? spec['mod.k'] : 0, mix: spec['mod.mix'], initFinal: spec['mod.initFinal'] });
    const counts = m.params.counts();
    const h = head;
    const objective = { loss: (mm: TrainModel, s: Parameters<typeof modSequenceLoss>[2], o: Parameters<typeof modSequenceLoss>[3]) => modSequenceLoss(mm, h, s, o), weights: { ce: 1, kl: spec['mod.lambda'] } };
    const steps = v === 'base' ? 0 : spec['train.steps'];
    let trained: VariantMetrics['train'] = null;
    if (v !== 'base') {
      progress(`${v}: training ${counts.trainable} of ${counts.total} parameters`);
      const print = throttle((line) => progress(`${v}: ${line}`), 5000);
      const r = await train(m, tokens, {
        ...loopOptions(spec), objective, signal: control.signal, ...(await snapshotOptions(control.snapshots, v, steps, progress)),
        onProgress: (p) => {
          print(p);
          control.tick(p.step, `${v}: step ${p.step}/${p.steps}, loss ${p.point.loss.toFixed(3)}`);
        },
      });
      trained = { steps: r.step, tokens: r.tokens, seconds: r.seconds, tokens_per_s: r.tokensPerS, evals: r.evals, kl_last: r.curve.at(-1)?.kl ?? null, curve: r.curve };
    }
    const em = await exactMatch(m, head, ckpt.tokenizer, problems, (n) => {
      throwIfAborted(control.signal, `scoring the ${v} variant`);
      control.tick(steps + n, `${v}: scored ${n}/${problems.length} problems`);
      if (n % 100 === 0) progress(`${v}: scored ${n}/${problems.length} problems`);
    });
    const pp = await prosePerplexity(m, head, prose);
    progress(`${v}: exact match ${em.correct}/${em.scored} (${(100 * em.accuracy).toFixed(1)}%), prose perplexity ${pp.ppl.toFixed(3)}, ${pp.tokensPerS.toFixed(1)} tokens/s`);
    return {
      variant: v, params: counts, accuracy: em.accuracy, correct: em.correct, scored: em.scored, ppl_prose: pp.ppl,
      tokens_per_s: pp.tokensPerS, train: trained, samples: em.samples, routing: em.routing, eval_seconds: em.seconds,
    };
  } finally {
    if (head) for (const p of [...head.norms, ...(head.router ? [head.router.weight, head.router.bias] : [])]) p.release();
    if (m) releaseTrainModel(m);
    model.release();
  }
}

/**
 * The variant's trainable set: LoRA adapters (train.lora.*) for the LoRA variants; for MoD alone no base
 * weight trains (the head's parameters, added next, are the only trainable ones).
 */
function variantModel(model: LlamaModel, spec: RunSpec, v: Variant): TrainModel {
  const lora = v.endsWith('lora')
    ? { rank: spec['train.lora.rank'], alpha: spec['train.lora.alpha'], targets: patternList(spec['train.lora.targets']), seed: spec.seed, field: 'train.lora.targets' }
    : undefined;
  const m = trainModel(model, { lora, freeze: { only: [], freeze: [], fields: { only: 'train.only', freeze: 'train.freeze' } }, recompute: false });
  if (!lora) for (const p of m.params.all()) p.trainable = false;
  return m;
}
