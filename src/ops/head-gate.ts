// Attention MoE's per-token head-group gate (shaders/head_gate.wgsl): the attention output of each token
// keeps its selected KV head groups, weighted by s·(routing weight), and zeroes the others (LLaMA-MoE v2,
// arXiv 2411.15708, attention MoE). The routing itself is src/ops/moe.ts moeRoute over the groups.
// Backward: ∂/∂att is headGate of the output's gradient (the gate is linear in att); ∂/∂topW is
// headGateWeightGrad.
import shader from '../../shaders/head_gate.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['T', 'u32'], ['heads', 'u32'], ['D', 'u32'], ['kMax', 'u32'], ['headsPerGroup', 'u32'], ['scale', 'f32']] as const);

export interface HeadGateOptions {
  /** query heads per KV group (consecutive heads) */
  headsPerGroup: number;
  /** the scale factor s */
  scale: number;
}

/**
 * out [T, heads, D] = s · w_t(group of h) · att [T, heads, D], groups of `headsPerGroup` consecutive heads;
 * w_t(g) = topW[t, j] where topIds[t, j] = g, 0 for a group not selected. topIds: [T, kMax] u32; topW: [T, kMax].
 */
export function headGate(att: Tensor, topIds: Tensor, topW: Tensor, opts: HeadGateOptions & { out?: Tensor }): Tensor {
  const op = 'headGate';
  const p = gateParams(op, att, topIds, opts);
  expectTensor(op, 'topW', topW, [p.T, p.kMax]);
  const out = outTensor(op, att, opts.out, att.shape);
  dispatchGate(op, 'gate', p, [att, topIds, topW, out], p.T * p.heads * p.D);
  return out;
}

/**
 * dTopW [T, kMax] = s · Σ over the heads of group topIds[t, j] of att[t, h, :] · dOut[t, h, :] (0 in an
 * unused slot): the gradient of headGate's output with respect to the routing weights.
 */
export function headGateWeightGrad(att: Tensor, dOut: Tensor, topIds: Tensor, opts: HeadGateOptions & { out?: Tensor }): Tensor {
  const op = 'headGateWeightGrad';
  const p = gateParams(op, att, topIds, opts);
  expectTensor(op, 'dOut', dOut, att.shape);
  const dTopW = outTensor(op, att, opts.out, [p.T, p.kMax]);
  dispatchGate(op, 'weight_grad', p, [att, topIds, dOut, dTopW], p.T * p.kMax);
  return dTopW;
}

type GateParams = { T: number; heads: number; D: number; kMax: number; headsPerGroup: number; scale: number };

function gateParams(op: string, att: Tensor, topIds: Tensor, { headsPerGroup, scale }: HeadGateOptions): GateParams {
  expectTensor(op, 'att', att, [null, null, null]);
  const [T, heads, D] = att.shape;
  expectTensor(op, 'topIds', topIds, [T, null], 'u32');
  if (!Number.isInteger(headsPerGroup) || headsPerGroup < 1 || heads % headsPerGroup !== 0) {
    fail(op, `headsPerGroup must be a positive integer dividing the ${heads} heads, got ${headsPerGroup}`);
  }
  expectFinite(op, 'scale', scale);
  return { T, heads, D, kMax: topIds.shape[1], headsPerGroup, scale };
}

function dispatchGate(op: string, entry: 'gate' | 'weight_grad', p: GateParams, bindings: Tensor[], threads: number): void {
  const gpu = bindings[0].gpu;
  gpu.dispatch({
    op,
    shapes: { att: [p.T, p.heads, p.D], topIds: [p.T, p.kMax] },
    shader,
    entry,
    params: Params.pack(p),
    bindings,
    workgroups: grid(Math.ceil(threads / 256), gpu.limits.maxComputeWorkgroupsPerDimension),
  });
}
