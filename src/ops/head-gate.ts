// Attention MoE's per-token head-group gate (shaders/head_gate.wgsl): the attention output of each token
// keeps its selected KV head groups, weighted by s·(routing weight), and zeroes the others (LLaMA-MoE v2,
// arXiv 2411.15708, attention MoE). The routing itself is src/ops/moe.ts moeRoute over the groups.
import shader from '../../shaders/head_gate.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['heads', 'u32'], ['D', 'u32'], ['kMax', 'u32'], ['headsPerGroup', 'u32'], ['scale', 'f32']] as const);

/**
 * out [T, heads, D] = s · w_t(group of h) · att [T, heads, D], groups of `headsPerGroup` consecutive heads;
 * w_t(g) = topW[t, j] where topIds[t, j] = g, 0 for a group not selected. topIds: [T, kMax] u32; topW: [T, kMax].
 */
export function headGate(att: Tensor, topIds: Tensor, topW: Tensor, opts: { headsPerGroup: number; scale: number; out?: Tensor }): Tensor {
  const op = 'headGate';
  expectTensor(op, 'att', att, [null, null, null]);
  const [T, heads, D] = att.shape;
  expectTensor(op, 'topIds', topIds, [T, null], 'u32');
  const kMax = topIds.shape[1];
  expectTensor(op, 'topW', topW, [T, kMax]);
  const { headsPerGroup, scale } = opts;
  if (!Number.isInteger(headsPerGroup) || headsPerGroup < 1 || heads % headsPerGroup !== 0) {
    fail(op, `headsPerGroup must be a positive integer dividing the ${heads} heads, got ${headsPerGroup}`);
  }
  expectFinite(op, 'scale', scale);
  const out = outTensor(op, att, opts.out, att.shape);
  att.gpu.dispatch({
    op,
    shapes: { att: att.shape, topIds: topIds.shape },
    shader,
    entry: 'gate',
    params: Params.pack({ T, heads, D, kMax, headsPerGroup, scale }),
    bindings: [att, topIds, topW, out],
    workgroups: grid(Math.ceil((T * heads * D) / 256), att.gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}
