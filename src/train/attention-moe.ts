// LLaMA-MoE v2's attention MoE (arXiv 2411.15708) as a training op on the autograd tape (tape.ts), routed as
// the inference gate (src/methods/llama-moe-v2/attention.ts): the experts are the KV head groups, a router on
// the attention input h (input_layernorm's output) picks the top-k per token, and
//   z = h·Wrᵀ,  p = softmax(z) over the G groups,  S = top-k(p)
//   out[t, head, :] = s · p_g · att[t, head, :]   for the head's group g ∈ S, else 0      (s = G: dense when k = G)
// before o_proj, so o_proj(out) = Σ_{g ∈ S} s·p_g·o_proj_g(attn_g).
// Backward: the gate is linear in att, so dAtt is the gate applied to dOut; dTopW (ops/head-gate.ts) → dz
// through the softmax (moeRouterBackward, no renormalisation), plus α·∂L_aux/∂z, the layer's own balance loss
// (Switch Transformer eq. 4–6 over the groups, as the MLP MoE's in moe.ts); dWr = dzᵀ·h, dh = dz·Wr.
import type { Tensor } from '../gpu/tensor.ts';
import { headGate, headGateWeightGrad } from '../ops/head-gate.ts';
import { matmul } from '../ops/matmul.ts';
import { MAX_TOP_K, moeRoute, moeRouterBackward } from '../ops/moe.ts';
import { addAuxGrad, readAuxLoss } from './moe.ts';
import type { Tape, Var } from './tape.ts';

/** How an attention MoE layer routes while it trains. */
export interface AttentionRouting {
  /** head groups per token, 1..min(8, G) */
  topK: number;
  /** s; the inference gate's default is G */
  scale: number;
  /** α of the layer's balance term α·L_aux; absent or 0: none */
  auxCoef?: number;
}

export interface AttentionMoeOptions extends AttentionRouting {
  /** query heads of att (G = the router's rows; heads / G per group) */
  heads: number;
  /** multiplies α (e.g. 1 / sequences per optimizer step); default 1 */
  auxScale?: number;
  /** where L_aux of this call goes (element `offset` of `loss`), when auxCoef is set */
  auxOut?: { loss: Tensor; offset: number };
}

/** Checks a layer's attention routing against its G groups; `where` names the layer in the error. */
export function checkAttentionRouting(where: string, G: number, heads: number, r: AttentionRouting): void {
  const bad = (msg: string) => {
    throw new Error(`${where}: ${msg}`);
  };
  if (!Number.isInteger(G) || G < 1 || heads % G !== 0) bad(`the router's ${G} rows must divide the ${heads} query heads (one row per KV head group)`);
  const kMax = Math.min(MAX_TOP_K, G);
  if (!Number.isInteger(r.topK) || r.topK < 1 || r.topK > kMax) bad(`topK must be an integer in [1, ${kMax}] for ${G} head groups, got ${r.topK}`);
  if (!Number.isFinite(r.scale)) bad(`scale must be a finite number, got ${r.scale}`);
  const a = r.auxCoef ?? 0;
  if (!Number.isFinite(a) || a < 0) bad(`auxCoef must be a finite number ≥ 0, got ${r.auxCoef}`);
}

/** The gated attention output: h [T, dim] (the router's input), att [T, heads·D] → [T, heads·D]. */
export function attentionMoe(t: Tape, h: Var, att: Var, router: Var, o: AttentionMoeOptions): Var {
  const T = att.shape[0];
  const G = router.shape[0];
  const D = att.shape[1] / o.heads;
  const gate = { headsPerGroup: o.heads / G, scale: o.scale };
  const alpha = (o.auxCoef ?? 0) * (o.auxScale ?? 1);
  const y = t.output(att.shape, 'attention_moe', h, att, router);
  const att3 = att.value.view([T, o.heads, D]);

  const z = matmul(h.value, router.value, { transB: true });
  const r = moeRoute(z, { topK: o.topK });
  z.release();
  headGate(att3, r.topIds, r.topW, { ...gate, out: y.value.view([T, o.heads, D]) });
  if (o.auxCoef && o.auxOut) readAuxLoss(r, o.auxOut);

  t.record([y], () => {
    const dy3 = y.grad!.view([T, o.heads, D]);
    t.grads([att], ([d]) => headGate(dy3, r.topIds, r.topW, { ...gate, out: d.view([T, o.heads, D]) }));
    if (!h.requiresGrad && !router.requiresGrad) return;
    const dTopW = headGateWeightGrad(att3, dy3, r.topIds, gate);
    const dz = moeRouterBackward(dTopW, r.probs, r.topIds);
    dTopW.release();
    if (alpha) addAuxGrad(r, dz, alpha);
    t.grads([router], ([d], acc) => matmul(dz, h.value, { transA: true, out: d, accumulate: acc }), true);
    t.grads([h], ([d], acc) => matmul(dz, router.value, { out: d, accumulate: acc }), true);
    dz.release();
  }, [r.probs, r.topIds, r.topW]);
  return y;
}
