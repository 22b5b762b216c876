// Single-layer sensitivity (LaDiMo §5.2, Fig. 5): each layer converted alone, its perplexity relative to
// the dense model. Bars grow from the dense line (1×), so their length is the damage one layer does; the
// paper finds it shrinks towards the last layers, which is why LaDiMo converts the last m.
import { Bar, BarChart, CartesianGrid, Cell, LabelList, ReferenceLine, Tooltip, XAxis, YAxis } from 'recharts';
import type { SweepResult } from '../../worker/pipeline-types.ts';
import { AXIS, GRID, xTitle, yTitle } from './axes.ts';
import { fmtChange, fmtPct, fmtSig, linearAxis } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { ChartTip } from './ChartTip.tsx';
import { legendHeight, SvgLegend, type LegendEntry } from './legend.tsx';
import { INK } from './palette.ts';

export interface SensitivityBarsProps {
  sweep: SweepResult | null;
}

const HEIGHT = 300;
const WORSE = INK.accent;
const BETTER = INK.good;

interface Row {
  layer: number;
  ppl: number;
  agreement: number;
  ratio: number;
  /** the bar spans dense (1) to this layer's ratio */
  span: [number, number];
}

export function SensitivityBars({ sweep }: SensitivityBarsProps) {
  const pplDense = sweep?.ppl_dense ?? NaN;
  const rows: Row[] = (sweep?.sensitivity ?? [])
    .map((b) => {
      const ratio = b.ppl / pplDense;
      return { ...b, ratio, span: [1, ratio] as [number, number] };
    })
    .sort((a, b) => a.layer - b.layer);
  const legend: LegendEntry[] = [
    { label: 'perplexity with the layer converted alone', text: 'perplexity with the layer converted alone', color: WORSE, mark: 'box' },
    { label: 'dense model', text: 'dense model', color: INK.text2, mark: 'dash' },
  ];
  const ratios = rows.map((r) => r.ratio);
  const lo = Math.min(1, ...ratios);
  const hi = Math.max(1, ...ratios);
  // headroom on both sides: a bar's label sits past its end, above or below
  const pad = Math.max(0.005, (hi - lo) * 0.1);
  const y = linearAxis(lo < 1 ? lo - pad : lo, hi + pad, 5);

  return (
    <ChartFrame
      id="sensitivity"
      title="Single-layer sensitivity"
      caption="Perplexity with one layer converted alone, relative to the dense model (§5.2, Fig. 5)."
      points={rows.length}
      summary={summary(rows, pplDense)}
      csv={{
        header: ['layer', 'ppl', 'ppl_over_dense', 'agreement'],
        rows: rows.map((r) => [r.layer, r.ppl, r.ratio, r.agreement]),
      }}
      stage="Evaluate"
    >
      {(width) => {
        const top = legendHeight(legend, width) + 22;
        return (
          <BarChart width={width} height={HEIGHT + top} data={rows} margin={{ top, right: 44, bottom: 26, left: 8 }} accessibilityLayer={false} barCategoryGap="28%">
            <SvgLegend entries={legend} x={0} y={0} width={width} />
            <CartesianGrid {...GRID} />
            <XAxis dataKey="layer" {...AXIS} label={xTitle('layer converted alone')} />
            <YAxis
              type="number"
              domain={y.domain}
              ticks={y.ticks}
              tickFormatter={(v: number) => `${v.toFixed(y.decimals)}×`}
              width={64}
              {...AXIS}
              label={yTitle('perplexity / dense')}
            />
            <Tooltip
              isAnimationActive={false}
              cursor={{ fill: '#f1f4fa' }}
              content={({ active, payload }) => {
                const r = payload?.[0]?.payload as Row | undefined;
                if (!active || !r) return null;
                return (
                  <ChartTip
                    title={`Layer ${r.layer} converted alone`}
                    rows={[
                      { label: 'perplexity', value: `${fmtSig(r.ppl, 4)} (${fmtChange(r.ratio)})` },
                      { label: 'dense perplexity', value: fmtSig(pplDense, 4) },
                      { label: 'agreement', value: fmtPct(r.agreement) },
                    ]}
                  />
                );
              }}
            />
            <Bar dataKey="span" radius={[3, 3, 0, 0]} isAnimationActive={false}>
              {rows.map((r) => (
                <Cell key={r.layer} fill={r.ratio < 1 ? BETTER : WORSE} />
              ))}
              <LabelList dataKey="ratio" position="top" offset={6} fill={INK.text2} fontSize={11} fontWeight={600} formatter={(v) => fmtChange(Number(v))} />
            </Bar>
            <ReferenceLine y={1} stroke={INK.text2} strokeDasharray="6 4" strokeWidth={1.4} label={{ value: 'dense', position: 'right', fill: INK.text2, fontSize: 11.5, fontWeight: 600 }} />
          </BarChart>
        );
      }}
    </ChartFrame>
  );
}

function summary(rows: readonly Row[], pplDense: number): string {
  const per = rows.map((r) => `layer ${r.layer} ${fmtChange(r.ratio)}`);
  const worst = rows.reduce<Row | null>((w, r) => (!w || r.ratio > w.ratio ? r : w), null);
  return (
    `Perplexity with one layer converted alone, relative to the dense model's ${fmtSig(pplDense, 4)}: ${per.join(', ')}.` +
    (worst ? ` Layer ${worst.layer} is the most sensitive.` : '')
  );
}
