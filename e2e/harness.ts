// What every browser e2e test starts: the workbench from Vite's dev server, in headless Chromium.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ViteDevServer } from 'vite';
import { SPEC_VERSION } from '../src/state/spec.ts';
import { DEMO_NAME } from '../src/worker/demo-model.ts';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../src/cli/chromium.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Why a browser test cannot run on this machine (no Chromium, or `assets` missing: path → what to do), or false. */
export function e2eSkip(assets: Record<string, string> = {}): string | false {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} not found: install Chromium (or set MOEFY_CHROMIUM) to run the browser e2e test`;
  const missing = Object.keys(assets).find((path) => !existsSync(path));
  return missing ? `${missing} not found: ${assets[missing]}` : false;
}

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

/**
 * startPage on a blank page of the dev server's origin, for tests that drive the engine with page.evaluate:
 * /__moefy/<path> serves the file at `files`<path> (the test assets).
 */
export async function startEnginePage(t: { diagnostic(m: string): void }, log: string[], files: string): ReturnType<typeof startPage> {
  const s = await startPage(t, log);
  try {
    await s.page.route('**/__moefy/**', (route) => {
      const path = new URL(route.request().url()).pathname.replace('/__moefy/', '');
      if (path === 'blank') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><meta charset="utf-8">' });
      return route.fulfill({ path: `${files}${path}` });
    });
    // page.evaluate sends functions as their source text, where tsx's keepNames calls __name
    await s.page.addInitScript('globalThis.__name = (f) => f;');
    await s.page.goto(`${s.url}__moefy/blank`);
    return s;
  } catch (e) {
    await s.browser.close().catch(() => {});
    await s.server.close().catch(() => {});
    throw e;
  }
}

const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url));

/** Saves e2e/artifacts/<file>: the whole page as the test left it, passed or failed (from the top). */
export async function keepScreenshot(t: { diagnostic(m: string): void }, page: Page | undefined, file: string): Promise<void> {
  if (!page) return;
  mkdirSync(artifacts, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0)).catch(() => {});
  await page.screenshot({ path: `${artifacts}${file}`, fullPage: true }).catch((e) => t.diagnostic(`no screenshot: ${e}`));
}

/** Opens a pipeline stage from the sidebar and waits for its page. */
export async function openStage(page: Page, name: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Pipeline' }).getByRole('link', { name: new RegExp(`^\\d?✓?\\s*${name}`) }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor({ timeout: 30_000 });
}

/** The Data stage's built-in Brown Corpus, loaded. */
export async function useBrownCorpus(page: Page): Promise<void> {
  await openStage(page, 'Data');
  await page.getByRole('button', { name: /Use the Brown Corpus/ }).click();
  await page.locator('[data-data-status="ready"], [data-data-status="error"]').waitFor({ timeout: 60_000 });
  assert.equal(await page.locator('[data-data-status]').getAttribute('data-data-status'), 'ready', `Brown Corpus: ${await page.locator('[data-data-status]').innerText()}`);
}

/** The demo model a visit opens with (nothing chosen in Model), then the built-in Brown Corpus. */
export async function loadDemoAndBrown(page: Page): Promise<void> {
  await openStage(page, 'Model');
  await page.locator('[data-model-status="ready"], [data-model-status="error"]').waitFor({ timeout: 120_000 });
  assert.equal(await page.locator('[data-model-status]').getAttribute('data-model-status'), 'ready', `the demo model loads: ${await page.locator('[data-model-status]').innerText()}`);
  await page.getByText(DEMO_NAME).first().waitFor({ timeout: 10_000 });
  await useBrownCorpus(page);
}

/** A results table's cells, row by row. */
export async function tableCells(page: Page, selector: string): Promise<string[][]> {
  return page.locator(`${selector} tbody tr`).evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent ?? '')));
}

/** Waits for the running task's bar to go, fails with the page's error if the task failed, then for `results` (a data-testid). */
export async function waitTaskDone(page: Page, results: string, timeout: number): Promise<void> {
  await page.getByTestId('task-bar').waitFor({ state: 'detached', timeout });
  const failed = page.locator('.task-error');
  if (await failed.count()) assert.fail(await failed.innerText());
  await page.getByTestId(results).waitFor({ timeout: 10_000 });
}

/** A workbench URL whose run spec (the `s` parameter) is `spec`'s fields over the defaults. */
export function specLink(url: string, spec: Record<string, unknown>): string {
  return `${url}?s=${SPEC_VERSION}.j.${Buffer.from(JSON.stringify(spec)).toString('base64url')}`;
}

/**
 * Runs `body` on a fresh workbench page, then keeps a screenshot (`<name>-end.png`, or `<name>-failure.png`
 * when it threw) and reports the page's last log lines.
 */
export async function onPage(t: { diagnostic(m: string): void }, name: string, body: (page: Page, url: string) => Promise<void>): Promise<void> {
  const log: string[] = [];
  const { server, browser, page, url } = await startPage(t, log);
  let shot = `${name}-failure.png`;
  try {
    await body(page, url);
    shot = `${name}-end.png`;
  } finally {
    await keepScreenshot(t, page, shot);
    if (log.length) t.diagnostic(log.slice(-20).join('\n'));
    await browser.close();
    await server.close();
  }
}
