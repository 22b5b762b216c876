// Kernel verification: each op family lists CheckCases that run its GPU kernel on fresh random inputs
// (outputs NaN-poisoned first) and compare with the float64 CPU reference by relative L2 error.
// `moefy kernels check`, the test suite and the browser smoke test all run these same cases.
import type { GemmKernel, Gpu } from '../gpu/device.ts';
import type { HostArray } from '../gpu/tensor.ts';
import { Tensor } from '../gpu/tensor.ts';
import { Rng } from '../data/rng.ts';

/** Relative L2 error ‖got − want‖ / ‖want‖ (absolute when want is zero); Infinity if got has a NaN/Inf. */
export function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    const d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export interface CheckResult {
  /** Worst relative L2 error over the case's outputs. */
  err: number;
  /** Per-output errors, for the report. */
  outputs: Record<string, number>;
}

export interface CheckCase {
  family: string;
  name: string;
  /** Bound on relative L2 error. */
  tol: number;
  /** Part of the small set the browser e2e test runs in a Web Worker. */
  smoke?: boolean;
  run(gpu: Gpu, rng: Rng): Promise<CheckResult>;
}

/** Tolerances stated by the foundation issue. */
/**
 * Error checks: each case's call must throw a message containing every one of its words (the file, field
 * or op and what was expected). 0 per case that does, Infinity per case that does not or is accepted.
 */
export function refusals(cases: readonly (readonly [label: string, call: () => unknown, words: readonly string[]])[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [label, call, words] of cases) {
    let msg = 'accepted';
    try {
      call();
    } catch (e) {
      msg = (e as Error).message;
    }
    out[label] = words.every((w) => msg.includes(w)) ? 0 : Infinity;
  }
  return out;
}

/** Both GEMM kernel families (Gpu.gemmKernel): the tiled one (GPUs) and the direct one (software adapters). */
export const GEMM_KERNELS: readonly GemmKernel[] = ['tiled', 'direct'];

/** Each case once per GEMM kernel family, run with the device set to it, so a check covers both wherever it runs. */
export function onEachGemmKernel(cases: readonly CheckCase[]): CheckCase[] {
  return cases.flatMap((c) => GEMM_KERNELS.map((kernel) => ({
    ...c,
    name: `${c.name} ${kernel}`,
    async run(gpu: Gpu, rng: Rng) {
      const was = gpu.gemmKernel;
      gpu.gemmKernel = kernel;
      try {
        return await c.run(gpu, rng);
      } finally {
        gpu.gemmKernel = was;
      }
    },
  })));
}

export const TOL = { elementwise: 1e-5, gemm: 1e-4, grad: 1e-4 } as const;

/** Reads each output tensor and compares it with its reference; also releases the tensors given. */
export async function compare(
  outputs: Record<string, [Tensor, ArrayLike<number>]>,
  release: Tensor[] = [],
): Promise<CheckResult> {
  const errs: Record<string, number> = {};
  let worst = 0;
  for (const [name, [t, want]] of Object.entries(outputs)) {
    const got: HostArray = await t.read();
    const e = relL2(got, want);
    errs[name] = e;
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : e);
  }
  for (const t of release) t.release();
  return { err: worst, outputs: errs };
}

/** An output tensor filled with NaN, so any element the kernel fails to write shows up. */
export function poisoned(gpu: Gpu, shape: readonly number[], dtype: 'f32' | 'u32' = 'f32', label = 'out'): Tensor {
  const t = gpu.tensor(shape, dtype, label);
  gpu.poison(t);
  return t;
}

export interface CheckReport {
  family: string;
  name: string;
  tol: number;
  err: number;
  outputs: Record<string, number>;
  ok: boolean;
  ms: number;
  error?: string;
}

/** Runs cases in order with a fresh Rng per case (seed + index), so any case can be re-run alone. */
export async function runChecks(
  gpu: Gpu,
  cases: readonly CheckCase[],
  seed = 1234,
  onResult?: (r: CheckReport) => void,
): Promise<CheckReport[]> {
  const reports: CheckReport[] = [];
  for (const [i, c] of cases.entries()) {
    const t0 = performance.now();
    let report: CheckReport;
    try {
      const r = await c.run(gpu, new Rng(seed + i * 7919));
      report = { family: c.family, name: c.name, tol: c.tol, err: r.err, outputs: r.outputs, ok: r.err <= c.tol, ms: performance.now() - t0 };
    } catch (e) {
      report = { family: c.family, name: c.name, tol: c.tol, err: Infinity, outputs: {}, ok: false, ms: performance.now() - t0, error: String((e as Error)?.message ?? e) };
    }
    reports.push(report);
    onResult?.(report);
  }
  return reports;
}
