// Embedding lookup: shaders/embedding.wgsl (LLaMA's embed_tokens).
import shader from '../../shaders/embedding.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['dim', 'u32'], ['vocab', 'u32']] as const);

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
