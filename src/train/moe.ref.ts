// float64 reference of the training MoE block (moe.ts) and of a LLaMA model whose layers may be such blocks:
// the ground truth of moe.check.ts. Built from the references of the parts (src/model/llama.ref.ts,
// src/ops/moe.ref.ts): every expert on every token weighted by the routing mask, so no permutation is
// involved, and the load-balancing loss L_aux = E·Σ_i f_i·P_i (Switch Transformer eq. 4–6).
import type { ModelConfig } from '../model/config.ts';
import { llamaForwardRef } from '../model/llama.ref.ts';
import { auxLossRef, expertOutputsRef, mixRef, noisyLogitsRef, routeRef, routerLogitsRef, routingMaskRef, type RoutingRef } from '../ops/moe.ref.ts';
import { denseFfnRef } from '../ops/moe-train.ref.ts';
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
  let margin = Infinity;
  if (r.topK < E) {
    for (let t = 0; t < T; t++) {
      const p = Array.from(routing.probs.subarray(t * E, (t + 1) * E)).sort((a, b) => b - a);
      margin = Math.min(margin, p[r.topK - 1] - p[r.topK]);
    }
  }
  return { y, routing, aux: auxLossRef(routing.probs, routing.topIds, T, E, routing.kMax).loss, margin };
}

/** Each token's selected experts as a sorted list (the selection, whatever order top-k ranked it in). */
export function selectionRef(routing: RoutingRef, T: number): string[] {
  return Array.from({ length: T }, (_, t) => Array.from(routing.topIds.subarray(t * routing.kMax, (t + 1) * routing.kMax)).sort((a, b) => a - b).join(','));
}

export interface MoeModelOutRef {
  logits: Float64Array;   // [T, vocab]
  /** per MoE layer: L_aux, the selection per token and the selection margin */
  layers: Map<number, { aux: number; selection: string[]; margin: number }>;
}

/**
 * llamaForwardRef with the FFN of the layers in `moe` replaced by moeBlockRef over the weights named as
 * params.ts's moeParamNames (model.layers.L.mlp.gate.weight, …experts.gate_proj.weight, …shared_expert.*).
 * One causal prefill of `ids` from position 0.
 */
export function moeModelForwardRef(c: ModelConfig, weights: Map<string, Float32Array>, moe: ReadonlyMap<number, MoeRouting>, ids: number[]): MoeModelOutRef {
  const T = ids.length;
  const w = (name: string): Float32Array => {
    const a = weights.get(name);
    if (!a) throw new Error(`moeModelForwardRef: missing weight ${name}`);
    return a;
  };
  const layers: MoeModelOutRef['layers'] = new Map();
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
    layers.set(l, { aux: b.aux, selection: selectionRef(b.routing, T), margin: b.margin });
    return b.y;
  });
  return { logits, layers };
}
