// Per-layer distillation loss (LaDiMo §4.3, Fig. 3): each MoE block's loss against its dense FFN per
// training step, one line per layer on a log scale, growing live as the worker streams points.
// Drawn as plain SVG rather than with recharts: it redraws while the distillation runs, and a recharts
// redraw of a few hundred points held the page's main thread for 100 ms and more.
import { useMemo, useState } from 'react';
import type { LossPoint } from '../../worker/pipeline-types.ts';
import { fmtSig, linearAxis, logAxis, thin } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { legendHeight, SvgLegend, type LegendEntry } from './legend.tsx';
import { INK, seriesColor } from './palette.ts';

export interface LossCurve {
  layer: number;
  points: readonly LossPoint[];
}

export interface LossChartProps {
  curves: ReadonlyMap<number, readonly LossPoint[]> | readonly LossCurve[];
  /** 'mse': L_mse alone (the paper's Fig. 3); 'total': L = L_mse + α·‖L_mse‖·L_aux */
  metric?: 'mse' | 'total';
}

const HEIGHT = 320;
/** Rows drawn at most: a long run stays smooth to redraw on every streamed point. */
const MAX_ROWS = 200;
const METRIC_NAME = { mse: 'MSE loss', total: 'total loss' } as const;

export function LossChart({ curves, metric = 'mse' }: LossChartProps) {
  const series = useMemo(() => normalise(curves), [curves]);
  const chart = useMemo(() => chartRows(series, metric), [series, metric]);
  const points = series.reduce((n, s) => n + s.points.length, 0);
  const colors = new Map(series.map((s, i) => [s.layer, seriesColor(i, series.length)]));
  const legend: LegendEntry[] = series.map((s) => ({ label: `layer ${s.layer}`, text: `layer ${s.layer}`, color: colors.get(s.layer)!, mark: 'line' }));

  return (
    <ChartFrame
      id="loss"
      file="loss-curves"
      title="Distillation loss per layer"
      caption={`Each MoE block's ${METRIC_NAME[metric]} against its dense FFN by training step (§4.3, Fig. 3), log scale.`}
      points={points}
      summary={summary(series, metric)}
      csv={{
        header: ['layer', 'step', 'mse', 'aux', 'total'],
        rows: series.flatMap((s) => s.points.map((p) => [s.layer, p.step, p.mse, p.aux, p.total])),
      }}
      stage="Distill"
    >
      {(width) => <Plot series={series} rows={chart.rows} axis={chart.axis} legend={legend} colors={colors} metric={metric} width={width} />}
    </ChartFrame>
  );
}

function normalise(curves: LossChartProps['curves']): LossCurve[] {
  const list = 'get' in curves ? [...curves].map(([layer, points]) => ({ layer, points })) : [...curves];
  return list.sort((a, b) => a.layer - b.layer);
}

/** One row per step holding every layer's value (key L<layer>), thinned; the log axis over the positive values. */
function chartRows(series: readonly LossCurve[], metric: 'mse' | 'total') {
  const byStep = new Map<number, Record<string, number>>();
  let min = Infinity;
  let max = -Infinity;
  for (const s of series) {
    for (const p of s.points) {
      const v = p[metric];
      // a log axis has no place for 0 (an exactly recovered block) or a non-finite value
      if (!(v > 0 && Number.isFinite(v))) continue;
      let row = byStep.get(p.step);
      if (!row) byStep.set(p.step, (row = { step: p.step }));
      row[`L${s.layer}`] = v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  const rows = thin([...byStep.values()].sort((a, b) => a.step - b.step), MAX_ROWS);
  return { rows, axis: min <= max ? logAxis(min, max) : null };
}

function summary(series: readonly LossCurve[], metric: 'mse' | 'total'): string {
  const parts = series
    .filter((s) => s.points.length > 0)
    .map((s) => {
      const first = s.points[0];
      const last = s.points[s.points.length - 1];
      return `layer ${s.layer} from ${fmtSig(first[metric])} to ${fmtSig(last[metric])} over ${last.step} steps`;
    });
  return `Distillation ${METRIC_NAME[metric]} per layer, log scale: ${parts.join('; ')}.`;
}

const MARGIN = { left: 70, right: 18, bottom: 44 };

/** Axes, grid and one polyline per layer; a step's values appear in the title of its hover column. */
function Plot({ series, rows, axis, legend, colors, metric, width }: {
  series: readonly LossCurve[];
  rows: Record<string, number>[];
  axis: { domain: [number, number]; ticks: number[] } | null;
  legend: LegendEntry[];
  colors: Map<number, string>;
  metric: 'mse' | 'total';
  width: number;
}) {
  const top = legendHeight(legend, width) + 14;
  const height = HEIGHT + top;
  const x0 = MARGIN.left;
  const x1 = width - MARGIN.right;
  const y0 = top;
  const y1 = height - MARGIN.bottom;
  const lastStep = rows.length ? rows[rows.length - 1].step : 0;
  const xAxis = linearAxis(0, Math.max(1, lastStep), 6);
  const sx = (step: number) => x0 + ((step - xAxis.domain[0]) / (xAxis.domain[1] - xAxis.domain[0])) * (x1 - x0);
  const [lo, hi] = axis?.domain ?? [1, 10];
  const sy = (v: number) => y1 - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (y1 - y0);
  return (
    <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} fontFamily="inherit">
      <SvgLegend entries={legend} x={0} y={0} width={width} />
      {axis?.ticks.map((t) => (
        <g key={t}>
          <line x1={x0} x2={x1} y1={sy(t)} y2={sy(t)} stroke={INK.grid} />
          <text x={x0 - 8} y={sy(t)} dy="0.32em" textAnchor="end" fontSize={11.5} fill={INK.muted}>
            {fmtSig(t)}
          </text>
        </g>
      ))}
      <line x1={x0} x2={x1} y1={y1} y2={y1} stroke={INK.borderStrong} />
      {xAxis.ticks.map((t) => (
        <g key={t}>
          <line x1={sx(t)} x2={sx(t)} y1={y1} y2={y1 + 4} stroke={INK.borderStrong} />
          <text x={sx(t)} y={y1 + 17} textAnchor="middle" fontSize={11.5} fill={INK.muted}>
            {t.toFixed(xAxis.decimals)}
          </text>
        </g>
      ))}
      <text x={(x0 + x1) / 2} y={height - 6} textAnchor="middle" fontSize={12} fontWeight={500} fill={INK.text2}>
        training step
      </text>
      <text transform={`translate(14 ${(y0 + y1) / 2}) rotate(-90)`} textAnchor="middle" fontSize={12} fontWeight={500} fill={INK.text2}>
        {METRIC_NAME[metric]} (log)
      </text>
      {axis &&
        series.map((s) => {
          const key = `L${s.layer}`;
          const pts = rows.filter((r) => r[key] !== undefined).map((r) => `${sx(r.step).toFixed(1)},${sy(r[key]).toFixed(1)}`);
          return <polyline key={s.layer} points={pts.join(' ')} fill="none" stroke={colors.get(s.layer)} strokeWidth={1.8} strokeLinejoin="round" />;
        })}
      {axis && rows.length > 0 && <Hover rows={rows} series={series} sx={sx} x0={x0} x1={x1} y0={y0} y1={y1} colors={colors} />}
    </svg>
  );
}

/** One transparent rect over the plot; the step nearest the pointer gets a guide line and its values. */
function Hover({ rows, series, sx, x0, x1, y0, y1, colors }: {
  rows: Record<string, number>[];
  series: readonly LossCurve[];
  sx: (step: number) => number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  colors: Map<number, string>;
}) {
  const [at, setAt] = useState<number | null>(null);
  const row = at === null ? null : rows[Math.min(at, rows.length - 1)];
  const lines = row ? series.filter((s) => row[`L${s.layer}`] !== undefined) : [];
  const boxX = row && sx(row.step) > (x0 + x1) / 2 ? sx(row.step) - 136 : row ? sx(row.step) + 8 : 0;
  return (
    <g>
      {row && (
        <g pointerEvents="none">
          <line x1={sx(row.step)} x2={sx(row.step)} y1={y0} y2={y1} stroke={INK.faint} strokeDasharray="3 3" />
          <rect x={boxX} y={y0 + 4} width={128} height={20 + 16 * lines.length} rx={6} fill="#fff" stroke={INK.borderStrong} />
          <text x={boxX + 10} y={y0 + 19} fontSize={11.5} fontWeight={600} fill={INK.text2}>
            step {row.step}
          </text>
          {lines.map((s, i) => (
            <text key={s.layer} x={boxX + 10} y={y0 + 35 + 16 * i} fontSize={11.5} fill={colors.get(s.layer)}>
              layer {s.layer}: {fmtSig(row[`L${s.layer}`])}
            </text>
          ))}
        </g>
      )}
      <rect
        x={x0}
        y={y0}
        width={Math.max(0, x1 - x0)}
        height={Math.max(0, y1 - y0)}
        fill="transparent"
        onMouseLeave={() => setAt(null)}
        onMouseMove={(e) => {
          const box = e.currentTarget.getBoundingClientRect();
          const x = x0 + ((e.clientX - box.left) / box.width) * (x1 - x0);
          let best = 0;
          for (let i = 1; i < rows.length; i++) if (Math.abs(sx(rows[i].step) - x) < Math.abs(sx(rows[best].step) - x)) best = i;
          setAt(best);
        }}
      />
    </g>
  );
}
