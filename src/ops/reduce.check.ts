import type { CheckCase, CheckResult } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import { fdError } from './gradcheck.ts';
import { assertFinite, bincount, countNonFinite, histogram, mse, mseBackward, reduceAll, reduceRows, type ReduceOp } from './reduce.ts';
import { bincountRef, countNonFiniteRef, histogramRef, mseGradRef, mseRef, reduceAllRef, reduceRowsRef } from './reduce.ref.ts';
import type { Rng } from '../data/rng.ts';

const kinds: ReduceOp[] = ['sum', 'max', 'mean'];

// Mean 0.5, so sums are far from zero and a relative tolerance is meaningful.
const values = (rng: Rng, n: number) => rng.uniforms(n, -0.5, 1.5);

// n: size 1, ragged small, ragged over one 256-thread span, 16 elements per thread.
const rowShapes = [
  { rows: 1, n: 1 },
  { rows: 3, n: 5 },
  { rows: 4, n: 300 },
  { rows: 2, n: 4096 },
];

const rows: CheckCase[] = rowShapes.map((s) => ({
  family: 'reduce',
  name: `reduceRows sum/max/mean [${s.rows}, ${s.n}]`,
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const X = values(rng, s.rows * s.n);
    const x = gpu.upload(X, [s.rows, s.n], 'x');
    const outs = kinds.map((k) => reduceRows(x, k, { out: poisoned(gpu, [s.rows]) }));
    return compare(Object.fromEntries(kinds.map((k, i) => [k, [outs[i], reduceRowsRef(X, s.rows, s.n, k)]])), [x, ...outs]);
  },
}));

// More rows than one grid dimension holds (65535): the segment index must be linearised over x and y.
const manyRows: CheckCase = {
  family: 'reduce',
  name: 'reduceRows sum [65537, 2] (2-D workgroup grid)',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const [r, n] = [65537, 2];
    const X = values(rng, r * n);
    const x = gpu.upload(X, [r, n], 'x');
    const out = reduceRows(x, 'sum', { out: poisoned(gpu, [r]) });
    return compare({ sum: [out, reduceRowsRef(X, r, n, 'sum')] }, [x, out]);
  },
};

// 1: a single partial; 2049: two chunks, the last of one element; 300000: two passes (147 partials).
const sizes = [1, 1000, 2049, 300000];

const whole: CheckCase[] = sizes.map((len) => ({
  family: 'reduce',
  name: `reduceAll sum/max/mean [${len}]`,
  tol: TOL.elementwise,
  smoke: len === 1000,
  async run(gpu, rng) {
    const X = values(rng, len);
    const x = gpu.upload(X, [len], 'x');
    const outs = kinds.map((k) => reduceAll(x, k, { out: poisoned(gpu, [1]) }));
    return compare(Object.fromEntries(kinds.map((k, i) => [k, [outs[i], reduceAllRef(X, k)]])), [x, ...outs]);
  },
}));

const mseForward: CheckCase[] = [1, 1000, 300000].map((len) => ({
  family: 'reduce',
  name: `mse [${len}]`,
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const A = rng.normals(len), B = rng.normals(len);
    const a = gpu.upload(A, [len], 'a'), b = gpu.upload(B, [len], 'b');
    const out = mse(a, b, { out: poisoned(gpu, [1]) });
    return compare({ mse: [out, [mseRef(A, B)]] }, [a, b, out]);
  },
}));

// dA against the float64 gradient, which is itself checked against finite differences of mseRef.
const mseGrad: CheckCase[] = [
  { shape: [37] },
  { shape: [7, 143] },
].map((s) => ({
  family: 'reduce',
  name: `mseBackward [${s.shape.join(', ')}] scale 0.5 (finite differences)`,
  tol: TOL.grad,
  async run(gpu, rng) {
    const len = s.shape.reduce((p, d) => p * d, 1);
    const scale = 0.5;
    const A = rng.normals(len), B = rng.normals(len);
    const dRef = mseGradRef(A, B, scale);
    const fd = fdError((x) => scale * mseRef(x, B), A, dRef, rng);
    const a = gpu.upload(A, s.shape, 'a'), b = gpu.upload(B, s.shape, 'b');
    const dA = mseBackward(a, b, { scale, out: poisoned(gpu, s.shape) });
    const r = await compare({ dA: [dA, dRef] }, [a, b, dA]);
    r.outputs.fd_dA = fd;
    r.err = Math.max(r.err, fd);
    return r;
  },
}));

/** Normals with NaN, ±Inf and the exact bounds planted at random positions. */
function withSpecials(rng: Rng, len: number, specials: number[]): Float32Array {
  const X = rng.normals(len, 1.5);
  for (const v of specials) X[rng.int(len)] = v;
  return X;
}

// Exact counts: every value, including NaN, ±Inf and the bounds themselves, lands in exactly one counter.
// The second tensor is added into the same counters (profiling over several batches).
const hist: CheckCase = {
  family: 'reduce',
  name: 'histogram 7 bins over [-2, 2) with NaN, ±Inf, bounds; accumulate a second tensor',
  tol: TOL.elementwise,
  smoke: true,
  async run(gpu, rng) {
    const [bins, lo, hi] = [7, -2, 2];
    const specials = [NaN, NaN, NaN, Infinity, Infinity, -Infinity, lo, hi, lo, hi];
    const X1 = withSpecials(rng, 5000, specials), X2 = withSpecials(rng, 300, specials);
    const x1 = gpu.upload(X1, [50, 100], 'x1'), x2 = gpu.upload(X2, [300], 'x2');
    const r1 = histogramRef(X1, bins, lo, hi), r2 = histogramRef(X2, bins, lo, hi);
    const counts = poisoned(gpu, [bins], 'u32'), nan = poisoned(gpu, [1], 'u32');
    histogram(x1, { bins, lo, hi, counts, nan });
    const first = await compare({ counts: [counts, r1.counts], nan: [nan, [r1.nan]] });
    histogram(x2, { bins, lo, hi, counts, nan, accumulate: true });
    const second = await compare({
      counts_accumulated: [counts, r1.counts.map((c, i) => c + r2.counts[i])],
      nan_accumulated: [nan, [r1.nan + r2.nan]],
    }, [x1, x2, counts, nan]);
    return merge(first, second);
  },
};

const hist1: CheckCase = {
  family: 'reduce',
  name: 'histogram 1 bin, [1] value',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const X = rng.normals(1);
    const x = gpu.upload(X, [1], 'x');
    const { counts, nan } = histogram(x, { bins: 1, lo: 0, hi: 1 });
    return compare({ counts: [counts, [1]], nan: [nan, [0]] }, [x, counts, nan]);
  },
};

// Expert ids as a dynamic-k route leaves them: some slots hold E (unused) and are not counted. Ragged
// lengths; the second tensor is added into the same counts (one expert-load tally over a whole pass).
const binShapes = [{ bins: 1, lens: [1, 3] }, { bins: 8, lens: [300, 5] }, { bins: 60, lens: [70000, 257] }];
const bin: CheckCase[] = binShapes.map((s) => ({
  family: 'reduce',
  name: `bincount ${s.bins} bins over [${s.lens.join('] + [')}] with skipped ids; accumulate`,
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const draw = (n: number) => Uint32Array.from({ length: n }, () => rng.int(s.bins + 2));   // ids bins, bins+1: skipped
    const [I1, I2] = s.lens.map(draw);
    const [i1, i2] = [gpu.upload(I1, [I1.length], 'ids1'), gpu.upload(I2, [I2.length], 'ids2')];
    const counts = bincount(i1, { bins: s.bins, counts: poisoned(gpu, [s.bins], 'u32') });
    const first = await compare({ counts: [counts, bincountRef(I1, s.bins)] });
    bincount(i2, { bins: s.bins, counts, accumulate: true });
    const both = bincountRef(Uint32Array.from([...I1, ...I2]), s.bins);
    return merge(first, await compare({ counts_accumulated: [counts, both] }, [i1, i2, counts]));
  },
}));

function merge(...rs: CheckResult[]): CheckResult {
  return { err: Math.max(...rs.map((r) => r.err)), outputs: Object.assign({}, ...rs.map((r) => r.outputs)) };
}

const nonFinite: CheckCase[] = [
  { len: 1, specials: [] },
  { len: 1000, specials: [NaN, NaN, NaN, NaN, NaN, Infinity, Infinity, Infinity, -Infinity, -Infinity] },
  { len: 300000, specials: [NaN] },
].map((s) => ({
  family: 'reduce',
  name: `countNonFinite [${s.len}] with ${s.specials.length} planted`,
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const X = withSpecials(rng, s.len, s.specials);
    const x = gpu.upload(X, [s.len], 'x');
    const out = countNonFinite(x, { out: poisoned(gpu, [1], 'u32') });
    return compare({ count: [out, [countNonFiniteRef(X)]] }, [x, out]);
  },
}));

// assertFinite passes a finite tensor and, for one with NaN/Inf, throws naming the op, tensor, shape and count.
const assertCase: CheckCase = {
  family: 'reduce',
  name: 'assertFinite passes finite, throws naming x and shape',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const X = rng.normals(15);
    const good = gpu.upload(X, [3, 5], 'h');
    X[4] = NaN;
    X[11] = -Infinity;
    const bad = gpu.upload(X, [3, 5], 'h');
    const message = async (t: typeof good) => assertFinite(t, 'layer3.mlp').then(() => '', (e: Error) => `${e.name}: ${e.message}`);
    const [m1, m2] = [await message(good), await message(bad)];
    good.release();
    bad.release();
    const outputs = {
      finite_passes: m1 === '' ? 0 : Infinity,
      nonfinite_throws: /^OpArgumentError: layer3\.mlp: h \[3, 5\] has 2 non-finite/.test(m2) ? 0 : Infinity,
    };
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

export const reduceChecks: CheckCase[] = [
  ...rows, manyRows, ...whole, ...mseForward, ...mseGrad, hist, hist1, ...bin, ...nonFinite, assertCase,
];
