// LaDiMo (arXiv 2408.04278) end to end, one run spec in, metrics out: capture (§4.2, §5.1) → construct
// (§4.1) → distill (§4.2–4.3) → profile (Appendix A) → adaptive router (Appendix A, Table 1) → assemble
// and evaluate (§5.2–5.3) → export. Host-agnostic: files come through HostIO, the GPU is given.
// The stages are functions over a RunContext, so a sweep (sweep.ts) distils once and evaluates many
// layer sets and policies.
import type { Gpu } from '../../gpu/device.ts';
import type { HostIO } from '../../cli/io.ts';
import { openCheckpoint } from '../../model/load.ts';
import { baseName, readText, type ByteSource } from '../../model/source.ts';
import { LlamaModel } from '../../model/llama.ts';
import type { Tokenizer } from '../../model/tokenizer.ts';
import { evalWindows } from '../../eval/perplexity.ts';
import { compareDenseMoe, throughput } from '../../eval/compare.ts';
import { convertLayers, uploadMoeWeights, type MoeLayer } from '../../moe/block.ts';
import type { RoutingOptions } from '../../ops/moe.ts';
import { specLayers, type RunSpec } from '../../state/spec.ts';
import { captureFfn } from './capture.ts';
import { constructExperts, initRouter } from './construct.ts';
import { distillLayer, type DistillResult } from './distill.ts';
import { profileMaxWeights } from './profile.ts';
import { decideRouterPolicy, type LayerPolicy } from './router-policy.ts';
import { countParams, type MoeLayerSpec } from './params.ts';
import { readAllWeights } from '../../model/export.ts';
import { exportQwen2Moe, type ExportMoeLayer } from '../../model/qwen2moe.ts';
import { specToJson } from '../../state/spec.ts';
import type { CaptureResult } from './capture.ts';
import type { Checkpoint } from '../../model/weights.ts';
import type { MoeBlock } from '../../moe/block.ts';
import { RunCheckpoint } from './checkpoint.ts';
import type { CapturedLayer } from './capture.ts';

export interface LayerMetrics {
  layer: number;
  mse_before: number;
  mse_final: number;
  rel_err: number;
  expert_load: number[];
  policy: LayerPolicy;
  alpha_i: number | null;
  beta_i: number | null;
  distill_seconds: number;
  curve: DistillResult['curve'];
}

export interface RunMetrics {
  layers: LayerMetrics[];
  global: { alpha: number | null; beta: number | null };
  model: {
    activated_params_dense: number;
    activated_params_moe: number;
    activated_non_embedding_dense: number;
    activated_non_embedding_moe: number;
    ppl_dense: number;
    ppl_moe: number;
    agreement: number;
    kl: number;
    prefill_tokens_per_s_dense: number;
    prefill_tokens_per_s_moe: number;
    decode_tokens_per_s_dense: number;
    decode_tokens_per_s_moe: number;
  };
  calibration_tokens: number;
  eval_tokens: number;
}

/** The domains of a data folder: `<domain>.train.txt` / `<domain>.valid.txt`. */
function domainFile(files: readonly ByteSource[], domain: string, split: 'train' | 'valid', folder: string): ByteSource {
  const f = files.find((x) => baseName(x.name) === `${domain}.${split}.txt`);
  if (!f) throw new Error(`${folder}: no ${domain}.${split}.txt (domains here: ${domains(files).join(', ')})`);
  return f;
}

function domains(files: readonly ByteSource[]): string[] {
  return files.map((f) => /^(.*)\.train\.txt$/.exec(baseName(f.name))?.[1]).filter((d): d is string => !!d).sort();
}

/** Calibration windows, taken round-robin across domains so even a small budget spans them all. */
async function calibrationWindows(files: readonly ByteSource[], spec: RunSpec, tok: Tokenizer, size: number): Promise<number[][]> {
  const names = spec['calibration.domains'] === 'all' ? domains(files) : spec['calibration.domains'].split(',').map((d) => d.trim());
  const perDomain = Math.ceil(spec['calibration.tokens'] / size / names.length) + 1;
  const lists = await Promise.all(names.map(async (d) => evalWindows(await readText(domainFile(files, d, 'train', spec.data)), tok, size, perDomain)));
  const out: number[][] = [];
  for (let i = 0; out.length * size < spec['calibration.tokens'] && lists.some((l) => i < l.length); i++) {
    for (const l of lists) if (i < l.length) out.push(l[i]);
  }
  return out;
}

function routingFor(policy: LayerPolicy, alphaI: number | null, betaI: number | null, normTopK: boolean): RoutingOptions {
  if (policy === 'dynamic') return { dynamic: { alpha: alphaI!, beta: betaI! }, normTopK };
  return { topK: Number(policy.slice(3)), normTopK };
}

/** What every stage shares: the model, its checkpoint, the data, the captured FFN pairs. */
export interface RunContext {
  gpu: Gpu;
  spec: RunSpec;
  ckpt: Checkpoint;
  modelFiles: ByteSource[];
  model: LlamaModel;
  calib: number[][];
  evalSet: number[][];
  capture: CaptureResult;
  /** the captured layers */
  layers: number[];
  /** where stages save and resume from (spec checkpoint.dir), if anywhere */
  checkpoint: RunCheckpoint | null;
  progress: (m: string) => void;
}

/** A layer's distilled MoE block. */
export interface DistilledLayer {
  layer: MoeLayer;
  result: DistillResult;
  expertDim: number;
}

/** Model and data in, FFN pairs of the layers `layersOf(nLayers)` names captured (§4.2, §5.1). */
export async function prepare(gpu: Gpu, spec: RunSpec, io: HostIO, layersOf: (nLayers: number) => number[], progress: (m: string) => void): Promise<RunContext> {
  const modelFiles = await io.open(spec.tokenizer ? [spec.model, spec.tokenizer] : [spec.model]);
  const ckpt = await openCheckpoint(modelFiles);
  const layers = layersOf(ckpt.config.nLayers);
  const model = await LlamaModel.load(gpu, ckpt.weights);
  const data = await io.open([spec.data]);
  const window = Math.min(spec['eval.window'], model.seqLen);
  const calib = await calibrationWindows(data, spec, ckpt.tokenizer, window);
  const evalText = await readText(domainFile(data, spec['eval.domain'], 'valid', spec.data));
  const evalSet = evalWindows(evalText, ckpt.tokenizer, window, spec['eval.maxWindows']);
  const checkpoint = spec['checkpoint.dir'] ? await RunCheckpoint.open(io, spec) : null;
  const capture = (await loadCapture(gpu, checkpoint, layers)) ?? (await captureFfn(model, calib, layers, spec['calibration.tokens'], eta('capture', progress)));
  if (checkpoint) for (const c of capture.layers.values()) await checkpoint.saveTensors(`capture-${c.layer}`, { x: c.x, fx: c.fx }, { tokens: capture.tokens });
  progress(`captured ${capture.tokens} tokens for layers ${layers.join(', ')}`);
  return { gpu, spec, ckpt, modelFiles, model, calib, evalSet, capture, layers, checkpoint, progress };
}

/** The captured pairs of every layer from the checkpoint folder, or null if any is missing. */
async function loadCapture(gpu: Gpu, cp: RunCheckpoint | null, layers: readonly number[]): Promise<CaptureResult | null> {
  if (!cp) return null;
  const out = new Map<number, CapturedLayer>();
  let tokens = 0;
  for (const l of layers) {
    const saved = await cp.loadTensors<{ tokens: number }>(gpu, `capture-${l}`);
    if (!saved) {
      for (const c of out.values()) [c.x, c.fx].forEach((t) => t.release());
      return null;
    }
    out.set(l, { layer: l, x: saved.tensors.x, fx: saved.tensors.fx });
    tokens = saved.meta.tokens;
  }
  return { layers: out, tokens };
}

/** Progress lines "stage: done/total, detail, ETA …" at most every 5 s. */
function eta(stage: string, progress: (m: string) => void): (done: number, total: number, detail?: string) => void {
  const t0 = performance.now();
  let last = 0;
  return (done, total, detail) => {
    const now = performance.now();
    if (now - last < 5000 && done < total) return;
    last = now;
    const left = done > 0 ? ((now - t0) / done) * (total - done) / 1000 : NaN;
    progress(`${stage}: ${done}/${total}${detail ? `, ${detail}` : ''}${Number.isFinite(left) && done < total ? `, ETA ${left.toFixed(0)} s` : ''}`);
  };
}

/** Construct (§4.1) and distill (§4.2–4.3) each layer alone, with the spec's construction overridden by `construct`. */
export async function distillLayers(
  ctx: RunContext,
  layers: readonly number[],
  construct: { split: RunSpec['construct.split']; routerInit: RunSpec['construct.routerInit'] } = { split: ctx.spec['construct.split'], routerInit: ctx.spec['construct.routerInit'] },
): Promise<Map<number, DistilledLayer>> {
  const { spec, ckpt, gpu } = ctx;
  const c = ckpt.config;
  const E = spec['construct.experts'];
  const routing: RoutingOptions = { topK: spec['train.topK'], normTopK: spec['train.normTopK'] };
  const out = new Map<number, DistilledLayer>();
  for (const l of layers) {
    const name = `layer-${l}-${construct.split}-${construct.routerInit}`;
    const saved = await ctx.checkpoint?.loadTensors<{ result: DistillResult; expertDim: number }>(gpu, name);
    if (saved) {
      const { router, gate_proj, up_proj, down_proj } = saved.tensors;
      out.set(l, { layer: { weights: { router, gate_proj, up_proj, down_proj }, routing }, result: saved.meta.result, expertDim: saved.meta.expertDim });
      ctx.progress(`layer ${l}: distilled block loaded from ${ctx.checkpoint!.dir}`);
      continue;
    }
    const w = (n: string) => ckpt.weights.read(`model.layers.${l}.mlp.${n}.weight`);
    const captured = ctx.capture.layers.get(l);
    if (!captured) throw new Error(`distill: layer ${l} was not captured`);
    const sample = Math.min(ctx.capture.tokens, 4096); // statistics for co-activation and k-means: the first rows
    const X = construct.split === 'coactivation' || construct.routerInit === 'kmeans' ? ((await captured.x.rows(sample).read()) as Float32Array) : undefined;
    const ex = constructExperts(
      { H: c.dim, I: c.hiddenDim, gate_proj: await w('gate_proj'), up_proj: await w('up_proj'), down_proj: await w('down_proj') },
      { nExperts: E, method: construct.split, seed: spec.seed + l, X },
    );
    const router = initRouter({ nExperts: E, H: c.dim, method: construct.routerInit, seed: spec.seed + 1000 + l, X });
    const weights = uploadMoeWeights(gpu, { ...ex, router }, E, c.dim, ex.expertDim);
    const report = eta(`layer ${l}: step`, ctx.progress);
    const result = await distillLayer(captured, weights, {
      steps: spec['train.steps'], batchTokens: spec['train.batchTokens'], lr: spec['train.lr'], alpha: spec['train.alpha'],
      routing, heldOut: spec['train.heldOut'], seed: spec.seed + 2000 + l,
      onProgress: (s, n, mse) => report(s, n, `mse ${mse.toExponential(3)}`),
    });
    await ctx.checkpoint?.saveTensors(name, { ...weights }, { result, expertDim: ex.expertDim });
    ctx.progress(`layer ${l}: held-out mse ${result.mseBefore.toExponential(3)} → ${result.mseFinal.toExponential(3)}, rel_err ${result.relErr.toFixed(4)}, ${result.seconds.toFixed(1)} s`);
    out.set(l, { layer: { weights, routing }, result, expertDim: ex.expertDim });
  }
  return out;
}

export interface Evaluation {
  policies: Map<number, { policy: LayerPolicy; alphaI: number | null; betaI: number | null }>;
  global: { alpha: number | null; beta: number | null };
  model: RunMetrics['model'];
  evalTokens: number;
}

/**
 * Converts `layers` to their distilled blocks, decides each one's routing (Appendix A, Table 1 for
 * 'adaptive'), and scores the assembled model against the dense one (§5.2–5.3). The model is left
 * with those layers converted and the blocks returned; `restore()` puts the dense FFNs back.
 */
export async function evaluate(
  ctx: RunContext,
  distilled: ReadonlyMap<number, DistilledLayer>,
  layers: readonly number[],
  policy: RunSpec['router.policy'],
): Promise<Evaluation & { blocks: Map<number, MoeBlock>; restore: () => void }> {
  const { spec, model } = ctx;
  const c = ctx.ckpt.config;
  const moe = new Map(layers.map((l) => [l, distilled.get(l)!.layer] as const));
  for (const m of moe.values()) m.routing = { topK: spec['train.topK'], normTopK: spec['train.normTopK'] };
  const blocks = convertLayers(model, moe);
  const specs: Record<number, MoeLayerSpec> = {};
  const policies = new Map<number, { policy: LayerPolicy; alphaI: number | null; betaI: number | null }>();
  let global = { alpha: null as number | null, beta: null as number | null };
  if (policy === 'adaptive' && layers.length) {
    const window = ctx.evalSet[0]?.length ?? spec['eval.window'];
    const wMax = await profileMaxWeights(model, blocks, ctx.calib.slice(0, Math.max(1, Math.ceil(8192 / window))));
    const decided = decideRouterPolicy(layers.map((l) => wMax.get(l)!), { pU: spec['router.pU'], pE: spec['router.pE'], layers: [...layers] });
    global = { alpha: decided.alpha, beta: decided.beta };
    for (const d of decided.layers) {
      policies.set(d.layer, { policy: d.policy, alphaI: d.alphaI, betaI: d.betaI });
      specs[d.layer] = { nExperts: spec['construct.experts'], expertDim: distilled.get(d.layer)!.expertDim, policy: d.policy, kShare: d.kShare };
    }
  } else {
    const fixed = policy === 'adaptive' ? 'top2' : policy;
    for (const l of layers) {
      policies.set(l, { policy: fixed, alphaI: null, betaI: null });
      specs[l] = { nExperts: spec['construct.experts'], expertDim: distilled.get(l)!.expertDim, policy: Number(fixed.slice(3)) };
    }
  }
  for (const [l, d] of policies) moe.get(l)!.routing = routingFor(d.policy, d.alphaI, d.betaI, spec['train.normTopK']);

  const useDense = () => layers.forEach((l) => model.restoreDense(l));
  const useMoe = () => layers.forEach((l) => (model.ffn[l] = blocks.get(l)!.ffn));
  const cmp = await compareDenseMoe(model, ctx.evalSet, useDense, useMoe, (d, n) => ctx.progress(`evaluate: window ${d}/${n}`));
  const tpIds = ctx.calib.flat().slice(0, Math.min(spec['eval.throughputTokens'], model.seqLen - spec['eval.decodeTokens']));
  useDense();
  const tDense = await throughput(model, tpIds, spec['eval.decodeTokens']);
  useMoe();
  const tMoe = await throughput(model, tpIds, spec['eval.decodeTokens']);
  const pDense = countParams(c);
  const pMoe = countParams(c, specs);
  const restore = () => {
    useDense();
    for (const b of blocks.values()) b.release();
  };
  return {
    policies, global, blocks, restore, evalTokens: cmp.tokens,
    model: {
      activated_params_dense: pDense.activated.total,
      activated_params_moe: pMoe.activated.total,
      activated_non_embedding_dense: pDense.activated.nonEmbedding,
      activated_non_embedding_moe: pMoe.activated.nonEmbedding,
      ppl_dense: cmp.pplDense,
      ppl_moe: cmp.pplMoe,
      agreement: cmp.agreement,
      kl: cmp.kl,
      prefill_tokens_per_s_dense: tDense.prefillTokensPerS,
      prefill_tokens_per_s_moe: tMoe.prefillTokensPerS,
      decode_tokens_per_s_dense: tDense.decodeTokensPerS,
      decode_tokens_per_s_moe: tMoe.decodeTokensPerS,
    },
  };
}

/** Writes the converted layers as a Qwen2-MoE folder stock transformers loads, per-layer policies in moefy.json. */
async function exportRun(ctx: RunContext, distilled: ReadonlyMap<number, DistilledLayer>, ev: Evaluation, io: HostIO): Promise<void> {
  const { spec } = ctx;
  const layersOut = new Map<number, ExportMoeLayer>();
  for (const [l, d] of ev.policies) {
    const m = distilled.get(l)!.layer;
    const [router, gate_proj, up_proj, down_proj] = (await Promise.all([m.weights.router, m.weights.gate_proj, m.weights.up_proj, m.weights.down_proj].map((t) => t.read()))) as Float32Array[];
    layersOut.set(l, {
      router, gate_proj, up_proj, down_proj, E: m.weights.router.shape[0], Ie: m.weights.gate_proj.shape[1],
      policy: m.routing.dynamic ? { dynamic: m.routing.dynamic } : { topK: m.routing.topK! },
      normTopK: spec['train.normTopK'], alphaI: d.alphaI ?? undefined, betaI: d.betaI ?? undefined,
    });
  }
  const tokenizer = await Promise.all(
    ctx.modelFiles.filter((f) => ['tokenizer.json', 'tokenizer_config.json'].includes(baseName(f.name))).map(async (f) => ({ name: baseName(f.name), bytes: await f.read(0, f.size) })),
  );
  for (const f of exportQwen2Moe(ctx.ckpt.config, await readAllWeights(ctx.ckpt), layersOut, { spec: specToJson(spec), tokenizer })) {
    await io.write(`${spec['export.dir']}/${f.name}`, f.bytes);
  }
  ctx.progress(`exported the MoE model to ${spec['export.dir']}`);
}

/** Frees everything a run holds on the GPU. */
export function releaseRun(ctx: RunContext, distilled: Iterable<ReadonlyMap<number, DistilledLayer>>): void {
  for (const d of distilled) for (const { layer } of d.values()) Object.values(layer.weights).forEach((t) => t.release());
  for (const c of ctx.capture.layers.values()) [c.x, c.fx].forEach((t) => t.release());
  ctx.model.release();
}

export async function runLadimo(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<RunMetrics> {
  const ctx = await prepare(gpu, spec, io, (n) => specLayers(spec, n), progress);
  const layers = ctx.layers;
  const distilled = await distillLayers(ctx, layers);
  const ev = await evaluate(ctx, distilled, layers, spec['router.policy']);
  if (spec['export.dir']) await exportRun(ctx, distilled, ev, io);
  ev.restore();
  releaseRun(ctx, [distilled]);
  return {
    layers: layers.map((l) => {
      const r = distilled.get(l)!.result;
      const d = ev.policies.get(l)!;
      return {
        layer: l, mse_before: r.mseBefore, mse_final: r.mseFinal, rel_err: r.relErr, expert_load: r.expertLoad,
        policy: d.policy, alpha_i: d.alphaI, beta_i: d.betaI, distill_seconds: r.seconds, curve: r.curve,
      };
    }),
    global: ev.global,
    model: ev.model,
    calibration_tokens: ctx.capture.tokens,
    eval_tokens: ev.evalTokens,
  };
}
