// moeExpertBias and its backward against their float64 references on ragged shapes, with unused (NONE)
// slots among the selections. Both add in place, so y and dTopW start from random values rather than NaN:
// an element the kernel skipped keeps its old value and differs from the reference by what it missed.
// The backward reference is checked against finite differences of the forward's.
import type { CheckCase } from './check.ts';
import { TOL, compare } from './check.ts';
import { NONE } from './moe.ts';
import type { Rng } from '../data/rng.ts';
import { dot, fdError, withFd } from './gradcheck.ts';
import { moeExpertBias, moeExpertBiasBackward } from './moe-bias.ts';
import { moeExpertBiasBackwardRef, moeExpertBiasRef } from './moe-bias.ref.ts';

const shapes = [
  { T: 1, H: 3, E: 1, kMax: 1 },
  { T: 7, H: 33, E: 5, kMax: 2 },
  { T: 130, H: 64, E: 8, kMax: 3 },
];

/** Random selections of E experts, about 30% of the last slots unused when kMax > 1, and their weights. */
function selections(rng: Rng, T: number, E: number, kMax: number): { ids: Uint32Array; W: Float32Array } {
  const ids = new Uint32Array(T * kMax);
  for (let i = 0; i < ids.length; i++) ids[i] = kMax > 1 && i % kMax === kMax - 1 && rng.uniform() < 0.3 ? NONE : rng.int(E);
  return { ids, W: rng.uniforms(T * kMax).map((w, i) => (ids[i] === NONE ? 0 : w)) };
}

const forward: CheckCase[] = shapes.map((s) => ({
  family: 'moe-bias',
  name: `moeExpertBias T ${s.T}, H ${s.H}, E ${s.E}, kMax ${s.kMax}`,
  tol: TOL.elementwise,
  smoke: s.T === 7,
  async run(gpu, rng) {
    const { T, H, E, kMax } = s;
    const Y = rng.normals(T * H);
    const B = rng.normals(E * H);
    const { ids, W } = selections(rng, T, E, kMax);
    const y = gpu.upload(Y, [T, H], 'y');
    const bias = gpu.upload(B, [E, H], 'bias');
    const topIds = gpu.upload(ids, [T, kMax], 'topIds');
    const topW = gpu.upload(W, [T, kMax], 'topW');
    moeExpertBias(y, bias, topIds, topW);
    return compare({ y: [y, moeExpertBiasRef(Y, B, ids, W, T, H, kMax)] }, [y, bias, topIds, topW]);
  },
}));

const backward: CheckCase[] = shapes.map((s) => ({
  family: 'moe-bias',
  name: `moeExpertBiasBackward dTopW T ${s.T}, H ${s.H}, E ${s.E}, kMax ${s.kMax} (finite differences)`,
  tol: TOL.grad,
  async run(gpu, rng) {
    const { T, H, E, kMax } = s;
    const B = rng.normals(E * H);
    const G = rng.normals(T * H);
    const D0 = rng.normals(T * kMax);
    const { ids, W } = selections(rng, T, E, kMax);
    const want = moeExpertBiasBackwardRef(G, B, ids, T, H, kMax);
    const zeros = new Float64Array(T * H);
    const fd = fdError((w) => dot(G, moeExpertBiasRef(zeros, B, ids, w, T, H, kMax)), W, want, rng);
    const dy = gpu.upload(G, [T, H], 'dy');
    const bias = gpu.upload(B, [E, H], 'bias');
    const topIds = gpu.upload(ids, [T, kMax], 'topIds');
    const dTopW = gpu.upload(D0, [T, kMax], 'dTopW');
    moeExpertBiasBackward(dy, bias, topIds, dTopW);
    const r = await compare({ dTopW: [dTopW, want.map((v, i) => v + D0[i])] }, [dy, bias, topIds, dTopW]);
    return withFd(r, { dTopW: fd });
  },
}));

export const moeBiasChecks: CheckCase[] = [...forward, ...backward];
