// SwiGLU and its gradient: shaders/activation.wgsl (LLaMA's MLP activation, act_fn(gate_proj(x)) · up_proj(x)).
import shader from '../../shaders/activation.wgsl';
import { paramStruct } from '../gpu/params.ts';
import { fmtShape } from '../gpu/errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['n', 'u32'], ['I', 'u32']] as const);

function workgroups(n: number): [number, number] {
  return grid(Math.ceil(n / 64));
}

/** h = silu(gate) · up, elementwise; gate and up of one shape (any rank). */
export function swiglu(gate: Tensor, up: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'swiglu';
  expectTensor(op, 'gate', gate, gate.shape.map(() => null));
  expectTensor(op, 'up', up, gate.shape);
  const out = outTensor(op, gate, opts.out, gate.shape);
  const n = gate.size;
  gate.gpu.dispatch({
    op,
    shapes: { gate: gate.shape, up: up.shape },
    shader,
    constants: { FUSED: false },
    params: Params.pack({ n, I: 0 }),
    bindings: [gate, up, out],
    workgroups: workgroups(n),
  });
  return out;
}

/** h = silu(gu[:, :I]) · gu[:, I:] for gu: [rows, 2I], the gate‖up output of one fused projection → h: [rows, I]. */
export function swigluFused(gu: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'swigluFused';
  expectTensor(op, 'gu', gu, [null, null]);
  const [rows, twoI] = gu.shape;
  if (twoI % 2 !== 0) fail(op, `gu ${fmtShape(gu.shape)} must have an even number of columns (gate‖up)`);
  const I = twoI / 2;
  const out = outTensor(op, gu, opts.out, [rows, I]);
  gu.gpu.dispatch({
    op,
    shapes: { gu: gu.shape },
    shader,
    constants: { FUSED: true },
    params: Params.pack({ n: rows * I, I }),
    bindings: [gu, gu, out],
    workgroups: workgroups(rows * I),
  });
  return out;
}

/** Gradients of h = silu(gate) · up given dh: dGate = dh·up·σ(g)(1 + g(1 − σ(g))), dUp = dh·silu(g). */
export function swigluBackward(
  gate: Tensor,
  up: Tensor,
  dh: Tensor,
  opts: { dGate?: Tensor; dUp?: Tensor } = {},
): { dGate: Tensor; dUp: Tensor } {
  const op = 'swigluBackward';
  expectTensor(op, 'gate', gate, gate.shape.map(() => null));
  expectTensor(op, 'up', up, gate.shape);
  expectTensor(op, 'dh', dh, gate.shape);
  const dGate = outTensor(op, gate, opts.dGate, gate.shape);
  const dUp = outTensor(op, gate, opts.dUp, gate.shape);
  const n = gate.size;
  gate.gpu.dispatch({
    op,
    shapes: { gate: gate.shape, up: up.shape, dh: dh.shape },
    shader,
    entry: 'backward',
    params: Params.pack({ n, I: 0 }),
    bindings: [gate, up, dh, dGate, dUp],
    workgroups: workgroups(n),
  });
  return { dGate, dUp };
}
