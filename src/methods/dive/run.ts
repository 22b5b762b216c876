// DIVE (arXiv 2506.09351) for the CLI: FLAP statistics per domain (importance.ts) → domain affinity
// mining (affinity.ts, cluster.ts) → pruning-based expert reconstruction and MoE assembly with fresh
// noisy top-k routers (construct.ts) for each k/N configuration, beside the baselines built the same way
// (FLAP alone, LLaMA-MoE's random split, DIVE without affinity mining) → perplexity per domain of each
// (evaluate.ts) → the two retraining stages (retrain.ts: routers, then expert LoRA with the norms), the
// same steps for every construction, and perplexity per domain again. The same run serves both hosts:
// runDive opens the spec's files for the CLI; diveRun takes a checkpoint and text already open (the
// workbench's loaded model and Data stage), reports as a TaskControl and can keep what it finished in a
// PieceMemo (a checkpoint folder: checkpoint.dir in the CLI, the browser's store in the workbench), so a
// run stopped part-way (a crash, Cancel, a reload) resumes at the first piece it had not finished.
import type { Gpu } from '../../gpu/device.ts';
import type { HostIO } from '../../cli/io.ts';
import { Rng } from '../../data/rng.ts';
import { evalWindows } from '../../eval/perplexity.ts';
import type { Checkpoint } from '../../model/weights.ts';
import { LlamaModel } from '../../model/llama.ts';
import { MAX_TOP_K } from '../../ops/moe.ts';
import { SpecError, type RunSpec } from '../../state/spec.ts';
import type { DenseFfn } from '../ladimo/construct.ts';
import type { TextData, TextDomain } from '../ladimo/data.ts';
import { affinityRow } from './affinity.ts';
import { clusterDomains, labelClusters, type Merge } from './cluster.ts';
import { clusterLayer, flapLayer, freshRouter, randomLayer, type ConstructedLayer } from './construct.ts';
import { pplPerDomain } from './evaluate.ts';
import { channelStats, keptCount, poolStats, type ChannelStats } from './importance.ts';
import { retrain, type RetrainResult } from './retrain.ts';
import { diveComparisons, type DiveComparison } from './report.ts';
import { trainTokens } from '../../train/data.ts';
import { loopOptions, throttle, trainIdentity } from '../../train/task.ts';
import { keptPiece, openPiecesRun, type PieceMemo, type StageSnapshots } from '../ladimo/checkpoint.ts';
import { meter, throwIfAborted, type TaskControl } from '../ladimo/progress.ts';

export type DiveConstruction = 'dense' | 'flap' | 'dive' | 'dive-labels' | 'random';

export interface DiveModelRow {
  /** e.g. 'DIVE 1/8', 'FLAP 50%' */
  name: string;
  construction: DiveConstruction;
  experts: number;
  top_k: number;
  /** channels each expert keeps per layer */
  kept_channels: number;
  /** share of the dense FFN's channels a token activates: top_k · kept_channels / I */
  activated_ffn_share: number;
  /** perplexity per domain, in `domains` order */
  ppl: number[];
  /** exp(mean log ppl) over the domains */
  ppl_geomean: number;
  /** after the two retraining stages (null: the dense model, or dive.stage1Steps and dive.stage2Steps 0) */
  retrained: (RetrainResult & { ppl_geomean: number }) | null;
}

export interface DiveMetrics {
  /** what the run did, in words: construction only, or construction and retraining with its budget */
  stage: string;
  domains: string[];
  /** calibration tokens of each domain */
  calibration_tokens: number[];
  /** predicted held-out tokens of each domain */
  eval_tokens: number[];
  /** the affinity matrix and what comes of it; null when dive.clusters is 'labels' */
  affinity: { ppl: number[][]; normalised: number[][]; correlation: number[][]; merges: Merge[] } | null;
  /** the domains of each expert of the DIVE models */
  clusters: { source: RunSpec['dive.clusters']; groups: string[][] };
  /** the grouping by name of the ablation (the same as clusters when the source is 'labels') */
  label_clusters: string[][];
  models: DiveModelRow[];
  /** DIVE against each baseline of its k (report.ts) */
  comparisons: DiveComparison[];
  seconds: { calibration: number; affinity: number; construction: number; retraining: number };
}

/** k of each configuration in dive.topK, checked against the experts and the kernel's limit. */
export function diveTopKs(spec: RunSpec): number[] {
  const field = 'dive.topK';
  const ks = spec[field].split(',').map((s) => Number(s.trim()));
  for (const k of ks) {
    if (!Number.isInteger(k) || k < 1 || k > Math.min(MAX_TOP_K, spec['dive.experts'])) {
      throw new SpecError(field, `'${spec[field]}' names k = ${k}; each k must be an integer in 1..${Math.min(MAX_TOP_K, spec['dive.experts'])} (at most dive.experts and ${MAX_TOP_K})`);
    }
  }
  return [...new Set(ks)].sort((a, b) => a - b);
}

/** Stage 1's temperature t for each k of dive.topK: dive.temperature lists them in dive.topK's order. */
export function diveTemperatures(spec: RunSpec): Map<number, number> {
  const ks = spec['dive.topK'].split(',').map((x) => Number(x.trim()));
  const ts = spec['dive.temperature'].split(',').map((x) => Number(x.trim()));
  if (ts.length !== ks.length) throw new SpecError('dive.temperature', `'${spec['dive.temperature']}' gives ${ts.length} temperatures for the ${ks.length} configurations of dive.topK '${spec['dive.topK']}' (one each, in its order)`);
  const out = new Map<number, number>();
  ks.forEach((k, i) => {
    const t = ts[i];
    if (!Number.isFinite(t) || t <= 0) throw new SpecError('dive.temperature', `'${spec['dive.temperature']}': each temperature must be a number > 0, got ${ts[i]}`);
    if (out.has(k) && out.get(k) !== t) throw new SpecError('dive.temperature', `k = ${k} appears twice in dive.topK with temperatures ${out.get(k)} and ${t}`);
    out.set(k, t);
  });
  return out;
}

function diveDomains(data: TextData, spec: RunSpec): TextDomain[] {
  const field = 'calibration.domains';
  if (spec[field] === 'all') return data.domains;
  return spec[field].split(',').map((name) => {
    const d = data.domains.find((x) => x.name === name.trim());
    if (!d) throw new SpecError(field, `no domain '${name.trim()}' in ${data.label} (domains: ${data.domains.map((x) => x.name).join(', ')})`);
    return d;
  });
}

const geomean = (v: readonly number[]) => Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length);
const rows = (A: Float64Array, D: number) => Array.from({ length: D }, (_, i) => Array.from(A.subarray(i * D, (i + 1) * D)));

/** Where a DIVE run keeps its pieces in a checkpoint folder: files `dive-<piece>.json`. */
export const DIVE_PIECES = 'dive-';

/**
 * What a DIVE run's pieces depend on: what trainIdentity reads (the retraining loop, the sources, the seed)
 * with the dive.* fields, the calibration domains and the evaluation window.
 */
export function diveIdentity(spec: RunSpec): Record<string, unknown> {
  return trainIdentity(spec, /^dive\./, /^calibration\.domains$/, /^eval\.window$/);
}

/** `moefy run` with method 'dive': the spec's model and data opened through the host; pieces kept in checkpoint.dir when set. */
export async function runDive(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<DiveMetrics> {
  const { ckpt, data, memo } = await openPiecesRun(io, spec, diveIdentity(spec), DIVE_PIECES);
  return diveRun(gpu, ckpt, data, spec, { onLog: progress }, memo);
}

/** DIVE end to end on an open checkpoint and text; what `memo` holds of this run is reused, not recomputed. */
export async function diveRun(gpu: Gpu, ckpt: Checkpoint, data: TextData, spec: RunSpec, control: TaskControl, memo?: PieceMemo): Promise<DiveMetrics> {
  if (spec.method !== 'dive') throw new SpecError('method', `'${spec.method}'; this runs specs whose method is 'dive'`);
  const N = spec['dive.experts'];
  const ratio = spec['dive.keptRatio'];
  const ks = diveTopKs(spec);
  const temperatures = diveTemperatures(spec);
  const retraining = spec['dive.stage1Steps'] > 0 || spec['dive.stage2Steps'] > 0;
  const domains = diveDomains(data, spec);
  const D = domains.length;
  if (N > D) throw new SpecError('dive.experts', `${N} experts need at least ${N} calibration domains to cluster, ${D} given (calibration.domains)`);
  const mined = spec['dive.clusters'] === 'mined';
  // progress counts pieces: a domain's statistics, an affinity row, a model's row (retraining included)
  const total = D + (mined ? D : 0) + 2 + ks.length * (mined ? 3 : 2);
  let done = 0;
  const tick = meter(control, 'dive', 'pieces', total);
  const progress = (m: string) => control.onLog?.(m);
  const piece = async <T>(name: string, what: string, f: (snapshots?: StageSnapshots) => Promise<T>): Promise<T> => {
    throwIfAborted(control.signal, `DIVE at ${what}`);
    tick(done, what);
    const v = await keptPiece(memo, name, f);
    tick(++done, what);
    return v;
  };
  const model = await LlamaModel.load(gpu, ckpt.weights);
  try {
    const c = ckpt.config;
    const window = Math.min(spec['eval.window'], model.seqLen);
    const tok = ckpt.tokenizer;

    // ---- data: calibration windows from each domain's training text, evaluation windows from its held-out text
    const calib: number[][][] = [];
    const evals: number[][][] = [];
    for (const d of domains) {
      calib.push(evalWindows(await d.text('train'), tok, window, Math.ceil(spec['dive.calibTokens'] / window)));
      evals.push(evalWindows(await d.text('valid'), tok, window, spec['dive.evalWindows']));
      if (!calib.at(-1)!.length || !evals.at(-1)!.length) throw new Error(`${d.name}: fewer than ${window} tokens of ${calib.at(-1)!.length ? 'held-out' : 'training'} text (eval.window)`);
    }

    // ---- FLAP statistics of every layer on every domain (one dense pass per domain)
    let t0 = performance.now();
    const stats: ChannelStats[][] = [];
    for (const [i, d] of domains.entries()) {
      // statistics are Float64Arrays: recomputed on resume, one dense pass each
      throwIfAborted(control.signal, `DIVE calibration on ${d.name}`);
      tick(done, `calibration: ${d.name}`);
      stats.push(await channelStats(model, calib[i], spec['dive.calibTokens']));
      tick(++done, `calibration: ${d.name}`);
      progress(`calibration: ${d.name}, ${stats[i][0].n} tokens through ${c.nLayers} layers`);
    }
    const all = Array.from({ length: c.nLayers }, (_, l) => poolStats(stats.map((s) => s[l])));
    const calibrationSeconds = (performance.now() - t0) / 1000;
    const ffns: DenseFfn[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const w = (n: string) => ckpt.weights.read(`model.layers.${l}.mlp.${n}.weight`);
      ffns.push({ H: c.dim, I: c.hiddenDim, gate_proj: await w('gate_proj'), up_proj: await w('up_proj'), down_proj: await w('down_proj') });
    }

    // ---- domain affinity mining: prune with each domain, evaluate on each, cluster
    t0 = performance.now();
    let affinity: DiveMetrics['affinity'] = null;
    const byLabels = labelClusters(D, N);
    let labels = byLabels;
    if (mined) {
      const P = new Float64Array(D * D);
      for (const [i, d] of domains.entries()) {
        const row = await piece(`affinity-${i}`, `affinity: pruned with ${d.name} (${i + 1}/${D})`, () => affinityRow(model, ffns, stats[i], ratio, evals));
        P.set(row, i * D);
        progress(`affinity: pruned with ${d.name} (${i + 1}/${D}): ppl ${row.map((p) => p.toFixed(2)).join(' ')}`);
      }
      const cl = clusterDomains(P, D, N);
      labels = cl.labels;
      affinity = { ppl: rows(P, D), normalised: rows(cl.normalised, D), correlation: rows(cl.correlation, D), merges: cl.merges };
    }
    const affinitySeconds = (performance.now() - t0) / 1000;
    const groups = (lab: number[]) => Array.from({ length: N }, (_, e) => domains.filter((_, d) => lab[d] === e).map((x) => x.name));
    progress(`clusters (${spec['dive.clusters']}): ${groups(labels).map((g) => `{${g.join(', ')}}`).join(' ')}`);

    // ---- retraining text: the calibration domains' training text, train.* windows held out
    let retrainSeconds = 0;
    const tokens = retraining ? await trainTokens({ label: data.label, domains }, 'all', tok, spec['train.seqLen'], spec['eval.maxWindows'], 'calibration.domains') : null;
    const retrainConstruction = async (name: string, layers: ConstructedLayer[], k: number, snapshots?: StageSnapshots): Promise<DiveModelRow['retrained']> => {
      const fresh = await LlamaModel.load(gpu, ckpt.weights);   // stage 2 trains its norms in place
      const t1 = performance.now();
      try {
        const print = [1, 2].map((stage) => throttle((line) => progress(`${name}, stage ${stage}: ${line}`), 5000));
        const r = await retrain(fresh, layers, tokens!, evals, {
          topK: k, temperature: temperatures.get(k)!, stage1Steps: spec['dive.stage1Steps'], stage2Steps: spec['dive.stage2Steps'],
          lora: { rank: spec['dive.loraRank'], alpha: spec['train.lora.alpha'] }, loop: { ...loopOptions(spec), signal: control.signal },
          onProgress: (stage, p) => print[stage - 1](p), snapshots, onLog: (m) => progress(`${name}, ${m}`),
        });
        progress(`${name} retrained: ppl ${r.ppl.map((p) => p.toFixed(2)).join(' ')} (geometric mean ${geomean(r.ppl).toFixed(3)})`);
        return { ...r, ppl_geomean: geomean(r.ppl) };
      } finally {
        fresh.release();
        retrainSeconds += (performance.now() - t1) / 1000;
      }
    };

    // ---- constructions, each evaluated on every domain, then retrained and evaluated again
    t0 = performance.now();
    const models: DiveModelRow[] = [];
    // layers are built only when the row is not in the memo
    const evaluate = async (name: string, construction: DiveConstruction, build: (() => ConstructedLayer[]) | null, experts: number, k: number, kept: number) => {
      models.push(await piece(`model-${models.length}`, name, async (snapshots): Promise<DiveModelRow> => {
        const layers = build?.() ?? null;
        const ppl = await pplPerDomain(model, layers, evals);
        progress(`${name}: ppl ${ppl.map((p) => p.toFixed(2)).join(' ')} (geometric mean ${geomean(ppl).toFixed(3)})`);
        const retrained = retraining && layers ? await retrainConstruction(name, layers, k, snapshots) : null;
        return { name, construction, experts, top_k: k, kept_channels: kept, activated_ffn_share: (k * kept) / c.hiddenDim, ppl, ppl_geomean: geomean(ppl), retrained };
      }));
    };
    await evaluate('dense', 'dense', null, 1, 1, c.hiddenDim);
    await evaluate(`FLAP ${(100 * ratio).toFixed(0)}%`, 'flap', () => ffns.map((f, l) => flapLayer(f, all[l], ratio)), 1, 1, keptCount(c.hiddenDim, ratio));
    for (const k of ks) {
      const r = ratio / k;
      const kept = keptCount(c.hiddenDim, r);
      // the same fresh routers for every construction of one k/N, so only the experts differ
      const router = (l: number) => freshRouter(N, c.dim, spec['dive.routerNoise'], spec.seed * 7919 + k * 131 + l);
      const variants: [string, DiveConstruction, number[]][] = [[`DIVE ${k}/${N}`, 'dive', labels]];
      if (mined) variants.push([`DIVE w/o affinity mining ${k}/${N}`, 'dive-labels', byLabels]);
      for (const [name, kind, lab] of variants) {
        await evaluate(name, kind, () => ffns.map((f, l) => clusterLayer(f, stats.map((s) => s[l]), lab, r, k, router(l))), N, k, kept);
      }
      const rng = new Rng(spec.seed * 7919 + k);
      await evaluate(`random split (LLaMA-MoE) ${k}/${N}`, 'random', () => ffns.map((f, l) => randomLayer(f, all[l], N, r, k, router(l), rng)), N, k, kept);
    }
    return {
      stage: retraining
        ? `construction, then retraining of every construction: stage 1 (routers, every expert active, softmax temperature ${[...temperatures].map(([k, t]) => `${t} for k ${k}`).join(', ')}) ${spec['dive.stage1Steps']} steps, ` +
          `stage 2 (LoRA r ${spec['dive.loraRank']} on the experts + norms, top-k) ${spec['dive.stage2Steps']} steps, ${spec['train.batchTokens']} tokens a step; perplexity before and after`
        : 'construction only: every perplexity is before retraining (dive.stage1Steps and dive.stage2Steps are 0)',
      domains: domains.map((d) => d.name),
      calibration_tokens: stats.map((s) => s[0].n),
      eval_tokens: evals.map((w) => w.reduce((s, x) => s + x.length - 1, 0)),
      affinity,
      clusters: { source: spec['dive.clusters'], groups: groups(labels) },
      label_clusters: groups(byLabels),
      models,
      comparisons: diveComparisons(models),
      seconds: { calibration: calibrationSeconds, affinity: affinitySeconds, construction: (performance.now() - t0) / 1000 - retrainSeconds, retraining: retrainSeconds },
    };
  } finally {
    model.release();
  }
}
