// Typed errors: every failure names the op (or file/field) and what was expected.

/** A caller passed tensors or arguments an op cannot take (shapes, k, non-finite scalars). */
export class OpArgumentError extends Error {
  constructor(readonly op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'OpArgumentError';
  }
}

/** WebGPU rejected something an op recorded (validation), or ran out of memory. */
export class GpuOpError extends Error {
  constructor(readonly op: string, readonly kind: 'validation' | 'out-of-memory' | 'internal', detail: string) {
    super(`${op}: WebGPU ${kind} error: ${detail}`);
    this.name = 'GpuOpError';
  }
}

/** The request exceeds what the adapter allows; says which limit and by how much. */
export class GpuLimitError extends Error {
  constructor(readonly what: string, readonly limit: string, readonly requested: number, readonly allowed: number) {
    super(
      `${what}: needs ${requested} but the adapter's ${limit} is ${allowed} ` +
        `(${(requested / allowed).toFixed(2)}× over, short by ${requested - allowed})`,
    );
    this.name = 'GpuLimitError';
  }
}

/** The GPU device was lost (driver reset, tab backgrounded, destroy()); work must restart on a new device. */
export class DeviceLostError extends Error {
  constructor(readonly reason: string, detail: string) {
    super(`GPU device lost (${reason}): ${detail}`);
    this.name = 'DeviceLostError';
  }
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
