// Causal grouped-query attention over a KV cache, and the cache write; for training, attention over a
// whole sequence with its logsumexp, and the gradients: shaders/attention.wgsl (LLaMA's self_attn between
// the RoPE'd q/k/v projections and o_proj).
import shader from '../../shaders/attention.wgsl';
import { paramStruct } from '../gpu/params.ts';
import { fmtShape } from '../gpu/errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([
  ['T', 'u32'], ['Hq', 'u32'], ['Hkv', 'u32'], ['D', 'u32'], ['past', 'u32'], ['scale', 'f32'],
] as const);

/** Must match BR, TW and MAX_D in shaders/attention.wgsl. */
const ROWS_PER_WORKGROUP = 8;
const TRAIN_WORKGROUP = 32;
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
  const { T, Hq, Hkv, D } = heads(op, q, kCache, vCache, ['kCache', 'vCache'], null);
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

/**
 * Checks q [T, Hq, D] against k and v (named `names`) [S, Hkv, D] with S = `rows` (any when null),
 * 1 ≤ D ≤ 128 and Hq a multiple of Hkv; returns the dimensions.
 */
function heads(
  op: string, q: Tensor, k: Tensor, v: Tensor, names: [string, string], rows: number | null,
): { T: number; Hq: number; Hkv: number; D: number } {
  expectTensor(op, 'q', q, [null, null, null]);
  const [T, Hq, D] = q.shape;
  expectTensor(op, names[0], k, [rows, null, D]);
  expectTensor(op, names[1], v, k.shape);
  const Hkv = k.shape[1];
  if (D < 1 || D > MAX_HEAD_DIM) fail(op, `head dim must be in [1, ${MAX_HEAD_DIM}], got q ${fmtShape(q.shape)}`);
  if (Hkv < 1 || Hq % Hkv !== 0) {
    fail(op, `query heads must be a multiple of kv heads, got q ${fmtShape(q.shape)} and ${names[0]} ${fmtShape(k.shape)}`);
  }
  return { T, Hq, Hkv, D };
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

export interface AttentionTrainOptions {
  /** Score scale, 1/sqrt(D) by default. */
  scale?: number;
  out?: { out?: Tensor; lse?: Tensor };
}

/**
 * Causal GQA attention over a whole sequence, for training: q [T, Hq, D]; k, v [T, Hkv, D]; query t
 * attends to keys 0..t. Returns out [T, Hq, D] (as attention() with past 0) and lse [T, Hq], the
 * logsumexp over j ≤ t of the scores scale·q[t, h]·k[j, h/G], which attentionBackward needs.
 */
export function attentionTrain(
  q: Tensor, k: Tensor, v: Tensor, opts: AttentionTrainOptions = {},
): { out: Tensor; lse: Tensor } {
  const op = 'attentionTrain';
  const { T, Hq, Hkv, D } = heads(op, q, k, v, ['k', 'v'], q.shape[0]);
  const { scale = 1 / Math.sqrt(D) } = opts;
  expectFinite(op, 'scale', scale);
  const out = outTensor(op, q, opts.out?.out, q.shape);
  const lse = outTensor(op, q, opts.out?.lse, [T, Hq]);
  q.gpu.dispatch({
    op,
    shapes: { q: q.shape, k: k.shape, v: v.shape },
    shader,
    entry: 'train',
    params: Params.pack({ T, Hq, Hkv, D, past: 0, scale }),
    bindings: [q, k, v, out, lse],
    workgroups: grid(Math.ceil((T * Hq) / TRAIN_WORKGROUP)),
  });
  return { out, lse };
}

/**
 * Gradients of attentionTrain given dOut [T, Hq, D], from its inputs and its out and lse: dq [T, Hq, D],
 * dk, dv [T, Hkv, D]. The scores are recomputed (FlashAttention-2), so memory stays O(T·H·D);
 * each gradient element has one owner that sums in a fixed order (dk, dv over the G query heads of their
 * kv head too), so the result is the same on every run. `scale` must be the forward's.
 */
export function attentionBackward(
  q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dOut: Tensor,
  opts: { scale?: number; out?: { dq?: Tensor; dk?: Tensor; dv?: Tensor } } = {},
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = 'attentionBackward';
  const { T, Hq, Hkv, D } = heads(op, q, k, v, ['k', 'v'], q.shape[0]);
  expectTensor(op, 'out', out, q.shape);
  expectTensor(op, 'lse', lse, [T, Hq]);
  expectTensor(op, 'dOut', dOut, q.shape);
  const { scale = 1 / Math.sqrt(D) } = opts;
  expectFinite(op, 'scale', scale);
  const dq = outTensor(op, q, opts.out?.dq, q.shape);
  const dk = outTensor(op, q, opts.out?.dk, k.shape);
  const dv = outTensor(op, q, opts.out?.dv, k.shape);
  // Δ = rowsum(dOut ∘ out) [T, Hq]: backward_dq writes it, backward_dkv reads it.
  const delta = q.gpu.tensor([T, Hq], 'f32', `${op}.delta`);
  const params = Params.pack({ T, Hq, Hkv, D, past: 0, scale });
  const shapes = { q: q.shape, k: k.shape, v: v.shape, dOut: dOut.shape };
  q.gpu.dispatch({
    op, shapes, shader, params,
    entry: 'backward_dq',
    bindings: [q, k, v, out, lse, dOut, dq, delta],
    workgroups: grid(Math.ceil((T * Hq) / TRAIN_WORKGROUP)),
  });
  q.gpu.dispatch({
    op, shapes, shader, params,
    entry: 'backward_dkv',
    bindings: [q, k, v, null, lse, dOut, null, delta, dk, dv],
    workgroups: grid(Math.ceil((T * Hkv) / TRAIN_WORKGROUP)),
  });
  delta.release();   // recorded work keeps its binding; later ops may reuse the buffer
  return { dq, dk, dv };
}
