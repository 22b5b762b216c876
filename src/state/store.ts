// UI state for the workbench shell, and the connection to the engine worker.
// The engine runs in a Web Worker behind the EngineApi interface (src/worker/api.ts); the store only
// holds what the page shows. A run is cancelled by terminating the worker; the next call starts a new one.
import * as Comlink from 'comlink';
import { create } from 'zustand';
import type { CheckCaseInfo, CheckReport, EngineApi, GpuReport } from '../worker/api.ts';

// ---------------------------------------------------------------- engine worker

let worker: Worker | null = null;
let engine: Comlink.Remote<EngineApi> | null = null;

function getEngine(): Comlink.Remote<EngineApi> {
  if (!engine) {
    const w = new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module', name: 'moefy-engine' });
    w.addEventListener('error', (e) => {
      if (worker === w) useStore.getState().engineFailed(e.message || 'the engine worker failed to start');
    });
    worker = w;
    engine = Comlink.wrap<EngineApi>(w);
  }
  return engine;
}

function stopEngine(): void {
  worker?.terminate();
  worker = null;
  engine = null;
}

// ---------------------------------------------------------------- state

export type GpuState =
  | { status: 'loading' }
  | { status: 'ready'; info: GpuReport }
  /** No WebGPU in this browser: the message says which browsers and flags work. */
  | { status: 'unavailable'; message: string }
  | { status: 'error'; message: string };

export type CheckStatus = 'idle' | 'running' | 'done' | 'cancelled' | 'error';

export interface CheckState {
  status: CheckStatus;
  /** Run every case instead of the smoke set. */
  full: boolean;
  seed: number;
  /** Case counts of the two sets, once the engine has listed them. */
  counts: { smoke: number; full: number } | null;
  /** The cases of the current (or last) run, in order. */
  plan: CheckCaseInfo[];
  /** Reports received so far, plan[i] ↔ reports[i]. */
  reports: CheckReport[];
  startedAt: number | null;
  finishedAt: number | null;
  error: string | null;
}

interface Store {
  gpu: GpuState;
  check: CheckState;
  loadGpu(): Promise<void>;
  setFull(full: boolean): void;
  runChecks(): Promise<void>;
  cancelChecks(): void;
  engineFailed(message: string): void;
}

const SEED = 1234;
let runId = 0;
let gpuLoad: Promise<void> | null = null;

function message(e: unknown): string {
  return String((e as Error)?.message ?? e);
}

export const useStore = create<Store>()((set, get) => {
  const patchCheck = (patch: Partial<CheckState>) => set((s) => ({ check: { ...s.check, ...patch } }));

  async function loadGpuOnce(): Promise<void> {
    set({ gpu: { status: 'loading' } });
    try {
      const api = getEngine();
      const info = await api.gpuInfo();
      set({ gpu: { status: 'ready', info } });
      const [smoke, full] = await Promise.all([api.listChecks({ smoke: true }), api.listChecks({})]);
      patchCheck({ counts: { smoke: smoke.length, full: full.length } });
    } catch (e) {
      // Comlink rebuilds thrown errors with their name, so the typed error survives the worker boundary.
      const unavailable = (e as Error)?.name === 'NoWebGpuError';
      set({ gpu: { status: unavailable ? 'unavailable' : 'error', message: message(e) } });
    }
  }

  return {
    gpu: { status: 'loading' },
    check: { status: 'idle', full: false, seed: SEED, counts: null, plan: [], reports: [], startedAt: null, finishedAt: null, error: null },

    loadGpu() {
      // One request at a time (React's StrictMode mounts twice in development).
      gpuLoad ??= loadGpuOnce().finally(() => {
        gpuLoad = null;
      });
      return gpuLoad;
    },

    setFull(full) {
      if (get().check.status !== 'running') patchCheck({ full });
    },

    async runChecks() {
      const { check } = get();
      if (check.status === 'running') return;
      const id = ++runId;
      const args = { smoke: !check.full, seed: check.seed };
      patchCheck({ status: 'running', plan: [], reports: [], startedAt: performance.now(), finishedAt: null, error: null });
      try {
        const api = getEngine();
        const plan = await api.listChecks(args);
        if (id !== runId) return;
        patchCheck({ plan });
        const onReport = (r: CheckReport) => {
          if (id === runId) set((s) => ({ check: { ...s.check, reports: [...s.check.reports, r] } }));
        };
        const result = await api.kernelsCheck(args, Comlink.proxy(onReport));
        if (id !== runId) return;
        patchCheck({ status: 'done', reports: result.reports, finishedAt: performance.now() });
      } catch (e) {
        if (id !== runId) return;
        patchCheck({ status: 'error', error: message(e), finishedAt: performance.now() });
      }
    },

    cancelChecks() {
      if (get().check.status !== 'running') return;
      runId++;
      stopEngine();
      patchCheck({ status: 'cancelled', finishedAt: performance.now() });
    },

    engineFailed(msg) {
      runId++;
      stopEngine();
      const { gpu, check } = get();
      if (gpu.status === 'loading') set({ gpu: { status: 'error', message: `Engine worker failed: ${msg}` } });
      if (check.status === 'running') patchCheck({ status: 'error', error: `Engine worker failed: ${msg}`, finishedAt: performance.now() });
    },
  };
});
