// The accuracy–throughput trade-off (LaDiMo §5.3, Fig. 6): one point per m, the model with its last m
// layers converted, relative to the dense model (m = 0, marked), with dashed guides at 95% of dense
// accuracy and 110% of dense throughput. Points up and to the right of both guides beat the paper's bar.
import { CartesianGrid, LabelList, ReferenceArea, ReferenceLine, Scatter, ScatterChart, Tooltip, XAxis, YAxis } from 'recharts';
import type { CurvePoint, SweepResult } from '../../worker/pipeline-types.ts';
import { fmtCount } from '../format.ts';
import { AXIS, xTitle, yTitle } from './axes.ts';
import { fmtPct, fmtSig, linearAxis } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { ChartTip } from './ChartTip.tsx';
import { legendHeight, SvgLegend, type LegendEntry } from './legend.tsx';
import { INK } from './palette.ts';

export interface AccuracyThroughputCurveProps {
  sweep: SweepResult | null;
  /** 'ppl': ppl_dense / ppl; 'agreement': share of positions whose argmax matches dense */
  metric: 'ppl' | 'agreement';
}

/** Fig. 6's guides: 95% of the dense model's accuracy, 110% of its throughput. */
const ACC_GUIDE = 0.95;
const SPEED_GUIDE = 1.1;
const HEIGHT = 340;
const DENSE_COLOR = '#f2b705';
const GUIDE_COLOR = '#1d6fd6';
const Y_NAME = { ppl: 'ppl_dense / ppl', agreement: 'agreement with dense' } as const;

interface Pt extends CurvePoint {
  x: number;
  y: number;
}

export function AccuracyThroughputCurve({ sweep, metric }: AccuracyThroughputCurveProps) {
  const pplDense = sweep?.ppl_dense ?? NaN;
  const pts: Pt[] = (sweep?.curve ?? [])
    .map((c) => ({ ...c, x: c.relThroughput, y: metric === 'ppl' ? pplDense / c.ppl : c.agreement }))
    .sort((a, b) => a.m - b.m);
  const dense = pts.filter((p) => p.m === 0);
  const legend: LegendEntry[] = [
    { label: 'last m layers converted (label: m)', text: 'last m layers converted (label: m)', color: INK.accent, mark: 'line' },
    { label: 'dense model', text: 'dense model', color: DENSE_COLOR, mark: 'dot' },
    { label: '95% accuracy, 110% throughput', text: '95% accuracy, 110% throughput', color: GUIDE_COLOR, mark: 'dash' },
  ];
  const x = paddedAxis([...pts.map((p) => p.x), 1, SPEED_GUIDE]);
  const y = paddedAxis([...pts.map((p) => p.y), 1, ACC_GUIDE]);

  return (
    <ChartFrame
      id="accuracy-throughput"
      title="Accuracy–throughput curve"
      caption="One point per m, the last m layers converted, relative to the dense model (§5.3, Fig. 6)."
      points={pts.length}
      summary={summary(pts, metric)}
      csv={{
        header: ['m', 'layers', 'ppl', 'ppl_dense_over_ppl', 'agreement', 'rel_throughput', 'activated_non_embedding'],
        rows: pts.map((p) => [p.m, p.layers.join(' '), p.ppl, pplDense / p.ppl, p.agreement, p.relThroughput, p.activatedNonEmbedding]),
      }}
      stage="Evaluate"
    >
      {(width) => {
        const top = legendHeight(legend, width) + 18;
        return (
          <ScatterChart width={width} height={HEIGHT + top} margin={{ top, right: 24, bottom: 26, left: 8 }} accessibilityLayer={false}>
            <SvgLegend entries={legend} x={0} y={0} width={width} />
            <CartesianGrid stroke={INK.grid} />
            <ReferenceArea
              x1={SPEED_GUIDE}
              x2={x.domain[1]}
              y1={ACC_GUIDE}
              y2={y.domain[1]}
              fill="#e6f5ec"
              fillOpacity={0.7}
              stroke="none"
              label={{ value: 'faster and ≥ 95% as accurate', position: 'insideTopRight', fill: INK.good, fontSize: 11.5, fontWeight: 600 }}
            />
            <XAxis dataKey="x" type="number" domain={x.domain} ticks={x.ticks} tickFormatter={(v: number) => fmtPct(v, Math.max(0, x.decimals - 2))} {...AXIS} label={xTitle('prefill throughput, relative to dense')} />
            <YAxis dataKey="y" type="number" domain={y.domain} ticks={y.ticks} tickFormatter={(v: number) => fmtPct(v, Math.max(0, y.decimals - 2))} width={64} {...AXIS} label={yTitle(Y_NAME[metric])} />
            <ReferenceLine y={ACC_GUIDE} stroke={GUIDE_COLOR} strokeDasharray="6 4" strokeWidth={1.4} />
            <ReferenceLine x={SPEED_GUIDE} stroke={GUIDE_COLOR} strokeDasharray="6 4" strokeWidth={1.4} />
            <Scatter data={pts} name="converted" fill={INK.accent} line={{ stroke: INK.accent, strokeWidth: 1.6 }} isAnimationActive={false}>
              {/* m = 0 is labelled "dense" by its own marker */}
              <LabelList dataKey="m" position="top" offset={8} fill={INK.text2} fontSize={11.5} fontWeight={600} formatter={(m) => (m === 0 ? '' : String(m))} />
            </Scatter>
            <Scatter data={dense} name="dense" fill={DENSE_COLOR} stroke={INK.text} strokeWidth={1.2} shape="circle" isAnimationActive={false}>
              <LabelList dataKey="m" position="bottom" offset={10} fill={INK.text} fontSize={11.5} fontWeight={650} formatter={() => 'dense'} />
            </Scatter>
            <Tooltip
              isAnimationActive={false}
              cursor={{ stroke: INK.borderStrong, strokeDasharray: '3 3' }}
              content={({ active, payload }) => {
                const p = payload?.[0]?.payload as Pt | undefined;
                if (!active || !p) return null;
                return (
                  <ChartTip
                    title={p.m === 0 ? 'dense model' : `m = ${p.m}: layers ${p.layers.join(', ')}`}
                    rows={[
                      { label: 'throughput', value: fmtPct(p.relThroughput) },
                      { label: Y_NAME[metric], value: fmtPct(p.y) },
                      { label: 'perplexity', value: fmtSig(p.ppl, 4) },
                      { label: 'agreement', value: fmtPct(p.agreement) },
                      { label: 'activated params', value: fmtCount(p.activatedNonEmbedding) },
                    ]}
                  />
                );
              }}
            />
          </ScatterChart>
        );
      }}
    </ChartFrame>
  );
}

/** A round-stepped axis over the values widened by 6% of their range, so points and guides clear the edges. */
function paddedAxis(values: readonly number[]) {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = Math.max(0.005, (hi - lo) * 0.06);
  return linearAxis(lo - pad, hi + pad);
}

function summary(pts: readonly Pt[], metric: 'ppl' | 'agreement'): string {
  const per = pts.filter((p) => p.m > 0).map((p) => `m = ${p.m}: throughput ${fmtPct(p.x)}, ${Y_NAME[metric]} ${fmtPct(p.y)}`);
  const meets = pts.filter((p) => p.m > 0 && p.x >= SPEED_GUIDE && p.y >= ACC_GUIDE).map((p) => p.m);
  return (
    `Accuracy against prefill throughput relative to the dense model for ${per.length} values of m: ${per.join('; ')}. ` +
    (meets.length ? `m = ${meets.join(', ')} reach 110% throughput at 95% accuracy.` : 'No m reaches 110% throughput at 95% accuracy.')
  );
}
