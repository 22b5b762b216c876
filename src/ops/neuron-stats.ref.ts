// float64 reference for neuron-stats.ts: per column, the count of |a| > thr and the sum of |a|.

/** A [rows, C] → { count [C], mag [C] }. */
export function neuronStatsRef(A: ArrayLike<number>, rows: number, C: number, thr: number): { count: Float64Array; mag: Float64Array } {
  const count = new Float64Array(C);
  const mag = new Float64Array(C);
  for (let t = 0; t < rows; t++) {
    for (let c = 0; c < C; c++) {
      const a = Math.abs(A[t * C + c]);
      mag[c] += a;
      if (a > thr) count[c]++;
    }
  }
  return { count, mag };
}
