// Method 'mod', stage 3, Mixture-of-Depths ensemble tuning (arXiv 2410.13077): the comparison in the
// engine worker (src/methods/mod/run.ts, the same as `moefy run`): the base model, LoRA alone, MoD alone
// (the late layers' norms and the router) and MoD + LoRA, each tuned with the same budget on arithmetic
// word problems and scored by exact match of the greedy answer, prose perplexity and tokens/s. Each
// finished variant is stored, so Cancel or a reload resumes. The page shows the run (or a `moefy run
// --json` file opened here): the comparison with its verdicts, the loss curves, and the routing analysis
// of §4.1: the router's weight on each layer token by token (coloured by the layer with the most weight)
// and averaged per token type.
import { useMemo } from 'react';
import { modVerdicts, VARIANT_NAMES, wilson } from '../../methods/mod/report.ts';
import type { ModMetrics, VariantMetrics } from '../../methods/mod/run.ts';
import { fileSource, parseModFile, type FileSource } from '../../state/results-file.ts';
import { usePipeline } from '../../state/pipeline.ts';
import type { SpecKey } from '../../state/spec.ts';
import { StageLossChart } from '../charts/index.ts';
import { seriesColor } from '../charts/palette.ts';
import { fmtCount, fmtDuration } from '../format.ts';
import { FileSpecNote, MethodPage, MetricCards, Panel, SpecPanel, type MetricCard } from './common.tsx';
import { PiecesRun } from './PiecesRun.tsx';

const ENSEMBLE: SpecKey[] = ['mod.k', 'mod.mix', 'mod.lambda', 'mod.initFinal', 'mod.variants'];
const TASK: SpecKey[] = [
  'mod.problems', 'mod.domain', 'mod.evalProblems', 'eval.domain', 'eval.window', 'eval.maxWindows',
  'train.steps', 'train.batchTokens', 'train.seqLen', 'train.lr', 'train.warmup', 'train.schedule', 'train.lora.rank', 'train.lora.alpha', 'train.lora.targets', 'seed',
];

const LEAD = `Lets the last layers vote: each of the k layers before the final one predicts the next token through its own norm and the shared LM
head, and a router mixes those predictions with the final layer's. Only the norms and the router train (alone or beside LoRA), so it is
compared with the base model and LoRA on arithmetic word problems, at the same budget and seed.`;

export function ModStage() {
  const view = usePipeline((s) => s.mod);
  const showMod = usePipeline((s) => s.showMod);
  return (
    <MethodPage method="mod" name="Mixture-of-Depths" what="Mixture-of-Depths ensemble tuning" lead={LEAD} results={view && <Results m={view.metrics} source={view.source} />}>
      <SpecPanel id="mod-ensemble" title="Ensemble" sub="Which late layers join, how their predictions mix, the distillation weight λ of Σ KL(p_final ‖ p_i), and the variants compared." keys={ENSEMBLE} />
      <SpecPanel
        id="mod-task"
        title="Task and budget"
        sub="Word problems from the data's math domain, or the seeded built-in generator; exact match of the greedy answer after '='; prose perplexity on eval.domain. Every trained variant gets these steps."
        keys={TASK}
      />
      <PiecesRun
        stage="mod"
        name="the comparison"
        pieces="finished variants"
        needsModel="Mixture-of-Depths tunes copies of the loaded model: load one first, or open a results file."
        needsData="The prose the variants are scored on comes from the Data stage (and the problems too, with mod.problems 'data'): choose it first."
        showsRun={view?.source === 'run'}
        open={(text, file) => showMod(parseModFile(text, file), fileSource(text, file))}
      >
        Each finished variant (tuned and scored)
      </PiecesRun>
    </MethodPage>
  );
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function Results({ m, source }: { m: ModMetrics; source: 'run' | FileSource }) {
  const top = Math.max(...m.variants.map((v) => v.accuracy));
  const best = m.variants.filter((v) => v.accuracy === top);
  const mod = m.variants.find((v) => v.variant === 'mod');
  const cards: MetricCard[] = [
    best.length === 1
      ? ['Most accurate', VARIANT_NAMES[best[0].variant], `${best[0].correct} of ${best[0].scored} problems right (${pct(top)})`]
      : ['Most accurate', 'a tie', `${best.map((v) => VARIANT_NAMES[v.variant]).join(', ')}: ${best[0].correct} of ${best[0].scored} right (${pct(top)})`],
    ['Ensemble', m.layers.length ? `layers ${m.layers.join(', ')} + final` : 'final layer only', `mixed in ${m.mix === 'prob' ? 'probability' : 'logit'} space, λ ${m.lambda}`],
  ];
  if (mod) {
    cards.push(['MoD trains', fmtCount(mod.params.trainable), m.mod_share_of_lora_params !== null ? `parameters: ${pct(m.mod_share_of_lora_params)} of LoRA's` : 'parameters: the norms and the router']);
  }
  cards.push(['Problems', String(m.problems.scored), `held out from ${m.problems.source}; ${fmtCount(m.problems.train_tokens)} training tokens`]);
  const curves = useMemo(() => m.variants.filter((v) => v.train?.curve.length).map((v) => ({ label: VARIANT_NAMES[v.variant], curve: v.train!.curve, evals: v.train!.evals })), [m]);
  return (
    <>
      <FileSpecNote source={source} />
      <Panel
        id="mod-results"
        title="Does the ensemble help here?"
        sub={`${source === 'run' ? "This tab's run" : `From ${source.file}`}: exact match of the greedy answer on ${m.problems.scored} held-out problems, with 95% intervals; perplexity on ${m.prose.windows} windows of ${m.prose.domain}.`}
        testId="mod-results"
      >
        <MetricCards cards={cards} testId="mod-cards" />
        <Comparison m={m} top={top} />
        <ul className="verdicts" aria-label="Mixture-of-Depths verdicts">
          {modVerdicts(m).map((l) => (
            <li key={l.key} className={{ better: 'good', even: 'even', worse: 'bad' }[l.outcome]}>
              {l.text}
            </li>
          ))}
        </ul>
      </Panel>
      {curves.length > 0 && <StageLossChart stages={curves} overlaid />}
      {m.variants.filter((v) => v.routing).map((v) => (
        <Routing key={v.variant} v={v} />
      ))}
      <Samples m={m} />
    </>
  );
}

/** `top`: the best exact-match accuracy, set in bold. */
function Comparison({ m, top }: { m: ModMetrics; top: number }) {
  return (
    <div className="table-wrap">
      <table className="results" aria-label="Mixture-of-Depths variants compared">
        <thead>
          <tr>
            <th>Variant</th>
            <th className="num">Trainable</th>
            <th className="num">Exact match</th>
            <th className="num">95% interval</th>
            <th className="num">Prose perplexity</th>
            <th className="num">Forward tokens/s</th>
            <th className="num">Training</th>
          </tr>
        </thead>
        <tbody>
          {m.variants.map((v) => {
            const [lo, hi] = wilson(v.correct, v.scored);
            return (
              <tr key={v.variant}>
                <td className="family">{VARIANT_NAMES[v.variant]}</td>
                <td className="num mono">{fmtCount(v.params.trainable)}</td>
                <td className="num mono" style={{ fontWeight: v.accuracy === top ? 700 : undefined }}>
                  {v.correct}/{v.scored} ({pct(v.accuracy)})
                </td>
                <td className="num mono">
                  {pct(lo)}–{pct(hi)}
                </td>
                <td className="num mono">{v.ppl_prose.toFixed(2)}</td>
                <td className="num mono">{v.tokens_per_s.toFixed(0)}</td>
                <td className="num mono">{v.train ? `${v.train.steps} steps, ${fmtDuration(1000 * v.train.seconds)}` : '—'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** §4.1: where the router puts its weight, token by token (colour: the member with the most) and per token type. */
function Routing({ v }: { v: VariantMetrics }) {
  const r = v.routing!;
  const K = r.members.length;
  const colour = (j: number) => seriesColor(j, K);
  const types = Object.entries(r.byType).filter(([, t]) => t.tokens > 0);
  return (
    <Panel
      id={`mod-routing-${v.variant.replace('+', '-')}`}
      title={`Where ${VARIANT_NAMES[v.variant]} routes`}
      sub="The router's weight on each member (the final layer and each late layer) at every position of the first held-out problem, coloured by the member with the most weight; hover a token for all weights. Below, the mean weight per token type over every scored problem."
      testId={`mod-routing-${v.variant}`}
    >
      <div className="mod-legend">
        {r.members.map((name, j) => (
          <span key={name}>
            <i style={{ background: colour(j) }} /> {name}
          </span>
        ))}
      </div>
      <div className="routed" data-tokens={r.example.length}>
        {r.example.map((t, i) => {
          const top = t.gates.indexOf(Math.max(...t.gates));
          return (
            <span
              key={i}
              className="routed-token"
              style={{ background: `${colour(top)}22`, borderColor: colour(top) }}
              title={r.members.map((name, j) => `${name}: ${t.gates[j].toFixed(3)}`).join('\n')}
            >
              {t.token}
              <sub style={{ color: colour(top) }}>{(100 * t.gates[top]).toFixed(0)}</sub>
            </span>
          );
        })}
      </div>
      <table className="results mod-types" aria-label={`${VARIANT_NAMES[v.variant]}: router weight per token type`}>
        <thead>
          <tr>
            <th>Token type</th>
            <th className="num">Tokens</th>
            {r.members.map((name) => (
              <th key={name} className="num">
                {name}
              </th>
            ))}
            <th>Share</th>
          </tr>
        </thead>
        <tbody>
          {types.map(([type, t]) => (
            <tr key={type}>
              <td className="family">{type}</td>
              <td className="num mono">{t.tokens.toLocaleString('en-US')}</td>
              {t.mean.map((x, j) => (
                <td key={j} className="num mono">
                  {x.toFixed(3)}
                </td>
              ))}
              <td>
                <div className="mod-stack" aria-hidden="true">
                  {t.mean.map((x, j) => (
                    <span key={j} style={{ width: `${100 * x}%`, background: colour(j) }} />
                  ))}
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

/** The first problems with each variant's greedy answer. */
function Samples({ m }: { m: ModMetrics }) {
  const rows = m.variants[0].samples;
  if (!rows.length) return null;
  return (
    <Panel id="mod-samples" title="Greedy answers" sub="The first held-out problems, decoded greedily after '=' by each variant; a dash is no number within 8 tokens.">
      <div className="table-wrap">
        <table className="results" aria-label="Greedy answers by variant">
          <thead>
            <tr>
              <th>Problem</th>
              <th className="num">Answer</th>
              {m.variants.map((v) => (
                <th key={v.variant} className="num">
                  {VARIANT_NAMES[v.variant]}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((s, i) => (
              <tr key={i}>
                <td className="mod-prompt">{s.prompt}</td>
                <td className="num mono">{s.answer}</td>
                {m.variants.map((v) => {
                  const g = v.samples[i]?.greedy ?? null;
                  return (
                    <td key={v.variant} className={`num mono ${g === s.answer ? 'right' : 'wrong'}`}>
                      {g ?? '—'}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}
