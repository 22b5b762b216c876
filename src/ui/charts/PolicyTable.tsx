// The layer policy table (LaDiMo Appendix A, Table 1): a layer's local quantiles α_i, β_i against the
// global α, β pick its top-k, and each layer sits in the cell it fell in. Below, a row per layer with the
// quantiles and the share of tokens the policy sends to 1, 2 and 3 experts.
import type { LayerPolicy, LayerRouting, RoutingProfile } from '../../worker/pipeline-types.ts';
import { fmtPct, fmtSig } from './chart-data.ts';
import { ChartFrame } from './ChartFrame.tsx';
import { INK, POLICY_META } from './palette.ts';
import { Sub } from './svg-text.tsx';

export interface PolicyTableProps {
  profile: RoutingProfile | null;
}

/** Table 1's cells: [row β_i > β, row β_i < β] × [column α_i < α, column α_i > α]. */
const TABLE_1: LayerPolicy[][] = [
  ['top2', 'top1'],
  ['top3', 'dynamic'],
];

const K_COLORS = [POLICY_META.top1.color, POLICY_META.top2.color, POLICY_META.top3.color];

export function PolicyTable({ profile }: PolicyTableProps) {
  const layers = profile?.layers ?? [];
  return (
    <ChartFrame
      id="policy-table"
      title="Layer policies"
      caption="Each layer's top-k from its quantiles against the global ones (Appendix A, Table 1)."
      points={layers.length}
      summary={profile ? summary(profile) : ''}
      csv={{
        header: ['layer', 'alpha_i', 'beta_i', 'alpha', 'beta', 'p_u', 'p_e', 'policy', 'share_k1', 'share_k2', 'share_k3', 'samples'],
        rows: profile ? profile.layers.map((l) => [l.layer, l.alphaI, l.betaI, profile.alpha, profile.beta, profile.pU, profile.pE, l.policy, ...l.kShare, l.histogram.samples]) : [],
      }}
      stage="Route"
      footer={profile && <LayerRows profile={profile} />}
    >
      {(width) => profile && <Table1 profile={profile} width={width} />}
    </ChartFrame>
  );
}

// ---------------------------------------------------------------- the 2×2 grid (SVG, exported)

const HEAD_W = 150;
const HEAD_H = 50;
const CHIP_H = 24;
const CHIP_GAP = 6;
const CELL_PAD = 14;
/** Space for a cell's policy name and rule (up to two lines) above its chips. */
const CELL_TEXT_H = 62;

function chipWidth(layer: number): number {
  return 26 + String(layer).length * 7.5;
}

/** Chips flowed left to right in a cell's inner width: their offsets and the rows they take. */
function flowChips(layers: readonly LayerRouting[], inner: number) {
  let x = 0;
  let row = 0;
  const placed = layers.map((l) => {
    const w = chipWidth(l.layer);
    if (x > 0 && x + w > inner) {
      x = 0;
      row++;
    }
    const at = { layer: l, x, y: row * (CHIP_H + CHIP_GAP), w };
    x += w + CHIP_GAP;
    return at;
  });
  return { placed, rows: layers.length ? row + 1 : 1 };
}

function Table1({ profile, width }: { profile: RoutingProfile; width: number }) {
  const cellW = (width - HEAD_W) / 2;
  const inner = cellW - 2 * CELL_PAD;
  const flows = TABLE_1.map((row) => row.map((policy) => flowChips(profile.layers.filter((l) => l.policy === policy), inner)));
  const rowH = flows.map((row) => CELL_TEXT_H + CELL_PAD + Math.max(...row.map((f) => f.rows)) * (CHIP_H + CHIP_GAP) + CELL_PAD - CHIP_GAP);
  const height = HEAD_H + rowH[0] + rowH[1] + 1;
  const rowY = [HEAD_H, HEAD_H + rowH[0]];
  const colX = [HEAD_W, HEAD_W + cellW];
  const colHeads = [
    { cmp: '<', note: 'fewer very uneven routings' },
    { cmp: '>', note: 'more very uneven routings' },
  ];
  const rowHeads = [
    { cmp: '>', note: 'fewer very even routings' },
    { cmp: '<', note: 'more very even routings' },
  ];

  return (
    <svg width={width} height={height} className="policy-grid">
      <text x={0} y={18} fontSize={12} fill={INK.muted}>
        <tspan fontWeight={600} fill={INK.text2}>
          α = {fmtSig(profile.alpha)}
        </tspan>
        <tspan x={0} dy={17} fontWeight={600} fill={INK.text2}>
          β = {fmtSig(profile.beta)}
        </tspan>
        <tspan x={0} dy={15} fontSize={11}>
          p<tspan dy={3} fontSize={8.5}>u</tspan>
          <tspan dy={-3}> = {profile.pU}, p</tspan>
          <tspan dy={3} fontSize={8.5}>e</tspan>
          <tspan dy={-3}> = {profile.pE}</tspan>
        </tspan>
      </text>
      {colHeads.map((h, c) => (
        <g key={`c${c}`} transform={`translate(${colX[c] + cellW / 2}, 0)`}>
          <text y={20} textAnchor="middle" fontSize={13} fontWeight={650} fill={INK.text}>
            <Sub base="α" sub="i" size={13} />
            <tspan> {h.cmp} α</tspan>
          </text>
          <text y={38} textAnchor="middle" fontSize={11.5} fill={INK.muted}>
            {h.note}
          </text>
        </g>
      ))}
      {rowHeads.map((h, r) => (
        <g key={`r${r}`} transform={`translate(0, ${rowY[r] + rowH[r] / 2})`}>
          <text y={-2} fontSize={13} fontWeight={650} fill={INK.text}>
            <Sub base="β" sub="i" size={13} />
            <tspan> {h.cmp} β</tspan>
          </text>
          <text y={16} fontSize={11.5} fill={INK.muted}>
            {h.note}
          </text>
        </g>
      ))}
      {TABLE_1.map((row, r) =>
        row.map((policy, c) => (
          <Cell key={policy} policy={policy} x={colX[c]} y={rowY[r]} w={cellW} h={rowH[r]} chips={flows[r][c].placed} />
        )),
      )}
    </svg>
  );
}

function Cell({ policy, x, y, w, h, chips }: { policy: LayerPolicy; x: number; y: number; w: number; h: number; chips: ReturnType<typeof flowChips>['placed'] }) {
  const meta = POLICY_META[policy];
  const filled = chips.length > 0;
  return (
    <g transform={`translate(${x}, ${y})`}>
      <rect x={0.5} y={0.5} width={w - 1} height={h - 1} fill={filled ? meta.soft : INK.surface2} stroke={INK.border} />
      {filled && <rect x={0.5} y={0.5} width={3} height={h - 1} fill={meta.color} />}
      <text x={CELL_PAD} y={CELL_PAD + 13} fontSize={15} fontWeight={700} fill={filled ? meta.color : INK.faint}>
        {meta.label}
      </text>
      <text x={CELL_PAD} y={CELL_PAD + 32} fontSize={11.5} fill={filled ? INK.text2 : INK.faint}>
        <PolicyRule policy={policy} x={CELL_PAD} />
      </text>
      {chips.length === 0 ? (
        <text x={CELL_PAD} y={CELL_TEXT_H + CELL_PAD + 15} fontSize={12} fill={INK.faint}>
          no layers
        </text>
      ) : (
        chips.map((ch) => (
          <g key={ch.layer.layer} transform={`translate(${CELL_PAD + ch.x}, ${CELL_TEXT_H + CELL_PAD + ch.y})`}>
            <title>{`layer ${ch.layer.layer}: α${ch.layer.layer} = ${fmtSig(ch.layer.alphaI)}, β${ch.layer.layer} = ${fmtSig(ch.layer.betaI)}`}</title>
            <rect width={ch.w} height={CHIP_H} rx={6} fill="#fff" stroke={meta.color} strokeOpacity={0.55} />
            <text x={ch.w / 2} y={CHIP_H / 2} dominantBaseline="central" textAnchor="middle" fontSize={12} fontWeight={600} fill={meta.color}>
              L{ch.layer.layer}
            </text>
          </g>
        ))
      )}
    </g>
  );
}

/** How the policy picks k (Appendix A step 3); the token-wise rule takes two lines, so it fits a narrow cell. */
function PolicyRule({ policy, x }: { policy: LayerPolicy; x: number }) {
  if (policy === 'dynamic') {
    return (
      <>
        <tspan>per token: 1 expert if </tspan>
        <Sub base="w" sub="m" size={11.5} />
        <tspan> ≥ </tspan>
        <Sub base="α" sub="i" size={11.5} />
        <tspan>,</tspan>
        <tspan x={x} dy={15}>
          3 if{' '}
        </tspan>
        <Sub base="w" sub="m" size={11.5} />
        <tspan> ≤ </tspan>
        <Sub base="β" sub="i" size={11.5} />
        <tspan>, else 2</tspan>
      </>
    );
  }
  const k = { top1: 1, top2: 2, top3: 3 }[policy];
  return <tspan>{`static: every token to its ${k === 1 ? 'best expert' : `${k} best experts`}`}</tspan>;
}

// ---------------------------------------------------------------- per-layer rows (HTML, in the CSV)

function LayerRows({ profile }: { profile: RoutingProfile }) {
  return (
    <div className="table-wrap">
      <table className="results policy-rows">
        <thead>
          <tr>
            <th>Layer</th>
            <th className="num sym">
              α<sub>i</sub>
            </th>
            <th className="num sym">
              β<sub>i</sub>
            </th>
            <th>Policy</th>
            <th>Tokens to 1 / 2 / 3 experts</th>
            <th className="num">Mean k</th>
          </tr>
        </thead>
        <tbody>
          {profile.layers.map((l) => {
            const meta = POLICY_META[l.policy];
            const meanK = l.kShare.reduce((s, v, i) => s + (i + 1) * v, 0) / l.kShare.reduce((s, v) => s + v, 0);
            return (
              <tr key={l.layer}>
                <td className="mono">{l.layer}</td>
                <td className="num">
                  <span className="mono">{fmtSig(l.alphaI)}</span> <Cmp value={l.alphaI} against={profile.alpha} name="α" />
                </td>
                <td className="num">
                  <span className="mono">{fmtSig(l.betaI)}</span> <Cmp value={l.betaI} against={profile.beta} name="β" />
                </td>
                <td>
                  <span className="policy-tag" style={{ color: meta.color, background: meta.soft }}>
                    {meta.label}
                  </span>
                </td>
                <td>
                  <div className="kshare">
                    <span className="kshare-bar" aria-hidden="true">
                      {l.kShare.map((s, i) => (
                        <span key={i} style={{ width: `${100 * s}%`, background: K_COLORS[i] }} />
                      ))}
                    </span>
                    <span className="kshare-text">{l.kShare.map((s) => fmtPct(s, 0)).join(' / ')}</span>
                  </div>
                </td>
                <td className="num mono">{meanK.toFixed(2)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** "> α", "< α" or "= α": which side of the global quantile the layer's own falls on. */
function Cmp({ value, against, name }: { value: number; against: number; name: string }) {
  const cmp = value > against ? '>' : value < against ? '<' : '=';
  return (
    <span className={`cmp cmp-${{ '>': 'up', '<': 'down', '=': 'tie' }[cmp]}`} title={`${name} = ${fmtSig(against)}`}>
      {cmp} {name}
    </span>
  );
}

function summary(p: RoutingProfile): string {
  const per = p.layers.map((l) => `layer ${l.layer} ${POLICY_META[l.policy].label} (α_i ${fmtSig(l.alphaI)}, β_i ${fmtSig(l.betaI)})`);
  return `Table 1 layer policies with global α = ${fmtSig(p.alpha)} and β = ${fmtSig(p.beta)}: ${per.join('; ')}.`;
}
