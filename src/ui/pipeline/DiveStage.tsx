// Method 'dive', stage 3, DIVE (arXiv 2506.09351): the whole method as one run in the engine worker
// (src/methods/dive/run.ts, the same as `moefy run`): FLAP statistics per calibration domain, domain
// affinity mining, experts pruned per cluster, the baselines at equal activated parameters, the two
// retraining stages. Its finished pieces are stored, so Cancel or a reload resumes. The page shows the run
// (or a `moefy run --json` file opened here): the affinity heatmap ordered by the dendrogram beside it, the
// clusters, the perplexity table with DIVE against each baseline in words, and the routing analysis.
import { useMemo, useState } from 'react';
import { comparisonLine } from '../../methods/dive/report.ts';
import type { DiveMetrics, DiveModelRow } from '../../methods/dive/run.ts';
import { fileSource, parseDiveFile, type FileSource } from '../../state/results-file.ts';
import { usePipeline } from '../../state/pipeline.ts';
import type { SpecKey } from '../../state/spec.ts';
import { AffinityHeatmap } from '../charts/AffinityHeatmap.tsx';
import { ExpertLoadHeatmap } from '../charts/index.ts';
import { seriesColor } from '../charts/palette.ts';
import { fmtDuration } from '../format.ts';
import { FileSpecNote, MethodPage, Panel, SpecPanel } from './common.tsx';
import { PiecesRun } from './PiecesRun.tsx';

const CONSTRUCTION: SpecKey[] = ['calibration.domains', 'dive.experts', 'dive.topK', 'dive.keptRatio', 'dive.clusters', 'dive.calibTokens', 'dive.evalWindows', 'eval.window'];
const RETRAINING: SpecKey[] = ['dive.stage1Steps', 'dive.temperature', 'dive.stage2Steps', 'dive.loraRank', 'dive.routerNoise', 'train.batchTokens', 'train.seqLen', 'train.lr', 'train.warmup', 'seed'];

const LEAD = `Prunes every FFN once per calibration domain (FLAP), mines which domains prune alike, and builds one expert per cluster of domains,
then retrains the routers and the experts' LoRA adapters. FLAP alone, LLaMA-MoE's random split and DIVE without the mining are built beside
it at the same activated parameters and training budget.`;

export function DiveStage() {
  const view = usePipeline((s) => s.dive);
  return (
    <MethodPage method="dive" name="DIVE" what="DIVE" lead={LEAD} results={view && <Results metrics={view.metrics} source={view.source} />}>
      <Settings />
      <RunPanel />
    </MethodPage>
  );
}

function Settings() {
  return (
    <>
      <SpecPanel
        id="dive-construct"
        title="Experts from pruning"
        sub="Each k/N model keeps dive.keptRatio / k of every FFN's channels per expert, so a token activates as many FFN channels as the FLAP baseline keeps."
        keys={CONSTRUCTION}
      />
      <SpecPanel
        id="dive-retrain"
        title="Retraining"
        sub="Stage 1 trains the routers with every expert active through softmax(z / t); stage 2 trains LoRA on the experts and the norms under top-k. Every construction gets the same steps; both at 0 measures the constructions alone."
        keys={RETRAINING}
      />
    </>
  );
}

function RunPanel() {
  const shown = usePipeline((s) => s.dive?.source);
  const showDive = usePipeline((s) => s.showDive);
  return (
    <PiecesRun
      stage="dive"
      name="DIVE"
      pieces="finished pieces"
      needsModel="DIVE prunes the loaded model's FFNs: load one first, or open a results file."
      needsData="Each calibration domain of the Data stage prunes the FFNs once: choose the text first."
      showsRun={shown === 'run'}
      open={(text, file) => showDive(parseDiveFile(text, file), fileSource(text, file))}
    >
      Each finished piece (a domain's row of the affinity matrix, a model's perplexities and retraining)
    </PiecesRun>
  );
}

function Results({ metrics: m, source }: { metrics: DiveMetrics; source: 'run' | FileSource }) {
  const cluster = useMemo(() => m.domains.map((d) => m.clusters.groups.findIndex((g) => g.includes(d))), [m]);
  return (
    <>
      <FileSpecNote source={source} />
      <Panel
        id="dive-results"
        title="Does DIVE beat its baselines here?"
        sub={`${source === 'run' ? "This tab's run" : `From ${source.file}`}: ${m.stage}. Geometric mean of the perplexities over ${m.domains.length} domains, at equal activated FFN channels.`}
        testId="dive-results"
      >
        {m.comparisons.length ? (
          <ul className="verdicts">
            {m.comparisons.map((c) => (
              <li key={`${c.dive}|${c.baseline}`} className={c.relative < 0 ? 'good' : 'bad'}>
                {comparisonLine(c)}
              </li>
            ))}
          </ul>
        ) : (
          <p className="muted">No DIVE model in this run to compare.</p>
        )}
        <p className="muted">
          Time: calibration {fmtDuration(1000 * m.seconds.calibration)}, affinity mining {fmtDuration(1000 * m.seconds.affinity)}, constructions{' '}
          {fmtDuration(1000 * m.seconds.construction)}, retraining {fmtDuration(1000 * m.seconds.retraining)}
          {source === 'run' ? ' (pieces read back from storage count as no time)' : ''}.
        </p>
      </Panel>
      {m.affinity && <AffinityHeatmap domains={m.domains} {...m.affinity} cluster={cluster} />}
      <Clusters metrics={m} />
      <PerplexityTable metrics={m} />
      <RoutingAnalysis metrics={m} />
    </>
  );
}

function Clusters({ metrics: m }: { metrics: DiveMetrics }) {
  const N = m.clusters.groups.length;
  return (
    <Panel
      id="dive-clusters"
      title="Experts and their calibration domains"
      sub={m.clusters.source === 'mined' ? 'From the mined clusters; the ablation "without affinity mining" groups the domains by name order instead.' : 'Grouped by name order (dive.clusters is labels): no mining.'}
    >
      <div className="table-wrap">
        <table className="results" aria-label="DIVE experts">
          <thead>
            <tr>
              <th>Expert</th>
              <th>DIVE ({m.clusters.source})</th>
              {m.clusters.source === 'mined' && <th>Without affinity mining</th>}
            </tr>
          </thead>
          <tbody>
            {m.clusters.groups.map((g, e) => (
              <tr key={e}>
                <td className="mono" style={{ color: seriesColor(e, N), fontWeight: 700 }}>
                  E{e}
                </td>
                <td>{g.join(', ')}</td>
                {m.clusters.source === 'mined' && <td className="muted">{m.label_clusters[e]?.join(', ')}</td>}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}

type When = 'retrained' | 'constructed';

function PerplexityTable({ metrics: m }: { metrics: DiveMetrics }) {
  const anyRetrained = m.models.some((r) => r.retrained);
  const [when, setWhen] = useState<When>(anyRetrained ? 'retrained' : 'constructed');
  const ppl = (r: DiveModelRow): number[] | null => (when === 'retrained' ? (r.retrained?.ppl ?? (r.construction === 'dense' ? r.ppl : null)) : r.ppl);
  const geo = (r: DiveModelRow): number | null => (when === 'retrained' ? (r.retrained?.ppl_geomean ?? (r.construction === 'dense' ? r.ppl_geomean : null)) : r.ppl_geomean);
  // the lowest perplexity of each column among the pruned models (the dense model is the reference, not a contender)
  const best = m.domains.map((_, j) => Math.min(...m.models.filter((r) => r.construction !== 'dense').map((r) => ppl(r)?.[j] ?? Infinity)));
  const bestGeo = Math.min(...m.models.filter((r) => r.construction !== 'dense').map((r) => geo(r) ?? Infinity));
  const fmt = (v: number | null | undefined) => (v == null ? '—' : v.toFixed(v >= 1000 ? 0 : 2));
  return (
    <Panel
      id="dive-ppl"
      title="Perplexity per domain"
      sub={`Held-out perplexity, ${m.eval_tokens.reduce((a, b) => a + b, 0).toLocaleString('en-US')} predicted tokens over ${m.domains.length} domains; the lowest of the pruned models in each column is bold. The dense model is the reference.`}
      aside={
        anyRetrained && (
          <div className="segmented" role="radiogroup" aria-label="Perplexity before or after retraining">
            {(['retrained', 'constructed'] as const).map((w) => (
              <button key={w} type="button" role="radio" aria-checked={when === w} className={when === w ? 'on' : ''} onClick={() => setWhen(w)}>
                {w === 'retrained' ? 'After retraining' : 'As constructed'}
              </button>
            ))}
          </div>
        )
      }
    >
      <div className="table-wrap">
        <table className="results dive-table" aria-label="DIVE perplexity per domain">
          <thead>
            <tr>
              <th>Model</th>
              <th className="num">FFN active</th>
              <th className="num">Geomean</th>
              {m.domains.map((d) => (
                <th key={d} className="num" title={d}>
                  {d.replace(/^brown-/, '')}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {m.models.map((r) => (
              <tr key={r.name} data-construction={r.construction}>
                <td className="family">{r.name}</td>
                <td className="num mono">{(100 * r.activated_ffn_share).toFixed(1)}%</td>
                <td className={`num mono ${geo(r) === bestGeo && r.construction !== 'dense' ? 'best' : ''}`}>{fmt(geo(r))}</td>
                {m.domains.map((d, j) => (
                  <td key={d} className={`num mono ${ppl(r)?.[j] === best[j] && r.construction !== 'dense' ? 'best' : ''}`}>
                    {fmt(ppl(r)?.[j])}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}

/** Per retrained MoE model, the share of each domain's token assignments per expert, one layer or the mean over layers. */
function RoutingAnalysis({ metrics: m }: { metrics: DiveMetrics }) {
  const moes = m.models.filter((r) => r.retrained && r.experts > 1);
  const [name, setName] = useState<string | null>(null);
  const [layer, setLayer] = useState<number | 'mean'>('mean');
  const r = moes.find((x) => x.name === name) ?? moes[0];
  if (!r?.retrained) return null;
  const share = r.retrained.expert_share;
  const L = share[0]?.length ?? 0;
  const rows = m.domains.map((d, i) => ({
    label: d,
    shares: layer === 'mean' ? Array.from({ length: r.experts }, (_, e) => share[i].reduce((s, x) => s + x[e], 0) / L) : share[i][layer],
  }));
  const controls = (
    <>
      <label>
        Model{' '}
        <select className="input" value={r.name} onChange={(e) => setName(e.target.value)} aria-label="Model">
          {moes.map((x) => (
            <option key={x.name}>{x.name}</option>
          ))}
        </select>
      </label>
      <label>
        Layer{' '}
        <select className="input" value={String(layer)} onChange={(e) => setLayer(e.target.value === 'mean' ? 'mean' : Number(e.target.value))} aria-label="Layer">
          <option value="mean">mean over layers</option>
          {Array.from({ length: L }, (_, l) => (
            <option key={l} value={l}>
              layer {l}
            </option>
          ))}
        </select>
      </label>
    </>
  );
  return (
    <ExpertLoadHeatmap
      id="dive-routing"
      title="Where each domain's tokens go"
      what={`${r.name} after retraining, ${layer === 'mean' ? 'mean over layers' : `layer ${layer}`}: share of each domain's held-out token assignments per expert (expert e is cluster Ee of the table above)`}
      rowKind="domain"
      rows={rows}
      stage="DIVE"
      controls={controls}
    />
  );
}
