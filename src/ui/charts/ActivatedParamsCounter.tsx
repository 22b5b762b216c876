// Activated parameters per token (LaDiMo §5.2: "6.7B parameters … the activated parameter size counts to
// 5.5B"): non-embedding parameters a token passes through, MoE under its layer policies against dense,
// and each converted FFN's share of the saving as a bar pair.
import { fmtCount, fmtInt } from '../format.ts';
import type { ActivatedParams } from '../../worker/pipeline-types.ts';
import { fmtPct } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { INK } from './palette.ts';

export interface ActivatedParamsCounterProps {
  params: ActivatedParams | null;
}

const STATS_H = 74;
const ROW_H = 26;
const LABEL_W = 84;
const VALUE_W = 170;
const BAR_H = 10;
const TRACK = '#e3e8f2';
/** Narrower stat columns drop their note line rather than overlap the next column. */
const MIN_NOTE_COL = 170;

export function ActivatedParamsCounter({ params }: ActivatedParamsCounterProps) {
  const p = params;
  return (
    <ChartFrame
      id="activated-params"
      title="Activated parameters per token"
      caption="Non-embedding parameters each token passes through: the MoE under its layer policies against dense (§5.2)."
      points={p ? p.perLayer.length + 1 : 0}
      summary={p ? summary(p) : ''}
      csv={{
        header: ['part', 'layer', 'dense', 'moe'],
        rows: p
          ? [
              ['total', null, p.dense.total, p.moe.total],
              ['non_embedding', null, p.dense.nonEmbedding, p.moe.nonEmbedding],
              ...p.perLayer.map((l) => ['ffn', l.layer, l.dense, l.moe]),
            ]
          : [],
      }}
      stage="Route"
    >
      {(width) => p && <Counter params={p} width={width} />}
    </ChartFrame>
  );
}

function Counter({ params: p, width }: { params: ActivatedParams; width: number }) {
  const saved = 1 - p.moe.nonEmbedding / p.dense.nonEmbedding;
  const rows = [
    { label: 'All layers', dense: p.dense.nonEmbedding, moe: p.moe.nonEmbedding, strong: true },
    ...[...p.perLayer].sort((a, b) => a.layer - b.layer).map((l) => ({ label: `Layer ${l.layer} FFN`, dense: l.dense, moe: l.moe, strong: false })),
  ];
  const layerMax = Math.max(...p.perLayer.map((l) => l.dense));
  const barW = Math.max(60, width - LABEL_W - VALUE_W);
  const stats = [
    { label: 'MoE, activated', value: fmtCount(p.moe.nonEmbedding), color: INK.accent, note: `${fmtInt(p.moe.nonEmbedding)} per token` },
    { label: 'Dense', value: fmtCount(p.dense.nonEmbedding), color: INK.text, note: `${fmtInt(p.dense.nonEmbedding)} per token` },
    { label: 'Saved', value: fmtPct(saved), color: saved >= 0 ? INK.good : INK.bad, note: 'fewer activated parameters' },
  ];
  const colW = width / stats.length;
  const height = STATS_H + 12 + rows.length * ROW_H + 8;

  return (
    <svg width={width} height={height} className="activated">
      {stats.map((s, i) => (
        <g key={s.label} transform={`translate(${i * colW}, 0)`}>
          {i > 0 && <line x1={-0.5} x2={-0.5} y1={4} y2={STATS_H - 10} stroke={INK.border} />}
          <text x={i > 0 ? 18 : 0} y={14} fontSize={11} fontWeight={600} letterSpacing="0.04em" fill={INK.muted}>
            {s.label.toUpperCase()}
          </text>
          <text x={i > 0 ? 18 : 0} y={42} fontSize={24} fontWeight={700} fill={s.color}>
            {s.value}
          </text>
          {colW >= MIN_NOTE_COL && (
            <text x={i > 0 ? 18 : 0} y={60} fontSize={11.5} fill={INK.muted}>
              {s.note}
            </text>
          )}
        </g>
      ))}
      <line x1={0} x2={width} y1={STATS_H + 0.5} y2={STATS_H + 0.5} stroke={INK.border} />
      {rows.map((r, i) => {
        // the total against its own dense count; the layers on one scale, so their sizes compare
        const scale = r.strong ? r.dense : layerMax;
        const y = STATS_H + 12 + i * ROW_H;
        return (
          <g key={r.label} transform={`translate(0, ${y})`}>
            <text y={ROW_H / 2} dominantBaseline="central" fontSize={12} fontWeight={r.strong ? 650 : 500} fill={r.strong ? INK.text : INK.text2}>
              {r.label}
            </text>
            <rect x={LABEL_W} y={(ROW_H - BAR_H) / 2} width={(barW * r.dense) / scale} height={BAR_H} rx={BAR_H / 2} fill={TRACK} />
            <rect x={LABEL_W} y={(ROW_H - BAR_H) / 2} width={(barW * r.moe) / scale} height={BAR_H} rx={BAR_H / 2} fill={INK.accent} />
            <text x={width} y={ROW_H / 2} dominantBaseline="central" textAnchor="end" fontSize={12} fill={INK.text2}>
              <tspan fontWeight={600} fill={INK.text}>
                {fmtCount(r.moe)}
              </tspan>
              <tspan fill={INK.muted}> / {fmtCount(r.dense)} </tspan>
              <tspan fontWeight={600} fill={r.moe <= r.dense ? INK.good : INK.bad}>
                {r.moe <= r.dense ? '−' : '+'}
                {fmtPct(Math.abs(1 - r.moe / r.dense), 0)}
              </tspan>
            </text>
          </g>
        );
      })}
    </svg>
  );
}

function summary(p: ActivatedParams): string {
  const per = p.perLayer.map((l) => `layer ${l.layer} ${fmtCount(l.moe)} of ${fmtCount(l.dense)}`);
  return (
    `Activated non-embedding parameters per token: MoE ${fmtCount(p.moe.nonEmbedding)} against dense ${fmtCount(p.dense.nonEmbedding)}, ` +
    `${fmtPct(1 - p.moe.nonEmbedding / p.dense.nonEmbedding)} fewer. Converted FFNs: ${per.join(', ')}.`
  );
}
