// float64 reference of the training MoE block (moe.ts), of the attention MoE gate (attention-moe.ts), and of a
// LLaMA model whose layers may have them:
// the ground truth of moe.check.ts. Built from the references of the parts (src/model/llama.ref.ts,
// src/ops/moe.ref.ts): every expert on every token weighted by the routing mask, so no permutation is
// involved, and the load-balancing loss L_aux = E·Σ_i f_i·P_i (Switch Transformer eq. 4–6).
import type { ModelConfig } from '../model/config.ts';
import { llamaForwardRef } from '../model/llama.ref.ts';
import { auxLossRef, expertOutputsRef, mixRef, noisyLogitsRef, routeRef, routerLogitsRef, routingMaskRef, type RoutingRef } from '../ops/moe.ref.ts';
import { denseFfnRef } from '../ops/moe-train.ref.ts';
import { headGateRef } from '../ops/head-gate.ref.ts';
import type { AttentionRouting } from './attention-moe.ts';
import { moeExpertBiasRef } from '../ops/moe-bias.ref.ts';
import type { MoeRouting } from './moe.ts';

/** A block's weights: Wr [E, H], Wg/Wu [E, I, H], Wd [E, H, I], bias [E, H]; shared expert Sg/Su [S, H], Sd [H, S]. */
export interface MoeBlockRef {
  Wr: ArrayLike<number>;
  Wg: ArrayLike<number>;
  Wu: ArrayLike<number>;
  Wd: ArrayLike<number>;
  bias?: ArrayLike<number>;
  shared?: { Sg: ArrayLike<number>; Su: ArrayLike<number>; Sd: ArrayLike<number> };
  /** the noisy gate: Wn [E, H] and the sequence's draw ε [T, E] (used when the routing has noise) */
  noise?: { Wn: ArrayLike<number>; normals: ArrayLike<number> };
}

export interface MoeBlockOutRef {
  y: Float64Array;        // [T, H]
  routing: RoutingRef;
  /** L_aux of the call (computed whether or not α is set) */
  aux: number;
  /** the smallest p_(k) − p_(k+1) over tokens: how far the top-k selection is from changing (∞ when k = E) */
  margin: number;
}

/** y = Σ_{e ∈ top-k(softmax(z))} w_e·(expert_e(x) + b_e) (+ shared(x)), z = (x·Wrᵀ (+ ε ⊙ (softplus(x·Wnᵀ) + eps)))/τ. x: [T, H]. */
export function moeBlockRef(x: ArrayLike<number>, w: MoeBlockRef, T: number, H: number, r: MoeRouting): MoeBlockOutRef {
  const E = w.Wr.length / H;
  const I = w.Wg.length / (E * H);
  const d = { T, H, I, E };
  const invTau = 1 / (r.temperature ?? 1);
  const gate = routerLogitsRef(x, w.Wr, d).map((v) => v * invTau);
  const z = r.noise && w.noise ? noisyLogitsRef(gate, routerLogitsRef(x, w.noise.Wn, d), w.noise.normals, r.noise.epsilon, invTau) : gate;
  const routing = routeRef(z, T, E, { topK: r.topK, normTopK: r.normTopK });
  const mixed = mixRef(routingMaskRef(routing.topIds, routing.topW, T, E, routing.kMax), expertOutputsRef(x, w.Wg, w.Wu, w.Wd, d), T, E, H);
  const y = w.bias ? moeExpertBiasRef(mixed, w.bias, routing.topIds, routing.topW, T, H, routing.kMax) : mixed;
  if (w.shared) {
    const S = w.shared.Sg.length / H;
    const s = denseFfnRef(x, w.shared.Sg, w.shared.Su, w.shared.Sd, T, H, S);
    for (let i = 0; i < y.length; i++) y[i] += s[i];
  }
  return { y, routing, aux: auxLossRef(routing.probs, routing.topIds, T, E, routing.kMax).loss, margin: marginRef(routing.probs, T, E, r.topK) };
}

/** The smallest p_(k) − p_(k+1) over tokens (∞ when k = E). */
function marginRef(probs: Float64Array, T: number, E: number, k: number): number {
  let margin = Infinity;
  if (k < E) {
    for (let t = 0; t < T; t++) {
      const p = Array.from(probs.subarray(t * E, (t + 1) * E)).sort((a, b) => b - a);
      margin = Math.min(margin, p[k - 1] - p[k]);
    }
  }
  return margin;
}

/**
 * The attention MoE gate: h [T, H] the router's input, att [T, heads·D], Wr [G, H];
 * y[t, head] = s·p_g·att[t, head] for the head's group g in top-k(softmax(h·Wrᵀ)), else 0.
 */
export function attentionMoeRef(h: ArrayLike<number>, att: ArrayLike<number>, Wr: ArrayLike<number>, T: number, H: number, heads: number, r: AttentionRouting): MoeBlockOutRef {
  const G = Wr.length / H;
  const D = att.length / (T * heads);
  const routing = routeRef(routerLogitsRef(h, Wr, { T, H, E: G }), T, G, { topK: r.topK });
  const y = headGateRef(att, routing.topIds, routing.topW, T, heads, D, routing.kMax, heads / G, r.scale);
  return { y, routing, aux: auxLossRef(routing.probs, routing.topIds, T, G, routing.kMax).loss, margin: marginRef(routing.probs, T, G, r.topK) };
}

/** Each token's selected experts as a sorted list (the selection, whatever order top-k ranked it in). */
export function selectionRef(routing: RoutingRef, T: number): string[] {
  return Array.from({ length: T }, (_, t) => Array.from(routing.topIds.subarray(t * routing.kMax, (t + 1) * routing.kMax)).sort((a, b) => a - b).join(','));
}

export interface MoeModelOutRef {
  logits: Float64Array;   // [T, vocab]
  /** per MoE layer: L_aux, the selection per token and the selection margin */
  layers: Map<number, LayerRoutingRef>;
  /** the same per attention MoE layer */
  attnLayers: Map<number, LayerRoutingRef>;
}

export interface LayerRoutingRef {
  aux: number;
  selection: string[];
  margin: number;
}

/**
 * llamaForwardRef with the FFN of the layers in `moe` replaced by moeBlockRef over the weights named as
 * params.ts's moeParamNames (model.layers.L.mlp.gate.weight, …experts.gate_proj.weight, …shared_expert.*),
 * and the attention of the layers in `attn` gated by attentionMoeRef over model.layers.L.self_attn.gate.weight.
 * One causal prefill of `ids` from position 0.
 */
export function moeModelForwardRef(
  c: ModelConfig, weights: Map<string, Float32Array>, moe: ReadonlyMap<number, MoeRouting>, ids: number[], attn: ReadonlyMap<number, AttentionRouting> = new Map(),
): MoeModelOutRef {
  const T = ids.length;
  const w = (name: string): Float32Array => {
    const a = weights.get(name);
    if (!a) throw new Error(`moeModelForwardRef: missing weight ${name}`);
    return a;
  };
  const layers: MoeModelOutRef['layers'] = new Map();
  const attnLayers: MoeModelOutRef['attnLayers'] = new Map();
  const routed = (b: MoeBlockOutRef): LayerRoutingRef => ({ aux: b.aux, selection: selectionRef(b.routing, T), margin: b.margin });
  const attnGate = (l: number, h: Float64Array, att: Float64Array) => {
    const r = attn.get(l);
    if (!r) return undefined;
    const b = attentionMoeRef(h, att, w(`model.layers.${l}.self_attn.gate.weight`), T, c.dim, c.nHeads, r);
    attnLayers.set(l, routed(b));
    return b.y;
  };
  const logits = llamaForwardRef(c, weights, ids, (l, h) => {
    const r = moe.get(l);
    if (!r) return undefined;
    const p = `model.layers.${l}.mlp`;
    const b = moeBlockRef(h, {
      Wr: w(`${p}.gate.weight`),
      Wg: w(`${p}.experts.gate_proj.weight`), Wu: w(`${p}.experts.up_proj.weight`), Wd: w(`${p}.experts.down_proj.weight`),
      bias: weights.get(`${p}.experts.down_proj.bias`),
      shared: weights.has(`${p}.shared_expert.down_proj.weight`) ? {
        Sg: w(`${p}.shared_expert.gate_proj.weight`), Su: w(`${p}.shared_expert.up_proj.weight`), Sd: w(`${p}.shared_expert.down_proj.weight`),
      } : undefined,
    }, T, c.dim, r);
    layers.set(l, routed(b));
    return b.y;
  }, attnGate);
  return { logits, layers, attnLayers };
}
