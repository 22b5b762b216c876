// neuronStats against its float64 reference: blocks of ragged sizes (a single row among them) summed into
// one state that starts NaN-poisoned, columns ragged around the 64-thread workgroup, thresholds 0 and a
// positive one (values straddle it on both signs).
import type { CheckCase } from './check.ts';
import { TOL, poisoned, relL2 } from './check.ts';
import { neuronStats } from './neuron-stats.ts';
import { neuronStatsRef } from './neuron-stats.ref.ts';

const shapes: { blocks: number[]; C: number; thr: number }[] = [
  { blocks: [1], C: 1, thr: 0 },
  { blocks: [5, 1, 37], C: 65, thr: 0.3 },
  { blocks: [256, 131, 3], C: 172, thr: 0.7 },
];

export const neuronStatsChecks: CheckCase[] = shapes.map((s) => ({
  family: 'neuron-stats',
  name: `neuronStats blocks [${s.blocks.join(', ')}] × ${s.C} columns, thr ${s.thr}`,
  tol: TOL.elementwise,
  smoke: s.C === 65,
  async run(gpu, rng) {
    const rows = s.blocks.reduce((a, b) => a + b, 0);
    const X = rng.normals(rows * s.C, 0.5);
    const S = poisoned(gpu, [2, s.C]);
    const xs = [];
    let n = 0;
    for (const T of s.blocks) {
      const x = gpu.upload(X.subarray(n * s.C, (n + T) * s.C), [T, s.C], 'A');
      neuronStats(x, S, { thr: s.thr, first: n === 0 });
      xs.push(x);
      n += T;
    }
    const { count, mag } = neuronStatsRef(X, rows, s.C, Math.fround(s.thr)); // the kernel compares with thr in f32
    const got = (await S.read()) as Float32Array;
    for (const x of [S, ...xs]) x.release();
    const e = { count: relL2(got.subarray(0, s.C), count), magnitude: relL2(got.subarray(s.C), mag) };
    return { err: Math.max(e.count, e.magnitude), outputs: e };
  },
}));
