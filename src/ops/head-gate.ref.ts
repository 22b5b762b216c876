// float64 reference for head-gate.ts: out[t, h, d] = s · Σ_j [topIds[t, j] = h / headsPerGroup]·topW[t, j] · att[t, h, d].

export function headGateRef(
  att: ArrayLike<number>, topIds: ArrayLike<number>, topW: ArrayLike<number>,
  T: number, heads: number, D: number, kMax: number, headsPerGroup: number, scale: number,
): Float64Array {
  const out = new Float64Array(T * heads * D);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      let w = 0;
      for (let j = 0; j < kMax; j++) if (topIds[t * kMax + j] === Math.floor(h / headsPerGroup)) w += topW[t * kMax + j];
      for (let d = 0; d < D; d++) out[(t * heads + h) * D + d] = scale * w * att[(t * heads + h) * D + d];
    }
  }
  return out;
}
