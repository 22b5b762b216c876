import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import { dot, fdError, withFd } from './gradcheck.ts';
import { rmsNorm, rmsNormBackward } from './norm.ts';
import { rmsNormBackwardRef, rmsNormRef } from './norm.ref.ts';

interface Shape { rows: number; dim: number; eps?: number; accumulate?: boolean; smoke?: boolean }

const shapes: Shape[] = [
  { rows: 4, dim: 64, smoke: true },
  { rows: 1, dim: 1 },
  { rows: 13, dim: 7 },
  { rows: 9, dim: 257, smoke: true },
  { rows: 3, dim: 4096, eps: 1e-5 },
  { rows: 70, dim: 32 },
];

const forward: CheckCase[] = shapes.map((s) => ({
  family: 'norm',
  name: `rmsNorm rows ${s.rows} dim ${s.dim}`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const eps = s.eps ?? 1e-6;
    const X = rng.normals(s.rows * s.dim, 2);
    const W = rng.uniforms(s.dim, 0.5, 1.5);
    const x = gpu.upload(X, [s.rows, s.dim], 'x');
    const w = gpu.upload(W, [s.dim], 'weight');
    const out = poisoned(gpu, [s.rows, s.dim]);
    rmsNorm(x, w, { eps, out });
    return compare({ y: [out, rmsNormRef(X, W, s.rows, s.dim, eps)] }, [x, w, out]);
  },
}));

// rows: 1 to 130, more than the 8 lanes of the dWeight sum and ragged to them; dim: ragged, a 32-column
// dWeight block and several, the 4096 of a 7B model. Not dim 1: there y = sign(x)·weight and
// dx = weight·dy·eps·r³ is nothing but cancellation, which no f32 kernel resolves to a relative 1e-5.
const backwardShapes: Shape[] = [
  { rows: 7, dim: 64 },
  { rows: 1, dim: 5 },
  { rows: 37, dim: 7 },
  { rows: 130, dim: 257, eps: 1e-5 },
  { rows: 3, dim: 4096, eps: 1e-5 },
  { rows: 37, dim: 32, accumulate: true, smoke: true },
];

// dx and dWeight against the float64 gradients, which are checked against finite differences of Σ dy·y.
const backward: CheckCase[] = backwardShapes.map((s) => ({
  family: 'norm',
  name: `rmsNormBackward rows ${s.rows} dim ${s.dim}${s.accumulate ? ' accumulate' : ''} (finite differences)`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { rows, dim } = s;
    const eps = s.eps ?? 1e-6;
    const X = rng.normals(rows * dim, 2);
    const W = rng.uniforms(dim, 0.5, 1.5);
    const DY = rng.normals(rows * dim);
    const ref = rmsNormBackwardRef(X, W, DY, rows, dim, eps);
    const fd = {
      dx: fdError((x) => dot(DY, rmsNormRef(x, W, rows, dim, eps)), X, ref.dx, rng),
      dWeight: fdError((w) => dot(DY, rmsNormRef(X, w, rows, dim, eps)), W, ref.dWeight, rng),
    };
    const x = gpu.upload(X, [rows, dim], 'x'), w = gpu.upload(W, [dim], 'weight'), dy = gpu.upload(DY, [rows, dim], 'dy');
    let out = { dx: poisoned(gpu, [rows, dim]), dWeight: poisoned(gpu, [dim]) };
    let want = ref;
    if (s.accumulate) {
      const DX0 = rng.normals(rows * dim), DW0 = rng.normals(dim);
      out = { dx: gpu.upload(DX0, [rows, dim], 'dx'), dWeight: gpu.upload(DW0, [dim], 'dWeight') };
      want = { dx: ref.dx.map((v, i) => v + DX0[i]), dWeight: ref.dWeight.map((v, i) => v + DW0[i]) };
    }
    rmsNormBackward(x, w, dy, { eps, accumulate: s.accumulate, out });
    const r = await compare({ dx: [out.dx, want.dx], dWeight: [out.dWeight, want.dWeight] }, [x, w, dy, out.dx, out.dWeight]);
    return withFd(r, fd);
  },
}));

export const normChecks: CheckCase[] = [...forward, ...backward];
