// DIVE: Diversity-Enhanced Reconstruction of Large Language Models from Dense into Mixture-of-Experts.
// Y. Feng, B. Shen, N. Gu, J. Zhao, P. Fu, Z. Lin, W. Wang (ACL 2025), arXiv:2506.09351. This file: the
// pure math of the method's "Domain Affinity Mining", in float64 on the host, apart from the GPU so it is tested
// against hand-computed cases:
//   P [D, D]: P_ij = perplexity on evaluation set j of the model pruned with calibration set i
//   norm(P)_ij = min_i' P_i'j / P_ij                    (each column scaled so its best pruning scores 1)
//   R_ik = Pearson correlation of rows i and k of norm(P) (how alike two calibration sets prune)
//   hierarchical clustering, average linkage (UPGMA), on the distance 1 − R, cut into N clusters.
// Nothing here is random: the same matrix gives the same clusters, ties broken by a fixed rule.

/** One agglomeration step, as scipy.cluster.hierarchy.linkage writes it: clusters a < b (ids ≥ D are merges). */
export interface Merge {
  a: number;
  b: number;
  /** average distance between the two clusters' members */
  distance: number;
  /** members of the merged cluster */
  size: number;
}

export interface Clustering {
  /** norm(P) [D, D] */
  normalised: Float64Array;
  /** R [D, D] */
  correlation: Float64Array;
  /** the D − 1 merges of the full tree */
  merges: Merge[];
  /** cluster of each domain, 0..N−1, numbered in order of each cluster's first domain */
  labels: number[];
}

/** norm(P)_ij = min_i' P_i'j / P_ij. P: [D, D] of positive perplexities. */
export function normaliseAffinity(P: ArrayLike<number>, D: number): Float64Array {
  checkSquare(P, D, 'affinity matrix');
  const out = new Float64Array(D * D);
  for (let j = 0; j < D; j++) {
    let min = Infinity;
    for (let i = 0; i < D; i++) {
      const p = P[i * D + j];
      if (!(p > 0) || !Number.isFinite(p)) throw new Error(`affinity matrix: entry (${i}, ${j}) is ${p}; perplexities must be positive and finite`);
      min = Math.min(min, p);
    }
    for (let i = 0; i < D; i++) out[i * D + j] = min / P[i * D + j];
  }
  return out;
}

/**
 * Pearson correlation between the rows of A [D, m]: [D, D]. A row with no variance correlates 0 with
 * every other row (its correlation is undefined) and 1 with itself.
 */
export function pearsonRows(A: ArrayLike<number>, D: number, m: number): Float64Array {
  if (A.length !== D * m) throw new Error(`pearsonRows: expected ${D}×${m} = ${D * m} values, got ${A.length}`);
  const Z = new Float64Array(D * m); // rows centred and scaled to unit length
  for (let i = 0; i < D; i++) {
    let mean = 0;
    for (let c = 0; c < m; c++) mean += A[i * m + c];
    mean /= m;
    let sq = 0;
    for (let c = 0; c < m; c++) {
      Z[i * m + c] = A[i * m + c] - mean;
      sq += Z[i * m + c] ** 2;
    }
    const inv = sq > 0 ? 1 / Math.sqrt(sq) : 0;
    for (let c = 0; c < m; c++) Z[i * m + c] *= inv;
  }
  const R = new Float64Array(D * D);
  for (let i = 0; i < D; i++) {
    for (let k = i; k < D; k++) {
      let r = 0;
      for (let c = 0; c < m; c++) r += Z[i * m + c] * Z[k * m + c];
      if (i === k) r = 1;
      R[i * D + k] = r;
      R[k * D + i] = r;
    }
  }
  return R;
}

/**
 * Average-linkage (UPGMA) agglomeration of D points under the symmetric distance `dist` [D, D]: at each
 * step the two clusters with the smallest mean pairwise member distance merge. Ties go to the pair whose
 * smaller first member is lowest, then whose other first member is lowest (first member: a cluster's
 * lowest point index), so equal distances never depend on iteration order.
 */
export function averageLinkage(dist: ArrayLike<number>, D: number): Merge[] {
  checkSquare(dist, D, 'distance matrix');
  let clusters = Array.from({ length: D }, (_, i) => ({ id: i, members: [i] }));
  const merges: Merge[] = [];
  const mean = (a: number[], b: number[]) => {
    let s = 0;
    for (const i of a) for (const k of b) s += dist[i * D + k];
    return s / (a.length * b.length);
  };
  while (clusters.length > 1) {
    // clusters stay sorted by first member, so scanning p < q visits pairs in the tie order
    let best = { p: 0, q: 1, d: Infinity };
    for (let p = 0; p < clusters.length; p++) {
      for (let q = p + 1; q < clusters.length; q++) {
        const d = mean(clusters[p].members, clusters[q].members);
        if (d < best.d) best = { p, q, d };
      }
    }
    const [A, B] = [clusters[best.p], clusters[best.q]];
    const members = [...A.members, ...B.members].sort((x, y) => x - y);
    merges.push({ a: Math.min(A.id, B.id), b: Math.max(A.id, B.id), distance: best.d, size: members.length });
    clusters = clusters.filter((_, i) => i !== best.p && i !== best.q);
    clusters.push({ id: D + merges.length - 1, members });
    clusters.sort((x, y) => x.members[0] - y.members[0]);
  }
  return merges;
}

/** The N clusters left after the first D − N merges: a label per point, clusters numbered by first member. */
export function cutTree(merges: readonly Merge[], D: number, N: number): number[] {
  if (!Number.isInteger(N) || N < 1 || N > D) throw new Error(`cannot cut ${D} domains into ${N} clusters (need 1 ≤ N ≤ ${D})`);
  const members = new Map<number, number[]>(Array.from({ length: D }, (_, i) => [i, [i]]));
  for (const [s, m] of merges.slice(0, D - N).entries()) {
    members.set(D + s, [...members.get(m.a)!, ...members.get(m.b)!]);
    members.delete(m.a);
    members.delete(m.b);
  }
  const groups = [...members.values()].map((g) => g.sort((x, y) => x - y)).sort((x, y) => x[0] - y[0]);
  const labels = new Array<number>(D);
  groups.forEach((g, c) => g.forEach((i) => (labels[i] = c)));
  return labels;
}

/** Domain affinity mining end to end: P [D, D] → normalised matrix, row correlations, the average-linkage tree, N clusters. */
export function clusterDomains(P: ArrayLike<number>, D: number, N: number): Clustering {
  const normalised = normaliseAffinity(P, D);
  const correlation = pearsonRows(normalised, D, D);
  const merges = averageLinkage(correlation.map((r) => 1 - r), D);
  return { normalised, correlation, merges, labels: cutTree(merges, D, N) };
}

/**
 * DIVE without affinity mining (the paper's ablation "w/o Domain Affinity Mining"): domains in name order cut into N contiguous groups,
 * the first D mod N one domain larger (numpy.array_split), ignoring what pruning says about them.
 */
export function labelClusters(D: number, N: number): number[] {
  if (!Number.isInteger(N) || N < 1 || N > D) throw new Error(`cannot group ${D} domains into ${N} clusters (need 1 ≤ N ≤ ${D})`);
  const labels: number[] = [];
  for (let c = 0; c < N; c++) for (let s = 0; s < Math.floor(D / N) + (c < D % N ? 1 : 0); s++) labels.push(c);
  return labels;
}

function checkSquare(A: ArrayLike<number>, D: number, what: string): void {
  if (!Number.isInteger(D) || D < 1 || A.length !== D * D) throw new Error(`${what}: expected ${D}×${D} values, got ${A.length}`);
}
