// A tensor is a shape, a dtype and a GPU buffer (from the Gpu's pool). Row-major, no offset:
// ops that work on part of a tensor take element offsets in their params instead.
import type { Gpu } from './device.ts';
import { fmtShape } from './errors.ts';

export type DType = 'f32' | 'u32' | 'i32';
export type HostArray = Float32Array | Uint32Array | Int32Array;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export class Tensor {
  private released = false;

  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly label: string,
    /** Views share their owner's buffer and cannot be released themselves. */
    readonly owner: Tensor | null = null,
  ) {}

  get size(): number {
    return numel(this.shape);
  }

  get byteSize(): number {
    return this.size * 4;
  }

  /** The same buffer seen with another shape of the same element count. */
  view(shape: readonly number[], label = this.label): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(`view: ${this.label} ${fmtShape(this.shape)} cannot be viewed as ${fmtShape(shape)}`);
    }
    return new Tensor(this.gpu, this.buffer, shape, this.dtype, label, this.owner ?? this);
  }

  /** The first n rows (along dim 0) as a view: run-state buffers sized for the longest chunk serve any shorter one. */
  rows(n: number): Tensor {
    if (!Number.isInteger(n) || n < 0 || n > this.shape[0]) {
      throw new Error(`rows: ${this.label} ${fmtShape(this.shape)} has no first ${n} rows`);
    }
    return new Tensor(this.gpu, this.buffer, [n, ...this.shape.slice(1)], this.dtype, this.label, this.owner ?? this);
  }

  read(): Promise<HostArray> {
    return this.gpu.read(this);
  }

  release(): void {
    if (this.owner) throw new Error(`release: ${this.label} is a view; release its owner`);
    if (this.released) return;
    this.released = true;
    this.gpu.recycle(this.buffer);
  }

  toString(): string {
    return `${this.label}${fmtShape(this.shape)}:${this.dtype}`;
  }
}
