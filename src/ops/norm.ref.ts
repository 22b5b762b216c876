// float64 references for norm.ts.

/** 1/sqrt(mean(x[r]²) + eps) of row r of x [rows, dim]. */
function rstdRef(x: ArrayLike<number>, r: number, dim: number, eps: number): number {
  let ss = 0;
  for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
  return 1 / Math.sqrt(ss / dim + eps);
}

/** RMSNorm of each row of x [rows, dim] scaled by weight [dim]. */
export function rmsNormRef(x: ArrayLike<number>, weight: ArrayLike<number>, rows: number, dim: number, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const inv = rstdRef(x, r, dim, eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * inv * weight[i];
  }
  return y;
}

/**
 * Gradients of rmsNormRef given dy [rows, dim]: dx = r·(w·dy − x·r²·Σ(w·dy·x)/dim) per row (r = 1/rms),
 * dWeight = Σ_rows dy·x·r.
 */
export function rmsNormBackwardRef(
  x: ArrayLike<number>, weight: ArrayLike<number>, dy: ArrayLike<number>, rows: number, dim: number, eps: number,
): { dx: Float64Array; dWeight: Float64Array } {
  const dx = new Float64Array(rows * dim);
  const dWeight = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const inv = rstdRef(x, r, dim, eps);
    let gx = 0;
    for (let i = 0; i < dim; i++) gx += weight[i] * dy[r * dim + i] * x[r * dim + i];
    const c = (gx * inv * inv) / dim;
    for (let i = 0; i < dim; i++) {
      const j = r * dim + i;
      dx[j] = inv * (weight[i] * dy[j] - x[j] * c);
      dWeight[i] += dy[j] * x[j] * inv;
    }
  }
  return { dx, dWeight };
}
