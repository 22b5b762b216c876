// The pipeline sidebar: Kernels (setup), the run spec's method, then its stages, each with its status
// (done, running with its progress, interrupted, failed, or what it waits for): LaDiMo's Model → Data →
// Construct → Distill → Route → Evaluate → Export, whole-model training's Model → Data → Train, or
// DIVE's, LLaMA-MoE v2's and Mixture-of-Depths' Model → Data → their page.
import { useStore, type Stage } from '../state/store.ts';
import { useShallow } from 'zustand/react/shallow';
import { interrupted, usePipeline } from '../state/pipeline.ts';
import { FIELDS, type RunSpec } from '../state/spec.ts';
import type { TaskStage } from '../worker/pipeline-types.ts';

type StageId = Exclude<Stage, 'kernels'>;
type Status = { kind: 'done' | 'running' | 'ready' | 'waiting' | 'failed' | 'paused'; text: string };

const STAGES: { id: StageId; name: string; what: string; tasks: TaskStage[] }[] = [
  { id: 'model', name: 'Model', what: 'Load a dense LLaMA checkpoint', tasks: [] },
  { id: 'data', name: 'Data', what: 'Calibration and evaluation text', tasks: [] },
  { id: 'construct', name: 'Construct', what: 'Split FFNs into experts, capture', tasks: ['capture'] },
  { id: 'distill', name: 'Distill', what: 'Train each MoE block to mimic its FFN', tasks: ['distill'] },
  { id: 'route', name: 'Route', what: 'Profile routing, adaptive top-k', tasks: ['profile'] },
  { id: 'evaluate', name: 'Evaluate', what: 'Perplexity, agreement, speed', tasks: ['evaluate', 'sweep'] },
  { id: 'export', name: 'Export', what: 'Qwen2-MoE folder, run file, link', tasks: ['export'] },
  { id: 'train', name: 'Train', what: 'Train the whole model on the text', tasks: ['train'] },
  { id: 'dive', name: 'DIVE', what: 'Mine domains, prune experts, retrain', tasks: ['dive'] },
  { id: 'v2', name: 'LLaMA-MoE v2', what: 'MLP experts, two-stage post-training', tasks: ['llamaMoeV2'] },
  { id: 'mod', name: 'Mixture-of-Depths', what: 'Late layers as a routed ensemble', tasks: ['mod'] },
];

type Method = RunSpec['method'];

/** The methods the selector offers, each with its stages in order; a method not here runs in the moefy CLI only. */
const WORKBENCH: Partial<Record<Method, { label: string; stages: StageId[] }>> = {
  ladimo: { label: 'LaDiMo: dense → MoE', stages: ['model', 'data', 'construct', 'distill', 'route', 'evaluate', 'export'] },
  train: { label: 'Train the whole model', stages: ['model', 'data', 'train'] },
  dive: { label: 'DIVE: experts from domain pruning', stages: ['model', 'data', 'dive'] },
  'llama-moe-v2': { label: 'LLaMA-MoE v2: MLP experts + post-training', stages: ['model', 'data', 'v2'] },
  mod: { label: 'Mixture-of-Depths: late layers as an ensemble', stages: ['model', 'data', 'mod'] },
};

const stagesOf = (m: Method): StageId[] => WORKBENCH[m]?.stages ?? ['model', 'data'];
const METHODS = FIELDS.find((f) => f.key === 'method')!.choices;

function useStatuses(): Record<StageId, Status> {
  const model = useStore((s) => s.model.status);
  // Not the streamed loss points: the sidebar need not re-render with the chart.
  const p = usePipeline(useShallow((s) => ({ data: s.data, results: s.results, task: s.task, resume: s.resume, train: s.train, trainResume: s.trainResume, dive: s.dive, v2: s.v2, mod: s.mod, piecesResume: s.piecesResume })));
  const r = p.results;
  const t = p.task;
  // a stage that starts from the model and the text: what it waits for, else `ready`
  const fromInputs = (ready: Status): Status =>
    model !== 'ready' ? { kind: 'waiting', text: 'Needs a model' } : p.data.status !== 'ready' ? { kind: 'waiting', text: 'Needs data' } : ready;
  const base: Record<StageId, Status> = {
    model: model === 'ready' ? { kind: 'done', text: 'Loaded' } : model === 'loading' ? { kind: 'running', text: 'Loading…' } : { kind: 'ready', text: 'Start here' },
    data: p.data.status === 'ready' ? { kind: 'done', text: `${p.data.summary!.domains.length} domains` } : p.data.status === 'loading' ? { kind: 'running', text: 'Reading…' } : { kind: 'ready', text: 'Choose text' },
    construct: r.capture ? { kind: 'done', text: `${r.capture.tokens.toLocaleString('en-US')} tokens captured` } : p.resume?.captured ? { kind: 'done', text: 'Capture stored' } : fromInputs({ kind: 'ready', text: 'Ready to capture' }),
    distill: r.distill.length ? { kind: 'done', text: `${r.distill.length} layers distilled` } : interrupted(p) ? { kind: 'paused', text: 'Interrupted: resume' } : r.capture ? { kind: 'ready', text: 'Ready' } : { kind: 'waiting', text: 'Needs a capture' },
    route: r.routing ? { kind: 'done', text: 'Policies decided' } : r.distill.length ? { kind: 'ready', text: 'Ready' } : { kind: 'waiting', text: 'Needs distilled layers' },
    evaluate: r.evaluation || r.sweep ? { kind: 'done', text: r.evaluation ? `ppl ×${(r.evaluation.ppl_moe / r.evaluation.ppl_dense).toFixed(3)}` : 'Swept' } : r.routing ? { kind: 'ready', text: 'Ready' } : { kind: 'waiting', text: 'Needs routing' },
    export: r.distill.length ? { kind: 'ready', text: 'Ready' } : { kind: 'waiting', text: 'Needs distilled layers' },
    train: p.train
      ? { kind: 'done', text: `Held-out loss ${p.train.loss_before.toFixed(2)} → ${p.train.loss_after.toFixed(2)}` }
      : p.trainResume && p.trainResume.step < p.trainResume.steps
        ? { kind: 'paused', text: `Interrupted at step ${p.trainResume.step}: resume` }
        : p.trainResume
          ? { kind: 'done', text: 'Finished run stored' }
          : fromInputs({ kind: 'ready', text: 'Ready to train' }),
    dive: p.dive
      ? { kind: 'done', text: p.dive.source === 'run' ? `${p.dive.metrics.models.length} models measured` : `Shown from ${p.dive.source.file}` }
      : p.piecesResume
        ? { kind: 'paused', text: `${p.piecesResume.pieces} pieces stored: resume` }
        : fromInputs({ kind: 'ready', text: 'Ready to run' }),
    v2: p.v2
      ? { kind: 'done', text: p.v2.source === 'run' ? `${p.v2.metrics.points.length} scorings` : `Shown from ${p.v2.source.file}` }
      : p.piecesResume
        ? { kind: 'paused', text: `${p.piecesResume.pieces} constructions stored: resume` }
        : fromInputs({ kind: 'ready', text: 'Ready to run' }),
    mod: p.mod
      ? { kind: 'done', text: p.mod.source === 'run' ? `${p.mod.metrics.variants.length} variants scored` : `Shown from ${p.mod.source.file}` }
      : p.piecesResume
        ? { kind: 'paused', text: `${p.piecesResume.pieces} variants stored: resume` }
        : fromInputs({ kind: 'ready', text: 'Ready to run' }),
  };
  for (const s of STAGES) {
    if (t.stage && s.tasks.includes(t.stage)) {
      const pct = t.progress && t.progress.total ? ` ${Math.floor((100 * t.progress.done) / t.progress.total)}%` : '';
      if (t.status === 'running') base[s.id] = { kind: 'running', text: `Running${pct}` };
      if (t.status === 'error') base[s.id] = { kind: 'failed', text: 'Failed' };
    }
  }
  return base;
}

/** Switches the spec's method; a page the new method has no stage for gives way to its first stage after Model and Data. */
function MethodSelect({ stage }: { stage: Stage }) {
  const method = usePipeline((s) => s.spec.method);
  const setField = usePipeline((s) => s.setField);
  const busy = usePipeline((s) => s.task.status === 'running');
  return (
    <label className="nav-method">
      <span className="nav-method-label">Method</span>
      <select
        className="input"
        value={method}
        disabled={busy}
        title={busy ? 'A stage is running' : undefined}
        onChange={(e) => {
          const next = e.target.value as Method;
          setField('method', next);
          if (stage !== 'kernels' && !stagesOf(next).includes(stage)) window.location.hash = `#${stagesOf(next)[2] ?? 'data'}`;
        }}
      >
        {METHODS.filter((m) => WORKBENCH[m] || m === method).map((m) => (
          <option key={m} value={m} disabled={!WORKBENCH[m]}>
            {WORKBENCH[m]?.label ?? `${m} (runs in the moefy CLI)`}
          </option>
        ))}
      </select>
    </label>
  );
}

export function Sidebar({ stage }: { stage: Stage }) {
  const statuses = useStatuses();
  const method = usePipeline((s) => s.spec.method);
  const stages = STAGES.filter((s) => stagesOf(method).includes(s.id));
  return (
    <nav className="sidebar" aria-label="Pipeline">
      <div className="nav-group">
        <div className="nav-title">Setup</div>
        <a className={`nav-item ${stage === 'kernels' ? 'active' : ''}`} aria-current={stage === 'kernels' ? 'page' : undefined} href="#kernels">
          <span className="nav-icon" aria-hidden="true">
            <svg viewBox="0 0 16 16">
              <path d="M5 2v2M8 2v2M11 2v2M5 12v2M8 12v2M11 12v2M2 5h2M2 8h2M2 11h2M12 5h2M12 8h2M12 11h2" />
              <rect x="4" y="4" width="8" height="8" rx="1.5" />
            </svg>
          </span>
          <span className="nav-text">
            <span className="nav-name">Kernels</span>
            <span className="nav-what">Adapter and kernel checks</span>
          </span>
        </a>
      </div>
      <div className="nav-group">
        <div className="nav-title">Pipeline</div>
        <MethodSelect stage={stage} />
        <ol className="stages">
          {stages.map((s, i) => {
            const st = statuses[s.id];
            return (
              <li key={s.id} className={`stage stage-open ${stage === s.id ? 'active' : ''} ${st.kind === 'done' ? 'complete' : ''}`} data-stage-status={st.kind}>
                <a className="stage-link" href={`#${s.id}`} aria-current={stage === s.id ? 'page' : undefined}>
                  <span className="stage-num">{st.kind === 'done' ? '✓' : i + 1}</span>
                  <span className="nav-text">
                    <span className="nav-name">{s.name}</span>
                    <span className="nav-what">{s.what}</span>
                    <span className={`stage-status stage-status-${st.kind}`}>{st.text}</span>
                  </span>
                </a>
              </li>
            );
          })}
        </ol>
      </div>
      <p className="nav-note">
        Everything runs in this tab on WebGPU. The <code>moefy</code> CLI runs the same engine and the same run spec in Node.
      </p>
    </nav>
  );
}
