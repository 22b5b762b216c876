// MoE distillation-step checks (moe-train.ts): the training expert forward and the grouped expert backward
// on ragged expert segments (empty experts included) against float64 references whose gradients are checked
// by finite differences; the aux gradient with its coefficient read from the GPU; the distillation loss;
// one whole moeDistillStep against a float64 step (forward, L = L_mse + α·‖L_mse‖·L_aux with ‖L_mse‖
// detached, backward, Adam), its gradient checked by finite differences of the float64 loss; and 30 steps
// distilling a dense SwiGLU FFN into its contiguous split (LaDiMo §4.1), where the MSE must fall.
import type { CheckCase, CheckResult } from './check.ts';
import { TOL, onEachGemmKernel, poisoned, relL2 } from './check.ts';
import type { Gpu } from '../gpu/device.ts';
import { OpArgumentError } from '../gpu/errors.ts';
import type { HostArray, Tensor } from '../gpu/tensor.ts';
import type { Rng } from '../data/rng.ts';
import { dot, fdError } from './gradcheck.ts';
import { blockLabel, makeBlock, sameBits, uploadBlock, type BlockShape } from './moe.fixtures.ts';
import { NONE, moeAuxLoss, type MoeWeights } from './moe.ts';
import { permuteRef, routeRef, softmaxRef, auxLossRef, type MoeDims } from './moe.ref.ts';
import {
  createDistillState, lossPartials, moeAuxGrad, moeDistillLoss, moeDistillStep, moeExpertsBackward, moeExpertsInputGrad,
  moeExpertsTrain, releaseDistillState, type DistillOptions,
} from './moe-train.ts';
import {
  denseFfnRef, distillLossRef, distillObjectiveRef, distillStepRef, downSlotsRef, expertsBackwardRef, expertsInputGradRef,
  expertsTrainRef, splitFfnRef, swigluRowsRef, type DistillWeights64,
} from './moe-train.ref.ts';

const FAMILY = 'moe-train';
/** Outputs compared on their first `n` elements (rows past the last used slot are never written). */
type Outputs = Record<string, [Tensor, ArrayLike<number>, number?]>;

async function compareFirst(outputs: Outputs, flags: Record<string, number> = {}): Promise<CheckResult> {
  const res: CheckResult = { err: 0, outputs: {} };
  for (const [name, [t, want, n = want.length]] of Object.entries(outputs)) {
    const got = await t.read();
    const e = relL2(got.subarray(0, n), Array.prototype.slice.call(want, 0, n));
    res.outputs[name] = e;
    res.err = Math.max(res.err, Number.isNaN(e) ? Infinity : e);
  }
  for (const [name, v] of Object.entries(flags)) {
    res.outputs[name] = v;
    res.err = Math.max(res.err, Number.isNaN(v) ? Infinity : v);
  }
  return res;
}

function releaseAll(...ts: (Tensor | undefined)[]): void {
  for (const t of ts) t?.release();
}

// ------------------------------------------------------------------------- expert forward and backward

interface SlotShape extends MoeDims {
  /** experts per token, or 'dynamic': 1, 2 or 3 drawn per token */
  k: number | 'dynamic';
  /** experts no token is routed to */
  empty?: number[];
  smoke?: boolean;
}

const slotShapes: SlotShape[] = [
  { T: 7, E: 4, H: 16, I: 12, k: 1, empty: [2], smoke: true },
  { T: 7, E: 8, H: 20, I: 10, k: 'dynamic', empty: [0, 7] },
  { T: 37, E: 8, H: 29, I: 40, k: 2, empty: [5] },
  { T: 37, E: 4, H: 48, I: 20, k: 3, empty: [0] },
  { T: 130, E: 8, H: 24, I: 36, k: 'dynamic', empty: [3] },
  { T: 130, E: 4, H: 33, I: 17, k: 2, empty: [1] },
  { T: 130, E: 4, H: 40, I: 32, k: 1 },
];

function slotLabel(s: SlotShape): string {
  const k = s.k === 'dynamic' ? 'dynamic k' : `top-${s.k}`;
  const empty = s.empty?.length ? `, expert${s.empty.length > 1 ? 's' : ''} ${s.empty.join(',')} empty` : '';
  return `T${s.T} E${s.E} H${s.H} I${s.I} ${k}${empty}`;
}

/** Random distinct experts per token (never the empty ones): topIds [T, kMax], NONE past each token's k. */
function randomTopIds(rng: Rng, s: SlotShape): { topIds: Uint32Array; kMax: number } {
  const kMax = s.k === 'dynamic' ? 3 : s.k;
  const pool = Array.from({ length: s.E }, (_, e) => e).filter((e) => !s.empty?.includes(e));
  const topIds = new Uint32Array(s.T * kMax).fill(NONE);
  for (let t = 0; t < s.T; t++) {
    const k = s.k === 'dynamic' ? 1 + rng.int(3) : s.k;
    for (let j = 0; j < k; j++) {
      const r = j + rng.int(pool.length - j);
      [pool[j], pool[r]] = [pool[r], pool[j]];
      topIds[t * kMax + j] = pool[j];
    }
  }
  return { topIds, kMax };
}

function uploadExperts(gpu: Gpu, d: MoeDims, Wg: Float32Array, Wu: Float32Array, Wd: Float32Array): Omit<MoeWeights, 'router'> {
  const { H, I, E } = d;
  return {
    gate_proj: gpu.upload(Wg, [E, I, H], 'gate_proj'),
    up_proj: gpu.upload(Wu, [E, I, H], 'up_proj'),
    down_proj: gpu.upload(Wd, [E, H, I], 'down_proj'),
  };
}

const expertCases: CheckCase[] = slotShapes.map((s) => ({
  family: FAMILY,
  name: `expert forward (g, u, h, ys) and backward (dg‖du, dWg, dWu, dWd, dx) ${slotLabel(s)} (finite differences)`,
  tol: TOL.grad,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { T, H, I, E } = s;
    const d = { T, H, I, E };
    const { topIds, kMax } = randomTopIds(rng, s);
    const slots = T * kMax;
    const perm = permuteRef(topIds, T, E, kMax);
    const used = perm.expertOffsets[E];
    const x = rng.normals(T * H);
    const Wg = rng.normals(E * I * H, 1 / Math.sqrt(H));
    const Wu = rng.normals(E * I * H, 1 / Math.sqrt(H));
    const Wd = rng.normals(E * H * I, 1 / Math.sqrt(I));
    const dys = rng.normals(slots * H);
    dys.fill(0, used * H);   // as moeCombineBackward leaves them

    // float64 references, and their gradients against finite differences of Σ dys·ys
    const fw = expertsTrainRef(x, { Wg, Wu, Wd }, perm, d, slots);
    const bw = expertsBackwardRef(x, Wd, perm, fw.gu, fw.h, dys, d, slots);
    const dx = expertsInputGradRef(bw.dgu, { Wg, Wu }, perm, d);
    const ysOf = (w: { Wg?: ArrayLike<number>; Wu?: ArrayLike<number>; Wd?: ArrayLike<number> }) =>
      dot(dys, expertsTrainRef(x, { Wg, Wu, Wd, ...w }, perm, d, slots).ys);
    const fd = {
      fd_dWg: fdError((w) => ysOf({ Wg: w }), Wg, bw.dWg, rng),
      fd_dWu: fdError((w) => ysOf({ Wu: w }), Wu, bw.dWu, rng),
      fd_dWd: fdError((w) => ysOf({ Wd: w }), Wd, bw.dWd, rng),
      fd_dgu: fdError((gu) => dot(dys, downSlotsRef(swigluRowsRef(gu, slots, I), Wd, perm, d, slots)), fw.gu.subarray(0, used * 2 * I), bw.dgu, rng),
      fd_dx: fdError((v) => dot(dys, expertsTrainRef(v, { Wg, Wu, Wd }, perm, d, slots).ys), x, dx, rng),
    };

    const xT = gpu.upload(x, [T, H], 'x');
    const w = uploadExperts(gpu, d, Wg, Wu, Wd);
    const p = {
      slotToken: gpu.upload(perm.slotToken, [slots], 'slotToken'),
      expertOffsets: gpu.upload(perm.expertOffsets, [E + 1], 'expertOffsets'),
      tileOffsets: gpu.upload(perm.tileOffsets, [E + 1], 'tileOffsets'),
      tokenSlot: gpu.upload(perm.tokenSlot, [T, kMax], 'tokenSlot'),
    };
    const dysT = gpu.upload(dys, [slots, H], 'dys');
    const f = moeExpertsTrain(xT, w, p, { gu: poisoned(gpu, [slots, 2 * I]), h: poisoned(gpu, [slots, I]), ys: poisoned(gpu, [slots, H]) });
    const out = () => ({
      dgu: poisoned(gpu, [slots, 2 * I]), dWg: poisoned(gpu, [E, I, H]), dWu: poisoned(gpu, [E, I, H]), dWd: poisoned(gpu, [E, H, I]),
    });
    const g = moeExpertsBackward(xT, w, p, f, dysT, out());
    const again = moeExpertsBackward(xT, w, p, f, dysT, out());
    const gx = moeExpertsInputGrad(xT, w, p, g.dgu, { dx: poisoned(gpu, [T, H]), dxs: poisoned(gpu, [slots, H]) });
    const gxAgain = moeExpertsInputGrad(xT, w, p, g.dgu);

    // Experts with no slot get exact zeros; a second run gives the same bits.
    const flags: Record<string, number> = { ...fd };
    const [dWg, dWu, dWd] = [await g.dWg.read(), await g.dWu.read(), await g.dWd.read()];
    const zero = (a: HostArray, e: number, n: number) => a.subarray(e * n, (e + 1) * n).every((v) => v === 0);
    if (s.empty?.length) flags.emptyExpertZero = s.empty.every((e) => zero(dWg, e, I * H) && zero(dWu, e, I * H) && zero(dWd, e, H * I)) ? 0 : Infinity;
    flags.deterministic = Math.max(
      await sameBits(g.dgu, again.dgu, used * 2 * I), await sameBits(g.dWg, again.dWg), await sameBits(g.dWu, again.dWu), await sameBits(g.dWd, again.dWd),
      await sameBits(gx, gxAgain),
    );
    const res = await compareFirst({
      gu: [f.gu, fw.gu, used * 2 * I],
      h: [f.h, fw.h, used * I],
      ys: [f.ys, fw.ys, used * H],
      dgu: [g.dgu, bw.dgu, used * 2 * I],
      dWg: [g.dWg, bw.dWg],
      dWu: [g.dWu, bw.dWu],
      dWd: [g.dWd, bw.dWd],
      dx: [gx, dx],
    }, flags);
    releaseAll(xT, dysT, gx, gxAgain, ...Object.values(w), ...Object.values(p), ...Object.values(f), ...Object.values(g), ...Object.values(again));
    return res;
  },
}));

// --------------------------------------------------------------------------- aux gradient, loss

const auxGrad: CheckCase = {
  family: FAMILY,
  name: 'aux gradient dLogits += α·c·∂L_aux/∂z with c read from a GPU scalar T37 E6 top-2',
  tol: TOL.grad,
  async run(gpu, rng) {
    const [T, E, kMax, alpha, c] = [37, 6, 2, 0.3, 0.8125];
    const logits = rng.normals(T * E, 1.5);
    const routing = routeRef(logits, T, E, { topK: kMax });
    const want = auxLossRef(routing.probs, routing.topIds, T, E, kMax);
    const fd = fdError((z) => auxLossRef(softmaxRef(z, T, E), routing.topIds, T, E, kMax).loss, logits, want.dLogits, rng);
    const d0 = rng.normals(T * E, 1e-2);
    const probs = gpu.upload(Float32Array.from(routing.probs), [T, E], 'probs');
    const ids = gpu.upload(routing.topIds, [T, kMax], 'topIds');
    const coef = gpu.upload(Float32Array.of(c), [1], 'L_mse');
    const dLogits = gpu.upload(d0, [T, E], 'dLogits');
    const aux = moeAuxLoss(probs, ids);
    moeAuxGrad(probs, aux.f, dLogits, { coefFrom: coef, alpha });
    const res = await compareFirst({ 'dLogits0 + α·c·dL_aux/dz': [dLogits, d0.map((v, i) => v + alpha * c * want.dLogits[i])] }, { fd_dLogits: fd });
    releaseAll(probs, ids, coef, dLogits, aux.loss, aux.f);
    return res;
  },
};

const lossShapes = [
  { T: 7, H: 16, smoke: true },
  { T: 130, H: 48 },     // 6240 elements: 4 partial sums
  { T: 1000, H: 37 },    // 37000: 19
];

const distillLoss: CheckCase[] = lossShapes.map(({ T, H, smoke }) => ({
  family: FAMILY,
  name: `distill loss L_mse and L_tot = L_mse + α·L_mse·L_aux T${T} H${H} (${lossPartials(T * H)} partial sums)`,
  tol: TOL.gemm,
  smoke,
  async run(gpu, rng) {
    const [alpha, auxV] = [0.25, 1.375];
    const a = rng.normals(T * H);
    const b = rng.normals(T * H);
    const want = distillLossRef(a, b, auxV, alpha);
    const A = gpu.upload(a, [T, H], 'yHat');
    const B = gpu.upload(b, [T, H], 'target');
    const aux = gpu.upload(Float32Array.of(auxV), [1], 'L_aux');
    const out = { mse: poisoned(gpu, [1]), total: poisoned(gpu, [1]), partials: poisoned(gpu, [lossPartials(T * H)]) };
    moeDistillLoss(A, B, aux, alpha, out);
    const again = moeDistillLoss(A, B, aux, alpha);
    const flags = { deterministic: Math.max(await sameBits(out.mse, again.mse), await sameBits(out.total, again.total)) };
    const res = await compareFirst({ mse: [out.mse, [want.mse]], total: [out.total, [want.total]] }, flags);
    releaseAll(A, B, aux, out.mse, out.total, out.partials, again.mse, again.total);
    return res;
  },
}));

// ----------------------------------------------------------------------------------------- whole step

const stepShapes: BlockShape[] = [
  { T: 37, E: 4, H: 16, I: 12, topK: 2, normTopK: true, smoke: true },
  { T: 7, E: 4, H: 20, I: 8, topK: 1, unrouted: 1 },
  { T: 37, E: 8, H: 32, I: 40, topK: 3 },
  { T: 130, E: 8, H: 24, I: 20, dynamic: true, normTopK: true, unrouted: 1 },
  { T: 130, E: 4, H: 48, I: 28, dynamic: true },
];

const ALPHA = 0.3;
const ADAM = { lr: 1e-3, betas: [0.9, 0.999] as const, eps: 1e-8 };

const wholeStep: CheckCase[] = stepShapes.map((s) => ({
  family: FAMILY,
  name: `moeDistillStep vs float64 step (forward, L_mse + α‖L_mse‖L_aux, backward, Adam) ${blockLabel(s)} (finite differences)`,
  tol: TOL.grad,
  smoke: s.smoke,
  async run(gpu, rng) {
    const b = makeBlock(rng, s);
    const { T, H, E } = b.d;
    const target = rng.normals(T * H, 0.5);
    // float64 step from the same f32 weights
    const W0 = { Wr: b.Wr, Wg: b.Wg, Wu: b.Wu, Wd: b.Wd };
    const W: DistillWeights64 = { Wr: Float64Array.from(b.Wr), Wg: Float64Array.from(b.Wg), Wu: Float64Array.from(b.Wu), Wd: Float64Array.from(b.Wd) };
    const moments = Object.fromEntries((['Wr', 'Wg', 'Wu', 'Wd'] as const).map((k) => [k, { m: new Float64Array(W[k].length), v: new Float64Array(W[k].length) }])) as
      Record<keyof DistillWeights64, { m: Float64Array; v: Float64Array }>;
    const adam = { lr: ADAM.lr, beta1: ADAM.betas[0], beta2: ADAM.betas[1], eps: ADAM.eps };
    const { forward: fw, grads } = distillStepRef(b.x, target, W, moments, b.d, b.opts, ALPHA, 1, adam);
    // the float64 gradient of L_mse + α·c·L_aux (c = L_mse held) against finite differences
    const objective = (k: keyof DistillWeights64) => (v: Float64Array) =>
      distillObjectiveRef(b.x, target, { ...W0, [k]: v }, b.d, b.opts, ALPHA, fw.mse);
    const fd = {
      fd_dWr: fdError(objective('Wr'), b.Wr, grads.dWr, rng),
      fd_dWg: fdError(objective('Wg'), b.Wg, grads.dWg, rng),
      fd_dWu: fdError(objective('Wu'), b.Wu, grads.dWu, rng),
      fd_dWd: fdError(objective('Wd'), b.Wd, grads.dWd, rng),
    };

    const x = gpu.upload(b.x, [T, H], 'x');
    const y = gpu.upload(target, [T, H], 'target');
    const weights = uploadBlock(gpu, b);
    const opts: DistillOptions = { T, ...b.opts, alpha: ALPHA, ...ADAM };
    const state = createDistillState(gpu, weights, opts);
    const losses = moeDistillStep(state, { x, target: y });
    const flags: Record<string, number> = { ...fd };
    const ids = await state.topIds.read();
    flags.topIds = ids.every((v, i) => v === fw.routing.topIds[i]) ? 0 : Infinity;
    if (s.unrouted) {
      const off = await state.expertOffsets.read();
      flags.expertWithNoToken = Array.from({ length: E }, (_, e) => off[e + 1] - off[e]).some((c) => c === 0) ? 0 : Infinity;
    }
    // The update itself (W_new − W_0), held to 10× the tolerance (reported ÷10): Adam's first step is
    // lr·g/(|g| + ε), whose sensitivity ε/(|g| + ε)² turns the f32 rounding of the few gradient elements
    // with |g| ≈ ε into ~1e-5 relative errors of the update. W_new itself is held to the tolerance.
    const delta = async (t: Tensor, w0: Float32Array) => Float64Array.from(await t.read(), (v, i) => v - w0[i]);
    const step = (k: keyof DistillWeights64) => W[k].map((v, i) => v - W0[k][i]);
    const gotDelta = {
      Wr: await delta(weights.router, b.Wr), Wg: await delta(weights.gate_proj, b.Wg),
      Wu: await delta(weights.up_proj, b.Wu), Wd: await delta(weights.down_proj, b.Wd),
    };
    for (const k of ['Wr', 'Wg', 'Wu', 'Wd'] as const) flags[`Δ${k}÷10`] = relL2(gotDelta[k], step(k)) / 10;
    const res = await compareFirst({
      L_mse: [losses.mse, [fw.mse]],
      L_aux: [losses.aux, [fw.aux.loss]],
      L_tot: [losses.total, [fw.total]],
      y: [state.y, fw.y],
      dLogits: [state.dLogits, grads.dLogits],
      dWr: [state.grads.router, grads.dWr],
      dWg: [state.grads.gate_proj, grads.dWg],
      dWu: [state.grads.up_proj, grads.dWu],
      dWd: [state.grads.down_proj, grads.dWd],
      router: [weights.router, W.Wr],
      gate_proj: [weights.gate_proj, W.Wg],
      up_proj: [weights.up_proj, W.Wu],
      down_proj: [weights.down_proj, W.Wd],
    }, flags);
    releaseDistillState(state);
    releaseAll(x, y, ...Object.values(weights));
    return res;
  },
}));

// ------------------------------------------------------------------------------------ loss goes down

// A dense SwiGLU FFN (H 16, 32 neurons) split contiguously into 4 experts of 8 (LaDiMo §4.1), top-2
// routing from a random router: 30 steps on one fixed batch, recorded in two flushes, must cut the MSE.
const lossFalls: CheckCase = {
  family: FAMILY,
  name: 'distilling a dense SwiGLU FFN into its 4-expert split, top-2: 30 steps cut L_mse (T64 H16 I32→4×8)',
  tol: 0,
  async run(gpu, rng) {
    const [T, H, Id, E, steps] = [64, 16, 32, 4, 30];
    const I = Id / E;
    const dense = {
      Wg: rng.normals(Id * H, 1 / Math.sqrt(H)),
      Wu: rng.normals(Id * H, 1 / Math.sqrt(H)),
      Wd: rng.normals(H * Id, 1 / Math.sqrt(Id)),
    };
    const b = makeBlock(rng, { T, E, H, I, topK: 2 }, splitFfnRef(dense.Wg, dense.Wu, dense.Wd, H, Id, E));
    const target = Float32Array.from(denseFfnRef(b.x, dense.Wg, dense.Wu, dense.Wd, T, H, Id));
    const x = gpu.upload(b.x, [T, H], 'x');
    const y = gpu.upload(target, [T, H], 'target');
    const weights = uploadBlock(gpu, b);
    const state = createDistillState(gpu, weights, { T, ...b.opts, alpha: 0.01, lr: 1e-2 });
    const losses = moeDistillStep(state, { x, target: y });
    const [first] = await losses.mse.read();   // L_mse of the initial weights
    for (let i = 1; i < steps; i++) moeDistillStep(state, { x, target: y });   // one flush for the rest
    const [last] = await losses.mse.read();
    const [total] = await losses.total.read();
    releaseDistillState(state);
    releaseAll(x, y, ...Object.values(weights));
    const ok = Number.isFinite(last) && Number.isFinite(total) && last < 0.5 * first;
    return { err: ok ? 0 : Infinity, outputs: { L_mse_step1: first, [`L_mse_step${steps}`]: last, ratio: last / first, falls: ok ? 0 : Infinity } };
  },
};

// ---------------------------------------------------------------------------------------- argument errors

const argumentErrors: CheckCase[] = [
  {
    name: 'topK 5 > E 4',
    run: (gpu: Gpu, w: MoeWeights) => createDistillState(gpu, w, { T: 5, topK: 5, alpha: 0.1, lr: 1e-3 }),
    op: 'createDistillState',
  },
  {
    name: 'x [6, 16] for T 5',
    run: (gpu: Gpu, w: MoeWeights) => {
      const s = createDistillState(gpu, w, { T: 5, topK: 2, alpha: 0.1, lr: 1e-3 });
      const x = gpu.tensor([6, 16], 'f32', 'x');
      try {
        moeDistillStep(s, { x, target: x });
      } finally {
        x.release();
        releaseDistillState(s);
      }
    },
    op: 'moeDistillStep',
  },
  {
    name: 'coefFrom [2]',
    run: (gpu: Gpu) => {
      const t = [gpu.tensor([5, 4]), gpu.tensor([4]), gpu.tensor([2])];
      try {
        moeAuxGrad(t[0], t[1], t[0], { coefFrom: t[2] });
      } finally {
        releaseAll(...t);
      }
    },
    op: 'moeAuxGrad',
  },
  {
    name: 'dgu [10, 17] for I 8 (wants [10, 16])',
    run: (gpu: Gpu, w: MoeWeights) => {
      const x = gpu.tensor([5, 16], 'f32', 'x');
      const perm = {
        slotToken: gpu.tensor([10], 'u32'), expertOffsets: gpu.tensor([5], 'u32'), tileOffsets: gpu.tensor([5], 'u32'), tokenSlot: gpu.tensor([5, 2], 'u32'),
      };
      const dgu = gpu.tensor([10, 17], 'f32', 'dgu');
      try {
        moeExpertsInputGrad(x, w, perm, dgu);
      } finally {
        releaseAll(x, dgu, ...Object.values(perm));
      }
    },
    op: 'moeExpertsInputGrad',
  },
].map((c) => ({
  family: FAMILY,
  name: `throws OpArgumentError naming ${c.op}: ${c.name}`,
  tol: 0,
  async run(gpu: Gpu) {
    const [E, H, I] = [4, 16, 8];
    const w: MoeWeights = {
      router: gpu.tensor([E, H], 'f32', 'router'),
      gate_proj: gpu.tensor([E, I, H], 'f32', 'gate_proj'),
      up_proj: gpu.tensor([E, I, H], 'f32', 'up_proj'),
      down_proj: gpu.tensor([E, H, I], 'f32', 'down_proj'),
    };
    let err = Infinity;
    try {
      c.run(gpu, w);
    } catch (e) {
      if (e instanceof OpArgumentError && e.op === c.op) err = 0;
    }
    releaseAll(...Object.values(w));
    return { err, outputs: { threw: err } };
  },
}));

export const moeTrainChecks: CheckCase[] = [...onEachGemmKernel(expertCases), auxGrad, ...distillLoss, ...onEachGemmKernel(wholeStep), lossFalls, ...argumentErrors];
