// Method 'llama-moe-v2', stage 3, LLaMA-MoE v2 (arXiv 2411.15708): the run in the engine worker (the same
// as `moefy run`, src/methods/llama-moe-v2/run.ts): the MLPs of construct.layers become vanilla or residual
// MLP MoE layers with initialised routers, then post-training in two stages (general text, then math and
// code). Each finished construction is stored, so Cancel or a reload resumes. The page shows the run (or a
// `moefy run --json` file opened here): what each stage bought and gave back, perplexity per domain after
// construction and each stage beside the dense model, the loss curves by stage, and the constructions
// compared at matched activated parameters.
import { useMemo } from 'react';
import { comparisonLines } from '../../methods/llama-moe-v2/report.ts';
import type { V2Metrics } from '../../methods/llama-moe-v2/run.ts';
import { fileSource, parseV2File, type FileSource } from '../../state/results-file.ts';
import { usePipeline } from '../../state/pipeline.ts';
import type { SpecKey } from '../../state/spec.ts';
import { ExpertLoadHeatmap, StageLossChart } from '../charts/index.ts';
import { fmtCount } from '../format.ts';
import { FileSpecNote, MethodPage, MetricCards, Panel, SpecPanel, type MetricCard } from './common.tsx';
import { PiecesRun } from './PiecesRun.tsx';

const CONSTRUCTION: SpecKey[] = ['construct.layers', 'v2.mlp', 'v2.experts', 'v2.topK', 'v2.sharedRatio', 'v2.sharedBy', 'v2.partition', 'v2.routerInit', 'v2.routerTokens', 'calibration.tokens', 'v2.attention', 'v2.attentionTopK'];
const SCHEDULE: SpecKey[] = [
  'v2.stage1Domains', 'v2.stage1Steps', 'v2.stage2Domains', 'v2.stage2Steps', 'v2.stage2Replay', 'v2.balance',
  'train.batchTokens', 'train.seqLen', 'train.lr', 'train.warmup', 'train.lora.rank', 'train.lora.targets', 'v2.evalWindows', 'eval.window', 'v2.compare', 'seed',
];

const LEAD = `Splits the MLPs of the chosen layers into experts (vanilla, or residual with an always-on shared expert of the most-used neurons),
initialises the routers from clustered hidden states, and post-trains the whole model in two stages: general text, then math and code. Every
score is against the dense model, kept untrained.`;

export function V2Stage() {
  const view = usePipeline((s) => s.v2);
  const showV2 = usePipeline((s) => s.showV2);
  return (
    <MethodPage method="llama-moe-v2" name="LLaMA-MoE v2" what="LLaMA-MoE v2" lead={LEAD} results={view && <Results m={view.metrics} source={view.source} />}>
      <SpecPanel id="v2-construct" title="Construction" sub="The MLP MoE of each converted layer: its kind, experts, the shared expert's share of the neurons and how routers start; optionally its attention as experts too, one per KV head group." keys={CONSTRUCTION} />
      <SpecPanel
        id="v2-schedule"
        title="Post-training schedule"
        sub="Stage 1 trains on general text, stage 2 on specialised text with a share of stage 1's; each router adds its own balance loss. LoRA when its rank is above 0."
        keys={SCHEDULE}
      />
      <PiecesRun
        stage="llamaMoeV2"
        name="LLaMA-MoE v2"
        pieces="finished constructions"
        needsModel="LLaMA-MoE v2 converts the loaded model's MLPs: load one first, or open a results file."
        needsData="The calibration text and both stages' text come from the Data stage: choose it first."
        showsRun={view?.source === 'run'}
        open={(text, file) => showV2(parseV2File(text, file), fileSource(text, file))}
      >
        Each finished construction (built, post-trained and scored)
      </PiecesRun>
    </MethodPage>
  );
}

const change = (a: number, b: number) => `${b <= a ? '−' : '+'}${Math.abs(100 * (b / a - 1)).toFixed(1)}%`;

function Results({ m, source }: { m: V2Metrics; source: 'run' | FileSource }) {
  const at = (after: string) => m.points.find((p) => p.after === after);
  const [built, s1, s2] = [at('construction')!, at('stage 1'), at('stage 2')];
  const k = m.construction;
  const cards: MetricCard[] = [
    ['Converted', `${m.layers.length} layers`, `${k['v2.mlp']}: ${k.shared_neurons ? `shared ${k.shared_neurons} + ` : ''}top-${k['v2.topK']} of ${k['v2.experts']} × ${k.expert_neurons} neurons`],
    ['Activated MLP', `${(100 * m.activated.mlp_share).toFixed(1)}%`, `${fmtCount(m.activated.mlp_moe)} of ${fmtCount(m.activated.mlp_dense)} parameters a token uses`],
    [
      'Activated attention',
      `${(100 * (m.activated.attention / m.activated.attention_dense)).toFixed(1)}%`,
      m.activated.attention < m.activated.attention_dense
        ? `${fmtCount(m.activated.attention)} of ${fmtCount(m.activated.attention_dense)} parameters a token uses`
        : 'dense attention (v2.attention off)',
    ],
    [
      'Stage 1 domains',
      [built, s1, s2].filter(Boolean).map((p) => p!.ppl_stage1_domains.toFixed(2)).join(' → '),
      s1 ? `stage 1 ${change(built.ppl_stage1_domains, s1.ppl_stage1_domains)}${s2 ? `; stage 2 gives back ${change(s1.ppl_stage1_domains, s2.ppl_stage1_domains)}` : ''}` : 'not post-trained',
    ],
    [
      'Stage 2 domains',
      [built, s1, s2].filter(Boolean).map((p) => p!.ppl_stage2_domains.toFixed(2)).join(' → '),
      s2 && s1 ? `stage 2 ${change(s1.ppl_stage2_domains, s2.ppl_stage2_domains)} after stage 1` : 'no stage 2',
    ],
    ['Prefill tokens/s', `${m.throughput.prefill_dense.toFixed(0)} → ${m.throughput.prefill_moe.toFixed(0)}`, `dense → MoE on ${m.device}`],
  ];
  if (m.export) cards.push(['Exported', m.export.dir, `Qwen2-MoE, read back within ${m.export.max_rel_diff.toExponential(1)} of the run's perplexity`]);
  const stages = useMemo(() => m.stages.map((s) => ({ label: `stage ${s.stage} (${s.domains.join(', ')})`, curve: s.curve ?? [], evals: s.evals ?? [] })), [m]);
  return (
    <>
      <FileSpecNote source={source} />
      <Panel
        id="v2-results"
        title="What post-training bought"
        sub={`${source === 'run' ? "This tab's run" : `From ${source.file}`}: geometric-mean perplexity over each stage's held-out domains, after construction → stage 1 → stage 2.`}
        testId="v2-results"
      >
        <MetricCards cards={cards} testId="v2-cards" />
      </Panel>
      <PerplexityTable m={m} />
      {stages.some((s) => s.curve.length) && <StageLossChart stages={stages} />}
      {m.expert_load.length > 0 && (
        <ExpertLoadHeatmap
          rowKind="layer"
          rows={m.expert_load.map((r) => ({ label: `Layer ${r.layer}`, key: r.layer, shares: r.share }))}
          what={`After the last stage: share of the held-out token assignments per routed expert${m.construction.shared_neurons ? ' (the shared expert takes every token besides)' : ''}`}
          stage="LLaMA-MoE v2"
        />
      )}
      {m.attention_load.length > 0 && (
        <ExpertLoadHeatmap
          id="attention-load"
          title="Head-group load per layer"
          rowKind="layer"
          rows={m.attention_load.map((r) => ({ label: `Layer ${r.layer}`, key: r.layer, shares: r.share }))}
          what="Attention MoE after the last stage: share of the held-out token assignments per KV head group (expert Eg is KV head g with its query heads)"
          stage="LLaMA-MoE v2 attention"
        />
      )}
      {m.comparison && <Comparison m={m} />}
    </>
  );
}

function PerplexityTable({ m }: { m: V2Metrics }) {
  return (
    <Panel id="v2-ppl" title="Perplexity per domain" sub="Held-out perplexity of the dense model and of the MoE after each step; agreement is the share of next tokens the MoE predicts as the dense model does.">
      <div className="table-wrap">
        <table className="results v2-table" aria-label="LLaMA-MoE v2 perplexity per domain">
          <thead>
            <tr>
              <th>Domain</th>
              <th className="num">Dense</th>
              {m.points.map((p) => (
                <th key={p.after} className="num">
                  After {p.after}
                </th>
              ))}
              <th className="num">Agreement (last)</th>
            </tr>
          </thead>
          <tbody>
            {m.dense.map((d, i) => (
              <tr key={d.domain}>
                <td className="family">{d.domain}</td>
                <td className="num mono">{d.ppl.toFixed(2)}</td>
                {m.points.map((p) => (
                  <td key={p.after} className="num mono">
                    {p.scores[i].ppl.toFixed(2)}
                  </td>
                ))}
                <td className="num mono">{(100 * m.points.at(-1)!.scores[i].agreement).toFixed(1)}%</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}

/** v2.compare: each construction after construction and after stage 1, with the shares of MLP and attention parameters it activates. */
function Comparison({ m }: { m: V2Metrics }) {
  const rows = m.comparison!;
  const afterStage1 = (v: (typeof rows)[number]) => v.points.find((p) => p.after === 'stage 1');
  const best = Math.min(...rows.map((v) => afterStage1(v)?.ppl_stage1_domains ?? Infinity));
  return (
    <Panel id="v2-compare" title="Constructions compared through stage 1" sub="The same budget for each: geometric-mean perplexity on the stage 1 | stage 2 domains. The lowest after stage 1 on the stage 1 domains is bold.">
      <div className="table-wrap">
        <table className="results" aria-label="LLaMA-MoE v2 constructions compared">
          <thead>
            <tr>
              <th>Construction</th>
              <th className="num">MLP active</th>
              <th className="num">Attention active</th>
              <th className="num">After construction</th>
              <th className="num">After stage 1</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((v) => {
              const s1 = afterStage1(v);
              return (
                <tr key={v.name}>
                  <td className="family">{v.name}</td>
                  <td className="num mono">{(100 * v.activated_share).toFixed(1)}%</td>
                  <td className="num mono">{v.attention_top_k === null ? 'dense' : `${(100 * v.activated_attention_share).toFixed(1)}%`}</td>
                  <td className="num mono">
                    {v.points[0].ppl_stage1_domains.toFixed(2)} | {v.points[0].ppl_stage2_domains.toFixed(2)}
                  </td>
                  <td className="num mono" style={{ fontWeight: s1?.ppl_stage1_domains === best ? 700 : undefined }}>
                    {s1 ? `${s1.ppl_stage1_domains.toFixed(2)} | ${s1.ppl_stage2_domains.toFixed(2)}` : '—'}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <ul className="verdicts" aria-label="LLaMA-MoE v2 verdicts">
        {comparisonLines(rows).map((l) => (
          <li key={l.text} className={l.ownLower ? 'good' : 'bad'}>
            {l.text}
          </li>
        ))}
      </ul>
    </Panel>
  );
}
