// The engine API: the one interface the UI talks to. engine.worker.ts exposes `engineApi` through
// Comlink and the UI calls it through Comlink.wrap; tests and other hosts may call it in-process.
// Every method takes plain data and returns plain objects (or a Promise of them), progress comes back
// through a callback (a Comlink.proxy across the worker boundary), errors are typed classes
// (NoWebGpuError when the host has no WebGPU). The engine never touches the DOM.
import type { Gpu, GpuFeatures } from '../gpu/device.ts';
import { createBrowserGpu, NoWebGpuError } from '../gpu/browser.ts';
import { runChecks, type CheckReport } from '../ops/check.ts';
import { selectChecks, type CheckSelection } from '../ops/checks.ts';

export { NoWebGpuError };
export type { CheckReport, GpuFeatures };

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

export interface EngineApi {
  /** Describes the adapter; throws NoWebGpuError when this host has no WebGPU. */
  gpuInfo(): Promise<GpuReport>;
  /** The cases kernelsCheck(args) will run, in order, without running them. */
  listChecks(args: KernelCheckArgs): Promise<CheckCaseInfo[]>;
  /** Runs the selected cases one by one; onReport receives each report as it completes. */
  kernelsCheck(args: KernelCheckArgs, onReport?: (report: CheckReport) => void): Promise<KernelCheckResult>;
}

export const DEFAULT_SEED = 1234;

/** Same selection as `moefy kernels check --smoke --filter …`. */
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
};
