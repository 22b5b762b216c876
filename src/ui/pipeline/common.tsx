// Pieces every pipeline page shares: the page head, the long-task bar (progress, ETA, Cancel), and the
// callout that says which earlier stage a page is waiting for.
import { useEffect, type ReactNode } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import { useStore } from '../../state/store.ts';
import type { TaskStage } from '../../worker/pipeline-types.ts';
import type { RunSpec, SpecKey } from '../../state/spec.ts';
import { adoptSpec, specDifferences, type FileSource } from '../../state/results-file.ts';
import { SpecField } from './SpecField.tsx';
import { fmtDuration, fmtEta, fmtInt } from '../format.ts';
import { useTicker } from '../hooks.ts';

export function PageHead({ n, name, children }: { n: number; name: string; children: ReactNode }) {
  return (
    <div className="page-head">
      <div className="crumbs">
        Pipeline <span aria-hidden="true">/</span> {n} · {name}
      </div>
      <h1>{name}</h1>
      <p className="lead">{children}</p>
    </div>
  );
}

const VERB: Record<TaskStage, string> = {
  capture: 'Capturing FFN activations',
  distill: 'Distilling',
  profile: 'Profiling routing weights',
  evaluate: 'Evaluating dense vs MoE',
  sweep: 'Sweeping converted layers',
  export: 'Exporting',
  train: 'Training',
  dive: 'Running DIVE',
  llamaMoeV2: 'Running LLaMA-MoE v2',
  mod: 'Running the Mixture-of-Depths comparison',
};

/** What to do after the errors a stage can end with (by error name). */
const WHAT_NOW: Record<string, string> = {
  DeviceLostError: 'The GPU was reset (a driver update, another tab, or too much memory). Load the model again in Model and run this stage again: it resumes from its last checkpoint.',
  EngineRestarted: 'Load the model again in Model and run this stage again: it resumes from its last stored checkpoint.',
  GpuLimitError: "This GPU's limits are too small for this run: use fewer tokens per step, fewer experts or a smaller model.",
  QuotaExceededError: 'Browser storage is full: delete stored runs or models under Export → Stored in this browser, then run the stage again.',
};

/**
 * The state of `stages`' task when one of them is running or just ended: a progress bar with the
 * worker's count, ETA and elapsed time, and Cancel; or what stopped it.
 */
export function TaskBar({ stages }: { stages: TaskStage[] }) {
  const task = usePipeline((s) => s.task);
  const cancel = usePipeline((s) => s.cancel);
  const mine = task.stage !== null && stages.includes(task.stage);
  const running = mine && task.status === 'running';
  const now = useTicker(running);
  if (!mine || task.status === 'idle' || task.status === 'done') return null;
  if (task.status === 'error') {
    return (
      <div className="callout callout-bad task-error" role="alert">
        <div className="callout-title">{VERB[task.stage!]} failed</div>
        <p>{task.error?.message}</p>
        <p className="error-hint">{WHAT_NOW[task.error?.name ?? ''] ?? 'Fix what the message names and run the stage again.'}</p>
      </div>
    );
  }
  if (task.status === 'cancelled') {
    return (
      <div className="callout callout-info" role="status">
        <div className="callout-title">Cancelled</div>
        <p>What was finished is kept in this browser's storage; run the stage again to continue from there.</p>
      </div>
    );
  }
  const p = task.progress;
  const pct = p && p.total > 0 ? Math.min(100, (100 * p.done) / p.total) : null;
  const elapsed = task.startedAt === null ? 0 : now - task.startedAt;
  return (
    <div className="task-bar" data-testid="task-bar" data-task={task.stage} aria-live="polite">
      <div className="task-top">
        <div className="load-what">
          <span className="spinner" aria-hidden="true" />
          <div>
            <div className="load-title">{VERB[task.stage!]}…</div>
            <div className="load-sub muted">{p?.detail ?? 'Starting in the engine worker'}</div>
          </div>
        </div>
        <button className="btn btn-secondary" onClick={cancel}>
          Cancel
        </button>
      </div>
      <div
        className={`progress ${pct === null ? 'is-indeterminate' : 'is-running'}`}
        role="progressbar"
        aria-label={`${VERB[task.stage!]} progress`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct === null ? undefined : Math.round(pct)}
      >
        <div className="progress-fill" style={{ width: pct === null ? undefined : `${pct}%` }} />
      </div>
      <div className="progress-line">
        <span className="mono">{p ? `${fmtInt(p.done)} / ${fmtInt(p.total)} ${p.unit}` : '—'}</span>
        <span className="muted">
          {p?.etaSeconds != null ? `about ${fmtEta(p.etaSeconds * 1000)} left · ` : ''}
          {fmtDuration(elapsed)} elapsed
        </span>
      </div>
    </div>
  );
}

/** Shown beside a stage's controls while an earlier stage is missing: what, and a link there. */
export function Waiting({ title, children, href, action }: { title: string; children: ReactNode; href: string; action: string }) {
  return (
    <div className="callout callout-info waiting" role="status">
      <div className="callout-title">{title}</div>
      <p>{children}</p>
      <a className="btn btn-secondary btn-sm" href={href}>
        {action}
      </a>
    </div>
  );
}

/** A button that starts a stage; disabled while any stage runs. */
export function RunButton({ onClick, children, disabled, primary = true }: { onClick(): void; children: ReactNode; disabled?: boolean; primary?: boolean }) {
  const busy = usePipeline((s) => s.task.status === 'running');
  return (
    <button className={`btn ${primary ? 'btn-primary' : 'btn-secondary'}`} disabled={busy || disabled} onClick={onClick}>
      {children}
    </button>
  );
}

/** Asks the worker what it has stored for this spec and model (capture, finished and interrupted layers). */
export function useResumeInfo(): void {
  const spec = usePipeline((s) => s.spec);
  const refresh = usePipeline((s) => s.refreshResume);
  const model = useStore((s) => (s.model.status === 'ready' ? s.model.summary?.name : null));
  const data = usePipeline((s) => s.data.status);
  useEffect(() => {
    if (!model) return;
    const t = setTimeout(() => void refresh(), 300);
    return () => clearTimeout(t);
  }, [spec, model, data, refresh]);
}

/** A metric card: its name, its value, and a note on what it measures. */
export type MetricCard = [name: string, value: string, note: string];

/** A row of metric cards (data-testid `testId`), with an optional footnote. */
export function MetricCards({ cards, testId, children }: { cards: MetricCard[]; testId: string; children?: ReactNode }) {
  return (
    <div className="stats metric-cards" data-testid={testId}>
      {cards.map(([name, value, note]) => (
        <div className="stat" key={name}>
          <div className="card-title">{name}</div>
          <div className="stat-value mono">{value}</div>
          <div className="stat-note">{note}</div>
        </div>
      ))}
      {children}
    </div>
  );
}

/** A page section: its title, a line on what it shows, controls beside the title (`aside`), and its body. */
export function Panel({ id, title, sub, aside, testId, bodyClass = '', children }: {
  id: string; title: string; sub: ReactNode; aside?: ReactNode; testId?: string; bodyClass?: string; children: ReactNode;
}) {
  return (
    <section className="panel" aria-labelledby={`${id}-title`} data-testid={testId}>
      <div className="panel-head">
        <div>
          <h2 id={`${id}-title`}>{title}</h2>
          <p className="panel-sub">{sub}</p>
        </div>
        {aside}
      </div>
      <div className={`panel-body ${bodyClass}`}>{children}</div>
    </section>
  );
}

/** A panel of spec controls (SpecField per key). */
export function SpecPanel({ keys, ...panel }: { id: string; title: string; sub: ReactNode; keys: readonly SpecKey[] }) {
  return (
    <Panel {...panel} bodyClass="field-grid">
      {keys.map((k) => (
        <SpecField key={k} k={k} />
      ))}
    </Panel>
  );
}

/**
 * The page of a method that runs as one task (whole-model training, DIVE, LLaMA-MoE v2, Mixture-of-Depths):
 * its lead, then its controls while the spec runs that method (else what the page runs and a switch to
 * it), then the results on show, whichever method the spec has.
 */
export function MethodPage({ method, name, what, lead, children, results }: {
  method: RunSpec['method']; name: string; what: string; lead: ReactNode; children: ReactNode; results?: ReactNode;
}) {
  useResumeInfo();
  const current = usePipeline((s) => s.spec.method);
  const setField = usePipeline((s) => s.setField);
  return (
    <>
      <PageHead n={3} name={name}>
        {lead}
      </PageHead>
      {current !== method ? (
        <div className="callout callout-info" role="status">
          <div className="callout-title">The run spec's method is {current}</div>
          <p>
            This page runs {what} (method '{method}'). Switching the method hides the other method's stages; switching back restores them.
          </p>
          <button className="btn btn-secondary btn-sm" onClick={() => setField('method', method)}>
            Switch to {name}
          </button>
        </div>
      ) : (
        children
      )}
      {results}
    </>
  );
}

/**
 * Above results opened from a file: which settings of the file's run differ from the spec the panels show
 * (sources and output folders aside), and a button that takes the file's, so the page says what made them.
 */
export function FileSpecNote({ source }: { source: 'run' | FileSource }) {
  const ours = usePipeline((s) => s.spec);
  const setSpec = usePipeline((s) => s.setSpec);
  if (source === 'run') return null;
  if (source.specError) {
    return (
      <div className="callout callout-warn" role="status" data-testid="file-spec">
        <div className="callout-title">{source.file}'s run spec cannot be read here</div>
        <p>{source.specError}. The panels above show this page's spec, not the one that made these results.</p>
      </div>
    );
  }
  if (!source.spec) return null;
  const differs = specDifferences(ours, source.spec);
  if (!differs.length) return null;
  const theirs = source.spec;
  return (
    <div className="callout callout-info" role="status" data-testid="file-spec">
      <div className="callout-title">
        {source.file} was made with another spec than the panels above show ({differs.length} field{differs.length > 1 ? 's' : ''})
      </div>
      <p className="mono">{differs.map((k) => `${k} ${JSON.stringify(theirs[k])} (above: ${JSON.stringify(ours[k])})`).join('; ')}</p>
      <button className="btn btn-secondary btn-sm" onClick={() => setSpec(adoptSpec(ours, theirs))}>
        Use the file's spec
      </button>
    </div>
  );
}
