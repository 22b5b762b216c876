// RMSNorm over the last dimension: shaders/norm.wgsl (LLaMA's LlamaRMSNorm).
import shader from '../../shaders/norm.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['rows', 'u32'], ['dim', 'u32'], ['eps', 'f32']] as const);

export interface RmsNormOptions {
  /** rms_norm_eps from the model config (1e-5 in LLaMA-2, 1e-6 in LLaMA-3). */
  eps: number;
  out?: Tensor;
}

/** y = x / sqrt(mean(x²) + eps) · weight over the last dim. x: [rows, dim], weight: [dim] → y: [rows, dim]. */
export function rmsNorm(x: Tensor, weight: Tensor, opts: RmsNormOptions): Tensor {
  const op = 'rmsNorm';
  const { eps } = opts;
  expectFinite(op, 'eps', eps);
  if (eps < 0) fail(op, `eps must be ≥ 0, got ${eps}`);
  expectTensor(op, 'x', x, [null, null]);
  const [rows, dim] = x.shape;
  if (dim === 0) fail(op, 'x has an empty last dimension');
  expectTensor(op, 'weight', weight, [dim]);
  const out = outTensor(op, x, opts.out, x.shape);
  // Smallest power of two covering the row, between 32 and 256 threads.
  const wg = Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(dim))));
  x.gpu.dispatch({
    op,
    shapes: { x: x.shape, weight: weight.shape },
    shader,
    constants: { WG: wg },
    params: Params.pack({ rows, dim, eps }),
    bindings: [x, weight, out],
    workgroups: grid(rows),
  });
  return out;
}
