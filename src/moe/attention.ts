// LLaMA-MoE v2 (arXiv 2411.15708), attention MoE: the attention heads are grouped into experts; with
// grouped-query attention an expert is one KV head and the query heads that share it, so there are
// G = nKvHeads experts of nHeads/G query heads each. A router on the layer's normed input (the attention
// input, as the MLP router reads the FFN input) picks the top-k groups per token; the layer's output is
//   o = s · Σ_{g ∈ top-k} w_g · o_proj_g(attn_g(q_g, K_g, V_g)),   w = softmax(x·Wrᵀ) over the G groups,
// K and V computed for every group (a later token may pick a group an earlier one did not). The scale
// factor is s = G: a zero router gives every group 1/G, so with all G groups active s·w_g = 1 and the block
// is the dense attention (exact in f32 for G a power of two).
// This engine computes every head and zeroes the unselected groups' outputs before o_proj (ops/head-gate.ts):
// the same output as computing only the selected q/o slices, without their saving in FLOPs.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { LlamaModel } from '../model/llama.ts';
import { headGate } from '../ops/head-gate.ts';
import { matmul } from '../ops/matmul.ts';
import { MAX_TOP_K, moeRoute } from '../ops/moe.ts';
import type { RouteObserver, Routed } from './block.ts';

export interface AttentionMoeLayer {
  /** the router over the KV head groups: [G, dim] */
  router: Tensor;
  /** head groups per token, 1..min(8, G) */
  topK: number;
  /** s; default G */
  scale?: number;
}

/** The attention MoE of one layer, as the forward's attention gate (LlamaModel.attnGate[l]). */
export class AttentionMoe implements Routed {
  /** logits, probs, topIds, topW and the gated output per token count T */
  private readonly bufs = new Map<number, Tensor[]>();
  readonly groups: number;
  readonly scale: number;

  /** sees each call's routing over the head groups (profiling, the head-group load) */
  observe?: RouteObserver;

  constructor(readonly layer: AttentionMoeLayer, private readonly nHeads: number, nKvHeads: number) {
    const [G, dim] = layer.router.shape;
    if (G !== nKvHeads) throw new Error(`attention MoE router: expected [${nKvHeads}, dim] (one expert per KV head group), got [${G}, ${dim}]`);
    const kMax = Math.min(MAX_TOP_K, G);
    if (!Number.isInteger(layer.topK) || layer.topK < 1 || layer.topK > kMax) throw new Error(`v2.attentionTopK: expected an integer in [1, ${kMax}] for ${G} head groups, got ${layer.topK}`);
    this.groups = G;
    this.scale = layer.scale ?? G;
  }

  readonly gate = (xn: Tensor, att: Tensor): Tensor => {
    const T = xn.shape[0];
    let b = this.bufs.get(T);
    if (!b) {
      const gpu = xn.gpu;
      const G = this.groups;
      const k = this.layer.topK;
      b = [gpu.tensor([T, G], 'f32', 'attn_moe.logits'), gpu.tensor([T, G], 'f32', 'attn_moe.probs'), gpu.tensor([T, k], 'u32', 'attn_moe.topIds'), gpu.tensor([T, k], 'f32', 'attn_moe.topW'), gpu.tensor(att.shape, 'f32', 'attn_moe.out')];
      this.bufs.set(T, b);
    }
    const [logits, probs, topIds, topW, out] = b;
    matmul(xn, this.layer.router, { transB: true, out: logits });
    moeRoute(logits, { topK: this.layer.topK }, { probs, topIds, topW });
    headGate(att, topIds, topW, { headsPerGroup: this.nHeads / this.groups, scale: this.scale, out });
    this.observe?.({ probs, topIds, topW, kMax: this.layer.topK });
    return out;
  };

  release(): void {
    for (const t of [...this.bufs.values()].flat()) t.release();
    this.bufs.clear();
  }
}

/** Sets the attention MoE of the given layers (model.attnGate[l] = undefined undoes one). */
export function convertAttention(model: LlamaModel, layers: ReadonlyMap<number, AttentionMoeLayer>): Map<number, AttentionMoe> {
  const c = model.config;
  const out = new Map<number, AttentionMoe>();
  for (const [l, layer] of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) throw new Error(`convertAttention: layer ${l} is not in 0..${c.nLayers - 1}`);
    const moe = new AttentionMoe(layer, c.nHeads, c.nKvHeads);
    model.attnGate[l] = moe.gate;
    out.set(l, moe);
  }
  return out;
}

/** Uploads an attention router [G, dim]. */
export function uploadAttentionRouter(gpu: Gpu, router: Float32Array, G: number, dim: number): Tensor {
  if (router.length !== G * dim) throw new Error(`attention MoE router: expected [${G}, ${dim}] = ${G * dim} values, got ${router.length}`);
  return gpu.upload(router, [G, dim], 'self_attn.gate');
}
