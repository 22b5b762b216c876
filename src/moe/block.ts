// A MoE FFN block for the forward's per-layer FFN slot (LlamaModel.ffn[l]): routing spelled out in
// src/ops/moe.ts (router logits → softmax → top-k or token-wise dynamic k → optional renorm → permute →
// experts → combine). Swapping a layer's block converts it; putting the dense block back restores it.
// A residual MoE (LLaMA-MoE v2) adds an always-active shared expert, a dense SwiGLU, to the routed output.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { moeForward, type MoeForwardResult, type MoeWeights, type RoutingOptions } from '../ops/moe.ts';
import { moeExpertBias } from '../ops/moe-bias.ts';
import { matmul } from '../ops/matmul.ts';
import { swiglu } from '../ops/activation.ts';
import type { FfnBlock, LlamaModel } from '../model/llama.ts';

export interface MoeLayer {
  weights: MoeWeights;
  routing: RoutingOptions;
  /** experts' down_proj biases [E, H], each added with its routing weight (DIVE's FLAP-pruned experts) */
  bias?: Tensor;
  /** an always-active dense SwiGLU added to the routed output (LLaMA-MoE v2's residual MoE, Qwen2-MoE's shared_expert) */
  shared?: SharedExpert;
}

/** A shared expert's weights (HF layouts): gate_proj, up_proj [I_s, H], down_proj [H, I_s]. */
export interface SharedExpert {
  gate_proj: Tensor;
  up_proj: Tensor;
  down_proj: Tensor;
}

/** A router's outputs of one call: the softmax [T, E], the selected ids and weights [T, kMax] (valid until it runs again). */
export type RouteReading = Pick<MoeForwardResult, 'probs' | 'topIds' | 'topW' | 'kMax'>;

/** Router outputs of one call, for profiling and charts: a MoE block's, or an attention MoE's over its head groups. */
export type RouteObserver = (r: RouteReading) => void;

/** Anything routed whose router outputs can be observed (MoeBlock, src/moe/attention.ts AttentionMoe). */
export interface Routed {
  observe?: RouteObserver;
}

export class MoeBlock {
  /** Outputs reused per (token count T, slots per token): a handful of shapes over prefill and decode. */
  private readonly outs = new Map<string, MoeForwardResult>();
  /** The shared expert's gate, up and h [T, I_s] per token count T. */
  private readonly sharedBufs = new Map<number, Tensor[]>();

  constructor(readonly layer: MoeLayer, public observe?: RouteObserver) {}

  readonly ffn: FfnBlock = (x, out) => {
    // the routing may change between calls (the adaptive router picks each layer's k after profiling)
    const key = `${x.shape[0]}:${this.layer.routing.topK ?? 'dynamic'}`;
    const prev = this.outs.get(key);
    const r = moeForward(x, this.layer.weights, { ...this.layer.routing, out: { ...prev, y: out } });
    this.outs.set(key, r);
    if (this.layer.bias) moeExpertBias(out, this.layer.bias, r.topIds, r.topW);
    if (this.layer.shared) this.sharedFfn(this.layer.shared, x, out);
    this.observe?.(r);
  };

  /** out += down_proj(silu(gate_proj x) ⊙ up_proj x) of the shared expert. */
  private sharedFfn(s: SharedExpert, x: Tensor, out: Tensor): void {
    const T = x.shape[0];
    let bufs = this.sharedBufs.get(T);
    if (!bufs) {
      bufs = ['gate', 'up', 'h'].map((n) => x.gpu.tensor([T, s.gate_proj.shape[0]], 'f32', `shared_expert.${n}`));
      this.sharedBufs.set(T, bufs);
    }
    const [g, u, h] = bufs;
    matmul(x, s.gate_proj, { transB: true, out: g });
    matmul(x, s.up_proj, { transB: true, out: u });
    swiglu(g, u, { out: h });
    matmul(h, s.down_proj, { transB: true, out, accumulate: true });
  }

  /** Frees the cached outputs; not y (the forward's buffer) nor the weights (the caller's). */
  release(): void {
    for (const { y, kMax, ...owned } of this.outs.values()) {
      void y, kMax;
      for (const t of Object.values(owned) as Tensor[]) t.release();
    }
    this.outs.clear();
    for (const t of [...this.sharedBufs.values()].flat()) t.release();
    this.sharedBufs.clear();
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
export function convertLayers(model: LlamaModel, layers: ReadonlyMap<number, MoeLayer>, observe?: (layer: number, r: RouteReading) => void): Map<number, MoeBlock> {
  const blocks = new Map<number, MoeBlock>();
  for (const [l, layer] of layers) {
    if (l < 0 || l >= model.config.nLayers) throw new Error(`convertLayers: layer ${l} is not in 0..${model.config.nLayers - 1}`);
    const block = new MoeBlock(layer, observe && ((r) => observe(l, r)));
    model.ffn[l] = block.ffn;
    blocks.set(l, block);
  }
  return blocks;
}
