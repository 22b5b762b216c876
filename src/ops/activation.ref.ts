// float64 references for activation.ts.

function sigmoid(g: number): number {
  return 1 / (1 + Math.exp(-g));
}

/** silu(g) · u elementwise. */
export function swigluRef(g: ArrayLike<number>, u: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: g.length }, (_, i) => g[i] * sigmoid(g[i]) * u[i]);
}

/** Splits gu [rows, 2I] into its gate and up halves, each [rows, I]. */
export function splitGateUp(gu: ArrayLike<number>, rows: number, I: number): { g: Float64Array; u: Float64Array } {
  const g = new Float64Array(rows * I);
  const u = new Float64Array(rows * I);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < I; c++) {
      g[r * I + c] = gu[r * 2 * I + c];
      u[r * I + c] = gu[r * 2 * I + I + c];
    }
  }
  return { g, u };
}

/** dg = dh·u·σ(g)(1 + g(1 − σ(g))), du = dh·silu(g). */
export function swigluBackwardRef(
  g: ArrayLike<number>, u: ArrayLike<number>, dh: ArrayLike<number>,
): { dg: Float64Array; du: Float64Array } {
  const dg = new Float64Array(g.length);
  const du = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const s = sigmoid(g[i]);
    dg[i] = dh[i] * u[i] * s * (1 + g[i] * (1 - s));
    du[i] = dh[i] * g[i] * s;
  }
  return { dg, du };
}
