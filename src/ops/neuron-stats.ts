// Per-neuron firing counts and magnitude sums of an FFN's down_proj input over a stream of row blocks
// (shaders/neuron_stats.wgsl), kept on the GPU while the calibration tokens stream through: LLaMA-MoE v2
// (arXiv 2411.15708) picks the residual MoE's shared expert from these, and no [tokens, neurons] array
// ever reaches the host.
import shader from '../../shaders/neuron_stats.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectInt, expectTensor, grid } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['C', 'u32'], ['first', 'u32'], ['thr', 'f32']] as const);

/**
 * Adds the rows of A [T, C] to the running sums S [2, C]: row 0 counts |A| > thr, row 1 sums |A|.
 * first = true starts S afresh (it is only written). The caller counts rows; counts stay exact in f32
 * below 2^24 rows.
 */
export function neuronStats(A: Tensor, S: Tensor, opts: { thr: number; first: boolean }): Tensor {
  const op = 'neuronStats';
  expectTensor(op, 'A', A, [null, null]);
  const [T, C] = A.shape;
  expectInt(op, 'rows of A', T, 1, 2 ** 24);
  expectTensor(op, 'S', S, [2, C]);
  expectFinite(op, 'thr', opts.thr);
  A.gpu.dispatch({
    op,
    shapes: { A: A.shape, S: S.shape },
    shader,
    entry: 'accumulate',
    params: Params.pack({ T, C, first: opts.first ? 1 : 0, thr: opts.thr }),
    bindings: [A, S],
    workgroups: grid(Math.ceil(C / 64), A.gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return S;
}
