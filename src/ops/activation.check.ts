import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import { dot, fdError } from './gradcheck.ts';
import { swiglu, swigluBackward, swigluFused } from './activation.ts';
import { splitGateUp, swigluBackwardRef, swigluRef } from './activation.ref.ts';

// Gate pre-activations spread wide enough to reach both tails of σ.
const GATE_SCALE = 3;

const shapes: { shape: number[]; smoke?: boolean }[] = [
  { shape: [64, 64], smoke: true },
  { shape: [1] },
  { shape: [7] },
  { shape: [3, 37] },
  { shape: [2, 5, 33] },
];

const forward: CheckCase[] = shapes.map((s) => ({
  family: 'activation',
  name: `swiglu [${s.shape.join(', ')}]`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const Gt = rng.normals(n, GATE_SCALE), U = rng.normals(n);
    const g = gpu.upload(Gt, s.shape, 'gate'), u = gpu.upload(U, s.shape, 'up');
    const out = poisoned(gpu, s.shape);
    swiglu(g, u, { out });
    return compare({ h: [out, swigluRef(Gt, U)] }, [g, u, out]);
  },
}));

const fused: CheckCase[] = [
  { rows: 16, I: 64 },
  { rows: 1, I: 1 },
  { rows: 5, I: 13 },
].map(({ rows, I }) => ({
  family: 'activation',
  name: `swigluFused gate‖up [${rows}, ${2 * I}] → [${rows}, ${I}]`,
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const GU = rng.normals(rows * 2 * I, GATE_SCALE);
    const gu = gpu.upload(GU, [rows, 2 * I], 'gu');
    const out = poisoned(gpu, [rows, I]);
    swigluFused(gu, { out });
    const { g, u } = splitGateUp(GU, rows, I);
    return compare({ h: [out, swigluRef(g, u)] }, [gu, out]);
  },
}));

// dg, du against the float64 reference gradients, which are checked against finite differences.
const backward: CheckCase[] = [
  { shape: [7, 19], smoke: true },
  { shape: [1] },
  { shape: [4, 130] },
].map((s) => ({
  family: 'activation',
  name: `swigluBackward [${s.shape.join(', ')}] (finite differences)`,
  tol: TOL.grad,
  smoke: s.smoke,
  async run(gpu, rng) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const Gt = rng.normals(n, GATE_SCALE), U = rng.normals(n), DH = rng.normals(n);
    const { dg: dgRef, du: duRef } = swigluBackwardRef(Gt, U, DH);
    const fdG = fdError((x) => dot(DH, swigluRef(x, U)), Gt, dgRef, rng);
    const fdU = fdError((x) => dot(DH, swigluRef(Gt, x)), U, duRef, rng);
    const g = gpu.upload(Gt, s.shape, 'gate'), u = gpu.upload(U, s.shape, 'up'), dh = gpu.upload(DH, s.shape, 'dh');
    const dGate = poisoned(gpu, s.shape), dUp = poisoned(gpu, s.shape);
    swigluBackward(g, u, dh, { dGate, dUp });
    const r = await compare({ dg: [dGate, dgRef], du: [dUp, duRef] }, [g, u, dh, dGate, dUp]);
    r.outputs.fd_dg = fdG;
    r.outputs.fd_du = fdU;
    r.err = Math.max(r.err, fdG, fdU);
    return r;
  },
}));

export const activationChecks: CheckCase[] = [...forward, ...fused, ...backward];
