// float64 references for moe-train.ts: the expert forward and backward over the expert-grouped slots (the
// input gradient dx included),
// the distillation loss L = L_mse + α·‖L_mse‖·L_aux (LaDiMo, arXiv 2408.04278 §4.2–4.3; ‖L_mse‖ detached),
// one whole distillation step (forward, loss, backward, Adam), and the dense SwiGLU FFN with its
// contiguous split into experts (LaDiMo §4.1). Plain loops, no GPU ordering tricks.
import type { AdamOptions } from './optim.ts';
import type { RoutingOptions } from './moe.ts';
import { adamRef } from './optim.ref.ts';
import {
  auxLossRef, combineBackwardRef, combineRef, permuteRef, routeRef, routerBackwardRef, routerLogitsRef,
  type MoeDims, type PermutationRef, type RoutingRef,
} from './moe.ref.ts';

export interface ExpertWeightsRef {
  Wg: ArrayLike<number>;   // [E, I, H]
  Wu: ArrayLike<number>;   // [E, I, H]
  Wd: ArrayLike<number>;   // [E, H, I]
}

export interface MoeWeightsRef extends ExpertWeightsRef {
  Wr: ArrayLike<number>;   // [E, H]
}

type SlotPermutation = Pick<PermutationRef, 'slotToken' | 'expertOffsets'>;

const silu = (g: number) => g / (1 + Math.exp(-g));
const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));

/** The expert of each slot below expertOffsets[E]. */
function slotExperts(perm: SlotPermutation, E: number): number[] {
  const of: number[] = [];
  for (let e = 0; e < E; e++) for (let s = perm.expertOffsets[e]; s < perm.expertOffsets[e + 1]; s++) of[s] = e;
  return of;
}

/** h = silu(g) ⊙ u row by row from gu [slots, 2I]. */
export function swigluRowsRef(gu: ArrayLike<number>, slots: number, I: number): Float64Array {
  const h = new Float64Array(slots * I);
  for (let s = 0; s < slots; s++) for (let i = 0; i < I; i++) h[s * I + i] = silu(gu[s * 2 * I + i]) * gu[s * 2 * I + I + i];
  return h;
}

/** ys[s] = h[s]·Wd_eᵀ for the used slots: [slots, H]. */
export function downSlotsRef(h: ArrayLike<number>, Wd: ArrayLike<number>, perm: SlotPermutation, d: MoeDims, slots: number): Float64Array {
  const { H, I, E } = d;
  const ys = new Float64Array(slots * H);
  slotExperts(perm, E).forEach((e, s) => {
    for (let c = 0; c < H; c++) {
      let acc = 0;
      for (let i = 0; i < I; i++) acc += h[s * I + i] * Wd[(e * H + c) * I + i];
      ys[s * H + c] = acc;
    }
  });
  return ys;
}

/**
 * Per used slot s of expert e: gu[s] = x[tok(s)]·Wg_eᵀ ‖ x[tok(s)]·Wu_eᵀ ([slots, 2I]), h = silu(g) ⊙ u
 * ([slots, I]), ys = h·Wd_eᵀ ([slots, H]). Unused rows are 0.
 */
export function expertsTrainRef(
  x: ArrayLike<number>, w: ExpertWeightsRef, perm: SlotPermutation, d: MoeDims, slots: number,
): { gu: Float64Array; h: Float64Array; ys: Float64Array } {
  const { H, I, E } = d;
  const gu = new Float64Array(slots * 2 * I);
  slotExperts(perm, E).forEach((e, s) => {
    const t = perm.slotToken[s];
    for (let i = 0; i < I; i++) {
      let g = 0;
      let u = 0;
      for (let c = 0; c < H; c++) {
        g += x[t * H + c] * w.Wg[(e * I + i) * H + c];
        u += x[t * H + c] * w.Wu[(e * I + i) * H + c];
      }
      gu[s * 2 * I + i] = g;
      gu[s * 2 * I + I + i] = u;
    }
  });
  const h = swigluRowsRef(gu, slots, I);
  return { gu, h, ys: downSlotsRef(h, w.Wd, perm, d, slots) };
}

/**
 * Backward of expertsTrainRef given dys [slots, H]: dh = dys·Wd_e, (dg, du) by the SwiGLU backward
 * (dgu [slots, 2I]), dWd_e = Σ_s dys[s]ᵀ⊗h[s], dWg_e = Σ_s dg[s]ᵀ⊗x[tok(s)], dWu_e likewise.
 */
export function expertsBackwardRef(
  x: ArrayLike<number>, Wd: ArrayLike<number>, perm: SlotPermutation, gu: ArrayLike<number>, h: ArrayLike<number>,
  dys: ArrayLike<number>, d: MoeDims, slots: number,
): { dh: Float64Array; dgu: Float64Array; dWg: Float64Array; dWu: Float64Array; dWd: Float64Array } {
  const { H, I, E } = d;
  const dh = new Float64Array(slots * I);
  const dgu = new Float64Array(slots * 2 * I);
  const dWg = new Float64Array(E * I * H);
  const dWu = new Float64Array(E * I * H);
  const dWd = new Float64Array(E * H * I);
  slotExperts(perm, E).forEach((e, s) => {
    const t = perm.slotToken[s];
    for (let i = 0; i < I; i++) {
      let acc = 0;
      for (let c = 0; c < H; c++) acc += dys[s * H + c] * Wd[(e * H + c) * I + i];
      dh[s * I + i] = acc;
      const g = gu[s * 2 * I + i];
      const u = gu[s * 2 * I + I + i];
      const sg = sigmoid(g);
      const dg = acc * u * sg * (1 + g * (1 - sg));
      const du = acc * silu(g);
      dgu[s * 2 * I + i] = dg;
      dgu[s * 2 * I + I + i] = du;
      for (let c = 0; c < H; c++) {
        dWg[(e * I + i) * H + c] += dg * x[t * H + c];
        dWu[(e * I + i) * H + c] += du * x[t * H + c];
      }
    }
    for (let c = 0; c < H; c++) for (let i = 0; i < I; i++) dWd[(e * H + c) * I + i] += dys[s * H + c] * h[s * I + i];
  });
  return { dh, dgu, dWg, dWu, dWd };
}

/**
 * ∂L/∂x through the experts: dx[tok(s)] += dg[s]·Wg_e + du[s]·Wu_e over the used slots s of expert e
 * (a scatter over slots, where the GPU gathers per token). dgu: [slots, 2I] → dx [T, H].
 */
export function expertsInputGradRef(
  dgu: ArrayLike<number>, w: Pick<ExpertWeightsRef, 'Wg' | 'Wu'>, perm: SlotPermutation, d: MoeDims,
): Float64Array {
  const { T, H, I, E } = d;
  const dx = new Float64Array(T * H);
  slotExperts(perm, E).forEach((e, s) => {
    const t = perm.slotToken[s];
    for (let i = 0; i < I; i++) {
      const dg = dgu[s * 2 * I + i];
      const du = dgu[s * 2 * I + I + i];
      for (let c = 0; c < H; c++) dx[t * H + c] += dg * w.Wg[(e * I + i) * H + c] + du * w.Wu[(e * I + i) * H + c];
    }
  });
  return dx;
}

/** L_mse = mean((yHat − target)²) and L_tot = L_mse + α·L_mse·L_aux. */
export function distillLossRef(yHat: ArrayLike<number>, target: ArrayLike<number>, aux: number, alpha: number): { mse: number; total: number } {
  let s = 0;
  for (let i = 0; i < yHat.length; i++) s += (yHat[i] - target[i]) ** 2;
  const mse = s / yHat.length;
  return { mse, total: mse + alpha * mse * aux };
}

export interface DistillForwardRef {
  logits: Float64Array;   // [T, E]
  routing: RoutingRef;
  perm: PermutationRef;
  slots: number;          // T·kMax
  gu: Float64Array;       // [slots, 2I]
  h: Float64Array;        // [slots, I]
  ys: Float64Array;       // [slots, H]
  y: Float64Array;        // [T, H]
  aux: { loss: number; f: Float64Array; dLogits: Float64Array };
  mse: number;
  total: number;
}

/** The block forward through the slots (routing → permute → experts → combine) and the losses. */
export function distillForwardRef(
  x: ArrayLike<number>, target: ArrayLike<number>, W: MoeWeightsRef, d: MoeDims, opts: RoutingOptions, alpha: number,
): DistillForwardRef {
  const { T, H, E } = d;
  const logits = routerLogitsRef(x, W.Wr, d);
  const routing = routeRef(logits, T, E, opts);
  const { kMax } = routing;
  const slots = T * kMax;
  const perm = permuteRef(routing.topIds, T, E, kMax);
  const { gu, h, ys } = expertsTrainRef(x, W, perm, d, slots);
  const y = combineRef(ys, routing.topW, perm.tokenSlot, T, H, kMax);
  const aux = auxLossRef(routing.probs, routing.topIds, T, E, kMax);
  const { mse, total } = distillLossRef(y, target, aux.loss, alpha);
  return { logits, routing, perm, slots, gu, h, ys, y, aux, mse, total };
}

export interface DistillGradsRef {
  dWr: Float64Array;   // [E, H]
  dWg: Float64Array;   // [E, I, H]
  dWu: Float64Array;   // [E, I, H]
  dWd: Float64Array;   // [E, H, I]
  dLogits: Float64Array;
  dgu: Float64Array;
}

/**
 * ∂L/∂W of L = L_mse + α·c·L_aux with c = L_mse detached: ∂L/∂ŷ = 2(ŷ − y)/(T·H) → combine backward →
 * router backward + α·c·∂L_aux/∂z → dWr = dLogitsᵀ·x; dys → expert backward.
 */
export function distillGradsRef(
  f: DistillForwardRef, x: ArrayLike<number>, target: ArrayLike<number>, W: MoeWeightsRef, d: MoeDims,
  opts: RoutingOptions, alpha: number,
): DistillGradsRef {
  const { T, H, E } = d;
  const { kMax, probs, topIds, topW } = f.routing;
  const dy = Float64Array.from(f.y, (v, i) => (2 * (v - target[i])) / (T * H));
  const cb = combineBackwardRef(dy, f.ys, topW, f.perm.tokenSlot, T, H, kMax);
  const dLogits = routerBackwardRef(cb.dTopW, probs, topIds, T, E, kMax, Boolean(opts.normTopK));
  for (let i = 0; i < dLogits.length; i++) dLogits[i] += alpha * f.mse * f.aux.dLogits[i];
  const dWr = new Float64Array(E * H);
  for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) for (let c = 0; c < H; c++) dWr[e * H + c] += dLogits[t * E + e] * x[t * H + c];
  const eb = expertsBackwardRef(x, W.Wd, f.perm, f.gu, f.h, cb.dys, d, f.slots);
  return { dWr, dWg: eb.dWg, dWu: eb.dWu, dWd: eb.dWd, dLogits, dgu: eb.dgu };
}

/**
 * The loss whose gradient distillGradsRef gives, for finite differences: L_mse(W) + α·c·L_aux(W) with
 * the coefficient c fixed (the detached ‖L_mse‖) and f of L_aux following the routing (constant near W).
 */
export function distillObjectiveRef(
  x: ArrayLike<number>, target: ArrayLike<number>, W: MoeWeightsRef, d: MoeDims, opts: RoutingOptions, alpha: number, c: number,
): number {
  const f = distillForwardRef(x, target, W, d, opts, alpha);
  return f.mse + alpha * c * f.aux.loss;
}

export interface DistillWeights64 {
  Wr: Float64Array;
  Wg: Float64Array;
  Wu: Float64Array;
  Wd: Float64Array;
}

/** One step in place on W and the Adam moments (t from 1): forward, loss, backward, Adam on all four. */
export function distillStepRef(
  x: ArrayLike<number>, target: ArrayLike<number>, W: DistillWeights64, moments: Record<keyof DistillWeights64, { m: Float64Array; v: Float64Array }>,
  d: MoeDims, opts: RoutingOptions, alpha: number, t: number, adam: AdamOptions,
): { forward: DistillForwardRef; grads: DistillGradsRef } {
  const forward = distillForwardRef(x, target, W, d, opts, alpha);
  const grads = distillGradsRef(forward, x, target, W, d, opts, alpha);
  const G = { Wr: grads.dWr, Wg: grads.dWg, Wu: grads.dWu, Wd: grads.dWd };
  for (const k of ['Wr', 'Wg', 'Wu', 'Wd'] as const) adamRef(W[k], G[k], moments[k].m, moments[k].v, t, adam);
  return { forward, grads };
}

// ---------------------------------------------------------------------------- dense FFN and its split

/** LLaMA MLP down(silu(gate(x)) ⊙ up(x)): x [T, H], Wg/Wu [Id, H], Wd [H, Id] → [T, H]. */
export function denseFfnRef(
  x: ArrayLike<number>, Wg: ArrayLike<number>, Wu: ArrayLike<number>, Wd: ArrayLike<number>, T: number, H: number, Id: number,
): Float64Array {
  const y = new Float64Array(T * H);
  const h = new Float64Array(Id);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < Id; i++) {
      let g = 0;
      let u = 0;
      for (let c = 0; c < H; c++) {
        g += x[t * H + c] * Wg[i * H + c];
        u += x[t * H + c] * Wu[i * H + c];
      }
      h[i] = silu(g) * u;
    }
    for (let c = 0; c < H; c++) {
      let acc = 0;
      for (let i = 0; i < Id; i++) acc += h[i] * Wd[c * Id + i];
      y[t * H + c] = acc;
    }
  }
  return y;
}

/**
 * Splits a dense FFN's intermediate dimension into E contiguous experts of I = Id/E neurons (LaDiMo §4.1):
 * expert e takes gate/up rows and down columns e·I .. (e+1)·I. Returns Wg, Wu [E, I, H] and Wd [E, H, I].
 */
export function splitFfnRef<A extends Float32Array | Float64Array>(
  Wg: A, Wu: A, Wd: A, H: number, Id: number, E: number,
): { Wg: A; Wu: A; Wd: A } {
  if (Id % E !== 0) throw new Error(`splitFfnRef: ${Id} neurons do not split into ${E} experts`);
  const I = Id / E;
  const make = () => new (Wg.constructor as new (n: number) => A)(Id * H);
  const eg = make(), eu = make(), ed = make();
  eg.set(Wg);   // [Id, H] rows e·I.. are already expert e's [I, H] block, in order
  eu.set(Wu);
  for (let e = 0; e < E; e++) for (let c = 0; c < H; c++) for (let i = 0; i < I; i++) ed[(e * H + c) * I + i] = Wd[c * Id + e * I + i];
  return { Wg: eg, Wu: eu, Wd: ed };
}
