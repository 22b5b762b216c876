import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned } from './check.ts';
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { attention, writeKv } from './attention.ts';
import { attentionRef } from './attention.ref.ts';

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

export const attentionChecks: CheckCase[] = [...cases, kvWrite];
