// Mixture-of-Experts FFN block on the GPU, routed as in HF modeling_qwen2_moe.py (Qwen2MoeSparseMoeBlock):
//   routerLogits = x·Wrᵀ → softmax (f32) → top-k (fixed, or LaDiMo's token-wise k) → optional renorm
//   → permute (group the assignments by expert) → grouped expert GEMMs (gate‖up + SiLU·mul, down)
//   → weighted combine back to token order.
// No CPU round trip: counts, offsets and the GEMM tile schedule stay on the GPU (the grouped GEMMs run a
// worst-case grid whose surplus workgroups exit early). Kernels: shaders/moe.wgsl, shaders/moe_gemm.wgsl.
// Also the backward ops of a layer-wise distillation step: combine, router (top-k + softmax), L_aux; and
// the noisy gate of training (its logits' noise and that noise's gradient).
import shader from '../../shaders/moe.wgsl';
import gemmShader from '../../shaders/moe_gemm.wgsl';
import type { Gpu } from '../gpu/device.ts';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { fmtShape } from '../gpu/errors.ts';
import { matmul } from './matmul.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

/** Most experts per token, and most experts (one thread per expert in the permutation kernels). */
export const MAX_TOP_K = 8;
export const MAX_EXPERTS = 256;
/** Marks unused (token, slot) entries of topIds / tokenSlot and spare slots of slotToken. */
export const NONE = 0xffffffff;
/** Tokens per permutation block, and rows per grouped-GEMM tile (BLOCK and TILE in moe.wgsl). */
const BLOCK = 64;
const TILE = 64;

const Params = paramStruct([
  ['T', 'u32'], ['E', 'u32'], ['H', 'u32'], ['kMax', 'u32'], ['nBlocks', 'u32'],
  ['alpha', 'f32'], ['beta', 'f32'], ['coef', 'f32'], ['len', 'u32'], ['groups', 'u32'],
] as const);
type ParamValues = Parameters<typeof Params.pack>[0];

/** moe_gemm.wgsl's entry point for the device's GEMM kernels (Gpu.gemmKernel): `entry` or its *_direct twin. */
export function gemmEntry(gpu: Gpu, entry: string): string {
  return gpu.gemmKernel === 'direct' ? `${entry}_direct` : entry;
}

/** moe_gemm.wgsl's Params (M: weight-gradient kernels only, moe-train.ts). */
export const GemmParams = paramStruct([['N', 'u32'], ['K', 'u32'], ['E', 'u32'], ['M', 'u32']] as const);

/** moe.wgsl's Params, unset fields 0 (moe-train.ts records its aux gradient and loss kernels too). */
export function pack(v: Partial<ParamValues>): Uint8Array {
  return Params.pack({ T: 0, E: 0, H: 0, kMax: 0, nBlocks: 0, alpha: 0, beta: 0, coef: 0, len: 0, groups: 0, ...v });
}

export interface RoutingOptions {
  /** Fixed experts per token, 1..min(8, E). Give this or `dynamic`. */
  topK?: number;
  /** Token-wise k (LaDiMo, Appendix A): 1 if the largest routing weight ≥ alpha, 3 if ≤ beta, else 2. */
  dynamic?: { alpha: number; beta: number };
  /** Renormalise the selected weights to sum to 1 (HF norm_topk_prob). */
  normTopK?: boolean;
}

/** The block's weights (HF names; out×in layouts). */
export interface MoeWeights {
  /** router (HF `gate`) weight: [E, H] */
  router: Tensor;
  /** experts' gate_proj (Wg): [E, I, H] */
  gate_proj: Tensor;
  /** experts' up_proj (Wu): [E, I, H] */
  up_proj: Tensor;
  /** experts' down_proj (Wd): [E, H, I] */
  down_proj: Tensor;
}

export interface MoeRouting {
  /** softmax of the router logits: [T, E] */
  probs: Tensor;
  /** selected experts, best first: [T, kMax] u32, NONE in unused slots */
  topIds: Tensor;
  /** their weights: [T, kMax], 0 in unused slots */
  topW: Tensor;
}

export interface MoePermutation {
  /** token of each slot, slots grouped by expert in (token, j) order: [T·kMax] u32, NONE past the last used */
  slotToken: Tensor;
  /** slot of each assignment: [T, kMax] u32, NONE where unused */
  tokenSlot: Tensor;
  /** first slot of each expert: [E+1] u32 ([E] = slots in use) */
  expertOffsets: Tensor;
  /** first 64-row GEMM tile of each expert: [E+1] u32 ([E] = tiles in use) */
  tileOffsets: Tensor;
  /** scratch: each token block's first slot per expert: [E, ceil(T/64)] u32 */
  blockOffsets: Tensor;
}

export interface MoeExpertOutputs {
  /** silu(x·Wgᵀ) ⊙ (x·Wuᵀ) per slot: [T·kMax, I] */
  h: Tensor;
  /** expert output per slot: [T·kMax, H] */
  ys: Tensor;
}

export interface MoeForwardResult extends MoeRouting, MoePermutation, MoeExpertOutputs {
  /** block output: [T, H] */
  y: Tensor;
  /** x·Wrᵀ: [T, E] */
  routerLogits: Tensor;
  /** slots per token: topK, or 3 under dynamic k */
  kMax: number;
}

export interface MoeOptions extends RoutingOptions {
  /** Preallocated outputs (any subset), e.g. to run the block repeatedly without allocating. */
  out?: Partial<Omit<MoeForwardResult, 'kMax'>>;
}

/** Checks the routing options against E experts; returns kMax (slots per token). */
function routingK(op: string, E: number, opts: RoutingOptions, shapes: string): number {
  const { topK, dynamic } = opts;
  if ((topK === undefined) === (dynamic === undefined)) fail(op, `give exactly one of topK and dynamic (${shapes})`);
  if (topK !== undefined) {
    if (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) fail(op, `topK must be an integer in [1, ${MAX_TOP_K}], got ${topK} (${shapes})`);
    if (topK > E) fail(op, `topK ${topK} exceeds the ${E} experts (${shapes})`);
    return topK;
  }
  const { alpha, beta } = dynamic!;
  expectFinite(op, 'dynamic.alpha', alpha);
  expectFinite(op, 'dynamic.beta', beta);
  if (beta > alpha) fail(op, `dynamic k needs beta ≤ alpha, got alpha ${alpha}, beta ${beta}`);
  if (E < 3) fail(op, `dynamic k picks up to 3 experts but there are ${E} (${shapes})`);
  return 3;
}

function expectExperts(op: string, E: number, shapes: string): void {
  if (E < 1 || E > MAX_EXPERTS) fail(op, `expert count must be in [1, ${MAX_EXPERTS}], got ${E} (${shapes})`);
}

function expectTokens(op: string, T: number, shapes: string): void {
  if (T < 1) fail(op, `needs at least one token (${shapes})`);
}

/** Worst-case row tiles of the grouped GEMM: Σ_e ceil(c_e/64) ≤ (Σ c_e + 63·(experts with tokens)) / 64. */
function maxRowTiles(slots: number, E: number): number {
  return Math.floor((slots + (TILE - 1) * Math.min(E, slots)) / TILE);
}

// ------------------------------------------------------------------------------------------------ forward

/** Softmax over experts, top-k (ties to the lower index), per-token k, optional renorm. routerLogits: [T, E]. */
export function moeRoute(routerLogits: Tensor, opts: RoutingOptions, out: Partial<MoeRouting> = {}): MoeRouting {
  const op = 'moeRoute';
  const shapes = `routerLogits ${fmtShape(routerLogits.shape)}`;
  expectTensor(op, 'routerLogits', routerLogits, [null, null]);
  const [T, E] = routerLogits.shape;
  expectTokens(op, T, shapes);
  expectExperts(op, E, shapes);
  const kMax = routingK(op, E, opts, shapes);
  const probs = outTensor(op, routerLogits, out.probs, [T, E]);
  const topIds = outTensor(op, routerLogits, out.topIds, [T, kMax], 'u32');
  const topW = outTensor(op, routerLogits, out.topW, [T, kMax]);
  routerLogits.gpu.dispatch({
    op,
    shapes: { routerLogits: routerLogits.shape },
    shader,
    entry: 'route',
    constants: { NORM_TOPK: opts.normTopK ?? false, DYNAMIC_K: opts.dynamic !== undefined },
    params: pack({ T, E, kMax, alpha: opts.dynamic?.alpha ?? 0, beta: opts.dynamic?.beta ?? 0 }),
    bindings: [routerLogits, probs, topIds, topW],
    workgroups: grid(Math.ceil(T / 64)),
  });
  return { probs, topIds, topW };
}

/**
 * Groups the assignments by expert, stably: the slots of expert e are its assignments in (token, j)
 * order, the same every run. topIds: [T, kMax] u32 over E experts.
 */
export function moePermute(topIds: Tensor, E: number, out: Partial<MoePermutation> = {}): MoePermutation {
  const op = 'moePermute';
  const shapes = `topIds ${fmtShape(topIds.shape)}, E ${E}`;
  expectTensor(op, 'topIds', topIds, [null, null], 'u32');
  const [T, kMax] = topIds.shape;
  expectTokens(op, T, shapes);
  expectExperts(op, E, shapes);
  if (kMax < 1 || kMax > MAX_TOP_K) fail(op, `topIds must have 1..${MAX_TOP_K} slots per token (${shapes})`);
  const nBlocks = Math.ceil(T / BLOCK);
  const slotToken = outTensor(op, topIds, out.slotToken, [T * kMax], 'u32');
  const tokenSlot = outTensor(op, topIds, out.tokenSlot, [T, kMax], 'u32');
  const expertOffsets = outTensor(op, topIds, out.expertOffsets, [E + 1], 'u32');
  const tileOffsets = outTensor(op, topIds, out.tileOffsets, [E + 1], 'u32');
  const blockOffsets = outTensor(op, topIds, out.blockOffsets, [E, nBlocks], 'u32');
  const params = pack({ T, E, kMax, nBlocks });
  const gpu = topIds.gpu;
  const common = { shapes: { topIds: topIds.shape }, shader, params };
  gpu.dispatch({ ...common, op: `${op} count`, entry: 'count', bindings: [topIds, blockOffsets], workgroups: grid(nBlocks) });
  gpu.dispatch({ ...common, op: `${op} scan`, entry: 'scan', bindings: [blockOffsets, expertOffsets, tileOffsets], workgroups: [1] });
  gpu.dispatch({
    ...common,
    op,
    entry: 'permute',
    bindings: [topIds, blockOffsets, expertOffsets, slotToken, tokenSlot],
    workgroups: grid(nBlocks),
  });
  return { slotToken, tokenSlot, expertOffsets, tileOffsets, blockOffsets };
}

/**
 * Every expert on its own slots: h = silu(x·Wgᵀ) ⊙ (x·Wuᵀ) with x's rows gathered through slotToken,
 * then ys = h·Wdᵀ. x: [T, H]; weights as in MoeWeights; slots = slotToken.shape[0] (T·kMax).
 */
export function moeExperts(
  x: Tensor,
  weights: Omit<MoeWeights, 'router'>,
  perm: Pick<MoePermutation, 'slotToken' | 'expertOffsets' | 'tileOffsets'>,
  out: Partial<MoeExpertOutputs> = {},
): MoeExpertOutputs {
  const op = 'moeExperts';
  const { gate_proj, up_proj, down_proj } = weights;
  const shapes = `x ${fmtShape(x.shape)}, gate_proj ${fmtShape(gate_proj.shape)}, up_proj ${fmtShape(up_proj.shape)}, ` +
    `down_proj ${fmtShape(down_proj.shape)}, slotToken ${fmtShape(perm.slotToken.shape)}`;
  expectTensor(op, 'x', x, [null, null]);
  const [T, H] = x.shape;
  expectTokens(op, T, shapes);
  expectTensor(op, 'gate_proj', gate_proj, [null, null, H]);
  const [E, I] = gate_proj.shape;
  expectExperts(op, E, shapes);
  if (I < 1) fail(op, `intermediate size must be ≥ 1 (${shapes})`);
  expectTensor(op, 'up_proj', up_proj, [E, I, H]);
  expectTensor(op, 'down_proj', down_proj, [E, H, I]);
  expectTensor(op, 'slotToken', perm.slotToken, [null], 'u32');
  expectTensor(op, 'expertOffsets', perm.expertOffsets, [E + 1], 'u32');
  expectTensor(op, 'tileOffsets', perm.tileOffsets, [E + 1], 'u32');
  const slots = perm.slotToken.shape[0];
  if (slots % T !== 0) fail(op, `slotToken length must be T·kMax (${shapes})`);
  const h = outTensor(op, x, out.h, [slots, I]);
  const ys = outTensor(op, x, out.ys, [slots, H]);
  const rowTiles = maxRowTiles(slots, E);
  const { expertOffsets, tileOffsets, slotToken } = perm;
  x.gpu.dispatch({
    op: `${op} gate_up`,
    shapes: { x: x.shape, gate_proj: gate_proj.shape, up_proj: up_proj.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'gate_up'),
    constants: { VEC4: H % 4 === 0 },
    params: GemmParams.pack({ N: I, K: H, E, M: 0 }),
    bindings: [expertOffsets, tileOffsets, x, gate_proj, up_proj, slotToken, h],
    workgroups: [Math.ceil(I / 64), rowTiles],
  });
  x.gpu.dispatch({
    op: `${op} down`,
    shapes: { h: h.shape, down_proj: down_proj.shape },
    shader: gemmShader,
    entry: gemmEntry(x.gpu, 'down'),
    constants: { VEC4: I % 4 === 0 },
    params: GemmParams.pack({ N: H, K: I, E, M: 0 }),
    bindings: [expertOffsets, tileOffsets, h, down_proj, ys],
    workgroups: [Math.ceil(H / 64), rowTiles],
  });
  return { h, ys };
}

/** y[t] = Σ_j topW[t,j] · ys[tokenSlot[t,j]]. ys: [T·kMax, H]; topW: [T, kMax]; tokenSlot: [T, kMax] u32. */
export function moeCombine(ys: Tensor, topW: Tensor, tokenSlot: Tensor, out?: Tensor): Tensor {
  const op = 'moeCombine';
  expectTensor(op, 'topW', topW, [null, null]);
  const [T, kMax] = topW.shape;
  expectTensor(op, 'ys', ys, [T * kMax, null]);
  expectTensor(op, 'tokenSlot', tokenSlot, [T, kMax], 'u32');
  const H = ys.shape[1];
  const y = outTensor(op, ys, out, [T, H]);
  ys.gpu.dispatch({
    op,
    shapes: { ys: ys.shape, topW: topW.shape },
    shader,
    entry: 'combine',
    params: pack({ T, H, kMax }),
    bindings: [ys, topW, tokenSlot, y],
    workgroups: grid(T),
  });
  return y;
}

/**
 * The MoE FFN block, all on the GPU: x [T, H] → y [T, H], with the router outputs and intermediates.
 * weights: router [E, H], gate_proj/up_proj [E, I, H], down_proj [E, H, I]. The tensors returned are
 * new (or opts.out's); the caller releases them.
 */
export function moeForward(x: Tensor, weights: MoeWeights, opts: MoeOptions): MoeForwardResult {
  const op = 'moeForward';
  const { router, gate_proj, up_proj, down_proj } = weights;
  const shapes = `x ${fmtShape(x.shape)}, router ${fmtShape(router.shape)}, gate_proj ${fmtShape(gate_proj.shape)}, ` +
    `up_proj ${fmtShape(up_proj.shape)}, down_proj ${fmtShape(down_proj.shape)}`;
  if (x.dtype !== 'f32' || x.shape.length !== 2) fail(op, `x must be f32 [T, H] (${shapes})`);
  const [T, H] = x.shape;
  expectTokens(op, T, shapes);
  if (router.dtype !== 'f32' || router.shape.length !== 2 || router.shape[1] !== H) fail(op, `router must be f32 [E, ${H}] (${shapes})`);
  const E = router.shape[0];
  expectExperts(op, E, shapes);
  if (gate_proj.dtype !== 'f32' || gate_proj.shape.length !== 3 || gate_proj.shape[0] !== E || gate_proj.shape[2] !== H) {
    fail(op, `gate_proj must be f32 [${E}, I, ${H}] (${shapes})`);
  }
  const I = gate_proj.shape[1];
  if (I < 1) fail(op, `intermediate size must be ≥ 1 (${shapes})`);
  const same = (t: Tensor, s: number[]) => t.dtype === 'f32' && t.shape.length === 3 && t.shape.every((d, i) => d === s[i]);
  if (!same(up_proj, [E, I, H])) fail(op, `up_proj must be f32 [${E}, ${I}, ${H}] (${shapes})`);
  if (!same(down_proj, [E, H, I])) fail(op, `down_proj must be f32 [${E}, ${H}, ${I}] (${shapes})`);
  const kMax = routingK(op, E, opts, shapes);

  const out = opts.out ?? {};
  const routerLogits = matmul(x, router, { transB: true, out: out.routerLogits });
  const routing = moeRoute(routerLogits, opts, out);
  const perm = moePermute(routing.topIds, E, out);
  const experts = moeExperts(x, { gate_proj, up_proj, down_proj }, perm, out);
  const y = moeCombine(experts.ys, routing.topW, perm.tokenSlot, out.y);
  return { y, routerLogits, kMax, ...routing, ...perm, ...experts };
}

// ----------------------------------------------------------------------------------------------- backward

/**
 * Gradients of y = combine(ys, topW): dTopW[t,j] = dy[t]·ys[s_tj] (0 where unused) and
 * dys[s_tj] = topW[t,j]·dy[t] (rows past the last used slot are 0). dy: [T, H]; ys: [T·kMax, H].
 */
export function moeCombineBackward(
  dy: Tensor,
  ys: Tensor,
  topW: Tensor,
  perm: Pick<MoePermutation, 'tokenSlot' | 'expertOffsets'>,
  out: { dTopW?: Tensor; dys?: Tensor } = {},
): { dTopW: Tensor; dys: Tensor } {
  const op = 'moeCombineBackward';
  expectTensor(op, 'dy', dy, [null, null]);
  const [T, H] = dy.shape;
  expectTensor(op, 'topW', topW, [T, null]);
  const kMax = topW.shape[1];
  expectTensor(op, 'ys', ys, [T * kMax, H]);
  expectTensor(op, 'tokenSlot', perm.tokenSlot, [T, kMax], 'u32');
  expectTensor(op, 'expertOffsets', perm.expertOffsets, [null], 'u32');
  const E = perm.expertOffsets.shape[0] - 1;
  const dTopW = outTensor(op, dy, out.dTopW, [T, kMax]);
  const dys = outTensor(op, dy, out.dys, [T * kMax, H]);
  dy.gpu.dispatch({
    op,
    shapes: { dy: dy.shape, ys: ys.shape, topW: topW.shape },
    shader,
    entry: 'combine_backward',
    params: pack({ T, E, H, kMax }),
    bindings: [dy, ys, topW, perm.tokenSlot, perm.expertOffsets, dTopW, dys],
    workgroups: grid(T),
  });
  return { dTopW, dys };
}

/**
 * dLogits [T, E] from dTopW [T, kMax] through the top-k weights (and their renormalisation when
 * normTopK, which must match the forward) and the softmax. probs: [T, E]; topIds: [T, kMax] u32.
 * The router weight and input gradients follow with matmulBackward(x, router, dLogits) (x·Wrᵀ).
 */
export function moeRouterBackward(
  dTopW: Tensor,
  probs: Tensor,
  topIds: Tensor,
  opts: { normTopK?: boolean; out?: Tensor } = {},
): Tensor {
  const op = 'moeRouterBackward';
  expectTensor(op, 'probs', probs, [null, null]);
  const [T, E] = probs.shape;
  expectTensor(op, 'topIds', topIds, [T, null], 'u32');
  const kMax = topIds.shape[1];
  expectTensor(op, 'dTopW', dTopW, [T, kMax]);
  const dLogits = outTensor(op, probs, opts.out, [T, E]);
  probs.gpu.dispatch({
    op,
    shapes: { dTopW: dTopW.shape, probs: probs.shape, topIds: topIds.shape },
    shader,
    entry: 'router_backward',
    constants: { NORM_TOPK: opts.normTopK ?? false },
    params: pack({ T, E, kMax }),
    bindings: [dTopW, probs, topIds, dLogits],
    workgroups: grid(Math.ceil(T / 64)),
  });
  return dLogits;
}

/** The noisy gate's setting while training: the noise floor `epsilon` and the softmax temperature's 1/τ. */
export interface NoisyGate {
  epsilon: number;
  invTau: number;
}

/**
 * Noisy top-k gating (arXiv 1701.06538 §3.1; LLaMA-MoE): z += ε ⊙ (softplus(m) + epsilon) / τ in place.
 * z: router logits already divided by τ [T, E]; m = x·Wnᵀ [T, E]; normals ε ~ N(0, 1) [T, E].
 */
export function moeNoisyLogits(z: Tensor, m: Tensor, normals: Tensor, g: NoisyGate): void {
  const op = 'moeNoisyLogits';
  const [T, E] = noisyShapes(op, m, normals, g);
  expectTensor(op, 'z', z, [T, E]);
  z.gpu.dispatch({
    op,
    shapes: { z: z.shape, m: m.shape },
    shader,
    entry: 'noisy_logits',
    params: pack({ len: T * E, coef: g.epsilon, alpha: g.invTau }),
    bindings: [m, normals, z],
    workgroups: grid(Math.ceil((T * E) / 64)),
  });
}

/** Gradient of moeNoisyLogits with respect to m: dm = dz ⊙ ε ⊙ sigmoid(m) / τ. */
export function moeNoisyLogitsBackward(dz: Tensor, m: Tensor, normals: Tensor, g: NoisyGate, out?: Tensor): Tensor {
  const op = 'moeNoisyLogitsBackward';
  const [T, E] = noisyShapes(op, m, normals, g);
  expectTensor(op, 'dz', dz, [T, E]);
  const dm = outTensor(op, m, out, [T, E]);
  m.gpu.dispatch({
    op,
    shapes: { dz: dz.shape, m: m.shape },
    shader,
    entry: 'noisy_backward',
    params: pack({ len: T * E, alpha: g.invTau }),
    bindings: [m, normals, dm, dz],
    workgroups: grid(Math.ceil((T * E) / 64)),
  });
  return dm;
}

function noisyShapes(op: string, m: Tensor, normals: Tensor, g: NoisyGate): [number, number] {
  expectTensor(op, 'm', m, [null, null]);
  expectTensor(op, 'normals', normals, m.shape);
  expectFinite(op, 'epsilon', g.epsilon);
  expectFinite(op, 'invTau', g.invTau);
  if (g.epsilon < 0 || g.invTau <= 0) fail(op, `epsilon must be ≥ 0 and invTau > 0, got ${g.epsilon} and ${g.invTau}`);
  return [m.shape[0], m.shape[1]];
}

/**
 * Switch-Transformer load-balancing loss L_aux = E·Σ_i f_i·P_i (f_i: share of the assignments routed to
 * expert i; P_i: mean router probability of i). Returns loss [1] and f [E]; with dLogits [T, E], also
 * adds coef·∂L_aux/∂logits into it (f_i held constant, as in the paper).
 */
export function moeAuxLoss(
  probs: Tensor,
  topIds: Tensor,
  opts: { dLogits?: Tensor; coef?: number; out?: { loss?: Tensor; f?: Tensor } } = {},
): { loss: Tensor; f: Tensor } {
  const op = 'moeAuxLoss';
  const { coef = 1 } = opts;
  expectFinite(op, 'coef', coef);
  expectTensor(op, 'probs', probs, [null, null]);
  const [T, E] = probs.shape;
  const shapes = `probs ${fmtShape(probs.shape)}, topIds ${fmtShape(topIds.shape)}`;
  expectTokens(op, T, shapes);
  expectExperts(op, E, shapes);
  expectTensor(op, 'topIds', topIds, [T, null], 'u32');
  const kMax = topIds.shape[1];
  if (opts.dLogits) expectTensor(op, 'dLogits', opts.dLogits, [T, E]);
  const loss = outTensor(op, probs, opts.out?.loss, [1]);
  const f = outTensor(op, probs, opts.out?.f, [E]);
  const params = pack({ T, E, kMax, coef });
  probs.gpu.dispatch({
    op, shapes: { probs: probs.shape, topIds: topIds.shape }, shader, entry: 'aux_loss', params,
    bindings: [probs, topIds, f, loss], workgroups: [1],
  });
  if (opts.dLogits) {
    probs.gpu.dispatch({
      op: `${op} grad`, shapes: { probs: probs.shape }, shader, entry: 'aux_grad', params,
      bindings: [probs, f, opts.dLogits], workgroups: grid(Math.ceil(T / 64)),
    });
  }
  return { loss, f };
}
