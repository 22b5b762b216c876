// Per-expert down_proj biases for the MoE block (shaders/moe_bias.wgsl): y += Σ_j topW[t,j]·bias[e_tj],
// after the routed experts are combined; backward: dTopW[t,j] += dy[t]·bias[e_tj] (the biases are constants). DIVE's experts (arXiv 2506.09351) are FLAP-pruned FFNs, each
// with the bias that compensates its removed channels (FLAP arXiv 2312.11983, bias compensation).
import shader from '../../shaders/moe_bias.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectTensor, grid } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['H', 'u32'], ['kMax', 'u32'], ['E', 'u32']] as const);

/** Adds each token's selected experts' biases into y [T, H] in place. bias: [E, H]; topIds: [T, kMax] u32; topW: [T, kMax]. */
export function moeExpertBias(y: Tensor, bias: Tensor, topIds: Tensor, topW: Tensor): Tensor {
  dispatchBias('moeExpertBias', 'add', y, bias, topIds, topW, 256);
  return y;
}

/** dTopW [T, kMax] += the gradient of moeExpertBias's output y with respect to topW, given dy [T, H]; in place. */
export function moeExpertBiasBackward(dy: Tensor, bias: Tensor, topIds: Tensor, dTopW: Tensor): Tensor {
  dispatchBias('moeExpertBiasBackward', 'backward', dy, bias, topIds, dTopW, 64);
  return dTopW;
}

/** Both entries: y (or dy) [T, H], bias [E, H], topIds [T, kMax], topW (or dTopW) [T, kMax]; a thread per y or per slot. */
function dispatchBias(op: string, entry: 'add' | 'backward', y: Tensor, bias: Tensor, topIds: Tensor, w: Tensor, wg: number): void {
  expectTensor(op, entry === 'add' ? 'y' : 'dy', y, [null, null]);
  const [T, H] = y.shape;
  expectTensor(op, 'bias', bias, [null, H]);
  expectTensor(op, 'topIds', topIds, [T, null], 'u32');
  const kMax = topIds.shape[1];
  expectTensor(op, entry === 'add' ? 'topW' : 'dTopW', w, [T, kMax]);
  y.gpu.dispatch({
    op,
    shapes: { y: y.shape, bias: bias.shape, topIds: topIds.shape },
    shader,
    entry,
    params: Params.pack({ T, H, kMax, E: bias.shape[0] }),
    bindings: [topIds, w, bias, y],
    workgroups: grid(Math.ceil((entry === 'add' ? T * H : T * kMax) / wg), y.gpu.limits.maxComputeWorkgroupsPerDimension),
  });
}
