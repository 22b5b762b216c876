// columnMoments against its float64 reference: blocks of ragged sizes (a single row among them) merged
// into one running state that starts NaN-poisoned, columns ragged around the 64-thread workgroup. The
// values sit at an offset of 3 with spread 0.5, where Σx² − n·mean² would lose most of the variance in f32.
import type { CheckCase } from './check.ts';
import { TOL, poisoned, relL2 } from './check.ts';
import { columnMoments } from './moments.ts';
import { columnMomentsRef } from './moments.ref.ts';

const shapes: { blocks: number[]; C: number }[] = [
  { blocks: [1], C: 1 },
  { blocks: [5, 1, 37], C: 65 },
  { blocks: [256, 256, 131, 3], C: 172 },
];

export const momentsChecks: CheckCase[] = shapes.map((s) => ({
  family: 'moments',
  name: `columnMoments blocks [${s.blocks.join(', ')}] × ${s.C} columns`,
  tol: TOL.elementwise,
  smoke: s.C === 65,
  async run(gpu, rng) {
    const rows = s.blocks.reduce((a, b) => a + b, 0);
    const X = rng.normals(rows * s.C, 0.5).map((v) => v + 3);
    const S = poisoned(gpu, [2, s.C]);
    const xs = [];
    let n = 0;
    for (const T of s.blocks) {
      const x = gpu.upload(X.subarray(n * s.C, (n + T) * s.C), [T, s.C], 'x');
      columnMoments(x, S, n);
      xs.push(x);
      n += T;
    }
    const { mean, m2 } = columnMomentsRef(X, rows, s.C);
    const got = (await S.read()) as Float32Array;
    for (const x of [S, ...xs]) x.release();
    // one row has M2 = 0 exactly: relL2 against zero is the absolute error
    const e = { mean: relL2(got.subarray(0, s.C), mean), M2: relL2(got.subarray(s.C), m2) };
    return { err: Math.max(e.mean, e.M2), outputs: e };
  },
}));
