// LaDiMo (arXiv 2408.04278) end to end for the CLI, one run spec in, metrics out: capture (§4.2, §5.1) →
// construct (§4.1) → distill (§4.2–4.3) → profile (Appendix A) → adaptive router (Appendix A, Table 1) →
// assemble and evaluate (§5.2–5.3) → export. Host-agnostic: files come through HostIO, the GPU is given.
// Each stage is its own module over a RunContext (context.ts), so the worker runs them one at a time
// (src/worker/pipeline.ts) and a sweep (sweep.ts) distils once and evaluates many layer sets and policies.
import type { Gpu } from '../../gpu/device.ts';
import type { HostIO } from '../../cli/io.ts';
import { openCheckpoint } from '../../model/load.ts';
import { LlamaModel } from '../../model/llama.ts';
import { specLayers, type RunSpec } from '../../state/spec.ts';
import type { CaptureResult } from './capture.ts';
import { captureStage } from './capture-stage.ts';
import { checkpointIdentity, RunCheckpoint } from './checkpoint.ts';
import { openRun, type RunContext } from './context.ts';
import { textDataFromFiles } from './data.ts';
import type { DistillResult } from './distill.ts';
import { distillLayers, releaseDistilled, type DistilledLayer } from './distill-stage.ts';
import { evaluate, type ModelScores } from './evaluate.ts';
import { exportFiles } from './export-moe.ts';
import { textControl, type TaskControl } from './progress.ts';
import type { LayerPolicy } from './router-policy.ts';
import { decideRouting } from './routing.ts';

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
  model: ModelScores;
  calibration_tokens: number;
  eval_tokens: number;
  /** tokens the prefill tokens/s were measured over */
  prefill_tokens: number;
}

/** The model and data the spec names, opened; the FFN pairs of the layers `layersOf(nLayers)` names captured. */
export async function prepare(gpu: Gpu, spec: RunSpec, io: HostIO, layersOf: (nLayers: number) => number[], control: TaskControl): Promise<{ ctx: RunContext; capture: CaptureResult }> {
  const files = await io.open(spec.tokenizer ? [spec.model, spec.tokenizer] : [spec.model]);
  const ckpt = await openCheckpoint(files);
  const data = await textDataFromFiles(await io.open([spec.data]), spec.data);
  const store = spec['checkpoint.dir'] ? await RunCheckpoint.open(io, spec['checkpoint.dir'], checkpointIdentity(spec)) : null;
  const model = await LlamaModel.load(gpu, ckpt.weights);
  try {
    const ctx = await openRun(spec, { ckpt, files, model }, data, layersOf(ckpt.config.nLayers), store);
    return { ctx, capture: await captureStage(ctx, control) };
  } catch (e) {
    model.release();
    throw e;
  }
}

/** Frees everything a run holds on the GPU. */
export function releaseRun(ctx: RunContext, capture: CaptureResult, distilled: Iterable<ReadonlyMap<number, DistilledLayer>>): void {
  for (const d of distilled) releaseDistilled(d);
  for (const c of capture.layers.values()) [c.x, c.fx].forEach((t) => t.release());
  ctx.model.release();
}

export async function runLadimo(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<RunMetrics> {
  const control = textControl(progress);
  const { ctx, capture } = await prepare(gpu, spec, io, (n) => specLayers(spec, n), control);
  const layers = ctx.layers;
  const distilled = await distillLayers(ctx, capture, layers, control);
  const { global, routes } = await decideRouting(ctx, distilled, layers, spec['router.policy'], control);
  const ev = await evaluate(ctx, distilled, routes, control);
  if (spec['export.dir']) {
    for (const f of await exportFiles(ctx, distilled, routes, control)) await io.write(`${spec['export.dir']}/${f.name}`, f.bytes);
    progress(`exported the MoE model to ${spec['export.dir']}`);
  }
  releaseRun(ctx, capture, [distilled]);
  return {
    layers: layers.map((l) => {
      const r = distilled.get(l)!.result;
      const d = routes.get(l)!;
      return {
        layer: l, mse_before: r.mseBefore, mse_final: r.mseFinal, rel_err: r.relErr, expert_load: r.expertLoad,
        policy: d.policy, alpha_i: d.alphaI, beta_i: d.betaI, distill_seconds: r.seconds, curve: r.curve,
      };
    }),
    global,
    model: ev.model,
    calibration_tokens: capture.tokens,
    eval_tokens: ev.evalTokens,
    prefill_tokens: ev.prefillTokens,
  };
}
