import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import { dot, fdError, withFd } from './gradcheck.ts';
import { rope, ropeBackward } from './rope.ts';
import { ropeBackwardRef, ropeRef } from './rope.ref.ts';

interface Shape { T: number; heads: number; headDim: number; pos0: number; theta: number; interleaved?: boolean; inPlace?: boolean; smoke?: boolean }

const shapes: Shape[] = [
  { T: 16, heads: 4, headDim: 64, pos0: 0, theta: 10000, smoke: true },
  { T: 16, heads: 4, headDim: 64, pos0: 0, theta: 10000, interleaved: true, smoke: true },
  { T: 1, heads: 1, headDim: 2, pos0: 0, theta: 10000 },
  { T: 7, heads: 3, headDim: 22, pos0: 0, theta: 500000, inPlace: true },
  { T: 9, heads: 5, headDim: 128, pos0: 0, theta: 500000, interleaved: true, inPlace: true },
  // Decode: one new row at a later position.
  { T: 1, heads: 8, headDim: 64, pos0: 200, theta: 10000 },
  { T: 1, heads: 8, headDim: 64, pos0: 200, theta: 10000, interleaved: true, inPlace: true },
  // Chunked prefill continuing after cached positions.
  { T: 5, heads: 2, headDim: 18, pos0: 37, theta: 10000 },
];

function label(s: Shape): string {
  return `${s.interleaved ? 'interleaved' : 'rotate-half'} T${s.T} heads ${s.heads} d${s.headDim} pos0 ${s.pos0} θ ${s.theta}${s.inPlace ? ' in place' : ''}`;
}

const forward: CheckCase[] = shapes.map((s) => ({
  family: 'rope',
  name: label(s),
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const shape = [s.T, s.heads, s.headDim];
    const X = rng.normals(s.T * s.heads * s.headDim);
    const x = gpu.upload(X, shape, 'x');
    const out = s.inPlace ? x : poisoned(gpu, shape);
    rope(x, { pos0: s.pos0, theta: s.theta, interleaved: s.interleaved, out });
    const want = ropeRef(X, s.T, s.heads, s.headDim, s.pos0, s.theta, s.interleaved);
    return compare({ y: [out, want] }, s.inPlace ? [x] : [x, out]);
  },
}));

// Both conventions at T 1, 7, 37, 130 and head dims 8, 32, 64, 128; pos0 > 0 for a chunk of a longer sequence.
const backwardShapes: Shape[] = [
  { T: 7, heads: 2, headDim: 32, pos0: 0, theta: 10000 },
  { T: 7, heads: 2, headDim: 32, pos0: 0, theta: 10000, interleaved: true, smoke: true },
  { T: 1, heads: 1, headDim: 8, pos0: 0, theta: 10000, inPlace: true },
  { T: 37, heads: 3, headDim: 64, pos0: 0, theta: 500000, interleaved: true },
  { T: 130, heads: 4, headDim: 8, pos0: 0, theta: 10000, inPlace: true },
  { T: 37, heads: 2, headDim: 128, pos0: 93, theta: 500000 },
];

// dx against the float64 inverse rotation, which is checked against finite differences of Σ dy·rope(x).
const backward: CheckCase[] = backwardShapes.map((s) => ({
  family: 'rope',
  name: `ropeBackward ${label(s)} (finite differences)`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { T, heads, headDim, pos0, theta, interleaved } = s;
    const shape = [T, heads, headDim];
    const n = T * heads * headDim;
    const X = rng.normals(n), DY = rng.normals(n);
    const want = ropeBackwardRef(DY, T, heads, headDim, pos0, theta, interleaved);
    const fd = fdError((x) => dot(DY, ropeRef(x, T, heads, headDim, pos0, theta, interleaved)), X, want, rng);
    const dy = gpu.upload(DY, shape, 'dy');
    const out = s.inPlace ? dy : poisoned(gpu, shape);
    ropeBackward(dy, { pos0, theta, interleaved, out });
    return withFd(await compare({ dx: [out, want] }, s.inPlace ? [dy] : [dy, out]), { dx: fd });
  },
}));

export const ropeChecks: CheckCase[] = [...forward, ...backward];
