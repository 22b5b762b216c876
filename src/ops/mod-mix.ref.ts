// Float64 reference of the Mixture-of-Depths mixture loss (mod-mix.ts), written as the paper's formulas:
// g = softmax(a), P_mix = Σ_i g_i·softmax(z_i) (prob) or softmax(Σ_i g_i·z_i) (logit),
// ce = −log P_mix(t), kl = Σ_{i≥1} KL(softmax(z_0) ‖ softmax(z_i)); gradients by the chain rule.
import type { MixSpace } from './mod-mix.ts';

function softmax(z: ArrayLike<number>, off: number, n: number): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, z[off + j]);
  const p = new Float64Array(n);
  let s = 0;
  for (let j = 0; j < n; j++) s += (p[j] = Math.exp(z[off + j] - m));
  for (let j = 0; j < n; j++) p[j] /= s;
  return p;
}

export interface MixRef {
  ce: Float64Array;      // [rows]
  kl: Float64Array;      // [rows]
  logProbs: Float64Array;  // [rows, n]
  dLogits: Float64Array;   // [K, rows, n], of ceScale·Σ ce + klScale·Σ kl
  dRouter: Float64Array;   // [rows, K]
}

/**
 * Z [K, rows, n], A [rows, K], targets [rows]. `teacher` [rows, n], when given, stands for member 0 in
 * the KL only: a finite-difference check holds it fixed, as the stop-gradient does.
 */
export function modMixRef(
  Z: ArrayLike<number>, A: ArrayLike<number>, targets: ArrayLike<number>,
  K: number, rows: number, n: number, mix: MixSpace, ceScale = 1, klScale = 1, teacher?: ArrayLike<number>,
): MixRef {
  const ce = new Float64Array(rows), kl = new Float64Array(rows), logProbs = new Float64Array(rows * n);
  const dLogits = new Float64Array(K * rows * n), dRouter = new Float64Array(rows * K);
  for (let r = 0; r < rows; r++) {
    const g = softmax(A, r * K, K);
    const p = Array.from({ length: K }, (_, i) => softmax(Z, (i * rows + r) * n, n));
    const p0 = teacher ? softmax(teacher, r * n, n) : p[0];
    const t = targets[r];
    let P: Float64Array;
    if (mix === 'prob') {
      P = new Float64Array(n);
      for (let i = 0; i < K; i++) for (let j = 0; j < n; j++) P[j] += g[i] * p[i][j];
    } else {
      const zm = new Float64Array(n);
      for (let i = 0; i < K; i++) for (let j = 0; j < n; j++) zm[j] += g[i] * Z[(i * rows + r) * n + j];
      P = softmax(zm, 0, n);
    }
    for (let j = 0; j < n; j++) logProbs[r * n + j] = Math.log(P[j]);
    ce[r] = -Math.log(P[t]);
    for (let i = 1; i < K; i++) for (let j = 0; j < n; j++) kl[r] += p0[j] * (Math.log(p0[j]) - Math.log(p[i][j]));
    // ∂ce/∂z_i and ∂ce/∂g_i, then through g = softmax(a): ∂a_j = g_j·(∂g_j − Σ_i g_i ∂g_i)
    const dg = new Float64Array(K);
    for (let i = 0; i < K; i++) {
      const zi = (i * rows + r) * n;
      if (mix === 'prob') {
        // −log Σ g p(t): ∂/∂g_i = −p_i(t)/P(t); ∂/∂z_i[j] = −g_i p_i(t)(δ_jt − p_i[j])/P(t)
        dg[i] = -p[i][t] / P[t];
        for (let j = 0; j < n; j++) dLogits[zi + j] = ceScale * (g[i] * p[i][t] / P[t]) * (p[i][j] - (j === t ? 1 : 0));
      } else {
        // ce = lse(zm) − zm(t), zm = Σ g z: ∂/∂zm = P − onehot
        let c = 0;
        for (let j = 0; j < n; j++) {
          const d = P[j] - (j === t ? 1 : 0);
          c += d * Z[zi + j];
          dLogits[zi + j] = ceScale * g[i] * d;
        }
        dg[i] = c;
      }
      if (i > 0) for (let j = 0; j < n; j++) dLogits[zi + j] += klScale * (p[i][j] - p0[j]);
    }
    let gdg = 0;
    for (let i = 0; i < K; i++) gdg += g[i] * dg[i];
    for (let i = 0; i < K; i++) dRouter[r * K + i] = ceScale * g[i] * (dg[i] - gdg);
  }
  return { ce, kl, logProbs, dLogits, dRouter };
}
