import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import { rmsNorm } from './norm.ts';
import { rmsNormRef } from './norm.ref.ts';

interface Shape { rows: number; dim: number; eps?: number; smoke?: boolean }

const shapes: Shape[] = [
  { rows: 4, dim: 64, smoke: true },
  { rows: 1, dim: 1 },
  { rows: 13, dim: 7 },
  { rows: 9, dim: 257, smoke: true },
  { rows: 3, dim: 4096, eps: 1e-5 },
  { rows: 70, dim: 32 },
];

export const normChecks: CheckCase[] = shapes.map((s) => ({
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
