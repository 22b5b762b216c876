// Browser host (window or worker): navigator.gpu.
import { Gpu } from './device.ts';

export class NoWebGpuError extends Error {
  constructor(detail: string) {
    super(
      `WebGPU is not available: ${detail}. Use a recent Chrome or Edge (113+), or Firefox Nightly / Safari ` +
        'Technology Preview with WebGPU enabled; on Linux Chrome may need --enable-unsafe-webgpu --enable-features=Vulkan. ' +
        'The page must be served over https or http://localhost / 127.0.0.1.',
    );
    this.name = 'NoWebGpuError';
  }
}

export async function createBrowserGpu(): Promise<Gpu> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new NoWebGpuError('navigator.gpu is undefined');
  return Gpu.create(gpu, (detail) => new NoWebGpuError(detail));
}
