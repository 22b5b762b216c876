import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned, relL2 } from './check.ts';
import { OpArgumentError } from '../gpu/errors.ts';
import type { Rng } from '../data/rng.ts';
import { embedding, embeddingFromIds } from './embedding.ts';
import { embeddingRef } from './embedding.ref.ts';

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

export const embeddingChecks: CheckCase[] = [...gather, outOfRange, fromIds, fromIdsRejects];
