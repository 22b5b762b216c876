// Per-layer distillation loss (LaDiMo §4.3, Fig. 3): each MoE block's loss against its dense FFN per
// training step, one line per layer on a log scale, growing live as the worker streams points.
import { useMemo } from 'react';
import { CartesianGrid, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { LossPoint } from '../../worker/pipeline-types.ts';
import { AXIS, GRID, xTitle, yTitle } from './axes.ts';
import { fmtSig, logAxis, thin } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { ChartTip } from './ChartTip.tsx';
import { legendHeight, SvgLegend, type LegendEntry } from './legend.tsx';
import { seriesColor } from './palette.ts';

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
      {(width) => {
        const top = legendHeight(legend, width) + 14;
        return (
          <LineChart width={width} height={HEIGHT + top} data={chart.rows} margin={{ top, right: 18, bottom: 26, left: 8 }} accessibilityLayer={false}>
            <SvgLegend entries={legend} x={0} y={0} width={width} />
            <CartesianGrid {...GRID} />
            <XAxis dataKey="step" type="number" domain={[0, 'dataMax']} {...AXIS} label={xTitle('training step')} />
            {chart.axis && (
              <YAxis
                type="number"
                scale="log"
                domain={chart.axis.domain}
                ticks={chart.axis.ticks}
                allowDataOverflow
                tickFormatter={(v: number) => fmtSig(v)}
                width={62}
                {...AXIS}
                label={yTitle(`${METRIC_NAME[metric]} (log)`)}
              />
            )}
            <Tooltip
              isAnimationActive={false}
              content={({ active, payload, label }) =>
                active && payload?.length ? (
                  <ChartTip
                    title={`step ${label}`}
                    rows={payload.map((p) => ({ label: String(p.name), value: fmtSig(Number(p.value)), color: String(p.stroke) }))}
                  />
                ) : null
              }
            />
            {series.map((s) => (
              <Line
                key={s.layer}
                dataKey={`L${s.layer}`}
                name={`layer ${s.layer}`}
                stroke={colors.get(s.layer)}
                strokeWidth={1.8}
                dot={false}
                activeDot={{ r: 3.5 }}
                connectNulls
                isAnimationActive={false}
              />
            ))}
          </LineChart>
        );
      }}
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
