// The figure of the step charts (distillation loss, training loss, learning rate, gradient norm, tokens/s):
// axes, grid, an SVG legend, each series as a polyline or as dots, and a hover column that shows every
// series' value at the step nearest the pointer. Plain SVG rather than recharts: these charts redraw
// while a run streams points, and a recharts redraw of a few hundred points held the main thread for
// 100 ms and more.
import { useMemo, useState } from 'react';
import { fmtSig, linearAxis, logAxis, thin } from './chart-data.ts';
import { CHAR_W, legendHeight, SvgLegend, type LegendEntry } from './legend.tsx';
import { INK } from './palette.ts';

export interface PlotPoint {
  x: number;
  y: number;
}

export interface PlotSeries {
  /** unique among the plot's series */
  key: string;
  label: string;
  color: string;
  /** 'line': a polyline through the points; 'dot': a circle at each (sparse readings, such as held-out losses) */
  mark: 'line' | 'dot';
  points: readonly PlotPoint[];
}

export interface LinePlotProps {
  series: readonly PlotSeries[];
  width: number;
  /** 'log' plots the positive values only (a log axis has no place for 0); 'zero' is linear from 0 */
  scale: 'log' | 'linear' | 'zero';
  xLabel: string;
  yLabel: string;
  height?: number;
}

/** Points drawn per series at most: a long run stays cheap to redraw on every streamed point. */
const MAX_POINTS = 200;
const MARGIN = { left: 70, right: 18, bottom: 44 };

export function LinePlot({ series, width, scale, xLabel, yLabel, height: plotHeight = 320 }: LinePlotProps) {
  const drawn = useMemo(
    () =>
      series.map((s) => ({
        ...s,
        points: thin(s.points.filter((p) => Number.isFinite(p.y) && (scale !== 'log' || p.y > 0)), MAX_POINTS),
      })),
    [series, scale],
  );
  const ys = drawn.flatMap((s) => s.points.map((p) => p.y));
  const xs = drawn.flatMap((s) => s.points.map((p) => p.x));
  const linear = ys.length && scale !== 'log' ? linearAxis(scale === 'zero' ? Math.min(0, ...ys) : Math.min(...ys), Math.max(...ys), 5) : null;
  const yAxis = ys.length && scale === 'log' ? logAxis(Math.min(...ys), Math.max(...ys)) : linear;
  const yTick = (t: number) => (linear && Math.abs(t) < 1e6 ? t.toFixed(linear.decimals) : fmtSig(t));
  const legend: LegendEntry[] = drawn.map((s) => ({ label: s.label, text: s.label, color: s.color, mark: s.mark }));
  const top = legendHeight(legend, width) + 14;
  const height = plotHeight + top;
  const x0 = MARGIN.left;
  const x1 = width - MARGIN.right;
  const y0 = top;
  const y1 = height - MARGIN.bottom;
  const xAxis = linearAxis(0, Math.max(1, ...xs), 6);
  const sx = (x: number) => x0 + ((x - xAxis.domain[0]) / (xAxis.domain[1] - xAxis.domain[0])) * (x1 - x0);
  const [lo, hi] = yAxis?.domain ?? [1, 10];
  const sy =
    scale === 'log'
      ? (v: number) => y1 - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (y1 - y0)
      : (v: number) => y1 - ((v - lo) / (hi - lo || 1)) * (y1 - y0);
  return (
    <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} fontFamily="inherit">
      <SvgLegend entries={legend} x={0} y={0} width={width} />
      {yAxis?.ticks.map((t) => (
        <g key={t}>
          <line x1={x0} x2={x1} y1={sy(t)} y2={sy(t)} stroke={INK.grid} />
          <text x={x0 - 8} y={sy(t)} dy="0.32em" textAnchor="end" fontSize={11.5} fill={INK.muted}>
            {yTick(t)}
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
        {xLabel}
      </text>
      <text transform={`translate(14 ${(y0 + y1) / 2}) rotate(-90)`} textAnchor="middle" fontSize={12} fontWeight={500} fill={INK.text2}>
        {yLabel}
      </text>
      {yAxis &&
        drawn.map((s) =>
          s.mark === 'line' ? (
            <polyline
              key={s.key}
              points={s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}
              fill="none"
              stroke={s.color}
              strokeWidth={1.8}
              strokeLinejoin="round"
            />
          ) : (
            <g key={s.key}>
              {s.points.map((p) => (
                <circle key={p.x} cx={sx(p.x)} cy={sy(p.y)} r={4} fill={s.color} stroke="#fff" strokeWidth={1.5} />
              ))}
            </g>
          ),
        )}
      {yAxis && xs.length > 0 && <Hover series={drawn} sx={sx} x0={x0} x1={x1} y0={y0} y1={y1} />}
    </svg>
  );
}

/** One transparent rect over the plot; the step nearest the pointer gets a guide line and each series' value there. */
function Hover({ series, sx, x0, x1, y0, y1 }: { series: readonly PlotSeries[]; sx: (x: number) => number; x0: number; x1: number; y0: number; y1: number }) {
  const steps = useMemo(() => [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b), [series]);
  const [at, setAt] = useState<number | null>(null);
  const step = at === null ? null : steps[Math.min(at, steps.length - 1)];
  const lines = step === null ? [] : series.flatMap((s) => s.points.filter((p) => p.x === step).map((p) => ({ s, text: `${s.label}: ${fmtSig(p.y)}` })));
  const boxW = Math.max(96, ...lines.map((l) => l.text.length * CHAR_W)) + 20;
  const boxX = step === null ? 0 : sx(step) > (x0 + x1) / 2 ? sx(step) - boxW - 8 : sx(step) + 8;
  return (
    <g>
      {step !== null && (
        <g pointerEvents="none">
          <line x1={sx(step)} x2={sx(step)} y1={y0} y2={y1} stroke={INK.faint} strokeDasharray="3 3" />
          <rect x={boxX} y={y0 + 4} width={boxW} height={20 + 16 * lines.length} rx={6} fill="#fff" stroke={INK.borderStrong} />
          <text x={boxX + 10} y={y0 + 19} fontSize={11.5} fontWeight={600} fill={INK.text2}>
            step {step}
          </text>
          {lines.map(({ s, text }, i) => (
            <text key={s.key} x={boxX + 10} y={y0 + 35 + 16 * i} fontSize={11.5} fill={s.color}>
              {text}
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
          for (let i = 1; i < steps.length; i++) if (Math.abs(sx(steps[i]) - x) < Math.abs(sx(steps[best]) - x)) best = i;
          setAt(best);
        }}
      />
    </g>
  );
}
