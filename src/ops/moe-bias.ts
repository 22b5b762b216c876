// Per-expert down_proj biases for the MoE block (shaders/moe_bias.wgsl): y += Σ_j topW[t,j]·bias[e_tj],
// after the routed experts are combined. DIVE's experts (arXiv 2506.09351) are FLAP-pruned FFNs, each
// with the bias that compensates its removed channels (FLAP arXiv 2312.11983, bias compensation).
import shader from '../../shaders/moe_bias.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectTensor, grid } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['H', 'u32'], ['kMax', 'u32'], ['E', 'u32']] as const);

/** Adds each token's selected experts' biases into y [T, H] in place. bias: [E, H]; topIds: [T, kMax] u32; topW: [T, kMax]. */
export function moeExpertBias(y: Tensor, bias: Tensor, topIds: Tensor, topW: Tensor): Tensor {
  const op = 'moeExpertBias';
  expectTensor(op, 'y', y, [null, null]);
  const [T, H] = y.shape;
  expectTensor(op, 'bias', bias, [null, H]);
  expectTensor(op, 'topIds', topIds, [T, null], 'u32');
  const kMax = topIds.shape[1];
  expectTensor(op, 'topW', topW, [T, kMax]);
  y.gpu.dispatch({
    op,
    shapes: { y: y.shape, bias: bias.shape, topIds: topIds.shape },
    shader,
    entry: 'add',
    params: Params.pack({ T, H, kMax, E: bias.shape[0] }),
    bindings: [topIds, topW, bias, y],
    workgroups: grid(Math.ceil((T * H) / 256), y.gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return y;
}
