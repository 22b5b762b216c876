// headGate and its routing-weight gradient headGateWeightGrad against their float64 references on ragged
// shapes, the outputs NaN-poisoned first (every element is written, the unselected groups' as exact zeros,
// an unused slot's gradient as 0), with unused (NONE) slots among the selections and groups of one head
// (multi-head attention) as well as GQA groups; the gradient reference against central differences of the
// forward's.
import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import { dot, fdError, withFd } from './gradcheck.ts';
import { NONE } from './moe.ts';
import { headGate, headGateWeightGrad } from './head-gate.ts';
import { headGateRef, headGateWeightGradRef } from './head-gate.ref.ts';

const shapes = [
  { T: 1, heads: 1, D: 3, kMax: 1, hpg: 1 },
  { T: 7, heads: 8, D: 5, kMax: 2, hpg: 2 },
  { T: 67, heads: 12, D: 32, kMax: 3, hpg: 3 },
];

export const headGateChecks: CheckCase[] = shapes.map((s) => ({
  family: 'head-gate',
  name: `headGate and ∂/∂topW, T ${s.T}, ${s.heads} heads × ${s.D}, groups of ${s.hpg}, kMax ${s.kMax}`,
  tol: TOL.elementwise,
  smoke: s.T === 7,
  async run(gpu, rng) {
    const { T, heads, D, kMax, hpg } = s;
    const G = heads / hpg;
    const A = rng.normals(T * heads * D);
    const ids = new Uint32Array(T * kMax);
    for (let i = 0; i < ids.length; i++) ids[i] = kMax > 1 && i % kMax === kMax - 1 && rng.uniform() < 0.3 ? NONE : rng.int(G);
    const W = rng.uniforms(T * kMax).map((w, i) => (ids[i] === NONE ? 0 : w));
    const att = gpu.upload(A, [T, heads, D], 'att');
    const topIds = gpu.upload(ids, [T, kMax], 'topIds');
    const topW = gpu.upload(W, [T, kMax], 'topW');
    const dO = rng.normals(T * heads * D);
    const dOut = gpu.upload(dO, [T, heads, D], 'dOut');
    const out = poisoned(gpu, [T, heads, D]);
    const dTopW = poisoned(gpu, [T, kMax]);
    const o = { headsPerGroup: hpg, scale: 1.5 };
    headGate(att, topIds, topW, { ...o, out });
    headGateWeightGrad(att, dOut, topIds, { ...o, out: dTopW });
    const dTopWRef = headGateWeightGradRef(A, dO, ids, T, heads, D, kMax, hpg, 1.5);
    const fd = fdError((w) => dot(dO, headGateRef(A, ids, w, T, heads, D, kMax, hpg, 1.5)), W, dTopWRef, rng);
    const r = await compare({ out: [out, headGateRef(A, ids, W, T, heads, D, kMax, hpg, 1.5)], dTopW: [dTopW, dTopWRef] }, [att, topIds, topW, dOut, out, dTopW]);
    return withFd(r, { dTopW: fd });
  },
}));
