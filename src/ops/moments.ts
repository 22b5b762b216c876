// Per-column running mean and M2 over a stream of row blocks (shaders/moments.wgsl): the channel
// statistics FLAP's fluctuation score needs (DIVE arXiv 2506.09351, FLAP arXiv 2312.11983), kept on the GPU while the
// calibration text streams through, so no [tokens, channels] array is ever materialised.
import shader from '../../shaders/moments.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectInt, expectTensor, grid } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['C', 'u32'], ['n', 'u32']] as const);

/**
 * Merges the rows of x [T, C] into the running moments S [2, C] (row 0 the means, row 1 M2 = Σ(x − mean)²)
 * of the n rows merged before; n = 0 starts S afresh (it is only written). The caller counts rows.
 */
export function columnMoments(x: Tensor, S: Tensor, n: number): Tensor {
  const op = 'columnMoments';
  expectTensor(op, 'x', x, [null, null]);
  const [T, C] = x.shape;
  expectInt(op, 'rows of x', T, 1, 2 ** 24);
  expectTensor(op, 'S', S, [2, C]);
  // f32 holds every count below 2^24 exactly
  expectInt(op, 'n', n, 0, 2 ** 24 - T);
  x.gpu.dispatch({
    op,
    shapes: { x: x.shape, S: S.shape },
    shader,
    entry: 'update',
    params: Params.pack({ T, C, n }),
    bindings: [x, S],
    workgroups: grid(Math.ceil(C / 64), x.gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return S;
}
