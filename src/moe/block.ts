// A MoE FFN block for the forward's per-layer FFN slot (LlamaModel.ffn[l]): routing spelled out in
// src/ops/moe.ts (router logits → softmax → top-k or token-wise dynamic k → optional renorm → permute →
// experts → combine). Swapping a layer's block converts it; putting the dense block back restores it.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { moeForward, type MoeForwardResult, type MoeWeights, type RoutingOptions } from '../ops/moe.ts';
import type { FfnBlock, LlamaModel } from '../model/llama.ts';

export interface MoeLayer {
  weights: MoeWeights;
  routing: RoutingOptions;
}

/** Router outputs of one call, for profiling and charts (valid until the block runs again). */
export type RouteObserver = (r: MoeForwardResult) => void;

export class MoeBlock {
  /** Outputs reused per (token count T, slots per token): a handful of shapes over prefill and decode. */
  private readonly outs = new Map<string, MoeForwardResult>();

  constructor(readonly layer: MoeLayer, public observe?: RouteObserver) {}

  readonly ffn: FfnBlock = (x, out) => {
    // the routing may change between calls (the adaptive router picks each layer's k after profiling)
    const key = `${x.shape[0]}:${this.layer.routing.topK ?? 'dynamic'}`;
    const prev = this.outs.get(key);
    const r = moeForward(x, this.layer.weights, { ...this.layer.routing, out: { ...prev, y: out } });
    this.outs.set(key, r);
    this.observe?.(r);
  };

  /** Frees the cached outputs; not y (the forward's buffer) nor the weights (the caller's). */
  release(): void {
    for (const { y, kMax, ...owned } of this.outs.values()) {
      void y, kMax;
      for (const t of Object.values(owned) as Tensor[]) t.release();
    }
    this.outs.clear();
  }
}

/** Uploads host expert weights (LaDiMo construction output + router) as a MoE layer. */
export function uploadMoeWeights(
  gpu: Gpu,
  w: { router: Float32Array; gate_proj: Float32Array; up_proj: Float32Array; down_proj: Float32Array },
  E: number, H: number, Ie: number,
): MoeWeights {
  return {
    router: gpu.upload(w.router, [E, H], 'router'),
    gate_proj: gpu.upload(w.gate_proj, [E, Ie, H], 'experts.gate_proj'),
    up_proj: gpu.upload(w.up_proj, [E, Ie, H], 'experts.up_proj'),
    down_proj: gpu.upload(w.down_proj, [E, H, Ie], 'experts.down_proj'),
  };
}

/** Converts the given layers of `model` to MoE blocks (LlamaModel.restoreDense undoes it). */
export function convertLayers(model: LlamaModel, layers: ReadonlyMap<number, MoeLayer>, observe?: (layer: number, r: MoeForwardResult) => void): Map<number, MoeBlock> {
  const blocks = new Map<number, MoeBlock>();
  for (const [l, layer] of layers) {
    if (l < 0 || l >= model.config.nLayers) throw new Error(`convertLayers: layer ${l} is not in 0..${model.config.nLayers - 1}`);
    const block = new MoeBlock(layer, observe && ((r) => observe(l, r)));
    model.ffn[l] = block.ffn;
    blocks.set(l, block);
  }
  return blocks;
}
