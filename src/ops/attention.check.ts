import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { Rng } from '../data/rng.ts';
import { OpArgumentError } from '../gpu/errors.ts';
import { dot, fdError, withFd } from './gradcheck.ts';
import { attention, attentionBackward, attentionTrain, writeKv } from './attention.ts';
import { attentionBackwardRef, attentionLseRef, attentionRef } from './attention.ref.ts';

interface Shape { T: number; past: number; Hq: number; Hkv: number; D: number; qScale?: number; smoke?: boolean }

const shapes: Shape[] = [
  // Prefill.
  { T: 5, past: 0, Hq: 2, Hkv: 1, D: 32, smoke: true },
  { T: 1, past: 0, Hq: 1, Hkv: 1, D: 8 },
  { T: 17, past: 0, Hq: 4, Hkv: 2, D: 64 },
  { T: 67, past: 0, Hq: 4, Hkv: 1, D: 20 },
  { T: 13, past: 0, Hq: 2, Hkv: 2, D: 128 },
  // Peaked softmax: the running max moves a lot between chunks.
  { T: 29, past: 0, Hq: 2, Hkv: 1, D: 8, qScale: 6 },
  // Chunked prefill after cached positions.
  { T: 9, past: 13, Hq: 4, Hkv: 2, D: 20 },
  // Decode: one query after `past` cached positions.
  { T: 1, past: 40, Hq: 8, Hkv: 2, D: 64, smoke: true },
  { T: 1, past: 1, Hq: 1, Hkv: 1, D: 8 },
  { T: 1, past: 70, Hq: 4, Hkv: 1, D: 32 },
  { T: 1, past: 100, Hq: 2, Hkv: 1, D: 20, qScale: 4 },
];

function label(s: Shape): string {
  const kind = s.T === 1 && s.past > 0 ? 'decode' : s.past > 0 ? 'chunked prefill' : 'prefill';
  return `${kind} T${s.T} past ${s.past} Hq${s.Hq} Hkv${s.Hkv} D${s.D}${s.qScale ? ` q×${s.qScale}` : ''}`;
}

/** Rows [from, to) of a [S, H, D] array, uploaded as [to − from, H, D]. */
function uploadRows(gpu: Gpu, x: Float32Array, from: number, to: number, H: number, D: number, label: string): Tensor {
  return gpu.upload(x.subarray(from * H * D, to * H * D), [to - from, H, D], label);
}

// The whole sequence (S = past + T positions) goes through writeKv into NaN-filled caches with spare rows:
// the cached part first, then the new rows; the GPU's T rows are compared with the last T rows of the
// reference on the full sequence.
const cases: CheckCase[] = shapes.map((s) => ({
  family: 'attention',
  name: label(s),
  tol: TOL.gemm,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { T, past, Hq, Hkv, D } = s;
    const S = past + T;
    const Smax = S + 5;
    const Q = rng.normals(S * Hq * D, s.qScale ?? 1);
    const K = rng.normals(S * Hkv * D);
    const V = rng.normals(S * Hkv * D);
    const kCache = poisoned(gpu, [Smax, Hkv, D], 'f32', 'kCache');
    const vCache = poisoned(gpu, [Smax, Hkv, D], 'f32', 'vCache');
    const temps: Tensor[] = [];
    for (const [from, to] of [[0, past], [past, S]]) {
      if (to === from) continue;
      const k = uploadRows(gpu, K, from, to, Hkv, D, 'k');
      const v = uploadRows(gpu, V, from, to, Hkv, D, 'v');
      writeKv(kCache, vCache, k, v, from);
      temps.push(k, v);
    }
    const q = uploadRows(gpu, Q, past, S, Hq, D, 'q');
    const out = poisoned(gpu, [T, Hq, D]);
    attention(q, kCache, vCache, { past, out });
    const want = attentionRef(Q, K, V, S, 0, Hq, Hkv, D).subarray(past * Hq * D);
    return compare({ out: [out, want] }, [q, kCache, vCache, out, ...temps]);
  },
}));

const kvWrite: CheckCase = {
  family: 'attention',
  name: 'writeKv rows 0..7 then 7..11 of S_max 11, Hkv 3, D 5',
  tol: TOL.gemm,
  async run(gpu, rng) {
    const [S, Hkv, D, past] = [11, 3, 5, 7];
    const K = rng.normals(S * Hkv * D), V = rng.normals(S * Hkv * D);
    const kCache = poisoned(gpu, [S, Hkv, D]), vCache = poisoned(gpu, [S, Hkv, D]);
    const parts = [[0, past], [past, S]].map(([from, to]) => {
      const k = uploadRows(gpu, K, from, to, Hkv, D, 'k'), v = uploadRows(gpu, V, from, to, Hkv, D, 'v');
      writeKv(kCache, vCache, k, v, from);
      return [k, v];
    });
    return compare({ kCache: [kCache, K], vCache: [vCache, V] }, [kCache, vCache, ...parts.flat()]);
  },
};

interface TrainShape { T: number; Hq: number; Hkv: number; D: number; qScale?: number; scale?: number; smoke?: boolean }

// T 1, 7, 37, 130 (T·Hq ragged to the 32-invocation workgroups); head dims 8, 32, 64, 128; GQA ratios 1, 2, 4.
const trainShapes: TrainShape[] = [
  { T: 7, Hq: 2, Hkv: 1, D: 32, smoke: true },
  { T: 1, Hq: 1, Hkv: 1, D: 8 },
  { T: 37, Hq: 4, Hkv: 1, D: 64 },
  { T: 130, Hq: 4, Hkv: 2, D: 8 },
  { T: 37, Hq: 2, Hkv: 2, D: 128 },
  { T: 130, Hq: 2, Hkv: 1, D: 32, qScale: 4 },
  { T: 7, Hq: 8, Hkv: 2, D: 64, scale: 0.3 },
];

function trainLabel(s: TrainShape): string {
  return `T${s.T} Hq${s.Hq} Hkv${s.Hkv} D${s.D}${s.qScale ? ` q×${s.qScale}` : ''}${s.scale ? ` scale ${s.scale}` : ''}`;
}

/** Random q, k, v for a training shape, uploaded, with their host copies. */
function trainInputs(gpu: Gpu, rng: Rng, s: TrainShape) {
  const { T, Hq, Hkv, D } = s;
  const Q = rng.normals(T * Hq * D, s.qScale ?? 1), K = rng.normals(T * Hkv * D), V = rng.normals(T * Hkv * D);
  const q = gpu.upload(Q, [T, Hq, D], 'q'), k = gpu.upload(K, [T, Hkv, D], 'k'), v = gpu.upload(V, [T, Hkv, D], 'v');
  return { Q, K, V, q, k, v };
}

// out and the logsumexp of the scores against the float64 reference.
const train: CheckCase[] = trainShapes.map((s) => ({
  family: 'attention',
  name: `attentionTrain ${trainLabel(s)}`,
  tol: TOL.gemm,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { T, Hq, Hkv, D } = s;
    const { Q, K, V, q, k, v } = trainInputs(gpu, rng, s);
    const out = poisoned(gpu, [T, Hq, D]), lse = poisoned(gpu, [T, Hq]);
    attentionTrain(q, k, v, { scale: s.scale, out: { out, lse } });
    return compare({
      out: [out, attentionRef(Q, K, V, T, 0, Hq, Hkv, D, s.scale)],
      lse: [lse, attentionLseRef(Q, K, T, Hq, Hkv, D, s.scale)],
    }, [q, k, v, out, lse]);
  },
}));

// dq, dk, dv (from the GPU forward's out and lse, as in training) against the float64 gradients, which are
// checked against finite differences of Σ dOut·attention(q, k, v). The backward runs twice: the gradients
// must agree bit for bit (each element has one owner summing in a fixed order).
const backward: CheckCase[] = trainShapes.map((s) => ({
  family: 'attention',
  name: `attentionBackward ${trainLabel(s)} (finite differences)`,
  tol: TOL.grad,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { T, Hq, Hkv, D, scale } = s;
    const { Q, K, V, q, k, v } = trainInputs(gpu, rng, s);
    const DO = rng.normals(T * Hq * D);
    const ref = attentionBackwardRef(Q, K, V, DO, T, Hq, Hkv, D, scale);
    const loss = (x: Float64Array, which: 0 | 1 | 2) =>
      dot(DO, attentionRef(which === 0 ? x : Q, which === 1 ? x : K, which === 2 ? x : V, T, 0, Hq, Hkv, D, scale));
    const fd = {
      dq: fdError((x) => loss(x, 0), Q, ref.dq, rng),
      dk: fdError((x) => loss(x, 1), K, ref.dk, rng),
      dv: fdError((x) => loss(x, 2), V, ref.dv, rng),
    };
    const dOut = gpu.upload(DO, [T, Hq, D], 'dOut');
    const fwd = attentionTrain(q, k, v, { scale });
    const runs = [0, 1].map(() => {
      const out = { dq: poisoned(gpu, [T, Hq, D]), dk: poisoned(gpu, [T, Hkv, D]), dv: poisoned(gpu, [T, Hkv, D]) };
      return attentionBackward(q, k, v, fwd.out, fwd.lse, dOut, { scale, out });
    });
    let differing = 0;
    for (const name of ['dq', 'dk', 'dv'] as const) {
      const [a, b] = await Promise.all(runs.map(async (g) => new Uint32Array((await g[name].read()).buffer)));
      differing += a.filter((x, i) => x !== b[i]).length;
    }
    const [g] = runs;
    const r = await compare(
      { dq: [g.dq, ref.dq], dk: [g.dk, ref.dk], dv: [g.dv, ref.dv] },
      [q, k, v, dOut, fwd.out, fwd.lse, ...runs.flatMap((x) => [x.dq, x.dk, x.dv])],
    );
    r.outputs.rerun_bit_differences = differing;
    if (differing) r.err = Infinity;
    return withFd(r, fd);
  },
}));

// Bad shapes are OpArgumentErrors naming the op, the operand and its shape, before anything is recorded.
const trainRejects: CheckCase = {
  family: 'attention',
  name: 'attentionTrain / attentionBackward reject mismatched shapes',
  tol: 0,
  async run(gpu) {
    const q = gpu.tensor([5, 4, 8]), k = gpu.tensor([5, 3, 8]), kShort = gpu.tensor([4, 2, 8]), kv = gpu.tensor([5, 2, 8]);
    const lse = gpu.tensor([5, 2]);
    const attempts: [() => unknown, string[]][] = [
      [() => attentionTrain(q, k, k), ['attentionTrain', 'multiple of kv heads', '[5, 3, 8]']],
      [() => attentionTrain(q, kShort, kShort), ['attentionTrain', 'k has shape [4, 2, 8]', '[5, *, 8]']],
      [() => attentionBackward(q, kv, kv, q, lse, q), ['attentionBackward', 'lse has shape [5, 2]', '[5, 4]']],
    ];
    const outputs: Record<string, number> = {};
    for (const [i, [fn, mention]] of attempts.entries()) {
      let message = '';
      try {
        fn();
      } catch (e) {
        if (e instanceof OpArgumentError) message = e.message;
      }
      outputs[`attempt ${i}${message ? '' : ' did not throw OpArgumentError'}`] = mention.every((m) => message.includes(m)) ? 0 : Infinity;
    }
    for (const t of [q, k, kShort, kv, lse]) t.release();
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

export const attentionChecks: CheckCase[] = [...cases, kvWrite, ...train, ...backward, trainRejects];
