// Argument checks shared by the op wrappers: each failure names the op, the operand and the shapes.
import { OpArgumentError, fmtShape } from '../gpu/errors.ts';
import type { DType, Tensor } from '../gpu/tensor.ts';

export function fail(op: string, message: string): never {
  throw new OpArgumentError(op, message);
}

/** Checks rank, dtype, and every dimension that is not null in `dims`. */
export function expectTensor(op: string, name: string, t: Tensor, dims: readonly (number | null)[], dtype: DType = 'f32'): void {
  if (t.dtype !== dtype) fail(op, `${name} must be ${dtype}, got ${t.dtype} ${fmtShape(t.shape)}`);
  const ok = t.shape.length === dims.length && dims.every((d, i) => d === null || d === t.shape[i]);
  if (!ok) {
    const want = `[${dims.map((d) => (d === null ? '*' : d)).join(', ')}]`;
    fail(op, `${name} has shape ${fmtShape(t.shape)}, expected ${want}`);
  }
}

export function expectFinite(op: string, name: string, v: number): void {
  if (!Number.isFinite(v)) fail(op, `${name} must be finite, got ${v}`);
}

export function expectInt(op: string, name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) fail(op, `${name} must be an integer in [${lo}, ${hi}], got ${v}`);
}

/** The output tensor: the caller's (checked) or a new one. */
export function outTensor(op: string, t: Tensor, out: Tensor | undefined, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (!out) return t.gpu.tensor(shape, dtype, `${op}.out`);
  expectTensor(op, 'out', out, shape, dtype);
  return out;
}

/** Splits a 1-D workgroup count over x and y so neither exceeds the per-dimension limit. */
export function grid(nWorkgroups: number, maxPerDim = 65535): [number, number] {
  if (nWorkgroups <= maxPerDim) return [nWorkgroups, 1];
  const y = Math.ceil(nWorkgroups / maxPerDim);
  return [Math.ceil(nWorkgroups / y), y];
}
