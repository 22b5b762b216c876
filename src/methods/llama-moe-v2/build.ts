// LLaMA-MoE v2 (arXiv 2411.15708), MLP MoE construction and router initialisation: the MLP MoE of each converted layer from the spec's v2.* fields:
// the captured FFN inputs (LaDiMo's capture, src/methods/ladimo/capture.ts) give the neuron statistics
// (stats.ts, on the GPU) and the router's hidden-state sample (router.ts); the dense FFN, read back once,
// is split (construct.ts) and the layer uploaded in the layout inference and training share (layer.ts).
import type { LlamaModel } from '../../model/llama.ts';
import type { MoeLayer } from '../../moe/block.ts';
import type { TrainMoeLayer } from '../../train/llama-train.ts';
import type { RunSpec } from '../../state/spec.ts';
import type { CaptureResult } from '../ladimo/capture.ts';
import type { DenseFfn } from '../ladimo/construct.ts';
import { constructMlpMoe, type MlpMoe } from './construct.ts';
import { mlpMoeLayer, uploadMlpMoe, type MlpMoeWeights } from './layer.ts';
import { initRouterV2, sampleRows } from './router.ts';
import { neuronStatistics, type NeuronStats } from './stats.ts';

/** The v2.* fields construction reads (a RunSpec has them all). */
export type MlpMoeSpec = Pick<RunSpec, 'v2.mlp' | 'v2.experts' | 'v2.sharedRatio' | 'v2.sharedBy' | 'v2.partition' | 'v2.routerInit' | 'v2.routerTokens' | 'seed'>;

export interface ConstructedLayer {
  stats: NeuronStats;
  moe: MlpMoe;
  router: Float32Array;
  /** on the GPU; the caller releases them (releaseMlpMoe) */
  weights: MlpMoeWeights;
}

/** Shared-expert size of a residual MoE: round(v2.sharedRatio · I). */
export function sharedNeuronCount(spec: Pick<RunSpec, 'v2.sharedRatio'>, I: number): number {
  return Math.round(spec['v2.sharedRatio'] * I);
}

/** Layer l's dense FFN read back from the model's weights. */
export async function denseFfn(model: LlamaModel, l: number): Promise<DenseFfn> {
  const L = model.weights.layers[l];
  const read = async (t: typeof L.gate_proj) => (await t.read()) as Float32Array;
  return { H: model.config.dim, I: model.config.hiddenDim, gate_proj: await read(L.gate_proj), up_proj: await read(L.up_proj), down_proj: await read(L.down_proj) };
}

/** Builds every captured layer's MLP MoE; layer l draws from seed + l. */
export async function constructMlpLayers(model: LlamaModel, capture: CaptureResult, spec: MlpMoeSpec): Promise<Map<number, ConstructedLayer>> {
  const out = new Map<number, ConstructedLayer>();
  for (const [l, { x }] of [...capture.layers].sort(([a], [b]) => a - b)) {
    const ffn = await denseFfn(model, l);
    const stats = await neuronStatistics(x, model.weights.layers[l]);
    const kind = spec['v2.mlp'];
    const seed = spec.seed + l;
    const moe = constructMlpMoe(ffn, {
      kind,
      nExperts: spec['v2.experts'],
      ...(kind === 'residual' && { sharedNeurons: sharedNeuronCount(spec, ffn.I), stats, sharedBy: spec['v2.sharedBy'] }),
      partition: spec['v2.partition'],
      seed,
    });
    const method = spec['v2.routerInit'];
    const X = method === 'random' ? undefined : await sampleRows(x, spec['v2.routerTokens']);
    const router = initRouterV2({ method, nExperts: spec['v2.experts'], H: ffn.H, X, seed });
    out.set(l, { stats, moe, router, weights: uploadMlpMoe(model.gpu, moe, router) });
  }
  return out;
}

/** The constructed layers as the inference forward's MoE blocks (src/moe/block.ts convertLayers), top-v2.topK. */
export function inferenceLayers(built: ReadonlyMap<number, ConstructedLayer>, spec: Pick<RunSpec, 'v2.topK'>): Map<number, MoeLayer> {
  return new Map([...built].map(([l, L]) => [l, mlpMoeLayer(L.weights, { topK: spec['v2.topK'] })]));
}

/**
 * The same tensors as training's MoE layers (src/train/llama-train.ts TrainModelOptions.moe): top-v2.topK,
 * each layer with its own load-balancing term v2.balance·L_aux (the paper's layer-wise balance loss).
 */
export function trainLayers(built: ReadonlyMap<number, ConstructedLayer>, spec: Pick<RunSpec, 'v2.topK' | 'v2.balance'>): Map<number, TrainMoeLayer> {
  return new Map([...built].map(([l, L]) => [l, { weights: L.weights, routing: { topK: spec['v2.topK'], auxCoef: spec['v2.balance'] } }]));
}
