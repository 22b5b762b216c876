// GEMM wrappers over shaders/matmul.wgsl: C = op(A)·op(B), batched, plus the two gradients.
import shader from '../../shaders/matmul.wgsl';
import type { GemmKernel } from '../gpu/device.ts';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, fail, outTensor } from './validate.ts';
import { fmtShape } from '../gpu/errors.ts';

const Params = paramStruct([
  ['M', 'u32'], ['N', 'u32'], ['K', 'u32'],
  ['strideA', 'u32'], ['strideB', 'u32'], ['strideC', 'u32'],
  ['alpha', 'f32'],
] as const);

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** C += alpha·op(A)·op(B) into `out` (gradient accumulation). */
  accumulate?: boolean;
  out?: Tensor;
  /** Default: the device's (Gpu.gemmKernel). */
  kernel?: GemmKernel;
}

/**
 * A: [M, K] or [batch, M, K] (transA: [.., K, M]); B: [K, N] or [batch, K, N] (transB: [.., N, K]).
 * A 2-D operand is broadcast over the other's batch. Returns C: [M, N] or [batch, M, N].
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = `matmul${opts.transA ? ' Aᵀ' : ' A'}·${opts.transB ? 'Bᵀ' : 'B'}`;
  const { transA = false, transB = false, alpha = 1, accumulate = false } = opts;
  expectFinite(op, 'alpha', alpha);
  if (a.dtype !== 'f32' || b.dtype !== 'f32') fail(op, `A and B must be f32, got ${a.dtype} and ${b.dtype}`);
  if (a.shape.length < 2 || a.shape.length > 3 || b.shape.length < 2 || b.shape.length > 3) {
    fail(op, `A ${fmtShape(a.shape)} and B ${fmtShape(b.shape)} must be 2-D or 3-D`);
  }
  const [ba, ra, ca] = a.shape.length === 3 ? a.shape : [1, ...a.shape];
  const [bb, rb, cb] = b.shape.length === 3 ? b.shape : [1, ...b.shape];
  const [M, Ka] = transA ? [ca, ra] : [ra, ca];
  const [Kb, N] = transB ? [cb, rb] : [rb, cb];
  if (Ka !== Kb) fail(op, `inner dimensions differ: A ${fmtShape(a.shape)} gives K=${Ka}, B ${fmtShape(b.shape)} gives K=${Kb}`);
  const batched = a.shape.length === 3 || b.shape.length === 3;
  if (a.shape.length === 3 && b.shape.length === 3 && ba !== bb) {
    fail(op, `batch sizes differ: A ${fmtShape(a.shape)}, B ${fmtShape(b.shape)}`);
  }
  const batch = Math.max(ba, bb);
  const shape = batched ? [batch, M, N] : [M, N];
  if (accumulate && !opts.out) fail(op, 'accumulate needs an out tensor to add into');
  const out = outTensor(op, a, opts.out, shape);
  const K = Ka;
  const strideA = a.shape.length === 3 ? M * K : 0;
  const strideB = b.shape.length === 3 ? K * N : 0;
  const contiguousA = transA ? M : K;
  const contiguousB = transB ? K : N;
  const vec4 = contiguousA % 4 === 0 && contiguousB % 4 === 0 && strideA % 4 === 0 && strideB % 4 === 0;
  // On SwiftShader the direct kernel beats the tiled one at every size (gemm 1024³: 525 vs 1700 ms).
  const direct = (opts.kernel ?? a.gpu.gemmKernel) === 'direct';
  a.gpu.dispatch({
    op,
    shapes: { A: a.shape, B: b.shape },
    shader,
    entry: direct ? 'direct' : 'main',
    constants: { TRANS_A: transA, TRANS_B: transB, ACCUMULATE: accumulate, VEC4: vec4 },
    params: Params.pack({ M, N, K, strideA, strideB, strideC: M * N, alpha }),
    bindings: [a, b, out],
    workgroups: [Math.ceil(N / 64), Math.ceil(M / 64), batch],
  });
  return out;
}

/**
 * Gradients of C = A·B (A: [M, K], B: [K, N]) given dC: dA = dC·Bᵀ, dB = Aᵀ·dC.
 * With `accumulate`, adds into the given dA/dB (gradient accumulation over micro-batches).
 */
export function matmulBackward(
  a: Tensor,
  b: Tensor,
  dC: Tensor,
  opts: { dA?: Tensor; dB?: Tensor; accumulate?: boolean } = {},
): { dA: Tensor; dB: Tensor } {
  const dA = matmul(dC, b, { transB: true, out: opts.dA, accumulate: opts.accumulate });
  const dB = matmul(a, dC, { transA: true, out: opts.dB, accumulate: opts.accumulate });
  return { dA, dB };
}
