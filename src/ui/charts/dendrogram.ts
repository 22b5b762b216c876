// The layout of an agglomerative clustering tree (DIVE's domain affinity mining, src/methods/dive/
// cluster.ts), as scipy.cluster.hierarchy.dendrogram draws it: leaves in the order a depth-first walk from
// the root meets them (the first-merged side first), each merge at its distance, above the midpoint of
// its two children. Pure layout: the chart (AffinityHeatmap.tsx) maps it to pixels.
import type { Merge } from '../../methods/dive/cluster.ts';

export interface DendrogramLink {
  /** positions along the leaf axis (0..D−1) of the two children, and of the merge (their midpoint) */
  a: number;
  b: number;
  mid: number;
  /** the children's heights (0 for a leaf) and the merge's (its distance) */
  ha: number;
  hb: number;
  h: number;
}

export interface DendrogramLayout {
  /** leaf order: order[p] is the point drawn at position p */
  order: number[];
  links: DendrogramLink[];
  /** the tallest merge's distance */
  height: number;
}

/** Layout of the D − 1 merges over D points (ids ≥ D name merge id − D). */
export function dendrogramLayout(merges: readonly Merge[], D: number): DendrogramLayout {
  if (merges.length !== D - 1) throw new Error(`dendrogram: ${merges.length} merges for ${D} points (expected ${D - 1})`);
  const order: number[] = [];
  const walk = (id: number): void => {
    if (id < D) order.push(id);
    else {
      walk(merges[id - D].a);
      walk(merges[id - D].b);
    }
  };
  if (D > 0) walk(D === 1 ? 0 : 2 * D - 2);
  const pos = new Map<number, number>(order.map((p, i) => [p, i]));
  const height = (id: number) => (id < D ? 0 : merges[id - D].distance);
  const links = merges.map((m, s): DendrogramLink => {
    const a = pos.get(m.a)!;
    const b = pos.get(m.b)!;
    pos.set(D + s, (a + b) / 2);
    return { a, b, mid: (a + b) / 2, ha: height(m.a), hb: height(m.b), h: m.distance };
  });
  return { order, links, height: Math.max(0, ...merges.map((m) => m.distance)) };
}
