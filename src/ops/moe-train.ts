// One layer-wise distillation step of a MoE block on the GPU, LaDiMo (Zhang et al., arXiv 2408.04278):
// §4.2 trains each MoE block (router + experts) to reproduce the dense FFN it replaces on captured inputs,
// §4.3 adds the load-balancing loss with a weight that follows the reconstruction loss:
//   L = L_mse + α·‖L_mse‖·L_aux,   L_mse = MSE(f̂(x), f(x)),   ‖L_mse‖ detached (a coefficient, no gradient)
// L_aux is the Switch-Transformer loss of moe.ts. The step is recorded, never read back: the counts, the
// tile schedule and the coefficient α·L_mse stay on the GPU, and every buffer is allocated once in
// createDistillState, so moeDistillStep allocates nothing and any number of steps can be recorded before
// one flush. Kernels: shaders/moe_gemm.wgsl (training forward of gate_up, expert backward), shaders/moe.wgsl
// (aux gradient with a GPU coefficient, the loss), with matmul / reduce / optim for the rest.
//
// Training forward: gate_up_train keeps g = x·Wgᵀ and u = x·Wuᵀ ([slots, 2I], gate‖up) beside h. Stored,
// not recomputed: recomputing g and u in the backward would repeat the gate‖up GEMM (2/3 of the expert
// forward's FLOPs) for [slots, 2I] floats of memory, small next to the weights at distillation batch sizes.
// The SwiGLU backward is the epilogue of the dh GEMM, so dh itself is never stored.
// Training through the block (src/train/moe.ts) also needs the input gradient dx = Σ over the token's
// slots of dg·Wg_e + du·Wu_e: moeExpertsInputGrad (a grouped GEMM per slot, then a gather per token).
import shader from '../../shaders/moe.wgsl';
import gemmShader from '../../shaders/moe_gemm.wgsl';
import type { Gpu } from '../gpu/device.ts';
import { fmtShape } from '../gpu/errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { matmul } from './matmul.ts';
import {
  GemmParams, MAX_EXPERTS, MAX_TOP_K, gemmEntry, moeAuxLoss, moeCombine, moeCombineBackward, moePermute, moeRoute, moeRouterBackward,
  pack, type MoePermutation, type MoeWeights, type RoutingOptions,
} from './moe.ts';
import { adamStep } from './optim.ts';
import { mseBackward } from './reduce.ts';
import { expectFinite, expectInt, expectTensor, fail, grid, outTensor } from './validate.ts';

/** Rows per grouped-GEMM tile, and loss elements per partial sum (TILE and CHUNK in moe.wgsl). */
const TILE = 64;
const CHUNK = 2048;

/** Worst-case row tiles of the grouped GEMM: Σ_e ceil(c_e/64) ≤ (Σ c_e + 63·(experts with tokens)) / 64. */
function maxRowTiles(slots: number, E: number): number {
  return Math.floor((slots + (TILE - 1) * Math.min(E, slots)) / TILE);
}

/** Partial sums moeDistillLoss needs for `len` elements. */
export function lossPartials(len: number): number {
  return Math.ceil(len / CHUNK);
}

/** The expert weights and shapes, checked: gate_proj/up_proj [E, I, H], down_proj [E, H, I]. */
function expertDims(op: string, w: Omit<MoeWeights, 'router'>, H: number, shapes: string): { E: number; I: number } {
  expectTensor(op, 'gate_proj', w.gate_proj, [null, null, H]);
  const [E, I] = w.gate_proj.shape;
  if (E < 1 || E > MAX_EXPERTS) fail(op, `expert count must be in [1, ${MAX_EXPERTS}], got ${E} (${shapes})`);
  if (I < 1) fail(op, `intermediate size must be ≥ 1 (${shapes})`);
  expectTensor(op, 'up_proj', w.up_proj, [E, I, H]);
  expectTensor(op, 'down_proj', w.down_proj, [E, H, I]);
  return { E, I };
}

function weightShapes(x: Tensor, w: Omit<MoeWeights, 'router'>): string {
  return `x ${fmtShape(x.shape)}, gate_proj ${fmtShape(w.gate_proj.shape)}, up_proj ${fmtShape(w.up_proj.shape)}, ` +
    `down_proj ${fmtShape(w.down_proj.shape)}`;
}

type GemmPermutation = Pick<MoePermutation, 'slotToken' | 'expertOffsets' | 'tileOffsets'>;

function expectPermutation(op: string, perm: GemmPermutation, T: number, E: number, shapes: string): number {
  expectTensor(op, 'slotToken', perm.slotToken, [null], 'u32');
  expectTensor(op, 'expertOffsets', perm.expertOffsets, [E + 1], 'u32');
  expectTensor(op, 'tileOffsets', perm.tileOffsets, [E + 1], 'u32');
  const slots = perm.slotToken.shape[0];
  if (slots % T !== 0 || slots < T) fail(op, `slotToken length must be T·kMax (${shapes}, slotToken ${fmtShape(perm.slotToken.shape)})`);
  return slots;
}

// ----------------------------------------------------------------------------------- training forward

export interface MoeExpertTrainOutputs {
  /** x·Wgᵀ ‖ x·Wuᵀ per slot: [T·kMax, 2I] (columns 0..I gate g, I..2I up u), kept for the backward */
  gu: Tensor;
  /** silu(g) ⊙ u per slot: [T·kMax, I] */
  h: Tensor;
  /** expert output per slot: [T·kMax, H] */
  ys: Tensor;
}

/** Checks x, the expert weights and the permutation together; returns their dimensions. */
function expertArgs(op: string, x: Tensor, weights: Omit<MoeWeights, 'router'>, perm: GemmPermutation) {
  expectTensor(op, 'x', x, [null, null]);
  const [T, H] = x.shape;
  const shapes = weightShapes(x, weights);
  if (T < 1) fail(op, `needs at least one token (${shapes})`);
  const { E, I } = expertDims(op, weights, H, shapes);
  const slots = expectPermutation(op, perm, T, E, shapes);
  return { T, H, E, I, slots, shapes };
}

/**
 * moeExperts for training: h and ys by the same arithmetic (bit-identical to moeExperts on SwiftShader),
 * and also g and u (gu). x: [T, H]; weights as MoeWeights; perm from moePermute. Rows past the last used
 * slot are left unwritten.
 */
export function moeExpertsTrain(
  x: Tensor,
  weights: Omit<MoeWeights, 'router'>,
  perm: GemmPermutation,
  out: Partial<MoeExpertTrainOutputs> = {},
): MoeExpertTrainOutputs {
  const op = 'moeExpertsTrain';
  const { H, E, I, slots } = expertArgs(op, x, weights, perm);
  const gu = outTensor(op, x, out.gu, [slots, 2 * I]);
  const h = outTensor(op, x, out.h, [slots, I]);
  const ys = outTensor(op, x, out.ys, [slots, H]);
  const rowTiles = maxRowTiles(slots, E);
  const { expertOffsets, tileOffsets, slotToken } = perm;
  x.gpu.dispatch({
    op: `${op} gate_up`,
    shapes: { x: x.shape, gate_proj: weights.gate_proj.shape, up_proj: weights.up_proj.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'gate_up_train'),
    constants: { VEC4: H % 4 === 0 },
    params: GemmParams.pack({ N: I, K: H, E, M: 0 }),
    bindings: [expertOffsets, tileOffsets, x, weights.gate_proj, weights.up_proj, slotToken, h, gu],
    workgroups: [Math.ceil(I / 64), rowTiles],
  });
  // ys = h·Wdᵀ: moe_gemm.wgsl's down, as moeExperts records it (bindings 1–5: offsets, tiles, h, Wd, ys).
  x.gpu.dispatch({
    op: `${op} down`,
    shapes: { h: h.shape, down_proj: weights.down_proj.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'down'),
    constants: { VEC4: I % 4 === 0 },
    params: GemmParams.pack({ N: H, K: I, E, M: 0 }),
    bindings: [expertOffsets, tileOffsets, h, weights.down_proj, ys],
    workgroups: [Math.ceil(H / 64), rowTiles],
  });
  return { gu, h, ys };
}

// ------------------------------------------------------------------------------------ expert backward

export interface MoeExpertGrads {
  /** ∂L/∂g ‖ ∂L/∂u per slot: [T·kMax, 2I] (rows past the last used slot unwritten) */
  dgu: Tensor;
  /** ∂L/∂gate_proj: [E, I, H] */
  dWg: Tensor;
  /** ∂L/∂up_proj: [E, I, H] */
  dWu: Tensor;
  /** ∂L/∂down_proj: [E, H, I] */
  dWd: Tensor;
}

/**
 * Backward of moeExpertsTrain given dys [T·kMax, H] (moeCombineBackward's): per slot s of expert e,
 * dh = dys[s]·Wd_e → (dg, du) by the SwiGLU backward; per expert, over its slots in slot order,
 * dWd_e = Σ dys[s]ᵀ⊗h[s], dWg_e = Σ dg[s]ᵀ⊗x[tok(s)], dWu_e = Σ du[s]ᵀ⊗x[tok(s)]. Experts with no slots
 * get zero gradients. Deterministic: no atomics. The three parts are also exported alone (the training
 * block of src/train/moe.ts skips the gradients of frozen weights); dx is moeExpertsInputGrad.
 */
export function moeExpertsBackward(
  x: Tensor,
  weights: Omit<MoeWeights, 'router'>,
  perm: GemmPermutation,
  saved: Pick<MoeExpertTrainOutputs, 'gu' | 'h'>,
  dys: Tensor,
  out: Partial<MoeExpertGrads> = {},
): MoeExpertGrads {
  const dgu = moeExpertsDgu(x, weights, perm, saved, dys, out.dgu);
  const dWd = moeExpertsDownGrad(x, weights, perm, saved, dys, out.dWd);
  return { dgu, dWd, ...moeExpertsGateUpGrad(x, weights, perm, dgu, out) };
}

/** The shapes every backward part checks: x, the weights, the permutation, and `more` against them. */
function backwardArgs(op: string, x: Tensor, weights: Omit<MoeWeights, 'router'>, perm: GemmPermutation, more: [string, Tensor, 'gu' | 'h' | 'ys'][]) {
  const a = expertArgs(op, x, weights, perm);
  const width = { gu: 2 * a.I, h: a.I, ys: a.H };
  for (const [name, t, kind] of more) expectTensor(op, name, t, [a.slots, width[kind]]);
  return a;
}

/** dh = dys·Wd_e per slot, then (dg, du) by the SwiGLU backward from the saved gu: dgu [T·kMax, 2I]. */
export function moeExpertsDgu(
  x: Tensor, weights: Omit<MoeWeights, 'router'>, perm: GemmPermutation, saved: Pick<MoeExpertTrainOutputs, 'gu'>, dys: Tensor, out?: Tensor,
): Tensor {
  const op = 'moeExpertsDgu';
  const { H, E, I, slots } = backwardArgs(op, x, weights, perm, [['gu', saved.gu, 'gu'], ['dys', dys, 'ys']]);
  const dgu = outTensor(op, x, out, [slots, 2 * I]);
  x.gpu.dispatch({
    op: `${op} dh→dg,du`,
    shapes: { dys: dys.shape, down_proj: weights.down_proj.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'down_backward'),
    constants: { VEC4: H % 4 === 0 && I % 4 === 0 },
    params: GemmParams.pack({ N: I, K: H, E, M: 0 }),
    bindings: [perm.expertOffsets, perm.tileOffsets, dys, weights.down_proj, saved.gu, dgu],
    workgroups: [Math.ceil(I / 64), maxRowTiles(slots, E)],
  });
  return dgu;
}

/** dWd_e = Σ_s dys[s]ᵀ⊗h[s] over expert e's slots: [E, H, I]. */
export function moeExpertsDownGrad(
  x: Tensor, weights: Omit<MoeWeights, 'router'>, perm: GemmPermutation, saved: Pick<MoeExpertTrainOutputs, 'h'>, dys: Tensor, out?: Tensor,
): Tensor {
  const op = 'moeExpertsDownGrad';
  const { H, E, I } = backwardArgs(op, x, weights, perm, [['h', saved.h, 'h'], ['dys', dys, 'ys']]);
  const dWd = outTensor(op, x, out, [E, H, I]);
  x.gpu.dispatch({
    op,
    shapes: { dys: dys.shape, h: saved.h.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'down_grad'),
    constants: { VEC4: H % 4 === 0 && I % 4 === 0 },
    params: GemmParams.pack({ N: I, K: 0, E, M: H }),
    bindings: [perm.expertOffsets, null, dys, saved.h, dWd],
    workgroups: [Math.ceil(I / 64), Math.ceil(H / 64), E],
  });
  return dWd;
}

/** dWg_e = Σ_s dg[s]ᵀ⊗x[tok(s)] and dWu_e = Σ_s du[s]ᵀ⊗x[tok(s)] over expert e's slots: [E, I, H] each. */
export function moeExpertsGateUpGrad(
  x: Tensor, weights: Omit<MoeWeights, 'router'>, perm: GemmPermutation, dgu: Tensor, out: { dWg?: Tensor; dWu?: Tensor } = {},
): { dWg: Tensor; dWu: Tensor } {
  const op = 'moeExpertsGateUpGrad';
  const { H, E, I, shapes } = backwardArgs(op, x, weights, perm, [['dgu', dgu, 'gu']]);
  const dWg = outTensor(op, x, out.dWg, [E, I, H]);
  const dWu = outTensor(op, x, out.dWu, [E, I, H]);
  if (dWg.buffer === dWu.buffer) fail(op, `dWg and dWu must be distinct tensors (${shapes})`);
  x.gpu.dispatch({
    op,
    shapes: { dgu: dgu.shape, x: x.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'gate_up_grad'),
    constants: { VEC4: H % 4 === 0 && I % 2 === 0 },
    params: GemmParams.pack({ N: H, K: 0, E, M: 2 * I }),
    bindings: [perm.expertOffsets, perm.slotToken, dgu, x, dWg, dWu],
    workgroups: [Math.ceil(H / 64), Math.ceil((2 * I) / 64), E],
  });
  return { dWg, dWu };
}

/**
 * The gradient of the block input through the experts: per slot s of expert e, dxs[s] = dg[s]·Wg_e +
 * du[s]·Wu_e (one grouped GEMM over [Wg_e; Wu_e]), then per token dx[t] = Σ_j dxs[tokenSlot[t, j]] in j
 * order (a gather, not a scatter: no atomics, the same bits every run). x supplies the shapes only.
 * dgu: moeExpertsDgu's [T·kMax, 2I]. out.dxs: [T·kMax, H] scratch (rows past the last used slot unwritten).
 */
export function moeExpertsInputGrad(
  x: Tensor,
  weights: Omit<MoeWeights, 'router'>,
  perm: GemmPermutation & Pick<MoePermutation, 'tokenSlot'>,
  dgu: Tensor,
  out: { dx?: Tensor; dxs?: Tensor } = {},
): Tensor {
  const op = 'moeExpertsInputGrad';
  const { T, H, E, I, slots } = backwardArgs(op, x, weights, perm, [['dgu', dgu, 'gu']]);
  expectTensor(op, 'tokenSlot', perm.tokenSlot, [T, slots / T], 'u32');
  const dx = outTensor(op, x, out.dx, [T, H]);
  const dxs = outTensor(op, x, out.dxs, [slots, H]);
  x.gpu.dispatch({
    op: `${op} dxs`,
    shapes: { dgu: dgu.shape, gate_proj: weights.gate_proj.shape, up_proj: weights.up_proj.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'gate_up_backward'),
    constants: { VEC4: H % 4 === 0 && I % 2 === 0 },
    params: GemmParams.pack({ N: H, K: 2 * I, E, M: 0 }),
    bindings: [perm.expertOffsets, perm.tileOffsets, dgu, weights.gate_proj, weights.up_proj, dxs],
    workgroups: [Math.ceil(H / 64), maxRowTiles(slots, E)],
  });
  x.gpu.dispatch({
    op: `${op} gather`,
    shapes: { tokenSlot: perm.tokenSlot.shape, dxs: dxs.shape },
    shader: gemmShader,
    entry: 'gather_slots',
    params: GemmParams.pack({ N: H, K: slots / T, E, M: T }),
    bindings: [perm.tokenSlot, dxs, dx],
    workgroups: grid(T),
  });
  if (!out.dxs) dxs.release();   // recorded work keeps its binding; later ops may reuse the buffer
  return dx;
}

// --------------------------------------------------------------------------------- aux gradient, loss

/**
 * dLogits [T, E] += α·c·∂L_aux/∂logits with c = coefFrom[0] read on the GPU (LaDiMo's ‖L_mse‖: pass the
 * MSE loss tensor, no readback). probs: [T, E]; f: [E] from moeAuxLoss (held constant, as there).
 */
export function moeAuxGrad(
  probs: Tensor,
  f: Tensor,
  dLogits: Tensor,
  opts: { coefFrom: Tensor; alpha?: number },
): void {
  const op = 'moeAuxGrad';
  const { coefFrom, alpha = 1 } = opts;
  expectFinite(op, 'alpha', alpha);
  expectTensor(op, 'probs', probs, [null, null]);
  const [T, E] = probs.shape;
  if (T < 1 || E < 1) fail(op, `probs ${fmtShape(probs.shape)} is empty`);
  expectTensor(op, 'f', f, [E]);
  expectTensor(op, 'coefFrom', coefFrom, [1]);
  expectTensor(op, 'dLogits', dLogits, [T, E]);
  probs.gpu.dispatch({
    op,
    shapes: { probs: probs.shape, f: f.shape, coefFrom: coefFrom.shape },
    shader,
    entry: 'aux_grad_coef',
    params: pack({ T, E, coef: alpha }),
    bindings: [probs, f, coefFrom, dLogits],
    workgroups: grid(Math.ceil(T / 64)),
  });
}

export interface DistillLosses {
  /** L_mse = mean((ŷ − y)²): [1] */
  mse: Tensor;
  /** L_aux (Switch Transformer, moeAuxLoss): [1] */
  aux: Tensor;
  /** L_tot = L_mse + α·L_mse·L_aux: [1] */
  total: Tensor;
}

/**
 * L_mse = mean((yHat − target)²) and L_tot = L_mse + α·L_mse·L_aux, each [1], in fixed-order sums.
 * yHat, target: one shape; aux: [1] (moeAuxLoss's). out.partials: [lossPartials(yHat.size)] scratch.
 */
export function moeDistillLoss(
  yHat: Tensor,
  target: Tensor,
  aux: Tensor,
  alpha: number,
  out: { mse?: Tensor; total?: Tensor; partials?: Tensor } = {},
): { mse: Tensor; total: Tensor } {
  const op = 'moeDistillLoss';
  expectFinite(op, 'alpha', alpha);
  expectTensor(op, 'yHat', yHat, yHat.shape.map(() => null));
  if (yHat.size === 0) fail(op, `yHat ${fmtShape(yHat.shape)} is empty`);
  expectTensor(op, 'target', target, yHat.shape);
  expectTensor(op, 'aux', aux, [1]);
  const len = yHat.size;
  const groups = lossPartials(len);
  const mse = outTensor(op, yHat, out.mse, [1]);
  const total = outTensor(op, yHat, out.total, [1]);
  const partials = outTensor(op, yHat, out.partials, [groups]);
  const params = pack({ len, groups, coef: alpha });
  const shapes = { yHat: yHat.shape, target: target.shape };
  yHat.gpu.dispatch({ op, shapes, shader, entry: 'loss_partials', params, bindings: [yHat, target, partials], workgroups: grid(groups) });
  yHat.gpu.dispatch({ op, shapes, shader, entry: 'loss_total', params, bindings: [partials, aux, mse, total], workgroups: [1] });
  if (!out.partials) partials.release();   // recorded work keeps its binding; later ops may reuse the buffer
  return { mse, total };
}

// ----------------------------------------------------------------------------------- distillation step

export interface DistillOptions extends RoutingOptions {
  /** Tokens per batch (every batch has exactly T rows). */
  T: number;
  /** Weight of the load-balancing term: L = L_mse + α·‖L_mse‖·L_aux (LaDiMo §4.3). */
  alpha: number;
  /** Adam learning rate. */
  lr: number;
  /** Adam (β1, β2); default (0.9, 0.999). */
  betas?: readonly [number, number];
  /** Adam ε; default 1e-8. */
  eps?: number;
}

/** Adam's first and second moments of one weight (zeros before step 1). */
export interface AdamMoments {
  m: Tensor;
  v: Tensor;
}

/**
 * Everything one step touches, allocated once (slots S = T·kMax, kMax = topK or 3 under dynamic k,
 * nBlocks = ceil(T/64)). The weights are the caller's tensors, updated in place.
 */
export interface DistillState {
  gpu: Gpu;
  opts: DistillOptions;
  dims: { T: number; H: number; I: number; E: number; kMax: number; slots: number };
  /** Adam steps recorded so far; the next step is t = step + 1. */
  step: number;
  /** router [E, H], gate_proj/up_proj [E, I, H], down_proj [E, H, I] (the caller's, updated in place) */
  weights: MoeWeights;
  /** ∂L/∂ each weight, same shapes as the weights */
  grads: MoeWeights;
  /** Adam moments of each weight */
  moments: Record<keyof MoeWeights, AdamMoments>;
  // forward
  routerLogits: Tensor;   // [T, E]
  probs: Tensor;          // [T, E]
  topIds: Tensor;         // [T, kMax] u32
  topW: Tensor;           // [T, kMax]
  slotToken: Tensor;      // [S] u32
  tokenSlot: Tensor;      // [T, kMax] u32
  expertOffsets: Tensor;  // [E+1] u32
  tileOffsets: Tensor;    // [E+1] u32
  blockOffsets: Tensor;   // [E, nBlocks] u32
  gu: Tensor;             // [S, 2I]  g ‖ u per slot
  h: Tensor;              // [S, I]
  ys: Tensor;             // [S, H]
  y: Tensor;              // [T, H]   f̂(x)
  // loss
  auxF: Tensor;           // [E]      f_i of L_aux
  lossPartials: Tensor;   // [ceil(T·H / 2048)]
  losses: DistillLosses;  // [1] each
  // backward
  dy: Tensor;             // [T, H]
  dTopW: Tensor;          // [T, kMax]
  dys: Tensor;            // [S, H]
  dLogits: Tensor;        // [T, E]
  dgu: Tensor;            // [S, 2I]
}

/**
 * Allocates the state of a distillation run for the given MoE weights (which the steps update in place).
 * Release it with releaseDistillState (the weights stay the caller's).
 */
export function createDistillState(gpu: Gpu, weights: MoeWeights, opts: DistillOptions): DistillState {
  const op = 'createDistillState';
  const { router } = weights;
  expectTensor(op, 'router', router, [null, null]);
  const [E, H] = router.shape;
  const shapes = `router ${fmtShape(router.shape)}, gate_proj ${fmtShape(weights.gate_proj.shape)}, ` +
    `up_proj ${fmtShape(weights.up_proj.shape)}, down_proj ${fmtShape(weights.down_proj.shape)}`;
  const { I } = expertDims(op, weights, H, shapes);
  expectTensor(op, 'gate_proj', weights.gate_proj, [E, I, H]);
  expectInt(op, 'T', opts.T, 1, 1 << 24);
  expectFinite(op, 'alpha', opts.alpha);
  const [beta1, beta2] = opts.betas ?? [0.9, 0.999];
  for (const [name, v] of [['lr', opts.lr], ['beta1', beta1], ['beta2', beta2], ['eps', opts.eps ?? 1e-8]] as const) expectFinite(op, name, v);
  if (new Set(Object.values(weights).map((w) => w.buffer)).size < 4) fail(op, `the four weights must be distinct tensors (${shapes})`);
  const { T, topK, dynamic } = opts;
  if ((topK === undefined) === (dynamic === undefined)) fail(op, `give exactly one of topK and dynamic (${shapes})`);
  if (topK !== undefined) expectInt(op, 'topK', topK, 1, Math.min(MAX_TOP_K, E));
  if (dynamic) {
    expectFinite(op, 'dynamic.alpha', dynamic.alpha);
    expectFinite(op, 'dynamic.beta', dynamic.beta);
    if (dynamic.beta > dynamic.alpha) fail(op, `dynamic k needs beta ≤ alpha, got alpha ${dynamic.alpha}, beta ${dynamic.beta}`);
    if (E < 3) fail(op, `dynamic k picks up to 3 experts but there are ${E} (${shapes})`);
  }
  const kMax = topK ?? 3;
  const S = T * kMax;
  const f32 = (shape: number[], label: string) => gpu.tensor(shape, 'f32', `distill.${label}`);
  const u32 = (shape: number[], label: string) => gpu.tensor(shape, 'u32', `distill.${label}`);
  const zeros = (shape: readonly number[], label: string) => {
    const t = f32([...shape], label);
    gpu.write(t, new Float32Array(t.size));
    return t;
  };
  const names = ['router', 'gate_proj', 'up_proj', 'down_proj'] as const;
  const grads = Object.fromEntries(names.map((k) => [k, f32([...weights[k].shape], `d${k}`)])) as unknown as MoeWeights;
  const moments = Object.fromEntries(names.map((k) => [k, {
    m: zeros(weights[k].shape, `${k}.m`),
    v: zeros(weights[k].shape, `${k}.v`),
  }])) as Record<keyof MoeWeights, AdamMoments>;
  return {
    gpu, opts, step: 0, weights, grads, moments,
    dims: { T, H, I, E, kMax, slots: S },
    routerLogits: f32([T, E], 'routerLogits'),
    probs: f32([T, E], 'probs'),
    topIds: u32([T, kMax], 'topIds'),
    topW: f32([T, kMax], 'topW'),
    slotToken: u32([S], 'slotToken'),
    tokenSlot: u32([T, kMax], 'tokenSlot'),
    expertOffsets: u32([E + 1], 'expertOffsets'),
    tileOffsets: u32([E + 1], 'tileOffsets'),
    blockOffsets: u32([E, Math.ceil(T / 64)], 'blockOffsets'),
    gu: f32([S, 2 * I], 'gu'),
    h: f32([S, I], 'h'),
    ys: f32([S, H], 'ys'),
    y: f32([T, H], 'y'),
    auxF: f32([E], 'auxF'),
    lossPartials: f32([lossPartials(T * H)], 'lossPartials'),
    losses: { mse: f32([1], 'L_mse'), aux: f32([1], 'L_aux'), total: f32([1], 'L_tot') },
    dy: f32([T, H], 'dy'),
    dTopW: f32([T, kMax], 'dTopW'),
    dys: f32([S, H], 'dys'),
    dLogits: f32([T, E], 'dLogits'),
    dgu: f32([S, 2 * I], 'dgu'),
  };
}

/** Releases every buffer createDistillState allocated (not the weights). */
export function releaseDistillState(s: DistillState): void {
  const own = Object.entries(s).filter(([k]) => !['gpu', 'opts', 'dims', 'step', 'weights', 'grads', 'moments', 'losses'].includes(k));
  for (const [, t] of own) (t as Tensor).release();
  for (const t of [...Object.values(s.grads), ...Object.values(s.losses)]) t.release();
  for (const { m, v } of Object.values(s.moments)) { m.release(); v.release(); }
}

export interface DistillBatch {
  /** captured block input: [T, H] */
  x: Tensor;
  /** the dense FFN's output on it, f(x): [T, H] */
  target: Tensor;
}

/**
 * Records one distillation step (forward, loss, backward, Adam on router, gate_proj, up_proj, down_proj)
 * with Adam step t = ++state.step. Nothing is read back or allocated. Returns the state's loss tensors
 * [1], overwritten by every step: read them (e.g. every N steps) before recording the next.
 */
export function moeDistillStep(state: DistillState, batch: DistillBatch): DistillLosses {
  const op = 'moeDistillStep';
  const { T, H, E } = state.dims;
  const { x, target } = batch;
  expectTensor(op, 'x', x, [T, H]);
  expectTensor(op, 'target', target, [T, H]);
  const s = state;
  const { opts, weights: W, grads: dW } = s;
  const experts = { gate_proj: W.gate_proj, up_proj: W.up_proj, down_proj: W.down_proj };

  // ---- forward: routerLogits = x·Wrᵀ → softmax → top-k → renorm → permute → experts → combine
  matmul(x, W.router, { transB: true, out: s.routerLogits });
  moeRoute(s.routerLogits, opts, s);
  moePermute(s.topIds, E, s);
  moeExpertsTrain(x, experts, s, s);
  moeCombine(s.ys, s.topW, s.tokenSlot, s.y);

  // ---- loss: L_aux, L_mse, L_tot = L_mse + α·L_mse·L_aux
  moeAuxLoss(s.probs, s.topIds, { out: { loss: s.losses.aux, f: s.auxF } });
  moeDistillLoss(s.y, target, s.losses.aux, opts.alpha, { mse: s.losses.mse, total: s.losses.total, partials: s.lossPartials });

  // ---- backward. ‖L_mse‖ is detached, so ∂L/∂ŷ = ∂L_mse/∂ŷ and α·L_mse only scales ∂L_aux/∂logits.
  mseBackward(s.y, target, { out: s.dy });
  moeCombineBackward(s.dy, s.ys, s.topW, s, { dTopW: s.dTopW, dys: s.dys });
  moeRouterBackward(s.dTopW, s.probs, s.topIds, { normTopK: opts.normTopK, out: s.dLogits });
  moeAuxGrad(s.probs, s.auxF, s.dLogits, { coefFrom: s.losses.mse, alpha: opts.alpha });
  matmul(s.dLogits, x, { transA: true, out: dW.router });   // dWr = dLogitsᵀ·x
  moeExpertsBackward(x, experts, s, s, s.dys, { dgu: s.dgu, dWg: dW.gate_proj, dWu: dW.up_proj, dWd: dW.down_proj });

  // ---- Adam, after every gradient has read the old weights
  const t = ++s.step;
  const [beta1, beta2] = opts.betas ?? [0.9, 0.999];
  const adam = { lr: opts.lr, beta1, beta2, eps: opts.eps ?? 1e-8 };
  for (const k of ['router', 'gate_proj', 'up_proj', 'down_proj'] as const) {
    adamStep(W[k], dW[k], s.moments[k].m, s.moments[k].v, t, adam);
  }
  return s.losses;
}
