// The load in progress: phase, bytes, rate and time left, and Cancel.
import type { ModelState } from '../../state/store.ts';
import type { LoadPhase } from '../../worker/api.ts';
import { fmtBytes, fmtDuration, fmtEta, fmtRate } from '../format.ts';
import { useTicker } from '../hooks.ts';

const PHASES: { id: LoadPhase; name: string }[] = [
  { id: 'resolve', name: 'List' },
  { id: 'download', name: 'Download' },
  { id: 'open', name: 'Read' },
  { id: 'upload', name: 'Upload' },
];

export function LoadProgress({ model, onCancel }: { model: ModelState; onCancel(): void }) {
  const now = useTicker(true);
  const p = model.progress;
  const elapsed = model.startedAt === null ? 0 : Math.max(0, now - model.startedAt);
  const total = p?.totalBytes ?? null;
  const pct = p && total ? Math.min(100, (100 * p.loadedBytes) / total) : null;
  // local files and the demo model (read in place from this site) are never downloaded first
  const phases = PHASES.filter((ph) => (model.sourceKind !== 'files' && model.sourceKind !== 'demo') || (ph.id !== 'resolve' && ph.id !== 'download')).filter(
    (ph) => model.sourceKind === 'hub' || ph.id !== 'resolve',
  );
  const at = p ? phases.findIndex((ph) => ph.id === p.phase) : 0;

  return (
    <div className="load-progress" data-testid="load-progress" aria-live="polite">
      <div className="load-progress-top">
        <div className="load-what">
          <span className="spinner" aria-hidden="true" />
          <div>
            <div className="load-title">{p?.label ?? `Opening ${model.sourceLabel}`}</div>
            {!p?.label.includes(model.sourceLabel) && <div className="load-sub muted">{model.sourceLabel}</div>}
          </div>
        </div>
        <button className="btn btn-secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ol className="phases" aria-label="Load steps">
        {phases.map((ph, i) => (
          <li key={ph.id} className={i < at ? 'done' : i === at ? 'current' : ''}>
            <span className="phase-dot" aria-hidden="true">
              {i < at ? '✓' : i + 1}
            </span>
            {ph.name}
          </li>
        ))}
      </ol>
      <div
        className={`progress ${pct === null ? 'is-indeterminate' : 'is-running'}`}
        role="progressbar"
        aria-label="Load progress"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct === null ? undefined : Math.round(pct)}
      >
        <div className="progress-fill" style={{ width: pct === null ? undefined : `${pct}%` }} />
      </div>
      <div className="progress-line load-stats">
        <span className="mono">
          {p && p.loadedBytes > 0 ? (total ? `${fmtBytes(p.loadedBytes)} of ${fmtBytes(total)}` : fmtBytes(p.loadedBytes)) : '—'}
          {pct !== null && <span className="muted"> · {pct.toFixed(0)}%</span>}
        </span>
        <span className="muted">
          {p?.bytesPerSecond ? `${fmtRate(p.bytesPerSecond)} · ` : ''}
          {p?.etaSeconds !== null && p?.etaSeconds !== undefined && p.bytesPerSecond ? `about ${fmtEta(p.etaSeconds * 1000)} left · ` : ''}
          {fmtDuration(elapsed)} elapsed
        </span>
      </div>
      {p?.phase === 'upload' && p.file && <div className="load-file mono muted" title={p.file}>{p.file}</div>}
    </div>
  );
}

