// What every LaDiMo (arXiv 2408.04278) stage shares: the loaded dense model, the text data and its
// calibration windows, the layers to convert and the checkpoint folder. Both hosts build one with openRun:
// the CLI after loading spec.model and spec.data (run.ts), the worker over the model its Model stage loaded
// and the data its Data stage chose (src/worker/pipeline.ts).
import type { Gpu } from '../../gpu/device.ts';
import type { LlamaModel } from '../../model/llama.ts';
import type { ByteSource } from '../../model/source.ts';
import type { Checkpoint } from '../../model/weights.ts';
import type { RoutingOptions } from '../../ops/moe.ts';
import type { RunSpec } from '../../state/spec.ts';
import type { RunCheckpoint } from './checkpoint.ts';
import { calibrationWindows, evaluationWindows, type CalibWindow, type TextData } from './data.ts';

/** A dense model on the GPU with the checkpoint it came from. */
export interface LoadedModel {
  ckpt: Checkpoint;
  /** the checkpoint's files (the export copies its tokenizer files) */
  files: readonly ByteSource[];
  model: LlamaModel;
}

export interface RunContext {
  gpu: Gpu;
  /** the spec of the stage running now: a later stage may change fields no checkpoint depends on (router, eval) */
  spec: RunSpec;
  ckpt: Checkpoint;
  modelFiles: readonly ByteSource[];
  model: LlamaModel;
  data: TextData;
  /** tokens per calibration and evaluation window: eval.window within the model's context */
  window: number;
  /** calibration windows, round-robin over the calibration domains */
  calib: CalibWindow[];
  /** the layers captured and converted */
  layers: number[];
  /** where stages save and resume from, if anywhere */
  store: RunCheckpoint | null;
}

export async function openRun(spec: RunSpec, loaded: LoadedModel, data: TextData, layers: number[], store: RunCheckpoint | null): Promise<RunContext> {
  const { model, ckpt } = loaded;
  const window = Math.min(spec['eval.window'], model.seqLen);
  const calib = await calibrationWindows(data, spec, ckpt.tokenizer, window);
  return { gpu: model.gpu, spec, ckpt, modelFiles: loaded.files, model, data, window, calib, layers, store };
}

const evalSets = new WeakMap<RunContext, { key: string; windows: number[][] }>();

/** The evaluation windows of the spec's eval fields, kept while those stay the same (a sweep evaluates often). */
export async function evalSet(ctx: RunContext): Promise<number[][]> {
  const key = JSON.stringify([ctx.spec['eval.domain'], ctx.spec['eval.maxWindows']]);
  const cached = evalSets.get(ctx);
  if (cached?.key === key) return cached.windows;
  const windows = await evaluationWindows(ctx.data, ctx.spec, ctx.ckpt.tokenizer, ctx.window);
  if (!windows.length) throw new Error(`eval.domain: '${ctx.spec['eval.domain']}' has fewer than ${ctx.window} tokens of held-out text`);
  evalSets.set(ctx, { key, windows });
  return windows;
}

/** How a layer's experts and router are built (§4.1): the spec's, or another for the sweep's comparison. */
export interface Construction {
  split: RunSpec['construct.split'];
  routerInit: RunSpec['construct.routerInit'];
}

export function specConstruction(spec: RunSpec): Construction {
  return { split: spec['construct.split'], routerInit: spec['construct.routerInit'] };
}

/** The routing the blocks are distilled and profiled with: the spec's training top-k. */
export function trainRouting(spec: RunSpec): RoutingOptions {
  return { topK: spec['train.topK'], normTopK: spec['train.normTopK'] };
}
