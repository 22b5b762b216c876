// Embedding lookup and its gradient: shaders/embedding.wgsl (LLaMA's embed_tokens).
import shader from '../../shaders/embedding.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectInt, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['dim', 'u32'], ['vocab', 'u32']] as const);

/** Vocab rows and columns one backward workgroup owns (ROWS and TILE in shaders/embedding.wgsl). */
const BACKWARD_ROWS = 256;
const BACKWARD_COLS = 256;

/**
 * out[t] = table[ids[t]]: table [vocab, dim] f32, ids [T] u32 → [T, dim].
 * An id ≥ vocab yields a row of NaN (the ids are on the GPU, so the wrapper cannot check them);
 * use embeddingFromIds to have host ids validated.
 */
export function embedding(table: Tensor, ids: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'embedding';
  expectTensor(op, 'table', table, [null, null]);
  expectTensor(op, 'ids', ids, [null], 'u32');
  const [vocab, dim] = table.shape;
  const [T] = ids.shape;
  const out = outTensor(op, table, opts.out, [T, dim]);
  table.gpu.dispatch({
    op,
    shapes: { table: table.shape, ids: ids.shape },
    shader,
    params: Params.pack({ T, dim, vocab }),
    bindings: [table, ids, out],
    workgroups: grid(Math.ceil((T * dim) / 64)),
  });
  return out;
}

/**
 * embedding() for ids on the host: throws OpArgumentError naming the first id ≥ vocab, else uploads
 * and gathers. Submits the recorded work so the uploaded ids can go back to the pool.
 */
export async function embeddingFromIds(table: Tensor, ids: Uint32Array, opts: { out?: Tensor } = {}): Promise<Tensor> {
  const op = 'embeddingFromIds';
  expectTensor(op, 'table', table, [null, null]);
  const vocab = table.shape[0];
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) fail(op, `ids[${bad}] = ${ids[bad]} is out of range for vocab size ${vocab}`);
  const idsT = table.gpu.upload(ids, [ids.length], 'ids');
  const out = embedding(table, idsT, opts);
  try {
    await table.gpu.flush();
  } finally {
    idsT.release();
  }
  return out;
}

/**
 * Gradient of embedding() with respect to the table: dTable [vocab, dim] with row v = Σ dOut[t] over the
 * t with ids[t] = v, summed in increasing t by one thread per element (no float atomics), so the result
 * is the same on every run. ids u32 [T], dOut [T, dim]. An id ≥ vocab adds to no row. With `accumulate`,
 * adds into `out` (gradient accumulation, or an embedding tied to the LM head).
 */
export function embeddingBackward(
  ids: Tensor,
  dOut: Tensor,
  vocab: number,
  opts: { out?: Tensor; accumulate?: boolean } = {},
): Tensor {
  const op = 'embeddingBackward';
  expectTensor(op, 'ids', ids, [null], 'u32');
  const [T] = ids.shape;
  expectTensor(op, 'dOut', dOut, [T, null]);
  const dim = dOut.shape[1];
  expectInt(op, 'vocab', vocab, 1, 2 ** 32 - 1);
  const { accumulate = false } = opts;
  if (accumulate && !opts.out) fail(op, 'accumulate needs an out tensor to add into');
  const out = outTensor(op, dOut, opts.out, [vocab, dim]);
  dOut.gpu.dispatch({
    op,
    shapes: { ids: ids.shape, dOut: dOut.shape, out: out.shape },
    shader,
    entry: 'backward',
    constants: { ACCUMULATE: accumulate },
    params: Params.pack({ T, dim, vocab }),
    bindings: [dOut, ids, out],
    workgroups: [Math.ceil(vocab / BACKWARD_ROWS), Math.ceil(dim / BACKWARD_COLS)],
  });
  return out;
}
