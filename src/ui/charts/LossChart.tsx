// Per-layer distillation loss (LaDiMo §4.3, Fig. 3): each MoE block's loss against its dense FFN per
// training step, one line per layer on a log scale, growing live as the worker streams points (the figure
// is LinePlot's, hand-drawn SVG that stays cheap to redraw).
import { useMemo } from 'react';
import type { LossPoint } from '../../worker/pipeline-types.ts';
import { fmtSig } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { LinePlot, type PlotSeries } from './LinePlot.tsx';
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

const METRIC_NAME = { mse: 'MSE loss', total: 'total loss' } as const;

export function LossChart({ curves, metric = 'mse' }: LossChartProps) {
  const series = useMemo(() => normalise(curves), [curves]);
  const plotted = useMemo(
    (): PlotSeries[] =>
      series.map((s, i) => ({
        key: `L${s.layer}`,
        label: `layer ${s.layer}`,
        color: seriesColor(i, series.length),
        mark: 'line',
        points: s.points.map((p) => ({ x: p.step, y: p[metric] })),
      })),
    [series, metric],
  );
  const points = series.reduce((n, s) => n + s.points.length, 0);

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
      {(width) => <LinePlot series={plotted} width={width} scale="log" xLabel="training step" yLabel={`${METRIC_NAME[metric]} (log)`} />}
    </ChartFrame>
  );
}

function normalise(curves: LossChartProps['curves']): LossCurve[] {
  const list = 'get' in curves ? [...curves].map(([layer, points]) => ({ layer, points })) : [...curves];
  return list.sort((a, b) => a.layer - b.layer);
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
