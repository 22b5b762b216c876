// Elementwise wrappers over shaders/elementwise.wgsl. `out: 'inplace'` writes into the first operand.
import shader from '../../shaders/elementwise.wgsl';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';
import { fmtShape } from '../gpu/errors.ts';

const Params = paramStruct([['n', 'u32'], ['cols', 'u32'], ['s', 'f32']] as const);

type Out = Tensor | 'inplace' | undefined;

function run(op: string, entry: string, a: Tensor, b: Tensor | null, out: Out, cols: number, s: number): Tensor {
  const inPlace = out === 'inplace';
  const target = inPlace ? a : outTensor(op, a, out, a.shape);
  const n = a.size;
  a.gpu.dispatch({
    op,
    shapes: b ? { a: a.shape, b: b.shape } : { a: a.shape },
    shader,
    entry: inPlace ? `${entry}_inplace` : entry,
    params: Params.pack({ n, cols, s }),
    bindings: [a, b, inPlace ? null : target],
    workgroups: grid(Math.ceil(n / 256), a.gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return target;
}

/** a + b (same shape). */
export function add(a: Tensor, b: Tensor, out?: Out): Tensor {
  expectTensor('add', 'b', b, a.shape);
  expectTensor('add', 'a', a, b.shape);
  return run('add', 'add', a, b, out, 1, 0);
}

/** x[r, :] + bias for x [rows, cols], bias [cols]. */
export function addBias(x: Tensor, bias: Tensor, out?: Out): Tensor {
  const cols = x.shape.at(-1) ?? 0;
  expectTensor('addBias', 'bias', bias, [cols]);
  if (x.dtype !== 'f32') fail('addBias', `x must be f32, got ${x.dtype} ${fmtShape(x.shape)}`);
  return run('addBias', 'add_bias', x, bias, out, cols, 0);
}

/** s · a. */
export function scale(a: Tensor, s: number, out?: Out): Tensor {
  expectFinite('scale', 's', s);
  if (a.dtype !== 'f32') fail('scale', `a must be f32, got ${a.dtype}`);
  return run('scale', 'scale', a, null, out, 1, s);
}
