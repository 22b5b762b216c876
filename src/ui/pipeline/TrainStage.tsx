// Method 'train', stage 3, Train: whole-model training of the loaded model on the Data stage's text
// (src/train: AdamW with clipping and a warm-up + cosine schedule, LoRA or chosen parameters), with the
// training loss, held-out loss, learning rate, gradient norm and tokens/s drawn live, the held-out loss and
// perplexity before and after, and a run stopped by Cancel or a reload resumed from its stored snapshot.
import { useMemo } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import type { SpecKey } from '../../state/spec.ts';
import { useStore } from '../../state/store.ts';
import { GradNormChart, LearningRateChart, ThroughputChart, TrainLossChart } from '../charts/index.ts';
import { fmtCount, fmtDuration, fmtInt } from '../format.ts';
import { MethodPage, MetricCards, RunButton, TaskBar, Waiting, type MetricCard } from './common.tsx';
import { SpecField } from './SpecField.tsx';

/** The train.* controls of the spec table (src/state/spec.ts), grouped; train.teacher is the CLI's (a checkpoint path). */
const OPTIMIZER: SpecKey[] = ['train.steps', 'train.batchTokens', 'train.seqLen', 'train.lr', 'train.schedule', 'train.warmup', 'train.minLr', 'train.weightDecay', 'train.clip', 'seed'];
const LORA: SpecKey[] = ['train.lora.alpha', 'train.lora.targets'];
const READINGS: SpecKey[] = ['train.evalEvery', 'eval.maxWindows', 'train.logEvery', 'train.checkpointEvery'];

const LEAD = `Trains the loaded model on next-token prediction over the chosen text: every weight, LoRA adapters, or the parameters you name, with
AdamW, gradient clipping and a warm-up + cosine schedule. The held-out loss before and after says what it learned. A copy of the model
trains; the loaded one stays as it was.`;

export function TrainStage() {
  return (
    <MethodPage method="train" name="Train" what="whole-model training" lead={LEAD}>
      <Settings />
      <RunPanel />
      <Charts />
      <Results />
    </MethodPage>
  );
}

function Settings() {
  const rank = usePipeline((s) => s.spec['train.lora.rank']);
  const domains = usePipeline((s) => s.data.summary?.domains);
  return (
    <>
      <section className="panel" aria-labelledby="train-opt-title">
        <div className="panel-head">
          <div>
            <h2 id="train-opt-title">Steps and optimizer</h2>
            <p className="panel-sub">Each step adds the gradients of train.batchTokens / train.seqLen sequences, clips their norm, and takes one AdamW step.</p>
          </div>
        </div>
        <div className="panel-body field-grid">
          {OPTIMIZER.map((k) => (
            <SpecField key={k} k={k} />
          ))}
        </div>
      </section>
      <section className="panel" aria-labelledby="train-what-title">
        <div className="panel-head">
          <div>
            <h2 id="train-what-title">What trains, on what</h2>
            <p className="panel-sub">
              {domains ? `Domains: ${domains.map((d) => d.name).join(', ')}.` : 'The domains of the Data stage.'} With LoRA rank 0 the weights themselves train.
            </p>
          </div>
        </div>
        <div className="panel-body field-grid">
          <SpecField k="train.domains" />
          <SpecField k="train.lora.rank" />
          {LORA.map((k) => (
            <SpecField key={k} k={k} disabled={rank === 0} />
          ))}
          <SpecField k="train.only" />
          <SpecField k="train.freeze" />
          <SpecField k="train.recompute" />
        </div>
      </section>
    </>
  );
}

function RunPanel() {
  const modelReady = useStore((s) => s.model.status === 'ready');
  const dataReady = usePipeline((s) => s.data.status === 'ready');
  const spec = usePipeline((s) => s.spec);
  const stored = usePipeline((s) => s.trainResume);
  const results = usePipeline((s) => s.train);
  const running = usePipeline((s) => s.task.status === 'running' && s.task.stage === 'train');
  const run = usePipeline((s) => s.run);
  const deleteStored = usePipeline((s) => s.deleteStored);
  const batch = spec['train.batchTokens'] % spec['train.seqLen'] === 0 ? null : `Tokens per step (${spec['train.batchTokens']}) must be a multiple of the sequence length (${spec['train.seqLen']}): a step is whole sequences.`;
  const partial = stored && stored.step < stored.steps ? stored : null;
  const finished = !!stored && stored.step >= stored.steps;
  return (
    <section className="panel" aria-labelledby="train-run-title" data-train={results ? 'done' : partial ? 'interrupted' : 'none'}>
      <div className="panel-head">
        <div>
          <h2 id="train-run-title">Held-out readings and snapshots</h2>
          <p className="panel-sub">
            The held-out loss is read before the first step, every train.evalEvery steps and after the last. Snapshots go to this browser's storage, so
            Cancel or a reload resumes from the latest.
          </p>
        </div>
      </div>
      <div className="panel-body field-grid">
        {READINGS.map((k) => (
          <SpecField key={k} k={k} />
        ))}
      </div>
      <div className="panel-body">
        {!modelReady ? (
          <Waiting title="No model loaded" href="#model" action="Load a model">
            Training needs the model to train: load one first.
          </Waiting>
        ) : !dataReady ? (
          <Waiting title="No text chosen" href="#data" action="Choose text">
            Training learns from the Data stage's text: choose it first.
          </Waiting>
        ) : null}
        {batch && (
          <div className="callout callout-bad" role="alert">
            <p>{batch}</p>
          </div>
        )}
        {partial && !running && (
          <div className="callout callout-info resume-offer" role="status">
            <div className="callout-title">A training run of this spec was interrupted</div>
            <p>
              Its snapshot at step {partial.step} of {partial.steps} is stored in this browser. Resuming restores the weights, the optimizer's moments and
              the sampler, and continues as an uninterrupted run would.
            </p>
          </div>
        )}
        {finished && !results && !running && (
          <div className="callout callout-info resume-offer" role="status">
            <div className="callout-title">A finished run of this spec is stored</div>
            <p>Its last snapshot holds all {stored.steps} steps: showing it reads the curves back without training.</p>
          </div>
        )}
        {finished && results && !running && (
          <p className="muted">
            This spec's run is finished and stored. The same spec and seed train the same way: to train again, change a setting or the seed, or delete
            the stored run.
          </p>
        )}
        <TaskBar stages={['train']} />
      </div>
      <div className="panel-foot actions">
        {!(finished && results) && (
          <RunButton onClick={() => void run('train')} disabled={!modelReady || !dataReady || !!batch}>
            {partial ? `Resume training from step ${partial.step}` : finished ? 'Show the stored run' : 'Start training'}
          </RunButton>
        )}
        {stored && (
          <RunButton primary={false} onClick={() => void deleteStored(stored.key)}>
            Delete the stored run
          </RunButton>
        )}
      </div>
    </section>
  );
}

/** The charts alone follow the streamed points: the finished run's full curves once it ends, the live points while it runs. */
function Charts() {
  const live = usePipeline((s) => s.trainLive);
  const results = usePipeline((s) => s.train);
  const running = usePipeline((s) => s.task.status === 'running' && s.task.stage === 'train');
  const d = useMemo(() => (results && !running ? { curve: results.curve, evals: results.evals, rates: results.rates } : live), [results, running, live]);
  return (
    <>
      <TrainLossChart curve={d.curve} evals={d.evals} />
      <div className="train-charts">
        <LearningRateChart curve={d.curve} />
        <GradNormChart curve={d.curve} />
      </div>
      <ThroughputChart rates={d.rates} />
    </>
  );
}

function Results() {
  const r = usePipeline((s) => s.train);
  if (!r) return null;
  const cards: MetricCard[] = [
    ['Parameters trained', `${fmtCount(r.params.trainable)} of ${fmtCount(r.params.total)}`, `${((100 * r.params.trainable) / r.params.total).toFixed(1)}% of the model`],
    ['Held-out loss', `${r.loss_before.toFixed(3)} → ${r.loss_after.toFixed(3)}`, `${r.loss_after <= r.loss_before ? 'lower' : 'higher'} by ${Math.abs(r.loss_before - r.loss_after).toFixed(3)} nats`],
    ['Held-out perplexity', `${r.ppl_before.toFixed(2)} → ${r.ppl_after.toFixed(2)}`, `${(r.ppl_after / r.ppl_before).toFixed(3)}× before`],
    ['Tokens per second', r.tokens_per_s > 0 ? r.tokens_per_s.toFixed(1) : '—', r.tokens_per_s > 0 ? `over ${fmtDuration(r.seconds * 1000)} of training in this session` : 'no steps ran in this session'],
    ['Steps', fmtInt(r.steps), `${fmtInt(r.tokens)} tokens, ${r.micro_batches} × ${r.seq_len} per step`],
    ['Resumed from', r.resumed_from === null ? '—' : `step ${r.resumed_from}`, r.resumed_from === null ? 'a fresh run' : 'the stored snapshot'],
  ];
  return (
    <section className="panel" aria-labelledby="train-results-title">
      <div className="panel-head">
        <div>
          <h2 id="train-results-title">Results</h2>
          <p className="panel-sub">On {r.device}. The held-out loss is the mean next-token cross-entropy over the held-out windows.</p>
        </div>
      </div>
      <div className="panel-body">
        <MetricCards cards={cards} testId="train-results" />
      </div>
    </section>
  );
}
