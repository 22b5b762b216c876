// DIVE's domain affinity (arXiv 2506.09351, "Domain Affinity Mining"): the normalised matrix
// min_i P_ij / P_ij (row i: the model pruned with domain i's calibration text; column j: evaluated on
// domain j) as a heatmap, rows and columns in the leaf order of the average-linkage tree over the rows'
// correlations, with that tree drawn beside the rows. Rows that prune alike sit together, the N clusters
// that became experts are outlined on the diagonal, and the dashed line marks where the tree was cut.
import type { Merge } from '../../methods/dive/cluster.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { dendrogramLayout } from './dendrogram.ts';
import { CHAR_W } from './legend.tsx';
import { INK, seriesColor, sequentialBlue } from './palette.ts';

export interface AffinityHeatmapProps {
  domains: readonly string[];
  /** P [D][D]: perplexity on domain j of the model pruned with domain i */
  ppl: readonly (readonly number[])[];
  /** min_i P_ij / P_ij [D][D] */
  normalised: readonly (readonly number[])[];
  /** Pearson correlation of the normalised rows [D][D] */
  correlation: readonly (readonly number[])[];
  merges: readonly Merge[];
  /** the expert (cluster) of each domain */
  cluster: readonly number[];
}

const DENDRO_W = 150;
const GAP = 10;
const TAG_W = 30;
const AXIS_H = 34;
const SCALE_GAP = 22;
const SCALE_W = 12;
const SCALE_LABEL_W = 40;
const SCALE_STEPS = 40;

export function AffinityHeatmap(p: AffinityHeatmapProps) {
  const D = p.domains.length;
  const layout = dendrogramLayout(p.merges, D);
  const N = Math.max(0, ...p.cluster) + 1;
  return (
    <ChartFrame
      id="affinity"
      title="Domain affinity, ordered by the clustering"
      caption={`Perplexity of the best pruning of each column over this row's (min_i P_ij / P_ij; 1 is the best row for that column), rows and columns in the tree's leaf order; outlined blocks are the ${N} clusters that became experts.`}
      points={D * D}
      summary={summary(p, layout.order)}
      csv={{
        header: ['pruned_with', 'evaluated_on', 'ppl', 'normalised', 'row_correlation', 'pruned_with_cluster'],
        rows: p.domains.flatMap((a, i) => p.domains.map((b, j) => [a, b, p.ppl[i][j], p.normalised[i][j], p.correlation[i][j], p.cluster[i]])),
      }}
      stage="DIVE"
    >
      {(width) => <Figure {...p} width={width} />}
    </ChartFrame>
  );
}

function Figure({ domains, normalised, merges, cluster, width }: AffinityHeatmapProps & { width: number }) {
  const D = domains.length;
  const { order, links, height } = dendrogramLayout(merges, D);
  const N = Math.max(0, ...cluster) + 1;
  const longest = Math.max(0, ...domains.map((d) => d.length));
  const labelW = 12 + longest * CHAR_W;
  const headH = 16 + longest * CHAR_W * Math.sin(Math.PI / 3);
  const cell = Math.max(14, Math.min(40, (width - DENDRO_W - GAP - TAG_W - labelW - SCALE_GAP - SCALE_W - SCALE_LABEL_W) / D));
  const gridX = DENDRO_W + GAP + TAG_W + labelW;
  const gridH = D * cell;
  const vmin = Math.min(...normalised.flat());
  const t = (v: number) => (vmin < 1 ? (v - vmin) / (1 - vmin) : 1);
  // the dendrogram: root at the left edge, leaves at the rows
  const hx = (h: number) => DENDRO_W - (height > 0 ? (h / height) * (DENDRO_W - 8) : 0);
  const ry = (pos: number) => headH + (pos + 0.5) * cell;
  // the cut into N clusters lies between the (D − N)th and the next merge
  const cut = N > 1 && N < D ? (merges[D - N - 1].distance + merges[D - N].distance) / 2 : null;
  // clusters are subtrees, so each is a run of positions: its outline on the diagonal
  const blocks: { c: number; from: number; to: number }[] = [];
  order.forEach((d, pos) => {
    const last = blocks.at(-1);
    if (last && last.c === cluster[d]) last.to = pos;
    else blocks.push({ c: cluster[d], from: pos, to: pos });
  });
  const digits = cell >= 34;
  const ticks = height > 0 ? [0, height / 2, height] : [0];
  return (
    <svg width={width} height={headH + gridH + AXIS_H} className="heatmap">
      <g stroke={INK.text2} strokeWidth={1.2} fill="none">
        {links.map((l, i) => (
          <path key={i} d={`M${hx(l.ha)},${ry(l.a)}H${hx(l.h)}V${ry(l.b)}H${hx(l.hb)}`} />
        ))}
      </g>
      {cut !== null && (
        <g>
          <line x1={hx(cut)} x2={hx(cut)} y1={headH - 6} y2={headH + gridH} stroke={INK.bad} strokeDasharray="4 3" />
          <text x={hx(cut) + 4} y={headH - 8} fontSize={11} fill={INK.bad}>
            cut: {N} clusters
          </text>
        </g>
      )}
      <g fontSize={10.5} fill={INK.muted}>
        <line x1={hx(0)} x2={hx(height)} y1={headH + gridH + 6} y2={headH + gridH + 6} stroke={INK.borderStrong} />
        {ticks.map((v) => (
          // the ends anchored inwards, so no label runs off the figure
          <text key={v} x={hx(v)} y={headH + gridH + 18} textAnchor={v === 0 ? 'end' : v === height ? 'start' : 'middle'}>
            {v.toFixed(2)}
          </text>
        ))}
        <text x={hx(height)} y={headH + gridH + 31}>
          distance 1 − r, average linkage
        </text>
      </g>
      {order.map((d, pos) => (
        <g key={d}>
          <text x={DENDRO_W + GAP} y={ry(pos)} dominantBaseline="central" fontSize={11} fontWeight={700} fill={seriesColor(cluster[d], N)}>
            E{cluster[d]}
          </text>
          <text x={gridX - 8} y={ry(pos)} dominantBaseline="central" textAnchor="end" fontSize={11.5} fill={INK.text2}>
            {domains[d]}
          </text>
          <text
            transform={`translate(${gridX + (pos + 0.5) * cell}, ${headH - 6}) rotate(-60)`}
            fontSize={11.5}
            fill={INK.text2}
          >
            {domains[d]}
          </text>
        </g>
      ))}
      {order.map((i, r) =>
        order.map((j, c) => {
          const v = normalised[i][j];
          return (
            <g key={`${i}-${j}`} className="heat-cell" transform={`translate(${gridX + c * cell}, ${headH + r * cell})`}>
              <title>{`pruned with ${domains[i]}, evaluated on ${domains[j]}: ${v.toFixed(3)} of the best pruning's perplexity`}</title>
              <rect x={0.5} y={0.5} width={cell - 1} height={cell - 1} fill={sequentialBlue(t(v))} />
              {digits && (
                <text x={cell / 2} y={cell / 2} dominantBaseline="central" textAnchor="middle" fontSize={9.5} fill={t(v) > 0.55 ? '#fff' : INK.text2}>
                  {v.toFixed(2)}
                </text>
              )}
            </g>
          );
        }),
      )}
      {blocks.map((b) => (
        <rect
          key={b.from}
          x={gridX + b.from * cell}
          y={headH + b.from * cell}
          width={(b.to - b.from + 1) * cell}
          height={(b.to - b.from + 1) * cell}
          fill="none"
          stroke={seriesColor(b.c, N)}
          strokeWidth={2.5}
        />
      ))}
      <ColourBar x={gridX + D * cell + SCALE_GAP} y={headH} h={gridH} vmin={vmin} />
    </svg>
  );
}

function ColourBar({ x, y, h, vmin }: { x: number; y: number; h: number; vmin: number }) {
  const band = h / SCALE_STEPS;
  return (
    <g>
      {Array.from({ length: SCALE_STEPS }, (_, i) => (
        <rect key={i} x={x} y={y + h - (i + 1) * band} width={SCALE_W} height={band + 0.5} fill={sequentialBlue((i + 0.5) / SCALE_STEPS)} />
      ))}
      <rect x={x} y={y} width={SCALE_W} height={h} fill="none" stroke={INK.border} />
      <text x={x + SCALE_W + 6} y={y + 4} dominantBaseline="central" fontSize={11} fill={INK.muted}>
        1.00
      </text>
      <text x={x + SCALE_W + 6} y={y + h - 4} dominantBaseline="central" fontSize={11} fill={INK.muted}>
        {vmin.toFixed(2)}
      </text>
    </g>
  );
}

function summary(p: AffinityHeatmapProps, order: readonly number[]): string {
  const N = Math.max(0, ...p.cluster) + 1;
  const groups = Array.from({ length: N }, (_, c) => order.filter((d) => p.cluster[d] === c).map((d) => p.domains[d]));
  return (
    `Normalised affinity of ${p.domains.length} domains in the clustering's leaf order (${order.map((d) => p.domains[d]).join(', ')}). ` +
    `The ${N} clusters: ${groups.map((g, c) => `expert ${c}: ${g.join(', ')}`).join('; ')}.`
  );
}
