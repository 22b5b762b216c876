// float64 reference for moe-bias.ts.
import { NONE } from './moe.ts';

/** y [T, H] + Σ_j topW[t,j]·bias[topIds[t,j]] (slots marked NONE skipped): [T, H]. */
export function moeExpertBiasRef(
  y: ArrayLike<number>, bias: ArrayLike<number>, topIds: ArrayLike<number>, topW: ArrayLike<number>, T: number, H: number, kMax: number,
): Float64Array {
  const out = Float64Array.from(y);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < kMax; j++) {
      const e = topIds[t * kMax + j];
      if (e === NONE) continue;
      for (let h = 0; h < H; h++) out[t * H + h] += topW[t * kMax + j] * bias[e * H + h];
    }
  }
  return out;
}

/** dTopW [T, kMax]: ∂(Σ dy·y)/∂topW of moeExpertBiasRef, dy·bias[topIds[t,j]] (0 for NONE slots). */
export function moeExpertBiasBackwardRef(
  dy: ArrayLike<number>, bias: ArrayLike<number>, topIds: ArrayLike<number>, T: number, H: number, kMax: number,
): Float64Array {
  const out = new Float64Array(T * kMax);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < kMax; j++) {
      const e = topIds[t * kMax + j];
      if (e === NONE) continue;
      for (let h = 0; h < H; h++) out[t * kMax + j] += dy[t * H + h] * bias[e * H + h];
    }
  }
  return out;
}
