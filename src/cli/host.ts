// Picks where a GPU task runs: Dawn in Node on a real GPU, headless Chromium when Dawn's only adapter
// is SwiftShader (see chromium-host.ts for why). MOEFY_HOST=dawn|chromium overrides.
import { existsSync } from 'node:fs';
import { createNodeGpu } from '../gpu/node.ts';
import { CHROMIUM, runInChromium } from './chromium-host.ts';
import { tasks, type TaskName } from './tasks.ts';

export type HostName = 'dawn' | 'chromium';

export async function runTask<N extends TaskName>(
  name: N,
  args: Parameters<(typeof tasks)[N]>[1],
  progress: (m: string) => void = () => {},
  host: HostName | 'auto' = (process.env.MOEFY_HOST as HostName | undefined) ?? 'auto',
): Promise<Awaited<ReturnType<(typeof tasks)[N]>>> {
  type R = Awaited<ReturnType<(typeof tasks)[N]>>;
  if (host === 'chromium') return runInChromium<R>(name, args, progress);
  const gpu = await createNodeGpu();
  if (host === 'auto' && gpu.info.software && existsSync(CHROMIUM)) {
    gpu.destroy();
    return runInChromium<R>(name, args, progress);
  }
  try {
    const task = tasks[name] as (g: typeof gpu, a: typeof args, p: typeof progress) => Promise<R>;
    return await task(gpu, args, progress);
  } finally {
    gpu.destroy();
  }
}
