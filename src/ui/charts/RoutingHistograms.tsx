// Maximal routing weights w_m = max_e p_e (LaDiMo Appendix A): their histogram per MoE layer (Fig. 8) as
// small multiples, or one layer's histogram per calibration domain overlaid (Fig. 9). Every panel marks
// the global quantiles α, β (all layers pooled, dashed) and the layer's own α_i, β_i (solid), whose
// comparison decides the layer's Table 1 policy.
import { useId, useMemo, useState } from 'react';
import { Area, CartesianGrid, ComposedChart, Line, ReferenceLine, Tooltip, XAxis, YAxis } from 'recharts';
import type { LayerRouting, RoutingProfile } from '../../worker/pipeline-types.ts';
import { AXIS, GRID } from './axes.ts';
import { fmtPct, fmtSig, histogramBins, histogramSteps, linearAxis, subscript } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { ChartTip } from './ChartTip.tsx';
import type { CsvCell } from './export.ts';
import { legendHeight, SvgLegend, type LegendEntry } from './legend.tsx';
import { INK, POLICY_META, seriesColor, THRESHOLD_COLOR } from './palette.ts';
import { Sub } from './svg-text.tsx';

export interface RoutingHistogramsProps {
  profile: RoutingProfile | null;
  /** 'layers': one panel per layer (Fig. 8); 'domains': one layer, a line per calibration domain (Fig. 9) */
  view: 'layers' | 'domains';
}

export function RoutingHistograms({ profile, view }: RoutingHistogramsProps) {
  return view === 'layers' ? <LayerMultiples profile={profile} /> : <DomainOverlay profile={profile} />;
}

const X_TICKS = [0, 0.25, 0.5, 0.75, 1];
const Y_AXIS_W = 44;
const MARGIN = { top: 44, right: 14, bottom: 24, left: 2 };

const THRESHOLD_LEGEND: LegendEntry[] = [
  { label: 'α (all layers)', text: 'α (all layers)', color: THRESHOLD_COLOR.alpha, mark: 'dash' },
  { label: 'β (all layers)', text: 'β (all layers)', color: THRESHOLD_COLOR.beta, mark: 'dash' },
  { label: <Sub base="α" sub="i" size={12} />, text: 'αi', color: THRESHOLD_COLOR.alpha, mark: 'line' },
  { label: <Sub base="β" sub="i" size={12} />, text: 'βi', color: THRESHOLD_COLOR.beta, mark: 'line' },
];

// ---------------------------------------------------------------- Fig. 8: a panel per layer

const PANEL_H = 220;
const PANEL_MIN_W = 230;
const PANEL_GAP = 18;

function LayerMultiples({ profile }: { profile: RoutingProfile | null }) {
  const layers = profile?.layers ?? [];
  const yMax = useMemo(() => Math.max(0, ...layers.flatMap((l) => histogramBins(l.histogram).map((b) => b.share))), [layers]);
  const legend: LegendEntry[] = [{ label: 'share of tokens', text: 'share of tokens', color: '#b9c7f3', mark: 'box' }, ...THRESHOLD_LEGEND];
  return (
    <ChartFrame
      id="routing-histograms"
      file="routing-layers"
      title="Maximal routing weights per layer"
      caption={
        <>
          Histogram of w<sub>m</sub> = max<sub>e</sub> p<sub>e</sub> over the calibration tokens, per MoE layer (Appendix A, Fig. 8).
        </>
      }
      points={layers.reduce((n, l) => n + l.histogram.counts.length, 0)}
      summary={profile ? layersSummary(profile) : ''}
      csv={{
        header: ['layer', 'bin_start', 'bin_end', 'count', 'share'],
        rows: layers.flatMap((l) => binRows(l.histogram).map((r) => [l.layer, ...r])),
      }}
      stage="Route"
    >
      {(width) => {
        // as many columns as fit (at most 4), then balanced so the last row is not a lone panel
        const fit = Math.max(1, Math.min(layers.length, Math.floor((width + PANEL_GAP) / (PANEL_MIN_W + PANEL_GAP)), 4));
        const cols = Math.ceil(layers.length / Math.ceil(layers.length / fit));
        const panelW = Math.floor((width - (cols - 1) * PANEL_GAP) / cols);
        return (
          <>
            <svg width={width} height={legendHeight(legend, width) + 6}>
              <SvgLegend entries={legend} x={0} y={0} width={width} />
            </svg>
            <div className="chart-multiples" style={{ display: 'grid', gridTemplateColumns: `repeat(${cols}, ${panelW}px)`, gap: PANEL_GAP }}>
              {profile &&
                layers.map((l) => (
                  <ComposedChart
                    key={l.layer}
                    width={panelW}
                    height={PANEL_H}
                    data={histogramSteps([{ key: 'share', histogram: l.histogram }])}
                    margin={MARGIN}
                    accessibilityLayer={false}
                  >
                    <PanelTitle layer={l} />
                    <WAxes yMax={yMax} width={panelW} />
                    <Area dataKey="share" type="stepAfter" stroke={INK.accent} strokeWidth={1.2} fill="#b9c7f3" fillOpacity={0.75} isAnimationActive={false} />
                    <ThresholdLines profile={profile} layer={l} />
                    <Tooltip isAnimationActive={false} content={({ active, payload }) => binTip(active, payload, l)} />
                  </ComposedChart>
                ))}
            </div>
          </>
        );
      }}
    </ChartFrame>
  );
}

function PanelTitle({ layer }: { layer: LayerRouting }) {
  const meta = POLICY_META[layer.policy];
  return (
    <text x={4} y={14} fontSize={12.5} fill={INK.text}>
      <tspan fontWeight={650}>Layer {layer.layer}</tspan>
      <tspan fill={INK.faint}> · </tspan>
      <tspan fill={meta.color} fontWeight={600}>
        {meta.label}
      </tspan>
    </text>
  );
}

// ---------------------------------------------------------------- Fig. 9: one layer, a line per domain

const OVERLAY_H = 300;

function DomainOverlay({ profile }: { profile: RoutingProfile | null }) {
  const layers = profile?.layers ?? [];
  const [chosen, setChosen] = useState<number | null>(null);
  const selectorId = useId();
  const layer = layers.find((l) => l.layer === chosen) ?? layers[0];
  const domains = layer?.byDomain ?? [];
  const rows = useMemo(
    () => (layer ? histogramSteps([{ key: 'all', histogram: layer.histogram }, ...layer.byDomain.map((d, i) => ({ key: `d${i}`, histogram: d.histogram }))]) : []),
    [layer],
  );
  const yMax = Math.max(0, ...rows.flatMap((r) => Object.entries(r).filter(([k]) => k !== 'w').map(([, v]) => v)));
  const legend: LegendEntry[] = [
    { label: 'all calibration text', text: 'all calibration text', color: '#dfe3ea', mark: 'box' },
    ...domains.map((d, i) => ({ label: d.domain, text: d.domain, color: seriesColor(i, domains.length), mark: 'line' as const })),
    ...THRESHOLD_LEGEND,
  ];
  return (
    <ChartFrame
      id="routing-histograms"
      file="routing-domains"
      title="Maximal routing weights per calibration domain"
      caption={
        <>
          One layer's histogram of w<sub>m</sub> on each domain's text (Appendix A, Fig. 9): similar text, similar routing.
        </>
      }
      points={layer ? (domains.length + 1) * layer.histogram.counts.length : 0}
      summary={profile && layer ? domainsSummary(profile, layer) : ''}
      csv={{
        header: ['layer', 'domain', 'bin_start', 'bin_end', 'count', 'share'],
        rows: layers.flatMap((l) => l.byDomain.flatMap((d) => binRows(d.histogram).map((r) => [l.layer, d.domain, ...r]))),
      }}
      stage="Route"
      controls={
        layers.length > 1 && (
          <>
            <span id={selectorId}>Layer</span>
            <div className="segmented" role="radiogroup" aria-labelledby={selectorId}>
              {layers.map((l) => (
                <button key={l.layer} type="button" role="radio" aria-checked={l === layer} className={l === layer ? 'on' : ''} onClick={() => setChosen(l.layer)}>
                  {l.layer}
                </button>
              ))}
            </div>
          </>
        )
      }
    >
      {(width) => {
        if (!profile || !layer) return null;
        const top = legendHeight(legend, width) + MARGIN.top;
        return (
          <ComposedChart width={width} height={OVERLAY_H + top} data={rows} margin={{ ...MARGIN, top }} accessibilityLayer={false}>
            <SvgLegend entries={legend} x={0} y={0} width={width} />
            <WAxes yMax={yMax} width={width} />
            <Area dataKey="all" name="all calibration text" type="stepAfter" stroke="none" fill="#dfe3ea" fillOpacity={0.9} isAnimationActive={false} />
            {domains.map((d, i) => (
              <Line key={d.domain} dataKey={`d${i}`} name={d.domain} type="stepAfter" stroke={seriesColor(i, domains.length)} strokeWidth={1.8} dot={false} isAnimationActive={false} />
            ))}
            <ThresholdLines profile={profile} layer={layer} />
            <Tooltip
              isAnimationActive={false}
              content={({ active, payload, label }) =>
                active && payload?.length ? (
                  <ChartTip
                    title={`w_m ∈ [${fmtSig(Number(label))}, ${fmtSig(Number(label) + 1 / layer.histogram.counts.length)})`}
                    rows={payload.map((p) => ({ label: String(p.name), value: fmtPct(Number(p.value)), color: String(p.stroke === 'none' ? p.fill : p.stroke) }))}
                  />
                ) : null
              }
            />
          </ComposedChart>
        );
      }}
    </ChartFrame>
  );
}

// ---------------------------------------------------------------- shared

/** x: w_m over [0, 1]; y: share of tokens per bin, up to yMax (shared by the panels so they compare). */
function WAxes({ yMax, width }: { yMax: number; width: number }) {
  const plotLeft = MARGIN.left + Y_AXIS_W;
  const plotCentre = plotLeft + (width - MARGIN.right - plotLeft) / 2;
  const y = linearAxis(0, yMax || 1, 4);
  return (
    <>
      <CartesianGrid {...GRID} />
      <XAxis dataKey="w" type="number" domain={[0, 1]} ticks={X_TICKS} tickFormatter={(v: number) => String(v)} {...AXIS} />
      <YAxis type="number" domain={y.domain} ticks={y.ticks} tickFormatter={(v: number) => fmtPct(v, Math.max(0, y.decimals - 2))} width={Y_AXIS_W} {...AXIS} />
      <text x={plotCentre} y="100%" dy={-8} textAnchor="middle" fontSize={12} fontWeight={500} fill={INK.text2}>
        <Sub base="w" sub="m" size={12} />
        <tspan> = max</tspan>
        <Sub base="" sub="e" size={12} />
        <tspan> </tspan>
        <Sub base="p" sub="e" size={12} />
      </text>
    </>
  );
}

/** Global α, β dashed and labelled above the plot; the layer's α_i, β_i solid and labelled inside it. */
function ThresholdLines({ profile, layer }: { profile: RoutingProfile; layer: LayerRouting }) {
  const i = subscript(layer.layer);
  const halo = { stroke: '#fff', strokeWidth: 3, paintOrder: 'stroke' as const };
  const lines = [
    { x: profile.alpha, label: 'α', color: THRESHOLD_COLOR.alpha, global: true },
    { x: profile.beta, label: 'β', color: THRESHOLD_COLOR.beta, global: true },
    { x: layer.alphaI, label: `α${i}`, color: THRESHOLD_COLOR.alpha, global: false },
    { x: layer.betaI, label: `β${i}`, color: THRESHOLD_COLOR.beta, global: false },
  ];
  return lines.map((l) => (
    <ReferenceLine
      key={l.label}
      x={l.x}
      stroke={l.color}
      strokeWidth={l.global ? 1.5 : 1.8}
      strokeDasharray={l.global ? '5 4' : undefined}
      ifOverflow="extendDomain"
      label={{ value: l.label, position: l.global ? 'top' : 'insideTop', fill: l.color, fontSize: 12, fontWeight: 650, offset: l.global ? 6 : 4, ...(l.global ? {} : halo) }}
    />
  ));
}

function binTip(active: boolean, payload: readonly { payload?: Record<string, number> }[] | undefined, layer: LayerRouting) {
  const w = payload?.[0]?.payload?.w;
  if (!active || w === undefined) return null;
  const bins = histogramBins(layer.histogram);
  const b = bins[Math.min(bins.length - 1, Math.round(w * bins.length))];
  return (
    <ChartTip
      title={`Layer ${layer.layer}: w_m in [${fmtSig(b.start)}, ${fmtSig(b.end)})`}
      rows={[
        { label: 'tokens', value: b.count.toLocaleString('en-US') },
        { label: 'share', value: fmtPct(b.share) },
      ]}
    />
  );
}

function binRows(h: LayerRouting['histogram']): CsvCell[][] {
  return histogramBins(h).map((b) => [b.start, b.end, b.count, b.share]);
}

function layersSummary(p: RoutingProfile): string {
  const per = p.layers.map(
    (l) => `layer ${l.layer}: α${subscript(l.layer)} = ${fmtSig(l.alphaI)}, β${subscript(l.layer)} = ${fmtSig(l.betaI)}, ${POLICY_META[l.policy].label}`,
  );
  return `Histograms of the maximal routing weight w_m for ${p.layers.length} layers. Global α = ${fmtSig(p.alpha)}, β = ${fmtSig(p.beta)}; ${per.join('; ')}.`;
}

function domainsSummary(p: RoutingProfile, l: LayerRouting): string {
  const per = l.byDomain.map((d) => `${d.domain} (${d.histogram.samples.toLocaleString('en-US')} tokens)`);
  return `Layer ${l.layer}'s histogram of w_m per calibration domain: ${per.join(', ')}. Global α = ${fmtSig(p.alpha)}, β = ${fmtSig(p.beta)}; α${subscript(l.layer)} = ${fmtSig(l.alphaI)}, β${subscript(l.layer)} = ${fmtSig(l.betaI)}.`;
}
