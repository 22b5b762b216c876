// UI state for the workbench shell, and the connection to the engine worker.
// The engine runs in a Web Worker behind the EngineApi interface (src/worker/api.ts, reached through
// engine.ts); the store only holds what the page shows. A kernel check is cancelled by terminating the
// worker; the next call starts a new one.
import * as Comlink from 'comlink';
import { create } from 'zustand';
import { engineStarted, getEngine, onEngineFailed, onEngineStopped, stopEngine } from './engine.ts';
import type {
  CacheInfo,
  CheckCaseInfo,
  CheckReport,
  GenerateOutcome,
  GenerateUpdate,
  GpuReport,
  LoadProgress,
  ModelSource,
  ModelSummary,
} from '../worker/api.ts';
import { DEMO_NAME, DEMO_PATH } from '../worker/demo-model.ts';

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

/** The page the shell shows: the Kernels setup page, or a pipeline stage. */
/** The pages: Kernels (setup), then the pipeline stages in order. */
export const STAGE_IDS = ['kernels', 'model', 'data', 'construct', 'distill', 'route', 'evaluate', 'export', 'train', 'dive', 'v2', 'mod'] as const;
export type Stage = (typeof STAGE_IDS)[number];

export type ModelStatus = 'empty' | 'loading' | 'ready' | 'error' | 'cancelled';

export interface ModelState {
  status: ModelStatus;
  /** What is being (or was last) loaded, in words: 'stories260K.bin + tok512.bin', a repo id, a URL's file. */
  sourceLabel: string;
  sourceKind: ModelSource['kind'] | null;
  progress: LoadProgress | null;
  /** The loaded model; kept while a generation or export runs. */
  summary: ModelSummary | null;
  /** The error as the engine threw it (name: CheckpointError, GpuLimitError, HubError, DownloadError, …). */
  error: { name: string; message: string } | null;
  /** A note for the page when the engine restarted and the model went with it. */
  notice: string | null;
  startedAt: number | null;
  /** The form fields. */
  url: string;
  repo: string;
}

export interface GenState {
  status: 'idle' | 'running' | 'done' | 'error';
  prompt: string;
  maxTokens: number;
  mode: 'greedy' | 'sample';
  temperature: number;
  topP: number;
  seed: number;
  /** Prompt + continuation as decoded so far; `promptText` is the prompt's part. */
  text: string;
  promptText: string;
  tokens: number;
  stop: GenerateOutcome['stop'] | null;
  decodeTokensPerS: number | null;
  startedAt: number | null;
  error: string | null;
}

export interface ExportState {
  status: 'idle' | 'running' | 'done' | 'error';
  bytes: number | null;
  error: string | null;
}

export type GenSettings = Pick<GenState, 'prompt' | 'maxTokens' | 'mode' | 'temperature' | 'topP' | 'seed'>;

interface Store {
  gpu: GpuState;
  check: CheckState;
  stage: Stage;
  model: ModelState;
  gen: GenState;
  onnx: ExportState;
  cache: CacheInfo | null;
  loadGpu(): Promise<void>;
  setFull(full: boolean): void;
  runChecks(): Promise<void>;
  cancelChecks(): void;
  engineFailed(message: string): void;
  engineStopped(): void;
  setStage(stage: Stage): void;
  setModelField(patch: Partial<Pick<ModelState, 'url' | 'repo'>>): void;
  loadModel(source: ModelSource, label: string): Promise<void>;
  /** Loads the demo model shipped with the workbench (public/demo-model/). */
  loadDemoModel(): Promise<void>;
  cancelLoad(): void;
  unloadModel(): Promise<void>;
  dismissModelError(): void;
  setGen(patch: Partial<GenSettings>): void;
  generate(): Promise<void>;
  stopGenerate(): void;
  /** The ONNX bytes, for the page to save; null on error (onnx.error says why). */
  exportOnnx(): Promise<ArrayBuffer | null>;
  refreshCache(): Promise<void>;
  clearCache(): Promise<void>;
}

const SEED = 1234;
let runId = 0;
let gpuLoad: Promise<void> | null = null;
let loadId = 0;
/** The demo model is loaded once per page, when the engine first reports its GPU and nothing else was loaded. */
let demoRequested = false;
/** A cancelled load that has not ended this long after cancelLoad() is stopped by restarting the engine. */
const CANCEL_GRACE_MS = 4000;

const EMPTY_MODEL: Omit<ModelState, 'url' | 'repo'> = {
  status: 'empty',
  sourceLabel: '',
  sourceKind: null,
  progress: null,
  summary: null,
  error: null,
  notice: null,
  startedAt: null,
};
const IDLE_GEN_OUTPUT = { text: '', promptText: '', tokens: 0, stop: null, decodeTokensPerS: null, startedAt: null, error: null } as const;

function message(e: unknown): string {
  return String((e as Error)?.message ?? e);
}

export const useStore = create<Store>()((set, get) => {
  const patchCheck = (patch: Partial<CheckState>) => set((s) => ({ check: { ...s.check, ...patch } }));
  const patchModel = (patch: Partial<ModelState>) => set((s) => ({ model: { ...s.model, ...patch } }));
  const patchGen = (patch: Partial<GenState>) => set((s) => ({ gen: { ...s.gen, ...patch } }));
  const patchOnnx = (patch: Partial<ExportState>) => set((s) => ({ onnx: { ...s.onnx, ...patch } }));
  const errorOf = (e: unknown) => ({ name: String((e as Error)?.name ?? 'Error'), message: message(e) });

  async function loadGpuOnce(): Promise<void> {
    set({ gpu: { status: 'loading' } });
    try {
      const api = getEngine();
      const info = await api.gpuInfo();
      set({ gpu: { status: 'ready', info } });
      if (!demoRequested && loadId === 0 && get().model.status === 'empty') {
        demoRequested = true;
        void get().loadDemoModel();
      }
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
    stage: 'kernels',
    model: { ...EMPTY_MODEL, url: '', repo: '' },
    gen: { status: 'idle', prompt: '', maxTokens: 64, mode: 'greedy', temperature: 0.8, topP: 0.9, seed: SEED, ...IDLE_GEN_OUTPUT },
    onnx: { status: 'idle', bytes: null, error: null },
    cache: null,

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
      const { gpu, check, model } = get();
      if (model.status === 'loading') {
        loadId++;
        patchModel({ status: 'error', progress: null, error: { name: 'Error', message: `Engine worker failed: ${msg}` } });
      }
      stopEngine();
      if (gpu.status === 'loading') set({ gpu: { status: 'error', message: `Engine worker failed: ${msg}` } });
      if (check.status === 'running') patchCheck({ status: 'error', error: `Engine worker failed: ${msg}`, finishedAt: performance.now() });
    },

    engineStopped() {
      // The worker (and the model in it) is gone: whatever the page showed about the model is stale.
      const { model, gen, onnx } = get();
      if (model.status === 'ready') {
        patchModel({ ...EMPTY_MODEL, notice: `The engine restarted, so ${model.summary?.name ?? 'the model'} was unloaded. Load it again to continue.` });
      } else if (model.status === 'loading') {
        // the worker that was loading it is gone and will never answer
        loadId++;
        patchModel({ ...EMPTY_MODEL, notice: `The engine restarted, so loading ${model.sourceLabel} stopped. Load it again to continue.` });
      }
      if (gen.status === 'running') patchGen({ status: 'error', error: 'The engine restarted during the generation.' });
      if (onnx.status === 'running') patchOnnx({ status: 'error', error: 'The engine restarted during the export.' });
    },

    // ---------------------------------------------------------------- model stage

    setStage(stage) {
      if (get().stage !== stage) set({ stage });
    },

    setModelField(patch) {
      patchModel(patch);
    },

    async loadModel(source, label) {
      if (get().gen.status === 'running') getEngine().stopGenerate();
      const id = ++loadId;
      patchModel({ ...EMPTY_MODEL, status: 'loading', sourceLabel: label, sourceKind: source.kind, startedAt: performance.now() });
      set((s) => ({ gen: { ...s.gen, ...IDLE_GEN_OUTPUT, status: 'idle' }, onnx: { status: 'idle', bytes: null, error: null } }));
      try {
        const onProgress = (p: LoadProgress) => {
          if (id === loadId) patchModel({ progress: p });
        };
        const summary = await getEngine().loadModel(source, Comlink.proxy(onProgress));
        if (id !== loadId) return;
        patchModel({ status: 'ready', summary, progress: null });
      } catch (e) {
        if (id !== loadId) return;
        const err = errorOf(e);
        if (err.name === 'AbortError') patchModel({ status: 'cancelled', progress: null, error: err });
        else patchModel({ status: 'error', progress: null, error: err });
      } finally {
        if (source.kind !== 'files') void get().refreshCache();
      }
    },

    loadDemoModel() {
      return get().loadModel({ kind: 'demo', folderUrl: new URL(DEMO_PATH, document.baseURI).href }, DEMO_NAME);
    },

    cancelLoad() {
      if (get().model.status !== 'loading') return;
      const id = loadId;
      void getEngine().cancelLoad();
      // Downloads stop at once; an upload stops at its next tensor. If the engine does not answer, restart it.
      setTimeout(() => {
        if (id !== loadId || get().model.status !== 'loading') return;
        loadId++;
        stopEngine();
        patchModel({ status: 'cancelled', progress: null, error: { name: 'AbortError', message: 'loading was cancelled (the engine was restarted to stop it)' } });
      }, CANCEL_GRACE_MS);
    },

    async unloadModel() {
      const { model } = get();
      if (model.status === 'loading') get().cancelLoad();
      loadId++;
      patchModel({ ...EMPTY_MODEL });
      set((s) => ({ gen: { ...s.gen, ...IDLE_GEN_OUTPUT, status: 'idle' }, onnx: { status: 'idle', bytes: null, error: null } }));
      if (engineStarted()) await getEngine().unloadModel().catch(() => {});
    },

    dismissModelError() {
      const { model } = get();
      if (model.status === 'error' || model.status === 'cancelled') patchModel({ status: 'empty', error: null });
      if (model.notice) patchModel({ notice: null });
    },

    setGen(patch) {
      patchGen(patch);
    },

    async generate() {
      const { gen, model } = get();
      if (gen.status === 'running' || model.status !== 'ready') return;
      const lid = loadId;
      patchGen({ ...IDLE_GEN_OUTPUT, status: 'running', startedAt: performance.now() });
      const sample = gen.mode === 'sample';
      try {
        const onToken = (u: GenerateUpdate) => {
          if (lid === loadId && get().gen.status === 'running') patchGen({ text: u.text, promptText: u.promptText, tokens: u.tokens });
        };
        const r = await getEngine().generate(
          { prompt: gen.prompt, maxTokens: gen.maxTokens, temperature: sample ? gen.temperature : 0, topP: gen.topP, seed: gen.seed },
          Comlink.proxy(onToken),
        );
        if (lid !== loadId) return;
        patchGen({ status: 'done', text: r.text, promptText: r.promptText, tokens: r.tokens, stop: r.stop, decodeTokensPerS: r.decodeTokensPerS });
      } catch (e) {
        if (lid !== loadId) return;
        patchGen({ status: 'error', error: message(e) });
      }
    },

    stopGenerate() {
      if (get().gen.status === 'running' && engineStarted()) void getEngine().stopGenerate();
    },

    async exportOnnx() {
      if (get().model.status !== 'ready' || get().onnx.status === 'running') return null;
      const lid = loadId;
      patchOnnx({ status: 'running', bytes: null, error: null });
      try {
        const buf = await getEngine().exportOnnx();
        if (lid !== loadId) return null;
        patchOnnx({ status: 'done', bytes: buf.byteLength });
        return buf;
      } catch (e) {
        if (lid === loadId) patchOnnx({ status: 'error', error: message(e) });
        return null;
      }
    },

    async refreshCache() {
      try {
        set({ cache: await getEngine().cacheInfo() });
      } catch {
        set({ cache: null });
      }
    },

    async clearCache() {
      if (get().model.status === 'loading') return;
      await getEngine().clearCache().catch(() => {});
      await get().refreshCache();
    },
  };
});

onEngineStopped(() => useStore.getState().engineStopped());
onEngineFailed((m) => useStore.getState().engineFailed(m));
