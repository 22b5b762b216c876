// float64 reference for moments.ts: the mean and M2 = Σ (x − mean)² of every column, in two passes.

/** X [rows, C] → { mean [C], m2 [C] }. */
export function columnMomentsRef(X: ArrayLike<number>, rows: number, C: number): { mean: Float64Array; m2: Float64Array } {
  const mean = new Float64Array(C);
  const m2 = new Float64Array(C);
  for (let t = 0; t < rows; t++) for (let c = 0; c < C; c++) mean[c] += X[t * C + c];
  for (let c = 0; c < C; c++) mean[c] /= rows;
  for (let t = 0; t < rows; t++) {
    for (let c = 0; c < C; c++) {
      const d = X[t * C + c] - mean[c];
      m2[c] += d * d;
    }
  }
  return { mean, m2 };
}
