// What every browser e2e test starts: the workbench from Vite's dev server, in headless Chromium.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ViteDevServer } from 'vite';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../src/cli/chromium.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Vite's dev server on 127.0.0.1 and a Chromium page with SwiftShader WebGPU; page errors go to `log`. */
export async function startPage(t: { diagnostic(m: string): void }, log: string[]): Promise<{ server: ViteDevServer; browser: Browser; page: Page; url: string }> {
  const { createServer } = await import('vite');
  const server = await createServer({
    root,
    configFile: `${root}vite.config.ts`,
    // No file watching or HMR: a source edit elsewhere in the repo must not reload the page mid-run.
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
    logLevel: 'warn',
    clearScreen: false,
  });
  await server.listen();
  const address = server.httpServer?.address();
  assert.ok(address && typeof address === 'object', 'Vite dev server has no address');
  const url = `http://127.0.0.1:${address.port}/`;
  t.diagnostic(`vite dev server on ${url}`);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log.push(`[${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  page.on('worker', (w) => w.on('console', (m) => log.push(`[worker ${m.type()}] ${m.text()}`)));
  return { server, browser, page, url };
}

const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url));

/** Saves e2e/artifacts/<file>: the whole page as the test left it, passed or failed (from the top). */
export async function keepScreenshot(t: { diagnostic(m: string): void }, page: Page | undefined, file: string): Promise<void> {
  if (!page) return;
  mkdirSync(artifacts, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0)).catch(() => {});
  await page.screenshot({ path: `${artifacts}${file}`, fullPage: true }).catch((e) => t.diagnostic(`no screenshot: ${e}`));
}
