// Picks where a GPU task runs: Dawn in Node on a real GPU, headless Chromium when Dawn's only adapter
// is SwiftShader (see chromium-host.ts for why). MOEFY_HOST=dawn|chromium overrides.
import { existsSync } from 'node:fs';
import { CHROMIUM } from './chromium.ts';
import { createNodeGpu } from '../gpu/node.ts';
import { tasks, type TaskName } from './tasks.ts';
import { withBuiltins, type HostIO } from './io.ts';
import { nodeIO } from './io-node.ts';
import { BROWN_BUILTIN, brownSources } from '../data/brown.ts';
import { loadBrown } from '../data/brown-node.ts';

/** What a task on Dawn reads: Node's filesystem, and the built-in corpus from node_modules. */
export const nodeHostIO: HostIO = withBuiltins(nodeIO, { [BROWN_BUILTIN]: async () => brownSources(await loadBrown()) });

export type HostName = 'dawn' | 'chromium';

export async function runTask<N extends TaskName>(
  name: N,
  args: Parameters<(typeof tasks)[N]>[1],
  progress: (m: string) => void = () => {},
  /** Files and folders the task reads or writes (the Chromium host serves only these). */
  paths: readonly string[] = [],
  host: HostName | 'auto' = (process.env.MOEFY_HOST as HostName | undefined) ?? 'auto',
): Promise<Awaited<ReturnType<(typeof tasks)[N]>>> {
  type R = Awaited<ReturnType<(typeof tasks)[N]>>;
  // Imported on demand: a bundle carried to a GPU machine has neither Playwright nor esbuild.
  const chromium = () => import('./chromium-host.ts');
  if (host === 'chromium') return (await chromium()).runInChromium<R>(name, args, progress, paths);
  const gpu = await createNodeGpu();
  if (host === 'auto' && gpu.info.software && existsSync(CHROMIUM)) {
    gpu.destroy();
    return (await chromium()).runInChromium<R>(name, args, progress, paths);
  }
  try {
    const task = tasks[name] as unknown as (g: typeof gpu, a: typeof args, p: typeof progress, io: HostIO) => Promise<R>;
    return await task(gpu, args, progress, nodeHostIO);
  } finally {
    gpu.destroy();
  }
}
