// Causal grouped-query attention over a KV cache, and the cache write: shaders/attention.wgsl
// (LLaMA's self_attn between the RoPE'd q/k/v projections and o_proj).
import shader from '../../shaders/attention.wgsl';
import { paramStruct } from '../gpu/params.ts';
import { fmtShape } from '../gpu/errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([
  ['T', 'u32'], ['Hq', 'u32'], ['Hkv', 'u32'], ['D', 'u32'], ['past', 'u32'], ['scale', 'f32'],
] as const);

/** Must match BR and MAX_D in shaders/attention.wgsl. */
const ROWS_PER_WORKGROUP = 8;
const MAX_HEAD_DIM = 128;

export interface AttentionOptions {
  /** Positions already in the cache before these queries: 0 for prefill, the cached length when decoding. */
  past: number;
  /** Score scale, 1/sqrt(D) by default. */
  scale?: number;
  out?: Tensor;
}

/**
 * q: [T, Hq, D]; kCache, vCache: [S_max, Hkv, D] holding positions 0 .. past + T − 1 (see writeKv).
 * Query t (position past + t) attends to cache rows 0 .. past + t; query head h reads kv head
 * h / (Hq/Hkv). Returns out: [T, Hq, D].
 */
export function attention(q: Tensor, kCache: Tensor, vCache: Tensor, opts: AttentionOptions): Tensor {
  const op = 'attention';
  expectTensor(op, 'q', q, [null, null, null]);
  const [T, Hq, D] = q.shape;
  expectTensor(op, 'kCache', kCache, [null, null, D]);
  expectTensor(op, 'vCache', vCache, kCache.shape);
  const Hkv = kCache.shape[1];
  if (D < 1 || D > MAX_HEAD_DIM) fail(op, `head dim must be in [1, ${MAX_HEAD_DIM}], got q ${fmtShape(q.shape)}`);
  if (Hkv < 1 || Hq % Hkv !== 0) {
    fail(op, `query heads must be a multiple of kv heads, got q ${fmtShape(q.shape)} and kCache ${fmtShape(kCache.shape)}`);
  }
  const { past, scale = 1 / Math.sqrt(D) } = opts;
  expectPast(op, past, T, kCache);
  expectFinite(op, 'scale', scale);
  const out = outTensor(op, q, opts.out, q.shape);
  q.gpu.dispatch({
    op,
    shapes: { q: q.shape, kCache: kCache.shape, vCache: vCache.shape },
    shader,
    params: Params.pack({ T, Hq, Hkv, D, past, scale }),
    bindings: [q, kCache, vCache, out],
    workgroups: [Math.ceil((T * (Hq / Hkv)) / ROWS_PER_WORKGROUP), Hkv],
  });
  return out;
}

/** Copies k, v: [T, Hkv, D] into rows past .. past + T − 1 of kCache, vCache: [S_max, Hkv, D]. */
export function writeKv(kCache: Tensor, vCache: Tensor, k: Tensor, v: Tensor, past: number): void {
  const op = 'writeKv';
  expectTensor(op, 'kCache', kCache, [null, null, null]);
  expectTensor(op, 'vCache', vCache, kCache.shape);
  const [, Hkv, D] = kCache.shape;
  expectTensor(op, 'k', k, [null, Hkv, D]);
  expectTensor(op, 'v', v, k.shape);
  const T = k.shape[0];
  expectPast(op, past, T, kCache);
  k.gpu.dispatch({
    op,
    shapes: { kCache: kCache.shape, k: k.shape },
    shader,
    entry: 'write_kv',
    params: Params.pack({ T, Hq: Hkv, Hkv, D, past, scale: 0 }),   // write_kv reads neither Hq nor scale
    bindings: [k, v, kCache, vCache],
    workgroups: grid(Math.ceil((T * Hkv * D) / 64)),
  });
}

/** T new positions after `past` cached ones must fit in the cache's S_max rows. */
function expectPast(op: string, past: number, T: number, kCache: Tensor): void {
  if (!Number.isInteger(past) || past < 0 || past + T > kCache.shape[0]) {
    fail(op, `past must be an integer with 0 ≤ past and past + ${T} ≤ ${kCache.shape[0]} (kCache ${fmtShape(kCache.shape)}), got ${past}`);
  }
}
