import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import { add, addBias, scale } from './elementwise.ts';
import { addBiasRef, addRef, scaleRef } from './elementwise.ref.ts';

const sizes = [1, 7, 256, 1000, 70001];

export const elementwiseChecks: CheckCase[] = [
  ...sizes.map((n): CheckCase => ({
    family: 'elementwise',
    name: `add n${n}`,
    tol: TOL.elementwise,
    smoke: n === 1000,
    async run(gpu, rng) {
      const A = rng.normals(n), B = rng.normals(n);
      const a = gpu.upload(A, [n]), b = gpu.upload(B, [n]), out = poisoned(gpu, [n]);
      add(a, b, out);
      return compare({ out: [out, addRef(A, B)] }, [a, b, out]);
    },
  })),
  {
    family: 'elementwise',
    name: 'add in place (residual) 13×37',
    tol: TOL.elementwise,
    async run(gpu, rng) {
      const A = rng.normals(13 * 37), B = rng.normals(13 * 37);
      const a = gpu.upload(A, [13, 37]), b = gpu.upload(B, [13, 37]);
      add(a, b, 'inplace');
      return compare({ a: [a, addRef(A, B)] }, [a, b]);
    },
  },
  ...[[1, 1], [5, 96], [33, 200]].map(([rows, cols]): CheckCase => ({
    family: 'elementwise',
    name: `addBias ${rows}×${cols}`,
    tol: TOL.elementwise,
    async run(gpu, rng) {
      const X = rng.normals(rows * cols), Bias = rng.normals(cols);
      const x = gpu.upload(X, [rows, cols]), bias = gpu.upload(Bias, [cols]), out = poisoned(gpu, [rows, cols]);
      addBias(x, bias, out);
      return compare({ out: [out, addBiasRef(X, Bias)] }, [x, bias, out]);
    },
  })),
  {
    // Runtime ordering: a buffer released and reused for an upload while the op that read it is still
    // only recorded must not be overwritten before that op runs.
    family: 'elementwise',
    name: 'add, then upload into its recycled input (ordering)',
    tol: TOL.elementwise,
    async run(gpu, rng) {
      const n = 500;
      const A = rng.normals(n), B = rng.normals(n);
      const a = gpu.upload(A, [n]), b = gpu.upload(B, [n]), out = poisoned(gpu, [n]);
      add(a, b, out);
      a.release();
      const reused = gpu.upload(new Float32Array(n).fill(1e6), [n]);
      return compare({ out: [out, addRef(A, B)] }, [b, out, reused]);
    },
  },
  {
    family: 'elementwise',
    name: 'scale in place n333',
    tol: TOL.elementwise,
    async run(gpu, rng) {
      const A = rng.normals(333);
      const a = gpu.upload(A, [333]);
      scale(a, -0.37, 'inplace');
      return compare({ a: [a, scaleRef(A, -0.37)] }, [a]);
    },
  },
];
