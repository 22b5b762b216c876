// Optimizer wrappers over shaders/optim.wgsl: one Adam/AdamW step, in place on param and its moments.
import shader from '../../shaders/optim.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectInt, expectTensor, fail, grid } from './validate.ts';

const Params = paramStruct([
  ['len', 'u32'],
  ['beta1', 'f32'], ['beta2', 'f32'],
  ['oneMinusBeta1', 'f32'], ['oneMinusBeta2', 'f32'],
  ['eps', 'f32'],
  ['decay', 'f32'], ['stepSize', 'f32'], ['rsqrtBc2', 'f32'],
] as const);

const WG = 256;

export interface AdamOptions {
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled (AdamW) weight decay; 0, the default, is plain Adam. */
  weightDecay?: number;
}

/**
 * One Adam/AdamW step, in place: updates param and its first/second moments m and v (zeros before
 * step 1) from grad. All four f32 and the same shape; step t counts from 1.
 */
export function adamStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: number, opts: AdamOptions): void {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = opts;
  const op = weightDecay ? 'adamW' : 'adam';
  const check = (name: string, value: number, ok: boolean, range: string) => {
    if (!Number.isFinite(value) || !ok) fail(op, `${name} must be ${range}, got ${value}`);
  };
  check('lr', lr, lr >= 0, 'finite and ≥ 0');
  check('beta1', beta1, beta1 >= 0 && beta1 < 1, 'in [0, 1)');
  check('beta2', beta2, beta2 >= 0 && beta2 < 1, 'in [0, 1)');
  check('eps', eps, eps > 0, 'finite and > 0');
  check('weightDecay', weightDecay, weightDecay >= 0 && lr * weightDecay < 1, 'finite, ≥ 0 and < 1/lr');
  expectInt(op, 'step', t, 1, Number.MAX_SAFE_INTEGER);
  expectTensor(op, 'param', param, param.shape);
  for (const [name, x] of [['grad', grad], ['m', m], ['v', v]] as const) expectTensor(op, name, x, param.shape);
  // WebGPU rejects one buffer in two writable bindings; catch it here, under the op's name.
  if (new Set([param.buffer, m.buffer, v.buffer]).size < 3) fail(op, `param, m and v must be distinct tensors, got ${param}, ${m}, ${v}`);
  param.gpu.dispatch({
    op,
    shapes: { param: param.shape },
    shader,
    constants: { WG },
    params: Params.pack({
      len: param.size, beta1, beta2, eps,
      oneMinusBeta1: 1 - beta1,
      oneMinusBeta2: 1 - beta2,
      decay: 1 - lr * weightDecay,
      stepSize: lr / (1 - beta1 ** t),
      rsqrtBc2: 1 / Math.sqrt(1 - beta2 ** t),
    }),
    bindings: [grad, param, m, v],
    workgroups: grid(Math.ceil(param.size / WG)),
  });
}
