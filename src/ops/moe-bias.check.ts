// moeExpertBias against its float64 reference on ragged shapes, with unused (NONE) slots among the
// selections. The op adds into y in place, so y starts from random values rather than NaN: a token or
// column the kernel skipped keeps its old value and differs from the reference by the missing bias.
import type { CheckCase } from './check.ts';
import { TOL, compare } from './check.ts';
import { NONE } from './moe.ts';
import { moeExpertBias } from './moe-bias.ts';
import { moeExpertBiasRef } from './moe-bias.ref.ts';

const shapes = [
  { T: 1, H: 3, E: 1, kMax: 1 },
  { T: 7, H: 33, E: 5, kMax: 2 },
  { T: 130, H: 64, E: 8, kMax: 3 },
];

export const moeBiasChecks: CheckCase[] = shapes.map((s) => ({
  family: 'moe-bias',
  name: `moeExpertBias T ${s.T}, H ${s.H}, E ${s.E}, kMax ${s.kMax}`,
  tol: TOL.elementwise,
  smoke: s.T === 7,
  async run(gpu, rng) {
    const { T, H, E, kMax } = s;
    const Y = rng.normals(T * H);
    const B = rng.normals(E * H);
    const ids = new Uint32Array(T * kMax);
    for (let i = 0; i < ids.length; i++) ids[i] = kMax > 1 && i % kMax === kMax - 1 && rng.uniform() < 0.3 ? NONE : rng.int(E);
    const W = rng.uniforms(T * kMax).map((w, i) => (ids[i] === NONE ? 0 : w));
    const y = gpu.upload(Y, [T, H], 'y');
    const bias = gpu.upload(B, [E, H], 'bias');
    const topIds = gpu.upload(ids, [T, kMax], 'topIds');
    const topW = gpu.upload(W, [T, kMax], 'topW');
    moeExpertBias(y, bias, topIds, topW);
    return compare({ y: [y, moeExpertBiasRef(Y, B, ids, W, T, H, kMax)] }, [y, bias, topIds, topW]);
  },
}));
