// Runs a GPU task inside headless Chromium (Playwright driving /usr/bin/chromium, SwiftShader WebGPU).
// Why: Dawn in Node (the `webgpu` package) corrupts memory when it polls SwiftShader while work is in
// flight (test/dawn-swiftshader-repro.mjs crashes within seconds), while Chromium's WebGPU on the same
// SwiftShader is solid. So on machines whose only adapter is SwiftShader the CLI runs the same engine
// bundle in a page; on real GPUs it stays on Dawn in Node.
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { TaskName } from './tasks.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const CHROMIUM = process.env.MOEFY_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run',
];

async function bundleTasks(): Promise<string> {
  const out = await build({
    stdin: {
      contents: `
        import { tasks } from './src/cli/tasks.ts';
        import { createBrowserGpu } from './src/gpu/browser.ts';
        globalThis.__moefyRun = async (name, args) => {
          const gpu = await createBrowserGpu();
          try { return await tasks[name](gpu, args, (m) => globalThis.__moefyProgress(m)); }
          finally { gpu.destroy(); }
        };`,
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    loader: { '.wgsl': 'text' },
    logLevel: 'silent',
  });
  return out.outputFiles[0].text;
}

function serve(files: Record<string, [string, string]>): Promise<Server> {
  const server = createServer((req, res) => {
    const f = files[req.url ?? '/'];
    if (!f) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-type', f[0]);
    res.end(f[1]);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

export async function runInChromium<T>(name: TaskName, args: unknown, progress: (m: string) => void): Promise<T> {
  const { chromium } = await import('playwright-core');
  const js = await bundleTasks();
  const server = await serve({
    '/': ['text/html', '<!doctype html><meta charset="utf-8"><script type="module" src="/tasks.js"></script>'],
    '/tasks.js': ['text/javascript', js],
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.exposeFunction('__moefyProgress', progress);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => typeof (globalThis as { __moefyRun?: unknown }).__moefyRun === 'function');
    return (await page.evaluate(
      ([n, a]) => (globalThis as unknown as { __moefyRun: (n: string, a: unknown) => Promise<unknown> }).__moefyRun(n, a),
      [name, args] as const,
    )) as T;
  } finally {
    await browser.close();
    server.close();
  }
}
