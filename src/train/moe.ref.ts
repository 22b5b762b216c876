// float64 reference of the training MoE block (moe.ts) and of a LLaMA model whose layers may be such blocks:
// the ground truth of moe.check.ts. Built from the references of the parts (src/model/llama.ref.ts,
// src/ops/moe.ref.ts): every expert on every token weighted by the routing mask, so no permutation is
// involved, and the load-balancing loss L_aux = E·Σ_i f_i·P_i (Switch Transformer eq. 4–6).
import type { ModelConfig } from '../model/config.ts';
import { attention, matvec, rmsnorm, rope } from '../model/llama.ref.ts';
import { auxLossRef, expertOutputsRef, mixRef, routeRef, routerLogitsRef, routingMaskRef, type RoutingRef } from '../ops/moe.ref.ts';
import { denseFfnRef } from '../ops/moe-train.ref.ts';
import type { MoeRouting } from './moe.ts';

/** A block's weights: Wr [E, H], Wg/Wu [E, I, H], Wd [E, H, I]; shared expert Sg/Su [S, H], Sd [H, S]. */
export interface MoeBlockRef {
  Wr: ArrayLike<number>;
  Wg: ArrayLike<number>;
  Wu: ArrayLike<number>;
  Wd: ArrayLike<number>;
  shared?: { Sg: ArrayLike<number>; Su: ArrayLike<number>; Sd: ArrayLike<number> };
}

export interface MoeBlockOutRef {
  y: Float64Array;        // [T, H]
  routing: RoutingRef;
  /** L_aux of the call (computed whether or not α is set) */
  aux: number;
  /** the smallest p_(k) − p_(k+1) over tokens: how far the top-k selection is from changing (∞ when k = E) */
  margin: number;
}

/** y = Σ_{e ∈ top-k(softmax(x·Wrᵀ/τ))} w_e·expert_e(x) (+ shared(x)). x: [T, H]. */
export function moeBlockRef(x: ArrayLike<number>, w: MoeBlockRef, T: number, H: number, r: MoeRouting): MoeBlockOutRef {
  const E = w.Wr.length / H;
  const I = w.Wg.length / (E * H);
  const d = { T, H, I, E };
  const z = routerLogitsRef(x, w.Wr, d).map((v) => v / (r.temperature ?? 1));
  const routing = routeRef(z, T, E, { topK: r.topK, normTopK: r.normTopK });
  const y = mixRef(routingMaskRef(routing.topIds, routing.topW, T, E, routing.kMax), expertOutputsRef(x, w.Wg, w.Wu, w.Wd, d), T, E, H);
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
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize, normEps, ropeTheta, ropeStyle } = c;
  const T = ids.length;
  const qDim = nHeads * headDim, kvDim = nKvHeads * headDim;
  const w = (name: string): Float32Array => {
    const a = weights.get(name);
    if (!a) throw new Error(`moeModelForwardRef: missing weight ${name}`);
    return a;
  };
  const bias = (name: string) => (c.qkvBias ? w(name) : undefined);
  const row = (a: Float64Array, t: number, n: number) => a.subarray(t * n, (t + 1) * n);
  const x = new Float64Array(T * dim);
  const xb = new Float64Array(T * dim);
  const q = new Float64Array(T * qDim), k = new Float64Array(T * kvDim), v = new Float64Array(T * kvDim);
  const attn = new Float64Array(T * qDim);
  const layers: MoeModelOutRef['layers'] = new Map();

  const embed = w('model.embed_tokens.weight');
  for (let t = 0; t < T; t++) for (let i = 0; i < dim; i++) x[t * dim + i] = embed[ids[t] * dim + i];

  for (let l = 0; l < nLayers; l++) {
    const p = `model.layers.${l}`;
    // attention: x = x + o_proj(attention(rope(q_proj(h)), rope(k_proj(h)), v_proj(h))), h = input_layernorm(x)
    for (let t = 0; t < T; t++) {
      const h = row(xb, t, dim);
      rmsnorm(h, row(x, t, dim), w(`${p}.input_layernorm.weight`), normEps);
      matvec(row(q, t, qDim), h, w(`${p}.self_attn.q_proj.weight`), qDim, dim, bias(`${p}.self_attn.q_proj.bias`));
      matvec(row(k, t, kvDim), h, w(`${p}.self_attn.k_proj.weight`), kvDim, dim, bias(`${p}.self_attn.k_proj.bias`));
      matvec(row(v, t, kvDim), h, w(`${p}.self_attn.v_proj.weight`), kvDim, dim, bias(`${p}.self_attn.v_proj.bias`));
      rope(row(q, t, qDim), nHeads, headDim, t, ropeTheta, ropeStyle);
      rope(row(k, t, kvDim), nKvHeads, headDim, t, ropeTheta, ropeStyle);
    }
    attention(attn, q, k, v, T, nHeads, nKvHeads, headDim);
    for (let t = 0; t < T; t++) {
      const o = row(xb, t, dim);
      matvec(o, row(attn, t, qDim), w(`${p}.self_attn.o_proj.weight`), dim, qDim);
      for (let i = 0; i < dim; i++) x[t * dim + i] += o[i];
    }
    // FFN on h = post_attention_layernorm(x): dense SwiGLU or the MoE block
    for (let t = 0; t < T; t++) rmsnorm(row(xb, t, dim), row(x, t, dim), w(`${p}.post_attention_layernorm.weight`), normEps);
    const r = moe.get(l);
    let y: Float64Array;
    if (r) {
      const sh = weights.has(`${p}.mlp.shared_expert.down_proj.weight`);
      const b = moeBlockRef(xb, {
        Wr: w(`${p}.mlp.gate.weight`),
        Wg: w(`${p}.mlp.experts.gate_proj.weight`), Wu: w(`${p}.mlp.experts.up_proj.weight`), Wd: w(`${p}.mlp.experts.down_proj.weight`),
        shared: sh ? {
          Sg: w(`${p}.mlp.shared_expert.gate_proj.weight`), Su: w(`${p}.mlp.shared_expert.up_proj.weight`), Sd: w(`${p}.mlp.shared_expert.down_proj.weight`),
        } : undefined,
      }, T, dim, r);
      y = b.y;
      layers.set(l, { aux: b.aux, selection: selectionRef(b.routing, T), margin: b.margin });
    } else {
      y = denseFfnRef(xb, w(`${p}.mlp.gate_proj.weight`), w(`${p}.mlp.up_proj.weight`), w(`${p}.mlp.down_proj.weight`), T, dim, hiddenDim);
    }
    for (let i = 0; i < x.length; i++) x[i] += y[i];
  }

  // logits = lm_head(norm(x)), lm_head = embed_tokens when tied
  const lmHead = w(c.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  const logits = new Float64Array(T * vocabSize);
  for (let t = 0; t < T; t++) {
    const h = row(xb, t, dim);
    rmsnorm(h, row(x, t, dim), w('model.norm.weight'), normEps);
    matvec(row(logits, t, vocabSize), h, lmHead, vocabSize, dim);
  }
  return { logits, layers };
}
