// The engine API: the one interface the UI talks to. engine.worker.ts exposes `engineApi` through
// Comlink and the UI calls it through Comlink.wrap; tests and other hosts may call it in-process.
// Every method takes plain data and returns plain objects (or a Promise of them), progress comes back
// through a callback (a Comlink.proxy across the worker boundary), errors are typed classes
// (NoWebGpuError when the host has no WebGPU). The engine never touches the DOM.
// The LaDiMo pipeline (pipeline.ts) is part of the same interface: EngineApi extends PipelineApi, so its
// methods sit on engineApi beside the model's (flat, which Comlink.wrap types and proxies directly):
// `await engine.capture(spec, Comlink.proxy(onProgress))`.
import * as Comlink from 'comlink';
import type { Gpu, GpuFeatures } from '../gpu/device.ts';
import { createBrowserGpu, NoWebGpuError } from '../gpu/browser.ts';
import { runChecks, type CheckReport } from '../ops/check.ts';
import { selectChecks, type CheckSelection } from '../ops/checks.ts';
import {
  modelSession,
  type CacheInfo,
  type GenerateArgs,
  type GenerateOutcome,
  type GenerateUpdate,
  type LoadPhase,
  type LoadProgress,
  type ModelSource,
  type ModelSummary,
} from './model.ts';
import { pipelineSession } from './pipeline.ts';
import type { PipelineApi } from './pipeline-types.ts';

export { NoWebGpuError };
export type { CheckReport, GpuFeatures };
export type { CacheInfo, GenerateArgs, GenerateOutcome, GenerateUpdate, LoadPhase, LoadProgress, ModelSource, ModelSummary };

/** The adapter limits the kernels care about, in the order the UI shows them. */
export const LIMIT_KEYS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];

export interface GpuReport {
  vendor: string;
  architecture: string;
  description: string;
  /** A CPU implementation (SwiftShader): correct but ~1000× slower. */
  software: boolean;
  /** Optional features the kernels use, and whether the device has them. */
  features: GpuFeatures;
  /** Every feature the device was created with, sorted. */
  featureNames: string[];
  limits: Record<LimitKey, number>;
}

export interface KernelCheckArgs extends CheckSelection {
  /** Case i draws from Rng(seed + i·7919); 1234 as in `moefy kernels check`. */
  seed?: number;
}

export interface CheckCaseInfo {
  family: string;
  name: string;
  tol: number;
}

export interface KernelCheckResult {
  device: string;
  seed: number;
  reports: CheckReport[];
}

export interface EngineApi extends PipelineApi {
  /** Describes the adapter; throws NoWebGpuError when this host has no WebGPU. */
  gpuInfo(): Promise<GpuReport>;
  /** The cases kernelsCheck(args) will run, in order, without running them. */
  listChecks(args: KernelCheckArgs): Promise<CheckCaseInfo[]>;
  /** Runs the selected cases one by one; onReport receives each report as it completes. */
  kernelsCheck(args: KernelCheckArgs, onReport?: (report: CheckReport) => void): Promise<KernelCheckResult>;

  // ---- dense models (src/worker/model.ts). Errors keep their name and message across the boundary:
  // CheckpointError names the file and what is wrong, GpuLimitError the limit and by how much, HubError
  // and DownloadError the repo or file; a cancelled load rejects with name 'AbortError'.
  /**
   * Opens a checkpoint (local files; URLs and Hub repos are downloaded into the browser's cache first,
   * resuming partial downloads), uploads it to the GPU and describes it. Replaces the loaded model, and
   * cancels a pipeline stage running on the old one (its checkpoints stay stored).
   */
  loadModel(source: ModelSource, onProgress?: (p: LoadProgress) => void): Promise<ModelSummary>;
  /** Stops a load in progress; downloaded parts stay cached for the next load. */
  cancelLoad(): Promise<void>;
  /** Continues `prompt` (empty: from BOS); onToken receives the decoded text as it grows. */
  generate(args: GenerateArgs, onToken?: (u: GenerateUpdate) => void): Promise<GenerateOutcome>;
  /** Ends a generation after its current token; generate() resolves with what it has. */
  stopGenerate(): Promise<void>;
  /** The loaded model as an ONNX graph (model.onnx bytes), transferred, not copied. */
  exportOnnx(): Promise<ArrayBuffer>;
  /** Frees the model's GPU memory. */
  unloadModel(): Promise<void>;
  /** The downloads cache (OPFS, the Cache API, or memory): entries and bytes. */
  cacheInfo(): Promise<CacheInfo>;
  clearCache(): Promise<void>;
}

export const DEFAULT_SEED = 1234;

// One device per engine, created on first use and dropped if it is lost, so the next call starts afresh.
let gpuPromise: Promise<Gpu> | null = null;

function getGpu(): Promise<Gpu> {
  if (!gpuPromise) {
    const p = createBrowserGpu();
    gpuPromise = p;
    p.then(
      (gpu) => gpu.onDeviceLost(() => {
        if (gpuPromise === p) gpuPromise = null;
      }),
      () => {
        if (gpuPromise === p) gpuPromise = null;
      },
    );
  }
  return gpuPromise;
}

/** Frees the Comlink.proxy callbacks' channels once their call has ended (plain functions pass through). */
function releasing<T>(call: Promise<T>, ...callbacks: unknown[]): Promise<T> {
  const releases = callbacks.map((c) => (c as { [Comlink.releaseProxy]?: () => void } | undefined)?.[Comlink.releaseProxy]);
  return call.finally(() => releases.forEach((r) => typeof r === 'function' && r()));
}

const models = modelSession(getGpu);
const pipeline = pipelineSession(models);

export const engineApi: EngineApi = {
  async gpuInfo() {
    const gpu = await getGpu();
    const limits = {} as Record<LimitKey, number>;
    for (const k of LIMIT_KEYS) limits[k] = gpu.limits[k];
    return {
      ...gpu.info,
      features: { ...gpu.features },
      featureNames: [...gpu.device.features].map(String).sort(),
      limits,
    };
  },

  async listChecks(args) {
    return selectChecks(args).map((c) => ({ family: c.family, name: c.name, tol: c.tol }));
  },

  async kernelsCheck(args, onReport) {
    const gpu = await getGpu();
    const seed = args.seed ?? DEFAULT_SEED;
    const reports = await runChecks(gpu, selectChecks(args), seed, onReport);
    return { device: gpu.describe(), seed, reports };
  },

  loadModel: (source, onProgress) => {
    void pipeline.cancel();
    return releasing(models.loadModel(source, onProgress), onProgress);
  },
  cancelLoad: async () => models.cancelLoad(),
  generate: (args, onToken) => releasing(models.generate(args, onToken), onToken),
  stopGenerate: async () => models.stopGenerate(),
  exportOnnx: () => models.exportOnnx(),
  unloadModel: () => models.unloadModel(),
  cacheInfo: () => models.cacheInfo(),
  clearCache: () => models.clearCache(),

  setData: (source) => pipeline.setData(source),
  resumeInfo: (spec) => pipeline.resumeInfo(spec),
  capture: (spec, onProgress) => releasing(pipeline.capture(spec, onProgress), onProgress),
  distill: (spec, onProgress, onUpdate) => releasing(pipeline.distill(spec, onProgress, onUpdate), onProgress, onUpdate),
  profile: (spec, onProgress) => releasing(pipeline.profile(spec, onProgress), onProgress),
  setLayerPolicy: (layer, policy) => pipeline.setLayerPolicy(layer, policy),
  routeText: (text) => pipeline.routeText(text),
  evaluate: (spec, onProgress) => releasing(pipeline.evaluate(spec, onProgress), onProgress),
  sweep: (spec, onProgress) => releasing(pipeline.sweep(spec, onProgress), onProgress),
  exportModel: (spec, onProgress) => releasing(pipeline.exportModel(spec, onProgress), onProgress),
  train: (spec, onProgress, onUpdate) => releasing(pipeline.train(spec, onProgress, onUpdate), onProgress, onUpdate),
  trainResumeInfo: (spec) => pipeline.trainResumeInfo(spec),
  dive: (spec, onProgress) => releasing(pipeline.dive(spec, onProgress), onProgress),
  llamaMoeV2: (spec, onProgress) => releasing(pipeline.llamaMoeV2(spec, onProgress), onProgress),
  mod: (spec, onProgress) => releasing(pipeline.mod(spec, onProgress), onProgress),
  piecesResumeInfo: (spec) => pipeline.piecesResumeInfo(spec),
  cancel: () => pipeline.cancel(),
  storage: () => pipeline.storage(),
  deleteStored: (key) => pipeline.deleteStored(key),
};
