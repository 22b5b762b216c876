// UI state of the LaDiMo pipeline (Data → Construct → Distill → Route → Evaluate → Export), of
// whole-model training (Data → Train, method 'train'), DIVE (Data → DIVE), LLaMA-MoE v2 (Data → LLaMA-MoE v2) and
// Mixture-of-Depths (Data → MoD): the run spec (the same document as `moefy run` and
// the URL), the long task running in the worker with its progress, and the results. One long task at a
// time; each stage's results replace those after it when re-run, since they depend on it. The spec is mirrored into the URL as it changes (url.ts), never the results.
import * as Comlink from 'comlink';
import { create } from 'zustand';
import { defaultSpec, type RunSpec, type SpecKey } from './spec.ts';
import { runFileText } from './run-file.ts';
import type { FileSource } from './results-file.ts';
import { getEngine, onEngineStopped } from './engine.ts';
import type {
  ActivatedParams,
  DataSource,
  DataSummary,
  DistillUpdate,
  DiveMetrics,
  ModMetrics,
  PiecesResume,
  V2Metrics,
  EvalPoint,
  LayerPolicy,
  LossPoint,
  ResumeInfo,
  RatePoint,
  RunResults,
  StepPoint,
  StorageReport,
  TaskProgress,
  TaskStage,
  TokenRouting,
  TrainResults,
  TrainResume,
  TrainUpdate,
} from '../worker/pipeline-types.ts';

export type TaskStatus = 'idle' | 'running' | 'done' | 'error' | 'cancelled';

export interface TaskState {
  stage: TaskStage | null;
  status: TaskStatus;
  progress: TaskProgress | null;
  startedAt: number | null;
  error: { name: string; message: string } | null;
}

export interface DataState {
  status: 'empty' | 'loading' | 'ready' | 'error';
  summary: DataSummary | null;
  error: string | null;
}

export interface RoutingDemo {
  text: string;
  result: TokenRouting | null;
  params: ActivatedParams | null;
  /** policies switched by hand, per layer, over Table 1's */
  overrides: Record<number, LayerPolicy>;
  busy: boolean;
  error: string | null;
}

/** A method's results on show: from a run in this tab ('run') or a file of `moefy run`'s metrics (its name). */
export interface ResultsView<M> {
  metrics: M;
  source: 'run' | FileSource;
}

/** A training run's points as they stream in: one step per reading of the losses, the held-out points, tokens/s. */
export interface TrainLive {
  curve: StepPoint[];
  evals: EvalPoint[];
  rates: RatePoint[];
}

interface PipelineStore {
  spec: RunSpec;
  /** why the URL's spec was not used (malformed, future version), shown until dismissed */
  specNotice: string | null;
  data: DataState;
  task: TaskState;
  results: RunResults;
  /** loss points per layer as they stream in during distillation */
  live: Record<number, LossPoint[]>;
  resume: ResumeInfo | null;
  /** method 'train': the last run's results (not part of RunResults, which the run file holds), its live points, its stored snapshot */
  train: TrainResults | null;
  trainLive: TrainLive;
  trainResume: TrainResume | null;
  /** methods 'dive', 'llama-moe-v2' and 'mod': results shown (a run in this tab, or a `moefy run` metrics file opened) */
  dive: ResultsView<DiveMetrics> | null;
  v2: ResultsView<V2Metrics> | null;
  mod: ResultsView<ModMetrics> | null;
  /** what is stored of the spec's run (method 'dive', 'llama-moe-v2' or 'mod') */
  piecesResume: PiecesResume | null;
  storage: StorageReport | null;
  demo: RoutingDemo;
  setField<K extends SpecKey>(key: K, value: RunSpec[K]): void;
  setSpec(spec: RunSpec, notice?: string | null): void;
  dismissNotice(): void;
  setData(source: DataSource): Promise<void>;
  run(stage: TaskStage): Promise<void>;
  cancel(): void;
  refreshResume(): Promise<void>;
  refreshStorage(): Promise<void>;
  deleteStored(key: string): Promise<void>;
  setDemoText(text: string): void;
  routeText(): Promise<void>;
  setLayerPolicy(layer: number, policy: LayerPolicy): Promise<void>;
  /** spec + results as one JSON document (run-file.ts) */
  runFile(): string;
  /** shows a metrics document of `moefy run` (a dive, llama-moe-v2 or mod spec) from the file `source` */
  showDive(metrics: DiveMetrics, source: FileSource): void;
  showV2(metrics: V2Metrics, source: FileSource): void;
  showMod(metrics: ModMetrics, source: FileSource): void;
  loadRunFile(spec: RunSpec, results: RunResults): void;
  /** the Qwen2-MoE folder's files, for the page to save */
  exportModel(): Promise<{ name: string; bytes: Uint8Array }[] | null>;
}

export const EMPTY_RESULTS: RunResults = { capture: null, distill: [], routing: null, evaluation: null, sweep: null };
const NO_TRAIN_POINTS: TrainLive = { curve: [], evals: [], rates: [] };
const IDLE_TASK: TaskState = { stage: null, status: 'idle', progress: null, startedAt: null, error: null };

/** What each stage's results invalidate when it runs again (everything computed from them). */
const CLEARS: Record<TaskStage, (keyof RunResults)[]> = {
  capture: ['capture', 'distill', 'routing', 'evaluation', 'sweep'],
  distill: ['distill', 'routing', 'evaluation', 'sweep'],
  profile: ['routing', 'evaluation', 'sweep'],
  evaluate: ['evaluation'],
  sweep: ['sweep'],
  export: [],
  train: [],
  dive: [],
  llamaMoeV2: [],
  mod: [],
};

/** The methods whose runs keep finished pieces (src/worker/pieces.ts). */
const PIECE_METHODS: readonly RunSpec['method'][] = ['dive', 'llama-moe-v2', 'mod'];

/** Stored distillation work this page has not loaded: a finished layer or one stopped part-way. */
export function interrupted(s: Pick<PipelineStore, 'resume' | 'results'>): boolean {
  return !!s.resume && (s.resume.partial !== null || s.resume.layersDone.length > 0) && s.results.distill.length === 0;
}

let taskId = 0;
/** How often streamed loss points reach the chart. */
const LIVE_CHART_MS = 1000;

function message(e: unknown): string {
  return String((e as Error)?.message ?? e);
}

export const usePipeline = create<PipelineStore>()((set, get) => {
  const patchTask = (p: Partial<TaskState>) => set((s) => ({ task: { ...s.task, ...p } }));
  const patchDemo = (p: Partial<RoutingDemo>) => set((s) => ({ demo: { ...s.demo, ...p } }));
  const clear = (stage: TaskStage) =>
    set((s) => ({ results: { ...s.results, ...Object.fromEntries(CLEARS[stage].map((k) => [k, EMPTY_RESULTS[k]])) } }));

  /** Runs one long stage in the worker with progress; its result goes through `done`. */
  async function task<T>(stage: TaskStage, call: (onProgress: (p: TaskProgress) => void) => Promise<T>, done: (r: T) => void): Promise<void> {
    if (get().task.status === 'running') return;
    const id = ++taskId;
    set({ task: { stage, status: 'running', progress: null, startedAt: performance.now(), error: null } });
    const onProgress = Comlink.proxy((p: TaskProgress) => {
      if (id === taskId) patchTask({ progress: p });
    });
    try {
      const r = await call(onProgress);
      if (id !== taskId) return;
      done(r);
      patchTask({ status: 'done' });
    } catch (e) {
      if (id !== taskId) return;
      const cancelled = (e as Error)?.name === 'AbortError';
      patchTask({ status: cancelled ? 'cancelled' : 'error', error: cancelled ? null : { name: String((e as Error)?.name ?? 'Error'), message: message(e) } });
    } finally {
      if (id === taskId) void get().refreshResume();
    }
  }

  return {
    spec: defaultSpec(),
    specNotice: null,
    data: { status: 'empty', summary: null, error: null },
    task: IDLE_TASK,
    results: EMPTY_RESULTS,
    live: {},
    resume: null,
    train: null,
    trainLive: NO_TRAIN_POINTS,
    trainResume: null,
    dive: null,
    v2: null,
    mod: null,
    piecesResume: null,
    storage: null,
    demo: { text: 'Once upon a time, there was a little girl who loved to read books.', result: null, params: null, overrides: {}, busy: false, error: null },

    setField(key, value) {
      set((s) => ({ spec: { ...s.spec, [key]: value } }));
    },

    setSpec(spec, notice = null) {
      set({ spec, specNotice: notice });
    },

    dismissNotice() {
      set({ specNotice: null });
    },

    async setData(source) {
      set({ data: { status: 'loading', summary: null, error: null } });
      try {
        const summary = await getEngine().setData(source);
        set((s) => ({
          data: { status: 'ready', summary, error: null },
          spec: { ...s.spec, data: source.kind === 'builtin' ? 'builtin:brown' : summary.label },
          train: null,
          trainLive: NO_TRAIN_POINTS,
          dive: s.dive?.source === 'run' ? null : s.dive,
          v2: s.v2?.source === 'run' ? null : s.v2,
          mod: s.mod?.source === 'run' ? null : s.mod,
        }));
        clear('capture');
      } catch (e) {
        set({ data: { status: 'error', summary: null, error: message(e) } });
      }
    },

    async run(stage) {
      const api = getEngine();
      const spec = get().spec;
      switch (stage) {
        case 'capture':
          return task(stage, (p) => api.capture(spec, p), (capture) => {
            clear('capture');
            set((s) => ({ results: { ...s.results, capture } }));
          });
        case 'distill': {
          set({ live: {} });
          // Points are drawn in batches: a chart re-render per point would keep the main thread busy.
          let batch: DistillUpdate[] = [];
          const flush = () => {
            const pts = batch;
            batch = [];
            if (pts.length) set((s) => {
              const live = { ...s.live };
              for (const u of pts) live[u.layer] = [...(live[u.layer] ?? []), u.point];
              return { live };
            });
          };
          const timer = setInterval(flush, LIVE_CHART_MS);
          const onUpdate = Comlink.proxy((u: DistillUpdate) => void batch.push(u));
          return task(stage, (p) => api.distill(spec, p, onUpdate), (distill) => {
            clear('distill');
            set((s) => ({ results: { ...s.results, distill } }));
          }).finally(() => {
            clearInterval(timer);
            flush();
          });
        }
        case 'profile':
          return task(stage, (p) => api.profile(spec, p), (routing) => {
            clear('profile');
            set((s) => ({ results: { ...s.results, routing }, demo: { ...s.demo, overrides: {}, result: null, params: null } }));
          });
        case 'evaluate':
          return task(stage, (p) => api.evaluate(spec, p), (evaluation) => set((s) => ({ results: { ...s.results, evaluation } })));
        case 'sweep':
          return task(stage, (p) => api.sweep(spec, p), (sweep) => set((s) => ({ results: { ...s.results, sweep } })));
        case 'export':
          throw new Error('export runs through exportModel(), which returns the files');
        case 'train': {
          set({ trainLive: NO_TRAIN_POINTS });
          // batched as the distillation's points are
          let batch: TrainUpdate[] = [];
          const flush = () => {
            const ups = batch;
            batch = [];
            if (ups.length) set((s) => ({
              trainLive: {
                curve: [...s.trainLive.curve, ...ups.flatMap((u) => u.points)],
                evals: [...s.trainLive.evals, ...ups.flatMap((u) => u.evals)],
                rates: [...s.trainLive.rates, ...ups.flatMap((u) => (u.rate ? [u.rate] : []))],
              },
            }));
          };
          const timer = setInterval(flush, LIVE_CHART_MS);
          const onUpdate = Comlink.proxy((u: TrainUpdate) => void batch.push(u));
          return task(stage, (p) => api.train(spec, p, onUpdate), (train) => set({ train })).finally(() => {
            clearInterval(timer);
            flush();
          });
        }
        case 'dive':
          return task(stage, (p) => api.dive(spec, p), (metrics) => set({ dive: { metrics, source: 'run' } }));
        case 'llamaMoeV2':
          return task(stage, (p) => api.llamaMoeV2(spec, p), (metrics) => set({ v2: { metrics, source: 'run' } }));
        case 'mod':
          return task(stage, (p) => api.mod(spec, p), (metrics) => set({ mod: { metrics, source: 'run' } }));
      }
    },

    cancel() {
      if (get().task.status === 'running') void getEngine().cancel();
    },

    async refreshResume() {
      const spec = get().spec;
      try {
        if (spec.method === 'train') set({ trainResume: await getEngine().trainResumeInfo(spec) });
        else if (PIECE_METHODS.includes(spec.method)) set({ piecesResume: await getEngine().piecesResumeInfo(spec) });
        else set({ resume: await getEngine().resumeInfo(spec) });
      } catch {
        set(spec.method === 'train' ? { trainResume: null } : PIECE_METHODS.includes(spec.method) ? { piecesResume: null } : { resume: null });
      }
    },

    async refreshStorage() {
      try {
        set({ storage: await getEngine().storage() });
      } catch {
        set({ storage: null });
      }
    },

    async deleteStored(key) {
      await getEngine().deleteStored(key);
      await Promise.all([get().refreshStorage(), get().refreshResume()]);
    },

    setDemoText(text) {
      patchDemo({ text });
    },

    async routeText() {
      const { demo } = get();
      if (!demo.text.trim()) return;
      patchDemo({ busy: true, error: null });
      try {
        patchDemo({ result: await getEngine().routeText(demo.text), busy: false });
      } catch (e) {
        patchDemo({ busy: false, error: message(e) });
      }
    },

    async setLayerPolicy(layer, policy) {
      patchDemo({ busy: true, error: null, overrides: { ...get().demo.overrides, [layer]: policy } });
      try {
        const params = await getEngine().setLayerPolicy(layer, policy);
        patchDemo({ params });
        if (get().demo.result) await get().routeText();
        else patchDemo({ busy: false });
      } catch (e) {
        patchDemo({ busy: false, error: message(e) });
      }
    },

    runFile() {
      const { spec, results } = get();
      return runFileText(spec, results);
    },

    showDive(metrics, source) {
      set({ dive: { metrics, source } });
    },

    showV2(metrics, source) {
      set({ v2: { metrics, source } });
    },

    showMod(metrics, source) {
      set({ mod: { metrics, source } });
    },

    loadRunFile(spec, results) {
      set({ spec, results, live: {}, specNotice: null });
    },

    async exportModel() {
      let files: { name: string; bytes: Uint8Array }[] | null = null;
      const spec = get().spec;
      await task('export', (p) => getEngine().exportModel(spec, p), (r) => (files = r));
      return files;
    },
  };
});

onEngineStopped(() => {
  const { task } = usePipeline.getState();
  taskId++;
  if (task.status === 'running') usePipeline.setState({ task: { ...task, status: 'error', error: { name: 'EngineRestarted', message: 'The engine restarted during this stage.' } } });
});
