import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned, relL2 } from './check.ts';
import { OpArgumentError } from '../gpu/errors.ts';
import type { Rng } from '../data/rng.ts';
import { dot, fdError, withFd } from './gradcheck.ts';
import { embedding, embeddingBackward, embeddingFromIds } from './embedding.ts';
import { embeddingBackwardRef, embeddingRef } from './embedding.ref.ts';

interface Shape { T: number; vocab: number; dim: number; smoke?: boolean }

const shapes: Shape[] = [
  { T: 13, vocab: 50, dim: 7, smoke: true },
  { T: 1, vocab: 1000, dim: 64 },
  { T: 5, vocab: 3, dim: 1 },
  // More than 65535 workgroups of 64 elements: the grid spills into y.
  { T: 4099, vocab: 11, dim: 1024 },
];

function randomIds(rng: Rng, T: number, vocab: number): Uint32Array {
  return Uint32Array.from({ length: T }, () => rng.int(vocab));
}

const gather: CheckCase[] = shapes.map((s) => ({
  family: 'embedding',
  name: `gather T${s.T} vocab ${s.vocab} dim ${s.dim}`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const W = rng.normals(s.vocab * s.dim);
    const I = randomIds(rng, s.T, s.vocab);
    const table = gpu.upload(W, [s.vocab, s.dim], 'table');
    const ids = gpu.upload(I, [s.T], 'ids');
    const out = poisoned(gpu, [s.T, s.dim]);
    embedding(table, ids, { out });
    return compare({ out: [out, embeddingRef(W, I, s.vocab, s.dim)] }, [table, ids, out]);
  },
}));

// Ids ≥ vocab on the GPU: exactly those rows are NaN, the others are gathered.
const outOfRange: CheckCase = {
  family: 'embedding',
  name: 'ids ≥ vocab on the GPU give NaN rows T9 vocab 20 dim 6',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const [T, vocab, dim] = [9, 20, 6];
    const W = rng.normals(vocab * dim);
    const I = randomIds(rng, T, vocab);
    I[2] = vocab;
    I[7] = 0xffffffff;
    const table = gpu.upload(W, [vocab, dim], 'table');
    const ids = gpu.upload(I, [T], 'ids');
    const out = gpu.tensor([T, dim]);
    embedding(table, ids, { out });
    const got = await out.read();
    const want = embeddingRef(W, I, vocab, dim);
    const nanMismatch = want.filter((w, i) => Number.isNaN(w) !== Number.isNaN(got[i])).length;
    const valid = [...want.keys()].filter((i) => !Number.isNaN(want[i]));
    const rows = relL2(valid.map((i) => got[i]), valid.map((i) => want[i]));
    for (const t of [table, ids, out]) t.release();
    return { err: nanMismatch ? Infinity : rows, outputs: { rows, nan_mismatches: nanMismatch } };
  },
};

const fromIds: CheckCase = {
  family: 'embedding',
  name: 'embeddingFromIds T17 vocab 40 dim 12',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const [T, vocab, dim] = [17, 40, 12];
    const W = rng.normals(vocab * dim);
    const I = randomIds(rng, T, vocab);
    const table = gpu.upload(W, [vocab, dim], 'table');
    const out = poisoned(gpu, [T, dim]);
    await embeddingFromIds(table, I, { out });
    return compare({ out: [out, embeddingRef(W, I, vocab, dim)] }, [table, out]);
  },
};

// A bad host id is an OpArgumentError naming the id and the vocab size; nothing is dispatched.
const fromIdsRejects: CheckCase = {
  family: 'embedding',
  name: 'embeddingFromIds rejects id ≥ vocab',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const vocab = 40;
    const table = gpu.upload(rng.normals(vocab * 4), [vocab, 4], 'table');
    const I = randomIds(rng, 6, vocab);
    I[4] = 41;
    let message = '';
    try {
      await embeddingFromIds(table, I);
    } catch (e) {
      if (e instanceof OpArgumentError) message = e.message;
    } finally {
      table.release();
    }
    const ok = message.includes('41') && message.includes(`vocab size ${vocab}`);
    return { err: ok ? 0 : Infinity, outputs: { rejected: ok ? 1 : 0 } };
  },
};

interface BackwardShape {
  T: number; vocab: number; dim: number;
  /** Ids drawn from this many distinct rows spread over the vocab (repeats across row blocks); all rows without. */
  distinct?: number;
  accumulate?: boolean;
  smoke?: boolean;
}

// Small vocabularies make most ids repeat; T 600 spans three 256-id scan tiles; vocab 600 and dim 300 span
// three row blocks and two column blocks of the kernel.
const backwardShapes: BackwardShape[] = [
  { T: 7, vocab: 3, dim: 64 },
  { T: 1, vocab: 5, dim: 7 },
  { T: 37, vocab: 600, dim: 300, distinct: 9 },
  { T: 130, vocab: 40, dim: 33, accumulate: true },
  { T: 600, vocab: 11, dim: 8, smoke: true },
];

function backwardIds(rng: Rng, s: BackwardShape): Uint32Array {
  if (!s.distinct) return randomIds(rng, s.T, s.vocab);
  const stride = Math.floor(s.vocab / s.distinct);
  return Uint32Array.from({ length: s.T }, () => rng.int(s.distinct!) * stride);
}

// dTable against the float64 scatter-add, which is checked against finite differences of Σ dOut·embedding(table).
// The kernel runs twice into two outputs: the sums must agree bit for bit (no order-dependent atomics).
const backward: CheckCase[] = backwardShapes.map((s) => ({
  family: 'embedding',
  name: `embeddingBackward T${s.T} vocab ${s.vocab} dim ${s.dim}${s.distinct ? ` (${s.distinct} distinct ids)` : ''}${s.accumulate ? ' accumulate' : ''} (finite differences)`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { T, vocab, dim } = s;
    const I = backwardIds(rng, s);
    const G = rng.normals(T * dim);
    const W = rng.normals(vocab * dim);
    const init = s.accumulate ? rng.normals(vocab * dim) : undefined;
    const want = embeddingBackwardRef(I, G, vocab, dim, init);
    // Finite differences over the rows the ids use: the others have no gradient, and random probes of a
    // large table would mostly land there.
    const used = Uint32Array.from(new Set(I));
    const rowsUsed = (w: ArrayLike<number>) => embeddingRef(w, used, vocab, dim);
    const withRows = (sub: Float64Array) => {
      const w = Float64Array.from(W);
      used.forEach((v, k) => w.set(sub.subarray(k * dim, (k + 1) * dim), v * dim));
      return w;
    };
    const gradRef = embeddingBackwardRef(I, G, vocab, dim);
    const fd = fdError((sub) => dot(G, embeddingRef(withRows(sub), I, vocab, dim)), rowsUsed(W), rowsUsed(gradRef), rng);
    const ids = gpu.upload(I, [T], 'ids'), dOut = gpu.upload(G, [T, dim], 'dOut');
    const [out, again] = [0, 1].map(() => (init ? gpu.upload(init, [vocab, dim], 'dTable') : poisoned(gpu, [vocab, dim])));
    embeddingBackward(ids, dOut, vocab, { out, accumulate: s.accumulate });
    embeddingBackward(ids, dOut, vocab, { out: again, accumulate: s.accumulate });
    const [a, b] = [new Uint32Array((await out.read()).buffer), new Uint32Array((await again.read()).buffer)];
    const r = await compare({ dTable: [out, want] }, [ids, dOut, out, again]);
    r.outputs.rerun_bit_differences = a.filter((x, i) => x !== b[i]).length;
    if (r.outputs.rerun_bit_differences) r.err = Infinity;
    return withFd(r, { dTable: fd });
  },
}));

// Ids ≥ vocab (which gather NaN rows) add to no row of the gradient.
const backwardOutOfRange: CheckCase = {
  family: 'embedding',
  name: 'embeddingBackward ignores ids ≥ vocab T9 vocab 20 dim 6',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const [T, vocab, dim] = [9, 20, 6];
    const I = randomIds(rng, T, vocab);
    I[2] = vocab;
    I[7] = 0xffffffff;
    const G = rng.normals(T * dim);
    const ids = gpu.upload(I, [T], 'ids'), dOut = gpu.upload(G, [T, dim], 'dOut');
    const out = poisoned(gpu, [vocab, dim]);
    embeddingBackward(ids, dOut, vocab, { out });
    return compare({ dTable: [out, embeddingBackwardRef(I, G, vocab, dim)] }, [ids, dOut, out]);
  },
};

export const embeddingChecks: CheckCase[] = [...gather, outOfRange, fromIds, fromIdsRejects, ...backward, backwardOutOfRange];
