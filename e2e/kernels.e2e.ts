// End to end: the workbench page, served by Vite, runs the kernel smoke checks in its Web Worker on
// Chromium's SwiftShader WebGPU, and every case passes. Saves a screenshot to e2e/artifacts/kernels.png.
//
//   node --import ./bin/register.mjs --test e2e/kernels.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { e2eSkip, keepScreenshot, startPage } from './harness.ts';
import { allChecks } from '../src/ops/checks.ts';

const RUN_TIMEOUT_MS = 240_000;

const skip = e2eSkip();

test('workbench runs the kernel smoke checks in its worker and all pass', { skip, timeout: RUN_TIMEOUT_MS + 120_000 }, async (t) => {
  const smoke = allChecks.filter((c) => c.smoke);
  assert.ok(smoke.length > 0, 'no smoke cases in src/ops/checks.ts');

  let server: ViteDevServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  const log: string[] = [];
  try {
    let url: string;
    ({ server, browser, page, url } = await startPage(t, log));
    await page.goto(url);

    // GPU panel: the adapter is Chromium's SwiftShader.
    const gpuPanel = page.getByRole('region', { name: 'GPU' });
    await page.locator('[data-gpu-status="ready"], [data-gpu-status="unavailable"], [data-gpu-status="error"]').waitFor({ timeout: 60_000 });
    const gpuText = await gpuPanel.innerText();
    assert.match(gpuText, /swiftshader/i, `GPU panel does not show SwiftShader:\n${gpuText}`);

    // Run the smoke set (the default) and wait for the run to end.
    await page.getByRole('button', { name: 'Run kernel checks' }).click();
    const panel = page.locator('[data-check-status]');
    await page.locator('[data-check-status="done"], [data-check-status="error"], [data-check-status="cancelled"]').waitFor({ timeout: RUN_TIMEOUT_MS });
    const status = await panel.getAttribute('data-check-status');
    const rows = await page.$$eval('table.results tbody tr', (trs) =>
      trs.map((tr) => ({ result: tr.getAttribute('data-result'), text: (tr as HTMLElement).innerText.replace(/\s+/g, ' ').trim() })),
    );
    const summary = (await page.getByTestId('check-summary').innerText()).trim();
    for (const r of rows) t.diagnostic(`${r.result?.padEnd(4)} ${r.text}`);
    t.diagnostic(summary);

    assert.equal(status, 'done', `kernel check ended in state ${status}`);
    assert.equal(rows.length, smoke.length, `expected ${smoke.length} smoke results, got ${rows.length}`);
    const failed = rows.filter((r) => r.result !== 'pass');
    assert.deepEqual(failed, [], 'every smoke case passes');
    assert.equal(summary, `${smoke.length} passed, 0 failed`);
  } catch (e) {
    if (log.length) t.diagnostic(`browser console:\n${log.join('\n')}`);
    throw e;
  } finally {
    await keepScreenshot(t, page, 'kernels.png');
    await browser?.close().catch(() => {});
    await server?.close().catch(() => {});
  }
});
