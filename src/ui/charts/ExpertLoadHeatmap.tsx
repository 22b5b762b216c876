// Expert load: the share of (token, slot) assignments each expert receives, as a rows × experts grid, a
// row per layer (LaDiMo's distilled layers) or per domain (DIVE's routing analysis). Cells under 1/(4N),
// the bar the issue sets for a balanced router, are outlined: an expert that few tokens reach is capacity
// the MoE carries but hardly uses.
import type { ReactNode } from 'react';
import { fmtPct } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { CHAR_W } from './legend.tsx';
import { INK, sequentialBlue } from './palette.ts';

export interface ExpertLoadHeatmapProps {
  /** per row, its label ('Layer 3', 'math'), its value in the CSV (the layer; default the label) and the share of assignments per expert (length N, summing to 1) */
  rows: readonly { label: string; key?: string | number; shares: readonly number[] }[];
  /** what a row is, for the CSV's first column and the summary: 'layer', 'domain' */
  rowKind: string;
  id?: string;
  title?: string;
  /** the caption's first sentence: whose assignments */
  what?: string;
  stage?: string;
  controls?: ReactNode;
}

type Row = ExpertLoadHeatmapProps['rows'][number];
const HEAD_H = 24;
const CELL_H = 34;
const SCALE_GAP = 28;
const SCALE_W = 14;
const SCALE_LABEL_W = 74;
const KEY_H = 34;
const KEY_ROW = 20;
/** Steps of the colour bar: drawn as bands, so it needs no gradient id and exports as drawn. */
const SCALE_STEPS = 48;

export function ExpertLoadHeatmap({
  rows, rowKind, id = 'expert-load', title = 'Expert load per layer', what = 'Share of held-out token assignments per expert', stage = 'Distill', controls,
}: ExpertLoadHeatmapProps) {
  const n = Math.max(0, ...rows.map((r) => r.shares.length));
  const floor = n > 0 ? 1 / (4 * n) : 0;
  const below = rows.flatMap((r) => r.shares.flatMap((s, e) => (s < floor ? [{ row: r.label, expert: e, share: s }] : [])));
  return (
    <ChartFrame
      id={id}
      title={title}
      caption={`${what}; outlined cells fall below 1/(4N) = ${n ? fmtPct(floor) : '—'}.`}
      points={rows.reduce((c, r) => c + r.shares.length, 0)}
      summary={summary(rows, rowKind, n, floor, below)}
      csv={{
        header: [rowKind, 'expert', 'share', 'below_floor'],
        rows: rows.flatMap((r) => r.shares.map((s, e) => [r.key ?? r.label, e, s, s < floor])),
      }}
      stage={stage}
      controls={controls}
    >
      {(width) => <Grid rows={rows} n={n} floor={floor} width={width} />}
    </ChartFrame>
  );
}

function Grid({ rows, n, floor, width }: { rows: readonly Row[]; n: number; floor: number; width: number }) {
  const LABEL_W = Math.max(70, 16 + Math.max(0, ...rows.map((r) => r.label.length)) * CHAR_W);
  const cellW = Math.max(22, Math.min(84, (width - LABEL_W - SCALE_GAP - SCALE_W - SCALE_LABEL_W) / n));
  const gridW = n * cellW;
  const gridH = rows.length * CELL_H;
  const vmax = Math.max(2 / n, ...rows.flatMap((r) => r.shares));
  const scaleX = LABEL_W + gridW + SCALE_GAP;
  const scaleH = Math.max(gridH, 150);
  // the key: the floor's outline, then the uniform share, on a second line when the first is full
  const keyText = `below 1/(4N) = ${fmtPct(floor)} of assignments`;
  const uniformText = `a balanced router gives each of the ${n} experts 1/N = ${fmtPct(1 / n)}`;
  const uniformX = 28 + keyText.length * CHAR_W + 28;
  const keyWraps = LABEL_W + uniformX + uniformText.length * CHAR_W > width;
  const height = HEAD_H + scaleH + KEY_H + (keyWraps ? KEY_ROW : 0);
  const digits = cellW >= 44 ? 1 : 0;

  return (
    <svg width={width} height={height} className="heatmap">
      {Array.from({ length: n }, (_, e) => (
        <text key={e} x={LABEL_W + (e + 0.5) * cellW} y={HEAD_H - 8} textAnchor="middle" fontSize={11.5} fill={INK.muted}>
          {cellW >= 34 ? `E${e}` : e}
        </text>
      ))}
      {rows.map((r, i) => (
        <g key={r.label} transform={`translate(0, ${HEAD_H + i * CELL_H})`}>
          <text x={LABEL_W - 12} y={CELL_H / 2} dominantBaseline="central" textAnchor="end" fontSize={12} fontWeight={600} fill={INK.text2}>
            {r.label}
          </text>
          {r.shares.map((share, e) => {
            const t = share / vmax;
            const low = share < floor;
            return (
              <g key={e} className="heat-cell" transform={`translate(${LABEL_W + e * cellW}, 0)`}>
                <title>{`${r.label}, expert ${e}: ${fmtPct(share, 2)} of assignments${low ? ' (below 1/(4N))' : ''}`}</title>
                <rect x={1} y={1} width={cellW - 2} height={CELL_H - 2} rx={3} fill={sequentialBlue(t)} />
                {low && <rect x={2.5} y={2.5} width={cellW - 5} height={CELL_H - 5} rx={2} fill="none" stroke={INK.bad} strokeWidth={1.6} strokeDasharray="3 2" />}
                <text
                  x={cellW / 2}
                  y={CELL_H / 2}
                  dominantBaseline="central"
                  textAnchor="middle"
                  fontSize={cellW >= 44 ? 11.5 : 10}
                  fontWeight={low ? 700 : 500}
                  fill={low ? INK.bad : t > 0.55 ? '#fff' : INK.text2}
                >
                  {fmtPct(share, digits)}
                </text>
              </g>
            );
          })}
        </g>
      ))}
      <ColourBar x={scaleX} y={HEAD_H} h={scaleH} vmax={vmax} n={n} floor={floor} />
      <g transform={`translate(${LABEL_W}, ${HEAD_H + scaleH + 14})`} fontSize={12} fill={INK.text2}>
        <rect x={0.75} y={0.75} width={20} height={14} rx={2} fill="#fff" stroke={INK.bad} strokeWidth={1.5} strokeDasharray="3 2" />
        <text x={28} y={7.5} dominantBaseline="central">
          {keyText}
        </text>
        <text x={keyWraps ? 0 : uniformX} y={keyWraps ? 7.5 + KEY_ROW : 7.5} dominantBaseline="central" fill={INK.muted}>
          {uniformText}
        </text>
      </g>
    </svg>
  );
}

/** The colour scale from 0 to vmax, with the 1/(4N) floor and the uniform share 1/N marked. */
function ColourBar({ x, y, h, vmax, n, floor }: { x: number; y: number; h: number; vmax: number; n: number; floor: number }) {
  const at = (v: number) => y + h - (v / vmax) * h;
  const band = h / SCALE_STEPS;
  const marks = [
    { v: floor, label: `1/(4N) ${fmtPct(floor)}`, color: INK.bad },
    { v: 1 / n, label: `1/N ${fmtPct(1 / n)}`, color: INK.text2 },
    { v: vmax, label: fmtPct(vmax, 0), color: INK.muted },
    { v: 0, label: '0%', color: INK.muted },
  ];
  return (
    <g>
      {Array.from({ length: SCALE_STEPS }, (_, i) => (
        <rect key={i} x={x} y={y + h - (i + 1) * band} width={SCALE_W} height={band + 0.5} fill={sequentialBlue((i + 0.5) / SCALE_STEPS)} />
      ))}
      <rect x={x} y={y} width={SCALE_W} height={h} fill="none" stroke={INK.border} />
      {marks.map((m, i) => (
        <g key={m.label}>
          <line x1={x - 3} x2={x + SCALE_W + 4} y1={at(m.v)} y2={at(m.v)} stroke={m.color} strokeWidth={m.color === INK.bad ? 1.6 : 1} />
          {/* a label that would overlap one listed before it (they are listed by importance) is left off */}
          {marks.slice(0, i).every((o) => Math.abs(at(o.v) - at(m.v)) >= 13) && (
            <text x={x + SCALE_W + 8} y={at(m.v)} dominantBaseline="central" fontSize={11} fill={m.color}>
              {m.label}
            </text>
          )}
        </g>
      ))}
    </g>
  );
}

function summary(rows: readonly Row[], rowKind: string, n: number, floor: number, below: { row: string; expert: number; share: number }[]): string {
  const lows = below.map((b) => `${b.row} expert ${b.expert} (${fmtPct(b.share)})`);
  return (
    `Expert load for ${rows.length} ${rowKind}s × ${n} experts; the floor 1/(4N) is ${fmtPct(floor)}. ` +
    (lows.length ? `${lows.length} below it: ${lows.join(', ')}.` : 'Every expert is above it.')
  );
}
