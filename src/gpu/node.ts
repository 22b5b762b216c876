// Node host: Dawn through the `webgpu` package. On a machine without a GPU driver, bin/register.mjs
// points Vulkan at SwiftShader (Debian's chromium package ships it).
import { createRequire } from 'node:module';
import { Gpu } from './device.ts';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

export async function createNodeGpu(): Promise<Gpu> {
  // MOEFY_DAWN_NODE names a dawn.node directly (bundles carried to GPU machines); else the npm package.
  const dawn: DawnModule = process.env.MOEFY_DAWN_NODE
    ? createRequire(import.meta.url)(process.env.MOEFY_DAWN_NODE)
    : await import('webgpu');
  Object.assign(globalThis, dawn.globals);
  // Extra Dawn flags, e.g. MOEFY_DAWN_FLAGS="enable-dawn-features=allow_unsafe_apis".
  const flags = (process.env.MOEFY_DAWN_FLAGS ?? '').split(/\s+/).filter(Boolean);
  return Gpu.create(
    dawn.create(flags),
    (detail) =>
      new Error(
        `WebGPU: Dawn found no adapter (${detail}). Without a GPU, install Debian's chromium and libvulkan1 ` +
          '(SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json); with one, check its Vulkan driver.',
      ),
  );
}
