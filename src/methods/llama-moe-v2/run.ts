// LLaMA-MoE v2 (arXiv 2411.15708), `moefy run` with method 'llama-moe-v2' and the workbench's page: the MLPs of
// construct.layers become MoE layers (build.ts: LaDiMo's capture of the FFN inputs → neuron statistics →
// vanilla or residual MLP MoE, router initialisation), then the paper's two-stage post-training with the
// language-modelling loss plus each layer's own balance loss (v2.balance) on the training engine:
//   stage 1  general text (v2.stage1Domains, the Brown prose),
//   stage 2  specialised text (v2.stage2Domains, math and code), v2.stage2Replay of it from stage 1's text.
// Full-parameter or LoRA (folded into the weights after each stage), and what trains, as train.* says;
// with export.dir, the result as a Qwen2-MoE folder (export.ts). After construction and after each stage, on
// the held-out text of every stage domain: perplexity, and next-token agreement and KL against the dense
// model (a copy kept untrained); the parameters a token activates, attention and MLP apart; dense and MoE
// tokens/s. With v2.attention the same layers' attention becomes an attention MoE too (src/moe/attention.ts:
// one expert per KV head group, its router initialised as the MLP's from the attention inputs,
// attention-init.ts), trained alongside with its own balance term (src/train/attention-moe.ts).
// With v2.compare, the paper's ablations join the run at stage 1's budget: the other MLP kind at matched
// activated parameters (a vanilla MoE taking as many of its N experts as the residual MoE activates
// neurons, or the reverse), random routers in place of the spec's initialisation, and, with v2.attention,
// the same MLP MoE with dense attention.
// runLlamaMoeV2 opens the spec's files for the CLI; v2Run takes a checkpoint and text already open (the
// workbench), reports as a TaskControl, stops at the next step on its signal, and keeps each finished
// construction in a PieceMemo (checkpoint.dir, or the browser's store), so a stopped run resumes at the next,
// and the construction under way at its stage's last training snapshot.
import type { Gpu } from '../../gpu/device.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { HostIO } from '../../cli/io.ts';
import { compareModels, throughput } from '../../eval/compare.ts';
import { evalWindows } from '../../eval/perplexity.ts';
import type { Checkpoint } from '../../model/weights.ts';
import { MAX_TOP_K } from '../../ops/moe.ts';
import { LlamaModel } from '../../model/llama.ts';
import { checkTokenizer } from '../../model/tokenizer.ts';
import { convertLayers, type MoeBlock } from '../../moe/block.ts';
import { SpecError, specLayers, type RunSpec } from '../../state/spec.ts';
import { trainTokens, type TrainTokens } from '../../train/data.ts';
import { releaseTrainModel } from '../../train/llama-train.ts';
import { mergeLora } from '../../train/lora.ts';
import type { ByteSource } from '../../model/source.ts';
import { exportV2, exportedPerplexity } from './export.ts';
import { globMatch, patternList } from '../../train/params.ts';
import { loopOptions, specTrainModel, throttle } from '../../train/task.ts';
import { train, type EvalPoint, type StepPoint } from '../../train/trainer.ts';
import { keptPiece, openPiecesRun, snapshotOptions, type PieceMemo, type StageSnapshots } from '../ladimo/checkpoint.ts';
import { meter, throwIfAborted, type TaskControl } from '../ladimo/progress.ts';
import { trainIdentity } from '../../train/task.ts';
import { captureFfn, type CaptureResult } from '../ladimo/capture.ts';
import { countingRoutes } from '../ladimo/profile.ts';
import { calibrationWindows, type TextData } from '../ladimo/data.ts';
import { attentionParams } from '../ladimo/params.ts';
import { convertAttention, uploadAttentionRouter, type AttentionMoe } from '../../moe/attention.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { TrainAttentionMoeLayer } from '../../train/llama-train.ts';
import { attentionRouters } from './attention-init.ts';
import { constructMlpLayers, inferenceLayers, sharedNeuronCount, trainLayers, type ConstructedLayer } from './build.ts';
import { releaseMlpMoe } from './layer.ts';

/** The model's scores on one domain's held-out windows. */
export interface DomainScore {
  domain: string;
  ppl: number;
  /** share of positions where the model and the dense one predict the same next token */
  agreement: number;
  /** mean KL(p_dense ‖ p_model), nats */
  kl: number;
}

export interface V2Point {
  after: 'construction' | 'stage 1' | 'stage 2';
  scores: DomainScore[];
  /** exp(mean log ppl) over the stage 1 domains (prose) and the stage 2 domains (specialised) */
  ppl_stage1_domains: number;
  ppl_stage2_domains: number;
}

export interface V2Stage {
  stage: 1 | 2;
  domains: string[];
  /** share of the stage's training tokens from stage 1's text (stage 2's replay) */
  replay: number;
  steps: number;
  tokens: number;
  seconds: number;
  tokens_per_s: number;
  params: { total: number; trainable: number };
  /** held-out loss (train.* windows of the stage's own text) before and after */
  loss_before: number;
  loss_after: number;
  /** the training loss at each step, and the held-out readings */
  curve: StepPoint[];
  evals: EvalPoint[];
}

/** A compared construction, through stage 1 (the spec's own is the first row, through both stages). */
export interface V2Variant {
  name: string;
  mlp: RunSpec['v2.mlp'];
  router_init: RunSpec['v2.routerInit'];
  experts: number;
  top_k: number;
  /** share of the dense MLP's neurons a token activates (shared + top_k experts) */
  activated_share: number;
  /** attention MoE: head groups per token (null: dense attention) */
  attention_top_k: number | null;
  /** share of the dense attention's parameters a token activates (1: dense attention) */
  activated_attention_share: number;
  points: V2Point[];
}

export interface V2Metrics {
  device: string;
  layers: number[];
  construction: Pick<RunSpec, 'v2.mlp' | 'v2.experts' | 'v2.topK' | 'v2.sharedRatio' | 'v2.partition' | 'v2.routerInit'> & {
    /** per converted layer: the shared expert's neurons (0 when vanilla) and each routed expert's */
    shared_neurons: number;
    expert_neurons: number;
    calibration_tokens: number;
  };
  /**
   * parameters a token activates in the converted layers, routers included: attention as run (attention MoE:
   * its groups' q/o slices, every group's k/v, the router) and dense; the MLP's, dense vs MoE
   */
  activated: { attention: number; attention_dense: number; mlp_dense: number; mlp_moe: number; mlp_share: number };
  dense: { domain: string; ppl: number }[];
  points: V2Point[];
  stages: V2Stage[];
  /** v2.compare: every construction through stage 1 at the same budget, the spec's first */
  comparison: V2Variant[] | null;
  throughput: { prefill_dense: number; prefill_moe: number; decode_dense: number; decode_moe: number };
  /** per converted layer, the share of the held-out assignments (every stage domain's windows) each routed expert receives, after the last stage */
  expert_load: { layer: number; share: number[] }[];
  /** the same for the attention MoE's KV head groups (empty: dense attention) */
  attention_load: { layer: number; share: number[] }[];
  /** export.dir: the Qwen2-MoE folder written after the last stage, and its perplexity read back (equal to the last point's) */
  export: { dir: string; files: string[]; ppl_read_back: { domain: string; ppl: number }[]; max_rel_diff: number } | null;
}

/** Read-back perplexity may differ from the run's by float rounding only (rotate-half RoPE, zero q/k/v biases). */
const EXPORT_TOL = 1e-4;

/** The data's domains that a comma-separated list of names or globs (`field`) picks, in the data's order. */
function pickDomains(data: TextData, spec: RunSpec, field: 'v2.stage1Domains' | 'v2.stage2Domains'): string[] {
  const patterns = patternList(spec[field]);
  for (const p of patterns) {
    if (!data.domains.some((d) => globMatch(p, d.name))) throw new SpecError(field, `'${p}' matches no domain of ${data.label} (domains: ${data.domains.map((d) => d.name).join(', ')})`);
  }
  return data.domains.filter((d) => patterns.some((p) => globMatch(p, d.name))).map((d) => d.name);
}

/** Stage 2's stream: its own text, then stage 1's first tokens, sized to be `share` of the whole. */
function withReplay(own: TrainTokens, general: TrainTokens, share: number): TrainTokens {
  if (share === 0) return own;
  const n = Math.min(general.train.length, Math.round((share / (1 - share)) * own.train.length));
  const train = new Uint32Array(own.train.length + n);
  train.set(own.train);
  train.set(general.train.subarray(0, n), own.train.length);
  return { domains: [...own.domains, ...general.domains], train, valid: own.valid };
}

const geomean = (v: readonly number[]) => Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length);

/** What every construction of a run shares: the dense model, its capture, the texts. */
interface RunContext {
  gpu: Gpu;
  ckpt: Checkpoint;
  dense: LlamaModel;
  cap: CaptureResult;
  /** the calibration windows (the attention routers' hidden states come from them) */
  calib: number[][];
  layers: number[];
  evals: Map<string, number[][]>;
  stage1Domains: string[];
  stage2Domains: string[];
  /** the two stages' training text */
  texts: [TrainTokens, TrainTokens];
  progress: (m: string) => void;
  /** the checkpoint's files (their tokenizer files go into an export) and where an export is written (the CLI's) */
  modelFiles: readonly ByteSource[];
  io: HostIO | null;
  signal?: AbortSignal;
  /** counts the steps trained, over every construction's stages */
  tick: (steps: number, detail: string) => void;
}

/**
 * The constructions v2.compare adds: the other MLP kind at matched activated neurons, random routers (or
 * k-means when the spec's are random), and with an attention MoE, dense attention.
 */
export function comparedSpecs(spec: RunSpec, I: number): { name: string; spec: RunSpec }[] {
  const N = spec['v2.experts'];
  const shared = (kind: RunSpec['v2.mlp']) => (kind === 'residual' ? sharedNeuronCount(spec, I) : 0);
  const expertDim = (kind: RunSpec['v2.mlp']) => Math.ceil((I - shared(kind)) / N);
  const activated = shared(spec['v2.mlp']) + spec['v2.topK'] * expertDim(spec['v2.mlp']);
  const other: RunSpec['v2.mlp'] = spec['v2.mlp'] === 'residual' ? 'vanilla' : 'residual';
  const k = Math.min(Math.min(MAX_TOP_K, N), Math.max(1, Math.round((activated - shared(other)) / expertDim(other))));
  const routers: RunSpec['v2.routerInit'] = spec['v2.routerInit'] === 'random' ? 'hidden-kmeans' : 'random';
  const variants: RunSpec[] = [{ ...spec, 'v2.mlp': other, 'v2.topK': k }, { ...spec, 'v2.routerInit': routers }];
  if (spec['v2.attention']) variants.push({ ...spec, 'v2.attention': false });
  return variants.map((v) => ({ name: variantName(v), spec: v }));
}

function variantName(s: RunSpec): string {
  return `${s['v2.mlp']}, ${s['v2.routerInit']} routers, top-${s['v2.topK']} of ${s['v2.experts']}${s['v2.attention'] ? `, attention top-${s['v2.attentionTopK']}` : ''}`;
}

/**
 * Attention parameters a token activates in one layer, with an attention MoE of top-k of the G KV head
 * groups (null: dense): the q_proj and o_proj slices of its k groups, k_proj and v_proj whole (every
 * group's K and V are computed, since a later token may pick a group an earlier one did not), the router.
 */
function activatedAttention(c: ModelConfig, topK: number | null): number {
  if (topK === null) return attentionParams(c);
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const G = c.nKvHeads;
  return (topK / G) * (2 * c.dim * q + (c.qkvBias ? q : 0)) + 2 * c.dim * kv + (c.qkvBias ? 2 * kv : 0) + G * c.dim;
}

/** Where a run keeps its finished constructions in a checkpoint folder: files `v2-<n>.json`. */
export const V2_PIECES = 'v2-';

/** What a run's constructions depend on: the training loop's fields, the seed, the sources, and the v2.*, construction, calibration and evaluation fields. */
export function v2Identity(spec: RunSpec): Record<string, unknown> {
  return trainIdentity(spec, /^(v2|construct|calibration|eval)\./);
}

/** `moefy run` with method 'llama-moe-v2': the spec's model and data opened through the host; constructions kept in checkpoint.dir when set. */
export async function runLlamaMoeV2(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<V2Metrics> {
  const { ckpt, modelFiles, data, memo } = await openPiecesRun(io, spec, v2Identity(spec), V2_PIECES);
  return v2Run(gpu, { ckpt, modelFiles }, data, spec, { onLog: progress }, io, memo);
}

/** The run on an open checkpoint and text; `io` writes export.dir (null: no export possible, the workbench). */
export async function v2Run(
  gpu: Gpu, source: { ckpt: Checkpoint; modelFiles: readonly ByteSource[] }, data: TextData, spec: RunSpec, control: TaskControl, io: HostIO | null, memo?: PieceMemo,
): Promise<V2Metrics> {
  if (spec.method !== 'llama-moe-v2') throw new SpecError('method', `'${spec.method}'; this runs specs whose method is 'llama-moe-v2'`);
  if (spec['export.dir'] && !io) throw new SpecError('export.dir', 'the workbench cannot write a folder by path; leave it empty (moefy run writes it)');
  const { ckpt, modelFiles } = source;
  const progress = (m: string) => control.onLog?.(m);
  const tok = ckpt.tokenizer;
  checkTokenizer(tok, ckpt.config, { allowPadded: true });
  const stage1Domains = pickDomains(data, spec, 'v2.stage1Domains');
  const stage2Domains = pickDomains(data, spec, 'v2.stage2Domains');
  const c = ckpt.config;
  const layers = specLayers(spec, c.nLayers);
  const kAttn = Math.min(MAX_TOP_K, c.nKvHeads);
  if (spec['v2.attention'] && spec['v2.attentionTopK'] > kAttn) {
    throw new SpecError('v2.attentionTopK', `${spec['v2.attentionTopK']} head groups per token, but the model has ${c.nKvHeads} KV head groups (at most ${kAttn})`);
  }
  const window = Math.min(spec['eval.window'], c.maxSeqLen);

  const evals = new Map<string, number[][]>();
  for (const d of [...new Set([...stage1Domains, ...stage2Domains])]) {
    const w = evalWindows(await data.domains.find((x) => x.name === d)!.text('valid'), tok, window, spec['v2.evalWindows']);
    if (!w.length) throw new Error(`${d}: its held-out text is shorter than one window of ${window} tokens (eval.window)`);
    evals.set(d, w);
  }
  const seqLen = spec['train.seqLen'];
  const general = await trainTokens(data, stage1Domains, tok, seqLen, spec['eval.maxWindows'], 'v2.stage1Domains');
  const special = withReplay(await trainTokens(data, stage2Domains, tok, seqLen, spec['eval.maxWindows'], 'v2.stage2Domains'), general, spec['v2.stage2Replay']);

  // the dense original: the capture's source and every score's reference, never trained
  const dense = await LlamaModel.load(gpu, ckpt.weights);
  try {
    const calib = (await calibrationWindows(data, spec, tok, window)).map((w) => w.ids);
    const cap = await captureFfn(dense, calib, layers, spec['calibration.tokens']);
    try {
      const compared = spec['v2.compare'] ? comparedSpecs(spec, c.hiddenDim) : [];
      // progress counts training steps: both stages of the spec's construction, stage 1 of each compared one
      const tick = meter(control, 'llamaMoeV2', 'steps', spec['v2.stage1Steps'] + spec['v2.stage2Steps'] + compared.length * spec['v2.stage1Steps']);
      let stepsDone = 0;
      const ctx: RunContext = {
        gpu, ckpt, dense, cap, calib, layers, evals, stage1Domains, stage2Domains, texts: [general, special], progress, modelFiles, io, signal: control.signal,
        tick: (n, detail) => tick(stepsDone + n, detail),
      };
      const tpIds = calib.flat().slice(0, spec['eval.throughputTokens']);
      // each construction is a piece: read back when a stopped run kept it; its stages' training snapshots
      // let a construction stopped mid-way resume at its last snapshot, and go once it is kept
      const piece = async <T>(n: number, steps: number, f: (snapshots?: StageSnapshots) => Promise<T>): Promise<T> => {
        throwIfAborted(control.signal, 'LLaMA-MoE v2');
        const v = await keptPiece(memo, String(n), f);
        stepsDone += steps;
        return v;
      };
      const main = await piece(0, spec['v2.stage1Steps'] + spec['v2.stage2Steps'], (snaps) => convertAndTrain(ctx, spec, variantName(spec), 2, tpIds, spec['export.dir'] || null, snaps));
      let comparison: V2Variant[] | null = null;
      if (compared.length) {
        comparison = [main.variant];
        for (const [i, v] of compared.entries()) comparison.push((await piece(i + 1, spec['v2.stage1Steps'], (snaps) => convertAndTrain(ctx, v.spec, v.name, 1, null, null, snaps))).variant);
      }
      return {
        device: gpu.describe(),
        layers,
        construction: {
          'v2.mlp': spec['v2.mlp'], 'v2.experts': spec['v2.experts'], 'v2.topK': spec['v2.topK'], 'v2.sharedRatio': spec['v2.sharedRatio'],
          'v2.partition': spec['v2.partition'], 'v2.routerInit': spec['v2.routerInit'],
          shared_neurons: main.sharedNeurons, expert_neurons: main.expertNeurons, calibration_tokens: cap.tokens,
        },
        activated: main.activated,
        dense: main.dense,
        points: main.variant.points,
        stages: main.stages,
        comparison,
        throughput: main.throughput!,
        export: main.exported,
        expert_load: main.expertLoad,
        attention_load: main.attentionLoad,
      };
    } finally {
      for (const L of cap.layers.values()) [L.x, L.fx].forEach((t) => t.release());
    }
  } finally {
    dense.release();
  }
}

/**
 * One construction (the v2.* fields of `spec`) on a fresh copy of the model, scored after construction and
 * after each stage up to `lastStage`; tokens/s of dense and converted over `tpIds` when given; exported to
 * `exportDir` after the last stage when given. With `snapshots`, each stage resumes from its latest one
 * (a finished stage's is its end: it restores without training, so the next stage starts from the same
 * weights) and saves them as train.checkpointEvery says, and when cancelled.
 */
async function convertAndTrain(
  ctx: RunContext, spec: RunSpec, name: string, lastStage: 1 | 2, tpIds: number[] | null, exportDir: string | null = null, snapshots?: StageSnapshots,
) {
  const { gpu, ckpt, dense, layers, progress } = ctx;
  const c = ckpt.config;
  const student = await LlamaModel.load(gpu, ckpt.weights);
  let built: Map<number, ConstructedLayer> | null = null;
  const attnRouters = new Map<number, Tensor>();
  try {
    built = await constructMlpLayers(student, ctx.cap, spec);
    const first = built.values().next().value!;
    const sharedNeurons = first.moe.shared?.I ?? 0;
    const expertNeurons = first.moe.experts.expertDim;
    progress(`${name}: ${layers.length} MLP MoE layers (${layers.join(', ')}) from ${ctx.cap.tokens} calibration tokens: shared ${sharedNeurons} + ${spec['v2.experts']} experts of ${expertNeurons} neurons`);
    const attnTopK = spec['v2.attention'] ? spec['v2.attentionTopK'] : null;
    if (attnTopK !== null) {
      for (const [l, r] of await attentionRouters(student, ctx.calib, layers, spec)) attnRouters.set(l, uploadAttentionRouter(gpu, r, c.nKvHeads, c.dim));
      progress(`${name}: attention MoE in the same layers, top-${attnTopK} of ${c.nKvHeads} KV head groups of ${c.nHeads / c.nKvHeads} query heads, ${spec['v2.routerInit']} routers`);
    }
    // the attention MoE as the inference gate and as training's layers, over the same router tensors
    const attnLayers = new Map([...attnRouters].map(([l, router]) => [l, { router, topK: attnTopK! }]));
    const attnTrain = new Map<number, TrainAttentionMoeLayer>([...attnRouters].map(([l, router]) => [l, { router, routing: { topK: attnTopK!, scale: c.nKvHeads, auxCoef: spec['v2.balance'] } }]));

    // ---- scores of the student as it stands, its MLPs (and attention) converted, against the dense model
    const denseScores: V2Metrics['dense'] = [];
    const withMoe = async <T>(f: (blocks: ReadonlyMap<number, MoeBlock>, gates: ReadonlyMap<number, AttentionMoe>) => Promise<T>): Promise<T> => {
      const blocks = convertLayers(student, inferenceLayers(built!, spec));
      const gates = convertAttention(student, attnLayers);
      try {
        return await f(blocks, gates);
      } finally {
        for (const l of layers) student.restoreDense(l);
        for (const [l, g] of gates) {
          student.attnGate[l] = undefined;
          g.release();
        }
        for (const b of blocks.values()) b.release();
      }
    };
    // the expert load of the MLP experts and of attention's head groups, counted on each scoring pass: the last is the run's
    let expertLoad: V2Metrics['expert_load'] = [];
    let attentionLoad: V2Metrics['attention_load'] = [];
    const asLoad = (shares: Map<number, number[]>) => [...shares].map(([layer, share]) => ({ layer, share })).sort((a, b) => a.layer - b.layer);
    const score = (after: V2Point['after']) => withMoe(async (blocks, gates): Promise<V2Point> => {
      const scores: DomainScore[] = [];
      const [[, attn], mlp] = await countingRoutes(blocks, () => countingRoutes(gates, async () => {
        for (const [domain, windows] of ctx.evals) {
          const cmp = await compareModels(dense, student, windows);
          if (after === 'construction') denseScores.push({ domain, ppl: cmp.pplDense });
          scores.push({ domain, ppl: cmp.pplMoe, agreement: cmp.agreement, kl: cmp.kl });
        }
      }));
      [expertLoad, attentionLoad] = [asLoad(mlp), asLoad(attn)];
      const mean = (ds: string[]) => geomean(scores.filter((s) => ds.includes(s.domain)).map((s) => s.ppl));
      const point = { after, scores, ppl_stage1_domains: mean(ctx.stage1Domains), ppl_stage2_domains: mean(ctx.stage2Domains) };
      progress(`${name}, after ${after}: perplexity ${point.ppl_stage1_domains.toFixed(3)} on the stage 1 domains, ${point.ppl_stage2_domains.toFixed(3)} on the stage 2 domains`);
      return point;
    });
    const points = [await score('construction')];
    let tp: V2Metrics['throughput'] | null = null;
    if (tpIds) {
      const d = await throughput(dense, tpIds, spec['eval.decodeTokens']);
      const m = await withMoe(() => throughput(student, tpIds, spec['eval.decodeTokens']));
      tp = { prefill_dense: d.prefillTokensPerS, prefill_moe: m.prefillTokensPerS, decode_dense: d.decodeTokensPerS, decode_moe: m.decodeTokensPerS };
    }

    // ---- post-training: stage 1 on general text, stage 2 on specialised text
    const stages: V2Stage[] = [];
    for (const stage of lastStage === 2 ? [1, 2] as const : [1] as const) {
      const tokens = ctx.texts[stage - 1];
      const m = specTrainModel(student, spec, trainLayers(built, spec), attnTrain);
      try {
        const params = m.params.counts();
        progress(`${name}, stage ${stage}: training ${params.trainable} of ${params.total} parameters on ${tokens.train.length} tokens of ${tokens.domains.join(', ')}`);
        const before = stage === 2 ? spec['v2.stage1Steps'] : 0;
        const print = throttle((line) => progress(`${name}, stage ${stage}: ${line}`), 5000);
        const steps = spec[stage === 1 ? 'v2.stage1Steps' : 'v2.stage2Steps'];
        const r = await train(m, tokens, {
          ...loopOptions(spec), steps, signal: ctx.signal, ...(await snapshotOptions(snapshots?.(stage), `${name}, stage ${stage}`, steps, progress)),
          onProgress: (p) => {
            print(p);
            ctx.tick(before + p.step, `${name}, stage ${stage}: step ${p.step}/${p.steps}, loss ${p.point.loss.toFixed(3)}`);
          },
        });
        // the scores read the inference forward, which has no adapters: fold them in (stage 2 adapts the result)
        mergeLora(m.params, m.lora);
        stages.push({
          stage, domains: tokens.domains, replay: stage === 2 ? spec['v2.stage2Replay'] : 0, steps: r.step, tokens: r.tokens, seconds: r.seconds,
          tokens_per_s: r.seconds > 0 ? r.tokens / r.seconds : 0, params, loss_before: r.evals[0].loss, loss_after: r.evals.at(-1)!.loss, curve: r.curve, evals: r.evals,
        });
      } finally {
        releaseTrainModel(m);
      }
      points.push(await score(stage === 1 ? 'stage 1' : 'stage 2'));
    }

    // ---- export, and the folder read back must score as the last point did
    let exported: V2Metrics['export'] = null;
    if (exportDir) {
      const files = await exportV2(student, built, attnRouters, spec, ctx.modelFiles);
      for (const f of files) await ctx.io!.write(`${exportDir}/${f.name}`, f.bytes);
      const back = await exportedPerplexity(student, files, [...ctx.evals.values()]);
      const last = points.at(-1)!.scores;
      const max_rel_diff = Math.max(...back.map((p, i) => Math.abs(p / last[i].ppl - 1)));
      if (!(max_rel_diff <= EXPORT_TOL)) throw new Error(`export to ${exportDir}: read back, the folder scores perplexity ${back.map((p) => p.toFixed(4)).join(', ')} where the run scored ${last.map((x) => x.ppl.toFixed(4)).join(', ')}`);
      exported = { dir: exportDir, files: files.map((f) => f.name), ppl_read_back: last.map((x, i) => ({ domain: x.domain, ppl: back[i] })), max_rel_diff };
      progress(`${name}: exported to ${exportDir} as Qwen2-MoE${attnRouters.size ? ' (its attention MoE in moefy.json)' : ''}; read back, perplexity within ${max_rel_diff.toExponential(1)} of the run's`);
    }

    const mlpDense = layers.length * 3 * c.dim * c.hiddenDim;
    const mlpMoe = layers.length * (spec['v2.experts'] * c.dim + 3 * c.dim * (sharedNeurons + spec['v2.topK'] * expertNeurons));
    const attention = activatedAttention(c, attnTopK);
    const variant: V2Variant = {
      name, mlp: spec['v2.mlp'], router_init: spec['v2.routerInit'], experts: spec['v2.experts'], top_k: spec['v2.topK'],
      activated_share: (sharedNeurons + spec['v2.topK'] * expertNeurons) / c.hiddenDim, attention_top_k: attnTopK,
      activated_attention_share: attention / attentionParams(c), points,
    };
    return {
      variant, stages, sharedNeurons, expertNeurons, dense: denseScores, throughput: tp, exported, expertLoad, attentionLoad,
      activated: { attention: layers.length * attention, attention_dense: layers.length * attentionParams(c), mlp_dense: mlpDense, mlp_moe: mlpMoe, mlp_share: mlpMoe / mlpDense },
    };
  } finally {
    if (built) for (const L of built.values()) releaseMlpMoe(L.weights);
    for (const r of attnRouters.values()) r.release();
    student.release();
  }
}
