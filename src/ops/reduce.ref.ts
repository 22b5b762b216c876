// float64 references for reduce.ts.
import type { ReduceOp } from './reduce.ts';

function fold(X: ArrayLike<number>, start: number, end: number, kind: ReduceOp): number {
  let acc = kind === 'max' ? -Infinity : 0;
  for (let i = start; i < end; i++) acc = kind === 'max' ? Math.max(acc, X[i]) : acc + X[i];
  return kind === 'mean' ? acc / (end - start) : acc;
}

/** X [rows, n] → [rows]. */
export function reduceRowsRef(X: ArrayLike<number>, rows: number, n: number, kind: ReduceOp): Float64Array {
  return Float64Array.from({ length: rows }, (_, r) => fold(X, r * n, r * n + n, kind));
}

export function reduceAllRef(X: ArrayLike<number>, kind: ReduceOp): Float64Array {
  return Float64Array.of(fold(X, 0, X.length, kind));
}

export function mseRef(A: ArrayLike<number>, B: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < A.length; i++) s += (A[i] - B[i]) ** 2;
  return s / A.length;
}

/** d(scale·mse)/dA = 2(A − B)/count·scale. */
export function mseGradRef(A: ArrayLike<number>, B: ArrayLike<number>, scale = 1): Float64Array {
  return Float64Array.from(A, (a, i) => (2 * (a - B[i]) * scale) / A.length);
}

/**
 * Bin counts and the NaN count. The bin index repeats the kernel's f32 arithmetic (Math.fround at each
 * step), so a value a rounding away from a bin edge lands where the GPU puts it and counts match exactly.
 */
export function histogramRef(X: ArrayLike<number>, bins: number, lo: number, hi: number): { counts: Float64Array; nan: number } {
  const [flo, fhi] = [Math.fround(lo), Math.fround(hi)];
  const invWidth = Math.fround(bins / (fhi - flo));
  const counts = new Float64Array(bins);
  let nan = 0;
  for (let i = 0; i < X.length; i++) {
    const x = X[i];
    if (Number.isNaN(x)) nan++;
    else if (x >= fhi) counts[bins - 1]++;
    else if (x > flo) counts[Math.min(Math.trunc(Math.fround(Math.fround(x - flo) * invWidth)), bins - 1)]++;
    else counts[0]++;
  }
  return { counts, nan };
}

export function bincountRef(ids: ArrayLike<number>, bins: number): Float64Array {
  const counts = new Float64Array(bins);
  for (let i = 0; i < ids.length; i++) if (ids[i] < bins) counts[ids[i]]++;
  return counts;
}

export function countNonFiniteRef(X: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < X.length; i++) if (!Number.isFinite(X[i])) n++;
  return n;
}
