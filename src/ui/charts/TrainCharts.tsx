// Whole-model training (method 'train', src/train/trainer.ts) by step: the training loss with the
// held-out loss readings, the learning rate the schedule set, the global gradient norm before clipping,
// and tokens/s per reading of the losses. Each is a ChartFrame around a LinePlot, growing live.
import { useMemo } from 'react';
import type { EvalPoint, RatePoint, StepPoint } from '../../worker/pipeline-types.ts';
import { fmtSig } from './chart-data.ts';
import type { CsvTable } from './export.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { LinePlot, type LinePlotProps, type PlotSeries } from './LinePlot.tsx';
import { INK, seriesColor } from './palette.ts';

interface StepChartProps {
  id: string;
  title: string;
  caption: string;
  series: PlotSeries[];
  scale: LinePlotProps['scale'];
  yLabel: string;
  csv: CsvTable;
  summary: string;
}

function StepChart({ id, title, caption, series, scale, yLabel, csv, summary }: StepChartProps) {
  const points = series.reduce((n, s) => n + s.points.length, 0);
  return (
    <ChartFrame id={id} title={title} caption={caption} points={points} summary={summary} csv={csv} stage="Train">
      {(width) => <LinePlot series={series} width={width} scale={scale} xLabel="training step" yLabel={yLabel} height={240} />}
    </ChartFrame>
  );
}

/** "from 5.12 at step 1 to 3.9 at step 40" over a series' first and last points. */
function span(points: readonly { x: number; y: number }[]): string {
  if (!points.length) return 'no points yet';
  const [a, b] = [points[0], points[points.length - 1]];
  return `from ${fmtSig(a.y)} at step ${a.x} to ${fmtSig(b.y)} at step ${b.x}`;
}

export interface TrainLossChartProps {
  curve: readonly StepPoint[];
  evals: readonly EvalPoint[];
}

export function TrainLossChart({ curve, evals }: TrainLossChartProps) {
  const series = useMemo((): PlotSeries[] => [
    { key: 'train', label: 'training loss', color: seriesColor(0, 2), mark: 'line', points: curve.map((p) => ({ x: p.step, y: p.loss })) },
    { key: 'held-out', label: 'held-out loss', color: INK.bad, mark: 'dot', points: evals.map((e) => ({ x: e.step, y: e.loss })) },
  ], [curve, evals]);
  return (
    <StepChart
      id="train-loss"
      title="Training loss"
      caption="Mean next-token cross-entropy of each step's sequences, and of the held-out windows at each evaluation."
      series={series}
      scale="linear"
      yLabel="cross-entropy (nats)"
      csv={{
        header: ['series', 'step', 'loss', 'perplexity'],
        rows: [...curve.map((p) => ['training', p.step, p.loss, Math.exp(p.loss)]), ...evals.map((e) => ['held-out', e.step, e.loss, e.ppl])],
      }}
      summary={`Training loss ${span(series[0].points)}; held-out loss ${span(series[1].points)}.`}
    />
  );
}

export function LearningRateChart({ curve }: { curve: readonly StepPoint[] }) {
  const series = useMemo((): PlotSeries[] => [{ key: 'lr', label: 'learning rate', color: seriesColor(1, 3), mark: 'line', points: curve.map((p) => ({ x: p.step, y: p.lr })) }], [curve]);
  return (
    <StepChart
      id="train-lr"
      title="Learning-rate schedule"
      caption="The rate each AdamW step used: linear warm-up, then cosine decay to its floor, or constant."
      series={series}
      scale="zero"
      yLabel="learning rate"
      csv={{ header: ['step', 'lr'], rows: curve.map((p) => [p.step, p.lr]) }}
      summary={`Learning rate ${span(series[0].points)}.`}
    />
  );
}

export function GradNormChart({ curve }: { curve: readonly StepPoint[] }) {
  const series = useMemo((): PlotSeries[] => [{ key: 'grad', label: 'gradient norm', color: seriesColor(2, 3), mark: 'line', points: curve.map((p) => ({ x: p.step, y: p.gradNorm })) }], [curve]);
  return (
    <StepChart
      id="train-grad-norm"
      title="Gradient norm"
      caption="Global L2 norm of the step's gradient before clipping (larger ones are scaled down to the clip)."
      series={series}
      scale="zero"
      yLabel="‖g‖₂"
      csv={{ header: ['step', 'grad_norm'], rows: curve.map((p) => [p.step, p.gradNorm]) }}
      summary={`Gradient norm ${span(series[0].points)}.`}
    />
  );
}

export function ThroughputChart({ rates }: { rates: readonly RatePoint[] }) {
  const series = useMemo((): PlotSeries[] => [{ key: 'rate', label: 'tokens/s', color: INK.good, mark: 'line', points: rates.map((r) => ({ x: r.step, y: r.tokensPerS })) }], [rates]);
  return (
    <StepChart
      id="train-throughput"
      title="Tokens per second"
      caption="Training tokens per second over each run of steps between readings of the losses (evaluation excluded)."
      series={series}
      scale="zero"
      yLabel="tokens/s"
      csv={{ header: ['step', 'tokens_per_s'], rows: rates.map((r) => [r.step, r.tokensPerS]) }}
      summary={`Tokens per second ${span(series[0].points)}.`}
    />
  );
}

export interface StageCurve {
  /** 'stage 1 (brown-*)' */
  label: string;
  curve: readonly StepPoint[];
  evals: readonly EvalPoint[];
}

/**
 * Training loss of consecutive stages (LLaMA-MoE v2's post-training) on one step axis: each stage's steps
 * continue the one before, its held-out readings as dots of the same colour (each stage holds out its own
 * text). `overlaid`: runs side by side from step 0 instead (the variants Mixture-of-Depths compares).
 */
export function StageLossChart({ stages, overlaid = false }: { stages: readonly StageCurve[]; overlaid?: boolean }) {
  const series = useMemo((): PlotSeries[] => {
    let offset = 0;
    return stages.flatMap((s, i) => {
      const at = offset;
      if (!overlaid) offset += s.curve.at(-1)?.step ?? 0;
      const color = seriesColor(i, stages.length);
      return [
        { key: `train-${i}`, label: `${s.label}: training loss`, color, mark: 'line' as const, points: s.curve.map((p) => ({ x: at + p.step, y: p.loss })) },
        { key: `held-${i}`, label: `${s.label}: held-out`, color, mark: 'dot' as const, points: s.evals.map((e) => ({ x: at + e.step, y: e.loss })) },
      ];
    });
  }, [stages, overlaid]);
  return (
    <StepChart
      id={overlaid ? 'variant-loss' : 'stage-loss'}
      title={overlaid ? 'Training loss by variant' : 'Training loss by stage'}
      caption={
        overlaid
          ? "Mean next-token cross-entropy of each step's sequences for each variant, trained on the same windows, with its held-out readings."
          : "Mean next-token cross-entropy of each step's sequences, stage after stage, with each stage's held-out readings on its own text."
      }
      series={series}
      scale="linear"
      yLabel="cross-entropy (nats)"
      csv={{
        header: [overlaid ? 'variant' : 'stage', 'series', 'step', 'loss'],
        rows: stages.flatMap((s) => [...s.curve.map((p) => [s.label, 'training', p.step, p.loss]), ...s.evals.map((e) => [s.label, 'held-out', e.step, e.loss])]),
      }}
      summary={stages.map((s, i) => `${s.label}: training loss ${span(series[2 * i].points)}`).join('; ')}
    />
  );
}
