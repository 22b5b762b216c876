// Rotary position embeddings and their gradient: shaders/rope.wgsl (LLaMA's apply_rotary_pos_emb on q and k).
import shader from '../../shaders/rope.wgsl';
import { paramStruct } from '../gpu/params.ts';
import { fmtShape } from '../gpu/errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectInt, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([
  ['T', 'u32'], ['heads', 'u32'], ['headDim', 'u32'], ['pos0', 'u32'], ['log2Theta', 'f32'],
] as const);

export interface RopeOptions {
  /** Absolute position of x's first row: 0 for prefill, the number of cached positions when decoding. */
  pos0: number;
  /** rope_theta from the model config (10000 in LLaMA-2, 500000 in LLaMA-3). */
  theta: number;
  /** llama2.c's interleaved pairs (2i, 2i+1) instead of Hugging Face's rotate-half pairs (i, i + headDim/2). */
  interleaved?: boolean;
  /** Write here instead of rotating x in place. */
  out?: Tensor;
}

/**
 * Rotates each pair of x [T, heads, headDim] by (pos0 + t)·θ^(−2i/headDim). In place unless `out` is
 * given (x is then copied to out first, so there is one kernel). Returns the rotated tensor.
 */
export function rope(x: Tensor, opts: RopeOptions): Tensor {
  return rotate(`rope${opts.interleaved ? ' (interleaved)' : ''}`, 'x', x, opts, false);
}

/**
 * Gradient of rope(): dx = the inverse rotation of dy [T, heads, headDim], with the same options as the
 * forward (pos0, theta, convention). In place on dy unless `out` is given. Returns dx.
 */
export function ropeBackward(dy: Tensor, opts: RopeOptions): Tensor {
  return rotate(`ropeBackward${opts.interleaved ? ' (interleaved)' : ''}`, 'dy', dy, opts, true);
}

/** rope (inverse false) or its gradient (inverse true) of x, the tensor called `arg` in errors. */
function rotate(op: string, arg: string, x: Tensor, opts: RopeOptions, inverse: boolean): Tensor {
  const { pos0, theta, interleaved = false } = opts;
  expectTensor(op, arg, x, [null, null, null]);
  const [T, heads, headDim] = x.shape;
  if (headDim % 2 !== 0) fail(op, `headDim must be even, got ${arg} ${fmtShape(x.shape)}`);
  expectFinite(op, 'theta', theta);
  if (theta <= 1) fail(op, `theta must be > 1, got ${theta}`);
  // Positions are exact in f32 up to 2^24.
  expectInt(op, 'pos0', pos0, 0, 2 ** 24 - T);
  let target = x;
  if (opts.out && opts.out !== x) {
    target = outTensor(op, x, opts.out, x.shape);
    x.gpu.copy(x, target);
  }
  x.gpu.dispatch({
    op,
    shapes: { [arg]: x.shape },
    shader,
    constants: { INTERLEAVED: interleaved, INVERSE: inverse },
    params: Params.pack({ T, heads, headDim, pos0, log2Theta: Math.log2(theta) }),
    bindings: [target],
    workgroups: grid(Math.ceil((T * heads * headDim) / 2 / 64)),
  });
  return target;
}
