// LLaMA-MoE v2 (arXiv 2411.15708), router initialisation from clustering: "hidden clustering" takes
// the router's rows from k-means centroids of the layer's input hidden states (the FFN inputs, for an MLP
// MoE); "random features" takes N hidden states drawn at random as the rows; 'random' (N(0, std²)
// entries) is the baseline. Every row of the first two is scaled to the random init's expected row norm
// std·√H, so all three start at the same logit scale. k-means is LaDiMo's spherical k-means router init
// (src/methods/ladimo/construct.ts initRouter); the hidden states come from a bounded sample of the
// captured rows (sampleRows), never all captured tokens.
import { Rng } from '../../data/rng.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { initRouter } from '../ladimo/construct.ts';

export type RouterInit = 'hidden-kmeans' | 'random-features' | 'random';

export interface RouterInitOptions {
  method: RouterInit;
  nExperts: number;
  H: number;
  /** hidden-kmeans, random-features: sampled hidden states [n, H], n ≥ nExperts */
  X?: Float32Array;
  /** default 0.02 (HF initializer_range) */
  std?: number;
  seed?: number;
}

/** The router weight [N, H] (HF mlp.gate.weight). */
export function initRouterV2(o: RouterInitOptions): Float32Array {
  const { nExperts: N, H } = o;
  const std = o.std ?? 0.02;
  const seed = o.seed ?? 0;
  switch (o.method) {
    case 'random':
      return initRouter({ nExperts: N, H, method: 'random', std, seed });
    case 'hidden-kmeans':
      return initRouter({ nExperts: N, H, method: 'kmeans', std, seed, X: needStates(o) });
    case 'random-features': {
      const X = needStates(o);
      const n = X.length / H;
      // N distinct rows by a seeded partial Fisher–Yates shuffle
      const rng = new Rng(seed);
      const idx = Array.from({ length: n }, (_, i) => i);
      const W = new Float32Array(N * H);
      for (let e = 0; e < N; e++) {
        const k = e + rng.int(n - e);
        [idx[e], idx[k]] = [idx[k], idx[e]];
        const row = X.subarray(idx[e] * H, (idx[e] + 1) * H);
        const norm = Math.hypot(...row);
        const f = norm > 0 ? (std * Math.sqrt(H)) / norm : 0;
        for (let h = 0; h < H; h++) W[e * H + h] = row[h] * f;
      }
      return W;
    }
    default:
      throw new Error(`v2.routerInit: unknown ${JSON.stringify(o.method)} (hidden-kmeans, random-features, random)`);
  }
}

function needStates(o: RouterInitOptions): Float32Array {
  if (!o.X) throw new Error(`v2.routerInit '${o.method}' needs sampled hidden states X [n, ${o.H}]`);
  if (o.X.length === 0 || o.X.length % o.H !== 0) throw new Error(`v2.routerInit: X has ${o.X.length} values, not a positive multiple of H = ${o.H}`);
  const n = o.X.length / o.H;
  if (n < o.nExperts) throw new Error(`v2.routerInit '${o.method}': ${n} hidden states for ${o.nExperts} experts; needs at least one per expert`);
  return o.X;
}

/** The first `rows` rows of captured states x [n, H] (all of them when fewer), read back to the host. */
export async function sampleRows(x: Tensor, rows: number): Promise<Float32Array> {
  const [n, H] = x.shape;
  const m = Math.min(n, rows);
  if (m < 1) throw new Error(`sampleRows: no rows to sample from ${x}`);
  const part = x.gpu.tensor([m, H], 'f32', 'v2.router.sample');
  x.gpu.copyRows(x, 0, part);
  try {
    return (await part.read()) as Float32Array;
  } finally {
    part.release();
  }
}
