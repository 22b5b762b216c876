// Bad input must fail loudly and say where: each case provokes one failure and passes (err 0) only when
// the right error type is thrown with a message naming the op and the offending shapes or limit.
import type { CheckCase, CheckResult } from './check.ts';
import { DeviceLostError, GpuLimitError, GpuOpError, OpArgumentError } from '../gpu/errors.ts';
import type { Gpu } from '../gpu/device.ts';
import { matmul } from './matmul.ts';
import { LlamaModel } from '../model/llama.ts';

type ErrorClass = new (...args: never[]) => Error;

async function expectThrow(kind: ErrorClass, mustMention: string[], fn: () => unknown | Promise<unknown>): Promise<CheckResult> {
  try {
    await fn();
  } catch (e) {
    const msg = String((e as Error).message);
    const ok = e instanceof kind && mustMention.every((s) => msg.includes(s));
    return { err: ok ? 0 : Infinity, outputs: { [ok ? 'threw as expected' : `wrong error: ${msg}`]: ok ? 0 : Infinity } };
  }
  return { err: Infinity, outputs: { 'did not throw': Infinity } };
}

function errorCase(name: string, run: (gpu: Gpu) => Promise<CheckResult>): CheckCase {
  return { family: 'errors', name, tol: 0, run: (gpu) => run(gpu) };
}

export const errorChecks: CheckCase[] = [
  errorCase('matmul inner dimensions differ', (gpu) => {
    const a = gpu.tensor([3, 4]), b = gpu.tensor([5, 6]);
    return expectThrow(OpArgumentError, ['matmul', '[3, 4]', '[5, 6]'], () => matmul(a, b)).finally(() => [a, b].forEach((t) => t.release()));
  }),
  errorCase('matmul batch sizes differ', (gpu) => {
    const a = gpu.tensor([2, 3, 4]), b = gpu.tensor([3, 4, 5]);
    return expectThrow(OpArgumentError, ['matmul', 'batch'], () => matmul(a, b)).finally(() => [a, b].forEach((t) => t.release()));
  }),
  errorCase('matmul with a u32 operand', (gpu) => {
    const a = gpu.tensor([3, 4], 'u32'), b = gpu.tensor([4, 5]);
    return expectThrow(OpArgumentError, ['matmul', 'f32', 'u32'], () => matmul(a, b)).finally(() => [a, b].forEach((t) => t.release()));
  }),
  errorCase('matmul non-finite alpha', (gpu) => {
    const a = gpu.tensor([3, 4]), b = gpu.tensor([4, 5]);
    return expectThrow(OpArgumentError, ['matmul', 'alpha', 'NaN'], () => matmul(a, b, { alpha: NaN })).finally(() => [a, b].forEach((t) => t.release()));
  }),
  errorCase('matmul out tensor of the wrong shape', (gpu) => {
    const a = gpu.tensor([3, 4]), b = gpu.tensor([4, 5]), out = gpu.tensor([3, 4]);
    return expectThrow(OpArgumentError, ['matmul', 'out', '[3, 4]', '[3, 5]'], () => matmul(a, b, { out })).finally(() => [a, b, out].forEach((t) => t.release()));
  }),
  errorCase('tensor larger than the adapter allows', (gpu) => {
    const n = Math.ceil(gpu.limits.maxBufferSize / 4) + 1024;
    return expectThrow(GpuLimitError, ['huge', 'maxBufferSize', 'over'], () => gpu.tensor([n], 'f32', 'huge'));
  }),
  errorCase('workgroup grid beyond the per-dimension limit', (gpu) =>
    expectThrow(GpuLimitError, ['wide-op', 'maxComputeWorkgroupsPerDimension'], () =>
      gpu.dispatch({ op: 'wide-op', shader: '@compute @workgroup_size(1) fn main() {}', bindings: [], workgroups: [gpu.limits.maxComputeWorkgroupsPerDimension + 1] }),
    ),
  ),
  errorCase('WebGPU validation error names the op', async (gpu) => {
    // A binding the shader does not declare: WebGPU rejects the bind group; flush() must say which op.
    const a = gpu.tensor([4]);
    const shader = '@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n@compute @workgroup_size(1) fn main() { x[0] = 1.0; }';
    return expectThrow(GpuOpError, ['bad-op', 'validation'], async () => {
      gpu.dispatch({ op: 'bad-op', shader, bindings: [a, a], workgroups: [1] });
      await gpu.flush();
    }).finally(() => a.release());
  }),
  errorCase('WGSL compile error names the op', async (gpu) => {
    return expectThrow(GpuOpError, ['broken-op', 'validation'], async () => {
      gpu.dispatch({ op: 'broken-op', shader: '@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }', bindings: [], workgroups: [1] });
      await gpu.flush();
    });
  }),
  errorCase('device loss is reported and later ops throw', async (gpu) => {
    const other = await gpu.fork();
    const lost = new Promise<DeviceLostError>((resolve) => other.onDeviceLost(resolve));
    other.device.destroy();
    const e = await lost;
    if (!(e instanceof DeviceLostError)) return { err: Infinity, outputs: { 'no loss event': Infinity } };
    return expectThrow(DeviceLostError, ['lost'], () => other.tensor([4]));
  }),
  // A checkpoint too big for the adapter fails before any upload, naming the tensor, the limit and the excess.
  errorCase('model larger than the adapter buffer limits', async (gpu) => {
    const dim = 32768;
    const config = {
      arch: 'llama', dim, hiddenDim: 4 * dim, nLayers: 1, nHeads: 64, nKvHeads: 64, headDim: dim / 64, vocabSize: 256000,
      maxSeqLen: 8, normEps: 1e-5, ropeTheta: 1e4, ropeStyle: 'half', tiedEmbeddings: true, qkvBias: false, bosId: 1, eosId: 2,
    } as const;
    const index = {
      config, names: () => [], shape: () => [], dtype: () => 'F32' as const, f32Bytes: () => 0,
      read: () => Promise.reject(new Error('nothing may be read before the limit check')),
    };
    return expectThrow(GpuLimitError, ['model.', 'maxBufferSize', '×'], () => LlamaModel.load(gpu, index));
  }),
];

