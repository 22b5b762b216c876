// MoE block checks: the GPU block (routing → permutation → grouped GEMMs → combine) against a DENSE float64
// reference that runs every expert on every token and weights it by the routing mask; routing and
// permutation exactly; the backward ops against float64 references that are themselves checked by
// finite differences; L_aux; and argument errors. Inputs are redrawn token by token until every routing
// decision is at least MARGIN away from a tie, so f32 and float64 route identically.
import type { CheckCase, CheckResult } from './check.ts';
import { TOL, compare, onEachGemmKernel, poisoned } from './check.ts';
import type { Gpu } from '../gpu/device.ts';
import { Tensor } from '../gpu/tensor.ts';
import { OpArgumentError } from '../gpu/errors.ts';
import { dot, fdError } from './gradcheck.ts';
import { blockLabel, makeBlock, sameBits, sortedMaxWeights, uploadBlock, type BlockShape } from './moe.fixtures.ts';
import {
  NONE, moeAuxLoss, moeCombineBackward, moeForward, moeNoisyLogits, moeNoisyLogitsBackward, moePermute, moeRoute, moeRouterBackward,
  type MoeForwardResult, type MoeWeights, type RoutingOptions,
} from './moe.ts';
import {
  auxLossRef, combineBackwardRef, combineRef, mixRef, moeDenseRef, noisyLogitsBackwardRef, noisyLogitsRef, permuteRef, routeRef, routerBackwardRef,
  routerLogitsRef, routingMaskRef, softmaxRef, type MoeDims,
} from './moe.ref.ts';

/** Every tensor in the given records. */
function tensors(...records: object[]): Tensor[] {
  return records.flatMap((r) => Object.values(r).filter((v): v is Tensor => v instanceof Tensor));
}

/** 0 when equal element for element, else Infinity (ids and slots must match exactly). */
function exact(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return Infinity;
  return 0;
}

/** Adds named pass/fail flags (0 or Infinity) to a comparison result. */
function withFlags(r: CheckResult, flags: Record<string, number>): CheckResult {
  for (const [name, v] of Object.entries(flags)) {
    r.outputs[name] = v;
    r.err = Math.max(r.err, v);
  }
  return r;
}

/** Poisoned routing outputs of moeForward, so any element a kernel skips fails the check. */
function poisonedRouting(gpu: Gpu, d: MoeDims, kMax: number) {
  const { T, H, E } = d;
  return {
    y: poisoned(gpu, [T, H]),
    routerLogits: poisoned(gpu, [T, E]),
    probs: poisoned(gpu, [T, E]),
    topIds: poisoned(gpu, [T, kMax], 'u32'),
    topW: poisoned(gpu, [T, kMax]),
    slotToken: poisoned(gpu, [T * kMax], 'u32'),
    tokenSlot: poisoned(gpu, [T, kMax], 'u32'),
    expertOffsets: poisoned(gpu, [E + 1], 'u32'),
    tileOffsets: poisoned(gpu, [E + 1], 'u32'),
  };
}

// ------------------------------------------------------------------------------------------ block forward

const blocks: BlockShape[] = [
  { T: 1, E: 4, H: 16, I: 24, topK: 1, smoke: true },
  { T: 7, E: 8, H: 32, I: 48, topK: 2, normTopK: true, smoke: true },
  { T: 37, E: 8, H: 29, I: 50, topK: 2 },
  { T: 37, E: 8, H: 30, I: 45, topK: 3, normTopK: true },
  { T: 130, E: 6, H: 64, I: 96, topK: 3, unrouted: 2 },
  { T: 130, E: 8, H: 48, I: 72, topK: 1, normTopK: true, unrouted: 1 },
  { T: 130, E: 8, H: 40, I: 61, dynamic: true, normTopK: true },
  { T: 37, E: 6, H: 33, I: 17, dynamic: true, unrouted: 1 },
  { T: 7, E: 8, H: 20, I: 12, topK: 8, normTopK: true },
];

const forward: CheckCase[] = blocks.map((s) => ({
  family: 'moe',
  name: `block vs dense reference ${blockLabel(s)}`,
  tol: TOL.gemm,
  smoke: s.smoke,
  async run(gpu, rng) {
    const b = makeBlock(rng, s);
    const { T, H, E } = b.d;
    const want = moeDenseRef(b.x, b.Wr, b.Wg, b.Wu, b.Wd, b.d, b.opts);
    const x = gpu.upload(b.x, [T, H], 'x');
    const weights = uploadBlock(gpu, b);
    const r = moeForward(x, weights, { ...b.opts, out: poisonedRouting(gpu, b.d, want.routing.kMax) });
    const topIds = await r.topIds.read();
    const offsets = await r.expertOffsets.read();
    const res = await compare(
      { y: [r.y, want.y], routerLogits: [r.routerLogits, want.logits], probs: [r.probs, want.routing.probs], topW: [r.topW, want.routing.topW] },
      [x, ...tensors(weights, r)],
    );
    const flags: Record<string, number> = { topIds: exact(topIds, want.routing.topIds) };
    if (s.unrouted) {
      const empty = Array.from({ length: E }, (_, e) => offsets[e + 1] - offsets[e]).filter((c) => c === 0).length;
      flags.expertWithNoToken = empty > 0 ? 0 : Infinity;
    }
    if (s.dynamic && T >= 7) flags.everyK = [1, 2, 3].every((k) => want.routing.k.includes(k)) ? 0 : Infinity;
    return withFlags(res, flags);
  },
}));

// ---------------------------------------------------------------------------------- routing, permutation

const permutation: CheckCase = {
  family: 'moe',
  name: 'permutation: stable grouping by expert, identical over two runs T130 E8 dynamic k',
  tol: TOL.gemm,
  async run(gpu, rng) {
    const s: BlockShape = { T: 130, E: 8, H: 24, I: 20, dynamic: true, normTopK: true, unrouted: 1 };
    const b = makeBlock(rng, s);
    const routing = routeRef(routerLogitsRef(b.x, b.Wr, b.d), s.T, s.E, b.opts);
    const want = permuteRef(routing.topIds, s.T, s.E, routing.kMax);
    const x = gpu.upload(b.x, [s.T, s.H], 'x');
    const weights = uploadBlock(gpu, b);
    const r1 = moeForward(x, weights, { ...b.opts, out: poisonedRouting(gpu, b.d, routing.kMax) });
    const r2 = moeForward(x, weights, b.opts);
    // The reference is a valid grouping by construction (each assignment once, experts in order, (t, j)
    // order within an expert, NONE past the used slots), so equality with it shows the GPU's is too.
    const flags: Record<string, number> = {
      slotToken: exact(await r1.slotToken.read(), want.slotToken),
      tokenSlot: exact(await r1.tokenSlot.read(), want.tokenSlot),
      expertOffsets: exact(await r1.expertOffsets.read(), want.expertOffsets),
      tileOffsets: exact(await r1.tileOffsets.read(), want.tileOffsets),
    };
    for (const k of ['y', 'probs', 'topIds', 'topW', 'slotToken', 'tokenSlot', 'expertOffsets', 'tileOffsets'] as const) {
      flags[`${k} run 2`] = await sameBits(r1[k], r2[k]);
    }
    const res = await compare({ topW: [r1.topW, routing.topW] }, [x, ...tensors(weights, r1, r2)]);
    return withFlags(res, flags);
  },
};

// Integer logits tie many experts exactly (in f32 too): ties must go to the lower expert index.
const ties: CheckCase = {
  family: 'moe',
  name: 'route + permute: E256 top-8 renorm, tied logits go to the lower index, T130',
  tol: TOL.gemm,
  async run(gpu, rng) {
    const [T, E, k] = [130, 256, 8];
    const opts: RoutingOptions = { topK: k, normTopK: true };
    const logits = Float32Array.from({ length: T * E }, () => rng.int(4));
    const routing = routeRef(logits, T, E, opts);
    const want = permuteRef(routing.topIds, T, E, k);
    const z = gpu.upload(logits, [T, E], 'routerLogits');
    const r = moeRoute(z, opts, { probs: poisoned(gpu, [T, E]), topIds: poisoned(gpu, [T, k], 'u32'), topW: poisoned(gpu, [T, k]) });
    const p = moePermute(r.topIds, E, {
      slotToken: poisoned(gpu, [T * k], 'u32'), tokenSlot: poisoned(gpu, [T, k], 'u32'),
      expertOffsets: poisoned(gpu, [E + 1], 'u32'), tileOffsets: poisoned(gpu, [E + 1], 'u32'),
    });
    const flags = {
      topIds: exact(await r.topIds.read(), routing.topIds),
      slotToken: exact(await p.slotToken.read(), want.slotToken),
      tokenSlot: exact(await p.tokenSlot.read(), want.tokenSlot),
      expertOffsets: exact(await p.expertOffsets.read(), want.expertOffsets),
      tileOffsets: exact(await p.tileOffsets.read(), want.tileOffsets),
    };
    const res = await compare({ probs: [r.probs, routing.probs], topW: [r.topW, routing.topW] }, [z, ...tensors(r, p)]);
    return withFlags(res, flags);
  },
};

// ---------------------------------------------------------------------------------------------- backward

/** Tercile thresholds for dynamic k from the largest routing weight of each token. */
function terciles(probs: Float64Array, T: number, E: number): { alpha: number; beta: number } {
  const w = sortedMaxWeights(probs, T, E);
  const between = (i: number) => (w[i - 1] + w[i]) / 2;
  return { alpha: between(Math.round((2 * T) / 3)), beta: between(Math.round(T / 3)) };
}

const combineBackward: CheckCase = {
  family: 'moe',
  name: 'combine backward dTopW, dys T37 E6 H29 dynamic k (finite differences)',
  tol: TOL.grad,
  async run(gpu, rng) {
    const [T, E, H] = [37, 6, 29];
    const logits = rng.normals(T * E, 1.5);
    const routing = routeRef(logits, T, E, { dynamic: terciles(softmaxRef(logits, T, E), T, E), normTopK: true });
    const { kMax } = routing;
    const perm = permuteRef(routing.topIds, T, E, kMax);
    const topW = Float32Array.from(routing.topW);
    const ys = rng.normals(T * kMax * H);
    const G = rng.normals(T * H);
    const want = combineBackwardRef(G, ys, topW, perm.tokenSlot, T, H, kMax);
    const fdW = fdError((w) => dot(G, combineRef(ys, w, perm.tokenSlot, T, H, kMax)), topW, want.dTopW, rng);
    const fdYs = fdError((v) => dot(G, combineRef(v, topW, perm.tokenSlot, T, H, kMax)), ys, want.dys, rng);
    const dy = gpu.upload(G, [T, H], 'dy');
    const ysT = gpu.upload(ys, [T * kMax, H], 'ys');
    const topWT = gpu.upload(topW, [T, kMax], 'topW');
    const tokenSlot = gpu.upload(perm.tokenSlot, [T, kMax], 'tokenSlot');
    const expertOffsets = gpu.upload(perm.expertOffsets, [E + 1], 'expertOffsets');
    const out = { dTopW: poisoned(gpu, [T, kMax]), dys: poisoned(gpu, [T * kMax, H]) };
    moeCombineBackward(dy, ysT, topWT, { tokenSlot, expertOffsets }, out);
    const r = await compare({ dTopW: [out.dTopW, want.dTopW], dys: [out.dys, want.dys] }, [dy, ysT, topWT, tokenSlot, expertOffsets, ...tensors(out)]);
    r.outputs.fd_dTopW = fdW;
    r.outputs.fd_dys = fdYs;
    r.err = Math.max(r.err, fdW, fdYs);
    return r;
  },
};

// The whole distillation backward on the GPU (block forward → combine backward → router backward), with
// the float64 router gradient checked against finite differences of the full block's Σ g·y as a function
// of the router logits.
const routerShapes: BlockShape[] = [
  { T: 37, E: 8, H: 24, I: 20, topK: 2, normTopK: true },
  { T: 37, E: 6, H: 20, I: 16, topK: 3 },
  { T: 37, E: 8, H: 24, I: 20, dynamic: true, normTopK: true },
];

const routerBackward: CheckCase[] = routerShapes.map((s) => ({
  family: 'moe',
  name: `router backward through top-k and softmax ${blockLabel(s)} (block finite differences)`,
  tol: TOL.grad,
  async run(gpu, rng) {
    const b = makeBlock(rng, s);
    const { T, H, E } = b.d;
    const want = moeDenseRef(b.x, b.Wr, b.Wg, b.Wu, b.Wd, b.d, b.opts);
    const { topIds, probs, kMax } = want.routing;
    const G = rng.normals(T * H);
    const dTopW = new Float64Array(T * kMax);
    for (let a = 0; a < T * kMax; a++) {
      if (topIds[a] === NONE) continue;
      const t = Math.floor(a / kMax);
      dTopW[a] = dot(G.subarray(t * H, (t + 1) * H), want.outs.subarray((t * E + topIds[a]) * H, (t * E + topIds[a] + 1) * H));
    }
    const dLogits = routerBackwardRef(dTopW, probs, topIds, T, E, kMax, Boolean(s.normTopK));
    const blockLoss = (z: Float64Array) => {
      const r = routeRef(z, T, E, b.opts);
      return dot(G, mixRef(routingMaskRef(r.topIds, r.topW, T, E, kMax), want.outs, T, E, H));
    };
    const fd = fdError(blockLoss, want.logits, dLogits, rng);

    const x = gpu.upload(b.x, [T, H], 'x');
    const weights = uploadBlock(gpu, b);
    const dy = gpu.upload(G, [T, H], 'dy');
    const f = moeForward(x, weights, b.opts);
    const cb = moeCombineBackward(dy, f.ys, f.topW, f, { dTopW: poisoned(gpu, [T, kMax]) });
    const dL = moeRouterBackward(cb.dTopW, f.probs, f.topIds, { normTopK: s.normTopK, out: poisoned(gpu, [T, E]) });
    const r = await compare({ dTopW: [cb.dTopW, dTopW], dLogits: [dL, dLogits] }, [x, dy, dL, ...tensors(weights, f, cb)]);
    r.outputs.fd_dLogits = fd;
    r.err = Math.max(r.err, fd);
    return r;
  },
}));

// The noisy gate's noise and its gradient, elementwise over ragged [T, E]; m spans both tails of softplus
// (|m| up to 30) so the overflow-free form is exercised. The reference gradient is checked by finite
// differences of Σ G ⊙ z(m).
const noisyShapes = [{ T: 37, E: 6, tau: 1 }, { T: 130, E: 8, tau: 0.05 }, { T: 3, E: 5, tau: 0.5 }];

const noisyGate: CheckCase[] = noisyShapes.map(({ T, E, tau }) => ({
  family: 'moe',
  name: `noisy gate: z += ε(softplus(m) + eps)/τ and dm T${T} E${E} τ ${tau} (finite differences)`,
  tol: TOL.grad,
  async run(gpu, rng) {
    const n = T * E;
    const g = { epsilon: 0.01, invTau: 1 / tau };
    const z0 = rng.normals(n, 2);
    const m = Float32Array.from(rng.normals(n, 3), (v, i) => (i % 7 === 0 ? 10 * v : v));
    const normals = rng.normals(n);
    const G = rng.normals(n);
    const wantZ = noisyLogitsRef(z0, m, normals, g.epsilon, g.invTau);
    const wantDm = noisyLogitsBackwardRef(G, m, normals, g.invTau);
    const fd = fdError((v) => dot(G, noisyLogitsRef(z0, v, normals, g.epsilon, g.invTau)), m, wantDm, rng);
    const zT = gpu.upload(z0, [T, E], 'z');
    const mT = gpu.upload(m, [T, E], 'm');
    const nT = gpu.upload(normals, [T, E], 'normals');
    const dz = gpu.upload(G, [T, E], 'dz');
    moeNoisyLogits(zT, mT, nT, g);
    const dm = moeNoisyLogitsBackward(dz, mT, nT, g, poisoned(gpu, [T, E]));
    const r = await compare({ z: [zT, wantZ], dm: [dm, wantDm] }, [zT, mT, nT, dz, dm]);
    r.outputs.fd_dm = fd;
    r.err = Math.max(r.err, fd);
    return r;
  },
}));

const auxShapes: { T: number; E: number; opts: (p: Float64Array) => RoutingOptions; name: string }[] = [
  { T: 130, E: 8, opts: () => ({ topK: 2 }), name: 'top-2' },
  { T: 37, E: 6, opts: (p) => ({ dynamic: terciles(p, 37, 6) }), name: 'dynamic k' },
];

const auxLoss: CheckCase[] = auxShapes.map(({ T, E, opts, name }) => ({
  family: 'moe',
  name: `aux loss L_aux = N·Σ f·P and its logit gradient T${T} E${E} ${name} (finite differences)`,
  tol: TOL.grad,
  async run(gpu, rng) {
    const logits = rng.normals(T * E, 1.5);
    const routing = routeRef(logits, T, E, opts(softmaxRef(logits, T, E)));
    const { topIds, kMax } = routing;
    const want = auxLossRef(routing.probs, topIds, T, E, kMax);
    // f is constant (counts of a discrete choice); L_aux varies with z through P only.
    const fd = fdError((z) => auxLossRef(softmaxRef(z, T, E), topIds, T, E, kMax).loss, logits, want.dLogits, rng);
    const coef = 0.5;
    const d0 = rng.normals(T * E, 1e-3);
    const probs = gpu.upload(Float32Array.from(routing.probs), [T, E], 'probs');
    const ids = gpu.upload(topIds, [T, kMax], 'topIds');
    const grad = gpu.upload(new Float32Array(T * E), [T, E], 'dLogits');
    const accumulated = gpu.upload(d0, [T, E], 'dLogits');
    const out = { loss: poisoned(gpu, [1]), f: poisoned(gpu, [E]) };
    moeAuxLoss(probs, ids, { dLogits: grad, out });
    moeAuxLoss(probs, ids, { dLogits: accumulated, coef });
    const r = await compare(
      {
        loss: [out.loss, [want.loss]],
        f: [out.f, want.f],
        dLogits: [grad, want.dLogits],
        'dLogits0 + coef·dL/dz': [accumulated, d0.map((v, i) => v + coef * want.dLogits[i])],
      },
      [probs, ids, grad, accumulated, ...tensors(out)],
    );
    r.outputs.fd_dLogits = fd;
    r.err = Math.max(r.err, fd);
    return r;
  },
}));

// ---------------------------------------------------------------------------------------- argument errors

interface BadInput { name: string; T: number; H: number; E: number; routerH?: number; gateH?: number; opts: RoutingOptions }

const badInputs: BadInput[] = [
  { name: 'topK 0', T: 5, H: 16, E: 4, opts: { topK: 0 } },
  { name: 'topK 9 > 8', T: 5, H: 16, E: 16, opts: { topK: 9 } },
  { name: 'topK 5 > E 4', T: 5, H: 16, E: 4, opts: { topK: 5 } },
  { name: 'dynamic beta > alpha', T: 5, H: 16, E: 4, opts: { dynamic: { alpha: 0.3, beta: 0.5 } } },
  { name: 'dynamic alpha NaN', T: 5, H: 16, E: 4, opts: { dynamic: { alpha: NaN, beta: 0.1 } } },
  { name: 'router H 12 ≠ x H 16', T: 5, H: 16, E: 4, routerH: 12, opts: { topK: 2 } },
  { name: 'gate_proj H 12 ≠ x H 16', T: 5, H: 16, E: 4, gateH: 12, opts: { topK: 2 } },
];

const argumentErrors: CheckCase[] = badInputs.map((c) => ({
  family: 'moe',
  name: `throws OpArgumentError naming moeForward: ${c.name}`,
  tol: 0,
  async run(gpu) {
    const { T, H, E } = c;
    const I = 8;
    const x = gpu.tensor([T, H], 'f32', 'x');
    const weights: MoeWeights = {
      router: gpu.tensor([E, c.routerH ?? H], 'f32', 'router'),
      gate_proj: gpu.tensor([E, I, c.gateH ?? H], 'f32', 'gate_proj'),
      up_proj: gpu.tensor([E, I, H], 'f32', 'up_proj'),
      down_proj: gpu.tensor([E, H, I], 'f32', 'down_proj'),
    };
    let err = Infinity;
    let r: MoeForwardResult | undefined;
    try {
      r = moeForward(x, weights, c.opts);
    } catch (e) {
      if (e instanceof OpArgumentError && e.message.includes('moeForward')) err = 0;
    }
    for (const t of [x, ...tensors(weights, r ?? {})]) t.release();
    return { err, outputs: { threw: err } };
  },
}));

export const moeChecks: CheckCase[] = [
  ...onEachGemmKernel(forward), permutation, ties, combineBackward, ...routerBackward, ...noisyGate, ...auxLoss, ...argumentErrors,
];
