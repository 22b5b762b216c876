// The Mixture-of-Experts FFN block as a training op on the autograd tape (tape.ts), routed as HF
// modeling_qwen2_moe.py's Qwen2MoeSparseMoeBlock and the inference block (src/moe/block.ts):
//
//   z = (x·Wrᵀ + ε ⊙ (softplus(x·Wnᵀ) + eps)) / τ   router logits (mlp.gate), τ the softmax temperature;
//                                                  the noise term only in a noisy-gated layer's training
//                                                  sequences (Shazeer et al. 2017 §3.1; LLaMA-MoE, DIVE's
//                                                  fresh routers): ε ~ N(0, 1) drawn from (seed, sequence key)
//   p = softmax(z)                                 over the E experts
//   S = top-k(p),  w_e = p_e (/ Σ_{S} p when normTopK)   k = E: every expert active (DIVE stage 1:
//                                                  "all experts activated … softmax with a temperature t")
//   y = Σ_{e ∈ S} w_e · (Wd_e (silu(Wg_e x) ⊙ Wu_e x) + b_e)      b_e: an optional constant down_proj bias
//                                                  (DIVE's FLAP-pruned experts), its gradient only to w_e
//
// Backward (src/ops/moe.ts, moe-train.ts kernels): through the combine to w and to each slot's expert
// output; w → z through the renormalisation and the softmax (the top-k selection itself is piecewise
// constant and gets no gradient, as usual), z → Wr and x (and through the noise's scale to Wn and x); the experts → Wg, Wu, Wd and x (the gate‖up
// input gradient gathered back through the permutation).
// Load balancing, per layer (LLaMA-MoE v2 trains with a layer-wise balance loss): the Switch Transformer's
// L_aux = E·Σ_i f_i·P_i (arXiv 2101.03961 eq. 4–6; f_i the share of assignments routed to expert i, held
// constant; P_i the mean of p_i), added to the objective as scale·α·L_aux, its gradient through P_i.
// The shared expert of a residual MoE is a dense SwiGLU composed from ops.ts by the caller (llama-train.ts).
// LoRA on the routed experts (Hu et al. 2021, arXiv:2106.09685) is one adapter per expert, merged into the
// stacked weight before the grouped GEMMs (loraMerge): W'_e = W_e + s·B_e·A_e, whose backward is
// dB_e = s·dW'_e·A_eᵀ, dA_e = s·B_eᵀ·dW'_e. The merge does E·r multiply-adds per weight element where the
// tokens' GEMMs do T·k, so it is cheap once a sequence routes more assignments than E·r.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { Rng } from '../data/rng.ts';
import { add } from '../ops/elementwise.ts';
import { matmul } from '../ops/matmul.ts';
import {
  MAX_TOP_K, moeAuxLoss, moeCombine, moeCombineBackward, moeNoisyLogits, moeNoisyLogitsBackward, moePermute, moeRoute, moeRouterBackward, type NoisyGate,
} from '../ops/moe.ts';
import { moeExpertBias, moeExpertBiasBackward } from '../ops/moe-bias.ts';
import { moeExpertsDgu, moeExpertsDownGrad, moeExpertsGateUpGrad, moeExpertsInputGrad, moeExpertsTrain } from '../ops/moe-train.ts';
import type { LoraAdapter, LoraOptions } from './lora.ts';
import { globMatch, type ParamSet } from './params.ts';
import type { Tape, Var } from './tape.ts';

/** How a MoE layer routes while it trains. */
export interface MoeRouting {
  /** experts per token, 1..min(8, E); E makes every expert active */
  topK: number;
  /** renormalise the selected weights to sum to 1 (HF norm_topk_prob) */
  normTopK?: boolean;
  /** τ of p = softmax(z / τ); default 1 (DIVE stage 1 sharpens it: 0.05 for 1 of 8 experts) */
  temperature?: number;
  /** α of the layer's load-balancing term α·L_aux; absent or 0: none */
  auxCoef?: number;
  /**
   * Noisy top-k gating while training: the noise floor `epsilon` (LLaMA-MoE's noise_epsilon) and a seed; the
   * layer's weights then include the noise weights Wn (mlp.gate.weight_noise.weight). Sequences without a
   * key (evaluation) route without noise.
   */
  noise?: { epsilon: number; seed: number };
}

/** The routed experts' weights as tape inputs (stacked per expert, HF out×in layout within each). */
export interface MoeExperts {
  /** the router, mlp.gate.weight: [E, H] */
  router: Var;
  /** gate_proj Wg: [E, I, H] */
  gate: Var;
  /** up_proj Wu: [E, I, H] */
  up: Var;
  /** down_proj Wd: [E, H, I] */
  down: Var;
  /** each expert's down_proj bias b_e: [E, H], a constant (FLAP's compensation stays fixed while DIVE retrains) */
  bias?: Tensor;
  /** the noisy gate's Wn, mlp.gate.weight_noise.weight: [E, H] (routing.noise) */
  noise?: Var;
}

export interface MoeOpOptions extends MoeRouting {
  /** multiplies α (e.g. 1 / sequences per optimizer step); default 1 */
  auxScale?: number;
  /** where L_aux of this call goes (element `offset` of `loss`), when auxCoef is set */
  auxOut?: { loss: Tensor; offset: number };
  /** the training sequence's key (its index in the stream): with `noise`, ε is drawn from (noise.seed, key) */
  noiseKey?: number;
}

/**
 * Checks a layer's routing against its E experts; `where` names the layer in the error
 * (e.g. model.layers.1.mlp).
 */
export function checkMoeRouting(where: string, E: number, r: MoeRouting): void {
  const bad = (msg: string) => {
    throw new Error(`${where}: ${msg}`);
  };
  const kMax = Math.min(MAX_TOP_K, E);
  if (!Number.isInteger(r.topK) || r.topK < 1 || r.topK > kMax) bad(`topK must be an integer in [1, ${kMax}] for ${E} experts, got ${r.topK}`);
  const tau = r.temperature ?? 1;
  if (!Number.isFinite(tau) || tau <= 0) bad(`temperature must be a finite number > 0, got ${r.temperature}`);
  const a = r.auxCoef ?? 0;
  if (!Number.isFinite(a) || a < 0) bad(`auxCoef must be a finite number ≥ 0, got ${r.auxCoef}`);
  if (r.noise && !(Number.isFinite(r.noise.epsilon) && r.noise.epsilon >= 0)) bad(`noise.epsilon must be a finite number ≥ 0, got ${r.noise.epsilon}`);
}

/** The routed MoE block: x [T, H] → y [T, H] (the shared expert, if any, is the caller's to add). */
export function moe(t: Tape, x: Var, w: MoeExperts, o: MoeOpOptions): Var {
  const [T, H] = x.shape;
  const E = w.router.shape[0];
  const invTau = 1 / (o.temperature ?? 1);
  const alpha = (o.auxCoef ?? 0) * (o.auxScale ?? 1);
  const experts = { gate_proj: w.gate.value, up_proj: w.up.value, down_proj: w.down.value };
  const y = t.output([T, H], 'moe', x, w.router, w.gate, w.up, w.down, ...(w.noise ? [w.noise] : []));

  // z = x·Wrᵀ/τ (+ the gate's noise) → p, top-k, w → slots grouped by expert → experts → y = Σ w·expert(x)
  const z = matmul(x.value, w.router.value, { transB: true, alpha: invTau });
  const noisy = noisyGate(t, x, w, o, E);
  if (noisy) moeNoisyLogits(z, noisy.m, noisy.normals, noisy.gate);
  const r = moeRoute(z, { topK: o.topK, normTopK: o.normTopK });
  z.release();
  const perm = moePermute(r.topIds, E);
  perm.blockOffsets.release();   // the permutation's scratch
  const ex = moeExpertsTrain(x.value, experts, perm);
  moeCombine(ex.ys, r.topW, perm.tokenSlot, y.value);
  if (w.bias) moeExpertBias(y.value, w.bias, r.topIds, r.topW);
  if (o.auxCoef && o.auxOut) readAuxLoss(r, o.auxOut);

  t.record([y], () => {
    const { dTopW, dys } = moeCombineBackward(y.grad!, ex.ys, r.topW, perm);
    if (w.bias) moeExpertBiasBackward(y.grad!, w.bias, r.topIds, dTopW);
    // w → z (+ α·∂L_aux/∂z) → z = x·Wrᵀ/τ: dWr = dzᵀ·x/τ, dx = dz·Wr/τ
    if (x.requiresGrad || w.router.requiresGrad || w.noise?.requiresGrad) {
      const dz = moeRouterBackward(dTopW, r.probs, r.topIds, { normTopK: o.normTopK });
      if (alpha) addAuxGrad(r, dz, alpha);
      t.grads([w.router], ([d], acc) => matmul(dz, x.value, { transA: true, alpha: invTau, out: d, accumulate: acc }), true);
      t.grads([x], ([d], acc) => matmul(dz, w.router.value, { alpha: invTau, out: d, accumulate: acc }), true);
      if (noisy) {
        // m = x·Wnᵀ: dWn = dmᵀ·x, dx += dm·Wn
        const dm = moeNoisyLogitsBackward(dz, noisy.m, noisy.normals, noisy.gate);
        t.grads([w.noise!], ([d], acc) => matmul(dm, x.value, { transA: true, out: d, accumulate: acc }), true);
        t.grads([x], ([d], acc) => matmul(dm, w.noise!.value, { out: d, accumulate: acc }), true);
        dm.release();
      }
      dz.release();
    }
    dTopW.release();
    // the experts: dys → dWd; dys → (dg, du) → dWg, dWu and dx
    t.grads([w.down], ([d]) => moeExpertsDownGrad(x.value, experts, perm, ex, dys, d));
    if (x.requiresGrad || w.gate.requiresGrad || w.up.requiresGrad) {
      const dgu = moeExpertsDgu(x.value, experts, perm, ex, dys);
      t.grads([w.gate, w.up], ([dWg, dWu]) => moeExpertsGateUpGrad(x.value, experts, perm, dgu, { dWg, dWu }));
      t.grads([x], ([d]) => moeExpertsInputGrad(x.value, experts, perm, dgu, { dx: d }));
      dgu.release();
    }
    dys.release();
  }, [r.probs, r.topIds, r.topW, perm.slotToken, perm.tokenSlot, perm.expertOffsets, perm.tileOffsets, ex.gu, ex.h, ex.ys, ...(noisy ? [noisy.m, noisy.normals] : [])]);
  return y;
}

/** Writes L_aux (Switch Transformer eq. 4) of a routing to out.loss at out.offset: the balance loss's reading. */
export function readAuxLoss(r: { probs: Tensor; topIds: Tensor }, out: { loss: Tensor; offset: number }): void {
  const aux = moeAuxLoss(r.probs, r.topIds);
  r.probs.gpu.copy(aux.loss, out.loss, out.offset);
  aux.loss.release();
  aux.f.release();
}

/** dz += α·∂L_aux/∂z, the balance loss's gradient added to the router logits' (f_i held constant). */
export function addAuxGrad(r: { probs: Tensor; topIds: Tensor }, dz: Tensor, alpha: number): void {
  const aux = moeAuxLoss(r.probs, r.topIds, { dLogits: dz, coef: alpha });
  aux.loss.release();
  aux.f.release();
}

/** ε [T, E] ~ N(0, 1) of the sequence `key` of a noisy gate seeded `seed` (the references draw the same). */
export function gateNormals(seed: number, key: number, T: number, E: number): Float32Array {
  return new Rng((Math.imul(seed, 0x9e3779b1) + key) >>> 0).normals(T * E);
}

/**
 * The noise of a noisy-gated layer's training sequence: m = x·Wnᵀ and ε [T, E] drawn from (seed, key);
 * null when the layer has no noise or the sequence no key (evaluation routes as served).
 */
function noisyGate(t: Tape, x: Var, w: MoeExperts, o: MoeOpOptions, E: number): { m: Tensor; normals: Tensor; gate: NoisyGate } | null {
  if (!o.noise || o.noiseKey === undefined) return null;
  if (!w.noise) throw new Error('moe: routing.noise needs the noise weights Wn (mlp.gate.weight_noise.weight) among the experts\' weights');
  const T = x.shape[0];
  return {
    m: matmul(x.value, w.noise.value, { transB: true }),
    normals: t.gpu.upload(gateNormals(o.noise.seed, o.noiseKey, T, E), [T, E], 'moe.noise'),
    gate: { epsilon: o.noise.epsilon, invTau: 1 / (o.temperature ?? 1) },
  };
}

// ------------------------------------------------------------------------------------ LoRA on experts

/** Whether a LoRA target names `module`, as lora.ts reads targets (PEFT's suffix rule, or a glob with '*'). */
export function loraTargets(module: string, target: string): boolean {
  return target.includes('*') ? globMatch(target, module) : module === target || module.endsWith(`.${target}`);
}

/**
 * Adds one adapter per expert to each stacked expert weight `${module}.weight` [E, out, in] in `modules`:
 * `${module}.lora_A.weight` [E, r, in] drawn U(−1/√in, 1/√in) and `${module}.lora_B.weight` [E, out, r]
 * zero (lora.ts's initialisation, per expert), from a seeded Rng (seed + 1: lora.ts draws from seed).
 */
export function addExpertLora(gpu: Gpu, params: ParamSet, modules: readonly string[], o: LoraOptions): Map<string, LoraAdapter> {
  if (!Number.isInteger(o.rank) || o.rank < 1) throw new Error(`${o.field}: LoRA rank must be an integer ≥ 1, got ${o.rank}`);
  for (const m of modules) {
    const [, outDim, inDim] = params.get(`${m}.weight`).value.shape;
    if (o.rank > Math.min(outDim, inDim)) throw new Error(`${o.field}: rank ${o.rank} exceeds ${m}'s per-expert dimensions [${outDim}, ${inDim}]`);
  }
  const rng = new Rng(o.seed + 1);
  const out = new Map<string, LoraAdapter>();
  for (const m of modules) {
    const [E, outDim, inDim] = params.get(`${m}.weight`).value.shape;
    const bound = 1 / Math.sqrt(inDim);
    const A = params.add(`${m}.lora_A.weight`, gpu.upload(rng.uniforms(E * o.rank * inDim, -bound, bound), [E, o.rank, inDim], `${m}.lora_A`));
    const B = params.add(`${m}.lora_B.weight`, gpu.upload(new Float32Array(E * outDim * o.rank), [E, outDim, o.rank], `${m}.lora_B`));
    out.set(m, { A, B, scale: o.alpha / o.rank });
  }
  return out;
}

/** W' = W + s·B·A per expert: W [E, out, in], A [E, r, in], B [E, out, r]. */
export function loraMerge(t: Tape, W: Var, lora: { A: Var; B: Var; scale: number }): Var {
  const { A, B, scale } = lora;
  const y = t.output(W.shape, 'loraMerge', W, A, B);
  t.gpu.copy(W.value, y.value);
  matmul(B.value, A.value, { alpha: scale, accumulate: true, out: y.value });
  t.record([y], () => {
    const d = y.grad!;
    t.grads([W], ([dW], acc) => (acc ? add(dW, d, 'inplace') : t.gpu.copy(d, dW)), true);
    t.grads([B], ([dB], acc) => matmul(d, A.value, { transB: true, alpha: scale, out: dB, accumulate: acc }), true);
    t.grads([A], ([dA], acc) => matmul(B.value, d, { transA: true, alpha: scale, out: dA, accumulate: acc }), true);
  });
  return y;
}
