// The workbench shell: header, pipeline sidebar (Sidebar.tsx), and one page per stage: Kernels (the
// adapter the engine runs on and the kernel checks, GPU kernel vs float64 CPU reference), the Model stage
// (src/ui/model/), the LaDiMo pipeline stages, whole-model training's Train, and the DIVE, LLaMA-MoE v2 and Mixture-of-Depths pages (src/ui/pipeline/). The
// page follows the URL hash (#kernels, #model, #data, …); the run spec lives in the URL's query
// (pipeline/spec-url.tsx).
import { useEffect } from 'react';
import { STAGE_IDS, useStore, type CheckState, type GpuState, type Stage } from '../state/store.ts';
// Types only: the engine's code stays in the worker bundle.
import type { CheckReport, GpuReport, LimitKey } from '../worker/api.ts';
import { fmtBytes, fmtDuration, fmtEta } from './format.ts';
import { ModelStage } from './model/ModelStage.tsx';
import { DataStage } from './pipeline/DataStage.tsx';
import { ConstructStage } from './pipeline/ConstructStage.tsx';
import { DistillStage } from './pipeline/DistillStage.tsx';
import { RouteStage } from './pipeline/RouteStage.tsx';
import { EvaluateStage } from './pipeline/EvaluateStage.tsx';
import { ExportStage } from './pipeline/ExportStage.tsx';
import { TrainStage } from './pipeline/TrainStage.tsx';
import { DiveStage } from './pipeline/DiveStage.tsx';
import { V2Stage } from './pipeline/V2Stage.tsx';
import { ModStage } from './pipeline/ModStage.tsx';
import { SpecNotice, useSpecUrl } from './pipeline/spec-url.tsx';
import { Sidebar } from './Sidebar.tsx';
import { useTicker } from './hooks.ts';

export function App() {
  const loadGpu = useStore((s) => s.loadGpu);
  const stage = useStore((s) => s.stage);
  useEffect(() => {
    void loadGpu();
  }, [loadGpu]);
  useHashStage();
  useSpecUrl();

  return (
    <div className="shell">
      <Header />
      <div className="body">
        <Sidebar stage={stage} />
        <main className="main" data-stage={stage}>
          {stage !== 'kernels' && <GpuNotice />}
          <SpecNotice />
          <Page stage={stage} />
        </main>
      </div>
    </div>
  );
}

const PAGES: Record<Stage, () => React.JSX.Element> = {
  kernels: KernelsPage,
  model: ModelStage,
  data: DataStage,
  construct: ConstructStage,
  distill: DistillStage,
  route: RouteStage,
  evaluate: EvaluateStage,
  export: ExportStage,
  train: TrainStage,
  dive: DiveStage,
  v2: V2Stage,
  mod: ModStage,
};

function Page({ stage }: { stage: Stage }) {
  const P = PAGES[stage];
  return <P />;
}

/** Keeps the store's stage in step with location.hash ('#model'); anything else shows Kernels. */
function useHashStage(): void {
  const setStage = useStore((s) => s.setStage);
  useEffect(() => {
    const sync = () => {
      const id = window.location.hash.slice(1) as Stage;
      setStage(STAGE_IDS.includes(id) ? id : 'kernels');
    };
    sync();
    window.addEventListener('hashchange', sync);
    return () => window.removeEventListener('hashchange', sync);
  }, [setStage]);
}

/** On the pipeline pages: why nothing can run when the browser has no WebGPU, and what would work. */
function GpuNotice() {
  const gpu = useStore((s) => s.gpu);
  const loadGpu = useStore((s) => s.loadGpu);
  if (gpu.status !== 'unavailable' && gpu.status !== 'error') return null;
  return (
    <div className="callout callout-bad" role="alert">
      <div className="callout-title">{gpu.status === 'unavailable' ? 'This browser has no WebGPU, so no stage can run' : 'The engine could not start'}</div>
      <p>{gpu.message}</p>
      <button className="btn btn-secondary btn-sm" onClick={() => void loadGpu()}>
        Try again
      </button>
    </div>
  );
}

function KernelsPage() {
  return (
    <>
      <div className="page-head">
        <div className="crumbs">Setup <span aria-hidden="true">/</span> Kernels</div>
        <h1>Kernels</h1>
        <p className="lead">
          Every WebGPU kernel is run on seeded random inputs and compared with a float64 CPU reference. A case passes
          when its relative L2 error is within the bound stated for its op family.
        </p>
      </div>
      <GpuPanel />
      <KernelPanel />
    </>
  );
}

// ---------------------------------------------------------------- header

function Header() {
  const gpu = useStore((s) => s.gpu);
  return (
    <header className="header">
      <div className="brand">
        <Logo />
        <div>
          <div className="brand-name">MoEfy Workbench</div>
          <div className="brand-tagline">Turn dense LLaMA-family models into Mixture-of-Experts models, in the browser on WebGPU.</div>
        </div>
      </div>
      <GpuBadge gpu={gpu} />
    </header>
  );
}

function Logo() {
  return (
    <svg className="logo" viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="#1e3a8a" />
      <rect x="7" y="7" width="8" height="8" rx="2" fill="#fff" />
      <rect x="17" y="7" width="8" height="8" rx="2" fill="#93c5fd" />
      <rect x="7" y="17" width="8" height="8" rx="2" fill="#93c5fd" />
      <rect x="17" y="17" width="8" height="8" rx="2" fill="#fff" />
    </svg>
  );
}

function GpuBadge({ gpu }: { gpu: GpuState }) {
  if (gpu.status === 'loading') return <span className="badge badge-muted">Connecting to WebGPU…</span>;
  if (gpu.status !== 'ready') return <span className="badge badge-bad">WebGPU unavailable</span>;
  const i = gpu.info;
  return (
    <span className={`badge ${i.software ? 'badge-warn' : 'badge-good'}`} title={adapterName(i)}>
      <span className="dot" />
      WebGPU · {i.architecture || i.vendor}
      {i.software ? ' (software)' : ''}
    </span>
  );
}

// ---------------------------------------------------------------- GPU panel

const LIMIT_LABELS: Record<LimitKey, [string, 'bytes' | 'count']> = {
  maxBufferSize: ['Max buffer', 'bytes'],
  maxStorageBufferBindingSize: ['Max storage binding', 'bytes'],
  maxComputeWorkgroupStorageSize: ['Workgroup storage', 'bytes'],
  maxComputeInvocationsPerWorkgroup: ['Invocations / workgroup', 'count'],
  maxComputeWorkgroupSizeX: ['Workgroup size X', 'count'],
  maxComputeWorkgroupsPerDimension: ['Workgroups / dimension', 'count'],
  maxStorageBuffersPerShaderStage: ['Storage buffers / stage', 'count'],
};

function GpuPanel() {
  const gpu = useStore((s) => s.gpu);
  const loadGpu = useStore((s) => s.loadGpu);
  return (
    <section className="panel" aria-labelledby="gpu-title" data-gpu-status={gpu.status}>
      <div className="panel-head">
        <div>
          <h2 id="gpu-title">GPU</h2>
          <p className="panel-sub">The WebGPU adapter the engine worker runs on.</p>
        </div>
        {gpu.status === 'ready' && (
          <span className={`pill ${gpu.info.software ? 'pill-warn' : 'pill-good'}`}>{gpu.info.software ? 'Software adapter' : 'Hardware adapter'}</span>
        )}
      </div>
      {gpu.status === 'loading' && <div className="panel-body muted">Requesting an adapter…</div>}
      {(gpu.status === 'unavailable' || gpu.status === 'error') && (
        <div className="panel-body">
          <div className="callout callout-bad" role="alert">
            <div className="callout-title">{gpu.status === 'unavailable' ? 'WebGPU is not available in this browser' : 'Could not start the engine'}</div>
            <p>{gpu.message}</p>
            <button className="btn btn-secondary" onClick={() => void loadGpu()}>
              Try again
            </button>
          </div>
        </div>
      )}
      {gpu.status === 'ready' && <GpuDetails info={gpu.info} />}
    </section>
  );
}

function GpuDetails({ info }: { info: GpuReport }) {
  const features: [string, boolean, string][] = [
    ['shader-f16', info.features.f16, 'f16 arithmetic in shaders'],
    ['subgroups', info.features.subgroups, 'subgroup reductions'],
    ['timestamp-query', info.features.timestamps, 'GPU timings for benchmarks'],
  ];
  return (
    <div className="panel-body gpu-grid">
      <div>
        <dl className="kv">
          <dt>Vendor</dt>
          <dd>{info.vendor || '—'}</dd>
          <dt>Architecture</dt>
          <dd>{info.architecture || '—'}</dd>
          <dt>Description</dt>
          <dd>{info.description || '—'}</dd>
          <dt>Features</dt>
          <dd>
            <ul className="chips">
              {features.map(([name, on, what]) => (
                <li key={name} className={`chip ${on ? 'chip-on' : 'chip-off'}`} title={`${what}: ${on ? 'available' : 'not available'}`}>
                  <span aria-hidden="true">{on ? '✓' : '–'}</span> {name}
                </li>
              ))}
            </ul>
          </dd>
        </dl>
        {info.software && (
          <div className="callout callout-warn">
            This is a CPU implementation of WebGPU. The checks hold to the same bounds, but kernels run roughly a thousand
            times slower than on a GPU.
          </div>
        )}
      </div>
      <table className="limits">
        <caption>Key limits</caption>
        <tbody>
          {(Object.keys(LIMIT_LABELS) as LimitKey[]).map((k) => (
            <tr key={k}>
              <th scope="row" title={k}>
                {LIMIT_LABELS[k][0]}
              </th>
              <td>{LIMIT_LABELS[k][1] === 'bytes' ? fmtBytes(info.limits[k]) : info.limits[k].toLocaleString('en-US')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// ---------------------------------------------------------------- kernel check panel

function KernelPanel() {
  const check = useStore((s) => s.check);
  const gpuReady = useStore((s) => s.gpu.status === 'ready');
  // The model stage shares the engine's GPU device: one job on it at a time.
  const modelBusy = useStore((s) => s.model.status === 'loading' || s.gen.status === 'running' || s.onnx.status === 'running');
  const { setFull, runChecks, cancelChecks } = useStore.getState();
  const running = check.status === 'running';
  const n = check.counts ? (check.full ? check.counts.full : check.counts.smoke) : null;

  return (
    <section className="panel" aria-labelledby="check-title" data-check-status={check.status}>
      <div className="panel-head">
        <div>
          <h2 id="check-title">Kernel check</h2>
          <p className="panel-sub">
            {check.counts
              ? `Smoke set: ${check.counts.smoke} cases · full set: ${check.counts.full} cases · seed ${check.seed}`
              : `Seed ${check.seed}`}
          </p>
        </div>
        <div className="controls">
          <label className={`switch ${running ? 'disabled' : ''}`}>
            <input type="checkbox" role="switch" checked={check.full} disabled={running} onChange={(e) => setFull(e.target.checked)} />
            <span className="track" aria-hidden="true" />
            Full set
          </label>
          {running ? (
            <button className="btn btn-secondary" onClick={cancelChecks}>
              Cancel
            </button>
          ) : null}
          <button
            className="btn btn-primary"
            onClick={() => void runChecks()}
            disabled={running || !gpuReady || modelBusy}
            title={modelBusy ? 'The Model stage is using the GPU' : undefined}
          >
            {running ? <span className="spinner" aria-hidden="true" /> : null}
            Run kernel checks
          </button>
        </div>
      </div>
      <div className="panel-body">
        {check.status === 'idle' ? (
          <div className="empty">
            <div className="empty-title">No results yet</div>
            <p>
              {gpuReady
                ? `Run the ${check.full ? 'full set' : 'smoke set'}${n !== null ? ` (${n} cases)` : ''} to check the kernels on this adapter.`
                : 'Kernel checks need a WebGPU adapter.'}
            </p>
          </div>
        ) : (
          <>
            <Progress check={check} />
            {check.error && (
              <div className="callout callout-bad" role="alert">
                <div className="callout-title">The run stopped with an error</div>
                <p>{check.error}</p>
              </div>
            )}
            <Results check={check} />
          </>
        )}
      </div>
    </section>
  );
}

function Progress({ check }: { check: CheckState }) {
  const running = check.status === 'running';
  const now = useTicker(running);
  const done = check.reports.length;
  const total = check.plan.length;
  const end = running ? Math.max(now, performance.now()) : (check.finishedAt ?? now);
  const elapsed = check.startedAt === null ? 0 : end - check.startedAt;
  const passed = check.reports.filter((r) => r.ok).length;
  const failed = done - passed;
  const pct = total ? (100 * done) / total : 0;
  let eta = '';
  if (running) eta = done === 0 ? 'estimating time left…' : `about ${fmtEta((elapsed / done) * (total - done))} left`;

  return (
    <div className="progress-wrap">
      <div className="progress-line">
        <span className="progress-count">
          {done} / {total || '…'} cases
        </span>
        <span className="muted">
          {fmtDuration(elapsed)} elapsed{eta ? ` · ${eta}` : ''}
        </span>
      </div>
      <div
        className={`progress ${failed ? 'has-fail' : ''} ${running ? 'is-running' : ''}`}
        role="progressbar"
        aria-label="Kernel check progress"
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={done}
      >
        <div className="progress-fill" style={{ width: `${pct}%` }} />
      </div>
      {(done > 0 || check.status !== 'running') && (
        <div className={`summary ${failed ? 'summary-bad' : 'summary-good'}`}>
          <span data-testid="check-summary">
            {passed} passed, {failed} failed
          </span>
          <span className="summary-note">
            {check.status === 'running' && 'running…'}
            {check.status === 'done' && `${failed ? 'Some kernels are out of bounds' : 'All kernels within bounds'} · ${fmtDuration(elapsed)}`}
            {check.status === 'cancelled' && `Cancelled after ${done} of ${total} cases`}
            {check.status === 'error' && `Stopped after ${done} of ${total} cases`}
          </span>
        </div>
      )}
    </div>
  );
}

function Results({ check }: { check: CheckState }) {
  if (!check.plan.length) return null;
  return (
    <div className="table-wrap">
      <table className="results">
        <thead>
          <tr>
            <th>Family</th>
            <th>Case</th>
            <th className="num">Rel. error</th>
            <th className="num">Bound</th>
            <th>Result</th>
            <th className="num">ms</th>
          </tr>
        </thead>
        <tbody>
          {check.plan.map((c, i) => {
            const r: CheckReport | undefined = check.reports[i];
            const state = r ? (r.ok ? 'pass' : 'fail') : check.status === 'running' && i === check.reports.length ? 'running' : check.status === 'running' ? 'queued' : 'not-run';
            return (
              <tr key={i} className={`row-${state}`} data-result={state}>
                <td className="family">{c.family}</td>
                <td className="case">
                  <span className="case-name">{c.name}</span>
                  {r?.error && <span className="case-error">{r.error}</span>}
                </td>
                <td className="num mono">{r ? fmtErr(r.err) : ''}</td>
                <td className="num mono muted">≤ {c.tol.toExponential(0)}</td>
                <td>
                  <ResultTag state={state} />
                </td>
                <td className="num mono">{r ? fmtMs(r.ms) : ''}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function ResultTag({ state }: { state: string }) {
  switch (state) {
    case 'pass':
      return <span className="tag tag-pass">Pass</span>;
    case 'fail':
      return <span className="tag tag-fail">Fail</span>;
    case 'running':
      return (
        <span className="tag tag-running">
          <span className="spinner spinner-sm" aria-hidden="true" /> Running
        </span>
      );
    case 'queued':
      return <span className="tag tag-muted">Queued</span>;
    default:
      return <span className="tag tag-muted">Not run</span>;
  }
}

// ---------------------------------------------------------------- formatting

function adapterName(i: GpuReport): string {
  return [i.vendor, i.architecture, i.description].filter(Boolean).join(' · ');
}

function fmtErr(e: number): string {
  if (!Number.isFinite(e)) return Number.isNaN(e) ? 'NaN' : '∞';
  return e === 0 ? '0' : e.toExponential(2);
}

function fmtMs(ms: number): string {
  return ms < 10 ? ms.toFixed(1) : Math.round(ms).toLocaleString('en-US');
}

