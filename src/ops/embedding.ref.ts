// float64 reference for embedding.ts.

/** Rows ids[t] of table [vocab, dim]; a row of NaN where ids[t] ≥ vocab, as the kernel writes. */
export function embeddingRef(table: ArrayLike<number>, ids: ArrayLike<number>, vocab: number, dim: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    for (let i = 0; i < dim; i++) out[t * dim + i] = ids[t] < vocab ? table[ids[t] * dim + i] : NaN;
  }
  return out;
}
