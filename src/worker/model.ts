// The engine's dense-model session behind the EngineApi (api.ts): open a checkpoint from the user's files,
// from URLs or from a Hugging Face repo, upload it to the GPU, generate from it, export it as ONNX, unload
// it. One model at a time; calls that touch it run one after another. No DOM: it runs in the Worker.
//
//   source ──(fileSource | download → BlobCache)──▶ ByteSource[] ──openCheckpoint──▶ Checkpoint
//          ──LlamaModel.load──▶ GPU ──generate / exportOnnx
import * as Comlink from 'comlink';
import type { Gpu } from '../gpu/device.ts';
import { Rng } from '../data/rng.ts';
import type { ModelConfig } from '../model/config.ts';
import { exportOnnx as buildOnnxBytes } from '../model/export.ts';
import { generate as generateTokens } from '../model/generate.ts';
import { LlamaModel } from '../model/llama.ts';
import { openCheckpoint } from '../model/load.ts';
import { baseName, fileSource, findFile, type ByteSource } from '../model/source.ts';
import { httpSource } from '../model/source-http.ts';
import { DEMO_FILES, DEMO_NAME } from './demo-model.ts';
import { defaultBlobCache, download, HubError, resolveHubFiles, urlFileName, type BlobCache, type DownloadProgress } from '../model/source-hub.ts';
import { numel, type Checkpoint, type DType } from '../model/weights.ts';
import type { Sampler } from '../model/sample.ts';

// ---------------------------------------------------------------- the protocol

/** Where a checkpoint comes from. `paths` (optional) are the files' paths inside a chosen or dropped folder. */
export type ModelSource =
  | { kind: 'files'; files: File[]; paths?: string[] }
  | { kind: 'url'; urls: string[] }
  /** The demo model shipped with the workbench (public/demo-model/), read from `folderUrl` without the download cache. */
  | { kind: 'demo'; folderUrl: string }
  | { kind: 'hub'; repo: string; revision?: string };

export type LoadPhase = 'resolve' | 'download' | 'open' | 'upload';

export interface LoadProgress {
  phase: LoadPhase;
  /** One line for the page: "Downloading model.safetensors (3 of 4)". */
  label: string;
  file?: string;
  fileIndex?: number;
  fileCount?: number;
  loadedBytes: number;
  totalBytes: number | null;
  bytesPerSecond: number | null;
  etaSeconds: number | null;
}

export interface ModelSummary {
  /** The folder, repo id or model file the checkpoint came from. */
  name: string;
  source: ModelSource['kind'];
  format: 'Hugging Face safetensors' | 'GGUF' | 'llama2.c';
  files: { name: string; size: number }[];
  arch: ModelConfig['arch'];
  config: ModelConfig;
  /** Parameters the forward holds (a tied lm_head counted once). */
  params: number;
  /** Dtypes the weights are stored in, most common first. */
  storedDtypes: DType[];
  /** GPU memory: weights (f32) and run state (activations + KV cache). */
  weightsBytes: number;
  runStateBytes: number;
  /** Tokens the KV cache holds: the model's context, capped at MAX_CONTEXT. */
  contextLength: number;
  tokenizer: { name: string; vocabSize: number; bosId: number; eosId: number };
  /** Where downloads were cached ('OPFS', 'Cache API', 'memory'); absent for local files. */
  cache?: string;
  loadSeconds: number;
}

export interface GenerateArgs {
  /** Empty: start from BOS alone. */
  prompt: string;
  maxTokens: number;
  /** 0 (or absent): greedy. */
  temperature?: number;
  topP?: number;
  seed?: number;
}

export interface GenerateUpdate {
  /** The prompt and the continuation so far, decoded together (so characters split across tokens show right). */
  text: string;
  /** decode(prompt ids): `text` starts with it when the tokenizer round-trips. */
  promptText: string;
  tokens: number;
}

export interface GenerateOutcome extends GenerateUpdate {
  ids: number[];
  promptTokens: number;
  /** Why it stopped: the EOS token, maxTokens, the KV cache, or stopGenerate(). */
  stop: 'eos' | 'max-tokens' | 'context' | 'stopped';
  prefillTokensPerS: number;
  decodeTokensPerS: number;
}

export interface CacheInfo {
  kind: string;
  /** `inUse`: a file of the loaded model (kept by clearCache, which would pull it from under the model). */
  entries: { key: string; size: number; inUse: boolean }[];
  bytes: number;
}

/** Long contexts would make the KV cache huge; the workbench's generations are short. */
export const MAX_CONTEXT = 2048;

// ---------------------------------------------------------------- the session

interface Loaded {
  summary: ModelSummary;
  ckpt: Checkpoint;
  model: LlamaModel;
  /** Kept for exportOnnx, which re-reads the checkpoint. */
  files: ByteSource[];
  /** The cache entries the files are read from. */
  cacheKeys: Set<string>;
}

/** The loaded model as the LaDiMo pipeline (pipeline.ts) uses it. */
export type LoadedSession = Pick<Loaded, 'summary' | 'ckpt' | 'model' | 'files'>;

export type ModelSession = ReturnType<typeof modelSession>;

export function modelSession(getGpu: () => Promise<Gpu>) {
  let loaded: Loaded | null = null;
  const unloadListeners = new Set<() => void>();
  let loadAbort: AbortController | null = null;
  let stopRequested = false;
  let cache: Promise<BlobCache> | null = null;
  const getCache = () => (cache ??= defaultBlobCache());

  // One call at a time touches the model (loading, generating, exporting, unloading).
  let queue: Promise<unknown> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  }

  function unload(): void {
    if (!loaded) return;
    const { model } = loaded;
    // what was built on the model (the pipeline's tensors) goes first
    for (const f of unloadListeners) f();
    loaded = null;
    model.release();
    model.gpu.trim();
  }

  async function load(source: ModelSource, onProgress: ((p: LoadProgress) => void) | undefined, abort: AbortController): Promise<ModelSummary> {
    unload();
    const signal = abort.signal;
    signal.throwIfAborted();
    const t0 = performance.now();
    const progress = throttled(onProgress);
    try {
      // ---- bytes: local files, or downloads into the cache
      let files: ByteSource[];
      let name: string;
      let cacheKind: string | undefined;
      const cacheKeys = new Set<string>();
      if (source.kind === 'files') {
        ({ files, name } = localFiles(source.files, source.paths));
      } else if (source.kind === 'demo') {
        // A few MB from this site: read by range requests like any URL, but never cached, so a rebuilt
        // demo model is never mixed with an older one's files.
        files = await Promise.all(DEMO_FILES.map((f) => httpSource(new URL(f, source.folderUrl).href, f)));
        name = DEMO_NAME;
      } else {
        const c = await getCache();
        cacheKind = c.kind;
        const plan = source.kind === 'url' ? urlPlan(source.urls) : await hubPlan(source.repo, source.revision, signal, progress);
        name = plan.name;
        for (const item of plan.items) cacheKeys.add(item.key);
        files = await downloadAll(plan.items, c, signal, progress);
      }

      // ---- parse headers and check every tensor against the config
      progress({ phase: 'open', label: `Reading ${files.length === 1 ? baseName(files[0].name) : `${files.length} files`}`, loadedBytes: 0, totalBytes: null, bytesPerSecond: null, etaSeconds: null }, true);
      const ckpt = await openCheckpoint(files);
      signal.throwIfAborted();

      // ---- upload: one tensor at a time, f32 on the GPU
      const gpu = await getGpu();
      const meter = rateMeter();
      // Throwing in onProgress stops the upload; LlamaModel.load releases what it had uploaded.
      const model = await LlamaModel.load(gpu, ckpt.weights, {
        seqLen: Math.min(ckpt.config.maxSeqLen, MAX_CONTEXT),
        onProgress: (done, total, tensor) => {
          signal.throwIfAborted();
          const { rate, eta } = meter(done, total);
          progress({ phase: 'upload', label: 'Uploading weights to the GPU', file: tensor, loadedBytes: done, totalBytes: total, bytesPerSecond: rate, etaSeconds: eta }, done === total);
        },
      });

      const w = ckpt.weights;
      const dtypeCount = new Map<DType, number>();
      let params = 0;
      for (const n of w.names()) {
        const k = numel(w.shape(n));
        params += k;
        dtypeCount.set(w.dtype(n), (dtypeCount.get(w.dtype(n)) ?? 0) + k);
      }
      const summary: ModelSummary = {
        name,
        source: source.kind,
        format: findFile(files, 'config.json') ? 'Hugging Face safetensors' : files.some((f) => f.name.toLowerCase().endsWith('.gguf')) ? 'GGUF' : 'llama2.c',
        files: files.map((f) => ({ name: f.name, size: f.size })),
        arch: ckpt.config.arch,
        config: { ...ckpt.config },
        params,
        storedDtypes: [...dtypeCount].sort((a, b) => b[1] - a[1]).map(([d]) => d),
        weightsBytes: model.memoryBytes.weights,
        runStateBytes: model.memoryBytes.runState,
        contextLength: model.seqLen,
        tokenizer: { name: ckpt.tokenizer.name, vocabSize: ckpt.tokenizer.vocabSize, bosId: ckpt.tokenizer.bosId, eosId: ckpt.tokenizer.eosId },
        ...(cacheKind && { cache: cacheKind }),
        loadSeconds: (performance.now() - t0) / 1000,
      };
      loaded = { summary, ckpt, model, files, cacheKeys };
      return summary;
    } finally {
      if (loadAbort === abort) loadAbort = null;
    }
  }

  async function gen(args: GenerateArgs, onToken?: (u: GenerateUpdate) => void): Promise<GenerateOutcome> {
    if (!loaded) throw new Error('generate: no model is loaded; load one first');
    const { model, ckpt } = loaded;
    const tok = ckpt.tokenizer;
    const promptIds = args.prompt ? tok.encode(args.prompt, { bos: true }) : [tok.bosId];
    if (promptIds.length >= model.seqLen) {
      throw new Error(`generate: the prompt is ${promptIds.length} tokens; the loaded model's context holds ${model.seqLen}`);
    }
    const room = model.seqLen - promptIds.length;
    const maxTokens = Math.max(1, Math.min(Math.floor(args.maxTokens), room));
    const temperature = args.temperature ?? 0;
    const sampler: Sampler =
      temperature > 0 ? { kind: 'sample', temperature, topP: args.topP ?? 1, rng: new Rng(args.seed ?? 0) } : { kind: 'greedy' };
    const promptText = tok.decode(promptIds);
    const ids: number[] = [];
    const update = (): GenerateUpdate => ({ text: tok.decode([...promptIds, ...ids]), promptText, tokens: ids.length });
    const STOP = Symbol('stop');
    stopRequested = false;
    let last = -Infinity;
    const t0 = performance.now();
    let r: { prefillTokensPerS: number; decodeTokensPerS: number };
    let stop: GenerateOutcome['stop'];
    try {
      r = await generateTokens(model, promptIds, {
        maxTokens,
        sampler,
        stopId: tok.eosId,
        onToken: (id) => {
          ids.push(id);
          const now = performance.now();
          if (onToken && (now - last > 50 || ids.length === maxTokens)) {
            last = now;
            onToken(update());
          }
          if (stopRequested) throw STOP;
        },
      });
      stop = ids.length < maxTokens ? 'eos' : maxTokens < Math.floor(args.maxTokens) ? 'context' : 'max-tokens';
    } catch (e) {
      if (e !== STOP) throw e;
      const s = (performance.now() - t0) / 1000;
      r = { prefillTokensPerS: 0, decodeTokensPerS: ids.length / Math.max(s, 1e-9) };
      stop = 'stopped';
    }
    const u = update();
    onToken?.(u);
    return { ...u, ids, promptTokens: promptIds.length, stop, ...r };
  }

  return {
    loadModel: (source: ModelSource, onProgress?: (p: LoadProgress) => void) => {
      // A new load cancels one still waiting or running, and stops a generation.
      loadAbort?.abort(cancelled('loading was cancelled: another load started'));
      stopRequested = true;
      const abort = new AbortController();
      loadAbort = abort;
      return exclusive(() => load(source, onProgress, abort));
    },
    cancelLoad(): void {
      loadAbort?.abort(cancelled('loading was cancelled'));
    },
    generate: (args: GenerateArgs, onToken?: (u: GenerateUpdate) => void) => exclusive(() => gen(args, onToken)),
    stopGenerate(): void {
      stopRequested = true;
    },
    exportOnnx: () =>
      exclusive(async () => {
        if (!loaded) throw new Error('exportOnnx: no model is loaded; load one first');
        const bytes = await buildOnnxBytes(loaded.files);
        const buf = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.slice().buffer as ArrayBuffer);
        return Comlink.transfer(buf, [buf]);
      }),
    unloadModel: () => exclusive(async () => unload()),
    /** Runs `fn` with the loaded model, one call at a time with loads and generations. */
    withModel: <T>(what: string, fn: (m: LoadedSession) => Promise<T>) =>
      exclusive(async () => {
        if (!loaded) throw new Error(`${what}: no model is loaded; load a model in the Model stage first`);
        return fn(loaded);
      }),
    /** Runs `fn` one call at a time with everything else that touches the model, loaded or not. */
    serial: <T>(fn: () => Promise<T>) => exclusive(fn),
    /** Called before the loaded model is released (unload, or a new load). */
    onUnload(f: () => void): void {
      unloadListeners.add(f);
    },
    /** Deletes one download; refuses a file of the loaded model. */
    deleteCached: (key: string) =>
      exclusive(async () => {
        if (loaded?.cacheKeys.has(key)) throw new Error(`${key} is a file of the loaded model; unload it before deleting it`);
        await (await getCache()).delete(key);
      }),
    loadedModel: async (): Promise<ModelSummary | null> => loaded?.summary ?? null,
    cacheInfo: async (): Promise<CacheInfo> => {
      const c = await getCache();
      const entries = (await c.list()).sort((a, b) => a.key.localeCompare(b.key)).map((e) => ({ ...e, inUse: loaded?.cacheKeys.has(e.key) ?? false }));
      return { kind: c.kind, entries, bytes: entries.reduce((n, e) => n + e.size, 0) };
    },
    /** Deletes every download except the loaded model's files. */
    clearCache: () =>
      exclusive(async () => {
        const c = await getCache();
        for (const e of await c.list()) if (!loaded?.cacheKeys.has(e.key)) await c.delete(e.key);
      }),
  };
}

// ---------------------------------------------------------------- sources

/**
 * Files from a picker or a drop. From a folder, only the top level is kept (a repo clone's onnx/ or .git/
 * holds files with the same names), and hidden files are skipped.
 */
function localFiles(files: File[], paths?: string[]): { files: ByteSource[]; name: string } {
  if (!files.length) throw new Error('no files were given: choose the model files, or the folder that holds them');
  const all = files.map((f, i) => ({ f, path: (paths?.[i] || f.webkitRelativePath || f.name).replace(/^\/+/, '') }));
  const visible = all.filter(({ path }) => !path.split('/').some((s) => s.startsWith('.')));
  const depth = (p: string) => p.split('/').length;
  const top = Math.min(...visible.map(({ path }) => depth(path)));
  const kept = visible.filter(({ path }) => depth(path) === top);
  if (!kept.length) throw new Error(`only hidden files were given (${all.map((x) => x.path).join(', ')})`);
  const folder = top > 1 ? kept[0].path.split('/').slice(0, -1).join('/') : '';
  const model = kept.find(({ path }) => /\.(gguf|safetensors)$/i.test(path)) ?? [...kept].sort((a, b) => b.f.size - a.f.size)[0];
  return { files: kept.map(({ f, path }) => fileSource(f, path)), name: folder || baseName(model.path) };
}

interface PlanItem {
  url: string;
  key: string;
  name: string;
  size?: number;
}

function urlPlan(urls: string[]): { name: string; items: PlanItem[] } {
  const list = urls.map((u) => u.trim()).filter(Boolean);
  if (!list.length) throw new Error('no URL was given: paste the URL of a .gguf, or of each file of the checkpoint');
  const items = list.map((u): PlanItem => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new Error(`"${u}" is not a URL (expected https://…)`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`"${u}" is not an http(s) URL`);
    return { url: url.href, key: url.href, name: urlFileName(url.href) };
  });
  const model = items.find((i) => /\.(gguf|safetensors|bin)$/i.test(i.name)) ?? items[0];
  return { name: model.name, items };
}

async function hubPlan(repo: string, revision: string | undefined, signal: AbortSignal, progress: Progress): Promise<{ name: string; items: PlanItem[] }> {
  progress({ phase: 'resolve', label: `Listing ${repo.trim()} on the Hugging Face Hub`, loadedBytes: 0, totalBytes: null, bytesPerSecond: null, etaSeconds: null }, true);
  const r = await resolveHubFiles(repo, { revision, signal });
  if (r.gated) {
    // Gated files are served only to signed-in users who accepted the licence; these downloads are anonymous.
    throw new HubError(r.repo, 'gated', `is a gated repo (${r.gated} approval): its files are only served to signed-in users who accepted its licence on huggingface.co`);
  }
  const pin = r.commit ?? r.revision;
  return {
    name: r.repo,
    items: r.files.map((f) => ({ url: f.url, key: `hf/${r.repo}/${pin}/${f.path}`, name: `${r.repo}/${f.path}`, size: f.size })),
  };
}

async function downloadAll(items: PlanItem[], cache: BlobCache, signal: AbortSignal, progress: Progress): Promise<ByteSource[]> {
  // Totals over all files when the listing gave every size; else per file.
  const known = items.every((i) => i.size !== undefined);
  const total = known ? items.reduce((n, i) => n + (i.size ?? 0), 0) : null;
  let before = 0;
  const out: ByteSource[] = [];
  for (const [i, item] of items.entries()) {
    const label = `Downloading ${baseName(item.name)}${items.length > 1 ? ` (${i + 1} of ${items.length})` : ''}`;
    const onProgress = (p: DownloadProgress) => {
      const loaded = known ? before + p.loadedBytes : p.loadedBytes;
      const tot = known ? total : p.totalBytes;
      const eta = tot !== null && p.bytesPerSecond > 0 ? (tot - loaded) / p.bytesPerSecond : p.etaSeconds;
      progress({ phase: 'download', label, file: item.name, fileIndex: i, fileCount: items.length, loadedBytes: loaded, totalBytes: tot, bytesPerSecond: p.bytesPerSecond, etaSeconds: eta });
    };
    const src = await download(item.url, { cache, key: item.key, name: item.name, size: item.size, signal, onProgress });
    before += src.size;
    out.push(src);
  }
  return out;
}

// ---------------------------------------------------------------- progress plumbing

/** What a cancelled load rejects with (name 'AbortError', like fetch's). */
function cancelled(message: string): Error {
  const e = new Error(message);
  e.name = 'AbortError';
  return e;
}

type Progress = (p: LoadProgress, force?: boolean) => void;

/** At most one callback every 100 ms (each crosses the worker boundary), the forced ones always. */
function throttled(cb?: (p: LoadProgress) => void): Progress {
  let last = -Infinity;
  return (p, force = false) => {
    if (!cb) return;
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    cb(p);
  };
}

/** Bytes per second over the last few seconds, and the time left at that rate. */
function rateMeter(): (done: number, total: number) => { rate: number | null; eta: number | null } {
  const samples: [number, number][] = [];
  return (done, total) => {
    const now = performance.now();
    samples.push([now, done]);
    while (samples.length > 2 && now - samples[0][0] > 3000) samples.shift();
    const [t0, b0] = samples[0];
    const rate = now > t0 ? ((done - b0) / (now - t0)) * 1000 : null;
    return { rate, eta: rate ? (total - done) / rate : null };
  };
}
