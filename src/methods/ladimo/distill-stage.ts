// LaDiMo (arXiv 2408.04278) stages 2–3 as a resumable stage: construct each layer's experts and router
// (§4.1), then distil the block alone on its captured pairs (§4.2–4.3). A finished layer is saved as
// `layer-<L>-<split>-<init>`; a layer mid-way is checkpointed at loss readings into two alternating slots
// (`.partial-a`, `.partial-b`, the pointer `.partial` written after its slot), so a stop at any moment
// leaves one complete snapshot, from which the layer continues bit for bit.
import type { MoeWeights } from '../../ops/moe.ts';
import { uploadMoeWeights } from '../../moe/block.ts';
import type { CaptureResult } from './capture.ts';
import type { RunCheckpoint } from './checkpoint.ts';
import { constructExperts, initRouter } from './construct.ts';
import { specConstruction, trainRouting, type Construction, type RunContext } from './context.ts';
import { distillLayer, type DistillResult, type DistillResume, type DistillSnapshot, type LossPoint } from './distill.ts';
import { meter, throwIfAborted, type TaskControl } from './progress.ts';

/** A layer's distilled MoE block. */
export interface DistilledLayer {
  weights: MoeWeights;
  result: DistillResult;
  /** I_e: intermediate neurons per expert, padding included */
  expertDim: number;
}

export interface DistillStageOptions {
  /** another construction than the spec's (the CLI sweep compares two) */
  construction?: Construction;
  /** each loss reading, for a live chart */
  onPoint?: (layer: number, point: LossPoint) => void;
  /** checkpoint cadence (distill.ts' default when absent); 0 checkpoints at every loss reading */
  checkpointSeconds?: number;
}

export function layerName(l: number, c: Construction): string {
  return `layer-${l}-${c.split}-${c.routerInit}`;
}

/** Where a layer's interrupted distillation stopped (the pointer's metadata). */
export interface PartialPointer {
  slot: 'a' | 'b';
  step: number;
  steps: number;
}

/** Layer l's finished block from the store, uploaded; null if it never finished. */
export async function loadDistilled(ctx: RunContext, l: number, c: Construction = specConstruction(ctx.spec)): Promise<DistilledLayer | null> {
  const saved = await ctx.store?.loadTensors<{ result: DistillResult; expertDim: number }>(ctx.gpu, layerName(l, c));
  if (!saved) return null;
  const { router, gate_proj, up_proj, down_proj } = saved.tensors;
  return { weights: { router, gate_proj, up_proj, down_proj }, result: saved.meta.result, expertDim: saved.meta.expertDim };
}

/** Constructs and distils each of `layers` in turn; finished ones load from the store, a partial one resumes. */
export async function distillLayers(
  ctx: RunContext,
  capture: CaptureResult,
  layers: readonly number[],
  control: TaskControl = {},
  opts: DistillStageOptions = {},
): Promise<Map<number, DistilledLayer>> {
  const { spec, store } = ctx;
  const construction = opts.construction ?? specConstruction(spec);
  const steps = spec['train.steps'];
  const out = new Map<number, DistilledLayer>();
  try {
    for (const [i, l] of layers.entries()) {
      throwIfAborted(control.signal, 'distill');
      const name = layerName(l, construction);
      const loaded = await loadDistilled(ctx, l, construction);
      if (loaded) {
        out.set(l, loaded);
        control.onLog?.(`layer ${l}: distilled block loaded from ${store!.dir}`);
        continue;
      }
      const captured = capture.layers.get(l);
      if (!captured) throw new Error(`distill: layer ${l} was not captured`);
      const partial = store ? await loadPartial(ctx, store, name) : null;
      if (partial) control.onLog?.(`layer ${l}: resumed at step ${partial.resume.step}/${steps} from ${store!.dir}`);
      const { weights, expertDim } = partial ?? (await constructBlock(ctx, capture, l, construction));
      const report = meter(control, 'distill', 'steps', layers.length * steps, i * steps + (partial?.resume.step ?? 0));
      let slot: 'a' | 'b' = partial?.slot === 'a' ? 'b' : 'a';
      let result: DistillResult;
      try {
        result = await distillLayer(captured, weights, {
          steps, batchTokens: spec['train.batchTokens'], lr: spec['train.lr'], alpha: spec['train.alpha'],
          routing: trainRouting(spec), heldOut: spec['train.heldOut'], seed: spec.seed + 2000 + l,
          resume: partial?.resume, signal: control.signal, checkpointSeconds: opts.checkpointSeconds,
          onProgress: (s, n, point) => {
            report(i * steps + s, `layer ${l}: step ${s}/${n}, mse ${point.mse.toExponential(3)}`);
            opts.onPoint?.(l, point);
          },
          onCheckpoint: store
            ? async (snap) => {
              await savePartial(store, name, slot, snap, weights, steps);
              slot = slot === 'a' ? 'b' : 'a';
            }
            : undefined,
        });
      } catch (e) {
        Object.values(weights).forEach((t) => t.release());
        throw e;
      }
      out.set(l, { weights, result, expertDim });
      if (store) {
        await store.saveTensors(name, { ...weights }, { result, expertDim });
        for (const p of ['partial', 'partial-a', 'partial-b']) await store.remove(`${name}.${p}`);
      }
      control.onLog?.(`layer ${l}: held-out mse ${result.mseBefore.toExponential(3)} → ${result.mseFinal.toExponential(3)}, rel_err ${result.relErr.toFixed(4)}, ${result.seconds.toFixed(1)} s`);
    }
  } catch (e) {
    releaseDistilled(out);
    throw e;
  }
  return out;
}

/** Layer l's block before training (§4.1): its dense FFN split into experts, and a fresh router. */
async function constructBlock(ctx: RunContext, capture: CaptureResult, l: number, construction: Construction): Promise<{ weights: MoeWeights; expertDim: number }> {
  const { spec } = ctx;
  const c = ctx.ckpt.config;
  const E = spec['construct.experts'];
  const w = (n: string) => ctx.ckpt.weights.read(`model.layers.${l}.mlp.${n}.weight`);
  const sample = Math.min(capture.tokens, 4096); // statistics for co-activation and k-means: the first rows
  const statistics = construction.split === 'coactivation' || construction.routerInit === 'kmeans';
  const X = statistics ? ((await capture.layers.get(l)!.x.rows(sample).read()) as Float32Array) : undefined;
  const ex = constructExperts(
    { H: c.dim, I: c.hiddenDim, gate_proj: await w('gate_proj'), up_proj: await w('up_proj'), down_proj: await w('down_proj') },
    { nExperts: E, method: construction.split, seed: spec.seed + l, X },
  );
  const router = initRouter({ nExperts: E, H: c.dim, method: construction.routerInit, seed: spec.seed + 1000 + l, X });
  return { weights: uploadMoeWeights(ctx.gpu, { ...ex, router }, E, c.dim, ex.expertDim), expertDim: ex.expertDim };
}

export function releaseDistilled(layers: ReadonlyMap<number, DistilledLayer>): void {
  for (const d of layers.values()) Object.values(d.weights).forEach((t) => t.release());
}

/** The pointer of a layer stopped mid-way, or null. */
export async function partialPointer(store: RunCheckpoint, name: string): Promise<PartialPointer | null> {
  return (await store.loadArrays<PartialPointer>(`${name}.partial`))?.meta ?? null;
}

const WEIGHTS = ['router', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** Writes a snapshot into `slot`, then points the layer's pointer at it. */
async function savePartial(store: RunCheckpoint, name: string, slot: 'a' | 'b', snap: DistillSnapshot, weights: MoeWeights, steps: number): Promise<void> {
  const arrays: Parameters<RunCheckpoint['saveArrays']>[1] = {};
  for (const k of WEIGHTS) {
    const shape = weights[k].shape;
    arrays[k] = { data: snap.weights[k], shape };
    arrays[`${k}.m`] = { data: snap.moments[k].m, shape };
    arrays[`${k}.v`] = { data: snap.moments[k].v, shape };
  }
  const { step, curve, mseBefore, seconds } = snap;
  await store.saveArrays(`${name}.partial-${slot}`, arrays, { step, curve, mseBefore, seconds });
  await store.saveArrays(`${name}.partial`, {}, { slot, step, steps } satisfies PartialPointer);
}

/** The snapshot the pointer names: weights uploaded, the rest for distillLayer's `resume`. */
async function loadPartial(ctx: RunContext, store: RunCheckpoint, name: string): Promise<{ slot: 'a' | 'b'; weights: MoeWeights; expertDim: number; resume: DistillResume } | null> {
  const pointer = await partialPointer(store, name);
  if (!pointer) return null;
  const saved = await store.loadArrays<Omit<DistillResume, 'moments'>>(`${name}.partial-${pointer.slot}`);
  if (!saved) throw new Error(`${store.dir}/${name}.partial.json names slot ${pointer.slot}, which is incomplete; delete the stored checkpoint to restart this layer`);
  const a = (k: string) => saved.arrays[k].data as Float32Array;
  const weights = Object.fromEntries(WEIGHTS.map((k) => [k, ctx.gpu.upload(a(k), saved.arrays[k].shape, k)])) as unknown as MoeWeights;
  const moments = Object.fromEntries(WEIGHTS.map((k) => [k, { m: a(`${k}.m`), v: a(`${k}.v`) }])) as DistillResume['moments'];
  return { slot: pointer.slot, weights, expertDim: weights.gate_proj.shape[1], resume: { ...saved.meta, moments } };
}
