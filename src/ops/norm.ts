// RMSNorm over the last dimension and its gradient: shaders/norm.wgsl (LLaMA's LlamaRMSNorm).
import shader from '../../shaders/norm.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { rowThreads } from './reduce.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['rows', 'u32'], ['dim', 'u32'], ['eps', 'f32']] as const);

/**
 * Rows up to this long take one invocation each (main_rows, backward_rows: no barriers, which SwiftShader
 * makes costly); longer rows a workgroup each, so that a few long rows (decoding) still spread over a GPU.
 */
const ROW_INVOCATION_MAX_DIM = 1024;
/** Rows per workgroup of main_rows and backward_rows (ROW_WG in shaders/norm.wgsl). */
const ROW_WG = 64;

/** Entry, grid and WG of the row pass: per-row invocations for short rows, a workgroup per row otherwise. */
function rowPass(
  rows: number, dim: number, entry: 'main' | 'backward', accumulate = false,
): { entry: string; workgroups: [number, number]; constants: Record<string, number | boolean> } {
  const constants: Record<string, number | boolean> = entry === 'backward' ? { ACCUMULATE: accumulate } : {};
  return dim <= ROW_INVOCATION_MAX_DIM
    ? { entry: `${entry}_rows`, workgroups: grid(Math.ceil(rows / ROW_WG)), constants }
    : { entry, workgroups: grid(rows), constants: { ...constants, WG: rowThreads(dim) } };
}

/** Columns of dWeight per backward_weight workgroup (COLS in shaders/norm.wgsl); it runs 256 threads. */
const WEIGHT_COLS = 32;
const WEIGHT_THREADS = 256;

export interface RmsNormOptions {
  /** rms_norm_eps from the model config (1e-5 in LLaMA-2, 1e-6 in LLaMA-3). */
  eps: number;
  out?: Tensor;
}

/** Checks eps, x [rows, dim] with dim ≥ 1 and weight [dim]; returns [rows, dim]. */
function normArgs(op: string, x: Tensor, weight: Tensor, eps: number): [number, number] {
  expectFinite(op, 'eps', eps);
  if (eps < 0) fail(op, `eps must be ≥ 0, got ${eps}`);
  expectTensor(op, 'x', x, [null, null]);
  const [rows, dim] = x.shape;
  if (dim === 0) fail(op, 'x has an empty last dimension');
  expectTensor(op, 'weight', weight, [dim]);
  return [rows, dim];
}

/** y = x / sqrt(mean(x²) + eps) · weight over the last dim. x: [rows, dim], weight: [dim] → y: [rows, dim]. */
export function rmsNorm(x: Tensor, weight: Tensor, opts: RmsNormOptions): Tensor {
  const op = 'rmsNorm';
  const { eps } = opts;
  const [rows, dim] = normArgs(op, x, weight, eps);
  const out = outTensor(op, x, opts.out, x.shape);
  x.gpu.dispatch({
    op,
    shapes: { x: x.shape, weight: weight.shape },
    shader,
    ...rowPass(rows, dim, 'main'),
    params: Params.pack({ rows, dim, eps }),
    bindings: [x, weight, out],
  });
  return out;
}

/**
 * Gradients of y = rmsNorm(x, weight) given dy [rows, dim]: dx [rows, dim] and dWeight [dim], the latter
 * summed over rows in a fixed order (no atomics), so both are the same on every run. With `accumulate`,
 * adds into the given dx and dWeight (a residual stream's gradient; accumulation over micro-batches).
 */
export function rmsNormBackward(
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  opts: { eps: number; accumulate?: boolean; out?: { dx?: Tensor; dWeight?: Tensor } },
): { dx: Tensor; dWeight: Tensor } {
  const op = 'rmsNormBackward';
  const { eps, accumulate = false } = opts;
  const [rows, dim] = normArgs(op, x, weight, eps);
  expectTensor(op, 'dy', dy, x.shape);
  if (accumulate && !(opts.out?.dx && opts.out.dWeight)) fail(op, 'accumulate needs out.dx and out.dWeight to add into');
  const dx = outTensor(op, x, opts.out?.dx, x.shape);
  const dWeight = outTensor(op, x, opts.out?.dWeight, [dim]);
  // 1/rms per row, from the dx pass to the dWeight pass.
  const rstd = x.gpu.tensor([rows], 'f32', `${op}.rstd`);
  const params = Params.pack({ rows, dim, eps });
  const shapes = { x: x.shape, weight: weight.shape, dy: dy.shape };
  x.gpu.dispatch({
    op, shapes, shader, params,
    ...rowPass(rows, dim, 'backward', accumulate),
    bindings: [x, weight, dy, dx, rstd],
  });
  x.gpu.dispatch({
    op, shapes, shader, entry: 'backward_weight', params,
    constants: { WG: WEIGHT_THREADS, ACCUMULATE: accumulate },
    bindings: [x, null, dy, dWeight, rstd],
    workgroups: grid(Math.ceil(dim / WEIGHT_COLS)),
  });
  rstd.release();   // recorded work keeps its binding; later ops may reuse the buffer
  return { dx, dWeight };
}
