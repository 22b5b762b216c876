// Pipeline stage 6, Evaluate (LaDiMo §5.2–5.3): the assembled model against the dense one on held-out
// text in the same engine and the same run — perplexity, agreement of the argmax, KL(dense ‖ MoE),
// activated parameters, prefill and decode tokens/s — and the sweeps of Fig. 6 and Fig. 5.
import { useState } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import type { ModelMetrics } from '../../worker/pipeline-types.ts';
import { AccuracyThroughputCurve, SensitivityBars } from '../charts/index.ts';
import { fmtCount } from '../format.ts';
import { MetricCards, PageHead, RunButton, TaskBar, Waiting, type MetricCard } from './common.tsx';
import { SpecField } from './SpecField.tsx';

export function EvaluateStage() {
  const routed = usePipeline((s) => s.results.routing !== null);
  const evaluation = usePipeline((s) => s.results.evaluation);
  const sweep = usePipeline((s) => s.results.sweep);
  const run = usePipeline((s) => s.run);
  const [metric, setMetric] = useState<'ppl' | 'agreement'>('ppl');
  return (
    <>
      <PageHead n={6} name="Evaluate">
        Dense and MoE models on the same held-out windows, in the same engine: how much quality the conversion costs, and what it buys in activated
        parameters and speed.
      </PageHead>
      <section className="panel" aria-labelledby="eval-title">
        <div className="panel-head">
          <div>
            <h2 id="eval-title">Held-out evaluation</h2>
            <p className="panel-sub">Windows from the evaluation domain's validation text; throughput from one prefill and a greedy decode.</p>
          </div>
        </div>
        <div className="panel-body field-grid">
          <SpecField k="eval.window" />
          <SpecField k="eval.maxWindows" />
          <SpecField k="eval.throughputTokens" />
          <SpecField k="eval.decodeTokens" />
        </div>
        <div className="panel-body">
          {!routed && (
            <Waiting title="Routing not decided yet" href="#route" action="Go to Route">
              Evaluation uses each layer's routing policy: profile the routing first.
            </Waiting>
          )}
          <TaskBar stages={['evaluate', 'sweep']} />
          {evaluation && <Metrics m={evaluation} />}
        </div>
        <div className="panel-foot actions">
          <RunButton onClick={() => void run('evaluate')} disabled={!routed}>{evaluation ? 'Evaluate again' : 'Evaluate'}</RunButton>
          <RunButton primary={false} onClick={() => void run('sweep')} disabled={!routed}>
            {sweep ? 'Sweep again' : 'Sweep layers (Fig. 5, 6)'}
          </RunButton>
        </div>
      </section>
      {sweep && (
        <>
          <div className="segmented chart-switch" role="radiogroup" aria-label="Accuracy measure">
            {(['ppl', 'agreement'] as const).map((v) => (
              <button key={v} role="radio" aria-checked={metric === v} className={metric === v ? 'on' : ''} onClick={() => setMetric(v)}>
                {v === 'ppl' ? 'Perplexity ratio' : 'Agreement with dense'}
              </button>
            ))}
          </div>
          <AccuracyThroughputCurve sweep={sweep} metric={metric} />
          <SensitivityBars sweep={sweep} />
        </>
      )}
    </>
  );
}

function Metrics({ m }: { m: ModelMetrics }) {
  const a = m.activated;
  const fewer = 1 - a.moe.nonEmbedding / a.dense.nonEmbedding;
  const cards: MetricCard[] = [
    ['Perplexity', `${m.ppl_dense.toFixed(2)} → ${m.ppl_moe.toFixed(2)}`, `${(m.ppl_moe / m.ppl_dense).toFixed(3)}× dense`],
    ['Agreement', m.agreement.toFixed(3), 'positions with the dense argmax'],
    ['KL(dense ‖ MoE)', m.kl.toFixed(4), 'nats per position'],
    ['Activated parameters', `${fmtCount(a.dense.nonEmbedding)} → ${fmtCount(a.moe.nonEmbedding)}`, `${(100 * fewer).toFixed(1)}% fewer (non-embedding)`],
    ['Prefill', `${m.prefill_tokens_per_s_dense.toFixed(1)} → ${m.prefill_tokens_per_s_moe.toFixed(1)}`, 'tokens/s, dense → MoE'],
    ['Decode', `${m.decode_tokens_per_s_dense.toFixed(1)} → ${m.decode_tokens_per_s_moe.toFixed(1)}`, 'tokens/s, dense → MoE'],
  ];
  return (
    <MetricCards cards={cards} testId="metrics">
      <p className="muted metric-foot">{m.eval_tokens.toLocaleString('en-US')} held-out tokens.</p>
    </MetricCards>
  );
}
