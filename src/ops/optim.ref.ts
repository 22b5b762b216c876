// float64 references for optim.ts.
import type { AdamOptions } from './optim.ts';

/** One Adam/AdamW step at step t (from 1), in place on P, M, V; the same update as shaders/optim.wgsl. */
export function adamRef(P: Float64Array, G: ArrayLike<number>, M: Float64Array, V: Float64Array, t: number, opts: AdamOptions): void {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = opts;
  const bc1 = 1 - beta1 ** t, bc2 = 1 - beta2 ** t;
  for (let i = 0; i < P.length; i++) {
    const g = G[i];
    M[i] = beta1 * M[i] + (1 - beta1) * g;
    V[i] = beta2 * V[i] + (1 - beta2) * g * g;
    const mHat = M[i] / bc1, vHat = V[i] / bc2;
    P[i] = P[i] * (1 - lr * weightDecay) - (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
}
