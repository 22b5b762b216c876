// Runs a GPU task inside headless Chromium (Playwright driving /usr/bin/chromium, SwiftShader WebGPU).
// Why: Dawn in Node (the `webgpu` package) corrupts memory when it polls SwiftShader while work is in
// flight (test/dawn-swiftshader-repro.mjs crashes within seconds), while Chromium's WebGPU on the same
// SwiftShader is solid. So on machines whose only adapter is SwiftShader the CLI runs the same engine
// bundle in a page; on real GPUs it stays on Dawn in Node.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { open } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { TaskName } from './tasks.ts';
import { listFiles, nodeIO } from './io-node.ts';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.ts';
import { BROWN_BUILTIN } from '../data/brown.ts';
import { serveBrown } from '../data/brown-node.ts';

export { CHROMIUM, CHROMIUM_ARGS };

const root = fileURLToPath(new URL('../..', import.meta.url));


async function bundleTasks(): Promise<string> {
  const out = await build({
    stdin: {
      contents: `
        import { tasks } from './src/cli/tasks.ts';
        import { createBrowserGpu } from './src/gpu/browser.ts';
        import { httpIO } from './src/cli/io.ts';
        globalThis.__moefyRun = async (name, args) => {
          const gpu = await createBrowserGpu();
          const io = httpIO((path, b64) => globalThis.__moefyWrite(path, b64), (path) => globalThis.__moefyRemove(path));
          try { return await tasks[name](gpu, args, (m) => globalThis.__moefyProgress(m), io); }
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

/** Whether `path` is one of `allowed` or inside one of them. */
function permitted(allowed: readonly string[], path: string): boolean {
  const p = resolve(path);
  return allowed.map((a) => resolve(a)).some((r) => p === r || p.startsWith(r + sep));
}

/**
 * Serves the page, and the named paths' files for HostIO (/ls lists, /fs serves byte ranges), and the
 * built-in corpus under /corpus/brown/ when `builtin:brown` is one of them; nothing else.
 */
export function serve(files: Record<string, [string, string]>, allowed: readonly string[]): Promise<Server> {
  const server = createServer((req, res) => {
    handle(req, res, files, allowed).catch((e) => {
      res.statusCode = 500;
      res.end(String((e as Error).message));
    });
  });
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done(server)));
}

async function handle(req: IncomingMessage, res: ServerResponse, files: Record<string, [string, string]>, allowed: readonly string[]) {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const f = files[url.pathname];
  if (f) {
    res.setHeader('content-type', f[0]);
    res.end(f[1]);
    return;
  }
  if (allowed.includes(BROWN_BUILTIN) && (await serveBrown(req, res))) return;
  const path = resolve(url.searchParams.get('path') ?? '');
  if (!['/ls', '/fs'].includes(url.pathname) || !permitted(allowed, path)) {
    res.statusCode = 404;
    res.end(`${path}: not one of the paths given to this command`);
    return;
  }
  if (url.pathname === '/ls') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(await listFiles(path)));
    return;
  }
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const [start, end] = m ? [Number(m[1]), Math.min(Number(m[2]), size - 1)] : [0, size - 1];
    const buf = Buffer.alloc(Math.max(0, end - start + 1));
    await fh.read(buf, 0, buf.length, start);
    res.statusCode = m ? 206 : 200;
    res.setHeader('content-length', String(buf.length));
    if (m) res.setHeader('content-range', `bytes ${start}-${end}/${size}`);
    res.end(req.method === 'HEAD' ? undefined : buf);
  } finally {
    await fh.close();
  }
}

/** Runs a task in a fresh headless Chromium page; `paths` are the only files the page may read or write. */
export async function runInChromium<T>(name: TaskName, args: unknown, progress: (m: string) => void, paths: readonly string[] = []): Promise<T> {
  const { chromium } = await import('playwright-core');
  const js = await bundleTasks();
  const server = await serve({
    '/': ['text/html', '<!doctype html><meta charset="utf-8"><script type="module" src="/tasks.js"></script>'],
    '/tasks.js': ['text/javascript', js],
  }, paths);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.exposeFunction('__moefyProgress', progress);
    await page.exposeFunction('__moefyWrite', async (path: string, base64: string) => {
      if (!permitted(paths, path)) throw new Error(`${path}: not an output path of this command`);
      await nodeIO.write(path, Buffer.from(base64, 'base64'));
    });
    await page.exposeFunction('__moefyRemove', async (path: string) => {
      if (!permitted(paths, path)) throw new Error(`${path}: not an output path of this command`);
      await nodeIO.remove!(path);
    });
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
